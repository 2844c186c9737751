"""Queries answered on paho's network thread, as a bare echo answers them.

An app's ``devices`` request whose answer the read model holds at the store's current
versions (:mod:`broker_bridge.registry.reads`, :mod:`broker_bridge.registry.freshness`)
is answered by one function: the topic's route, the app's share, the Response Topic, the
number, the versions, the kept answer, the audit entry's hand-off and the reply, with
what can be worked out once per topic (the app, its namespace, its actor name) and once
per Response Topic (whether it lies in that namespace) kept. Every check of the full path
(:meth:`~broker_bridge.handling.MessageHandler.take`) is made, in the same order; any
other message, and any doubt, goes to the worker.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt

from broker_bridge.auditing import AuditWriter
from broker_bridge.errors import StoreError
from broker_bridge.handling import Counters, Handled, MessageHandler, inside
from broker_bridge.health import StoreHealth
from broker_bridge.limits import AppLimiter
from broker_bridge.publishing import REPLY, Publisher
from broker_bridge.registry import Outcome, Registry
from broker_bridge.registry.freshness import KnownVersions
from broker_bridge.storage.base import Store
from mps_mqtt.props import echo_correlation
from mps_wire.errors import ErrorCode
from mps_wire.messages import Reply

log = logging.getLogger(__name__)

#: Topics, and Response Topics per app, whose checks are kept at most; beyond that all
#: are forgotten (and worked out again).
KEPT = 10_000

_BUSY = ("more requests than this app's share; retry after a second")


class AppRoute:
    """What one app's request topic says, worked out once: the app, its namespace, the
    audit actor, and which Response Topics lie in the namespace."""

    __slots__ = ("actor", "app_id", "namespace", "replies")

    def __init__(self, app_id: str, namespace: str) -> None:
        self.app_id = app_id
        self.namespace = namespace
        self.actor = "app:" + app_id
        self.replies: dict[str, bool] = {}

    def answers_to(self, reply_to: str) -> bool:
        """Whether a reply may go to ``reply_to`` (:func:`~broker_bridge.handling.inside`)."""
        found = self.replies.get(reply_to)
        if found is None:
            found = inside(reply_to, self.namespace)
            if len(self.replies) >= KEPT:
                self.replies.clear()
            self.replies[reply_to] = found
        return found


class QuickAnswers:
    """The network thread's part of the bridge: requests over an app's share refused, and
    queries answered from the read model (versions from ``known`` where the store has a
    shared connection to watch, else read on ``reader``)."""

    def __init__(self, handler: MessageHandler, registry: Registry, limiter: AppLimiter,
                 audits: AuditWriter, publisher: Publisher, counters: Counters,
                 health: StoreHealth) -> None:
        self.handler = handler
        self.registry = registry
        self.limiter = limiter
        self.audits = audits
        self.publisher = publisher
        self.counters = counters
        self.health = health
        self.reader: Store | None = None
        self.known: KnownVersions | None = None
        # Plain dicts: a lost race between threads only works a topic out again.
        self._routes: dict[str, AppRoute | None] = {}

    def route(self, topic: str) -> AppRoute | None:
        """The app route of ``topic``, None for a topic that is not an app's requests."""
        try:
            return self._routes[topic]
        except KeyError:
            pass
        route = self.handler.route(topic)
        found = AppRoute(route[1], route[2]) if route is not None and route[0] == "apps" \
            else None
        if len(self._routes) >= KEPT:
            self._routes.clear()
        self._routes[topic] = found
        return found

    def take(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> bool:
        """Refuse or answer ``msg`` here; False for a message the worker must take."""
        route = self.route(msg.topic)
        if route is None:
            return False
        if not self.limiter.allow(route.app_id):
            self._over_share(client, msg, route)
            return True
        if self.reader is None or self.health.down:
            return False
        try:
            return self._answer(client, msg, route)
        except Exception:
            log.exception("answering from the read model failed; handing it over")
            return False

    def _answer(self, client: mqtt.Client, msg: mqtt.MQTTMessage, route: AppRoute) -> bool:
        props = msg.properties
        reply_to = getattr(props, "ResponseTopic", None)
        if not isinstance(reply_to, str) or not reply_to or not route.answers_to(reply_to):
            return False  # the full path drops it, or refuses it and audits the refusal
        msisdn = self.handler.devices_number(bytes(msg.payload))
        if msisdn is None:
            return False
        known = self.known
        try:
            versions = (known.get(msisdn) if known is not None
                        else self.reader.read_versions(msisdn))  # type: ignore[union-attr]
        except StoreError:
            return False
        if versions is None:
            return False
        found = self.registry.kept_entry(route.actor, route.app_id, msisdn, versions)
        if found is None:
            return False
        encoded, entry = found
        # Taken for its audit entry first: a stopping bridge answers nothing it could
        # not audit (the worker does not take it either).
        if not self.audits.put(entry, msg):
            return False
        self.publisher.publish(client, reply_to, encoded, REPLY,
                               properties=echo_correlation(props))
        counters = self.counters
        with counters.lock:
            counters.handled += 1
        return True

    def _over_share(self, client: mqtt.Client, msg: mqtt.MQTTMessage,
                    route: AppRoute) -> None:
        """Answer ``busy`` (a few times a second, see :mod:`broker_bridge.limits`) and
        acknowledge at once."""
        reply_to: Any = getattr(msg.properties, "ResponseTopic", None)
        told = self.limiter.tell(route.app_id)
        if not (told and isinstance(reply_to, str) and reply_to
                and route.answers_to(reply_to)):
            reply_to = None
        item = Handled(msg, reply_to, Outcome(Reply.error(ErrorCode.BUSY, _BUSY)), done=True)
        self.counters.count(item)
        self.publisher.reply(client, item)
        if msg.qos:
            client.ack(msg.mid, msg.qos)

"""What the bridge does with one message: route its topic, check its Response Topic, hand
its payload to the registry, and count the outcome.

Handling stores but never commits or publishes: :mod:`broker_bridge.grouping` decides when a
group of handled messages commits, :mod:`broker_bridge.publishing` what goes out after it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from broker_bridge.device_messages import DEVICE_LEAVES, DeviceMessages
from broker_bridge.errors import StoreError
from broker_bridge.model import AuditEntry
from broker_bridge.registry import (
    INSTALLATIONS_SOURCE,
    PROFILES_SOURCE,
    Outcome,
    Registry,
    refusal,
)
from broker_bridge.registry.freshness import KnownVersions
from broker_bridge.registry.listing import devices_number, plain_devices_number
from broker_bridge.storage.base import Store
from mps_mqtt.props import response_topic
from mps_wire.codec import decode
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import INSTALLATIONS, PROFILES, Reply, Status
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

# Leaves of the registry's own topics: a Response Topic naming one would make the
# registry publish onto a topic it or its clients treat as something else.
_RESERVED_LEAVES = frozenset({"register", "state", "requests", "events", "consent",
                             "orders", *DEVICE_LEAVES})

Handler = Callable[[str, bytes], Outcome]
Route = tuple[str, str, str, Handler]

#: Topics (and ``devices`` payloads) whose parse the handler keeps, at most; beyond that
#: all are forgotten. An app's requests come on one topic, often with the same payload.
_KEPT_PARSES = 10_000


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """Counters since the bridge was created.

    ``handled`` requests got an ``ok`` or ``pending`` reply, ``failed`` ones any other reply
    or none (``dropped``: no usable Response Topic, or a topic the bridge does not serve);
    ``errors`` counts failures by code, ``forbidden-topic`` included.
    ``events_published`` counts app events handed to the broker (repeats included).
    """

    received: int = 0
    handled: int = 0
    failed: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    events_published: int = 0

    def error_count(self, code: ErrorCode) -> int:
        """How many requests failed with ``code``."""
        return self.errors.get(code.value, 0)


class Counters:
    """The bridge's counters, shared by the MQTT thread, the worker and the housekeeping."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = self.handled = self.failed = self.dropped = self.events = 0
        self.errors: Counter[str] = Counter()

    def snapshot(self) -> BridgeStats:
        """The counters as they are now."""
        with self.lock:
            return BridgeStats(self.received, self.handled, self.failed, self.dropped,
                               dict(self.errors), self.events)

    def count(self, item: Handled) -> None:
        """Count a handled message by its outcome."""
        outcome = item.outcome
        with self.lock:
            if outcome is None:
                self.failed += 1
                self.dropped += 1
                if item.error is not None:
                    self.errors[item.error.value] += 1
            elif outcome.reply.status in (Status.OK, Status.PENDING):
                self.handled += 1
            else:
                self.failed += 1
                self.errors[(outcome.reply.code or ErrorCode.INTERNAL).value] += 1


@dataclass(slots=True)
class Handled:
    """A message handled inside a group, waiting for the group's commit."""

    msg: mqtt.MQTTMessage
    reply_to: str | None = None
    outcome: Outcome | None = None  # None: dropped, nothing to publish
    error: ErrorCode | None = None  # why it was dropped, when it counts as an error
    done: bool = False  # counted, and its reply published
    #: The store failed while handling it: nothing is answered or acknowledged (see
    #: :mod:`broker_bridge.health`).
    store_error: StoreError | None = None


class MessageHandler:
    """Turns a message on one of ``topics`` into the registry's outcome."""

    def __init__(self, topics: Topics, registry: Registry) -> None:
        self.topics = topics
        self.registry = registry
        self._installations = topics.operator(INSTALLATIONS)
        self._device_messages = DeviceMessages(registry).handlers
        self._handle_installation: Callable[[str, Mapping[str, Any]], Outcome] = (
            lambda _source, msg: registry.handle_installation(msg))
        self._profiles = topics.operator(PROFILES)
        # Plain dicts: a lost race between threads only parses again.
        self._routes: dict[str, Route | None] = {}
        self._numbers: dict[bytes, str] = {}

    def route(self, topic: str) -> Route | None:
        """(kind, id, namespace, handler) of a topic the bridge serves, else None."""
        try:
            return self._routes[topic]
        except KeyError:
            pass
        found = self._route(topic)
        if len(self._routes) >= _KEPT_PARSES:
            self._routes.clear()
        self._routes[topic] = found
        return found

    def _route(self, topic: str) -> Route | None:
        if topic == self._installations:
            return ("operator", INSTALLATIONS, self.topics.operator_namespace(INSTALLATIONS),
                    self._installation)
        if topic == self._profiles:
            return ("operator", PROFILES, self.topics.operator_namespace(PROFILES),
                    self._profile_change)
        try:
            kind, ident, leaf = self.topics.parse(topic)
        except ValueError:
            return None
        if kind == "devices" and leaf == "register":
            return kind, ident, self.topics.device_namespace(ident), self._register
        if kind == "devices" and leaf in self._device_messages:
            return (kind, ident, self.topics.device_namespace(ident),
                    self._device_messages[leaf])
        if kind == "apps" and leaf == "requests":
            return kind, ident, self.topics.app_namespace(ident), self._app_request
        if kind == "users" and leaf == "requests":
            return kind, ident, self.topics.user_namespace(ident), self._user_request
        if kind == "operator" and leaf == "requests":
            return kind, ident, self.topics.operator_namespace(ident), self._operator_request
        return None

    def dispatch(self, topic: str, payload: bytes) -> Outcome | None:
        """The outcome of ``payload`` on ``topic``, None for a topic the bridge does not
        serve; exceptions of a handler propagate."""
        route = self.route(topic)
        if route is None:
            return None
        _kind, ident, _namespace, handler = route
        return handler(ident, payload)

    def quick(self, msg: mqtt.MQTTMessage, store: Store | None = None, *,
              route: Route | None = None, known: KnownVersions | None = None
              ) -> tuple[Handled, AuditEntry] | None:
        """An app's ``devices`` request answered from the registry's read model (its
        versions read from ``store``, default the registry's), with the audit entry still
        to be written; None for any other message (and on any doubt), which then takes
        the full path of :meth:`take`. ``route`` is the message's, if known already;
        ``known`` the versions kept for the network thread (then read instead of
        ``store``)."""
        route = route or self.route(msg.topic)
        if route is None or route[0] != "apps":
            return None
        reply_to = response_topic(msg.properties)
        if reply_to is None or not inside(reply_to, route[2]):
            return None
        msisdn = self.devices_number(bytes(msg.payload))
        if msisdn is None:
            return None
        try:
            found = self.registry.kept_answer(route[1], msisdn, store=store, known=known)
        except StoreError:
            return None
        if found is None:
            return None
        outcome, entry = found
        return Handled(msg, reply_to, outcome), entry

    def devices_number(self, payload: bytes) -> str | None:
        """The number of a ``devices`` request, decoded once per distinct payload."""
        number = plain_devices_number(payload) or self._numbers.get(payload)
        if number is not None:
            return number
        try:
            number = devices_number(decode(payload))
        except WireError:
            return None
        if number is not None:
            if len(self._numbers) >= _KEPT_PARSES:
                self._numbers.clear()
            self._numbers[payload] = number
        return number

    def take(self, msg: mqtt.MQTTMessage) -> Handled:
        """Handle one message (its changes stay uncommitted); what to publish for it."""
        item = Handled(msg)
        topic = msg.topic
        route = self.route(topic)
        if route is None:
            log.warning("message on unexpected topic %r: dropped", topic)
            return item
        kind, ident, namespace, handler = route

        reply_to = response_topic(msg.properties)
        if reply_to is None:
            if kind == "apps":
                log.warning("app request on %s without a Response Topic: dropped", topic)
                return item
            # Devices, user agents and operator systems may send without waiting for an
            # answer; the request is handled all the same.
            log.info("request on %s without a Response Topic: not answered", topic)
        elif not inside(reply_to, namespace):
            # Answering would let a requester reflect data onto someone else's topic.
            log.warning("request on %s names Response Topic %r outside %s: not processed",
                        topic, reply_to, namespace)
            item.error = ErrorCode.FORBIDDEN_TOPIC
            self._audit_forbidden(kind, ident, reply_to)
            return item

        item.reply_to = reply_to
        try:
            item.outcome = handler(ident, bytes(msg.payload))
        except StoreError as exc:
            item.store_error = exc
            return item
        except Exception:
            log.exception("internal error handling the request on %s", topic)
            item.outcome = Outcome(Reply.error(ErrorCode.INTERNAL,
                                               "the registry failed; try again later"))
        return item

    def _audit_forbidden(self, kind: str, ident: str, reply_to: str) -> None:
        actor = {"devices": "device", "apps": "app", "users": "user"}.get(kind, kind)
        audit: dict[str, Any] = {"subject": ident}
        if kind == "apps":
            audit["app_id"] = ident
        elif kind == "users":
            audit["contract_id"] = ident
        try:
            self.registry.refuse(
                f"{actor}:{ident}", "request",
                refusal(Status.ERROR, ErrorCode.FORBIDDEN_TOPIC,
                        "the Response Topic lies outside the requester's namespace"),
                detail={"response_topic": reply_to[:256]}, **audit)
        except StoreError as exc:
            log.warning("could not audit a forbidden Response Topic: %s", exc)

    # --- handlers: each returns the outcome; raising means an internal error -----------

    def _register(self, device_id: str, payload: bytes) -> Outcome:
        outcome = self.registry.handle_registration(device_id, payload)
        _log_refusal(f"registration of {device_id}", outcome.reply)
        return outcome

    def _installation(self, _source: str, payload: bytes) -> Outcome:
        return self._decoded(INSTALLATIONS, payload, self._handle_installation,
                             f"operator:{INSTALLATIONS_SOURCE}", "installation result",
                             action="installation")

    def _profile_change(self, _source: str, payload: bytes) -> Outcome:
        return self._decoded(PROFILES, payload,
                             lambda _s, msg: self.registry.handle_profile_change(msg),
                             f"operator:{PROFILES_SOURCE}", "profile change",
                             action="profile")

    def _app_request(self, app_id: str, payload: bytes) -> Outcome:
        return self._decoded(app_id, payload, self.registry.handle_app, f"app:{app_id}",
                             f"request of app {app_id}", app_id=app_id)

    def _user_request(self, contract_id: str, payload: bytes) -> Outcome:
        return self._decoded(contract_id, payload, self.registry.handle_user,
                             f"user:{contract_id}", f"request for contract {contract_id}",
                             contract_id=contract_id)

    def _operator_request(self, source: str, payload: bytes) -> Outcome:
        return self._decoded(source, payload, self.registry.handle_operator,
                             f"operator:{source}", f"operator request of {source}")

    def _decoded(self, ident: str, payload: bytes,
                 handle: Callable[[str, Mapping[str, Any]], Outcome], actor: str, what: str,
                 *, action: str = "request", **audit: Any) -> Outcome:
        """Decode ``payload`` and hand it to ``handle``; ``actor`` sent it, ``audit`` are
        the audit fields of a refusal."""
        try:
            msg = decode(payload)
        except WireError as exc:
            return self._undecodable(actor, action, ident, exc, payload, **audit)
        outcome = handle(ident, msg)
        _log_refusal(what, outcome.reply)
        return outcome

    def _undecodable(self, actor: str, action: str, subject: str, exc: WireError,
                     payload: bytes, **audit: Any) -> Outcome:
        """Refuse a payload that could not be decoded, and record who sent it."""
        log.info("%s %s refused (%s): %s", actor, action, exc.code, exc.message)
        return self.registry.refuse(actor, action, refusal(Status.ERROR, exc.code, exc.message),
                                    subject=subject, detail={"bytes": len(payload)}, **audit)


def inside(topic: str, namespace: str) -> bool:
    """True when ``topic`` is a publishable topic below ``namespace`` (which ends in /),
    and not one of the registry's own topics there."""
    return (len(topic) > len(namespace) and topic.startswith(namespace)
            and "+" not in topic and "#" not in topic and "\0" not in topic
            and topic[len(namespace):] not in _RESERVED_LEAVES)


def _log_refusal(what: str, reply: Reply) -> None:
    if reply.status not in (Status.OK, Status.PENDING):
        log.info("%s answered %s (%s): %s", what, reply.status, reply.code, reply.message)

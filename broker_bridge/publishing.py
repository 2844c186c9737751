"""What the bridge publishes: replies, app events and the users' consent topics, and the
bookkeeping of which of them the broker confirmed.

Events and consent snapshots are marked published in the store only once the broker
confirmed them (PUBACK); whatever stays unconfirmed is published again by the
housekeeping, so apps drop duplicates by sequence number.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker_bridge.handling import Counters, Handled
from broker_bridge.registry import Effects, Registry
from broker_bridge.storage.base import Store
from mps_mqtt.props import echo_correlation
from mps_wire.codec import encode
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

QOS = 1

# ("event", app id, seq) / ("consent", contract id, revision) / ("reply", "", 0)
Key = tuple[str, str, int]
REPLY: Key = ("reply", "", 0)


class Publisher:
    """Publishes onto ``topics`` with QoS 1 and notes what the broker confirmed."""

    def __init__(self, topics: Topics, registry: Registry, counters: Counters) -> None:
        self.topics = topics
        self.registry = registry
        self._counters = counters
        # Publications awaiting the broker's PUBACK: mid -> what to mark published.
        self._lock = threading.Lock()
        self._inflight: dict[int, Key] = {}
        self._early: set[int] = set()  # PUBACKs that overtook publish() returning the mid
        self._acked: list[Key] = []

    def publish(self, client: mqtt.Client, topic: str, payload: bytes, key: Key, *,
                retain: bool = False, properties: Properties | None = None) -> None:
        """Publish ``payload``; ``key`` names what to mark published once confirmed."""
        info = client.publish(topic, payload, qos=QOS, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # QoS 1: paho keeps the message queued and sends it after reconnecting.
            log.warning("publication to %s queued: %s", topic, mqtt.error_string(info.rc))
        # paho calls on_publish holding its own lock, so publish() is never called with
        # ours held; a PUBACK that overtakes this bookkeeping is parked in _early.
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                if key is not REPLY:
                    self._acked.append(key)
            else:
                self._inflight[info.mid] = key

    def on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode,
                   _p: Properties | None) -> None:
        """paho's callback for a confirmed publication."""
        with self._lock:
            key = self._inflight.pop(mid, None)
            if key is None:
                self._early.add(mid)
            elif key is not REPLY and not reason.is_failure:
                self._acked.append(key)

    def reply(self, client: mqtt.Client, item: Handled) -> None:
        """Publish the reply of a handled message on its Response Topic."""
        if item.outcome is not None and item.reply_to is not None:
            self.publish(client, item.reply_to, item.outcome.payload(), REPLY,
                         properties=echo_correlation(item.msg.properties))

    def effects(self, client: mqtt.Client, effects: Effects) -> None:
        """Publish the events of a committed operation and the consent topics it changed."""
        for event in effects.events:
            self.publish(client, self.topics.app_events(event.app_id),
                         encode(event.payload), ("event", event.app_id, event.seq))
        with self._counters.lock:
            self._counters.events += len(effects.events)
        for contract_id in sorted(effects.consent):
            self.consent(client, contract_id)

    def consent(self, client: mqtt.Client, contract_id: str) -> None:
        """Publish the contract's open consent prompts."""
        revision, snapshot = self.registry.consent_snapshot(contract_id)
        # Retained: a user agent that connects later still sees the open prompts.
        self.publish(client, self.topics.user_consent(contract_id), encode(snapshot),
                     ("consent", contract_id, revision), retain=True)

    def pending(self) -> set[Key]:
        """What is published but not yet confirmed."""
        with self._lock:
            return set(self._inflight.values())

    def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the broker to confirm what is in flight."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    return
            time.sleep(0.01)

    def flush_acks(self, store: Store) -> None:
        """Note in ``store`` what the broker confirmed since the last call."""
        with self._lock:
            acked, self._acked = self._acked, []
        events = [(app_id, seq) for kind, app_id, seq in acked if kind == "event"]
        if events:
            store.mark_published(events)
        for kind, contract_id, revision in acked:
            if kind == "consent":
                store.mark_consent_published(contract_id, revision)

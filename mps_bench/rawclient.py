"""An MQTT v5 client for the attack suite: it records the reason code of every SUBACK
and PUBACK and everything it receives, so a refusal is seen, not guessed."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mps_mqtt.client import BrokerURL, connect, disconnect, new_client, new_properties
from mps_mqtt.props import set_nodelay
from mps_wire import codec


class RawClient:
    """An MQTT v5 client that records reason codes and everything it receives."""

    def __init__(self, url: BrokerURL) -> None:
        self.client = new_client()
        self.inbox: queue.Queue[tuple[str, bytes, bytes | None]] = queue.Queue()
        self._codes: dict[int, int] = {}
        self._events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        connect(self.client, url)
        # Without it a request waits for the peer's delayed ACK (40 ms) now and then.
        set_nodelay(self.client)

    def _event(self, mid: int) -> threading.Event:
        with self._lock:
            return self._events.setdefault(mid, threading.Event())

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        self.inbox.put((msg.topic, bytes(msg.payload), bytes(corr) if corr else None))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode],
                      _p: Properties | None) -> None:
        self._codes[mid] = codes[0].value
        self._event(mid).set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, code: ReasonCode,
                    _p: Properties | None) -> None:
        self._codes[mid] = code.value
        self._event(mid).set()

    def subscribe(self, topic: str, timeout: float = 5.0) -> int:
        _rc, mid = self.client.subscribe(topic, qos=1)
        if mid is None or not self._event(mid).wait(timeout):
            raise TimeoutError(f"no SUBACK for {topic}")
        return self._codes[mid]

    def publish(self, topic: str, payload: bytes, *, response_topic: str | None = None,
                correlation: bytes | None = None, timeout: float = 5.0) -> int:
        props = new_properties()
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, properties=props)
        if not self._event(info.mid).wait(timeout):
            raise TimeoutError(f"no PUBACK for {topic}")
        return self._codes[info.mid]

    def request(self, topic: str, payload: bytes, response_topic: str,
                timeout: float = 5.0) -> dict[str, Any] | None:
        """Send a request and return the decoded reply, None if none came in time."""
        corr = os.urandom(8)
        if self.publish(topic, payload, response_topic=response_topic,
                        correlation=corr) >= 0x80:
            return None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                _topic, body, got = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if got == corr:
                return codec.decode(body, max_size=1 << 20)
        return None

    def drain(self, wait: float) -> list[tuple[str, bytes]]:
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, body, _corr = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            got.append((topic, body))
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):
            disconnect(self.client)

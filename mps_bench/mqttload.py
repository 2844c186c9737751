"""The load generator: MQTT v5 requests with a bounded number in flight, each reply timed.

Requests are prepared before the clock starts (payload, topic, and the PUBLISH properties
packed once), so the generator spends as little as possible per request and the same
for every target it is pointed at.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from mps_bench.errors import BenchError
from mps_bench.stats import Summary
from mps_mqtt.client import BrokerURL, MqttError, connect, disconnect, new_client, subscribe
from mps_mqtt.props import PackedProperties, set_nodelay

_RESPONSE_TOPIC = 0x08
_CORRELATION_DATA = 0x09


class LoadError(BenchError):
    """The load could not be run: no broker, or replies missing after the time limit."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request to send: where, what, and where its reply is expected."""

    topic: str
    payload: bytes
    reply_to: str


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def request_properties(reply_to: str, correlation: bytes) -> PackedProperties:
    """PUBLISH properties naming ``reply_to`` and carrying ``correlation``, packed."""
    topic = reply_to.encode()
    body = (struct.pack("!BH", _RESPONSE_TOPIC, len(topic)) + topic
            + struct.pack("!BH", _CORRELATION_DATA, len(correlation)) + correlation)
    return PackedProperties(_varint(len(body)) + body)


@dataclass
class Run:
    """What one pass of load produced."""

    latencies: list[float]
    elapsed: float
    lost: int
    replies: list[bytes]

    def summary(self) -> Summary:
        return Summary.of(self.latencies, self.elapsed)


class LoadClient:
    """One MQTT v5 client that sends requests and matches replies by Correlation Data.

    ``reply_filters`` are the topics replies come back on (subscribed on :meth:`start`).
    """

    def __init__(self, broker: BrokerURL, reply_filters: Sequence[str], *,
                 keep_replies: bool = False) -> None:
        self.broker = broker
        self.reply_filters = list(reply_filters)
        self.keep_replies = keep_replies
        self._client: mqtt.Client | None = None
        self._cond = threading.Condition()
        self._sent: dict[bytes, float] = {}
        self._latencies: list[float] = []
        self._replies: list[bytes] = []
        self._run_id = 0

    def __enter__(self) -> LoadClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        client = new_client()
        client.on_message = self._on_message
        connect(client, self.broker, timeout=timeout)
        set_nodelay(client)
        try:
            subscribe(client, self.reply_filters, timeout=timeout)
        except MqttError as exc:
            disconnect(client)
            raise LoadError(str(exc)) from exc
        self._client = client

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            disconnect(client)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        with self._cond:
            sent = self._sent.pop(bytes(corr), None) if corr is not None else None
            if sent is None:
                return  # a late reply of an earlier run, or not ours
            self._latencies.append(now - sent)
            if self.keep_replies:
                self._replies.append(bytes(msg.payload))
            self._cond.notify_all()

    def run(self, requests: Sequence[Request], *, in_flight: int = 1,
            timeout: float = 60.0) -> Run:
        """Send ``requests`` keeping at most ``in_flight`` unanswered; time every reply.

        Returns when every reply arrived or ``timeout`` seconds passed (the rest count as
        lost).
        """
        client = self._client
        if client is None:
            raise LoadError("the load client is not started")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._run_id += 1
        tag = struct.pack("!I", self._run_id)
        prepared = [(r.topic, r.payload, request_properties(r.reply_to, tag + struct.pack(
            "!I", i)), tag + struct.pack("!I", i)) for i, r in enumerate(requests)]
        with self._cond:
            self._sent.clear()
            self._latencies = []
            self._replies = []
        deadline = time.monotonic() + timeout
        cond = self._cond
        sent = self._sent
        started = time.perf_counter()
        for topic, payload, props, corr in prepared:
            with cond:
                while len(sent) >= in_flight:
                    if not cond.wait(max(0.0, deadline - time.monotonic())) \
                            and time.monotonic() >= deadline:
                        break
                if time.monotonic() >= deadline:
                    break
                sent[corr] = time.perf_counter()
            client.publish(topic, payload, qos=1, properties=props)
        with cond:
            while sent and time.monotonic() < deadline:
                cond.wait(max(0.0, deadline - time.monotonic()))
            elapsed = time.perf_counter() - started
            lost = len(prepared) - len(self._latencies)
            sent.clear()
            return Run(latencies=list(self._latencies), elapsed=elapsed, lost=lost,
                       replies=list(self._replies))

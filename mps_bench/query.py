"""Pairing queries through the bridge against the bare MQTT v5 echo, interleaved.

The request is a partner app's ``devices`` request for a random phone number of the
registry (the app has standing consent): the full path of an app request through the
bridge (decode, admission, number routing, the contract's devices, the audit entry, the
reply), answered from a registry of the benchmark's size.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker_bridge.registry import Registry
from broker_bridge.storage.base import Store
from mps_bench import dataset
from mps_bench.mqttload import LoadClient, Request, Run
from mps_bench.stats import Summary, ratio
from mps_wire import codec
from mps_wire.messages import DevicesRequest
from mps_wire.topics import Topics

TARGETS = ("echo", "bridge")


def devices_requests(topics: Topics, data: dataset.Dataset, count: int, rng: random.Random
                     ) -> list[Request]:
    """``count`` devices requests of the partner app for random numbers of ``data``."""
    topic = topics.app_requests(dataset.APP_ID)
    reply_to = topics.app_replies(dataset.APP_ID)
    return [Request(topic, codec.encode(DevicesRequest(dataset.msisdn(
        rng.randrange(data.contracts))).to_wire()), reply_to) for _ in range(count)]


@dataclass
class Comparison:
    """Latencies of both targets in one mode (sequential or pipelined), over all rounds."""

    mode: str
    in_flight: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    elapsed: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TARGETS, 0.0))
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TARGETS, 0))
    errors: int = 0

    def add(self, target: str, run: Run) -> None:
        self.latencies[target] += run.latencies
        self.elapsed[target] += run.elapsed
        self.lost[target] += run.lost

    def summary(self, target: str) -> Summary:
        return Summary.of(self.latencies[target], self.elapsed[target])

    def to_json(self) -> dict[str, Any]:
        echo, bridge = self.summary("echo"), self.summary("bridge")
        return {
            "in_flight": self.in_flight,
            "echo": echo.to_json(), "bridge": bridge.to_json(),
            "p50_ratio": ratio(bridge.p50, echo.p50),
            "p99_ratio": ratio(bridge.p99, echo.p99),
            "throughput_ratio": ratio(bridge.per_s, echo.per_s),
            "lost": dict(self.lost), "errors": self.errors,
        }


def check_replies(replies: Sequence[bytes]) -> int:
    """How many bridge replies were not ``ok`` with a device list (a benchmark of error
    replies would measure the wrong thing)."""
    bad = 0
    for payload in replies:
        msg = codec.decode(payload)
        if msg.get("status") != "ok" or not msg.get("devices"):
            bad += 1
    return bad


def compare(client: LoadClient, requests: Callable[[str, int], list[Request]], *,
            mode: str, in_flight: int, per_round: int, rounds: int, timeout: float
            ) -> Comparison:
    """``rounds`` rounds of ``per_round`` requests to each target, alternating which goes
    first, so that what disturbs the machine disturbs both alike."""
    result = Comparison(mode=mode, in_flight=in_flight)
    for r in range(rounds):
        order = TARGETS if r % 2 == 0 else TARGETS[::-1]
        for target in order:
            client.keep_replies = target == "bridge"
            run = client.run(requests(target, per_round), in_flight=in_flight,
                             timeout=timeout)
            result.add(target, run)
            if target == "bridge":
                result.errors += check_replies(run.replies)
    client.keep_replies = False
    return result


def warm_up(client: LoadClient, requests: Callable[[str, int], list[Request]], count: int,
            timeout: float) -> None:
    """Fill caches and connections on both sides before anything is timed."""
    for target in TARGETS:
        client.run(requests(target, count), in_flight=8, timeout=timeout)


def registry_alone(store: Store, data: dataset.Dataset, count: int, rng: random.Random
                   ) -> float:
    """Seconds per ``devices`` request answered by :class:`Registry` alone, in this
    process (no MQTT): what the bridge's own work costs, audit commit included."""
    registry = Registry(store)
    messages = [DevicesRequest(dataset.msisdn(rng.randrange(data.contracts))).to_wire()
                for _ in range(count)]
    registry.handle_app(dataset.APP_ID, messages[0])  # the pseudonym secret, once
    started = time.perf_counter()
    for msg in messages:
        outcome = registry.handle_app(dataset.APP_ID, msg)
        if not outcome.reply.is_ok:
            raise RuntimeError(f"devices request refused: {outcome.reply.message}")
    return (time.perf_counter() - started) / count

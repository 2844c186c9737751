"""A broker killed under load, with the project's own clients: device agents
(:class:`~agent.publisher.Publisher`, signed registrations) and apps
(:class:`~mps_sdk.client.PairingClient`, ``devices`` requests), each in its own thread
and connection, while Mosquitto (persistence on) is killed with SIGKILL and started
again.

The run is made twice on fresh brokers and registries: with the clients' retry (the
default: the same request again until answered) and without it. The first counts as the
fault run (sent, answered, lost, duplicated; ``resent`` is what went out again, and the
notes say how many requests only the retry saved); the second only goes into the notes,
as what the same clients would lose without their retry.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.publisher import Publisher
from agent.signing import DeviceSigner
from mps_bench.faults import (
    LOAD_MSISDN,
    WATCHER,
    FaultResult,
    _bridge,
    device_key,
    load_device,
    prepare_registry,
    tally,
)
from mps_mqtt.client import DEFAULT_RETRY, MqttError, Retry
from mps_sdk.client import PairingClient
from mps_sdk.errors import PairingError
from mps_testbed.stack.mosquitto import Mosquitto
from mps_testbed.stack.procs import ProcessGroup
from mps_wire.topics import Topics

DEVICES = 100
APPS = 4
REQUESTS_PER_APP = 50
TIMEOUT = 20.0


@dataclass
class _Counts:
    sent: int = 0
    answered: int = 0
    saved: int = 0
    resent: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def one(self, answered: bool, resent: int, problem: str = "") -> None:
        with self.lock:
            self.sent += 1
            self.answered += answered
            self.resent += resent
            self.saved += answered and resent > 0
            if problem and len(self.failures) < 3:
                self.failures.append(problem)


def _device(broker: str, topics: Topics, n: int, retry: Retry | None, counts: _Counts,
            go: threading.Event) -> None:
    info = load_device(n)
    go.wait(30)
    try:
        with Publisher(broker, info.device_id, prefix=topics.prefix, retry=retry,
                       signer=DeviceSigner(device_key(n))) as device:
            try:
                reply = device.register(info, timeout=TIMEOUT)
                ok, problem = reply.is_ok, "" if reply.is_ok else str(reply.code)
            except MqttError as exc:
                ok, problem = False, str(exc)
            counts.one(ok, device.resent, problem)
    except MqttError as exc:
        counts.one(False, 0, str(exc))


def _app(broker: str, topics: Topics, retry: Retry | None, counts: _Counts,
         go: threading.Event) -> None:
    go.wait(30)
    with PairingClient(broker, WATCHER, topics=topics, timeout=TIMEOUT, retry=retry) as app:
        for _ in range(REQUESTS_PER_APP):
            before = app.resent
            try:
                app.devices(LOAD_MSISDN)
                counts.one(True, app.resent - before)
            except PairingError as exc:
                counts.one(False, app.resent - before, str(exc))


def _run(workdir: Path, retry: Retry | None) -> tuple[_Counts, int, int, list[str]]:
    """One pass; (counts, devices stored, duplicated, notes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "registry.db"
    prepare_registry(db, DEVICES)
    topics = Topics("faults/mps/v1")
    counts = _Counts()
    notes: list[str] = []
    broker = Mosquitto(workdir=workdir / "broker", persistence=True)
    with broker, ProcessGroup(workdir / "logs") as procs:
        _bridge(procs, "bridge", db, broker.url, topics)
        go = threading.Event()
        work: list[Callable[[], None]] = [
            functools.partial(_device, broker.url, topics, n, retry, counts, go)
            for n in range(DEVICES)]
        work += [functools.partial(_app, broker.url, topics, retry, counts, go)
                 for _ in range(APPS)]
        threads = [threading.Thread(target=w, daemon=True) for w in work]
        for thread in threads:
            thread.start()
        go.set()
        total = DEVICES + APPS * REQUESTS_PER_APP
        deadline = time.monotonic() + 30
        while counts.sent < total * 0.3 and time.monotonic() < deadline:
            time.sleep(0.01)
        notes.append(f"SIGKILL after {counts.sent} of {total} requests")
        broker.stop(kill=True)
        time.sleep(0.5)
        broker.start()
        for thread in threads:
            thread.join(TIMEOUT + 30)
        procs.stop_all()
    counted = tally(db, DEVICES)
    return counts, counted.stored, counted.duplicated, notes


def clients_broker_killed(workdir: Path, _count: int = 0) -> FaultResult:
    """See the module documentation."""
    started = time.monotonic()
    counts, stored, duplicated, notes = _run(workdir / "retry", DEFAULT_RETRY)
    lost = counts.sent - counts.answered + (DEVICES - stored)
    notes.append(f"{counts.saved} requests answered only thanks to the retry")
    notes += counts.failures
    plain, plain_stored, _dup, _notes = _run(workdir / "no-retry", None)
    notes.append(f"without retry: {plain.sent - plain.answered} of {plain.sent} "
                 f"unanswered, {DEVICES - plain_stored} devices not stored")
    return FaultResult("clients-broker-killed", sent=counts.sent, stored=counts.answered,
                       lost=max(lost, 0), duplicated=duplicated, resent=counts.resent,
                       seconds=time.monotonic() - started, notes=notes)


FAULTS: dict[str, Callable[[Path, int], FaultResult]] = {
    "clients-broker-killed": clients_broker_killed,
}

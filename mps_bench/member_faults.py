"""A registry member that stops under load: two ``mps-bridge serve`` processes in one
shared-subscription group on one database, N signed registrations, and SIGTERM to one
member when 30% were answered. The member leaves the group (UNSUBSCRIBE, MQTT v5 section
3.10.4), finishes and acknowledges what it holds, and exits; the broker gives the other
member everything after. Nothing may be lost or stored twice, and nothing waits for the
stopped member's return (it does not come back).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from mps_bench.faults import (
    DEFAULT_REGISTRATIONS,
    FaultLoad,
    FaultResult,
    load_result,
    prepare_registry,
)
from mps_mqtt.client import BrokerURL
from mps_testbed.stack.mosquitto import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, Service, console_script
from mps_wire.topics import Topics

#: Seconds a stopped member may take to finish what it holds and exit.
STOP_SECONDS = 30.0


def _member(procs: ProcessGroup, name: str, db: Path, broker: str, topics: Topics
            ) -> Service:
    service = procs.start(name, [*console_script("mps-bridge"), "serve", "--db", str(db),
                                 "--broker", broker, "--prefix", topics.prefix,
                                 "--client-id", f"mps-fault-{name}"])
    service.wait_for_line("serving", 30)
    return service


def member_stopped(workdir: Path, count: int = DEFAULT_REGISTRATIONS, *,
                   timeout: float = 300.0) -> FaultResult:
    """SIGTERM to one of two members at 30% of the answers; it is not started again."""
    started = time.monotonic()
    db = workdir / "registry.db"
    prepare_registry(db, count)
    topics = Topics("faults/mps/v1")
    notes: list[str] = []
    with Mosquitto(workdir=workdir / "broker") as broker, \
            ProcessGroup(workdir / "logs") as procs:
        one = _member(procs, "member-one", db, broker.url, topics)
        _member(procs, "member-two", db, broker.url, topics)
        state = {"stopped": False}

        def fault(load: FaultLoad) -> None:
            if state["stopped"] or len(load.answered) < count * 0.3:
                return
            state["stopped"] = True
            at = time.monotonic()
            one.proc.send_signal(signal.SIGTERM)
            try:
                code = one.proc.wait(STOP_SECONDS)
                notes.append(f"stopped member one after {len(load.answered)} answers; it "
                             f"exited ({code}) in {time.monotonic() - at:.1f} s")
            except subprocess.TimeoutExpired:
                notes.append(f"member one did not exit within {STOP_SECONDS:g} s")

        with FaultLoad(BrokerURL.parse(broker.url), topics, count) as load:
            load.run(started + timeout, during=fault)
            answered = len(load.answered)
        notes.append(f"{answered} of {count} answered")
        procs.stop_all()
    return load_result("member-stopped", db, count, resent=load.resent, started=started,
                       notes=notes)


FAULTS = {"member-stopped": member_stopped}

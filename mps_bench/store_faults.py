"""The registry's store cannot grow under load, as on a full disk: ``mps-bridge serve``
runs with a file size limit (RLIMIT_FSIZE, 1 MiB: every write past it fails with EFBIG,
as one past a full disk fails with ENOSPC) while N signed registrations arrive; once the
bridge reports the store failed, the limit is lifted (``prlimit``), as when space is
freed. Messages that arrived meanwhile must be held unacknowledged and handled after the
recovery: nothing lost, nothing stored twice, and the condition logged once, not a
traceback per message.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from mps_bench.faults import (
    DEFAULT_REGISTRATIONS,
    FaultLoad,
    FaultResult,
    prepare_registry,
    tally,
)
from mps_mqtt.client import BrokerURL
from mps_testbed.stack.mosquitto import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire.topics import Topics

#: Bytes any file of the bridge may reach while the store is "full".
FULL_AT = 1 << 20
#: Seconds the store stays full once the bridge noticed.
FULL_FOR = 3.0
FAILED = "the store failed"


def store_full(workdir: Path, count: int = DEFAULT_REGISTRATIONS, *,
               timeout: float = 300.0, full_at: int = FULL_AT) -> FaultResult:
    """See the module documentation; ``full_at`` is the limit in bytes."""
    started = time.monotonic()
    db = workdir / "registry.db"
    prepare_registry(db, count)
    topics = Topics("faults/mps/v1")
    notes: list[str] = []
    with Mosquitto(workdir=workdir / "broker") as broker, \
            ProcessGroup(workdir / "logs") as procs:
        # prlimit sets the (soft) limit and execs the bridge (CPython ignores SIGXFSZ, so a write
        # past the limit fails with EFBIG instead of killing the process).
        bridge = procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db",
                                        str(db), "--broker", broker.url, "--prefix",
                                        topics.prefix, "--client-id", "mps-fault-bridge"],
                             prefix=["prlimit", f"--fsize={full_at}:unlimited", "--"])
        bridge.wait_for_line("serving", 30)
        state: dict[str, float] = {}

        def fault(load: FaultLoad) -> None:
            if "freed" in state:
                return
            if "full" not in state:
                if FAILED in bridge.log_path.read_text(errors="replace"):
                    state["full"] = time.monotonic()
                    notes.append(f"the store filled after {len(load.answered)} answers")
                return
            if time.monotonic() - state["full"] >= FULL_FOR:
                state["freed"] = time.monotonic()
                resource.prlimit(bridge.proc.pid, resource.RLIMIT_FSIZE,
                                 (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                notes.append(f"space freed after {FULL_FOR:g} s, {len(load.answered)} "
                             "answers")

        with FaultLoad(BrokerURL.parse(broker.url), topics, count) as load:
            load.run(started + timeout, during=fault)
            answered = len(load.answered)
        notes.append(f"{answered} of {count} answered")
        procs.stop_all()
        logged = bridge.log_path.read_text(errors="replace")
    if "full" not in state:
        notes.append("the store never filled: the fault did not happen")
    notes.append(f"{logged.count(FAILED)} failure line(s), {logged.count('Traceback')} "
                 "traceback(s) in the bridge's log")
    counted = tally(db, count)
    lost = count - counted.stored if "full" in state else count
    return FaultResult("store-full", sent=count, stored=counted.stored, lost=lost,
                       duplicated=counted.duplicated, resent=load.resent,
                       seconds=time.monotonic() - started, notes=notes)


FAULTS = {"store-full": store_full}

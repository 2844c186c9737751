"""The wall time of ``mps-lpa`` as a user sees it, process start to exit, through the real
pcscd + vpcd: ``chip info`` and a whole ``profile download`` (its SM-DP+ on loopback).

Each command runs ``runs`` times after one warm-up run (which also leaves the bytecode
cache written, as on a device after its first start); the medians are reported with the
baseline of the same run, the interpreter alone (``python -c pass``), which bounds every
Python command line from below.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mps_bench import dataset
from mps_bench.stats import median
from mps_testbed.stack.procs import ProcessGroup, console_script, run

FIRST_ICCID = 1_950_000  # bench subscription numbers nobody else uses


@dataclass
class LpaWalls:
    """Medians of the wall times (ms) of each command, and why one is missing."""

    chip_info_ms: list[float] = field(default_factory=list)
    download_ms: list[float] = field(default_factory=list)
    python_ms: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    """The 1-minute load average before and after: other work on the machine inflates
    every wall time here."""
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        def med(values: list[float]) -> float | None:
            return round(median(values), 1) if values else None

        return {"chip_info_wall_ms": med(self.chip_info_ms),
                "download_wall_ms": med(self.download_ms),
                "python_start_wall_ms": med(self.python_ms), "runs": len(self.chip_info_ms),
                "load": [round(x, 2) for x in self.load],
                **({"why": self.why} if self.why else {})}


def _timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall ms of one run; raises RuntimeError with its last error line if it fails."""
    started = time.perf_counter()
    proc = run(argv, env=env, timeout=60)
    wall = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exited with {proc.returncode}"]
        raise RuntimeError(f"{' '.join(argv[-3:])}: {lines[-1]}")
    return wall, proc.stdout


def measure(workdir: Path, runs: int, say: Callable[[str], None]) -> LpaWalls:
    """``runs`` timed runs of each command against one card behind pcscd + vpcd."""
    from lpa_emulator.euicc import CardState
    from mps_testbed.smdp import start_smdp
    from mps_testbed.stack.pcsc import VPCD_PORTS, PcscSandbox

    found = LpaWalls()
    ok, why = PcscSandbox.available()
    if not ok:
        found.why = f"PC/SC cannot run here: {why}"
        return found
    # The bytecode cache is written and used, as on a device.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["MPS_LOG_LEVEL"] = "warning"
    card = workdir / "card.json"
    workdir.mkdir(parents=True, exist_ok=True)
    CardState.new(profiles=[]).save(card)
    with ProcessGroup(workdir / "logs") as procs, PcscSandbox() as sandbox:
        smdp = start_smdp(workdir, procs, env=env)
        procs.start("euicc", [*console_script("mps-emu"), "euicc", "--state", str(card),
                              "--vpcd", f"127.0.0.1:{VPCD_PORTS[0]}"],
                    prefix=sandbox.nsenter_prefix(), env=env)
        sandbox.wait_card(0, timeout=30)
        lpa_env = sandbox.env(env)
        lpa = [*console_script("mps-lpa"), "--apdu", "pcsc", "--reader",
               re.escape(sandbox.reader_name(0))]
        found.load.append(os.getloadavg()[0])
        try:
            say(f"mps-lpa wall time: {runs} x chip info, {runs} x download, through pcscd")
            for i in range(runs + 1):
                wall, _ = _timed([sys.executable, "-c", "pass"], lpa_env)
                found.python_ms += [wall] if i else []
                wall, _ = _timed([*lpa, "chip", "info"], lpa_env)
                found.chip_info_ms += [wall] if i else []
                code = smdp.order(dataset.iccid(FIRST_ICCID + i), dataset.imsi(FIRST_ICCID + i))
                wall, _ = _timed([*lpa, "profile", "download", "-a", code,
                                  "--ca", str(smdp.ca_file)], lpa_env)
                found.download_ms += [wall] if i else []
        except RuntimeError as exc:
            found.why = str(exc)
        finally:
            found.load.append(os.getloadavg()[0])
            smdp.close()
    return found

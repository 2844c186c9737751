"""One profile download (SGP.22 over ES9+ HTTPS), timed and its APDUs counted, over each
card link: the eUICC in the LPA's process (``emu``), behind pcscd + vpcd (``pcsc``) and
behind an emulated modem's AT+CSIM/CGLA (``at``).

Each download is ``mps-lpa profile download --json`` against a local SM-DP+ with a fresh
empty card and an order of its own; the time is the LPA's own measure of the download
(challenge to installation result and notification), without the process's start-up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mps_bench import dataset
from mps_bench.stats import median
from mps_testbed.stack.procs import ProcessGroup, console_script, run

KINDS = ("emu", "pcsc", "at")
FIRST_ICCID = 1_900_000  # bench subscription numbers nobody else uses


@dataclass
class Downloads:
    """The downloads over one card link."""

    kind: str
    ms: list[float] = field(default_factory=list)
    apdus: list[int] = field(default_factory=list)
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"n": len(self.ms), "median_ms": round(median(self.ms), 1) if self.ms else None,
                "apdus": self.apdus[0] if self.apdus else None,
                **({"why": self.why} if self.why else {})}


class _Card:
    """A fresh empty eUICC state file and the ``mps-lpa`` options that reach it."""

    def __init__(self, kind: str, path: Path, procs: ProcessGroup,
                 env: dict[str, str]) -> None:
        from lpa_emulator.euicc import CardState

        self.kind = kind
        state = CardState.new(profiles=[])
        path.parent.mkdir(parents=True, exist_ok=True)
        state.save(path)
        self.eid = state.eid
        self.path = path
        self.procs = procs
        self.env = env
        self.sandbox: Any = None

    def options(self) -> list[str]:
        """Start what the link needs; return mps-lpa's options for it."""
        if self.kind == "emu":
            return ["--apdu", "emu", "--state", str(self.path)]
        if self.kind == "at":
            link = self.path.with_suffix(".tty")
            svc = self.procs.start(f"modem-{self.path.stem}", [
                *console_script("mps-emu"), "modem", "--link", str(link),
                "--state", str(self.path.with_suffix(".modem.json")),
                "--card-state", str(self.path)], env=self.env)
            svc.wait_for_path(link, 30)
            return ["--apdu", "at", "--device", str(link)]
        from mps_testbed.stack.pcsc import VPCD_PORTS, PcscSandbox

        self.sandbox = PcscSandbox()
        self.sandbox.start()
        self.procs.start(f"euicc-{self.path.stem}", [
            *console_script("mps-emu"), "euicc", "--state", str(self.path),
            "--vpcd", f"127.0.0.1:{VPCD_PORTS[0]}"], prefix=self.sandbox.nsenter_prefix(),
            env=self.env)
        self.sandbox.wait_card(0, timeout=30)
        self.env = self.sandbox.env(self.env)
        return ["--apdu", "pcsc", "--reader", re.escape(self.sandbox.reader_name(0))]

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()


def measure(workdir: Path, repeats: int, say: Callable[[str], None]) -> dict[str, Downloads]:
    """``repeats`` downloads over each card link (each with a fresh card)."""
    from mps_testbed.smdp import start_smdp
    from mps_testbed.stack.pcsc import PcscSandbox

    found = {kind: Downloads(kind) for kind in KINDS}
    env = {**os.environ, "MPS_LOG_LEVEL": "warning"}
    with ProcessGroup(workdir / "logs") as procs:
        smdp = start_smdp(workdir, procs, env=env)
        try:
            serial = FIRST_ICCID
            for kind in KINDS:
                if kind == "pcsc":
                    ok, why = PcscSandbox.available()
                    if not ok:
                        found[kind].why = f"PC/SC cannot run here: {why}"
                        continue
                say(f"download: {repeats} over {kind}")
                for i in range(repeats):
                    serial += 1
                    card = _Card(kind, workdir / f"{kind}{i}" / "card.json", procs, env)
                    try:
                        code = smdp.order(dataset.iccid(serial), dataset.imsi(serial),
                                          eid=card.eid)
                        argv = [*console_script("mps-lpa"), *card.options(), "--json",
                                "profile", "download", "-a", code, "--ca", str(smdp.ca_file)]
                        proc = run(argv, env=card.env, timeout=120)
                    finally:
                        card.close()
                    if proc.returncode != 0:
                        found[kind].why = (proc.stderr.strip().splitlines() or
                                           [f"mps-lpa exited with {proc.returncode}"])[-1]
                        break
                    data = json.loads(proc.stdout)
                    found[kind].ms.append(float(data["seconds"]) * 1000)
                    found[kind].apdus.append(int(data["apdus"]))
        finally:
            smdp.close()
    return found

"""The device side: first boot to "registered" (emulated devices of the test rig, one at a
time, card in-process or behind pcscd + vpcd, the profile downloaded on the way when this
build can), and the agent's peak memory meanwhile."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mps_bench.stats import median

KINDS = {"emu": "in-process", "pcsc": "pcscd+vpcd", "eim": "in-process, via eIM"}


class PeakRss:
    """Watches this process's ``mps-agent`` children and keeps each one's peak resident
    memory (VmHWM), sampled every ``interval`` seconds until :meth:`stop`.

    The rig runs each agent as a child process and reaps it itself, so the peak is read
    from /proc while the agent runs; agents live for a second or so and their memory
    only grows, so frequent samples see the peak to within the last few milliseconds.
    """

    def __init__(self, interval: float = 0.005, marker: str = "mps-agent") -> None:
        self.interval = interval
        self.marker = marker.encode()
        self.peaks_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="peak-rss")
        self._seen: set[int] = set()
        self._agents: set[int] = set()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _children(self) -> None:
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in self._seen:
                continue
            self._seen.add(pid)
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    # pid (comm) state ppid ...: comm may hold spaces, so split after it
                    ppid = f.read().rsplit(b")", 1)[1].split()[1].decode()
                if ppid != me:
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.marker in f.read():
                        self._agents.add(pid)
            except (OSError, IndexError):
                continue

    def _sample(self) -> None:
        for pid in list(self._agents):
            try:
                with open(f"/proc/{pid}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"VmHWM:"):
                            kb = int(line.split()[1])
                            self.peaks_kb[pid] = max(kb, self.peaks_kb.get(pid, 0))
                            break
            except (OSError, ValueError):
                self._agents.discard(pid)

    def _watch(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):
            if tick % 4 == 0:  # new children are rarer than samples
                self._children()
            self._sample()
            tick += 1

    def peaks_mb(self) -> list[float]:
        return [round(kb / 1024, 1) for kb in self.peaks_kb.values()]


@dataclass
class BootRun:
    """First boots of one card kind."""

    kind: str
    seconds: list[float] = field(default_factory=list)  # agent process, start to exit
    in_agent: list[float] = field(default_factory=list)  # the agent's own first boot
    rss_mb: list[float] = field(default_factory=list)
    download_s: list[float] = field(default_factory=list)  # the download step inside
    failed: int = 0
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"label": KINDS.get(self.kind, self.kind), "n": len(self.seconds),
                "failed": self.failed, "median_s": _r(median(self.seconds)),
                "in_agent_median_s": _r(median(self.in_agent)),
                "max_s": _r(max(self.seconds)) if self.seconds else None,
                "rss_mb_max": max(self.rss_mb) if self.rss_mb else None,
                "rss_mb_median": _r(median(self.rss_mb)) if self.rss_mb else None,
                "download_median_s": _r(median(self.download_s)) if self.download_s
                else None,
                **({"why": self.why} if self.why else {})}


def _r(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def first_boot_download() -> str | None:
    """Why first boots in this build cannot include a profile download, or None."""
    from agent import firstboot

    if not hasattr(firstboot.Step, "DOWNLOAD"):
        return "agent.firstboot has no download step in this build"
    try:
        from mps_testbed.smdp import start_smdp  # noqa: F401 (its presence)
    except ImportError as exc:
        return f"no SM-DP+ for emulated deployments in this build ({exc.name} is missing)"
    return None


def boot(kind: str, count: int, *, download: bool, say: Callable[[str], None],
         eim: bool = False) -> BootRun:
    """``count`` first boots of emulated devices with ``kind`` cards, one at a time (so
    that each boot has the machine to itself), against the rig's own registry; with
    ``download`` the cards start empty and each device downloads its profile from the
    rig's SM-DP+ during first boot; with ``eim`` the eIM orders that download (SGP.32: no
    activation code on the device)."""
    from mps_testbed.errors import StackError
    from mps_testbed.rig import Rig, RigError
    from mps_testbed.stack.pcsc import PcscSandbox

    run = BootRun("eim" if eim else kind)
    if kind == "pcsc":
        ok, why = PcscSandbox.available()
        if not ok:
            run.why = f"PC/SC cannot run here: {why}"
            return run
    profiles = None
    if eim:
        from mps_testbed.eim import EimProfiles

        profiles = EimProfiles()
    rig = Rig(count, kinds=[kind], parallel=1, use_pcsc=kind == "pcsc", app_check=False,
              say=lambda _line: None, progress=False, download=download, profiles=profiles)
    try:
        with PeakRss() as rss:
            result = rig.run()
    except (RigError, StackError, OSError) as exc:
        run.why = f"the rig failed: {exc}"
        say(f"first boot ({kind}): {run.why}")
        return run
    for d in result.devices:
        if d.error is not None:
            run.failed += 1
            run.why = run.why or f"a first boot failed: {d.error}"
            continue
        run.seconds.append(d.seconds)
        if d.boot_seconds is not None:
            run.in_agent.append(d.boot_seconds)
        steps = d.result.get("timings_s", {})
        start, end = steps.get("download a profile"), steps.get("wait for network")
        if isinstance(start, int | float) and isinstance(end, int | float):
            run.download_s.append(end - start)
    run.rss_mb = rss.peaks_mb()
    return run

"""Sampling profiles of a running bridge with py-spy (when installed): the raw stacks are
kept, and a summary of where the time went (own time and time including callees, per
function) is written beside them."""

from __future__ import annotations

import cProfile
import io
import pstats
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def py_spy() -> str | None:
    """The py-spy executable, if there is one (beside this interpreter or on PATH)."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


class Recording:
    """py-spy sampling process ``pid`` for ``seconds`` into ``raw`` (collapsed stacks)."""

    def __init__(self, pid: int, raw: Path, seconds: float, *, rate: int = 250) -> None:
        exe = py_spy()
        if exe is None:
            raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
        raw.parent.mkdir(parents=True, exist_ok=True)
        self.raw = raw
        self.log = raw.with_suffix(".log")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                 "--rate", str(rate), "--format", "raw", "--output", str(raw), "--nonblocking"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait for py-spy to write its file; False if it failed."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False
        return self.proc.returncode == 0 and self.raw.exists()


@dataclass(frozen=True, slots=True)
class Hotspot:
    function: str
    share: float  # of all samples


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"; lines vary by sample
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else file
    return f"{name} ({short})"


def summarize(raw: Path, *, top: int = 25) -> tuple[str, dict[str, list[Hotspot]]]:
    """A readable summary of a raw py-spy recording and its top functions by own time
    (``self``) and by time including callees (``total``)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        # py-spy's raw stacks start with the thread ("thread (0x..)"): not a function.
        frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if not samples:
        return "no samples (was the process busy?)\n", {"self": [], "total": []}
    tops = {
        "self": [Hotspot(n, round(c / samples, 4)) for n, c in own.most_common(top)],
        "total": [Hotspot(n, round(c / samples, 4)) for n, c in total.most_common(top)],
    }
    lines = [f"{samples} samples of busy threads", "", "own time (the function itself):"]
    lines += [f"  {h.share * 100:5.1f}%  {h.function}" for h in tops["self"]]
    lines += ["", "total time (with what it calls):"]
    lines += [f"  {h.share * 100:5.1f}%  {h.function}" for h in tops["total"]]
    return "\n".join(lines) + "\n", tops


def profile_call(call: Callable[[], object], out: Path, *, top: int = 35) -> str:
    """Run ``call`` under cProfile (this thread only); write the statistics by own time
    and by cumulative time to ``out`` and return the text."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        call()
    finally:
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue())
    return text.getvalue()

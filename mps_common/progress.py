"""A one-line progress bar for long operations: drawn on a terminal, silent anywhere else.

``Progress`` redraws one line in place (``\\r`` + erase to end of line), at most ten times
a second, and keeps it below any message printed through :meth:`Progress.message`. It is
off when the stream is not a terminal, when ``CI`` is set, or when ``TERM=dumb``;
``MPS_PROGRESS=1`` / ``0`` forces it on or off. It lives here, beside the other code that
agent, LPA and emulator share, so every command can use it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from mps_common.cli import terminal_columns

_BAR = 24


def progress_wanted(stream: TextIO) -> bool:
    """Whether a progress bar belongs on ``stream`` (see the module documentation)."""
    forced = os.environ.get("MPS_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a tty
        return False


class Progress:
    """Progress of ``total`` steps (``None``: unknown, a counter without a bar, or just the
    elapsed time of a wait).

    Thread-safe: workers may call :meth:`advance` and :meth:`message` concurrently.
    ``note`` (a function) adds live text after the counter, e.g. ``"3 failed"``.
    """

    def __init__(self, total: int | None, *, label: str = "", stream: TextIO | None = None,
                 enabled: bool | None = None, note: Callable[[], str] | None = None,
                 min_interval: float = 0.1, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if total is not None and total < 0:
            raise ValueError("total must not be negative")
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = progress_wanted(self.stream) if enabled is None else enabled
        self.note = note
        self.done = 0
        self._min_interval = min_interval
        self._clock = clock
        self._started = clock()
        self._drawn_at: float | None = None
        self._visible = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more steps done."""
        with self._lock:
            self.done += n
            self._draw(force=self.total is not None and self.done >= self.total)

    def refresh(self) -> None:
        """Redraw now (the note or the elapsed time changed)."""
        with self._lock:
            self._draw(force=True)

    def message(self, text: str, *, write: Callable[[str], None] | None = None) -> None:
        """Show a line above the bar: ``write(text)``, by default printed to the bar's
        stream. The bar is taken away meanwhile and drawn again below the line."""
        with self._lock:
            if self._visible:
                self._erase()
            if write is None:
                print(text, file=self.stream, flush=True)
            else:
                write(text)
            self._draw(force=True)

    def close(self) -> None:
        """Remove the bar; nothing is drawn afterwards."""
        with self._lock:
            if self._visible:
                self._erase()
            self._closed = True

    def __enter__(self) -> Progress:
        with self._lock:
            self._draw(force=True)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- drawing (lock held) -----------------------------------------------------------

    def render(self, width: int) -> str:
        """The bar's text, at most ``width`` characters."""
        parts = [self.label] if self.label else []
        if self.total:
            filled = min(_BAR, _BAR * self.done // self.total)
            parts.append(f"[{'#' * filled}{'.' * (_BAR - filled)}] {self.done}/{self.total}")
        elif self.done:  # a plain wait has nothing to count
            parts.append(str(self.done))
        if self.note is not None:
            extra = self.note()
            if extra:
                parts.append(extra)
        parts.append(f"{self.elapsed:.1f} s")
        return " ".join(parts)[:max(0, width)]

    def _draw(self, *, force: bool = False) -> None:
        if not self.enabled or self._closed:
            return
        now = self._clock()
        if not force and self._drawn_at is not None and \
                now - self._drawn_at < self._min_interval:
            return
        width = terminal_columns() - 1
        self.stream.write("\r\x1b[K" + self.render(width))
        self.stream.flush()
        self._drawn_at = now
        self._visible = True

    def _erase(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()
        self._visible = False

"""Serving emulated modems on pseudo-terminals: one thread and one poll loop for any number.

A test rig with a hundred devices needs a hundred modems; one process serving all of them
costs one interpreter instead of a hundred, and one loop instead of a hundred threads.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lpa_emulator.modem.errors import PtyError

if TYPE_CHECKING:
    from lpa_emulator.modem.emulator import ModemEmulator

log = logging.getLogger(__name__)

_READ = select.POLLIN | select.POLLPRI
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


@dataclass(eq=False)
class _Endpoint:
    """One emulator's pty: the master side the server reads and writes, the slave side kept
    open (a client may close and reopen its port), and output not yet written."""

    emulator: ModemEmulator
    link: Path
    master: int = -1
    slave: int = -1
    published: str | None = None
    out: bytearray = field(default_factory=bytearray)
    due: float = 0.0
    dropped: int = 0


class PtyServer:
    """Serves emulators, each on a new pty published through a symlink, until stopped.

    The constructor and :meth:`add` do no I/O; :meth:`serve` creates the ptys and links,
    runs the loop and removes everything again.
    """

    STOP_CHECK = 0.05
    """Longest wait in the loop, so that a ``stop`` event is noticed promptly."""

    def __init__(self) -> None:
        self._endpoints: list[_Endpoint] = []
        self._links: set[Path] = set()

    def add(self, emulator: ModemEmulator, link: Path) -> None:
        """Serve ``emulator`` on a pty reachable through the symlink ``link``."""
        link = Path(link)
        if link in self._links:
            raise PtyError(f"link {link} is given twice")
        self._links.add(link)
        self._endpoints.append(_Endpoint(emulator, link))

    def __len__(self) -> int:
        return len(self._endpoints)

    def serve(self, stop: threading.Event, *, ready: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set; ``ready`` is set once every link is published."""
        wake_r = wake_w = -1
        try:
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            for ep in self._endpoints:
                self._open(ep, wake_w)
            if ready is not None:
                ready.set()
            self._loop(wake_r, stop)
        finally:
            for ep in self._endpoints:
                self._close(ep)
            for fd in (wake_r, wake_w):
                if fd >= 0:
                    os.close(fd)

    # --- set-up and tear-down --------------------------------------------------------

    @staticmethod
    def _open(ep: _Endpoint, wake_w: int) -> None:
        ep.master, ep.slave = os.openpty()
        # Raw before anyone can write: a cooked pty would echo the modem's own output.
        tty.setraw(ep.slave)
        os.set_blocking(ep.master, False)
        name = os.ttyname(ep.slave)
        publish(ep.link, name)
        ep.published = name
        emu = ep.emulator
        emu.pty_name = name
        emu.wake_fd = wake_w
        ep.out += emu.boot()
        ep.due = time.monotonic()
        log.info("modem %s %s serving on %s -> %s", emu.state.manufacturer, emu.state.model,
                 ep.link, name)

    @staticmethod
    def _close(ep: _Endpoint) -> None:
        ep.emulator.wake_fd = None
        ep.emulator.pty_name = None
        if ep.published is not None:
            unpublish(ep.link, ep.published)
            ep.published = None
        for fd in (ep.master, ep.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        ep.master = ep.slave = -1

    # --- the loop --------------------------------------------------------------------

    def _loop(self, wake_r: int, stop: threading.Event) -> None:
        by_fd = {ep.master: ep for ep in self._endpoints}
        poller = select.poll()
        poller.register(wake_r, _READ)
        writing: set[int] = set()
        for fd in by_fd:
            poller.register(fd, _READ)
        while not stop.is_set():
            soonest = self._tick_due(time.monotonic())
            for fd, ep in by_fd.items():
                # Ask for writability only while there is output, or poll never sleeps.
                want = bool(ep.out)
                if want != (fd in writing):
                    poller.modify(fd, _READ | select.POLLOUT if want else _READ)
                    (writing.add if want else writing.discard)(fd)
            timeout = max(0.0, min(self.STOP_CHECK, soonest - time.monotonic()))
            for fd, events in poller.poll(timeout * 1000):
                if fd == wake_r:
                    self._woken(wake_r)
                else:
                    self._serve_events(by_fd[fd], events)

    def _tick_due(self, now: float) -> float:
        """Run the timers that are due; when the next one is."""
        soonest = math.inf
        for ep in self._endpoints:
            if now >= ep.due:
                self._tick(ep, now)
            soonest = min(soonest, ep.due)
        return soonest

    def _woken(self, wake_r: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(wake_r, 4096)
        for ep in self._endpoints:  # an injected URC: let everyone speak now
            ep.due = 0.0

    def _serve_events(self, ep: _Endpoint, events: int) -> None:
        if events & (_READ | _GONE):
            self._receive(ep)
        if events & select.POLLOUT and ep.out:
            self._send(ep)

    @staticmethod
    def _tick(ep: _Endpoint, now: float) -> None:
        ep.out += ep.emulator.poll()
        timer = ep.emulator.next_timer()
        ep.due = math.inf if timer is None else now + timer

    def _receive(self, ep: _Endpoint) -> None:
        try:
            data = os.read(ep.master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: no slave open; cannot happen while we hold it, but never fatal.
            if exc.errno != errno.EIO:
                raise
            return
        if data:
            ep.out += ep.emulator.feed(data)
            ep.due = 0.0  # a command may have changed what is due (echo, held URCs)
            self._send(ep)

    def _send(self, ep: _Endpoint) -> None:
        if ep.out:
            try:
                written = os.write(ep.master, ep.out)
                del ep.out[:written]
            except BlockingIOError:
                pass
        limit = ep.emulator.MAX_OUTPUT
        if len(ep.out) > limit:
            # Nobody reads: lose the oldest output, as a modem's full UART buffer does.
            excess = len(ep.out) - limit
            del ep.out[:excess]
            if not ep.dropped:
                log.warning("nobody reads %s; dropping output", ep.link)
            ep.dropped += excess


def publish(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target`` atomically; a stale link is replaced, a
    regular file is not."""
    if link.is_symlink():
        old = os.readlink(link)
        if os.path.exists(old):
            log.warning("replacing link %s -> %s, which still exists", link, old)
    elif link.exists():
        raise PtyError(f"{link} exists and is not a symlink; not replacing it")
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        raise PtyError(f"cannot publish {link} -> {target}: {exc}") from exc


def unpublish(link: Path, target: str) -> None:
    """Remove ``link`` if it still points at ``target`` (another emulator may have taken it
    over since)."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            link.unlink()

"""``ModemLink``: the AT command layer every modem transport shares.

It owns command framing, echo removal, routing of unsolicited result codes (URCs) to
handlers, final result codes, timeouts and resynchronisation. Transports only move bytes
by overriding :meth:`ModemLink._open`, :meth:`_write`, :meth:`_read` and :meth:`_close`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Self

from agent.errors import CmeError, ModemError, ModemTimeoutError
from agent.modem.results import PREFIXED, SOLICITED_FORMS, STANDARD_URC_PREFIXES
from mps_esim.ts27007 import CME_TEXTS

log = logging.getLogger(__name__)

UrcHandler = Callable[[str], None]
"""Called with each URC line (without line ends)."""

_EOL = re.compile(rb"[\r\n]")
_CODE = re.compile(r"[0-9]{1,6}")
_COMMAND = re.compile(r"[Aa][Tt][\x20-\x7e]*")


def _is_final(line: str) -> bool:
    return line in ("OK", "ERROR") or line[:11].upper() in ("+CME ERROR:", "+CMS ERROR:")


class ModemLink(abc.ABC):
    """An AT command channel to one modem.

    :meth:`command` sends one command and returns its information lines; every other line
    that arrives meanwhile goes to the URC handlers (called after the command completes,
    in arrival order, from the calling thread). One command runs at a time.
    """

    MAX_LINE = 4096
    """Longest line accepted; longer input is treated as garbage and forces a resync."""
    resync_settle = 0.1
    """Time after the resync probe's OK in which a further final result marks it stale."""
    resync_timeout = 3.0
    """Time a resync may take before the command that needed it fails."""

    def __init__(self, port: str = "") -> None:
        self.port = port
        """What the link was opened from: a device path or URL."""
        self._lock = threading.Lock()
        self._rx = bytearray()
        self._handlers: list[UrcHandler] = []
        self._urc_prefixes: tuple[str, ...] = STANDARD_URC_PREFIXES
        self._cme_texts: dict[int, str] = dict(CME_TEXTS)
        self._cme_codes: dict[str, int] = {t.lower(): c for c, t in CME_TEXTS.items()}
        self._is_open = False
        self._needs_resync = False

    # --- transport hooks ---------------------------------------------------------------

    def _open(self) -> None:  # noqa: B027 - transports without a connection step need nothing
        """Connect the transport."""

    @abc.abstractmethod
    def _write(self, data: bytes) -> None:
        """Send all of ``data``."""

    @abc.abstractmethod
    def _read(self, timeout: float) -> bytes:
        """Whatever bytes arrive within ``timeout`` seconds; ``b""`` when none did."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Disconnect the transport."""

    # --- life cycle --------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        """Connect the transport (no AT traffic; see :meth:`sync`)."""
        with self._lock:
            if self._is_open:
                return
            try:
                self._open()
            except ModemError:
                raise
            except OSError as exc:
                raise ModemError(f"cannot open modem {self.port}: {exc}") from exc
            self._rx.clear()
            self._is_open = True

    def close(self) -> None:
        with self._lock:
            if not self._is_open:
                return
            self._is_open = False
            try:
                self._close()
            except OSError as exc:
                log.debug("closing %s: %s", self.port, exc)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- configuration -----------------------------------------------------------------

    def on_urc(self, callback: UrcHandler) -> Callable[[], None]:
        """Call ``callback`` with every URC; returns a function that unregisters it."""
        self._handlers.append(callback)

        def remove() -> None:
            if callback in self._handlers:
                self._handlers.remove(callback)
        return remove

    def add_urc_prefixes(self, prefixes: Iterable[str]) -> None:
        """Vendor URCs not in 27.007 (``RDY``, ``+QIND:``), so bare answers skip them."""
        self._urc_prefixes = tuple(dict.fromkeys((*self._urc_prefixes, *prefixes)))

    def add_cme_texts(self, texts: Mapping[int, str]) -> None:
        """Vendor ``+CME ERROR`` codes and texts, used to fill in the missing half."""
        self._cme_texts.update(texts)
        self._cme_codes.update({t.lower(): c for c, t in texts.items()})

    # --- commands ----------------------------------------------------------------------

    def command(self, cmd: str, *, prefix: str | None = None, bare: bool = False,
                accept: Callable[[str], bool] | None = None,
                timeout: float = 5.0) -> list[str]:
        """Send ``cmd`` and return the lines that answer it, up to the final ``OK``.

        Answer lines are those starting with ``prefix`` (and, for read commands whose
        answer can be confused with a URC of the same prefix, in the read form; ``accept``
        overrides that test) and, with ``bare=True``, lines without any ``+NAME:`` prefix
        that are not a known URC (``AT+CGSN`` answers just the digits). Everything else is
        a URC. ``ERROR`` raises :class:`ModemError`, ``+CME ERROR``/``+CMS ERROR``
        :class:`CmeError`, no final result in ``timeout`` :class:`ModemTimeoutError`
        (and the next command first resynchronises).
        """
        if not _COMMAND.fullmatch(cmd):
            raise ValueError(f"an AT command is printable ASCII starting with AT, got {cmd!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if accept is None and prefix is not None and cmd.endswith("?") \
                and not cmd.endswith("=?"):
            accept = SOLICITED_FORMS.get(prefix.upper())
        urcs: list[str] = []
        try:
            with self._lock:
                self._check_open()
                if self._leftovers(urcs) or self._needs_resync:
                    self._resync(time.monotonic() + self.resync_timeout, urcs)
                return self._transact(cmd, prefix=prefix, bare=bare, accept=accept,
                                      timeout=timeout, urcs=urcs)
        finally:
            self._dispatch(urcs)

    def poll(self, timeout: float = 0.0) -> int:
        """Wait up to ``timeout`` for input while no command runs; dispatch the URCs that
        arrived. Returns how many there were."""
        urcs: list[str] = []
        try:
            with self._lock:
                self._check_open()
                deadline = time.monotonic() + timeout
                while True:
                    data = self._read_safe(max(0.0, deadline - time.monotonic()))
                    self._rx += data
                    try:
                        if self._idle_lines(urcs):
                            self._needs_resync = True
                    except ModemError as exc:
                        log.warning("%s: %s", self.port, exc)
                        self._needs_resync = True
                    if data or time.monotonic() >= deadline:
                        break
        finally:
            self._dispatch(urcs)
        return len(urcs)

    def sync(self, *, timeout: float = 5.0) -> None:
        """Bring a modem of unknown state to a known one: AT until a clean OK, echo off
        (``ATE0``), numeric CME errors (``AT+CMEE=1``)."""
        urcs: list[str] = []
        try:
            with self._lock:
                self._check_open()
                self._resync(time.monotonic() + timeout, urcs)
        finally:
            self._dispatch(urcs)
        self.command("ATE0", timeout=timeout)
        self.command("AT+CMEE=1", timeout=timeout)

    # --- internals (called with the lock held) -----------------------------------------

    def _check_open(self) -> None:
        if not self._is_open:
            raise ModemError(f"modem link {self.port} is not open")

    def _transact(self, cmd: str, *, prefix: str | None, bare: bool,
                  accept: Callable[[str], bool] | None, timeout: float,
                  urcs: list[str]) -> list[str]:
        log.debug("%s > %s", self.port, cmd)
        self._write_safe((cmd + "\r").encode("ascii"), cmd)
        deadline = time.monotonic() + timeout
        prefix_u = prefix.upper() if prefix is not None else None
        echo_pending = True
        answer: list[str] = []
        while True:
            try:
                line = self._next_line(deadline, cmd)
            except ModemError:
                # Timed out or garbled: whatever answer is still coming belongs to nobody.
                self._needs_resync = True
                raise
            if not line:
                continue
            log.debug("%s < %s", self.port, line)
            if echo_pending and line == cmd:
                echo_pending = False
                continue
            if self._final(line, cmd):
                return answer
            if prefix_u is not None and line[:len(prefix_u)].upper() == prefix_u:
                if accept is None or accept(line):
                    answer.append(line)
                else:
                    urcs.append(line)
            elif bare and not self._unsolicited(line):
                answer.append(line)
            else:
                urcs.append(line)

    def _final(self, line: str, cmd: str) -> bool:
        """True for OK; raises for the error finals; False for any other line."""
        if line == "OK":
            return True
        if line == "ERROR":
            raise ModemError(f"{cmd}: ERROR", command=cmd)
        head = line[:11].upper()
        if head in ("+CME ERROR:", "+CMS ERROR:"):
            detail = line[11:].strip()
            cms = head == "+CMS ERROR:"
            if _CODE.fullmatch(detail):
                code: int | None = int(detail)
                text = None if cms else self._cme_texts.get(int(detail))
            else:
                text = detail
                code = None if cms else self._cme_codes.get(detail.lower())
            raise CmeError(f"{cmd}: {line}", command=cmd, code=code, text=text)
        return False

    def _unsolicited(self, line: str) -> bool:
        return PREFIXED.match(line) is not None or line.startswith(self._urc_prefixes)

    def _next_line(self, deadline: float, cmd: str) -> str:
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModemTimeoutError(f"{cmd}: no final result code in time", command=cmd)
            self._rx += self._read_safe(remaining)

    def _pop_line(self) -> str | None:
        m = _EOL.search(self._rx)
        if m is None:
            if len(self._rx) > self.MAX_LINE:
                self._rx.clear()
                raise ModemError(f"modem {self.port} sent a line over {self.MAX_LINE} bytes")
            return None
        raw = bytes(self._rx[:m.start()])
        del self._rx[:m.end()]
        if len(raw) > self.MAX_LINE:
            raise ModemError(f"modem {self.port} sent a line over {self.MAX_LINE} bytes")
        return raw.decode("utf-8", "replace").strip()

    def _idle_lines(self, urcs: list[str]) -> bool:
        """Lines that arrived while no command ran: URCs, or stale finals (True if any)."""
        stale = False
        while (line := self._pop_line()) is not None:
            if not line:
                continue
            if _is_final(line):
                log.warning("%s: stale %r before a command", self.port, line)
                stale = True
            else:
                urcs.append(line)
        return stale

    def _leftovers(self, urcs: list[str]) -> bool:
        """Deal with input from before a command; True when the link is out of step.

        A partial line gets a moment to complete (a URC being received); one that stays
        partial is dropped, or it would merge into the next answer's first line.
        """
        try:
            stale = self._idle_lines(urcs)
            if self._rx:
                deadline = time.monotonic() + self.resync_settle
                while _EOL.search(self._rx) is None and \
                        (remaining := deadline - time.monotonic()) > 0:
                    self._rx += self._read_safe(remaining)
                stale = self._idle_lines(urcs) or stale
        except ModemError as exc:  # an overlong line: garbage, as far as anyone can tell
            log.warning("%s: %s", self.port, exc)
            stale = True
        if self._rx:
            log.warning("%s: dropping partial line %r", self.port, bytes(self._rx[:40]))
            self._rx.clear()
        return stale

    def _resync(self, deadline: float, urcs: list[str]) -> None:
        """Probe with ``AT`` until one OK answers it and no further final result follows
        within :attr:`resync_settle`: only then are late answers of a timed-out command gone.
        """
        with contextlib.suppress(ModemError):  # garbage before a resync is its reason
            self._idle_lines(urcs)
        self._rx.clear()
        attempt = 0
        while True:
            attempt += 1
            if time.monotonic() >= deadline:
                raise ModemTimeoutError(f"modem {self.port} does not answer AT "
                                        f"({attempt - 1} attempts)", command="AT")
            self._write_safe(b"AT\r", "AT")
            try:
                self._await_ok(min(deadline, time.monotonic() + 1.0), urcs)
                stale = self._settle(urcs)
            except ModemTimeoutError:
                continue
            except ModemError as exc:
                log.debug("%s: resync: %s", self.port, exc)
                self._rx.clear()
                continue
            if not stale:
                self._needs_resync = False
                log.debug("%s: resynchronised after %d probe(s)", self.port, attempt)
                return

    def _await_ok(self, deadline: float, urcs: list[str]) -> None:
        while True:
            line = self._next_line(deadline, "AT")
            if line == "OK":
                return
            if _is_final(line):
                # A stale answer, or the probe merged with a partial line on the modem's
                # side ("AT+CGSAT"): probe again rather than wait for an OK.
                raise ModemError(f"resync probe answered {line!r}", command="AT")
            self._sort_stray(line, urcs)

    def _settle(self, urcs: list[str]) -> bool:
        """Listen for :attr:`resync_settle` seconds; True when another final result came.

        A fixed window, not "until quiet": a chatty modem (URCs) would never fall quiet.
        """
        stale = False
        deadline = time.monotonic() + self.resync_settle
        while (remaining := deadline - time.monotonic()) > 0:
            self._rx += self._read_safe(remaining)
            while (line := self._pop_line()) is not None:
                if _is_final(line):
                    stale = True
                else:
                    self._sort_stray(line, urcs)
        return stale

    def _sort_stray(self, line: str, urcs: list[str]) -> None:
        if not line or line == "AT":
            return
        if self._unsolicited(line):
            urcs.append(line)
        else:
            log.debug("%s: resync drops %r", self.port, line)

    def _read_safe(self, timeout: float) -> bytes:
        try:
            return self._read(timeout)
        except ModemError:
            raise
        except OSError as exc:
            raise ModemError(f"reading modem {self.port} failed: {exc}") from exc

    def _write_safe(self, data: bytes, cmd: str) -> None:
        try:
            self._write(data)
        except ModemError:
            raise
        except OSError as exc:
            raise ModemError(f"writing {cmd} to modem {self.port} failed: {exc}",
                             command=cmd) from exc

    def _dispatch(self, urcs: list[str]) -> None:
        for line in urcs:
            log.debug("%s URC %s", self.port, line)
            for handler in list(self._handlers):
                try:
                    handler(line)
                except Exception:
                    # One broken handler must not cost the command its answer.
                    log.exception("URC handler %r failed on %r", handler, line)

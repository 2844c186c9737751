"""The emulated LTE modem: the AT interpreter, its URCs, and serving it on a pseudo-terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lpa_emulator.modem.card import CardPort, HostedCard
from lpa_emulator.modem.commands import AtError, CmeFailure, parse_command_line
from lpa_emulator.modem.dialects import DIALECTS, EmulatedDialect
from lpa_emulator.modem.server import PtyServer
from lpa_emulator.modem.state import ModemState
from mps_common.errors import ConfigError

log = logging.getLogger(__name__)

CR = 0x0D
LF = 0x0A
BS = 0x08

# The serving area this emulator reports while registered (CEREG <tac>, <ci>, <AcT> 7 = E-UTRAN).
_TAC = "1A2B"
_CELL_ID = "01A2B3C4"


def frame(line: str) -> bytes:
    """A result line as the modem sends it (ATV1): ``\\r\\n<line>\\r\\n``."""
    return b"\r\n" + line.encode("latin-1", "replace") + b"\r\n"


@dataclass(slots=True)
class AtSettings:
    """What AT commands change at run time (lost on power-off like on a modem without AT&W)."""

    echo: bool = True
    cmee: int = 0
    cereg: int = 1


class ModemEmulator:
    """An LTE modem that answers AT commands like the chosen vendor ``dialect``.

    ``card`` is the SIM it hosts (``None``: empty slot, SIM commands give CME 10).
    ``urc_interval`` (seconds, ``None`` = never) repeats ``+CEREG`` URCs at random intervals
    around that mean; the fraction ``urc_mid_command`` of them is held back and sent
    between the echo and the answer of the next command, as real modems sometimes do.
    ``seed`` makes those choices repeatable; ``clock`` lets tests move time.

    :meth:`feed` / :meth:`poll` are the byte-level interface; :meth:`serve_pty` runs them
    on a pseudo-terminal.
    """

    MAX_LINE = 2048
    """Longest command line kept; AT+CSIM with a 261-byte APDU needs about 540."""
    MAX_OUTPUT = 64 * 1024
    """Output kept for a reader that does not read; older bytes are dropped beyond it."""
    MAX_HELD_URCS = 8

    def __init__(self, state: ModemState, card: HostedCard | None, *,
                 dialect: str | EmulatedDialect = "quectel",
                 urc_interval: float | None = None, urc_mid_command: float = 0.5,
                 seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(dialect, str):
            try:
                dialect = DIALECTS[dialect]
            except KeyError:
                raise ConfigError(f"unknown modem dialect {dialect!r}; "
                                  f"known: {', '.join(sorted(DIALECTS))}") from None
        if urc_interval is not None and urc_interval <= 0:
            raise ConfigError("urc_interval must be positive")
        if not 0 <= urc_mid_command <= 1:
            raise ConfigError("urc_mid_command is a fraction 0..1")
        self.state = state
        self.card = card
        self.card_port: CardPort | None = CardPort(card) if card is not None else None
        self.dialect = dialect
        self.urc_interval = urc_interval
        self.urc_mid_command = urc_mid_command
        self.settings = AtSettings()
        self.reset_settings()
        self.sessions: dict[int, int] = {}
        """AT+CCHO session id -> logical channel number on the card."""
        self.pty_name: str | None = None
        self._rng = random.Random(seed)
        self._clock = clock
        self._next_session = self._rng.randrange(100, 1000)
        self._line = bytearray()
        self._overflow = False
        self._boot_time: float | None = None
        self._reported_stat = 0
        self._next_urc: float | None = None
        self._lock = threading.Lock()
        self._held: deque[str] = deque(maxlen=self.MAX_HELD_URCS)
        self._injected: deque[str] = deque()
        self.wake_fd: int | None = None
        """Written to when a URC is injected, so the serving loop wakes up."""

    # --- state the handlers use --------------------------------------------------------

    def reset_settings(self) -> None:
        """ATZ / AT&F: back to the dialect's power-on settings."""
        self.settings.echo = True
        self.settings.cmee = self.dialect.cmee_default
        self.settings.cereg = self.dialect.cereg_default

    def registration_stat(self) -> int:
        """CEREG ``<stat>``: 2 (searching) until the registration delay has passed, then 1."""
        if self._boot_time is None:
            return 2
        return 1 if self._clock() - self._boot_time >= self.state.registration_delay else 2

    def cereg_line(self, *, solicited: bool) -> str:
        """``+CEREG`` as the AT+CEREG? answer (``<n>,<stat>..``) or as URC (``<stat>..``)."""
        stat = self.registration_stat()
        fields = [str(stat)]
        if self.settings.cereg == 2 and stat in (1, 5):
            fields += [f'"{_TAC}"', f'"{_CELL_ID}"', "7"]
        if solicited:
            fields.insert(0, str(self.settings.cereg))
        return "+CEREG: " + ",".join(fields)

    def new_session(self, channel: int) -> int:
        """A fresh AT+CCHO session id for ``channel`` (never the channel number itself)."""
        session = self._next_session
        self._next_session += 1
        self.sessions[session] = channel
        return session

    # --- byte interface ----------------------------------------------------------------

    @property
    def booted(self) -> bool:
        return self._boot_time is not None

    def boot(self) -> bytes:
        """Power on: start the registration clock; answer the power-on URCs."""
        now = self._clock()
        self._boot_time = now
        self._reported_stat = self.registration_stat()
        self._schedule_urc(now)
        self.sessions.clear()
        return b"".join(frame(u) for u in self.dialect.boot_urcs(self.card is not None))

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host in; echo, URCs held for this moment and answers out."""
        out = bytearray() if self.booted else bytearray(self.boot())
        for b in data:
            if self.settings.echo:
                out.append(b)
            if b == CR:
                line = self._line.decode("latin-1")
                overflow = self._overflow
                self._line.clear()
                self._overflow = False
                out += self._complete(line, overflow)
            elif b == LF:
                continue  # V.250: a line feed after the CR is not part of the next command
            elif b == BS:
                if self._line:
                    self._line.pop()
            elif len(self._line) < self.MAX_LINE:
                self._line.append(b)
            else:
                self._overflow = True
        return bytes(out)

    def poll(self) -> bytes:
        """Time-driven output: registration changes, random URCs, injected URCs."""
        if not self.booted:
            return b""
        out = bytearray()
        now = self._clock()
        stat = self.registration_stat()
        if stat != self._reported_stat:
            self._reported_stat = stat
            if self.settings.cereg:
                out += frame(self.cereg_line(solicited=False))
        if self._next_urc is not None and now >= self._next_urc:
            self._schedule_urc(now)
            if self.settings.cereg:
                line = self.cereg_line(solicited=False)
                if self._rng.random() < self.urc_mid_command:
                    with self._lock:
                        self._held.append(line)
                else:
                    out += frame(line)
        with self._lock:
            while self._injected:
                out += frame(self._injected.popleft())
        return bytes(out)

    def next_timer(self) -> float | None:
        """Seconds until :meth:`poll` has something time-driven to say, if ever."""
        if self._boot_time is None:
            return None
        now = self._clock()
        waits: list[float] = []
        if self._reported_stat != 1:
            waits.append(self._boot_time + self.state.registration_delay - now)
        if self._next_urc is not None:
            waits.append(self._next_urc - now)
        return max(0.0, min(waits)) if waits else None

    def inject_urc(self, line: str, *, mid_command: bool = False) -> None:
        """Send ``line`` as a URC: now, or (``mid_command``) between the echo and the answer
        of the next command. Safe to call from any thread."""
        if "\r" in line or "\n" in line:
            raise ValueError("a URC is one line")
        with self._lock:
            (self._held if mid_command else self._injected).append(line)
        wake = self.wake_fd
        if wake is not None and not mid_command:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(wake, b"\0")

    def execute(self, line: str) -> list[str]:
        """Run one command line; answer its information lines and the final result code."""
        try:
            commands = parse_command_line(line)
        except AtError as exc:
            log.debug("%r: %s", line, exc)
            return ["ERROR"]
        info: list[str] = []
        for cmd in commands:
            handler = self.dialect.handlers.get(cmd.name)
            if handler is None:
                log.debug("%r: unknown command %s", line, cmd.name)
                return [*info, "ERROR"]
            try:
                info += handler(self, cmd)
            except AtError as exc:
                log.debug("%r: %s", line, exc)
                return [*info, "ERROR"]
            except CmeFailure as exc:
                log.debug("%r: CME %d %s", line, exc.code, exc)
                return [*info, self._cme(exc.code)]
            except Exception:
                # A fault in the emulator must not take the serial line down with it.
                log.exception("%r: handler failed", line)
                return [*info, self._cme(0)]
        return [*info, "OK"]

    def _cme(self, code: int) -> str:
        if self.settings.cmee == 0:
            return "ERROR"
        if self.settings.cmee == 1:
            return f"+CME ERROR: {code}"
        return f"+CME ERROR: {self.dialect.cme_texts.get(code, 'unknown')}"

    def _complete(self, line: str, overflow: bool) -> bytes:
        text = line.strip()
        if overflow:
            return frame("ERROR")
        if text[:2].upper() != "AT":
            if text:
                log.debug("ignoring line without AT prefix: %r", text[:40])
            return b""
        with self._lock:
            held = list(self._held)
            self._held.clear()
        answer = self.execute(text)
        return b"".join(frame(x) for x in held) + b"".join(frame(x) for x in answer)

    def _schedule_urc(self, now: float) -> None:
        if self.urc_interval is None:
            self._next_urc = None
        else:
            self._next_urc = now + self.urc_interval * self._rng.uniform(0.5, 1.5)

    # --- pseudo-terminal ---------------------------------------------------------------

    def serve_pty(self, link: Path, stop: threading.Event, *,
                  ready: threading.Event | None = None) -> None:
        """Serve on a new pty until ``stop`` is set, reachable through the symlink ``link``.

        The slave side is set raw at once and kept open here, so a client may close and
        reopen the port. ``ready`` is set once the link is published. To serve many
        emulators from one thread use :class:`~lpa_emulator.modem.server.PtyServer`.
        """
        server = PtyServer()
        server.add(self, link)
        server.serve(stop, ready=ready)

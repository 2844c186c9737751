"""The virtual-card side of the vpcd protocol: puts an emulated card (eUICC or
plain UICC) into a PC/SC reader.

vpcd (the pcscd reader driver of vsmartcard) listens on TCP 35963 (slot 0) and 35964
(slot 1); the card connects to it. Every message both ways is a 2-byte big-endian length
and a payload. A 1-byte payload from vpcd is a control (power off, power on, reset, send
ATR); anything longer is a command APDU. Only the ATR request and APDUs get an answer.
"""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType

from lpa_emulator.errors import EmulatorError
from lpa_emulator.euicc.filecard import FileCard

log = logging.getLogger(__name__)

DEFAULT_PORT = 35963
"""vpcd's port for the first slot; the second slot is one higher."""

CTRL_OFF = 0x00
CTRL_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04

_POLL = 0.2  # how often a blocked receive looks at the stop event
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
_MAX_MESSAGE = 0xFFFF

# Linux only; elsewhere the delayed-ACK stall simply stays.
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class VpcdError(EmulatorError, ConnectionError):
    """The connection to vpcd failed or vpcd broke the protocol."""


class VpcdConnection:
    """One TCP connection to vpcd; the length-prefixed framing lives here and only here."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    @classmethod
    def connect(cls, host: str, port: int, *, timeout: float = 2.0) -> VpcdConnection:
        """Connect to vpcd at host:port (:class:`VpcdError` when nobody listens)."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise VpcdError(f"cannot connect to vpcd at {host}:{port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(_POLL)
        return cls(sock)

    def receive(self) -> bytes | None:
        """The next message's payload, or None when nothing complete arrived within the poll
        interval. :class:`VpcdError` when vpcd closed the connection."""
        while True:
            if len(self._buf) >= 2:
                size = int.from_bytes(self._buf[:2], "big")
                if len(self._buf) >= 2 + size:
                    payload = bytes(self._buf[2:2 + size])
                    del self._buf[:2 + size]
                    return payload
            if _TCP_QUICKACK is not None:
                # vpcd writes the length and the payload separately; without an immediate
                # ACK the second write waits for the delayed-ACK timer (~40 ms per APDU).
                # The kernel clears the flag again, so it is set before every receive.
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                return None
            except OSError as exc:
                raise VpcdError(f"connection to vpcd failed: {exc}") from exc
            if not chunk:
                raise VpcdError("vpcd closed the connection")
            self._buf += chunk

    def send(self, payload: bytes) -> None:
        if len(payload) > _MAX_MESSAGE:
            raise VpcdError(f"message of {len(payload)} bytes does not fit the framing")
        try:
            # One write for length and payload keeps the answer in a single segment.
            self._sock.sendall(len(payload).to_bytes(2, "big") + payload)
        except OSError as exc:
            raise VpcdError(f"connection to vpcd failed: {exc}") from exc

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> VpcdConnection:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class VpcdCardServer:
    """Serves one card to vpcd, reconnecting with bounded backoff when the link drops."""

    def __init__(self, card: FileCard, host: str, port: int, *,
                 stop: threading.Event | None = None, reconnect: bool = True) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        self.card = card
        self.host = host
        self.port = port
        self.stop = stop or threading.Event()
        self.reconnect = reconnect
        self.connections = 0
        """How many times a connection to vpcd was made (for tests and diagnostics)."""

    def handle(self, message: bytes) -> bytes | None:
        """The answer to one message from vpcd, or None for controls that get none."""
        if len(message) == 1:
            ctrl = message[0]
            if ctrl == CTRL_ATR:
                return self.card.atr
            if ctrl in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                # A power cycle loses volatile state just like a reset does.
                self.card.reset()
                return None
            log.warning("unknown vpcd control %02X ignored", ctrl)
            return None
        return self.card.transmit(message)

    def serve_connection(self, conn: VpcdConnection) -> None:
        """Answer vpcd on ``conn`` until it closes (:class:`VpcdError`) or stop is set."""
        while not self.stop.is_set():
            message = conn.receive()
            if message is None:
                continue
            answer = self.handle(message)
            if answer is not None:
                conn.send(answer)

    def run(self) -> None:
        """Connect and serve until stopped; without ``reconnect``, return (or raise
        :class:`VpcdError` on the first connection failure) when the link ends."""
        delay = _BACKOFF_FIRST
        while not self.stop.is_set():
            try:
                conn = VpcdConnection.connect(self.host, self.port)
            except VpcdError as exc:
                if not self.reconnect:
                    raise
                log.debug("%s; retrying in %.2f s", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            self.connections += 1
            delay = _BACKOFF_FIRST
            log.info("%s connected to vpcd at %s:%d", self.card.name, self.host, self.port)
            with conn:
                try:
                    self.serve_connection(conn)
                except VpcdError as exc:
                    log.info("vpcd link lost: %s", exc)
            # The reader saw the card go away: start the next session from a fresh reset.
            self.card.reset()
            if not self.reconnect:
                return


def serve_vpcd(card: FileCard, host: str, port: int, *, stop: threading.Event | None = None,
               reconnect: bool = True) -> None:
    """Serve ``card`` to vpcd at host:port until ``stop`` is set.

    With ``reconnect`` (the default) a refused or dropped connection (pcscd restarted) is
    retried with backoff from 50 ms up to 2 s; without it, the first failure raises
    :class:`VpcdError` and a closed link returns.
    """
    VpcdCardServer(card, host, port, stop=stop, reconnect=reconnect).run()

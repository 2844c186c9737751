"""Byte transport through pyserial, shared by the schemes pyserial can open."""

from __future__ import annotations

import abc
import logging
import time
from typing import Self

import serial

from agent.errors import ModemError, ModemTimeoutError
from agent.modem.link import ModemLink

log = logging.getLogger(__name__)


class PySerialLink(ModemLink):
    """A :class:`ModemLink` over a pyserial port made by :meth:`_make_port`."""

    scheme: str = ""
    READ_SLICE = 0.05
    """pyserial read timeout: a fixed slice, since changing it reconfigures a tty."""
    WRITE_TIMEOUT = 2.0

    def __init__(self, port: str) -> None:
        super().__init__(port)
        self._serial: serial.Serial | None = None

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str) -> Self:
        """Validate ``url`` and its options; no I/O."""

    @abc.abstractmethod
    def _make_port(self) -> serial.Serial:
        """An unopened pyserial port for this link."""

    def _open(self) -> None:
        port = self._make_port()
        port.timeout = self.READ_SLICE
        port.write_timeout = self.WRITE_TIMEOUT
        try:
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ModemError(f"cannot open modem {self.port}: {exc}") from exc
        self._serial = port

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise ModemError(f"modem {self.port} is not open")
        return self._serial

    def _write(self, data: bytes) -> None:
        try:
            self._port().write(data)
            self._port().flush()
        except serial.SerialTimeoutException as exc:
            raise ModemTimeoutError(f"modem {self.port} does not take input: {exc}") from exc
        except (serial.SerialException, OSError) as exc:
            raise ModemError(f"writing to modem {self.port} failed: {exc}") from exc

    def _read(self, timeout: float) -> bytes:
        port = self._port()
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting = port.in_waiting
                if waiting or timeout <= 0:
                    return bytes(port.read(waiting)) if waiting else b""
                # Returns as soon as a byte arrives, or after one read slice.
                data = bytes(port.read(1))
                if data:
                    more = port.in_waiting
                    return data + bytes(port.read(more)) if more else data
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError) as exc:
            raise ModemError(f"reading modem {self.port} failed: {exc}") from exc

    def _close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

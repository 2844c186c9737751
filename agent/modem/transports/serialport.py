"""``serial:///dev/ttyUSB2?baud=115200&rtscts=1`` and bare device paths (ttys and ptys)."""

from __future__ import annotations

import serial

from agent.errors import AgentConfigError
from agent.modem.transports._pyserial import PySerialLink
from agent.modem.transports.options import flag_option, int_option, query_options

_OPTIONS = frozenset({"baud", "rtscts", "exclusive"})


class SerialLink(PySerialLink):
    """A modem on a serial device: USB modem AT port, UART, or the emulator's pty link."""

    scheme = "serial"

    def __init__(self, device: str, *, baudrate: int = 115200, rtscts: bool = False,
                 exclusive: bool = False, port: str | None = None) -> None:
        if not device:
            raise AgentConfigError("a serial modem needs a device path")
        super().__init__(port or device)
        self.device = device
        self.baudrate = baudrate
        self.rtscts = rtscts
        self.exclusive = exclusive

    @classmethod
    def from_url(cls, url: str) -> SerialLink:
        if "://" not in url:
            return cls(url, port=url)
        scheme, rest = url.split("://", 1)
        if scheme != cls.scheme:
            raise AgentConfigError(f"{url!r} is not a serial:// URL")
        device, _, query = rest.partition("?")
        opts = query_options(url, query, _OPTIONS)
        return cls(device, port=url,
                   baudrate=int_option(url, opts, "baud", 115200, lo=50, hi=4_000_000),
                   rtscts=flag_option(url, opts, "rtscts"),
                   exclusive=flag_option(url, opts, "exclusive"))

    def _make_port(self) -> serial.Serial:
        return serial.serial_for_url(self.device, do_not_open=True, baudrate=self.baudrate,
                                     rtscts=self.rtscts, exclusive=self.exclusive or None)

"""Modem transports chosen by URL; each scheme's module validates its own options."""

from __future__ import annotations

from agent.errors import AgentConfigError
from agent.modem.link import ModemLink
from agent.modem.transports._pyserial import PySerialLink
from agent.modem.transports.serialport import SerialLink
from agent.modem.transports.tcpsocket import SocketLink

TRANSPORTS: dict[str, type[PySerialLink]] = {
    SerialLink.scheme: SerialLink,
    SocketLink.scheme: SocketLink,
}
"""URL scheme -> link class; a URL without ``://`` is a serial device path."""


def link_for_url(url: str) -> PySerialLink:
    """The unopened link ``url`` names."""
    if not url:
        raise AgentConfigError("empty modem URL")
    scheme = url.split("://", 1)[0] if "://" in url else SerialLink.scheme
    cls = TRANSPORTS.get(scheme)
    if cls is None:
        raise AgentConfigError(f"modem URL {url!r}: scheme must be one of "
                          f"{', '.join(s + '://' for s in TRANSPORTS)} or a device path")
    return cls.from_url(url)


def open_modem(url: str, *, do_not_open: bool = False) -> ModemLink:
    """The modem link ``url`` names, opened unless ``do_not_open``.

    ``serial:///dev/ttyUSB2?baud=115200``, a bare device path (``/dev/ttyUSB2``, an
    emulator's pty link) or ``socket://127.0.0.1:PORT``. Opening sends nothing; call
    :meth:`ModemLink.sync` to bring the modem to a known state.
    """
    link = link_for_url(url)
    if not do_not_open:
        link.open()
    return link


__all__ = ["TRANSPORTS", "PySerialLink", "SerialLink", "SocketLink", "link_for_url",
           "open_modem"]

"""``socket://HOST:PORT``: a modem's AT port exported over TCP (ser2net, a test bench)."""

from __future__ import annotations

from urllib.parse import urlsplit

import serial

from agent.errors import AgentConfigError
from agent.modem.transports._pyserial import PySerialLink


class SocketLink(PySerialLink):
    """AT commands over a raw TCP connection."""

    scheme = "socket"

    def __init__(self, host: str, tcp_port: int, *, port: str | None = None) -> None:
        if not host:
            raise AgentConfigError("socket:// needs a host")
        if not 1 <= tcp_port <= 65535:
            raise AgentConfigError(f"TCP port {tcp_port} is outside 1..65535")
        super().__init__(port or f"socket://{host}:{tcp_port}")
        self.host = host
        self.tcp_port = tcp_port

    @classmethod
    def from_url(cls, url: str) -> SocketLink:
        parts = urlsplit(url)
        if parts.scheme != cls.scheme:
            raise AgentConfigError(f"{url!r} is not a socket:// URL")
        if parts.query or parts.fragment or parts.path not in ("", "/"):
            raise AgentConfigError(f"socket:// takes only HOST:PORT, got {url!r}")
        try:
            tcp_port = parts.port
        except ValueError as exc:
            raise AgentConfigError(f"{url!r}: {exc}") from exc
        if parts.hostname is None or tcp_port is None:
            raise AgentConfigError(f"socket:// needs HOST:PORT, got {url!r}")
        return cls(parts.hostname, tcp_port, port=url)

    def _make_port(self) -> serial.Serial:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return serial.serial_for_url(f"socket://{host}:{self.tcp_port}", do_not_open=True)

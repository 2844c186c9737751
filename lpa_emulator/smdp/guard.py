"""Connection limits of the ES9+ server: how many connections, how many from one address,
and how long a client may take to send a request.

The guard wraps the HTTP server's protocol factory, so it sees every connection before
the HTTP layer does: one over a limit is closed at once, and a connection that has not
delivered a complete request (head and body) within ``request_timeout`` seconds of its
start or of its previous answer is closed, so slow senders cannot hold the server's
connections open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """``max_connections`` in all, ``max_per_address`` from one client address,
    ``request_timeout`` seconds to send each request."""

    max_connections: int = 512
    max_per_address: int = 64
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if min(self.max_connections, self.max_per_address) < 1 or self.request_timeout <= 0:
            raise ValueError("connection limits must be positive")


def _address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


class ConnectionGuard:
    """Counts and times the connections of one server; see the module documentation."""

    def __init__(self, limits: Limits, loop: asyncio.AbstractEventLoop) -> None:
        self.limits = limits
        self._loop = loop
        self._deadlines: dict[asyncio.BaseTransport, asyncio.TimerHandle | None] = {}
        self._per_address: dict[str, int] = {}
        self.refused = 0
        self.timed_out = 0

    @property
    def connections(self) -> int:
        return len(self._deadlines)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory whose connections this guard admits and times."""
        return lambda: _Guarded(self, factory)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        address = _address(transport)
        if (len(self._deadlines) >= self.limits.max_connections
                or self._per_address.get(address, 0) >= self.limits.max_per_address):
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("ES9+ connection from %s refused: connection limit "
                            "(%d refused so far)", address, self.refused)
            return False
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._deadlines[transport] = None
        self.expect_request(transport)
        return True

    def expect_request(self, transport: asyncio.BaseTransport) -> None:
        """Start the clock for the next request on ``transport``."""
        if transport not in self._deadlines:
            return
        self.received(transport)
        self._deadlines[transport] = self._loop.call_later(
            self.limits.request_timeout, self._expire, transport)

    def received(self, transport: asyncio.BaseTransport | None) -> None:
        """The request on ``transport`` is in: stop its clock."""
        handle = self._deadlines.get(transport) if transport is not None else None
        if handle is not None:
            handle.cancel()
            if transport is not None:
                self._deadlines[transport] = None

    def release(self, transport: asyncio.BaseTransport) -> None:
        if transport not in self._deadlines:
            return
        self.received(transport)
        del self._deadlines[transport]
        address = _address(transport)
        left = self._per_address.get(address, 1) - 1
        if left > 0:
            self._per_address[address] = left
        else:
            self._per_address.pop(address, None)

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        self.timed_out += 1
        if self.timed_out == 1 or self.timed_out % 1000 == 0:
            log.warning("ES9+ connection from %s closed: no complete request within "
                        "%g s (%d so far)", _address(transport),
                        self.limits.request_timeout, self.timed_out)
        self._deadlines[transport] = None
        transport.abort()  # type: ignore[attr-defined]


class _Guarded(asyncio.Protocol):
    """Passes everything to the HTTP protocol once the guard has admitted the connection."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]
                 ) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if not self._guard.admit(transport):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.release(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def __getattr__(self, name: str) -> Any:
        # aiohttp asks its protocol for a few more things (e.g. the transport it holds).
        if self._inner is None:
            raise AttributeError(name)
        return getattr(self._inner, name)

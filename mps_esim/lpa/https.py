"""A small HTTP/1.1 client over TLS for the LPA's JSON POSTs (ES9+, ES11, ESipa).

The standard library's :mod:`http.client` parses headers with the :mod:`email` package,
whose import alone is a good part of an LPA command's start-up on a small device. The
LPA needs far less: POST a body with ``Content-Length`` on a kept-alive connection, read
the status line, the headers and a body sized by ``Content-Length`` or sent chunked (or
running to the close), within limits (RFC 9112).
"""

from __future__ import annotations

import socket
import ssl
from typing import BinaryIO

MAX_LINE = 8192
"""Longest status line, header line or chunk-size line accepted."""
MAX_HEADERS = 100


class HttpError(OSError):
    """The server's answer is not well-formed HTTP/1.1."""


class Disconnected(HttpError):
    """The server closed the connection before answering (a kept-alive one it dropped)."""


class HttpResponse:
    """A response: its status, its body (at most the limit plus one byte) and whether the
    connection cannot carry another request."""

    __slots__ = ("body", "status", "will_close")

    def __init__(self, status: int, body: bytes, will_close: bool) -> None:
        self.status = status
        self.body = body
        self.will_close = will_close


class HttpsConnection:
    """One TLS connection to ``host:port``, opened on the first request and kept alive."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext,
                 timeout: float) -> None:
        self.host = host
        self.port = port
        self._context = context
        self._timeout = timeout
        self._sock: ssl.SSLSocket | None = None
        self._file: BinaryIO | None = None

    def _open(self) -> tuple[ssl.SSLSocket, BinaryIO]:
        # An ASCII host name given as bytes spares loading the IDNA codec (and the Unicode
        # tables it needs), which a str costs both the resolver and the TLS handshake.
        host = self.host.encode("ascii") if self.host.isascii() else self.host.encode("idna")
        raw = socket.create_connection((host, self.port), timeout=self._timeout)  # type: ignore[arg-type]
        try:
            sock = self._context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self._sock, self._file = sock, sock.makefile("rb")
        return sock, self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def post(self, path: str, body: bytes, headers: dict[str, str], *, limit: int
             ) -> HttpResponse:
        """POST ``body`` to ``path``; the response body is read up to ``limit`` + 1 bytes."""
        if self._sock is None or self._file is None:
            sock, stream = self._open()
        else:
            sock, stream = self._sock, self._file
        host = self.host if self.port == 443 else f"{self.host}:{self.port}"
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
                 *(f"{name}: {value}" for name, value in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        response = _read_response(stream, limit)
        if response.will_close:
            self.close()
        return response


def _line(stream: BinaryIO, what: str) -> str:
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HttpError(f"the {what} is longer than {MAX_LINE} bytes")
    return line.decode("latin-1").rstrip("\r\n")


def _status(stream: BinaryIO) -> tuple[str, int]:
    line = _line(stream, "status line")
    if not line:
        raise Disconnected("the server closed the connection without answering")
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HttpError(f"not an HTTP/1.1 status line: {line[:80]!r}")
    return version, int(code)


def _headers(stream: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(stream, "header line")
        if not line:
            return headers
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(f"malformed header line {line[:80]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    raise HttpError(f"more than {MAX_HEADERS} header lines")


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise Disconnected(f"the connection closed {size - len(data)} bytes short of the body")
    return data


def _chunked(stream: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """The chunked body (RFC 9112 7.1), its trailer skipped; and whether it was cut."""
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = _line(stream, "chunk size").partition(";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            _headers(stream)  # the trailer section
            return b"".join(parts), False
        if total + size > limit:
            parts.append(_exactly(stream, limit + 1 - total))
            return b"".join(parts), True
        parts.append(_exactly(stream, size))
        total += size
        if _line(stream, "chunk end"):
            raise HttpError("a chunk is longer than its size says")


def _read_response(stream: BinaryIO, limit: int) -> HttpResponse:
    version, status = _status(stream)
    headers = _headers(stream)
    while 100 <= status < 200:  # interim responses come before the real one
        version, status = _status(stream)
        headers = _headers(stream)
    connection = headers.get("connection", "").lower()
    will_close = "close" in connection or (version == "HTTP/1.0"
                                           and "keep-alive" not in connection)
    if status in (204, 304):
        return HttpResponse(status, b"", will_close)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, cut = _chunked(stream, limit)
        return HttpResponse(status, body, will_close or cut)
    length = headers.get("content-length")
    if length is None:
        return HttpResponse(status, stream.read(limit + 1), True)
    if not length.isdigit():
        raise HttpError(f"bad Content-Length {length[:20]!r}")
    size = int(length)
    if size > limit:
        return HttpResponse(status, _exactly(stream, limit + 1), True)
    return HttpResponse(status, _exactly(stream, size), will_close)

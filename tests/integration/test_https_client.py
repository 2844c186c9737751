"""The LPA's HTTP/1.1 client (mps_esim.lpa.https) against a real TLS server sending
hand-written answers: message framing per RFC 9112 (6.3 body length, 7.1 chunked, 9.3
persistence) and its limits."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lpa_emulator import pki
from mps_esim.lpa.es9 import tls_context
from mps_esim.lpa.https import Disconnected, HttpError, HttpsConnection

Answer = Callable[[bytes], list[bytes]]
"""From a request (head and body) to the raw answers to send, each one send() call."""


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, euicc_count=0)
    return root


def _read_request(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(4096)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def server(pki_dir: Path) -> Iterator[Callable[[Answer, bool], HttpsConnection]]:
    """A TLS server on loopback answering each request of a connection with ``answer``;
    with ``close`` set it closes the connection after each answer."""
    listeners: list[socket.socket] = []

    def start(answer: Answer, close: bool = False) -> HttpsConnection:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki_dir / pki.TLS_CERT, pki_dir / pki.TLS_KEY)
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            while True:
                try:
                    raw, _ = listener.accept()
                except OSError:
                    return
                with context.wrap_socket(raw, server_side=True) as conn:
                    while request := _read_request(conn):
                        for part in answer(request):
                            conn.sendall(part)
                        if close:
                            break

        threading.Thread(target=serve, daemon=True).start()
        return HttpsConnection("localhost", listener.getsockname()[1],
                               context=tls_context(pki_dir / pki.CI_CERT), timeout=5)

    yield start
    for listener in listeners:
        listener.close()


def _post(conn: HttpsConnection, limit: int = 1000) -> tuple[int, bytes, bool]:
    answer = conn.post("/gsma/rsp2/es9plus/x", b'{"a": 1}', {"X-Admin-Protocol": "v"},
                       limit=limit)
    return answer.status, answer.body, answer.will_close


def test_request_shape_and_a_kept_alive_connection(server: Callable[..., HttpsConnection]
                                                   ) -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> list[bytes]:
        seen.append(request)
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"{}"]

    conn = server(answer)
    assert _post(conn) == (200, b"{}", False)
    assert _post(conn) == (200, b"{}", False)
    conn.close()
    head = seen[0].split(b"\r\n")
    assert head[0] == b"POST /gsma/rsp2/es9plus/x HTTP/1.1"
    assert f"Host: localhost:{conn.port}".encode() in head
    assert b"Content-Length: 8" in head and b"X-Admin-Protocol: v" in head
    assert seen[0].endswith(b'\r\n\r\n{"a": 1}') and len(seen) == 2


@pytest.mark.parametrize(("raw", "expected"), [
    # RFC 9112 7.1: chunks with an extension, then a trailer.
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"], (200, b"abcde", False)),
    # 6.3: no length, so the body runs to the close.
    ([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"],
     (200, b"until the end", True)),
    # 15.2: an interim 100 before the final answer; 204 has no body.
    ([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"], (204, b"", False)),
    # 9.3: HTTP/1.0 closes unless kept alive.
    ([b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"], (200, b"x", True)),
    # Longer than the limit: one byte past it is read, and the connection is given up.
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"y" * 5000],
     (200, b"y" * 1001, True)),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      b"7D0\r\n" + b"z" * 2000 + b"\r\n0\r\n\r\n"], (200, b"z" * 1001, True)),
])
def test_framing(server: Callable[..., HttpsConnection], raw: list[bytes],
                 expected: tuple[int, bytes, bool]) -> None:
    close = expected[2]
    conn = server(lambda _request: raw, close)
    assert _post(conn) == expected
    conn.close()


@pytest.mark.parametrize(("raw", "error", "match"), [
    ([b""], Disconnected, "without answering"),
    ([b"SMTP 220 hello\r\n\r\n"], HttpError, "status line"),
    ([b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"], HttpError, "malformed header"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], HttpError, "Content-Length"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], Disconnected, "short"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], HttpError,
     "chunk size"),
    ([b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 101 + b"\r\n"], HttpError, "header lines"),
    ([b"HTTP/1.1 200 OK\r\nX: " + b"v" * 9000 + b"\r\n\r\n"], HttpError, "longer than"),
])
def test_malformed_answers_are_refused(server: Callable[..., HttpsConnection],
                                       raw: list[bytes], error: type[Exception],
                                       match: str) -> None:
    conn = server(lambda _request: raw, True)
    with pytest.raises(error, match=match):
        _post(conn)
    conn.close()

"""Serving the consent page over HTTPS: in the foreground (``mps-consent-web serve``) or
on a background thread (the demo and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from broker_bridge.registry import Registry
from consent_web.app import create_app
from consent_web.signin import SignIn

log = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8443


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context of TLS 1.2 or newer with the certificate chain and key."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the page listens: address, port (0 picks a free one) and TLS files."""

    cert: Path
    key: Path
    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT


async def _start(app: web.Application, listen: Listen) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, listen.bind, listen.port,
                       ssl_context=tls_context(listen.cert, listen.key))
    await site.start()
    port = listen.port
    server = site._server  # the bound port, when 0 was asked for
    if port == 0 and isinstance(server, asyncio.Server) and server.sockets:
        port = int(server.sockets[0].getsockname()[1])
    return runner, port


def url_of(bind: str, port: int) -> str:
    host = f"[{bind}]" if ":" in bind else bind
    return f"https://{host}:{port}/"


async def serve(registry: Registry, signin: SignIn, listen: Listen,
                ready: threading.Event | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    runner, port = await _start(create_app(registry, signin), listen)
    print(f"consent page at {url_of(listen.bind, port)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


class PageServer:
    """The consent page on a background thread with its own event loop.

        with PageServer(registry, signin, Listen(cert, key, port=0)) as page:
            print(page.url)
    """

    def __init__(self, registry: Registry, signin: SignIn, listen: Listen) -> None:
        self.registry, self.signin, self.listen = registry, signin, listen
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; the page's address."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="consent-page",
                                        daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            _start(create_app(self.registry, self.signin), self.listen), loop)
        self._runner, port = future.result(timeout)
        self.url = url_of(self.listen.bind, port)
        return self.url

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None:
            return
        if runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> PageServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

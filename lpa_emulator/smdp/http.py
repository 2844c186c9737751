"""ES9+ over HTTPS (SGP.22 6.1, 6.5): the SM-DP+'s web server, on aiohttp.

``POST /gsma/rsp2/es9plus/<function>`` with a JSON body and the ``X-Admin-Protocol`` header.
A function's own failures come back as HTTP 200 with ``functionExecutionStatus`` ``Failed``
and the SGP.22 status code; HTTP-level problems (unknown path, wrong method, missing
protocol header, body too large or not JSON) get their HTTP status and the same kind of
JSON body. No request, however malformed, gets a traceback.

aiohttp serves the connections on one event loop; the functions themselves (signatures,
ECDH, SCP03t, SQLite) run on a small thread pool so a slow one never stalls the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError, ServerStartError
from lpa_emulator.smdp.local import failure_body, success_header
from lpa_emulator.smdp.service import FUNCTIONS
from mps_common.errors import ConfigError

log = logging.getLogger(__name__)

ADMIN_PROTOCOL = "gsma/rsp/v2.2.0"
BASE_PATH = "/gsma/rsp2/es9plus/"
MAX_BODY = 64 * 1024
"""Largest request body accepted; the largest ES9+ request is about 4 KiB."""
_PROTOCOL = re.compile(r"gsma/rsp/v[23]\.[0-9]+(\.[0-9]+)?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Service(Protocol):
    """What the server serves: functions called by name on a JSON body (an SM-DP+, or an
    SM-DS with its ES11 and ES12 paths)."""

    address: str

    def call(self, function: str, body: Mapping[str, Any]) -> dict[str, Any] | None: ...


ES9_ROUTES: Mapping[str, Sequence[str]] = {BASE_PATH: FUNCTIONS}


def tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 or later with CERT.DP.TLS and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} / {key}: {exc}") from exc
    return context


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json;charset=UTF-8",
                                 "X-Admin-Protocol": ADMIN_PROTOCOL})


def _failed(status: st.StatusCode, message: str, http_status: int = 200) -> web.Response:
    return _json(failure_body(Es9StatusError(status, message)), http_status)


def build_app(smdp: Service, executor: ThreadPoolExecutor, *, max_body: int = MAX_BODY,
              routes: Mapping[str, Sequence[str]] = ES9_ROUTES) -> web.Application:
    """The aiohttp application serving ``smdp``'s functions under each base path of
    ``routes`` (ES9+ for an SM-DP+)."""

    async def function(request: web.Request) -> web.StreamResponse:
        name = request.match_info["function"]
        base = request.path[:len(request.path) - len(name)]
        if name not in routes.get(base, ()):
            return _failed(st.MALFORMED, f"no ES9+ function {name!r}", 404)
        protocol = request.headers.get("X-Admin-Protocol", "")
        if not _PROTOCOL.fullmatch(protocol.strip()):
            return _failed(st.UNSUPPORTED_PROTOCOL,
                           f"X-Admin-Protocol {protocol!r} is not gsma/rsp/v2.x", 400)
        if "json" not in request.headers.get("Content-Type", "").lower():
            return _failed(st.MALFORMED, "the body must be application/json", 415)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _failed(st.MALFORMED, f"the body exceeds {max_body} bytes", 413)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return _failed(st.MALFORMED, "the body is not valid JSON")
        if not isinstance(body, dict):
            return _failed(st.MALFORMED, "the body must be a JSON object")
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(executor, smdp.call, name, body)
        except Es9StatusError as exc:
            log.info("%s failed: %s", name, exc)
            return _json(failure_body(exc))
        if answer is None:
            return web.Response(status=204, headers={"X-Admin-Protocol": ADMIN_PROTOCOL})
        return _json({"header": success_header(), **answer})

    async def not_allowed(_request: web.Request) -> web.StreamResponse:
        return _failed(st.MALFORMED, "ES9+ functions are called with POST", 405)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _failed(st.MALFORMED, f"no ES9+ resource at {request.path}", 404)
        except web.HTTPMethodNotAllowed:
            return _failed(st.MALFORMED, "ES9+ functions are called with POST", 405)
        except web.HTTPException:
            raise
        except Exception:
            # A bug, never the client's input: log it here, answer without a traceback.
            log.exception("ES9+ %s failed unexpectedly", request.path)
            return _failed(st.BUSY, "internal error", 500)

    app = web.Application(client_max_size=max_body, middlewares=[guard])
    for base in routes:
        app.router.add_post(base + "{function}", function)
        app.router.add_route("*", base + "{function}", not_allowed)
    return app


class SmdpHttpServer:
    """Serves an SM-DP+ (or an SM-DS) over HTTPS from a background thread.

    :meth:`start` binds and returns the port (``port=0`` picks a free one); :meth:`stop`
    closes the listener and waits for the thread.
    """

    def __init__(self, smdp: Service, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None, workers: int = 4,
                 max_body: int = MAX_BODY,
                 routes: Mapping[str, Sequence[str]] = ES9_ROUTES) -> None:
        self.smdp = smdp
        self._routes = routes
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="es9")
        self._max_body = max_body
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> int:
        """Start serving in a background thread; the bound port."""
        if self._thread is not None:
            raise RuntimeError("the server is running already")
        self._thread = threading.Thread(target=self._run, name="smdp-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServerStartError(f"the ES9+ server did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise ServerStartError(f"cannot listen on {self.host}:{self.port}: "
                              f"{self._error}") from self._error
        return self.port

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        runner = web.AppRunner(build_app(self.smdp, self._executor, max_body=self._max_body,
                                         routes=self._routes),
                               access_log=None, handle_signals=False)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl,
                               reuse_address=True)
            await site.start()
            address = runner.addresses[0]
            self.port = int(address[1])
        except (OSError, RuntimeError) as exc:
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            return
        log.info("listening on %s for %s", self.url, self.smdp.address)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, finish the thread and the worker pool."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        self._thread = None
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SmdpHttpServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

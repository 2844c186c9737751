"""ESipa over HTTPS (SGP.32 6.1): the eIM's web server, on aiohttp.

``POST /gsma/rsp2/esipa/<function>`` with a JSON body (see :mod:`mps_esim.sgp32.esipa`).
As the SM-DP+'s ES9+: a function's own failures come back as HTTP 200 with
``functionExecutionStatus`` ``Failed``; HTTP-level problems (unknown path, wrong method,
body too large or not a JSON object) get their HTTP status and the same kind of body. No
request, however malformed, gets a traceback. Functions (SQLite, signatures) run on a
small thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from lpa_emulator.eim.service import Eim
from lpa_emulator.eim.store import EimStoreError
from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError, ServerStartError
from lpa_emulator.smdp.local import failure_body, success_header
from mps_esim.sgp32.esipa import BASE_PATH, FUNCTIONS

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
"""Largest request accepted (a result with a few notifications is a few KiB)."""


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json;charset=UTF-8"})


def _failed(status: st.StatusCode, message: str, http_status: int = 200) -> web.Response:
    return _json(failure_body(Es9StatusError(status, message)), http_status)


def build_app(eim: Eim, executor: ThreadPoolExecutor, *, max_body: int = MAX_BODY
              ) -> web.Application:
    """The aiohttp application serving ``eim``'s ESipa functions."""

    async def function(request: web.Request) -> web.StreamResponse:
        name = request.match_info["function"]
        if name not in FUNCTIONS:
            return _failed(st.MALFORMED, f"no ESipa function {name!r}", 404)
        if "json" not in request.headers.get("Content-Type", "").lower():
            return _failed(st.MALFORMED, "the body must be application/json", 415)
        try:
            body = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _failed(st.MALFORMED, f"the body exceeds {max_body} bytes", 413)
        except (ValueError, RecursionError):
            return _failed(st.MALFORMED, "the body is not valid JSON")
        if not isinstance(body, dict):
            return _failed(st.MALFORMED, "the body must be a JSON object")
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                executor, eim.call, name, body)
        except Es9StatusError as exc:
            log.info("%s failed: %s", name, exc)
            return _json(failure_body(exc))
        except EimStoreError as exc:
            return _failed(st.MALFORMED, str(exc))
        if answer is None:
            return web.Response(status=204)
        return _json({"header": success_header(), **answer})

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPNotFound:
            return _failed(st.MALFORMED, f"no ESipa resource at {request.path}", 404)
        except web.HTTPMethodNotAllowed:
            return _failed(st.MALFORMED, "ESipa functions are called with POST", 405)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("ESipa %s failed unexpectedly", request.path)
            return _failed(st.BUSY, "internal error", 500)

    app = web.Application(client_max_size=max_body, middlewares=[guard])
    app.router.add_post(BASE_PATH + "{function}", function)
    return app


class EimHttpServer:
    """Serves an :class:`Eim` over HTTPS from a background thread on 127.0.0.1 (or
    ``host``); :meth:`start` returns the bound port (``port=0`` picks a free one)."""

    def __init__(self, eim: Eim, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None, workers: int = 4) -> None:
        self.eim = eim
        self.host, self.port = host, port
        self._ssl = ssl_context
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esipa")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        """``host:port``, as an eIM FQDN is written."""
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> int:
        self._thread = threading.Thread(target=self._run, name="eim-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise ServerStartError(f"the ESipa server cannot listen on {self.host}:"
                                   f"{self.port}: {self._error or 'timeout'}")
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
        runner = web.AppRunner(build_app(self.eim, self._executor), access_log=None,
                               handle_signals=False)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl)
            await site.start()
            self.port = int(runner.addresses[0][1])
        except (OSError, RuntimeError) as exc:
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            return
        log.info("ESipa listening on %s for eIM %s", self.address, self.eim.eim_id)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        self._thread = None
        self._executor.shutdown(wait=True)

    def __enter__(self) -> EimHttpServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

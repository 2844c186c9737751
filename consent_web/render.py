"""Rendering the consent page's templates, and what its handlers share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from broker_bridge.registry import Registry
from consent_web.security import SESSION, csrf_token

HERE = Path(__file__).resolve().parent
TEMPLATES = web.AppKey("templates", jinja2.Environment)
REGISTRY = web.AppKey("registry", Registry)
#: Largest form accepted (bytes): a choice of devices and fields is far smaller.
MAX_FORM = 64 * 1024

T = TypeVar("T")

FIELD_NAMES = {
    "ip": "Network address", "capabilities": "Capabilities", "model": "Model",
    "eid": "eSIM id (EID)", "imei": "IMEI", "iccid": "SIM number (ICCID)",
    "imsi": "Subscriber id (IMSI)", "msisdn": "Phone number", "presence": "Online or offline",
    "history": "History of SIM and device changes",
}


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def templates() -> jinja2.Environment:
    """The page templates, autoescaped (every value from the store is text, not HTML)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["when"] = _when
    env.globals["field_names"] = FIELD_NAMES
    return env


def render(request: web.Request, name: str, *, status: int = 200, **context: Any
           ) -> web.Response:
    """The template ``name`` as an HTML response, with the session and CSRF token."""
    template = request.app[TEMPLATES].get_template(name)
    context.setdefault("notice", request.query.get("done") and _notice(request.query["done"]))
    context.setdefault("error", None)
    context.setdefault("here", None)
    html = template.render(session=request.get(SESSION), csrf=csrf_token(request), **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


_NOTICES = {
    "approved": "Approved: the app sees what you chose.",
    "denied": "Denied: the app sees nothing.",
    "changed": "Changed: the app sees what you chose from now on.",
    "ended": "The pairing has ended: the app sees nothing any more.",
    "esim-approved": "Approved: the device carries out the operation.",
    "esim-refused": "Refused: nothing changes on the device.",
}


def _notice(key: str) -> str | None:
    return _NOTICES.get(key)


async def blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store operation off the event loop (the store is thread-safe)."""
    return await asyncio.to_thread(partial(func, *args, **kwargs))



"""The signed-in pages: requests (consent prompts), paired apps, devices, eSIM operations.

Every read and change goes through a :class:`~broker_bridge.registry.portal.ContractPortal`
scoped to the session's contract: an id of another contract's prompt, pairing, device or
eSIM request is answered 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from broker_bridge.model import WebSession
from broker_bridge.registry.portal import (
    AlreadyDecided,
    ChoiceRefused,
    ContractPortal,
    NotFound,
)
from consent_web.render import REGISTRY, render
from consent_web.security import SESSION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Longest id accepted from a URL; longer ones are no id of ours.
MAX_ID = 128


def _session(request: web.Request) -> WebSession:
    session: WebSession | None = request.get(SESSION)
    if session is None:
        if request.method == "POST":
            raise web.HTTPForbidden(text="signed out: sign in again")
        raise web.HTTPSeeOther("/sign-in")
    return session


def _portal(request: web.Request) -> ContractPortal:
    session = _session(request)
    return request.app[REGISTRY].portal(session.contract_id,
                                        actor=f"user:{session.contract_id}@web")


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > MAX_ID:
        raise web.HTTPNotFound()
    return value


async def _call(func: Callable[[], Any]) -> Any:
    """A portal call off the event loop; a foreign or unknown id becomes 404."""
    try:
        return await asyncio.to_thread(func)
    except NotFound as exc:
        raise web.HTTPNotFound() from exc


async def _choice(request: web.Request) -> tuple[list[str] | None, list[str]]:
    form = await request.post()
    every = form.get("all_devices") == "1"
    devices = [str(v) for v in form.getall("device", []) if isinstance(v, str)]
    fields = [str(v) for v in form.getall("field", []) if isinstance(v, str)]
    return (None if every else devices), fields


async def home(request: web.Request) -> web.StreamResponse:
    _session(request)
    raise web.HTTPSeeOther("/prompts")


async def prompts(request: web.Request, *, error: str | None = None, status: int = 200
                  ) -> web.StreamResponse:
    portal = _portal(request)
    found = await _call(portal.prompts)
    return render(request, "prompts.html", title="Requests", here="prompts", prompts=found,
                  error=error, status=status)


async def apps(request: web.Request, *, error: str | None = None, status: int = 200
               ) -> web.StreamResponse:
    portal = _portal(request)
    found, devices = await _call(lambda: (portal.pairings(), portal.devices()))
    return render(request, "apps.html", title="Paired apps", here="apps", pairings=found,
                  devices=devices, error=error, status=status)


async def devices(request: web.Request) -> web.StreamResponse:
    portal = _portal(request)
    found = await _call(portal.devices)
    return render(request, "devices.html", title="Devices", here="devices", devices=found)


async def device(request: web.Request) -> web.StreamResponse:
    portal = _portal(request)
    eid = _id(request, "eid")

    def read() -> tuple[Any, Any]:
        history = portal.history(eid)
        mine = [d for d in portal.devices() if d.eid == eid]
        if not mine:
            raise NotFound(f"no device {eid} on this contract", "unknown-device")
        return mine[0], history

    found, history = await _call(read)
    return render(request, "device.html", title="Device history", here="devices",
                  device=found, history=history)


async def esim(request: web.Request, *, error: str | None = None, status: int = 200
               ) -> web.StreamResponse:
    portal = _portal(request)
    everything = await _call(lambda: portal.esim_requests(open_only=False))
    waiting = [r for r in everything if r.state == "awaiting-user"]
    past = [r for r in everything if r.state != "awaiting-user"]
    return render(request, "esim.html", title="eSIM operations", here="esim", open=waiting,
                  past=past, error=error, status=status)


async def _change(request: web.Request, change: Callable[[ContractPortal], object],
                  done: str, page: Callable[..., Awaitable[web.StreamResponse]],
                  to: str) -> web.StreamResponse:
    """Carry out one change; refusals show the page again with the reason."""
    portal = _portal(request)
    try:
        await _call(lambda: change(portal))
    except ChoiceRefused as exc:
        return await page(request, error=str(exc), status=400)
    except AlreadyDecided as exc:
        return await page(request, error=str(exc), status=409)
    raise web.HTTPSeeOther(f"{to}?done={done}")


async def approve(request: web.Request) -> web.StreamResponse:
    prompt = _id(request, "prompt")
    chosen, fields = await _choice(request)
    return await _change(request, lambda p: p.approve(prompt, devices=chosen, fields=fields),
                         "approved", prompts, "/apps")


async def deny(request: web.Request) -> web.StreamResponse:
    prompt = _id(request, "prompt")
    return await _change(request, lambda p: p.deny(prompt), "denied", prompts, "/prompts")


async def set_view(request: web.Request) -> web.StreamResponse:
    pairing = _id(request, "pairing")
    chosen, fields = await _choice(request)
    return await _change(request, lambda p: p.set_view(pairing, devices=chosen,
                                                       fields=fields),
                         "changed", apps, "/apps")


async def end(request: web.Request) -> web.StreamResponse:
    pairing = _id(request, "pairing")
    return await _change(request, lambda p: p.end(pairing), "ended", apps, "/apps")


async def esim_approve(request: web.Request) -> web.StreamResponse:
    found = _id(request, "request")
    return await _change(request, lambda p: p.approve_esim(found), "esim-approved", esim,
                         "/esim")


async def esim_refuse(request: web.Request) -> web.StreamResponse:
    found = _id(request, "request")
    return await _change(request, lambda p: p.refuse_esim(found), "esim-refused", esim,
                         "/esim")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", home)
    router.add_get("/prompts", prompts)
    router.add_post("/prompts/{prompt}/approve", approve)
    router.add_post("/prompts/{prompt}/deny", deny)
    router.add_get("/apps", apps)
    router.add_post("/apps/{pairing}/view", set_view)
    router.add_post("/apps/{pairing}/end", end)
    router.add_get("/devices", devices)
    router.add_get("/devices/{eid}", device)
    router.add_get("/esim", esim)
    router.add_post("/esim/{request}/approve", esim_approve)
    router.add_post("/esim/{request}/refuse", esim_refuse)

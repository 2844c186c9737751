"""The sign-in pages: ask for a code, enter it, sign out."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from consent_web import render as page
from consent_web.errors import RateLimitedError, SignInRefusedError
from consent_web.security import SESSION, SESSION_COOKIE, SIGNIN_KEY, set_cookie


def _client(request: web.Request) -> str:
    # The peer's address: a proxy in front would have to be trusted explicitly first.
    return request.remote or "unknown"


def _text(form: MultiDictProxy[Any], name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    if request.get(SESSION) is not None:
        raise web.HTTPSeeOther("/prompts")
    return page.render(request, "sign_in.html", title="Sign in", number=None, here="sign-in")


async def ask_code(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number = _text(form, "number", 20)
    signin = request.app[SIGNIN_KEY]
    try:
        await asyncio.to_thread(signin.request_code, number, _client(request))
    except RateLimitedError as exc:
        return page.render(request, "sign_in.html", status=429, title="Sign in",
                           number=number, here="sign-in",
                           error=f"{exc}: wait {exc.retry_after // 60} minutes.")
    except ValueError as exc:
        return page.render(request, "sign_in.html", status=400, title="Sign in",
                           number=number, here="sign-in", error=str(exc))
    return page.render(request, "code.html", title="Enter your code", number=number,
                       minutes=signin.policy.code_ttl // 60, here="sign-in")


async def enter_code(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number, code = _text(form, "number", 20), _text(form, "code", 10)
    signin = request.app[SIGNIN_KEY]
    try:
        token, _session = await asyncio.to_thread(signin.sign_in, number, code,
                                                  _client(request))
    except (SignInRefusedError, RateLimitedError) as exc:
        status = 429 if isinstance(exc, RateLimitedError) else 401
        return page.render(request, "code.html", status=status, title="Enter your code",
                           number=number, minutes=signin.policy.code_ttl // 60,
                           here="sign-in", error=str(exc))
    response = web.HTTPSeeOther("/prompts")
    set_cookie(response, SESSION_COOKIE, token, signin.policy.session_ttl)
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await asyncio.to_thread(request.app[SIGNIN_KEY].sign_out, token)
    response = web.HTTPSeeOther("/sign-in")
    # Expired at once, with the flags a __Host- cookie must carry to be replaced.
    set_cookie(response, SESSION_COOKIE, "", 0)
    raise response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/sign-in", sign_in_form)
    router.add_post("/sign-in", ask_code)
    router.add_post("/sign-in/code", enter_code)
    router.add_post("/sign-out", sign_out)

"""What every response and every form of the consent page gets: security headers, the
session from its cookie, and the CSRF check of each POST.

* Headers: a Content Security Policy that allows no script at all and only the page's own
  style sheet, framing refused (``frame-ancestors 'none'`` and X-Frame-Options DENY), no
  MIME sniffing, no referrer to other sites, HSTS, and ``Cache-Control: no-store`` on
  every page (they show personal data).
* Session cookie ``__Host-mps-session``: Secure, HttpOnly, SameSite=Strict, Path=/ (the
  ``__Host-`` prefix makes browsers refuse it otherwise); expiry is kept on the server.
* CSRF: every POST carries a token (the session's, or before sign-in one bound to a
  random pre-session cookie) compared in constant time; a POST whose Origin (or
  Sec-Fetch-Site) shows another site is refused before the token is looked at.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from broker_bridge.model import WebSession
from consent_web.signin import SignIn

CSRF_SECRET = "consent-web-csrf"  # noqa: S105 - the name of a stored secret
SESSION_COOKIE = "__Host-mps-session"
PRE_COOKIE = "__Host-mps-pre"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make form posts say Origin: null
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNIN_KEY = web.AppKey("signin", SignIn)
# Typed request keys where aiohttp has them (3.12 on); plain names before.
SESSION: Any = web.RequestKey("session", object) if hasattr(web, "RequestKey") else "session"
PRE: Any = web.RequestKey("pre", str) if hasattr(web, "RequestKey") else "pre"


def set_cookie(response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="Strict")


def pre_token(request: web.Request) -> str:
    """The CSRF token of the sign-in forms: an HMAC of the pre-session cookie."""
    key = request.app[SIGNIN_KEY].key(CSRF_SECRET)
    return hmac.new(key, str(request[PRE]).encode(), hashlib.sha256).hexdigest()


def csrf_token(request: web.Request) -> str:
    """The token every POST form of this request's page carries."""
    session: WebSession | None = request.get(SESSION)
    return session.csrf if session is not None else pre_token(request)


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _cross_site(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return True
    return request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none")


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session (or a pre-session id) and check the CSRF token of a POST."""
    signin = request.app[SIGNIN_KEY]
    token = request.cookies.get(SESSION_COOKIE, "")
    request[SESSION] = await asyncio.to_thread(signin.session, token) if token else None
    pre = request.cookies.get(PRE_COOKIE, "")
    fresh = not (16 <= len(pre) <= 64)
    request[PRE] = secrets.token_urlsafe(24) if fresh else pre
    if request.method == "POST":
        if _cross_site(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        form = await request.post()
        sent = form.get("csrf")
        if fresh or not isinstance(sent, str) \
                or not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
            raise web.HTTPForbidden(text="the form is stale or forged: reload the page")
    response = await handler(request)
    if fresh:
        set_cookie(response, PRE_COOKIE, request[PRE], 3600)
    return response

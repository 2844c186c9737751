"""The consent page's aiohttp application: routes, middlewares, error pages."""

from __future__ import annotations

from aiohttp import web

from broker_bridge.registry import Registry
from consent_web import pages, signin_pages
from consent_web.render import HERE, MAX_FORM, REGISTRY, TEMPLATES, render, templates
from consent_web.security import CSRF_SECRET, SIGNIN_KEY, Handler, headers, sessions
from consent_web.signin import SECRET_NAME, SignIn


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return render(request, "error.html", status=404, title="Not found",
                      message="There is nothing here for your contract.")


async def static_css(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(HERE / "static" / "style.css",
                            headers={"Content-Type": "text/css; charset=utf-8"})


def create_app(registry: Registry, signin: SignIn) -> web.Application:
    """The consent page over ``registry``, signing in with ``signin``."""
    app = web.Application(middlewares=[headers, sessions, error_pages],
                          client_max_size=MAX_FORM)
    app[TEMPLATES] = templates()
    app[REGISTRY] = registry
    app[SIGNIN_KEY] = signin
    # The secrets are read now, so that no page waits on the store for them.
    for name in (CSRF_SECRET, SECRET_NAME):
        signin.key(name)
    app.router.add_get("/static/style.css", static_css)
    signin_pages.add_routes(app.router)
    pages.add_routes(app.router)
    return app

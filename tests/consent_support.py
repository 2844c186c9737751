"""What the consent page's tests share: the page on a background thread over a registry
file, a small HTTPS client with a cookie jar, and prompts waiting for Paul's answer."""

from __future__ import annotations

import http.client
import re
import ssl
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from broker_bridge.registry import Registry
from broker_bridge.storage import Store
from consent_web.server import Listen, PageServer
from consent_web.signin import Deliver, SignIn, SignInPolicy
from consent_web.tlsfiles import self_signed
from mps_wire.requests import PairRequest

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Texts:
    """The operator's text messages, kept instead of sent: (contract, number, code, expiry)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, int]] = []

    def __call__(self, contract: str, msisdn: str, code: str, expires_at: int) -> None:
        self.sent.append((contract, msisdn, code, expires_at))

    @property
    def last(self) -> str:
        return self.sent[-1][2]


@contextmanager
def running_page(store: Store, deliver: Deliver, tmp: Path,
                 policy: SignInPolicy | None = None) -> Iterator[PageServer]:
    """The consent page over ``store`` on a free loopback port, with a fresh certificate."""
    cert, key = self_signed(tmp / "tls")
    page = PageServer(Registry(store), SignIn(store, deliver, policy=policy),
                      Listen(cert=cert, key=key, port=0))
    page.start()
    try:
        yield page
    finally:
        page.stop()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str
    cookies: list[str] = field(default_factory=list)

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.body)
        assert found, "the page has no form with a CSRF token"
        return found.group(1)

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Client:
    """One browser's worth of HTTPS: a cookie jar, no redirects followed."""

    def __init__(self, url: str, cert: Path) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 443
        self.origin = f"https://{self.host}:{self.port}"
        self.context = ssl.create_default_context(cafile=str(cert))
        self.jar: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str | list[str]] | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=10)
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            sent.update({"Content-Type": "application/x-www-form-urlencoded",
                         "Origin": self.origin})
        sent.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        cookies = response.headers.get_all("Set-Cookie") or []
        for line in cookies:
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if value and "Max-Age=0" not in line and "expires=Thu, 01 Jan 1970" not in line:
                self.jar[name.strip()] = value
            else:
                self.jar.pop(name.strip(), None)
        return Answer(response.status, response.headers, text, cookies)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str | list[str]], *, csrf: str | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, {**form, "csrf": csrf or self.csrf_for(path)},
                            headers)

    def csrf_for(self, path: str) -> str:
        """The CSRF token a page shows (the sign-in page before signing in)."""
        del path
        page = self.get("/prompts")
        if page.status == 303:
            page = self.get("/sign-in")
        return page.csrf

    def sign_in(self, number: str, texts: Texts) -> Answer:
        asked = self.post("/sign-in", {"number": number})
        assert asked.status == 200, asked.body
        return self.post("/sign-in/code", {"number": number, "code": texts.last},
                         csrf=asked.csrf)


def ask_to_pair(registry: Registry, app: str, msisdn: str, purpose: str) -> str:
    """An app asks to pair with ``msisdn``; the pending pairing's id."""
    outcome = registry.pair(app, PairRequest(msisdn=msisdn, purpose=purpose))
    pairing = outcome.reply.body.get("pairing")
    assert outcome.reply.status.value == "pending" and isinstance(pairing, str), \
        outcome.reply
    return pairing

"""The consent page over real HTTPS (no browser): sign-in, cookies, security headers,
CSRF and Origin checks, rate limits, and no other contract's data by changing an id."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_bridge.model import App, TrustLevel
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from consent_web import cli
from consent_web.server import PageServer
from consent_web.signin import SignInPolicy
from tests.consent_support import Client, Texts, ask_to_pair, running_page
from tests.helpers import (
    LENA_MSISDN,
    PAUL,
    PAUL_MSISDN,
    iccid_for,
    make_device,
    paul_and_apps,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(db_path) as s:
        paul_and_apps(s, devices=3)
        s.register_device(make_device(9))  # Lena's device (subscription 9)
        yield s


@pytest.fixture
def texts() -> Texts:
    return Texts()


@pytest.fixture
def page(store: SqliteStore, texts: Texts, tmp_path: Path) -> Iterator[PageServer]:
    with running_page(store, texts, tmp_path) as p:
        yield p


@pytest.fixture
def client(page: PageServer, tmp_path: Path) -> Client:
    return Client(page.url, tmp_path / "tls" / "cert.pem")


@pytest.fixture
def paul(client: Client, texts: Texts) -> Client:
    signed_in = client.sign_in(PAUL_MSISDN, texts)
    assert signed_in.status == 303 and signed_in.location == "/prompts"
    return client


def _cookie(answer_cookies: list[str], name: str) -> str:
    return next(c for c in answer_cookies if c.startswith(name + "="))


def test_the_session_cookie_is_secure_httponly_samesite_strict(client: Client,
                                                                texts: Texts) -> None:
    answer = client.sign_in(PAUL_MSISDN, texts)
    cookie = _cookie(answer.cookies, "__Host-mps-session").lower()
    for flag in ("secure", "httponly", "samesite=strict", "path=/"):
        assert flag in cookie
    assert "domain=" not in cookie  # a __Host- cookie must not name a domain


def test_pages_carry_the_security_headers(paul: Client) -> None:
    answer = paul.get("/devices")
    assert answer.status == 200
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # no script at all
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"  # personal data
    assert "<script" not in answer.body


def test_signed_out_pages_send_to_sign_in(client: Client) -> None:
    for path in ("/prompts", "/apps", "/devices", "/esim"):
        answer = client.get(path)
        assert (answer.status, answer.location) == (303, "/sign-in")


def test_a_post_without_the_csrf_token_is_refused(paul: Client, store: SqliteStore) -> None:
    pairing = ask_to_pair(Registry(store), "health", PAUL_MSISDN, "health-monitoring")
    prompt = store.pairing(pairing).prompt_id  # type: ignore[union-attr]
    answer = paul.request("POST", f"/prompts/{prompt}/deny", {"x": "1"})
    assert answer.status == 403
    answer = paul.post(f"/prompts/{prompt}/deny", {}, csrf="forged" * 8)
    assert answer.status == 403
    assert store.pairing(pairing).state.value == "pending"  # type: ignore[union-attr]


def test_a_post_from_another_origin_is_refused(paul: Client, store: SqliteStore) -> None:
    pairing = ask_to_pair(Registry(store), "health", PAUL_MSISDN, "health-monitoring")
    prompt = store.pairing(pairing).prompt_id  # type: ignore[union-attr]
    token = paul.get("/prompts").csrf
    answer = paul.post(f"/prompts/{prompt}/deny", {}, csrf=token,
                       headers={"Origin": "https://evil.example"})
    assert answer.status == 403
    answer = paul.post(f"/prompts/{prompt}/deny", {}, csrf=token,
                       headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status == 403
    assert store.pairing(pairing).state.value == "pending"  # type: ignore[union-attr]
    assert paul.post(f"/prompts/{prompt}/deny", {}, csrf=token).status == 303


def test_the_sign_in_form_needs_its_csrf_token_too(client: Client, texts: Texts) -> None:
    client.get("/sign-in")
    answer = client.request("POST", "/sign-in", {"number": PAUL_MSISDN})
    assert answer.status == 403 and texts.sent == []


def test_wrong_used_and_expired_codes_are_refused_alike(
        store: SqliteStore, tmp_path: Path) -> None:
    texts = Texts()
    with running_page(store, texts, tmp_path, SignInPolicy(code_ttl=1)) as page:
        client = Client(page.url, tmp_path / "tls" / "cert.pem")
        asked = client.post("/sign-in", {"number": PAUL_MSISDN})
        wrong = f"{(int(texts.last) + 1) % 10**6:06d}"
        answer = client.post("/sign-in/code", {"number": PAUL_MSISDN, "code": wrong},
                             csrf=asked.csrf)
        assert answer.status == 401 and "__Host-mps-session" not in client.jar
        message = re.search(r'id="error">([^<]+)<', answer.body)
        time.sleep(1.2)
        late = client.post("/sign-in/code", {"number": PAUL_MSISDN, "code": texts.last},
                           csrf=asked.csrf)
        assert late.status == 401
        assert message is not None and message.group(1) in late.body


def test_a_used_code_does_not_sign_in_again(client: Client, texts: Texts,
                                            page: PageServer, tmp_path: Path) -> None:
    assert client.sign_in(PAUL_MSISDN, texts).status == 303
    other = Client(page.url, tmp_path / "tls" / "cert.pem")
    token = other.get("/sign-in").csrf
    again = other.post("/sign-in/code", {"number": PAUL_MSISDN, "code": texts.last},
                       csrf=token)
    assert again.status == 401


def test_unknown_numbers_get_the_same_page(client: Client, texts: Texts) -> None:
    known = client.post("/sign-in", {"number": PAUL_MSISDN})
    unknown = client.post("/sign-in", {"number": "+4930123456"})
    assert known.status == unknown.status == 200
    strip = re.compile(r'value="[^"]*"|\+[0-9]+')
    assert strip.sub("", known.body) == strip.sub("", unknown.body)
    assert len(texts.sent) == 1


def test_too_many_codes_for_a_number_are_refused(client: Client) -> None:
    statuses = [client.post("/sign-in", {"number": PAUL_MSISDN}).status
                for _ in range(SignInPolicy().per_number + 1)]
    assert statuses == [200] * SignInPolicy().per_number + [429]


def test_sign_out_ends_the_session_on_the_server(paul: Client) -> None:
    token = paul.jar["__Host-mps-session"]
    answer = paul.post("/sign-out", {})
    assert (answer.status, answer.location) == (303, "/sign-in")
    paul.jar["__Host-mps-session"] = token  # a copy of the cookie is worth nothing now
    assert paul.get("/devices").status == 303


def test_another_contracts_ids_are_not_found(paul: Client, store: SqliteStore) -> None:
    registry = Registry(store)
    pairing = ask_to_pair(registry, "health", LENA_MSISDN, "health-monitoring")
    prompt = store.pairing(pairing).prompt_id  # type: ignore[union-attr]
    token = paul.get("/prompts").csrf
    lena_device = make_device(9).eid
    for path in (f"/prompts/{prompt}/approve", f"/prompts/{prompt}/deny",
                 f"/apps/{pairing}/end", f"/apps/{pairing}/view",
                 "/esim/er-0123456789abcdef/approve"):
        answer = paul.post(path, {"field": "model", "device": lena_device}, csrf=token)
        assert answer.status == 404, path
    assert paul.get(f"/devices/{lena_device}").status == 404
    assert paul.get("/devices/made-up").status == 404
    assert store.pairing(pairing).state.value == "pending"  # type: ignore[union-attr]
    assert lena_device not in paul.get("/devices").body


def test_a_choice_beyond_the_trust_level_is_refused_and_changes_nothing(
        paul: Client, store: SqliteStore) -> None:
    pairing = ask_to_pair(Registry(store), "health", PAUL_MSISDN, "health-monitoring")
    prompt = store.pairing(pairing).prompt_id  # type: ignore[union-attr]
    token = paul.get("/prompts").csrf
    # A verified app may never see the IMEI, whatever the form says.
    answer = paul.post(f"/prompts/{prompt}/approve",
                       {"device": make_device(1).eid, "field": ["model", "imei"]}, csrf=token)
    assert answer.status == 400 and 'id="error"' in answer.body
    assert store.pairing(pairing).state.value == "pending"  # type: ignore[union-attr]
    answer = paul.post(f"/prompts/{prompt}/approve",
                       {"device": make_device(1).eid, "field": ["model"]}, csrf=token)
    assert (answer.status, answer.location) == (303, "/apps?done=approved")
    view = Registry(store).portal(PAUL).pairings()[0]
    assert (view.devices, view.fields) == ((make_device(1).eid,), ("model",))


def test_paul_widens_and_narrows_a_view(paul: Client, store: SqliteStore) -> None:
    registry = Registry(store)
    pairing = ask_to_pair(registry, "health", PAUL_MSISDN, "health-monitoring")
    prompt = store.pairing(pairing).prompt_id  # type: ignore[union-attr]
    registry.portal(PAUL).approve(prompt or "", devices=[make_device(1).eid], fields=["ip"])
    token = paul.get("/apps").csrf
    answer = paul.post(f"/apps/{pairing}/view", {"all_devices": "1",
                                                 "field": ["ip", "model"]}, csrf=token)
    assert answer.status == 303
    view = registry.portal(PAUL).pairings()[0]
    assert view.all_devices and set(view.fields) == {"ip", "model"}
    page = paul.get("/apps")
    assert 'value="model" checked' in page.body  # the form shows the current view


def test_another_contracts_esim_request_is_not_found(paul: Client,
                                                     store: SqliteStore) -> None:
    request = Registry(store).request_esim(make_device(9).eid, "delete", iccid_for(9),
                                           actor="operator:test")
    token = paul.get("/esim").csrf
    for verb in ("approve", "refuse"):
        assert paul.post(f"/esim/{request.id}/{verb}", {}, csrf=token).status == 404
    assert request.id not in paul.get("/esim").body
    assert store.esim_request(request.id).state.value == "awaiting-user"  # type: ignore[union-attr]


def test_the_operator_sees_the_codes_asked_for_a_number(
        client: Client, db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client.post("/sign-in", {"number": PAUL_MSISDN})
    assert cli.main(["codes", PAUL_MSISDN, "--db", str(db_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["contract"] == PAUL
    assert [c["state"] for c in shown["codes"]] == ["waiting"]
    assert cli.main(["codes", "not-a-number", "--db", str(db_path)]) == 2


def test_another_contracts_device_in_a_form_is_refused(paul: Client,
                                                       store: SqliteStore) -> None:
    pairing = ask_to_pair(Registry(store), "health", PAUL_MSISDN, "health-monitoring")
    prompt = store.pairing(pairing).prompt_id  # type: ignore[union-attr]
    token = paul.get("/prompts").csrf
    answer = paul.post(f"/prompts/{prompt}/approve",
                       {"device": [make_device(1).eid, make_device(9).eid],
                        "field": "model"}, csrf=token)
    assert answer.status in (400, 404)
    assert make_device(9).eid not in answer.body  # nothing of Lena's is echoed back
    assert store.pairing(pairing).state.value == "pending"  # type: ignore[union-attr]


def test_names_from_the_store_are_shown_as_text_never_as_markup(
        paul: Client, store: SqliteStore) -> None:
    store.upsert_app(App("sly", '<script>alert("x")</script><b>Sly', TrustLevel.VERIFIED,
                         ("health-monitoring",)))
    ask_to_pair(Registry(store), "sly", PAUL_MSISDN, "health-monitoring")
    body = paul.get("/prompts").body
    assert "<script>" not in body and "<b>Sly" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;Sly" in body

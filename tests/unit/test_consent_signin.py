"""Sign-in to the consent page: one-time codes (hashed, expiring, single use, limited
tries), rate limits per number and per client address, the same answer for numbers the
registry does not serve, and sessions with server-side expiry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from broker_bridge.storage import SqliteStore
from broker_bridge.storage.sql import SqlStore
from consent_web.errors import RateLimitedError, SignInRefusedError
from consent_web.signin import SignIn, SignInPolicy, token_hash
from tests.helpers import LENA, PAUL, PAUL_MSISDN, paul_and_apps
from tests.postgres_support import fresh_schema


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class Texts:
    """The text messages the operator would send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, int]] = []

    def __call__(self, contract: str, msisdn: str, code: str, expires_at: int) -> None:
        self.sent.append((contract, msisdn, code, expires_at))

    @property
    def last(self) -> str:
        return self.sent[-1][2]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """Paul's registry on each backend (the queries are the same portable SQL)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            found: SqlStore = SqliteStore(tmp_path / "registry.db")
        else:
            from broker_bridge.storage.postgres import PostgresStore

            url = stack.enter_context(fresh_schema("signin"))  # skips without a server
            found = PostgresStore(url, synchronous_commit="off")
        with found as s:
            paul_and_apps(s, devices=2)
            yield s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def texts() -> Texts:
    return Texts()


@pytest.fixture
def signin(store: SqlStore, texts: Texts, clock: Clock) -> SignIn:
    return SignIn(store, texts, clock=clock)


def test_a_code_signs_in_once_and_is_stored_only_as_a_hash(
        signin: SignIn, texts: Texts, store: SqlStore, tmp_path: Path) -> None:
    signin.request_code("+49 151 1234 5678", "10.0.0.1")
    assert [(c, m) for c, m, _, _ in texts.sent] == [(PAUL, PAUL_MSISDN)]
    code = texts.last
    assert len(code) == 6 and code.isdigit()
    stored = store.signin_codes(PAUL_MSISDN)[0]
    assert stored.code_hash is not None and code not in stored.code_hash
    token, session = signin.sign_in(PAUL_MSISDN, code, "10.0.0.1")
    assert session.contract_id == PAUL
    # The token is kept hashed: the session row names its hash, not the token.
    assert session.token_hash == token_hash(token) != token
    assert signin.session(token) == session
    with pytest.raises(SignInRefusedError):
        signin.sign_in(PAUL_MSISDN, code, "10.0.0.1")  # single use


def test_an_expired_code_is_refused(signin: SignIn, texts: Texts, clock: Clock) -> None:
    signin.request_code(PAUL_MSISDN, "10.0.0.1")
    clock.advance(SignInPolicy().code_ttl + 1)
    with pytest.raises(SignInRefusedError):
        signin.sign_in(PAUL_MSISDN, texts.last, "10.0.0.1")


def test_wrong_codes_use_up_the_code(signin: SignIn, texts: Texts) -> None:
    signin.request_code(PAUL_MSISDN, "10.0.0.1")
    right = texts.last
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(SignInPolicy().attempts):
        with pytest.raises(SignInRefusedError) as refused:
            signin.sign_in(PAUL_MSISDN, wrong, "10.0.0.1")
    with pytest.raises(SignInRefusedError) as late:
        signin.sign_in(PAUL_MSISDN, right, "10.0.0.1")
    # One message for wrong, expired and used: nothing to learn from the answer.
    assert str(late.value) == str(refused.value)


def test_an_unknown_number_gets_the_same_answer_and_no_text(
        signin: SignIn, texts: Texts, store: SqlStore) -> None:
    signin.request_code("+4930123456", "10.0.0.1")
    assert texts.sent == []
    assert store.signin_codes("+4930123456")[0].code_hash is None
    with pytest.raises(SignInRefusedError):
        signin.sign_in("+4930123456", "000000", "10.0.0.1")


@pytest.mark.parametrize("number", [PAUL_MSISDN, "+4930123456"])
def test_codes_per_number_are_limited(signin: SignIn, clock: Clock, number: str) -> None:
    policy = SignInPolicy()
    for n in range(policy.per_number):
        signin.request_code(number, f"10.0.0.{n}")
    with pytest.raises(RateLimitedError):
        signin.request_code(number, "10.0.0.99")
    clock.advance(policy.window + 1)
    signin.request_code(number, "10.0.0.99")  # the window has passed


def test_requests_per_client_address_are_limited(signin: SignIn) -> None:
    policy = SignInPolicy()
    for n in range(policy.per_client):
        signin.request_code(f"+49301234{n:04d}", "10.0.0.7")
    with pytest.raises(RateLimitedError):
        signin.request_code(PAUL_MSISDN, "10.0.0.7")
    signin.request_code(PAUL_MSISDN, "10.0.0.8")


def test_tries_per_client_address_are_limited(signin: SignIn, texts: Texts) -> None:
    for _ in range(SignInPolicy().tries_per_client):
        with pytest.raises(SignInRefusedError):
            signin.sign_in("+4930123456", "123456", "10.0.0.5")
    signin.request_code(PAUL_MSISDN, "10.0.0.6")
    with pytest.raises(RateLimitedError):
        signin.sign_in(PAUL_MSISDN, texts.last, "10.0.0.5")


def test_sessions_expire_on_the_server_and_end_at_sign_out(
        signin: SignIn, texts: Texts, clock: Clock) -> None:
    signin.request_code(PAUL_MSISDN, "10.0.0.1")
    token, _ = signin.sign_in(PAUL_MSISDN, texts.last, "10.0.0.1")
    clock.advance(SignInPolicy().session_ttl + 1)
    assert signin.session(token) is None
    signin.request_code(PAUL_MSISDN, "10.0.0.1")
    token, _ = signin.sign_in(PAUL_MSISDN, texts.last, "10.0.0.1")
    signin.sign_out(token)
    assert signin.session(token) is None
    assert signin.session("made-up-token") is None


def test_a_code_signs_in_to_its_own_contract_only(
        signin: SignIn, texts: Texts) -> None:
    signin.request_code(PAUL_MSISDN, "10.0.0.1")
    _, session = signin.sign_in(PAUL_MSISDN, texts.last, "10.0.0.1")
    assert session.contract_id != LENA


def test_a_malformed_number_is_a_clear_error(signin: SignIn) -> None:
    with pytest.raises(ValueError, match="international form"):
        signin.request_code("0151 1234", "10.0.0.1")

"""Sign-in by a one-time code sent to the user's number, and the browser sessions.

A code is six random digits, valid for ``code_ttl`` seconds, good for one sign-in and
``attempts`` wrong tries; only its HMAC (keyed with a registry secret) is stored. A number
the registry does not serve is answered exactly as a served one (no code is sent), so the
page does not tell who is a customer. Requests are rate limited per number and per client
address, counted in the store so that several page processes share the limits. A session
token is 256 random bits; the store keeps its SHA-256 only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from broker_bridge.model import SignInCode, WebSession, now_ms
from broker_bridge.registry import new_id
from broker_bridge.storage import Store
from consent_web.errors import RateLimitedError, SignInRefusedError
from mps_wire.identifiers import validate_msisdn

#: Delivers a code: (contract id, number, code, expiry in ms). The SMS of a real operator.
Deliver = Callable[[str, str, str, int], None]

SECRET_NAME = "consent-web-codes"  # noqa: S105 - the name of a stored secret
REFUSED = "the code is wrong, expired or already used: ask for a new one"


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    """How long codes and sessions live, and how many requests are allowed (per window)."""

    code_ttl: int = 300
    code_digits: int = 6
    attempts: int = 5
    window: int = 900
    per_number: int = 3
    per_client: int = 10
    tries_per_client: int = 10
    session_ttl: int = 1800

    def __post_init__(self) -> None:
        for name in ("code_ttl", "attempts", "window", "per_number", "per_client",
                     "tries_per_client", "session_ttl"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 6 <= self.code_digits <= 10:
            raise ValueError("code_digits must be 6 to 10")


def token_hash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


class SignIn:
    """Issues and checks sign-in codes and keeps sessions, on the registry's ``store``."""

    def __init__(self, store: Store, deliver: Deliver, *, policy: SignInPolicy | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.deliver = deliver
        self.policy = policy or SignInPolicy()
        self._clock = clock
        self._keys: dict[str, bytes] = {}

    def key(self, name: str) -> bytes:
        """The registry's secret ``name`` (the same in every page process), read once."""
        found = self._keys.get(name)
        if found is None:
            found = self._keys[name] = self.store.secret(name)
        return found

    def _hash(self, msisdn: str, code: str) -> str:
        return hmac.new(self.key(SECRET_NAME), f"{msisdn}\0{code}".encode(),
                        hashlib.sha256).hexdigest()

    def _throttle(self, key: str, limit: int, now: int) -> None:
        window = self.policy.window * 1000
        if self.store.throttle_count(key, now - window) >= limit:
            raise RateLimitedError("too many requests: try again later", self.policy.window)
        self.store.note_throttle(key, now)

    def request_code(self, msisdn: str, client: str) -> None:
        """Send a code to ``msisdn`` if the registry serves it; the same outcome either way.

        Raises ValueError for a malformed number, RateLimitedError over a limit.
        """
        try:
            msisdn = validate_msisdn(msisdn, field="number")
        except ValueError as exc:
            raise ValueError("enter the number in international form, e.g. "
                             "+4915112345678") from exc
        now = self._clock()
        self._throttle(f"client:{client}", self.policy.per_client, now)
        self._throttle(f"number:{msisdn}", self.policy.per_number, now)
        contract = self.store.contract_by_msisdn(msisdn)
        expires = now + self.policy.code_ttl * 1000
        # The same work for every number (a code, its hash, a row, an audit entry), so
        # that neither the page nor its timing tells which numbers are customers'.
        code = f"{secrets.randbelow(10 ** self.policy.code_digits):0{self.policy.code_digits}d}"
        hashed = self._hash(msisdn, code)
        served = contract.id if contract is not None else None
        self.store.add_signin_code(SignInCode(
            id=new_id("sc"), msisdn=msisdn, client=client, created_at=now, expires_at=expires,
            contract_id=served, code_hash=hashed if served else None))
        self.store.append_audit(f"web:{client}", "sign-in-code",
                                "sent" if served else "not-served", contract_id=served,
                                subject=msisdn, now=now)
        if contract is not None:
            self.deliver(contract.id, msisdn, code, expires)

    def sign_in(self, msisdn: str, code: str, client: str) -> tuple[str, WebSession]:
        """A new session for the right code: its token (for the cookie) and the session.

        Raises SignInRefusedError (one message for a wrong, expired or used code) or
        RateLimitedError.
        """
        now = self._clock()
        self._throttle(f"tries:{client}", self.policy.tries_per_client, now)
        try:
            msisdn = validate_msisdn(msisdn, field="number")
        except ValueError:
            raise SignInRefusedError(REFUSED) from None
        live = self.store.live_signin_code(msisdn, now)
        if live is None or live.code_hash is None or live.contract_id is None \
                or live.attempts >= self.policy.attempts:
            raise SignInRefusedError(REFUSED)
        if not hmac.compare_digest(self._hash(msisdn, code.strip()), live.code_hash):
            self.store.count_signin_attempt(live.id)
            self.store.append_audit(f"web:{client}", "sign-in", "wrong-code",
                                    contract_id=live.contract_id, subject=msisdn, now=now)
            raise SignInRefusedError(REFUSED)
        if not self.store.use_signin_code(live.id, now):
            raise SignInRefusedError(REFUSED)
        token = secrets.token_urlsafe(32)
        session = WebSession(token_hash=token_hash(token), contract_id=live.contract_id,
                             msisdn=msisdn, csrf=secrets.token_urlsafe(32), created_at=now,
                             expires_at=now + self.policy.session_ttl * 1000)
        self.store.add_web_session(session)
        self.store.append_audit(f"web:{client}", "sign-in", "ok",
                                contract_id=live.contract_id, subject=msisdn, now=now)
        return token, session

    def session(self, token: str) -> WebSession | None:
        """The live session of a cookie's token: None if unknown, ended or expired."""
        if not token or len(token) > 128:
            return None
        found = self.store.web_session(token_hash(token))
        if found is None or found.ended_at is not None or found.expires_at <= self._clock():
            return None
        return found

    def sign_out(self, token: str) -> None:
        """End the session of ``token`` (nothing if it has ended already)."""
        now = self._clock()
        found = self.session(token)
        if found is not None and self.store.end_web_session(found.token_hash, now):
            self.store.append_audit(f"user:{found.contract_id}@web", "sign-out", "ok",
                                    contract_id=found.contract_id, now=now)

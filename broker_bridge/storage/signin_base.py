"""The part of the storage interface the consent page's sign-in needs (schema version 9);
:class:`~broker_bridge.storage.base.Store` includes it."""

from __future__ import annotations

import abc

from broker_bridge.model import SignInCode, WebSession


class SignInStore(abc.ABC):
    """Sign-in codes, throttles and browser sessions of the consent page."""
    @abc.abstractmethod
    def add_signin_code(self, code: SignInCode) -> None:
        """Keep a newly issued sign-in code (hashed) or an unknown number's request."""

    @abc.abstractmethod
    def signin_codes(self, msisdn: str, *, limit: int = 20) -> list[SignInCode]:
        """The newest sign-in codes asked for ``msisdn``, newest first."""

    @abc.abstractmethod
    def live_signin_code(self, msisdn: str, now: int) -> SignInCode | None:
        """The newest unused, unexpired sign-in code of ``msisdn``."""

    @abc.abstractmethod
    def count_signin_attempt(self, code_id: str) -> int:
        """Count one wrong code tried against ``code_id``; the new count."""

    @abc.abstractmethod
    def use_signin_code(self, code_id: str, now: int) -> bool:
        """Mark the code used; False if it was used already or has expired (single use)."""

    @abc.abstractmethod
    def note_throttle(self, key: str, now: int) -> None:
        """Count one request under ``key`` (a number, a client address) at ``now``."""

    @abc.abstractmethod
    def throttle_count(self, key: str, since: int) -> int:
        """Requests counted under ``key`` since ``since``."""

    @abc.abstractmethod
    def add_web_session(self, session: WebSession) -> None:
        """Keep a new browser session."""

    @abc.abstractmethod
    def web_session(self, token_hash: str) -> WebSession | None:
        """The session of this token hash, ended or not."""

    @abc.abstractmethod
    def end_web_session(self, token_hash: str, now: int) -> bool:
        """End the session (sign-out); False if it had ended already."""

"""How an app names the user: by number, or by another reference to the contract."""

from __future__ import annotations

from mps_sdk.errors import RequestError
from mps_wire.errors import ErrorCode
from mps_wire.identifiers import IdentifierError, validate_msisdn


def who(msisdn: str | None, user: str | None) -> tuple[str | None, str | None]:
    """The user as (number, other reference) from exactly one of a number and a
    reference ``user``: a reference starting with ``+`` is a number; anything else the
    contract reference the user gave the app or the pseudonymous id the registry gave it
    at pairing (a pairing's ``contract``). ValueError for both or neither."""
    if (msisdn is None) == (user is None):
        raise ValueError("name the user by exactly one of msisdn and user")
    if user is None:
        return number(str(msisdn)), None
    if user.startswith("+"):
        return number(user), None
    return None, user


def number(msisdn: str) -> str:
    """``msisdn`` normalised, or :class:`RequestError` (invalid-identifier) before anything
    is sent."""
    try:
        return validate_msisdn(msisdn)
    except IdentifierError as exc:
        raise RequestError(ErrorCode.INVALID_IDENTIFIER, exc.message) from exc

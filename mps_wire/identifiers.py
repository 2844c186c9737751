"""Checks for the identifiers that enter the system: IMEI, ICCID, EID, IMSI, MSISDN.

Each ``validate_*`` returns the identifier in canonical form or raises
:class:`IdentifierError` naming what is wrong.
"""

from __future__ import annotations

import re

from mps_wire.errors import ErrorCode, ValidationError


class IdentifierError(ValidationError):
    """An identifier failed its format or check-digit test."""

    code = ErrorCode.INVALID_IDENTIFIER


_DIGITS = re.compile(r"[0-9]+")


# A digit's value once doubled in the Luhn sum, as a digit character ("7" -> 14 -> 1+4).
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_check_digit(payload: str) -> str:
    """Return the Luhn check digit that completes ``payload`` (a string of digits)."""
    if not _DIGITS.fullmatch(payload):
        raise ValueError(f"Luhn payload must be digits, got {payload!r}")
    # Double every second digit counting from the right of the payload, since the
    # check digit will take the rightmost position. Summing the ASCII codes and taking
    # away 48 per digit keeps the loop in C (registrations check two numbers each).
    rev = payload[::-1]
    total = sum(rev[0::2].translate(_DOUBLED).encode()) + sum(rev[1::2].encode())
    total -= 48 * len(payload)
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the last digit of ``number`` is its Luhn check digit."""
    return (
        len(number) >= 2
        and _DIGITS.fullmatch(number) is not None
        and luhn_check_digit(number[:-1]) == number[-1]
    )


def eid_check_digits(first30: str) -> str:
    """Return the two ISO 7064 mod 97-10 check digits for the first 30 digits of an EID."""
    if len(first30) != 30 or not _DIGITS.fullmatch(first30):
        raise ValueError("an EID body is exactly 30 decimal digits")
    return f"{98 - (int(first30 + '00') % 97):02d}"


def _field(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(f"{field} must be a string, got {type(value).__name__}", field=field)
    return value.strip()


def validate_imei(value: object, *, field: str = "imei") -> str:
    """A 15-digit IMEI whose last digit is its Luhn check digit."""
    s = _field(value, field)
    if len(s) != 15 or not _DIGITS.fullmatch(s):
        raise IdentifierError(f"{field} must be 15 digits, got {s!r}", field=field)
    if not luhn_valid(s):
        raise IdentifierError(f"{field} {s} fails its Luhn check digit", field=field)
    return s


def validate_iccid(value: object, *, field: str = "iccid") -> str:
    """A 19- or 20-digit ICCID starting with the telecom prefix 89, Luhn-checked.

    A trailing ``F`` filler (as read from EF.ICCID) is dropped.
    """
    s = _field(value, field).upper().rstrip("F")
    if len(s) not in (19, 20) or not _DIGITS.fullmatch(s):
        raise IdentifierError(f"{field} must be 19 or 20 digits, got {s!r}", field=field)
    if not s.startswith("89"):
        raise IdentifierError(f"{field} {s} does not start with the telecom prefix 89", field=field)
    if not luhn_valid(s):
        raise IdentifierError(f"{field} {s} fails its Luhn check digit", field=field)
    return s


def validate_eid(value: object, *, field: str = "eid") -> str:
    """A 32-digit EID whose last two digits pass ISO 7064 mod 97-10."""
    s = _field(value, field)
    if len(s) != 32 or not _DIGITS.fullmatch(s):
        raise IdentifierError(f"{field} must be 32 digits, got {s!r}", field=field)
    if int(s) % 97 != 1:
        raise IdentifierError(f"{field} {s} fails its mod 97 check digits", field=field)
    return s


def validate_device_id(value: object, *, field: str = "device id") -> str:
    """A device's id on the wire: its EID (32 digits), or for a device with a plain SIM,
    which has no EID, its ICCID (19 or 20 digits)."""
    s = _field(value, field)
    return validate_iccid(s, field=field) if len(s) < 32 else validate_eid(s, field=field)


def validate_imsi(value: object, *, field: str = "imsi") -> str:
    """An IMSI: 6 to 15 digits (MCC + MNC + MSIN)."""
    s = _field(value, field)
    if not 6 <= len(s) <= 15 or not _DIGITS.fullmatch(s):
        raise IdentifierError(f"{field} must be 6 to 15 digits, got {s!r}", field=field)
    return s


def validate_msisdn(value: object, *, field: str = "msisdn") -> str:
    """An E.164 number: ``+`` then a non-zero country digit and at most 15 digits in all.

    Spaces, dashes and dots are accepted as separators and removed.
    """
    s = _field(value, field)
    compact = re.sub(r"[ .\-]", "", s)
    if not re.fullmatch(r"\+[1-9][0-9]{1,14}", compact):
        raise IdentifierError(
            f"{field} must be an E.164 number like +4915112345678, got {s!r}", field=field
        )
    return compact


def make_imei(tac: str, serial: str) -> str:
    """Build a valid IMEI from an 8-digit TAC and a 6-digit serial number."""
    body = f"{tac}{serial}"
    if len(body) != 14 or not _DIGITS.fullmatch(body):
        raise ValueError("an IMEI body is an 8-digit TAC and a 6-digit serial")
    return body + luhn_check_digit(body)


def make_iccid(body: str) -> str:
    """Build a valid ICCID from its first 18 or 19 digits (starting with 89)."""
    if len(body) not in (18, 19) or not _DIGITS.fullmatch(body) or not body.startswith("89"):
        raise ValueError("an ICCID body is 18 or 19 digits starting with 89")
    return body + luhn_check_digit(body)


def make_eid(first30: str) -> str:
    """Build a valid EID from its first 30 digits."""
    return first30 + eid_check_digits(first30)

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mps_wire.identifiers import (
    IdentifierError,
    eid_check_digits,
    luhn_check_digit,
    luhn_valid,
    make_eid,
    make_iccid,
    make_imei,
    validate_eid,
    validate_iccid,
    validate_imei,
    validate_imsi,
    validate_msisdn,
)

# Widely published examples: the IMEI used to illustrate the Luhn check, and the EID of the
# GSMA SGP.26 test eUICC certificates.
KNOWN_IMEI = "490154203237518"
KNOWN_EID = "89049032123451234512345678901235"


def test_known_imei_is_valid() -> None:
    assert validate_imei(KNOWN_IMEI) == KNOWN_IMEI
    assert luhn_check_digit(KNOWN_IMEI[:-1]) == "8"


@pytest.mark.parametrize("bad", ["490154203237517", "49015420323751", "4901542032375180",
                                 "49015420323751a", ""])
def test_bad_imei_rejected(bad: str) -> None:
    with pytest.raises(IdentifierError) as err:
        validate_imei(bad)
    assert err.value.field == "imei"
    assert err.value.code == "invalid-identifier"


def test_imei_wrong_type() -> None:
    with pytest.raises(IdentifierError, match="must be a string"):
        validate_imei(490154203237518)


def test_known_eid_check_digits() -> None:
    assert validate_eid(KNOWN_EID) == KNOWN_EID
    assert eid_check_digits(KNOWN_EID[:30]) == "35"


@pytest.mark.parametrize("bad", ["89049032123451234512345678901234",
                                 "8904903212345123451234567890123",
                                 "8904903212345123451234567890123x"])
def test_bad_eid_rejected(bad: str) -> None:
    with pytest.raises(IdentifierError, match="eid"):
        validate_eid(bad)


def test_iccid_luhn_and_filler() -> None:
    iccid = make_iccid("894900000000000001")
    assert len(iccid) == 19
    assert validate_iccid(iccid) == iccid
    assert validate_iccid(iccid + "F") == iccid  # as read from EF.ICCID
    broken = iccid[:-1] + str((int(iccid[-1]) + 1) % 10)
    with pytest.raises(IdentifierError, match="Luhn"):
        validate_iccid(broken)
    with pytest.raises(IdentifierError, match="89"):
        validate_iccid(make_iccid("894900000000000001").replace("89", "88", 1))


def test_msisdn_e164() -> None:
    assert validate_msisdn("+49 151 1234-5678") == "+4915112345678"
    for bad in ["4915112345678", "+0151", "+1234567890123456", "+49abc", "+"]:
        with pytest.raises(IdentifierError, match=r"E\.164"):
            validate_msisdn(bad)


def test_imsi() -> None:
    assert validate_imsi("262011234567890") == "262011234567890"
    with pytest.raises(IdentifierError):
        validate_imsi("26201123456789012")


@given(st.from_regex(r"[0-9]{14}", fullmatch=True))
def test_made_imei_always_valid_and_single_digit_error_detected(body: str) -> None:
    imei = make_imei(body[:8], body[8:])
    assert luhn_valid(imei)
    # Luhn detects every single-digit substitution.
    pos = len(body) // 2
    changed = imei[:pos] + str((int(imei[pos]) + 1) % 10) + imei[pos + 1:]
    assert not luhn_valid(changed)


@given(st.from_regex(r"[0-9]{30}", fullmatch=True))
def test_made_eid_always_valid_and_adjacent_swap_detected(body: str) -> None:
    eid = make_eid(body)
    assert validate_eid(eid) == eid
    if body[10] != body[11]:
        swapped = eid[:10] + eid[11] + eid[10] + eid[12:]
        with pytest.raises(IdentifierError):
            validate_eid(swapped)


def _luhn_by_the_book(payload: str) -> str:
    """The Luhn check digit spelled out digit by digit (ISO/IEC 7812-1 Annex B), against
    which the table-driven one is held."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return str((10 - total % 10) % 10)


@given(st.from_regex(r"[0-9]{1,40}", fullmatch=True))
def test_luhn_check_digit_matches_the_definition(payload: str) -> None:
    assert luhn_check_digit(payload) == _luhn_by_the_book(payload)


@pytest.mark.parametrize("bad", ["", "12a4", "١٢٣", "12 3"])
def test_luhn_check_digit_refuses_what_is_not_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="must be digits"):
        luhn_check_digit(bad)

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mps_esim import simfiles


def test_iccid_swapped_bcd_matches_the_card_layout() -> None:
    data = simfiles.encode_iccid("8949000000000000017")
    assert data[:2] == bytes.fromhex("9894")
    assert data[-1] == 0xF7  # last digit 7 in the low nibble, filler F in the high one
    assert simfiles.decode_iccid(data) == "8949000000000000017"


@given(st.from_regex(r"[0-9]{6,15}", fullmatch=True))
def test_imsi_round_trip(imsi: str) -> None:
    data = simfiles.encode_imsi(imsi)
    assert len(data) == 9
    assert simfiles.decode_imsi(data) == imsi


def test_imsi_known_encoding() -> None:
    # TS 31.102 example shape: 15 digits -> length 8, parity nibble 9 first.
    assert simfiles.encode_imsi("262011234567890").hex() == "082926102143658709"


def test_decode_rejects_non_digits() -> None:
    with pytest.raises(ValueError, match="non-digit"):
        simfiles.decode_iccid(bytes.fromhex("98A40000000000000000"))

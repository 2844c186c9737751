"""The BER-TLV codec: spec-shaped vectors, round trips, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mps_esim import tlv

# (tag, value hex, encoding hex): shapes that occur in SGP.22 and ISO 7816.
VECTORS = [
    (0x5A, "89049032000000000000000000000000", "5A1089049032000000000000000000000000"),
    (0x5C, "5A", "5C015A"),
    (0xBF3E, "5C015A", "BF3E035C015A"),
    (0x5F37, "00" * 64, "5F3740" + "00" * 64),
    (0x7F21, "", "7F2100"),
    (0x80, "AB" * 127, "807F" + "AB" * 127),
    (0x80, "AB" * 128, "808180" + "AB" * 128),
    (0x86, "01" * 256, "86820100" + "01" * 256),
    (0x86, "02" * 65536, "8683010000" + "02" * 65536),
    (0x9F65, "FF", "9F6501FF"),
    (0x9F8101, "", "9F810100"),
]


@pytest.mark.parametrize(("tag", "value", "encoded"), VECTORS)
def test_vectors_encode_and_decode(tag: int, value: str, encoded: str) -> None:
    raw = bytes.fromhex(encoded)
    assert tlv.encode(tag, bytes.fromhex(value)) == raw
    item = tlv.decode_one(raw)
    assert (item.tag, item.value) == (tag, bytes.fromhex(value))
    assert item.encode() == raw


def test_constructed_children_and_find() -> None:
    inner = tlv.encode(0x5C, b"\x5a") + tlv.encode(0x80, b"x")
    outer = tlv.decode_one(tlv.encode(0xBF3E, inner))
    assert outer.constructed
    assert [c.tag for c in outer.children()] == [0x5C, 0x80]
    found = outer.find(0x80)
    assert found is not None and found.value == b"x"
    assert outer.find(0x81) is None
    assert not outer.children()[0].constructed


def test_primitive_has_no_children() -> None:
    with pytest.raises(tlv.TlvError, match="primitive"):
        tlv.Tlv(0x5A, b"\x01").children()


def test_explicit_constructed_flag_and_equality() -> None:
    assert tlv.Tlv(0xA0, b"").constructed
    assert not tlv.Tlv(0xA0, b"", constructed=False).constructed
    assert tlv.Tlv(0x5A, bytearray(b"a")) == tlv.Tlv(0x5A, b"a")
    assert hash(tlv.Tlv(0x5A, b"a")) == hash(tlv.Tlv(0x5A, b"a"))
    assert tlv.Tlv(0x5A, b"a") != tlv.Tlv(0x5A, b"b")


def test_decode_several_and_iterate() -> None:
    data = tlv.encode(0x80, b"a") + tlv.encode(0x81, b"") + tlv.encode(0xA2, tlv.encode(0x4F, b"1"))
    assert [t.tag for t in tlv.decode(data)] == [0x80, 0x81, 0xA2]
    assert [t.tag for t in tlv.iter_decode(memoryview(data))] == [0x80, 0x81, 0xA2]
    assert tlv.decode(b"") == []


@pytest.mark.parametrize(("hex_input", "message"), [
    ("", "empty"),
    ("5A", "length missing"),
    ("5A05010203", "claims 5 bytes"),
    ("BF", "truncated tag"),
    ("BF3E", "length missing"),
    ("BF8001", "shortest form"),           # leading zero bits in the tag number
    ("BFFFFF0100", "longer than 3 bytes"),  # four tag bytes
    ("5A80", "indefinite"),
    ("5A84000000010A", "too long"),          # four length bytes
    ("5A81", "truncated length"),
    ("5A8105" + "00" * 5, "shortest form"),  # 0x81 for a length under 128
    ("5A820010" + "00" * 16, "shortest form"),
    ("5A0100FF", "trailing"),                # garbage after the one TLV
    ("A1025A05", "claims 5 bytes"),          # inner length runs past its parent
    ("A1025AFF", "too long"),                # inner length form of 127 bytes
    ("A1025A81", "truncated length"),
])
def test_malformed_one(hex_input: str, message: str) -> None:
    with pytest.raises(tlv.TlvError, match=message):
        tlv.decode_one(bytes.fromhex(hex_input))


def test_trailing_garbage_in_a_sequence() -> None:
    with pytest.raises(tlv.TlvError, match="length missing"):
        tlv.decode(bytes.fromhex("5A0100" + "80"))
    with pytest.raises(tlv.TlvError):
        tlv.decode(bytes.fromhex("5A0100" + "8005AA"))


def test_error_is_a_value_error_with_offset() -> None:
    with pytest.raises(ValueError) as info:
        tlv.decode(bytes.fromhex("5A01008003"))
    assert isinstance(info.value, tlv.TlvError)
    assert info.value.offset == 3


def nested(depth: int) -> bytes:
    data = tlv.encode(0x80, b"")
    for _ in range(depth):
        data = tlv.encode(0xA0, data)
    return data


def test_depth_limit() -> None:
    assert tlv.decode_one(nested(tlv.MAX_DEPTH)).tag == 0xA0
    with pytest.raises(tlv.TlvError, match="nested too deeply"):
        tlv.decode_one(nested(tlv.MAX_DEPTH + 1))
    with pytest.raises(tlv.TlvError, match="nested too deeply"):
        tlv.decode(nested(3), max_depth=2)
    assert tlv.decode(nested(3), max_depth=3)


def test_deep_hostile_nesting_does_not_recurse_unbounded() -> None:
    # 10,000 levels of "A0 81 xx" style nesting would blow the stack without the limit.
    data = b"\x80\x00"
    for _ in range(2000):
        data = tlv.encode(0xA0, data)
    with pytest.raises(tlv.TlvError, match="nested too deeply"):
        tlv.decode(data)


@pytest.mark.parametrize("tag", [-1, 0x1F, 0x5A5A, 0xBF80, 0xBFFF, 0x1FFFFFFF,
                                 0xBF017F, 0xBF8180])
def test_encode_rejects_malformed_tags(tag: int) -> None:
    with pytest.raises(tlv.TlvError):
        tlv.encode(tag, b"")


def test_encode_rejects_values_longer_than_three_length_bytes() -> None:
    with pytest.raises(tlv.TlvError, match="longer than"):
        tlv.encode(0x86, bytes(tlv.MAX_LENGTH + 1))


# --- properties ------------------------------------------------------------------------

def _primitive_tags() -> st.SearchStrategy[int]:
    one = st.integers(0, 0xFF).filter(lambda b: b & 0x1F != 0x1F)
    two = st.tuples(st.integers(0, 7).map(lambda c: (c << 5) | 0x1F),
                    st.integers(0x1F, 0x7F)).map(lambda t: (t[0] << 8) | t[1])
    three = st.tuples(st.integers(0, 7).map(lambda c: (c << 5) | 0x1F),
                      st.integers(0x81, 0xFF), st.integers(0, 0x7F)).map(
        lambda t: (t[0] << 16) | (t[1] << 8) | t[2])
    return st.one_of(one, two, three).filter(lambda t: not tlv.Tlv(t, b"").constructed)


@given(tag=_primitive_tags(), value=st.binary(max_size=600))
def test_round_trip_any_tag_and_value(tag: int, value: bytes) -> None:
    encoded = tlv.encode(tag, value)
    item = tlv.decode_one(encoded, max_depth=0)
    assert (item.tag, item.value, item.constructed) == (tag, value, False)
    assert item.encode() == encoded


tree = st.recursive(
    st.tuples(st.sampled_from([0x5A, 0x80, 0x9F65, 0x5F37]), st.binary(max_size=40)).map(
        lambda t: tlv.encode(*t)),
    lambda children: st.tuples(st.sampled_from([0xA0, 0xBF3E, 0x7F21, 0x30]),
                               st.lists(children, max_size=4)).map(
        lambda t: tlv.encode(t[0], b"".join(t[1]))),
    max_leaves=20,
)


@given(st.lists(tree, max_size=4))
def test_round_trip_trees(items: list[bytes]) -> None:
    data = b"".join(items)
    decoded = tlv.decode(data)
    assert b"".join(t.encode() for t in decoded) == data

    def walk(t: tlv.Tlv) -> bytes:
        if not t.constructed:
            return t.encode()
        return tlv.encode(t.tag, b"".join(walk(c) for c in t.children()))

    assert b"".join(walk(t) for t in decoded) == data


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_tlv_error(data: bytes) -> None:
    try:
        decoded = tlv.decode(data)
    except tlv.TlvError:
        return
    assert b"".join(t.encode() for t in decoded) == data

"""SCP03t segment protection against a second, step-by-step implementation.

The reference below builds everything from the AES block function alone: CBC chaining by
hand, AES-CMAC by hand (RFC 4493 subkeys), the 80 00.. padding, the counter-derived IV and
the MAC chaining. It checks itself against FIPS-197 and RFC 4493 published vectors first;
then the code under test must produce byte-identical segments.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_esim import tlv
from mps_esim.crypto.errors import Scp03tError
from mps_esim.crypto.kdf import SessionKeys
from mps_esim.crypto.scp03t import (
    MAX_PLAIN_ENCRYPTED,
    MAX_PLAIN_MAC_ONLY,
    MAX_SEGMENT,
    Scp03t,
    pad,
    unpad,
)

# --- the reference -------------------------------------------------------------------------


def aes_block(key: bytes, block: bytes) -> bytes:
    assert len(block) == 16
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # one block: the raw cipher
    return enc.update(block) + enc.finalize()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def ref_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    out, prev = b"", iv
    for i in range(0, len(data), 16):
        prev = aes_block(key, xor(prev, data[i:i + 16]))
        out += prev
    return out


def _dbl(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def ref_cmac(key: bytes, message: bytes) -> bytes:
    k1 = _dbl(aes_block(key, bytes(16)))
    k2 = _dbl(k1)
    blocks = [message[i:i + 16] for i in range(0, len(message), 16)] or [b""]
    last = blocks[-1]
    # A complete last block is masked with K1, a padded one with K2 (RFC 4493 2.4).
    complete = len(last) == 16
    last = xor(last if complete else last + b"\x80" + bytes(15 - len(last)), k1 if complete else k2)
    state = bytes(16)
    for block in [*blocks[:-1], last]:
        state = aes_block(key, xor(state, block))
    return state


def ref_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    return bytes((0x82,)) + n.to_bytes(2, "big")


class Reference:
    """SCP03t as SGP.22 describes it, one step after the other."""

    def __init__(self, enc: bytes, mac: bytes, mcv: bytes) -> None:
        self.enc, self.mac, self.mcv, self.counter = enc, mac, mcv, 1

    def segment(self, tag: int, data: bytes) -> bytes:
        if tag == 0x88:
            body = data
        else:
            padded = data + b"\x80"
            padded += bytes(-len(padded) % 16)
            iv = aes_block(self.enc, self.counter.to_bytes(16, "big"))
            body = ref_cbc(self.enc, iv, padded)
        header = bytes((tag,)) + ref_length(len(body) + 8)
        full = ref_cmac(self.mac, self.mcv + header + body)
        self.mcv = full
        self.counter += 1
        return header + body + full[:8]


# --- the reference checks itself -----------------------------------------------------------

RFC4493_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC4493_MESSAGE = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")


@pytest.mark.parametrize(("length", "mac"), [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
])
def test_reference_cmac_matches_rfc4493(length: int, mac: str) -> None:
    assert ref_cmac(RFC4493_KEY, RFC4493_MESSAGE[:length]).hex() == mac


def test_reference_aes_matches_fips197() -> None:
    key = bytes(range(16))
    assert aes_block(key, bytes.fromhex("00112233445566778899aabbccddeeff")).hex() == (
        "69c4e0d86a7b0430d8cdb78070b4c55a")


# --- the code under test -------------------------------------------------------------------

KEYS = SessionKeys(initial_mcv=bytes.fromhex("00112233445566778899aabbccddeeff"),
                   s_enc=bytes.fromhex("000102030405060708090a0b0c0d0e0f"),
                   s_mac=bytes.fromhex("f0e0d0c0b0a090807060504030201000"))


def reference() -> Reference:
    return Reference(KEYS.s_enc, KEYS.s_mac, KEYS.initial_mcv)


# A package's worth of segments: ConfigureISDP, StoreMetadata, then profile segments of
# several sizes (one block exactly, padding to a new block, and the largest segment).
SEQUENCE = [
    (0x87, bytes.fromhex("bf2400")),
    (0x88, bytes.fromhex("bf251f5a0a98940000000000000010f8910353505292") + b"MPS profile"),
    (0x86, bytes(range(15))),
    (0x86, bytes(range(16))),
    (0x86, bytes(range(256)) * 3 + bytes(range(MAX_PLAIN_ENCRYPTED - 768))),
    (0x88, b"\x01" * MAX_PLAIN_MAC_ONLY),
]


def test_segments_match_the_reference_byte_for_byte() -> None:
    channel, ref = Scp03t(KEYS), reference()
    for tag, data in SEQUENCE:
        assert channel.wrap(tag, data) == ref.segment(tag, data)
    assert channel.counter == len(SEQUENCE) + 1


# The first two segments of SEQUENCE as literals, computed once with the reference: a change
# in the reference or in the code shows here.
FIRST_SEGMENTS = [
    "871814f13a0eb6367c49a710e2dcd99ad5b4f446f619c3a50994",
    "8829bf251f5a0a98940000000000000010f89103535052924d50532070726f66696c65f01c4086fbf7c270",
]


def test_first_segments_literal() -> None:
    channel, ref = Scp03t(KEYS), reference()
    for (tag, data), literal in zip(SEQUENCE, FIRST_SEGMENTS, strict=False):
        assert ref.segment(tag, data).hex() == literal
        assert channel.wrap(tag, data).hex() == literal


def test_mac_only_segments_advance_the_counter() -> None:
    channel, ref = Scp03t(KEYS), reference()
    channel.wrap(0x88, b"metadata")
    ref.segment(0x88, b"metadata")
    # The next encrypted segment uses IV(counter=2): only equal if the MAC-only one counted.
    assert channel.wrap(0x86, b"profile") == ref.segment(0x86, b"profile")


def test_unwrap_reverses_wrap_in_order() -> None:
    sender, receiver = Scp03t(KEYS), Scp03t(KEYS)
    for tag, data in SEQUENCE:
        assert receiver.unwrap(sender.wrap(tag, data)) == (tag, data)


def test_reference_segments_unwrap() -> None:
    ref, receiver = reference(), Scp03t(KEYS)
    for tag, data in SEQUENCE:
        assert receiver.unwrap(ref.segment(tag, data)) == (tag, data)


@pytest.mark.parametrize("position", [0, 2, 5, -9, -1])
def test_any_flipped_bit_is_a_security_error(position: int) -> None:
    segment = bytearray(Scp03t(KEYS).wrap(0x86, b"profile element data" * 3))
    index = position if position >= 0 else len(segment) + position
    if index < 2:  # tag and length: a structure change, not a MAC one
        index = 3
    segment[index] ^= 0x01
    with pytest.raises(Scp03tError) as info:
        Scp03t(KEYS).unwrap(bytes(segment))
    assert info.value.security


def test_reordered_segments_fail_the_mac_chain() -> None:
    sender = Scp03t(KEYS)
    first, second = sender.wrap(0x86, b"one"), sender.wrap(0x86, b"two")
    receiver = Scp03t(KEYS)
    with pytest.raises(Scp03tError) as info:
        receiver.unwrap(second)
    assert info.value.security
    assert receiver.unwrap(first) == (0x86, b"one")  # a refused segment changes nothing


def test_replayed_segment_fails() -> None:
    sender, receiver = Scp03t(KEYS), Scp03t(KEYS)
    segment = sender.wrap(0x86, b"once")
    receiver.unwrap(segment)
    with pytest.raises(Scp03tError):
        receiver.unwrap(segment)


def test_other_keys_fail() -> None:
    other = SessionKeys(KEYS.initial_mcv, KEYS.s_enc, bytes(16))
    with pytest.raises(Scp03tError) as info:
        Scp03t(other).unwrap(Scp03t(KEYS).wrap(0x87, b"x"))
    assert info.value.security


@pytest.mark.parametrize("segment", [
    "", "86", "8601", "8700", "860800000000000000",  # no room for data
    "8609" + "00" * 9,  # ciphertext not a whole block
    "8918" + "00" * 24,  # not an SCP03t tag
    "86180000",  # truncated TLV
])
def test_malformed_segments_are_structure_errors(segment: str) -> None:
    with pytest.raises(Scp03tError) as info:
        Scp03t(KEYS).unwrap(bytes.fromhex(segment))
    assert not info.value.security


def test_bad_padding_is_a_security_error() -> None:
    # A correctly MACed segment whose plaintext has no 80 marker.
    ref = Reference(KEYS.s_enc, KEYS.s_mac, KEYS.initial_mcv)
    iv = aes_block(KEYS.s_enc, (1).to_bytes(16, "big"))
    body = ref_cbc(KEYS.s_enc, iv, bytes(16))
    header = bytes((0x86, len(body) + 8))
    mac = ref_cmac(KEYS.s_mac, ref.mcv + header + body)[:8]
    with pytest.raises(Scp03tError) as info:
        Scp03t(KEYS).unwrap(header + body + mac)
    assert info.value.security


def test_segments_never_exceed_1020_bytes() -> None:
    channel = Scp03t(KEYS)
    for tag in (0x86, 0x88):
        for segment in channel.wrap_all(tag, bytes(5000)):
            assert len(segment) <= MAX_SEGMENT
            assert tlv.decode_one(segment).tag == tag


def test_too_much_for_one_segment_is_refused() -> None:
    with pytest.raises(Scp03tError):
        Scp03t(KEYS).wrap(0x86, bytes(MAX_PLAIN_ENCRYPTED + 1))
    with pytest.raises(Scp03tError):
        Scp03t(KEYS).wrap(0x88, bytes(MAX_PLAIN_MAC_ONLY + 1))


def test_wrap_all_cuts_and_the_reference_agrees() -> None:
    data = bytes(range(256)) * 9
    channel, ref = Scp03t(KEYS), reference()
    segments = channel.wrap_all(0x86, data)
    assert len(segments) == 3
    expected = [ref.segment(0x86, data[i:i + MAX_PLAIN_ENCRYPTED])
                for i in range(0, len(data), MAX_PLAIN_ENCRYPTED)]
    assert segments == expected


def test_padding_helpers() -> None:
    assert pad(b"") == b"\x80" + bytes(15)
    assert pad(bytes(16)) == bytes(16) + b"\x80" + bytes(15)
    assert unpad(pad(b"abc")) == b"abc"
    for bad in (bytes(16), b"\x80" + bytes(16), b"abc\x81" + bytes(12)):
        with pytest.raises(Scp03tError):
            unpad(bad)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x86, 0x87, 0x88]), st.binary(max_size=1100)),
                min_size=1, max_size=6))
def test_any_sequence_matches_the_reference_and_round_trips(
        items: list[tuple[int, bytes]]) -> None:
    sender, receiver, ref = Scp03t(KEYS), Scp03t(KEYS), reference()
    for tag, data in items:
        limit = MAX_PLAIN_MAC_ONLY if tag == 0x88 else MAX_PLAIN_ENCRYPTED
        chunk = data[:limit]
        segment = sender.wrap(tag, chunk)
        assert segment == ref.segment(tag, chunk)
        assert receiver.unwrap(segment) == (tag, chunk)

"""COSE_Sign1 with ES256 (RFC 9052): the structure as the RFC lays it out, checked
independently of the signing code, every tampering refused, hostile input bounded."""

from __future__ import annotations

from dataclasses import replace

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_wire import codec, schema
from mps_wire.codec import RefusedTagError
from mps_wire.cose import (
    REGISTRATION_AAD,
    CoseError,
    decode_sign1,
    is_sign1,
    key_id,
    load_private_key,
    load_public_key,
    public_key_der,
    sig_structure,
    sign1,
    verify1,
)
from mps_wire.errors import DecodeError, ErrorCode, WireError
from mps_wire.registration import decode_registration, digest_of, encode_registration
from tests.helpers import make_device

KEY = ec.derive_private_key(0x1234_5678_9ABC_DEF0_1122_3344_5566_7788, ec.SECP256R1())
OTHER = ec.derive_private_key(0x0FED_CBA9_8765_4321, ec.SECP256R1())


def tagged(items: list[object], tag: int = 18) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(tag, items))


def test_structure_follows_rfc_9052_and_verifies_independently() -> None:
    message = sign1(b"payload", KEY, external_aad=b"aad")
    outer = cbor2.loads(message)
    assert message[0] == 0xD2 and is_sign1(message)  # tag 18, one byte
    assert isinstance(outer, cbor2.CBORTag) and outer.tag == 18
    protected, unprotected, payload, signature = outer.value
    assert cbor2.loads(protected) == {1: -7, 4: key_id(KEY.public_key())}
    assert dict(unprotected) == {} and payload == b"payload" and len(signature) == 64
    # Sig_structure built here by hand, the signature checked with cryptography alone.
    to_be_signed = cbor2.dumps(["Signature1", protected, b"aad", b"payload"])
    assert to_be_signed == sig_structure(protected, b"payload", b"aad")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    KEY.public_key().verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        KEY.public_key().verify(der, to_be_signed + b"x", ec.ECDSA(hashes.SHA256()))
    assert verify1(decode_sign1(message), KEY.public_key(), external_aad=b"aad") == b"payload"


def test_key_id_is_the_start_of_the_spki_hash() -> None:
    import hashlib

    spki = public_key_der(KEY.public_key())
    assert key_id(KEY.public_key()) == hashlib.sha256(spki).digest()[:8]
    assert key_id(KEY.public_key()) != key_id(OTHER.public_key())


def _resign(message: bytes, change: int) -> bytes:
    items = list(cbor2.loads(message).value)
    blob = bytearray(items[change])
    blob[len(blob) // 2] ^= 0x01
    items[change] = bytes(blob)
    return tagged(items)


@pytest.mark.parametrize("part", [0, 2, 3], ids=["protected", "payload", "signature"])
def test_any_flipped_bit_is_refused(part: int) -> None:
    message = sign1(b'{"a": 1}' * 4, KEY)
    with pytest.raises((CoseError, DecodeError)):
        verify1(decode_sign1(_resign(message, part)), KEY.public_key())


def test_wrong_key_wrong_aad_and_zero_signature_are_refused() -> None:
    message = decode_sign1(sign1(b"x", KEY, external_aad=REGISTRATION_AAD))
    with pytest.raises(CoseError, match="does not verify") as caught:
        verify1(message, OTHER.public_key(), external_aad=REGISTRATION_AAD)
    assert caught.value.code is ErrorCode.BAD_SIGNATURE
    with pytest.raises(CoseError):
        verify1(message, KEY.public_key())  # signed for registrations, checked without
    with pytest.raises(CoseError):
        verify1(replace(message, signature=bytes(64)), KEY.public_key(),
                external_aad=REGISTRATION_AAD)


def test_p384_keys_are_not_es256() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(CoseError, match="P-256"):
        sign1(b"x", p384)
    with pytest.raises(ValueError, match="P-256"):
        load_public_key(p384.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


PROTECTED = cbor2.dumps({1: -7})
SIG = bytes(64)

MALFORMED = [
    pytest.param(cbor2.dumps([PROTECTED, {}, b"p", SIG]), "tag 18", id="untagged"),
    pytest.param(tagged([PROTECTED, {}, b"p", SIG], tag=17), "tag", id="cose-mac0-tag"),
    pytest.param(tagged([PROTECTED, {}, b"p"]), "four items", id="three-items"),
    pytest.param(tagged([{1: -7}, {}, b"p", SIG]), "protected", id="protected-map"),
    pytest.param(tagged([b"", {}, b"p", SIG]), "protected", id="protected-empty"),
    pytest.param(tagged([PROTECTED, [], b"p", SIG]), "unprotected", id="unprotected-list"),
    pytest.param(tagged([PROTECTED, {}, None, SIG]), "detached", id="detached-payload"),
    pytest.param(tagged([PROTECTED, {}, "p", SIG]), "payload", id="text-payload"),
    pytest.param(tagged([PROTECTED, {}, b"p", SIG[:63]]), "64 bytes", id="short-signature"),
    pytest.param(tagged([cbor2.dumps({1: -35}), {}, b"p", SIG]), "ES256", id="es384"),
    pytest.param(tagged([cbor2.dumps({1: "ES256"}), {}, b"p", SIG]), "ES256",
                 id="alg-as-text"),
    pytest.param(tagged([cbor2.dumps({4: b"k"}), {}, b"p", SIG]), "ES256", id="no-alg"),
    pytest.param(tagged([cbor2.dumps({1: -7, 2: [1]}), {}, b"p", SIG]), "critical",
                 id="crit"),
    pytest.param(tagged([PROTECTED, {1: -7}, b"p", SIG]), "protected header only",
                 id="alg-unprotected"),
    pytest.param(tagged([cbor2.dumps({1: -7, 4: "kid"}), {}, b"p", SIG]), "key id",
                 id="kid-text"),
    pytest.param(tagged([cbor2.dumps([1]), {}, b"p", SIG]), "map", id="protected-array"),
    pytest.param(tagged([PROTECTED, {}, b"p", SIG]) + b"\x00", "after", id="trailing"),
    pytest.param(tagged([PROTECTED, cbor2.CBORTag(99, 1), b"p", SIG]), "tag 99",
                 id="foreign-tag"),
    pytest.param(tagged([PROTECTED, {}, b"p" * 20_000, SIG]), "limit", id="oversized"),
    pytest.param(b"\xd2" + b"\x81" * 20 + b"\x00", "deeply", id="deep-nesting"),
    pytest.param(b"\xd2\x84\x43", "CBOR", id="truncated"),
]


@pytest.mark.parametrize(("data", "match"), MALFORMED)
def test_malformed_structures_are_refused_with_a_reason(data: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        decode_sign1(data)


def test_keys_load_from_pem_and_der_and_reject_junk() -> None:
    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = KEY.private_bytes(serialization.Encoding.DER,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    assert load_private_key(pem).private_numbers() == load_private_key(der).private_numbers()
    assert load_public_key(public_key_der(KEY.public_key())) == KEY.public_key()
    for junk in (b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                 b"\x30\x03\x02\x01\x01"):
        with pytest.raises(ValueError):
            load_public_key(junk)
        with pytest.raises(ValueError):
            load_private_key(junk)


def test_signed_registration_round_trip_and_cddl() -> None:
    info = make_device(3)
    signed = encode_registration(info, KEY)
    plain = encode_registration(info)
    assert plain == codec.encode(info.to_wire())
    got = decode_registration(signed)
    assert got.info == info and got.signed is not None
    assert got.digest == decode_registration(plain).digest == digest_of(info)
    got.verify(KEY.public_key())
    with pytest.raises(CoseError):
        got.verify(OTHER.public_key())
    with pytest.raises(CoseError, match="not signed"):
        decode_registration(plain).verify(KEY.public_key())
    pytest.importorskip("pycddl")
    schema.validate("signed-device-info", signed)
    schema.validate("device-registration", signed)
    schema.validate("device-registration", plain)
    schema.validate("cose-es256-header", cbor2.loads(signed).value[0])


def test_a_signed_map_that_is_no_device_info_is_a_validation_error() -> None:
    signed = sign1(codec.encode({"v": 1, "eid": "123"}), KEY,
                   external_aad=REGISTRATION_AAD)
    with pytest.raises(WireError) as caught:
        decode_registration(signed)
    assert caught.value.code is ErrorCode.BAD_REQUEST


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_the_tag_only_raise_wire_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_sign1(b"\xd2" + data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.integers(), st.text(max_size=10),
                          st.none(), st.dictionaries(st.integers(-10, 10),
                                                     st.integers(-10, 10), max_size=3)),
                max_size=5))
def test_structured_garbage_in_a_tag_only_raises_wire_errors(items: list[object]) -> None:
    try:
        message = decode_sign1(tagged(items))
    except WireError:
        return
    # Anything that parses must still fail verification.
    with pytest.raises(CoseError):
        verify1(message, KEY.public_key())


def test_a_tag_cbor2_would_decode_is_refused_by_name() -> None:
    for where in ([PROTECTED, {5: cbor2.CBORTag(1, 0)}, b"p", SIG],
                  [cbor2.dumps({1: -7, 4: cbor2.CBORTag(2, b"\x01")}), {}, b"p", SIG]):
        with pytest.raises(RefusedTagError) as err:
            decode_sign1(tagged(where))
        assert err.value.tag in (1, 2) and err.value.code is ErrorCode.MALFORMED

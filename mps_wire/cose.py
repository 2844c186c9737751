"""COSE_Sign1 (RFC 9052) with ES256, built directly on cbor2 and ``cryptography``.

Only what the contract needs: one signer, ECDSA P-256 with SHA-256 (``alg`` -7), the
protected header carrying the algorithm and the key id, an attached payload, and the
tagged form (tag 18). Verification is strict: anything else in the structure is refused
with :class:`CoseError` before any cryptography runs, and the size and nesting limits of
:mod:`mps_wire.codec` apply to every byte that came from outside.

    COSE_Sign1 = #6.18([ protected: bstr .cbor {1: -7, 4: kid}, unprotected: {},
                         payload: bstr, signature: bstr .size 64 ])
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from mps_wire.codec import MAX_PAYLOAD, decode_item
from mps_wire.errors import ErrorCode, WireError

COSE_SIGN1_TAG = 18
ALG_ES256 = -7
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_KID = 4
_SIG_LEN = 64  # r || s, 32 bytes each, big-endian (RFC 9053 section 2.1)
_CURVE_BYTES = 32
MAX_KID = 64

REGISTRATION_AAD = b"mps/v1 device-info"
"""External additional data of a signed registration: a device key signs registrations
and nothing else that could be passed off as one."""

# Tags cbor2 would otherwise turn into rich objects; a COSE structure needs none inside.
_ALLOWED_TAGS = frozenset({COSE_SIGN1_TAG})


class CoseError(WireError, ValueError):
    """A COSE_Sign1 is malformed, uses something unsupported, or fails verification."""

    code = ErrorCode.BAD_SIGNATURE


@dataclass(frozen=True, slots=True)
class Sign1:
    """A decoded, not yet verified, COSE_Sign1."""

    protected: bytes  # the serialized protected header, exactly as signed
    kid: bytes
    payload: bytes
    signature: bytes

    def to_be_signed(self, external_aad: bytes = b"") -> bytes:
        return sig_structure(self.protected, self.payload, external_aad)


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """A stable 8-byte key id: the start of the SHA-256 of the key's SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:8]


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The Sig_structure that is signed (RFC 9052 section 4.4)."""
    return cbor2.dumps(["Signature1", protected, external_aad, payload])


def _require_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise CoseError(f"ES256 needs a P-256 key, not {key.curve.name}")


@functools.cache
def es256() -> ec.ECDSA:
    """The signature algorithm of ``alg`` -7, made once: making it imports the crypto
    library's backend on first use (a tenth of a second), which a service does at start
    by calling this, not on its first signed message."""
    return ec.ECDSA(hashes.SHA256())


def sign1(payload: bytes, key: ec.EllipticCurvePrivateKey, *, kid: bytes | None = None,
          external_aad: bytes = b"") -> bytes:
    """Sign ``payload`` with ES256 and return the tagged COSE_Sign1 bytes."""
    _require_p256(key)
    if kid is None:
        kid = key_id(key.public_key())
    if len(kid) > MAX_KID:
        raise CoseError(f"key id of {len(kid)} bytes exceeds {MAX_KID}")
    protected = cbor2.dumps({HEADER_ALG: ALG_ES256, HEADER_KID: kid}, canonical=True)
    der = key.sign(sig_structure(protected, payload, external_aad), es256())
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(_CURVE_BYTES, "big") + s.to_bytes(_CURVE_BYTES, "big")
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def is_sign1(payload: bytes) -> bool:
    """True when ``payload`` starts like a tagged COSE_Sign1 (tag 18: byte 0xD2)."""
    return payload[:1] == b"\xd2"


def _decode_item(data: bytes, what: str, max_size: int) -> Any:
    def tag_hook(*args: Any) -> Any:
        # cbor2 5 calls hook(decoder, tag), cbor2 6 hook(tag, immutable).
        tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
        if tag.tag not in _ALLOWED_TAGS:
            raise CoseError(f"{what} holds the unexpected CBOR tag {tag.tag}")
        return tag

    return decode_item(data, what, max_size=max_size, tag_hook=tag_hook)


def decode_sign1(data: bytes, *, max_size: int = MAX_PAYLOAD) -> Sign1:
    """Parse a tagged COSE_Sign1 with the contract's limits; CoseError/DecodeError if it is
    not one this contract accepts. The signature is not checked here: see :func:`verify1`.
    """
    outer = _decode_item(data, "COSE_Sign1", max_size)
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != COSE_SIGN1_TAG:
        raise CoseError("a signed registration must be a tagged COSE_Sign1 (tag 18)")
    protected, unprotected, payload, signature = _sign1_items(outer.value)
    header = _decode_item(protected, "COSE protected header", max_size)
    return Sign1(protected=protected, kid=_key_id(header, unprotected), payload=payload,
                 signature=signature)


def _sign1_items(body: object) -> tuple[bytes, Mapping[Any, Any], bytes, bytes]:
    """The four items of a COSE_Sign1 array, each of the type it must have."""
    if not isinstance(body, list | tuple) or len(body) != 4:
        raise CoseError("a COSE_Sign1 is an array of four items")
    protected, unprotected, payload, signature = body
    if not isinstance(protected, bytes) or not protected:
        raise CoseError("the COSE_Sign1 protected header must be a non-empty byte string")
    if not isinstance(unprotected, Mapping):
        raise CoseError("the COSE_Sign1 unprotected header must be a map")
    if payload is None:
        raise CoseError("detached payloads are not supported")
    if not isinstance(payload, bytes):
        raise CoseError("the COSE_Sign1 payload must be a byte string")
    if not isinstance(signature, bytes) or len(signature) != _SIG_LEN:
        raise CoseError(f"an ES256 signature is {_SIG_LEN} bytes")
    return protected, unprotected, payload, signature


def _key_id(header: object, unprotected: Mapping[Any, Any]) -> bytes:
    """The key id of checked ES256 headers (empty if neither header names one)."""
    if not isinstance(header, Mapping):
        raise CoseError("the COSE protected header must be a map")
    if HEADER_CRIT in header or HEADER_CRIT in unprotected:
        raise CoseError("critical COSE header parameters are not supported")
    alg = header.get(HEADER_ALG)
    if alg != ALG_ES256 or isinstance(alg, bool):
        raise CoseError(f"the COSE algorithm must be ES256 (-7), not {alg!r}")
    if HEADER_ALG in unprotected:
        raise CoseError("the COSE algorithm belongs in the protected header only")
    kid = header.get(HEADER_KID, unprotected.get(HEADER_KID, b""))
    if not isinstance(kid, bytes) or len(kid) > MAX_KID:
        raise CoseError(f"the COSE key id must be a byte string of at most {MAX_KID} bytes")
    return kid


def verify1(message: Sign1, key: ec.EllipticCurvePublicKey, *,
            external_aad: bytes = b"") -> bytes:
    """Check the ES256 signature of ``message`` with ``key``; return the payload.

    Raises CoseError when the signature does not verify.
    """
    _require_p256(key)
    r = int.from_bytes(message.signature[:_CURVE_BYTES], "big")
    s = int.from_bytes(message.signature[_CURVE_BYTES:], "big")
    if not (r and s):
        raise CoseError("the COSE signature does not verify")
    try:
        key.verify(encode_dss_signature(r, s), message.to_be_signed(external_aad),
                   es256())
    except InvalidSignature as exc:
        raise CoseError("the COSE signature does not verify") from exc
    return message.payload


def load_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM or DER (SubjectPublicKeyInfo); ValueError otherwise."""
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a public key in PEM or DER: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                        ec.SECP256R1):
        raise ValueError("the device key must be an EC P-256 public key")
    return key


def load_private_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from unencrypted PEM or DER (PKCS#8 or SEC1); ValueError else."""
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted private key in PEM or DER: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve,
                                                                         ec.SECP256R1):
        raise ValueError("the device key must be an EC P-256 private key")
    return key


def public_key_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key's SubjectPublicKeyInfo in DER, the form the registry stores."""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)

"""ECDSA as SGP.22 carries it: raw ``r || s`` in a ``5F37`` data object, never DER.

X.509 certificates keep their usual DER-encoded signatures; only the RSP data objects
(serverSignature1, euiccSignature1, smdpSignature2, ...) use the raw form (BSI TR-03111).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from mps_esim import tlv
from mps_esim.crypto.errors import SignatureError

TAG_SIGNATURE = 0x5F37
P256_SIZE = 32
RAW_SIZE = 2 * P256_SIZE


def _size(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def der_to_raw(der: bytes, size: int = P256_SIZE) -> bytes:
    """A DER ``SEQUENCE {r, s}`` signature as ``r || s``, each ``size`` bytes."""
    try:
        r, s = decode_dss_signature(der)
    except ValueError as exc:
        raise SignatureError(f"malformed DER signature: {exc}") from exc
    if not (0 < r < 1 << (8 * size) and 0 < s < 1 << (8 * size)):
        raise SignatureError("signature values do not fit the curve size")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def raw_to_der(raw: bytes) -> bytes:
    """``r || s`` (two equal halves) as a DER ``SEQUENCE {r, s}``."""
    if not raw or len(raw) % 2:
        raise SignatureError(f"a raw signature has two equal halves, got {len(raw)} bytes")
    half = len(raw) // 2
    r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    if r == 0 or s == 0:
        raise SignatureError("signature value of zero")
    return encode_dss_signature(r, s)


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA with SHA-256 over ``data``: the raw ``r || s``."""
    der = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return der_to_raw(der, _size(key.curve))


def verify(key: ec.EllipticCurvePublicKey, data: bytes, raw: bytes) -> None:
    """Check a raw ECDSA/SHA-256 signature; raise :class:`SignatureError` if it fails."""
    if len(raw) != 2 * _size(key.curve):
        raise SignatureError(f"signature is {len(raw)} bytes, the curve needs "
                             f"{2 * _size(key.curve)}")
    try:
        key.verify(raw_to_der(raw), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc


def signature_object(raw: bytes) -> bytes:
    """The ``5F37`` data object for a raw signature."""
    return tlv.encode(TAG_SIGNATURE, raw)


def sign_object(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """:func:`sign` wrapped in its ``5F37`` data object."""
    return signature_object(sign(key, data))

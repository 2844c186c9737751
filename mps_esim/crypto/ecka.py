"""One-time key agreement keys (otPK/otSK.EUICC.ECKA, otPK/otSK.DP.ECKA); the
confirmation-code hashes are in :mod:`mps_esim.crypto.confirmation`."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from mps_esim import tlv
from mps_esim.crypto.errors import CryptoError

CURVES: dict[str, ec.EllipticCurve] = {"nist": ec.SECP256R1(), "brainpool": ec.BrainpoolP256R1()}
"""The two curves of SGP.22 (2.6.5): NIST P-256 and brainpoolP256r1, by their short names.
Every certificate of one chain, and the key agreement bound to it, is on one of them."""

_RSP_CURVE_NAMES = frozenset(c.name for c in CURVES.values())
_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # id-ecPublicKey, 1.2.840.10045.2.1
_CURVE_OIDS: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("2a8648ce3d030107"): CURVES["nist"],  # prime256v1, 1.2.840.10045.3.1.7
    bytes.fromhex("2b2403030208010107"): CURVES["brainpool"],  # 1.3.36.3.3.2.8.1.1.7
}


def rsp_curve(key: object) -> ec.EllipticCurve | None:
    """The curve of an EC key if it is one of :data:`CURVES`, else None."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and (
            key.curve.name in _RSP_CURVE_NAMES):
        return key.curve
    return None


def new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A fresh one-time key pair (NIST P-256 unless ``curve`` is given)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed point ``04 || X || Y`` as carried in ``5F49``."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    # Built from the coordinates (the X9.62 encoding, byte for byte): the library's encoder
    # lives in its serialization package, which a card would otherwise load for this alone.
    numbers = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    return b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def load_point(curve: ec.EllipticCurve, point: bytes) -> ec.EllipticCurvePublicKey:
    """A public key from an uncompressed point; :class:`CryptoError` if it is not on ``curve``."""
    expected = 1 + 2 * ((curve.key_size + 7) // 8)
    if len(point) != expected or point[0] != 0x04:
        raise CryptoError(f"public key must be an uncompressed point of {expected} bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError as exc:
        raise CryptoError(f"public key is not a point on {curve.name}") from exc


def shared_secret(key: ec.EllipticCurvePrivateKey, other_point: bytes) -> bytes:
    """ECDH (ECKA-DH): the x coordinate of ``key`` times the other side's point."""
    return key.exchange(ec.ECDH(), load_point(key.curve, other_point))


def read_spki(data: bytes) -> ec.EllipticCurvePublicKey | None:
    """The key of a DER SubjectPublicKeyInfo holding an uncompressed point on one of
    :data:`CURVES` (the point checked to be on it); None for anything else, which the
    library's loader judges (its serialization package is not loaded for the usual case)."""
    try:
        top = tlv.decode_one(data)
        items = top.children() if top.tag == 0x30 else []
        if len(items) != 2 or items[0].tag != 0x30 or items[1].tag != 0x03:
            return None
        algorithm = items[0].children()
        if [a.tag for a in algorithm] != [0x06, 0x06] or algorithm[0].value != _EC_PUBLIC_KEY:
            return None
        curve = _CURVE_OIDS.get(algorithm[1].value)
        if curve is None or items[1].value[:1] != b"\x00":
            return None
        return load_point(curve, items[1].value[1:])
    except (tlv.TlvError, CryptoError):
        return None

"""Reading certificates and EC private keys of any PKI from PEM or DER files (the GSMA
test certificates as well as the ones :mod:`lpa_emulator.pki` makes)."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.errors import EmulatorError
from mps_esim import tlv
from mps_esim.crypto import ecka

_PEM_KEY_LABELS = (b"PRIVATE KEY", b"EC PRIVATE KEY")
_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # id-ecPublicKey, 1.2.840.10045.2.1
_RSP_CURVES: dict[bytes, type[ec.EllipticCurve]] = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1,  # prime256v1, 1.2.840.10045.3.1.7
    bytes.fromhex("2b2403030208010107"): ec.BrainpoolP256R1,  # 1.3.36.3.3.2.8.1.1.7
}
_RSP_CURVE_OIDS = {curve().name: oid for oid, curve in _RSP_CURVES.items()}


class PkiError(EmulatorError):
    """A PKI file is missing or unreadable, or a certificate does not match its key."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror or exc}", path=path) from exc


def parse_certificate(data: bytes, *, source: str = "certificate") -> x509.Certificate:
    """A certificate from PEM or DER bytes."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"{source} is no PEM or DER certificate: {exc}") from exc


def parse_private_key(data: bytes, *, source: str = "key") -> ec.EllipticCurvePrivateKey:
    """An EC private key from PEM or DER bytes (PKCS#8 or SEC 1), unencrypted."""
    key = _rsp_key(data)
    if key is not None:
        return key
    # Whatever the reader above leaves (other curves, encodings, encrypted or malformed
    # keys) gets the library's loaders and their verdict; a card's own key never needs them.
    from cryptography.hazmat.primitives import serialization

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_private_key(data, password=None)
        else:
            loaded = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{source} is no unencrypted PEM or DER private key: {exc}") from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{source} is not an elliptic-curve key")
    return loaded


def _pem_key(data: bytes) -> bytes | None:
    """The DER of a PEM file holding one unencrypted private key block and nothing else."""
    lines = data.strip().splitlines()
    if len(lines) < 3:
        return None
    for label in _PEM_KEY_LABELS:
        if (lines[0].strip() == b"-----BEGIN " + label + b"-----"
                and lines[-1].strip() == b"-----END " + label + b"-----"):
            try:
                return base64.b64decode(b"".join(ln.strip() for ln in lines[1:-1]),
                                        validate=True)
            except binascii.Error:
                return None
    return None


def _sec1_curve(items: list[tlv.Tlv], curve_oid: bytes | None
                ) -> tuple[ec.EllipticCurve, dict[int, tlv.Tlv]] | None:
    """The RSP curve of an ECPrivateKey's members (RFC 5915) and its optional members by tag,
    for a key of version 1 and the right length; None otherwise."""
    if len(items) < 2 or items[0] != tlv.Tlv(0x02, b"\x01") or items[1].tag != 0x04:
        return None
    rest = {i.tag: i for i in items[2:]}
    if len(rest) != len(items) - 2 or not set(rest) <= {0xA0, 0xA1}:
        return None
    if 0xA0 in rest:
        named = rest[0xA0].children()
        if len(named) != 1 or named[0].tag != 0x06 or curve_oid not in (None, named[0].value):
            return None
        curve_oid = named[0].value
    factory = _RSP_CURVES.get(curve_oid or b"")
    curve = factory() if factory is not None else None
    if curve is None or len(items[1].value) != (curve.key_size + 7) // 8:
        return None
    return curve, rest


def _sec1_key(items: list[tlv.Tlv], curve_oid: bytes | None) -> ec.EllipticCurvePrivateKey | None:
    """The key of an ECPrivateKey's members on an RSP curve, its public key (when given)
    checked against the private one."""
    found = _sec1_curve(items, curve_oid)
    if found is None:
        return None
    curve, rest = found
    try:
        key = ec.derive_private_key(int.from_bytes(items[1].value, "big"), curve)
    except ValueError:
        return None
    if 0xA1 in rest:
        public = rest[0xA1].children()
        if (len(public) != 1 or public[0].tag != 0x03
                or public[0].value != b"\x00" + ecka.public_point(key)):
            # Refused here whatever the library would say (releases before 43 take it).
            raise PkiError("the key's public key does not match its private key")
    return key


def _rsp_key(data: bytes) -> ec.EllipticCurvePrivateKey | None:
    """The key when ``data`` is an unencrypted P-256 or brainpoolP256r1 key, PKCS#8 or
    SEC 1, PEM or DER; None for anything else (the library's loaders judge it)."""
    der = _pem_key(data) if data.lstrip().startswith(b"-----BEGIN") else data
    if not der:
        return None
    try:
        top = tlv.decode_one(der)
        if top.tag != 0x30:
            return None
        items = top.children()
        if items and items[0] == tlv.Tlv(0x02, b"\x01"):
            return _sec1_key(items, None)
        # PKCS#8 v1: version 0, AlgorithmIdentifier {id-ecPublicKey, namedCurve}, key
        if len(items) != 3 or items[0] != tlv.Tlv(0x02, b"\x00") or items[1].tag != 0x30:
            return None
        algorithm = items[1].children()
        if ([a.tag for a in algorithm] != [0x06, 0x06] or algorithm[0].value != _EC_PUBLIC_KEY
                or items[2].tag != 0x04):
            return None
        inner = tlv.decode_one(items[2].value)
        return _sec1_key(inner.children(), algorithm[1].value) if inner.tag == 0x30 else None
    except tlv.TlvError:
        return None


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """Unencrypted PKCS#8 PEM of ``key``, byte for byte as the library writes it (the named
    curve in the algorithm, an ECPrivateKey with the public key): written here for the RSP
    curves, as a card saves its key with every change of its state and the library's writer
    would load its serialization package for it."""
    oid = _RSP_CURVE_OIDS.get(key.curve.name)
    if oid is None:
        from cryptography.hazmat.primitives import serialization

        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    size = (key.curve.key_size + 7) // 8
    sec1 = tlv.encode(0x30, tlv.encode(0x02, b"\x01") + tlv.encode(
        0x04, key.private_numbers().private_value.to_bytes(size, "big")) + tlv.encode(
        0xA1, tlv.encode(0x03, b"\x00" + ecka.public_point(key))))
    der = tlv.encode(0x30, tlv.encode(0x02, b"\x00") + tlv.encode(
        0x30, tlv.encode(0x06, _EC_PUBLIC_KEY) + tlv.encode(0x06, oid)) + tlv.encode(0x04, sec1))
    text = base64.b64encode(der).decode()
    lines = "".join(text[i:i + 64] + "\n" for i in range(0, len(text), 64))
    return f"-----BEGIN PRIVATE KEY-----\n{lines}-----END PRIVATE KEY-----\n"


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """A certificate from a PEM or DER file."""
    p = Path(path)
    try:
        return parse_certificate(_read(p), source=str(p))
    except PkiError as exc:
        exc.path = p
        raise


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """All certificates of a PEM bundle, or the one certificate of a DER file."""
    p = Path(path)
    data = _read(p)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise PkiError(f"{p} holds no readable PEM certificates: {exc}", path=p) from exc
    return [load_certificate(p)]


def load_private_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    """An EC private key from a PEM or DER file."""
    p = Path(path)
    try:
        return parse_private_key(_read(p), source=str(p))
    except PkiError as exc:
        exc.path = p
        raise


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key's uncompressed point ``04 || X || Y``."""
    return ecka.public_point(key)

"""Reading certificates and EC private keys of any PKI from PEM or DER files (the GSMA
test certificates as well as the ones :mod:`lpa_emulator.pki` makes)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.errors import EmulatorError


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
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{source} is no unencrypted PEM or DER private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{source} is not an elliptic-curve key")
    return key


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
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)

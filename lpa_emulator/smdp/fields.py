"""Reading the fields of ES9+ request bodies: every length, encoding and structure is
checked, and a bad one is an :class:`Es9StatusError` with the SGP.22 status."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError
from mps_esim import sgp22, tlv
from mps_esim.crypto.errors import CertificateError, CertificateProblem

_T = TypeVar("_T")

MAX_FIELD = 16 * 1024
"""Largest base64 text accepted in one JSON field (a certificate chain is ~2 KiB)."""


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def text_field(body: Mapping[str, Any], name: str, *, max_length: int = MAX_FIELD) -> str:
    if name not in body:
        raise Es9StatusError(st.MISSING_ELEMENT, f"{name} is missing")
    value = body[name]
    if not isinstance(value, str):
        raise Es9StatusError(st.MALFORMED, f"{name} must be a string")
    if len(value) > max_length:
        raise Es9StatusError(st.MALFORMED, f"{name} is longer than {max_length} characters")
    return value


def binary_field(body: Mapping[str, Any], name: str) -> bytes:
    text = text_field(body, name)
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Es9StatusError(st.MALFORMED, f"{name} is not valid base64") from exc
    if not value:
        raise Es9StatusError(st.MALFORMED, f"{name} is empty")
    return value


def transaction_id_field(body: Mapping[str, Any]) -> bytes:
    text = text_field(body, "transactionId", max_length=2 * sgp22.MAX_TRANSACTION_ID)
    try:
        txid = bytes.fromhex(text)
    except ValueError as exc:
        raise Es9StatusError(st.MALFORMED, "transactionId is not hexadecimal") from exc
    if not 1 <= len(txid) <= sgp22.MAX_TRANSACTION_ID:
        raise Es9StatusError(st.MALFORMED, "transactionId must be 1 to 16 bytes")
    return txid


def decoded(decode: Callable[[bytes], _T], data: bytes, name: str) -> _T:
    try:
        return decode(data)
    except (tlv.TlvError, ValueError) as exc:
        raise Es9StatusError(st.MALFORMED, f"{name}: {exc}") from exc


def ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("certificate has no EC public key",
                               problem=CertificateProblem.INVALID, role="euicc")
    return key


def certificate_status(exc: CertificateError) -> st.StatusCode:
    if exc.problem is CertificateProblem.UNKNOWN_CI:
        return st.UNKNOWN_CI
    expired = exc.problem is CertificateProblem.EXPIRED
    if exc.role == "eum":
        return st.EUM_EXPIRED if expired else st.EUM_INVALID
    return st.EUICC_EXPIRED if expired else st.EUICC_INVALID

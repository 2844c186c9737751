"""The confirmation-code hashes of SGP.22 (hashCc, 3.1.3): SHA-256 only, so the LPA's
side of a download computes them without loading the ECDH and certificate machinery."""

from __future__ import annotations

import hashlib


def confirmation_code_hash(code: str | bytes, transaction_id: bytes) -> bytes:
    """``SHA-256(SHA-256(code) || transactionId)`` (SGP.22 hashCc)."""
    raw = code.encode() if isinstance(code, str) else code
    return hashlib.sha256(hashlib.sha256(raw).digest() + transaction_id).digest()


def confirmation_code_digest(code: str | bytes) -> bytes:
    """``SHA-256(code)``: what an SM-DP+ stores instead of the code itself."""
    raw = code.encode() if isinstance(code, str) else code
    return hashlib.sha256(raw).digest()

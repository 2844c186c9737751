"""Errors of the GSMA RSP cryptography: one root, specific subclasses with structured fields."""

from __future__ import annotations

import enum

from mps_esim.errors import EsimError


class CryptoError(EsimError):
    """Root of every error raised by :mod:`mps_esim.crypto`."""


class SignatureError(CryptoError, ValueError):
    """A signature is malformed or does not verify."""


class CertificateProblem(enum.Enum):
    """Why a certificate was refused; each maps onto an SGP.22 status."""

    INVALID = "invalid"  # malformed, wrong signature, wrong role or extensions
    EXPIRED = "expired"  # outside its validity period
    UNKNOWN_CI = "unknown-ci"  # does not chain to a CI we know
    EID_OUT_OF_RANGE = "eid-out-of-range"  # eUICC EID outside its EUM's permitted range


class CertificateError(CryptoError, ValueError):
    """A certificate or certificate chain was refused.

    ``problem`` says why, ``role`` which certificate of the chain (``"eum"``, ``"euicc"``,
    ``"dpauth"``, ...).
    """

    def __init__(self, message: str, *, problem: CertificateProblem, role: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.role = role


class Scp03tError(CryptoError, ValueError):
    """A protected BPP segment was refused.

    ``security`` is True for a MAC failure or bad padding (SGP.22 ``scp03tSecurityError``),
    False for a malformed segment (``scp03tStructureError``).
    """

    def __init__(self, message: str, *, security: bool) -> None:
        super().__init__(message)
        self.security = security

"""The SM-DP+'s keys and certificates, loaded from a PKI directory and checked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lpa_emulator.pki import (
    CI_CERT,
    DPAUTH_CERT,
    DPAUTH_KEY,
    DPPB_CERT,
    DPPB_KEY,
    TLS_CERT,
    TLS_KEY,
    Credential,
    PkiError,
    load_certificates,
)
from mps_common.errors import ConfigError
from mps_esim.crypto import certs
from mps_esim.crypto.errors import CertificateError


@dataclass(frozen=True, slots=True)
class SmdpCredentials:
    """The SM-DP+'s keys and certificates and the CIs whose eUICCs it serves."""

    dpauth: Credential
    dppb: Credential
    cis: tuple[x509.Certificate, ...]
    tls_cert: Path
    tls_key: Path

    def __post_init__(self) -> None:
        if not self.cis:
            raise ConfigError("no CI certificate to trust")
        try:
            for role, cred in ((certs.ROLE_DP_AUTH, self.dpauth), (certs.ROLE_DP_PB, self.dppb)):
                certs.verify_server_certificate(cred.cert, self.cis, role=role, at=certs.now())
            if certs.server_oid(self.dpauth.cert) != certs.server_oid(self.dppb.cert):
                raise ConfigError("CERT.DPauth and CERT.DPpb name different SM-DP+ OIDs")
        except CertificateError as exc:
            raise ConfigError(f"the SM-DP+ certificates are not usable: {exc}") from exc

    @property
    def oid(self) -> str:
        return certs.server_oid(self.dpauth.cert)

    @property
    def ci(self) -> x509.Certificate:
        """The CI that issued CERT.DPauth (its key id is euiccCiPKIdToBeUsed)."""
        ci = certs.find_ci(self.cis, certs.authority_key_id(self.dpauth.cert))
        if ci is None:
            raise ConfigError("CERT.DPauth names no known CI")
        return ci

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str],
                 extra_cis: Sequence[str | os.PathLike[str]] = ()) -> SmdpCredentials:
        """Load ``ci.pem``, ``dpauth.*``, ``dppb.*`` and ``tls.*`` from a PKI directory."""
        root = Path(directory)
        try:
            cis = [*load_certificates(root / CI_CERT)]
            for path in extra_cis:
                cis += load_certificates(path)
            return cls(Credential.load(root / DPAUTH_CERT, root / DPAUTH_KEY),
                       Credential.load(root / DPPB_CERT, root / DPPB_KEY), tuple(cis),
                       root / TLS_CERT, root / TLS_KEY)
        except PkiError as exc:
            raise ConfigError(str(exc)) from exc

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
class ServerKeys:
    """CERT.DPauth and CERT.DPpb issued under one CI, on that CI's curve."""

    ci_pkid: bytes
    dpauth: Credential
    dppb: Credential


@dataclass(frozen=True, slots=True)
class SmdpCredentials:
    """The SM-DP+'s keys and certificates and the CIs whose eUICCs it serves.

    ``dpauth``/``dppb`` are the first pair; ``more`` holds pairs under further CIs (a PKI
    with both curves has one per curve), all naming the same SM-DP+ OID.
    """

    dpauth: Credential
    dppb: Credential
    cis: tuple[x509.Certificate, ...]
    tls_cert: Path
    tls_key: Path
    more: tuple[tuple[Credential, Credential], ...] = ()

    def __post_init__(self) -> None:
        if not self.cis:
            raise ConfigError("no CI certificate to trust")
        try:
            for dpauth, dppb in ((self.dpauth, self.dppb), *self.more):
                for role, cred in ((certs.ROLE_DP_AUTH, dpauth), (certs.ROLE_DP_PB, dppb)):
                    certs.verify_server_certificate(cred.cert, self.cis, role=role,
                                                    at=certs.now())
                if certs.authority_key_id(dpauth.cert) != certs.authority_key_id(dppb.cert):
                    raise ConfigError("CERT.DPauth and CERT.DPpb are issued by different CIs")
                if {certs.server_oid(dpauth.cert), certs.server_oid(dppb.cert)} != {self.oid}:
                    raise ConfigError("CERT.DPauth and CERT.DPpb name different SM-DP+ OIDs")
        except CertificateError as exc:
            raise ConfigError(f"the SM-DP+ certificates are not usable: {exc}") from exc

    @property
    def oid(self) -> str:
        return certs.server_oid(self.dpauth.cert)

    @property
    def ci_pkids(self) -> tuple[bytes, ...]:
        """Key ids of the CIs whose eUICC certificate chains this SM-DP+ verifies."""
        return tuple(k for k in (certs.subject_key_id(c) for c in self.cis) if k)

    @property
    def key_sets(self) -> tuple[ServerKeys, ...]:
        """The DPauth/DPpb pairs with the key id of the CI that issued them."""
        return tuple(ServerKeys(certs.authority_key_id(a.cert) or b"", a, p)
                     for a, p in ((self.dpauth, self.dppb), *self.more))

    def select(self, verification: Sequence[bytes], signing: Sequence[bytes]
               ) -> tuple[ServerKeys, bytes] | str:
        """The keys to use with an eUICC and the euiccCiPKIdToBeUsed (SGP.22 3.1.2).

        The eUICC verifies CERT.DPauth under a CI of its ``verification`` list and signs
        under one of its ``signing`` list, which this SM-DP+ must trust; a pair whose CI is
        on both lists comes first. What is missing instead: ``"signing"``/``"verification"``.
        """
        usable = [pkid for pkid in signing if pkid in self.ci_pkids]
        if not usable:
            return "signing"
        sets = [k for k in self.key_sets if k.ci_pkid in verification]
        if not sets:
            return "verification"
        keys = next((k for k in sets if k.ci_pkid in usable), sets[0])
        return keys, keys.ci_pkid if keys.ci_pkid in usable else usable[0]

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str],
                 extra_cis: Sequence[str | os.PathLike[str]] = ()) -> SmdpCredentials:
        """Load ``ci.pem`` (and ``ci-<name>.pem``), ``dpauth.*``, ``dppb.*`` (and
        ``dpauth-<name>.*``/``dppb-<name>.*`` pairs under further CIs) and ``tls.*`` from a
        PKI directory."""
        root = Path(directory)
        try:
            cis = [*load_certificates(root / CI_CERT)]
            for path in [*sorted(root.glob("ci-*.pem")), *extra_cis]:
                cis += load_certificates(path)
            more = tuple(
                (Credential.load(p, p.with_suffix(".key")),
                 Credential.load(root / f"dppb-{p.stem[7:]}.pem", root / f"dppb-{p.stem[7:]}.key"))
                for p in sorted(root.glob("dpauth-*.pem")))
            return cls(Credential.load(root / DPAUTH_CERT, root / DPAUTH_KEY),
                       Credential.load(root / DPPB_CERT, root / DPPB_KEY), tuple(cis),
                       root / TLS_CERT, root / TLS_KEY, more)
        except PkiError as exc:
            raise ConfigError(str(exc)) from exc

"""A test PKI for remote SIM provisioning, and loading any PKI's certificates and keys.

:func:`init_pki` makes, in one directory, a CI (root), an EUM name-constrained to an EID
range, eUICC certificates with the EID as subject ``serialNumber``, the SM-DP+'s DPauth and
DPpb certificates and a TLS certificate for its address, following the certificate
profiles of SGP.22 section 4.5.2, on NIST P-256, brainpoolP256r1 or both (SGP.22 2.6.5: a
chain stays on one curve; with both, a second CI, EUM, DPauth and DPpb on brainpoolP256r1
are named ``<role>-brainpool``). The file names are fixed so every role finds its part:

========================  =====================================
``ci.pem`` / ``ci.key``    CERT.CI and its key (the trust anchor)
``eum.pem`` / ``eum.key``  CERT.EUM
``euicc-<EID>.pem/.key``   CERT.EUICC of one card
``dpauth.pem/.key``        CERT.DPauth (SM-DP+ authentication)
``dppb.pem/.key``          CERT.DPpb (profile binding)
``dsauth.pem/.key``        CERT.DSauth (the SM-DS's authentication, same OID)
``tls.pem/.key``           CERT.DP.TLS (HTTPS of ES9+; the SM-DS's ES11 too)
========================  =====================================

Every loader takes PEM or DER, so the GSMA test certificates (or any other PKI) work
as well as the ones made here.

The built-in test CI (:func:`builtin_ci`) and its EUMs (:func:`builtin_eum`) have keys
derived from fixed labels, the same in every process: an emulated card made without a PKI
directory chains to them, and ``init_pki(..., builtin_ci=True)`` (``mps-emu pki init
--builtin-ci``) makes an SM-DP+ PKI under that same CI, so such a card can download from
it. Those keys are public knowledge: for tests and emulation only.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lpa_emulator import pki_files
from mps_common.durable import atomic_write
from mps_esim.crypto.certs import (
    ROLE_CI,
    ROLE_DP_AUTH,
    ROLE_DP_PB,
    ROLE_DP_TLS,
    ROLE_DS_AUTH,
    ROLE_EUICC,
    ROLE_EUM,
    check_eid_range,
)
from mps_esim.crypto.ecka import CURVES
from mps_esim.crypto.errors import CertificateError
from mps_wire.identifiers import IdentifierError, make_eid, validate_eid

# Loading any PKI's files is part of this module's surface (kept in pki_files).
PkiError = pki_files.PkiError
load_certificate = pki_files.load_certificate
load_certificates = pki_files.load_certificates
load_private_key = pki_files.load_private_key
parse_certificate = pki_files.parse_certificate
parse_private_key = pki_files.parse_private_key

CI_CERT, CI_KEY = "ci.pem", "ci.key"
EUM_CERT, EUM_KEY = "eum.pem", "eum.key"
DPAUTH_CERT, DPAUTH_KEY = "dpauth.pem", "dpauth.key"
DPPB_CERT, DPPB_KEY = "dppb.pem", "dppb.key"
DSAUTH_CERT, DSAUTH_KEY = "dsauth.pem", "dsauth.key"
TLS_CERT, TLS_KEY = "tls.pem", "tls.key"

DEFAULT_EID_PREFIX = "89049032"
"""The EID range the test EUM may issue for (matches the emulated cards' EIDs)."""

DEFAULT_EUM_ORG = "MPS Test EUM"
DEFAULT_SMDP_OID = "2.999.10"
"""OID of the test SM-DP+ (``2.999`` is the ITU-T/ISO arc for examples)."""
DEFAULT_CI_OID = "2.999.1"
DEFAULT_EUM_OID = "2.999.5"
DEFAULT_TLS_HOSTS = ("localhost", "127.0.0.1")

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_CA_YEARS = 30
_LEAF_YEARS = 10
# SGP.22 gives eUICC certificates no meaningful end (cards have no clock): 9999-12-31.
_EUICC_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


def euicc_cert_name(eid: str) -> str:
    """``euicc-<EID>.pem``: the file name of an eUICC certificate."""
    return f"euicc-{eid}.pem"


def euicc_key_name(eid: str) -> str:
    """``euicc-<EID>.key``: the file name of an eUICC private key."""
    return f"euicc-{eid}.key"


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate with its private key (a role's signing identity)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        public = self.cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or (
                pki_files.public_bytes(public) != pki_files.public_bytes(self.key.public_key())):
            raise PkiError(f"the key does not belong to certificate "
                           f"{self.cert.subject.rfc4514_string()}")

    def __repr__(self) -> str:
        return f"Credential({self.cert.subject.rfc4514_string()!r})"

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @classmethod
    def load(cls, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
             ) -> Credential:
        """Certificate and key from files (PEM or DER each)."""
        try:
            return cls(load_certificate(cert_path), load_private_key(key_path))
        except PkiError as exc:
            if exc.path is None:
                exc.path = Path(cert_path)
            raise


# --- making -------------------------------------------------------------------------------

def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _policies(role: x509.ObjectIdentifier) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(role, None)])


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey,
             not_after: datetime.datetime) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))


def _years(n: int) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(
        days=365 * n)


def _issued_by(builder: x509.CertificateBuilder, issuer: Credential) -> x509.Certificate:
    ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


def _new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def derived_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from ``label``: the same in every process (test keys only)."""
    digest = hashlib.sha256(f"mps test pki / {label}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1,
                                 ec.SECP256R1())


def make_ci(*, name: str = "MPS Test CI", oid: str = DEFAULT_CI_OID,
            key: ec.EllipticCurvePrivateKey | None = None,
            curve: ec.EllipticCurve | None = None) -> Credential:
    """A self-signed CI certificate (the root of trust of every role), with a new key on
    ``curve`` (NIST P-256 by default) unless ``key`` is given."""
    key = key or _new_key(curve)
    subject = _name((NameOID.COMMON_NAME, name), (NameOID.ORGANIZATIONAL_UNIT_NAME, "TESTCERT"),
                    (NameOID.ORGANIZATION_NAME, "MPS"), (NameOID.COUNTRY_NAME, "DE"))
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (_builder(subject, subject, key.public_key(), _years(_CA_YEARS))
            .add_extension(x509.AuthorityKeyIdentifier(ski.digest, None, None), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(_policies(ROLE_CI), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.RegisteredID(x509.ObjectIdentifier(oid))]), critical=False)
            .sign(key, hashes.SHA256()))
    return Credential(cert, key)


def _key_usage(*, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def make_eum(ci: Credential, *, org: str = DEFAULT_EUM_ORG,
             eid_prefixes: Sequence[str] = (DEFAULT_EID_PREFIX,),
             oid: str = DEFAULT_EUM_OID,
             key: ec.EllipticCurvePrivateKey | None = None) -> Credential:
    """An EUM certificate whose name constraint permits eUICCs of ``org`` in the EID ranges.

    Each prefix becomes one permitted directory name ``O=org, serialNumber=prefix``.
    """
    if not eid_prefixes:
        raise PkiError("an EUM needs at least one permitted EID prefix")
    for prefix in eid_prefixes:
        if not prefix.isdigit() or not 2 <= len(prefix) <= 30 or not prefix.startswith("89"):
            raise PkiError(f"EID prefix {prefix!r} must be 2 to 30 digits starting with 89")
    key = key or _new_key(ci.key.curve)
    subject = _name((NameOID.COMMON_NAME, f"{org} EUM"), (NameOID.ORGANIZATION_NAME, org),
                    (NameOID.COUNTRY_NAME, "DE"))
    permitted: list[x509.GeneralName] = [
        x509.DirectoryName(_name((NameOID.ORGANIZATION_NAME, org),
                                 (NameOID.SERIAL_NUMBER, prefix)))
        for prefix in eid_prefixes]
    builder = (_builder(subject, ci.cert.subject, key.public_key(), _years(_CA_YEARS))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(_key_usage(cert_sign=True), critical=True)
               .add_extension(_policies(ROLE_EUM), critical=True)
               .add_extension(x509.SubjectAlternativeName(
                   [x509.RegisteredID(x509.ObjectIdentifier(oid))]), critical=False)
               .add_extension(x509.NameConstraints(permitted_subtrees=permitted,
                                                   excluded_subtrees=None), critical=True))
    return Credential(_issued_by(builder, ci), key)


def make_euicc(eum: Credential, eid: str, *,
               key: ec.EllipticCurvePrivateKey | None = None) -> Credential:
    """An eUICC certificate for ``eid``, issued by ``eum`` (organisation copied from it)."""
    try:
        eid = validate_eid(eid)
    except IdentifierError as exc:
        raise PkiError(str(exc)) from exc
    orgs = eum.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org = str(orgs[0].value) if orgs else DEFAULT_EUM_ORG
    key = key or _new_key(eum.key.curve)
    subject = _name((NameOID.COMMON_NAME, "MPS eUICC"), (NameOID.ORGANIZATION_NAME, org),
                    (NameOID.SERIAL_NUMBER, eid))
    builder = (_builder(subject, eum.cert.subject, key.public_key(), _EUICC_NOT_AFTER)
               .add_extension(_key_usage(), critical=True)
               .add_extension(_policies(ROLE_EUICC), critical=True))
    return Credential(_issued_by(builder, eum), key)


def make_server(ci: Credential, role: x509.ObjectIdentifier, *, oid: str = DEFAULT_SMDP_OID,
                name: str = "MPS SM-DP+",
                key: ec.EllipticCurvePrivateKey | None = None) -> Credential:
    """A DPauth, DPpb or DSauth (``ROLE_DP_AUTH``, ``ROLE_DP_PB``, ``ROLE_DS_AUTH``)
    certificate for the server ``oid``."""
    label = {ROLE_DP_AUTH: "auth", ROLE_DP_PB: "pb", ROLE_DS_AUTH: "SM-DS auth"}.get(role)
    if label is None:
        raise PkiError("a server signing certificate is DPauth, DPpb or DSauth")
    key = key or _new_key(ci.key.curve)
    subject = _name((NameOID.COMMON_NAME, f"{name} {label}"), (NameOID.ORGANIZATION_NAME, "MPS"),
                    (NameOID.COUNTRY_NAME, "DE"))
    builder = (_builder(subject, ci.cert.subject, key.public_key(), _years(_LEAF_YEARS))
               .add_extension(_key_usage(), critical=True)
               .add_extension(_policies(role), critical=True)
               .add_extension(x509.SubjectAlternativeName(
                   [x509.RegisteredID(x509.ObjectIdentifier(oid))]), critical=False))
    return Credential(_issued_by(builder, ci), key)


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_tls(ci: Credential, hosts: Sequence[str] = DEFAULT_TLS_HOSTS, *,
             oid: str = DEFAULT_SMDP_OID) -> Credential:
    """The SM-DP+'s TLS server certificate, with every host (name or IP) in its SAN."""
    if not hosts:
        raise PkiError("a TLS certificate needs at least one host name")
    key = _new_key()
    subject = _name((NameOID.COMMON_NAME, hosts[0]), (NameOID.ORGANIZATION_NAME, "MPS"),
                    (NameOID.COUNTRY_NAME, "DE"))
    names: list[x509.GeneralName] = [_host_name(h) for h in hosts]
    names.append(x509.RegisteredID(x509.ObjectIdentifier(oid)))
    builder = (_builder(subject, ci.cert.subject, key.public_key(), _years(_LEAF_YEARS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False)
               .add_extension(_policies(ROLE_DP_TLS), critical=False)
               .add_extension(x509.SubjectAlternativeName(names), critical=False))
    return Credential(_issued_by(builder, ci), key)


@functools.cache
def builtin_ci() -> Credential:
    """The built-in test CI: its key is derived from a fixed label (see the module
    documentation); the certificate is made once per process."""
    return make_ci(key=derived_key("ci"))


@functools.cache
def builtin_eum(prefix: str = DEFAULT_EID_PREFIX) -> Credential:
    """The built-in test EUM for EIDs starting with ``prefix``, under :func:`builtin_ci`."""
    return make_eum(builtin_ci(), eid_prefixes=(prefix,), key=derived_key(f"eum {prefix}"))


_BUILTIN_CI = builtin_ci  # init_pki's ``builtin_ci`` argument hides the function
_CI_NAMES = {"nist": "MPS Test CI", "brainpool": "MPS Test CI brainpoolP256r1"}


def random_eid(prefix: str = DEFAULT_EID_PREFIX) -> str:
    """A valid EID under ``prefix``."""
    body = prefix + "".join(str(secrets.randbelow(10)) for _ in range(30 - len(prefix)))
    return make_eid(body)


def _write(path: Path, data: bytes, *, secret: bool, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise PkiError(f"{path} exists (use overwrite to replace it)", path=path)
    atomic_write(path, data, mode=0o600 if secret else 0o644)


def save(credential: Credential, directory: Path, cert_name: str, key_name: str, *,
         overwrite: bool = False) -> None:
    """Write a certificate (PEM, world-readable) and its key (PEM PKCS#8, owner only)."""
    _write(directory / key_name, credential.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), secret=True, overwrite=overwrite)
    _write(directory / cert_name, credential.cert.public_bytes(serialization.Encoding.PEM),
           secret=False, overwrite=overwrite)


@dataclass(frozen=True, slots=True)
class PkiSummary:
    """What :func:`init_pki` or :func:`issue_euicc` wrote."""

    directory: Path
    eids: tuple[str, ...]
    files: tuple[str, ...]


def init_pki(directory: str | os.PathLike[str], *, eids: Iterable[str] = (),
             euicc_count: int = 1, eid_prefix: str = DEFAULT_EID_PREFIX,
             eum_org: str = DEFAULT_EUM_ORG, smdp_oid: str = DEFAULT_SMDP_OID,
             tls_hosts: Sequence[str] = DEFAULT_TLS_HOSTS,
             overwrite: bool = False, builtin_ci: bool = False,
             curve: str = "nist") -> PkiSummary:
    """Make a complete test PKI in ``directory``, on the ``curve`` named (``nist``,
    ``brainpool`` or ``both``: see the module documentation).

    eUICC certificates are issued for every EID in ``eids``, or for ``euicc_count`` random
    EIDs under ``eid_prefix`` when none are given. With ``builtin_ci`` the CI and the EUM
    are the built-in test ones (:func:`builtin_ci`, :func:`builtin_eum`), which emulated
    cards made without a PKI directory trust and chain to; the SM-DP+'s own keys are new.
    """
    if curve not in (*CURVES, "both"):
        raise PkiError(f"curve {curve!r} is not one of {', '.join((*CURVES, 'both'))}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    wanted = list(eids) or [random_eid(eid_prefix) for _ in range(euicc_count)]
    try:
        wanted = [validate_eid(e) for e in wanted]
    except IdentifierError as exc:
        raise PkiError(str(exc)) from exc
    first = "brainpool" if curve == "brainpool" else "nist"
    if builtin_ci:
        if eum_org != DEFAULT_EUM_ORG or curve != "nist":
            raise PkiError("the built-in CI and EUM are NIST P-256, of the default organisation")
        ci, eum = _BUILTIN_CI(), builtin_eum(eid_prefix)
    else:
        ci = make_ci(curve=CURVES[first], name=_CI_NAMES[first])
        eum = make_eum(ci, org=eum_org, eid_prefixes=(eid_prefix,))
    roles = _chain_files(ci, eum, smdp_oid, "")
    roles.append((make_tls(ci, tls_hosts, oid=smdp_oid), TLS_CERT, TLS_KEY))
    if curve == "both":
        bp = make_ci(curve=CURVES["brainpool"], name=_CI_NAMES["brainpool"])
        bp_eum = make_eum(bp, org=eum_org, eid_prefixes=(eid_prefix,))
        roles += _chain_files(bp, bp_eum, smdp_oid, "-brainpool")
    for eid in wanted:
        if not eid.startswith(eid_prefix):
            raise PkiError(f"EID {eid} lies outside the EUM range {eid_prefix}...")
        roles.append((make_euicc(eum, eid), euicc_cert_name(eid), euicc_key_name(eid)))
    files: list[str] = []
    for credential, cert_name, key_name in roles:
        save(credential, root, cert_name, key_name, overwrite=overwrite)
        files += [cert_name, key_name]
    return PkiSummary(root, tuple(wanted), tuple(files))


def _chain_files(ci: Credential, eum: Credential, smdp_oid: str, suffix: str
                 ) -> list[tuple[Credential, str, str]]:
    """CI, EUM, DPauth, DPpb and DSauth of one chain, with their file names
    (``ci<suffix>.pem``)."""
    return [(ci, f"ci{suffix}.pem", f"ci{suffix}.key"),
            (eum, f"eum{suffix}.pem", f"eum{suffix}.key"),
            (make_server(ci, ROLE_DP_AUTH, oid=smdp_oid), f"dpauth{suffix}.pem",
             f"dpauth{suffix}.key"),
            (make_server(ci, ROLE_DP_PB, oid=smdp_oid), f"dppb{suffix}.pem", f"dppb{suffix}.key"),
            (make_server(ci, ROLE_DS_AUTH, oid=smdp_oid), f"dsauth{suffix}.pem",
             f"dsauth{suffix}.key")]


def issue_euicc(directory: str | os.PathLike[str], eid: str, *,
                overwrite: bool = False) -> PkiSummary:
    """Issue one more eUICC certificate with the EUM of the PKI in ``directory``.

    The EID must lie in the range the EUM's name constraint permits.
    """
    root = Path(directory)
    eum = Credential.load(root / EUM_CERT, root / EUM_KEY)
    credential = make_euicc(eum, eid)
    try:
        eid = check_eid_range(credential.cert, eum.cert)
    except CertificateError as exc:
        raise PkiError(str(exc)) from exc
    save(credential, root, euicc_cert_name(eid), euicc_key_name(eid), overwrite=overwrite)
    return PkiSummary(root, (eid,), (euicc_cert_name(eid), euicc_key_name(eid)))


def load_euicc(directory: str | os.PathLike[str], eid: str) -> Credential:
    """The eUICC credential for ``eid`` from a PKI directory."""
    root = Path(directory)
    return Credential.load(root / euicc_cert_name(eid), root / euicc_key_name(eid))

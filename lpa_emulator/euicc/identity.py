"""The eUICC's identity: CERT.EUICC with its private key, CERT.EUM, and the CI certificates
whose key ids (subject key identifiers) GetEUICCInfo1/2 report.

An identity is loaded from files (PEM or DER, so any PKI works, the GSMA test one included)
or issued here: :func:`generate` makes a CERT.EUICC for an EID under the built-in test
issuer (:func:`lpa_emulator.pki.builtin_ci`), a CI and an EUM whose keys are derived from
fixed labels, so every emulated card in every process chains to the same CI. Those keys are
public knowledge: for tests only. Certificates are made by :mod:`lpa_emulator.pki`, the one
place that knows the RSP certificate profiles.

A PKI directory (``mps-emu euicc --pki DIR``) holds, PEM or DER by content::

    ci.pem            CERT.CI (further CIs: ci-<name>.pem)
    eum.pem           CERT.EUM
    eum.key           SK.EUM (optional: lets the card issue its own CERT.EUICC)
    euicc-<EID>.pem   CERT.EUICC of that EID (or euicc.pem for a single card)
    euicc-<EID>.key   SK.EUICC (or euicc.key)

``.der``, ``.crt`` and ``.cer`` are read like ``.pem``.

"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

# _serialization: the encodings' definitions, which the asymmetric key classes load anyway;
# the public ``serialization`` package that re-exports them also loads the SSH key formats
# (the card has no use for those, and a boot would carry them in memory).
from cryptography.hazmat.primitives import _serialization as serialization
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lpa_emulator import pki_files
from lpa_emulator.euicc.errors import EuiccError
from mps_esim.crypto import ecka, signatures

_EID = re.compile(r"[0-9]{32}")
_CERT_SUFFIXES = (".pem", ".der", ".crt", ".cer")


class IdentityError(EuiccError, ValueError):
    """Identity files are missing, unreadable, or do not belong together."""


# --- reading files ------------------------------------------------------------------------------

def load_certificate(path: Path) -> x509.Certificate:
    """A certificate from ``path``, PEM or DER."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read certificate {path}: {exc}") from exc
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise IdentityError(f"{path} is not a certificate (PEM or DER): {exc}") from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A P-256 or brainpoolP256r1 private key from ``path``: PKCS#8 or SEC 1, PEM or DER,
    unencrypted."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read private key {path}: {exc}") from exc
    return _private_key(raw, str(path))


def _private_key(raw: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = pki_files.parse_private_key(raw, source=where)
    except pki_files.PkiError as exc:
        raise IdentityError(str(exc)) from None
    if ecka.rsp_curve(key) is None:
        raise IdentityError(f"{where} is neither a NIST P-256 nor a brainpoolP256r1 key")
    return key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return pki_files.key_pem(key)


def subject_key_id(cert: x509.Certificate) -> bytes:
    """The certificate's subject key identifier (the SHA-1 of its key when it has none)."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return ext.key_identifier


def cert_eid(cert: x509.Certificate) -> str | None:
    """The EID a CERT.EUICC names in its subject serialNumber, if any."""
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not values:
        return None
    value = values[0].value
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if _EID.fullmatch(text) else None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or cert.signature_hash_algorithm is None:
        return False
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes,
                   ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


# --- the identity -------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EuiccIdentity:
    """CERT.EUICC, SK.EUICC, CERT.EUM and the trusted CI certificates.

    ``sources`` remembers, per item (``certificate``, ``private_key``, ``eum_certificate``,
    ``ci_certificates``), the files it was read from, so a state file refers to them instead
    of copying them; items without a source are kept inline.
    """

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    eum_certificate: x509.Certificate
    ci_certificates: tuple[x509.Certificate, ...] = ()
    sources: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    _checked: set[str] = field(default_factory=set, init=False, repr=False)
    """EIDs :meth:`check` has passed for: the parts are immutable, so every copy of a
    card's state (one per change) need not verify the same signatures again."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EuiccIdentity):
            return NotImplemented
        return self._fingerprint() == other._fingerprint()

    def __hash__(self) -> int:
        return hash(self._fingerprint())

    def _fingerprint(self) -> tuple[bytes, ...]:
        certs = (self.certificate, self.eum_certificate, *self.ci_certificates)
        return (*(c.fingerprint(hashes.SHA256()) for c in certs),
                self.private_key.private_numbers().private_value.to_bytes(32, "big"))

    @property
    def eid(self) -> str | None:
        """The EID in CERT.EUICC (subject serialNumber), if it names one."""
        return cert_eid(self.certificate)

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def eum_certificate_der(self) -> bytes:
        return self.eum_certificate.public_bytes(serialization.Encoding.DER)

    @property
    def ci_pkids(self) -> tuple[bytes, ...]:
        """Subject key ids of the CIs the card trusts (euiccCiPKIdListForVerification);
        without CI certificates, the key id CERT.EUM names as its authority (so a PKI
        handed over as eUICC + EUM alone still works)."""
        if self.ci_certificates:
            return tuple(dict.fromkeys(subject_key_id(c) for c in self.ci_certificates))
        return self.signing_pkids

    @property
    def signing_pkids(self) -> tuple[bytes, ...]:
        """Key ids of the CIs the card's own chain is issued under
        (euiccCiPKIdListForSigning): CERT.EUM's authority key id."""
        aki = authority_key_id(self.eum_certificate)
        if aki is not None:
            return (aki,)
        issuers = [c for c in self.ci_certificates if _issued_by(self.eum_certificate, c)]
        return tuple(subject_key_id(c) for c in issuers)

    def sign(self, data: bytes) -> bytes:
        """ECDSA with SHA-256 by SK.EUICC over ``data``, as 64 raw bytes r || s."""
        return signatures.sign(self.private_key, data)

    def check(self, eid: str) -> None:
        """Raise :class:`IdentityError` unless the parts belong together and to ``eid``."""
        if eid in self._checked:
            return
        public = self.certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.public_numbers() != (
                self.private_key.public_key().public_numbers()):
            raise IdentityError("the eUICC private key does not match CERT.EUICC")
        named = self.eid
        if named is not None and named != eid:
            raise IdentityError(f"CERT.EUICC is issued to EID {named}, not {eid}")
        if not _issued_by(self.certificate, self.eum_certificate):
            raise IdentityError("CERT.EUICC is not signed by CERT.EUM")
        if self.ci_certificates and not any(_issued_by(self.eum_certificate, ci)
                                            for ci in self.ci_certificates):
            raise IdentityError("CERT.EUM is not signed by any of the CI certificates")
        self._checked.add(eid)

    # --- persistence (bytes as PEM text at this edge) ---------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Items read from files as ``{"path": ...}``, the others inline as ``{"pem": ...}``."""
        def one(name: str, pem: str) -> dict[str, str]:
            paths = self.sources.get(name)
            return {"path": str(paths[0])} if paths else {"pem": pem}

        ci_paths = self.sources.get("ci_certificates")
        return {
            "certificate": one("certificate", _pem(self.certificate)),
            "private_key": one("private_key", _key_pem(self.private_key)),
            "eum_certificate": one("eum_certificate", _pem(self.eum_certificate)),
            "ci_certificates": ([{"path": str(p)} for p in ci_paths] if ci_paths
                                else [{"pem": _pem(c)} for c in self.ci_certificates]),
        }

    @classmethod
    def from_dict(cls, data: object, base: Path | None = None) -> EuiccIdentity:
        """Inverse of :meth:`to_dict`; relative paths are taken from ``base``."""
        if not isinstance(data, dict):
            raise IdentityError("identity must be an object")
        sources: dict[str, tuple[Path, ...]] = {}

        def blob(name: str, item: object) -> tuple[bytes, Path | None]:
            if not isinstance(item, dict) or len(item) != 1 or not isinstance(
                    next(iter(item.values())), str):
                raise IdentityError(f"identity.{name} must be {{\"path\": ...}} or "
                                    "{\"pem\": ...}")
            if "pem" in item:
                return item["pem"].encode(), None
            if "path" not in item:
                raise IdentityError(f"identity.{name} must hold a path or a pem")
            path = Path(item["path"])
            if base is not None and not path.is_absolute():
                path = base / path
            try:
                return path.read_bytes(), path
            except OSError as exc:
                raise IdentityError(f"identity.{name}: cannot read {path}: {exc}") from exc

        def cert(name: str, item: object) -> tuple[x509.Certificate, Path | None]:
            raw, path = blob(name, item)
            try:
                if raw.lstrip().startswith(b"-----BEGIN"):
                    return x509.load_pem_x509_certificate(raw), path
                return x509.load_der_x509_certificate(raw), path
            except ValueError as exc:
                raise IdentityError(f"identity.{name} is not a certificate: {exc}") from None

        certificate, p1 = cert("certificate", data.get("certificate"))
        raw_key, p2 = blob("private_key", data.get("private_key"))
        key = _private_key(raw_key, "identity.private_key")
        eum, p3 = cert("eum_certificate", data.get("eum_certificate"))
        cis_in = data.get("ci_certificates", [])
        if not isinstance(cis_in, list):
            raise IdentityError("identity.ci_certificates must be a list")
        cis = [cert("ci_certificates", c) for c in cis_in]
        for name, path in (("certificate", p1), ("private_key", p2), ("eum_certificate", p3)):
            if path is not None:
                sources[name] = (path,)
        ci_paths = tuple(p for _c, p in cis if p is not None)
        if ci_paths and len(ci_paths) == len(cis):
            sources["ci_certificates"] = ci_paths
        return cls(certificate, key, eum, tuple(c for c, _p in cis), sources)


# --- issuing certificates ------------------------------------------------------------------------

@dataclass(frozen=True)
class Issuer:
    """An EUM able to issue eUICC certificates, and the CIs above it."""

    eum_certificate: x509.Certificate
    eum_key: ec.EllipticCurvePrivateKey
    ci_certificates: tuple[x509.Certificate, ...]

    def issue(self, eid: str, *, sources: Mapping[str, tuple[Path, ...]] | None = None
              ) -> EuiccIdentity:
        """A new key pair and CERT.EUICC for ``eid`` (:func:`lpa_emulator.pki.make_euicc`)."""
        from lpa_emulator import pki  # issuing only: a card that exists never loads it

        try:
            credential = pki.make_euicc(pki.Credential(self.eum_certificate, self.eum_key), eid)
        except pki.PkiError as exc:
            raise IdentityError(str(exc)) from exc
        return EuiccIdentity(credential.cert, credential.key, self.eum_certificate,
                             self.ci_certificates, dict(sources or {}))


@functools.cache
def builtin_issuer(iin: str | None = None) -> Issuer:
    """The built-in test CI and an EUM for the EID issuer number ``iin``
    (:func:`lpa_emulator.pki.builtin_ci`, :func:`lpa_emulator.pki.builtin_eum`); without
    ``iin`` the default one (:data:`lpa_emulator.pki.DEFAULT_EID_PREFIX`).

    Their keys are derived from fixed labels, so cards made anywhere chain to the same CI,
    and an SM-DP+ PKI made with ``mps-emu pki init --builtin-ci`` serves them.
    """
    from lpa_emulator import pki

    eum = pki.builtin_eum(pki.DEFAULT_EID_PREFIX if iin is None else iin)
    return Issuer(eum.cert, eum.key, (pki.builtin_ci().cert,))


def generate(eid: str) -> EuiccIdentity:
    """A fresh identity for ``eid`` under the built-in test issuer."""
    return builtin_issuer(eid[:8]).issue(eid)


# --- a PKI directory ------------------------------------------------------------------------

def _find(directory: Path, stem: str, suffixes: Sequence[str] = _CERT_SUFFIXES) -> Path | None:
    return next((directory / f"{stem}{s}" for s in suffixes
                 if (directory / f"{stem}{s}").is_file()), None)


def pki_eids(directory: Path) -> list[str]:
    """The EIDs that have a CERT.EUICC (``euicc-<EID>.pem``) in ``directory``."""
    found = {m.group(1) for p in Path(directory).iterdir()
             if (m := re.fullmatch(r"euicc-([0-9]{32})\.(?:pem|der|crt|cer)", p.name))}
    return sorted(found)


def _issuers(directory: Path) -> tuple[x509.Certificate, tuple[x509.Certificate, ...],
                                       dict[str, tuple[Path, ...]]]:
    """CERT.EUM and the CI certificates of a PKI directory, and the files they came from."""
    if not directory.is_dir():
        raise IdentityError(f"PKI directory {directory} does not exist")
    eum_path = _find(directory, "eum")
    if eum_path is None:
        raise IdentityError(f"{directory} holds no eum.pem (CERT.EUM)")
    ci_paths = [p for p in sorted(directory.iterdir())
                if p.suffix in _CERT_SUFFIXES and (p.stem == "ci" or p.stem.startswith("ci-"))]
    sources: dict[str, tuple[Path, ...]] = {"eum_certificate": (eum_path.resolve(),)}
    if ci_paths:
        sources["ci_certificates"] = tuple(p.resolve() for p in ci_paths)
    return (load_certificate(eum_path), tuple(load_certificate(p) for p in ci_paths),
            sources)


def _euicc_files(directory: Path, eid: str | None) -> tuple[Path | None, Path | None]:
    """CERT.EUICC and its key for ``eid`` (``euicc-<EID>``), else plain ``euicc``."""
    if eid is not None:
        cert_path = _find(directory, f"euicc-{eid}")
        if cert_path is not None:
            return cert_path, _find(directory, f"euicc-{eid}", (".key",))
    return _find(directory, "euicc"), _find(directory, "euicc", (".key",))


def load_pki_dir(directory: Path, eid: str | None) -> EuiccIdentity:
    """The identity of ``eid`` from a PKI directory (see the module documentation).

    Without ``eid`` the directory must name exactly one eUICC. When it has no CERT.EUICC for
    the EID but holds ``eum.key``, a CERT.EUICC is issued under that EUM (kept inline).
    """
    directory = Path(directory)
    eum, cis, sources = _issuers(directory)
    if eid is None:
        eids = pki_eids(directory)
        if len(eids) == 1:
            eid = eids[0]
    cert_path, key_path = _euicc_files(directory, eid)
    if cert_path is not None:
        if key_path is None:
            raise IdentityError(f"{cert_path} has no private key beside it "
                                f"({cert_path.with_suffix('.key').name})")
        identity = EuiccIdentity(
            load_certificate(cert_path), load_private_key(key_path), eum, cis,
            {**sources, "certificate": (cert_path.resolve(),),
             "private_key": (key_path.resolve(),)})
        if eid is not None and identity.eid not in (None, eid):
            raise IdentityError(f"{cert_path} belongs to EID {identity.eid}, not {eid}")
        return identity
    eum_key_path = _find(directory, "eum", (".key",))
    if eid is None:
        raise IdentityError(f"{directory} holds no euicc-<EID>.pem; give the EID")
    if eum_key_path is None:
        raise IdentityError(f"{directory} holds neither euicc-{eid}.pem nor eum.key "
                            "to issue one")
    issuer = Issuer(eum, load_private_key(eum_key_path), cis)
    return issuer.issue(eid, sources=sources)


def load_files(*, certificate: Path, private_key: Path, eum_certificate: Path,
               ci_certificates: Sequence[Path] = ()) -> EuiccIdentity:
    """An identity from individual files (``mps-emu euicc --cert --key --eum-cert``)."""
    return EuiccIdentity(
        load_certificate(certificate), load_private_key(private_key),
        load_certificate(eum_certificate), tuple(load_certificate(p) for p in ci_certificates),
        {"certificate": (Path(certificate).resolve(),),
         "private_key": (Path(private_key).resolve(),),
         "eum_certificate": (Path(eum_certificate).resolve(),),
         **({"ci_certificates": tuple(Path(p).resolve() for p in ci_certificates)}
            if ci_certificates else {})})


def write_pki_dir(directory: Path, issuer: Issuer, identities: Sequence[EuiccIdentity] = (),
                  *, ci_keys: Sequence[ec.EllipticCurvePrivateKey] = ()) -> None:
    """Write ``issuer`` and ``identities`` in the PKI directory layout (PEM), e.g. to hand
    the built-in test PKI to other tools. Keys are written readable by the owner only."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def secret(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(_key_pem(key))

    for i, ci in enumerate(issuer.ci_certificates):
        (directory / ("ci.pem" if i == 0 else f"ci-{i}.pem")).write_text(_pem(ci))
    for i, key in enumerate(ci_keys):
        secret(directory / ("ci.key" if i == 0 else f"ci-{i}.key"), key)
    (directory / "eum.pem").write_text(_pem(issuer.eum_certificate))
    secret(directory / "eum.key", issuer.eum_key)
    for identity in identities:
        eid = identity.eid
        if eid is None:
            raise IdentityError("an identity without an EID in its certificate cannot be named")
        (directory / f"euicc-{eid}.pem").write_text(_pem(identity.certificate))
        secret(directory / f"euicc-{eid}.key", identity.private_key)

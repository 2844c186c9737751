"""Certificate checks of the RSP PKI (SGP.22 4.5): roles, chains, EID ranges, OIDs.

The chains are short and fixed (CI -> EUM -> eUICC, CI -> DPauth / DPpb / DP TLS), so
they are walked explicitly instead of through a general path builder. That also lets the
EUM's name constraint be applied the way SGP.22 means it: the eUICC certificate's
``serialNumber`` (its EID) must *start with* the ``serialNumber`` of a permitted subtree, and
its organisation must equal the subtree's, which generic X.509 name-constraint
processing (exact RDN match) would not do.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mps_esim.crypto.errors import CertificateError, CertificateProblem
from mps_wire.identifiers import IdentifierError, validate_eid

_RSP_ROLE = "2.23.146.1.2.1"
ROLE_CI = x509.ObjectIdentifier(f"{_RSP_ROLE}.0")
ROLE_EUICC = x509.ObjectIdentifier(f"{_RSP_ROLE}.1")
ROLE_EUM = x509.ObjectIdentifier(f"{_RSP_ROLE}.2")
ROLE_DP_TLS = x509.ObjectIdentifier(f"{_RSP_ROLE}.3")
ROLE_DP_AUTH = x509.ObjectIdentifier(f"{_RSP_ROLE}.4")
ROLE_DP_PB = x509.ObjectIdentifier(f"{_RSP_ROLE}.5")
ROLE_DS_TLS = x509.ObjectIdentifier(f"{_RSP_ROLE}.6")
ROLE_DS_AUTH = x509.ObjectIdentifier(f"{_RSP_ROLE}.7")

ROLE_NAMES = {ROLE_CI: "ci", ROLE_EUICC: "euicc", ROLE_EUM: "eum", ROLE_DP_TLS: "dptls",
              ROLE_DP_AUTH: "dpauth", ROLE_DP_PB: "dppb", ROLE_DS_TLS: "dstls",
              ROLE_DS_AUTH: "dsauth"}


def _refuse(message: str, role: str,
            problem: CertificateProblem = CertificateProblem.INVALID) -> CertificateError:
    return CertificateError(message, problem=problem, role=role)


def load_der(data: bytes, role: str) -> x509.Certificate:
    """A DER certificate from the wire; :class:`CertificateError` if it does not parse."""
    try:
        return x509.load_der_x509_certificate(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _refuse(f"{role} certificate does not parse: {exc}", role) from exc


def subject_key_id(cert: x509.Certificate) -> bytes | None:
    """The certificate's subject key identifier, if it has one."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def authority_key_id(cert: x509.Certificate) -> bytes | None:
    """The key identifier of the issuer named in the certificate, if any."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier


def has_role(cert: x509.Certificate, role: x509.ObjectIdentifier) -> bool:
    """Whether the certificate policies name the RSP ``role``."""
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return False
    return any(p.policy_identifier == role for p in policies)


def registered_ids(cert: x509.Certificate) -> list[str]:
    """The registered ids (OIDs) in the subject alternative name, dotted."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [oid.dotted_string for oid in san.get_values_for_type(x509.RegisteredID)]


def server_oid(cert: x509.Certificate) -> str:
    """The SM-DP+ OID of a DPauth or DPpb certificate (its SAN registered id)."""
    ids = registered_ids(cert)
    if len(ids) != 1:
        raise _refuse(f"server certificate carries {len(ids)} registered ids, expected one",
                      _role_name(cert))
    return ids[0]


def _role_name(cert: x509.Certificate) -> str:
    for oid, name in ROLE_NAMES.items():
        if has_role(cert, oid):
            return name
    return "unknown"


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None


def eid_of(cert: x509.Certificate) -> str:
    """The EID an eUICC certificate is issued for (its subject ``serialNumber``)."""
    serial = _attribute(cert.subject, NameOID.SERIAL_NUMBER)
    if serial is None:
        raise _refuse("eUICC certificate subject has no single serialNumber (EID)", "euicc")
    try:
        return validate_eid(serial)
    except IdentifierError as exc:
        raise _refuse(f"eUICC certificate serialNumber is no valid EID: {exc}", "euicc") from exc


def permitted_eid_ranges(eum: x509.Certificate) -> list[tuple[str | None, str]] | None:
    """The (organisation, EID prefix) pairs an EUM may issue for; None without a constraint."""
    try:
        nc = eum.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    ranges: list[tuple[str | None, str]] = []
    for subtree in nc.permitted_subtrees or []:
        if isinstance(subtree, x509.DirectoryName):
            prefix = _attribute(subtree.value, NameOID.SERIAL_NUMBER)
            if prefix:
                ranges.append((_attribute(subtree.value, NameOID.ORGANIZATION_NAME), prefix))
    return ranges


def check_eid_range(euicc: x509.Certificate, eum: x509.Certificate) -> str:
    """The eUICC certificate's EID, if it lies in the EUM's permitted range."""
    eid = eid_of(euicc)
    ranges = permitted_eid_ranges(eum)
    if ranges is None:
        return eid
    org = _attribute(euicc.subject, NameOID.ORGANIZATION_NAME)
    for permitted_org, prefix in ranges:
        if eid.startswith(prefix) and (permitted_org is None or permitted_org == org):
            return eid
    raise _refuse(f"EID {eid} lies outside the range its EUM may issue",
                  "euicc", CertificateProblem.EID_OUT_OF_RANGE)


def _check_validity(cert: x509.Certificate, role: str, at: datetime.datetime | None) -> None:
    if at is None:
        return
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise _refuse(f"{role} certificate is not valid at {at:%Y-%m-%d %H:%M} UTC "
                      f"({cert.not_valid_before_utc:%Y-%m-%d} .. "
                      f"{cert.not_valid_after_utc:%Y-%m-%d})", role,
                      CertificateProblem.EXPIRED)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bc.ca and ku.key_cert_sign


def check_signed_by(cert: x509.Certificate, issuer: x509.Certificate, role: str) -> None:
    """``cert`` names ``issuer`` and carries a valid signature by ``issuer``'s key."""
    if cert.issuer != issuer.subject:
        raise _refuse(f"{role} certificate is issued by {cert.issuer.rfc4514_string()}, "
                      f"not by {issuer.subject.rfc4514_string()}", role)
    aki, ski = authority_key_id(cert), subject_key_id(issuer)
    if aki is not None and ski is not None and aki != ski:
        raise _refuse(f"{role} certificate names another issuer key", role)
    if not _is_ca(issuer):
        raise _refuse(f"the issuer of the {role} certificate is no CA", role)
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _refuse(f"the issuer of the {role} certificate has no EC key", role)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise _refuse(f"{role} certificate names no hash algorithm", role)
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except InvalidSignature as exc:
        raise _refuse(f"{role} certificate signature does not verify", role) from exc


def _check_leaf(cert: x509.Certificate, role_oid: x509.ObjectIdentifier, role: str,
                at: datetime.datetime | None) -> None:
    if not has_role(cert, role_oid):
        raise _refuse(f"certificate does not carry the {role} role policy", role)
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        raise _refuse(f"{role} certificate has no EC public key", role)
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise _refuse(f"{role} certificate has no key usage", role) from exc
    if not ku.digital_signature:
        raise _refuse(f"{role} certificate key may not sign", role)
    _check_validity(cert, role, at)


def find_ci(cis: Iterable[x509.Certificate], key_id: bytes | None
            ) -> x509.Certificate | None:
    """The CI certificate whose subject key identifier is ``key_id``."""
    if key_id is None:
        return None
    return next((ci for ci in cis if subject_key_id(ci) == key_id), None)


def _issuing_ci(cert: x509.Certificate, cis: Sequence[x509.Certificate], role: str,
                at: datetime.datetime | None) -> x509.Certificate:
    aki = authority_key_id(cert)
    if aki is not None:
        ci = find_ci(cis, aki)
    else:
        # Without a key id only the issuer name can find the CI.
        ci = next((c for c in cis if c.subject == cert.issuer), None)
    if ci is None:
        raise _refuse(f"{role} certificate does not chain to a known CI", role,
                      CertificateProblem.UNKNOWN_CI)
    if not has_role(ci, ROLE_CI):
        raise _refuse("the trusted root lacks the CI role policy", "ci")
    _check_validity(ci, "ci", at)
    check_signed_by(cert, ci, role)
    return ci


def verify_server_certificate(cert: x509.Certificate, cis: Sequence[x509.Certificate], *,
                              role: x509.ObjectIdentifier,
                              at: datetime.datetime | None = None) -> x509.Certificate:
    """Check a DPauth / DPpb / DSauth certificate against the known CIs; return the
    issuing CI.

    ``at`` is the time to check validity at; None skips the check (an eUICC has no clock).
    """
    name = ROLE_NAMES.get(role, "server")
    _check_leaf(cert, role, name, at)
    ci = _issuing_ci(cert, cis, name, at)
    server_oid(cert)
    return ci


def verify_euicc_chain(euicc: x509.Certificate, eum: x509.Certificate,
                       cis: Sequence[x509.Certificate], *,
                       at: datetime.datetime | None = None) -> str:
    """Check eUICC -> EUM -> CI and the EID range; return the EID.

    :class:`CertificateError` names the failing certificate in ``role`` (``eum`` or
    ``euicc``) and why in ``problem``.
    """
    _check_validity(eum, "eum", at)
    if not has_role(eum, ROLE_EUM):
        raise _refuse("EUM certificate does not carry the EUM role policy", "eum")
    _issuing_ci(eum, cis, "eum", at)
    _check_leaf(euicc, ROLE_EUICC, "euicc", at)
    check_signed_by(euicc, eum, "euicc")
    return check_eid_range(euicc, eum)


def now() -> datetime.datetime:
    """The current time in UTC, as validity checks take it."""
    return datetime.datetime.now(datetime.UTC)

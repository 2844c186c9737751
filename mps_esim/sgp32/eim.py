"""eIM configuration data (SGP.32 2.11.1 and 5.9.4, ASN.1 ``EimConfigurationData``).

What an eUICC keeps about each eIM it is associated with: the eIM's id, where to reach it,
the key that verifies its eUICC packages, the replay counter and the protocols it speaks.
Encoded under the automatic tags of the SGP32Definitions module::

    30 { 80 eimId, 81 eimFqdn, 82 eimIdType, 83 counterValue, 84 associationToken,
         A5 { A0 SubjectPublicKeyInfo | A1 Certificate }, 87 eimSupportedProtocol,
         88 euiccCiPKId, 89 indirectProfileDownload }

``trustedPublicKeyDataTls`` (``A6``) and proprietary information (``AA``) are skipped when
read: this eUICC keeps no TLS anchors (the IPA holds those).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from mps_esim import tlv
from mps_esim.crypto import ecka
from mps_esim.sgp22 import der

TAG_EIM_ID = 0x80
TAG_FQDN = 0x81
TAG_ID_TYPE = 0x82
TAG_COUNTER = 0x83
TAG_ASSOCIATION_TOKEN = 0x84
TAG_PUBLIC_KEY_DATA = 0xA5
TAG_TLS_KEY_DATA = 0xA6
TAG_PROTOCOLS = 0x87
TAG_CI_PKID = 0x88
TAG_INDIRECT = 0x89

MAX_EIM_ID = 128
MAX_COUNTER = 0x7FFFFFFF
"""The largest counterValue this eUICC accepts (a positive four-byte INTEGER); above it a
package or configuration is refused with counterValueOutOfRange."""

ID_TYPES = {1: "oid", 2: "fqdn", 3: "proprietary"}
PROTOCOLS = ("eimRetrieveHttps", "eimRetrieveCoaps", "eimInjectHttps", "eimInjectCoaps",
             "eimProprietary")
"""EimSupportedProtocol's named bits, in bit order."""


class EimConfigError(tlv.TlvError):
    """eIM configuration data that cannot be used (no key, a key that is not EC, ...)."""


def _spki(public_key: bytes) -> ec.EllipticCurvePublicKey:
    read = ecka.read_spki(public_key)
    if read is not None:
        return read
    # Any other key gets the library's loader and its verdict (imported here: an eIM's key
    # is nearly always an RSP curve's point, read above).
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_der_public_key(public_key)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EimConfigError(f"eimPublicKey is not a SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EimConfigError("eimPublicKey is not an elliptic curve key")
    return key


@dataclass(frozen=True)
class EimConfig:
    """One eIM's configuration data. ``public_key`` is a DER SubjectPublicKeyInfo and
    ``certificate`` a DER X.509 certificate (at most one of them)."""

    eim_id: str
    fqdn: str | None = None
    id_type: int | None = None
    counter: int | None = None
    association_token: int | None = None
    public_key: bytes | None = field(default=None, repr=False)
    certificate: bytes | None = field(default=None, repr=False)
    protocols: frozenset[str] = frozenset()
    ci_pkid: bytes | None = None
    indirect_download: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.eim_id) <= MAX_EIM_ID:
            raise ValueError(f"eimId is 1 to {MAX_EIM_ID} characters")
        if self.public_key is not None and self.certificate is not None:
            raise ValueError("eimPublicKeyData is one of a public key or a certificate")
        if self.id_type is not None and self.id_type not in ID_TYPES:
            raise ValueError(f"eimIdType must be one of {sorted(ID_TYPES)}")
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"unknown eIM protocols {sorted(unknown)}")

    def verification_key(self) -> ec.EllipticCurvePublicKey:
        """The key that verifies this eIM's eUICC packages."""
        if self.public_key is not None:
            return _spki(self.public_key)
        if self.certificate is not None:
            try:
                key = x509.load_der_x509_certificate(self.certificate).public_key()
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise EimConfigError(f"eimCertificate is not X.509: {exc}") from exc
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise EimConfigError("eimCertificate does not hold an elliptic curve key")
            return key
        raise EimConfigError(f"eIM {self.eim_id!r} has no eimPublicKeyData")

    def with_key(self, key: ec.EllipticCurvePublicKey) -> EimConfig:
        from cryptography.hazmat.primitives import serialization

        return replace(self, certificate=None, public_key=key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def encode(self, tag: int = 0x30, *, with_secrets: bool = True) -> bytes:
        """The DER of this configuration under ``tag`` (``30``, or ``A8``/``AA`` as an
        eCO). Without ``with_secrets`` the association token is left out."""
        key_data = None
        if self.public_key is not None:
            key_data = tlv.encode(0xA0, tlv.decode_one(self.public_key).value)
        elif self.certificate is not None:
            key_data = tlv.encode(0xA1, tlv.decode_one(self.certificate).value)
        token = self.association_token if with_secrets else None
        return der.seq(
            tag,
            tlv.encode(TAG_EIM_ID, self.eim_id.encode()),
            der.opt(TAG_FQDN, None if self.fqdn is None else self.fqdn.encode()),
            der.opt(TAG_ID_TYPE, None if self.id_type is None else tlv.encode_int(self.id_type)),
            der.opt(TAG_COUNTER, None if self.counter is None else tlv.encode_int(self.counter)),
            der.opt(TAG_ASSOCIATION_TOKEN, None if token is None else tlv.encode_int(token)),
            der.opt(TAG_PUBLIC_KEY_DATA, key_data),
            der.opt(TAG_PROTOCOLS, tlv.encode_bits(PROTOCOLS.index(p) for p in self.protocols)
                    if self.protocols else None),
            der.opt(TAG_CI_PKID, self.ci_pkid),
            tlv.encode(TAG_INDIRECT, b"") if self.indirect_download else None)

    @classmethod
    def decode(cls, item: tlv.Tlv, where: str = "EimConfigurationData") -> EimConfig:
        """Read one EimConfigurationData (whatever its outer tag); :class:`tlv.TlvError`
        (an :class:`der.Asn1Error`) names what is wrong."""
        m = der.Members(item, where)
        eim_id = der.text_value(m.required(TAG_EIM_ID, "eimId").value, where,
                                max_length=MAX_EIM_ID)
        if not eim_id:
            raise der.Asn1Error("eimId is empty", where=where)
        fqdn = m.optional(TAG_FQDN)
        id_type = m.optional(TAG_ID_TYPE)
        counter = m.optional(TAG_COUNTER)
        token = m.optional(TAG_ASSOCIATION_TOKEN)
        key_data = m.optional(TAG_PUBLIC_KEY_DATA)
        m.optional(TAG_TLS_KEY_DATA)
        protocols = m.optional(TAG_PROTOCOLS)
        ci_pkid = m.optional(TAG_CI_PKID)
        indirect = m.optional(TAG_INDIRECT)
        public_key, certificate = _key_data(key_data, where)
        bits = der.bits_value(protocols.value, where) if protocols else frozenset()
        if indirect is not None and indirect.value:
            raise der.Asn1Error("indirectProfileDownload is a NULL", where=where)
        return cls(
            eim_id=eim_id,
            fqdn=None if fqdn is None else der.text_value(fqdn.value, where, max_length=255),
            id_type=None if id_type is None else der.int_value(id_type.value, where, low=1,
                                                                high=3),
            counter=None if counter is None else der.int_value(counter.value, where, low=None),
            association_token=None if token is None else der.int_value(token.value, where,
                                                                       low=None),
            public_key=public_key, certificate=certificate,
            protocols=frozenset(PROTOCOLS[b] for b in bits if b < len(PROTOCOLS)),
            ci_pkid=None if ci_pkid is None else der.sized(ci_pkid.value, where, low=1,
                                                           high=32),
            indirect_download=indirect is not None)


def _key_data(item: tlv.Tlv | None, where: str) -> tuple[bytes | None, bytes | None]:
    """eimPublicKeyData: the explicit ``A5`` around ``A0`` (SubjectPublicKeyInfo) or ``A1``
    (Certificate), returned re-tagged as the universal SEQUENCE they are."""
    if item is None:
        return None, None
    choice = der.children(item, where)
    if len(choice) != 1 or choice[0].tag not in (0xA0, 0xA1):
        raise der.Asn1Error("eimPublicKeyData holds one eimPublicKey (A0) or eimCertificate "
                            "(A1)", where=where)
    value = tlv.encode(0x30, choice[0].value)
    if choice[0].tag == 0xA0:
        _spki(value)
        return value, None
    try:
        x509.load_der_x509_certificate(value)
    except ValueError as exc:
        raise EimConfigError(f"{where}: eimCertificate is not X.509: {exc}") from exc
    return None, value


def decode_list(item: tlv.Tlv, where: str) -> list[EimConfig]:
    """A SEQUENCE OF EimConfigurationData (``A0`` in AddInitialEim and its response)."""
    return [EimConfig.decode(der.expect(entry, 0x30, f"{where}[{i}]"), f"{where}[{i}]")
            for i, entry in enumerate(der.children(item, where))]

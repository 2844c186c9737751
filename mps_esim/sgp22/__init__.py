"""The SGP.22 (v2.x) data types this system speaks, as one DER codec for every role.

The eUICC encodes what the LPA decodes, the LPA builds what the SM-DP+ reads, so the types
live here once, on the strict TLV layer of :mod:`mps_esim.tlv`:

* this module: tags, result codes, named bits, and the ES10 management types
  (:class:`ProfileInfo`, :class:`NotificationMetadata`, :class:`EuiccInfo1`,
  :class:`EuiccInfo2`, :class:`PolicyRule`) with ``encode`` and ``decode``;
* :mod:`~mps_esim.sgp22.rsp`: the profile download (AuthenticateServer,
  PrepareDownload, the bound profile package, installation results, CancelSession,
  pending notifications);
* :mod:`~mps_esim.sgp22.saip`: the TCA profile package a bound package carries;
* :mod:`~mps_esim.sgp22.der`: helpers for reading SEQUENCE members in order, OIDs,
  and errors that say where in a structure a value was bad.

The ASN.1 module of SGP.22 uses automatic tagging: a CHOICE inside a SEQUENCE is wrapped in
its context tag (``A0``), plain components are numbered ``80``, ``81``, ...; components
that carry their own APPLICATION or PRIVATE tag (``5A`` ICCID, ``4F`` ISD-P AID, ``E3``
ProfileInfo) keep it. Decoders are strict about what DER fixes (length forms, INTEGER and
BOOLEAN contents, field order, duplicates) and skip unknown fields, which later versions add
behind the extension markers. Every decoding failure raises :class:`tlv.TlvError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mps_esim import simfiles, tlv

# --- ES10 command tags ------------------------------------------------------------------------

TAG_GET_EUICC_INFO1 = 0xBF20
TAG_GET_EUICC_INFO2 = 0xBF22
TAG_GET_EUICC_CHALLENGE = 0xBF2E
TAG_LIST_PROFILE_INFO = 0xBF2D
TAG_ENABLE_PROFILE = 0xBF31
TAG_DISABLE_PROFILE = 0xBF32
TAG_DELETE_PROFILE = 0xBF33
TAG_MEMORY_RESET = 0xBF34
TAG_SET_NICKNAME = 0xBF29
TAG_LIST_NOTIFICATION = 0xBF28
TAG_RETRIEVE_NOTIFICATIONS = 0xBF2B
TAG_NOTIFICATION_SENT = 0xBF30
TAG_CANCEL_SESSION = 0xBF41
TAG_GET_EUICC_DATA = 0xBF3E
TAG_GET_CONFIGURED_ADDRESSES = 0xBF3C
TAG_SET_DEFAULT_DP_ADDRESS = 0xBF3F
TAG_GET_RAT = 0xBF43
TAG_PREPARE_DOWNLOAD = 0xBF21
TAG_AUTHENTICATE_SERVER = 0xBF38
TAG_BOUND_PROFILE_PACKAGE = 0xBF36
TAG_INITIALISE_SECURE_CHANNEL = 0xBF23
TAG_CONFIGURE_ISDP = 0xBF24
TAG_STORE_METADATA = 0xBF25
TAG_REPLACE_SESSION_KEYS = 0xBF26

# --- data object tags -------------------------------------------------------------------------

TAG_ICCID = 0x5A
TAG_EID = 0x5A
TAG_ISDP_AID = 0x4F
TAG_TAG_LIST = 0x5C
TAG_PROFILE_INFO = 0xE3
TAG_PROFILE_STATE = 0x9F70
TAG_NICKNAME = 0x90
TAG_PROVIDER_NAME = 0x91
TAG_PROFILE_NAME = 0x92
TAG_ICON_TYPE = 0x93
TAG_ICON = 0x94
TAG_PROFILE_CLASS = 0x95
TAG_NOTIFICATION_CONFIG = 0xB6
TAG_PROFILE_OWNER = 0xB7
TAG_DP_PROPRIETARY_DATA = 0xB8
TAG_PROFILE_POLICY_RULES = 0x99
TAG_NOTIFICATION_METADATA = 0xBF2F
TAG_PROFILE_INSTALLATION_RESULT = 0xBF37
TAG_PROFILE_INSTALLATION_RESULT_DATA = 0xBF27
TAG_SIGNATURE = 0x5F37
TAG_OTPK = 0x5F49
TAG_SEQUENCE = 0x30
TAG_OCTET_STRING = 0x04
TAG_UTF8_STRING = 0x0C
TAG_OID = 0x06
TAG_INTEGER = 0x02
TAG_BOOLEAN = 0x01

PROFILE_INFO_TAGS = (TAG_ICCID, TAG_ISDP_AID, TAG_PROFILE_STATE, TAG_NICKNAME,
                     TAG_PROVIDER_NAME, TAG_PROFILE_NAME, TAG_ICON_TYPE, TAG_ICON,
                     TAG_PROFILE_CLASS, TAG_NOTIFICATION_CONFIG, TAG_PROFILE_OWNER,
                     TAG_DP_PROPRIETARY_DATA, TAG_PROFILE_POLICY_RULES)
"""The components of ProfileInfo in their ASN.1 (and so DER) order."""

# --- enumerations and named bits ----------------------------------------------------------------

PROFILE_CLASSES = ("test", "provisioning", "operational")
PROFILE_STATES = ("disabled", "enabled")
NOTIFICATION_EVENTS = ("install", "enable", "disable", "delete")
"""NotificationEvent bits 0-3 (notificationInstall, ...Enable, ...Disable, ...Delete)."""
PPR_IDS = ("pprUpdateControl", "ppr1", "ppr2")
"""PprIds bits: ppr1 = the profile may not be disabled, ppr2 = it may not be deleted."""
UICC_CAPABILITIES = (
    "contactlessSupport", "usimSupport", "isimSupport", "csimSupport", "akaMilenage",
    "akaCave", "akaTuak128", "akaTuak256", "rfu1", "rfu2", "gbaAuthenUsim", "gbaAuthenISim",
    "mbmsAuthenUsim", "eapClient", "javacard", "multos", "multipleUsimSupport",
    "multipleIsimSupport", "multipleCsimSupport", "berTlvFileSupport", "dfLinkSupport",
    "catTp", "getIdentity", "profile-a-x25519", "profile-b-p256")
RSP_CAPABILITIES = ("additionalProfile", "crlSupport", "rpmSupport", "testProfileSupport")
MEMORY_RESET_OPTIONS = ("deleteOperationalProfiles", "deleteFieldLoadedTestProfiles",
                        "resetDefaultSmdpAddress")
EUICC_CATEGORIES = ("other", "basicEuicc", "mediumEuicc", "contactlessEuicc")

# --- result codes, per response type ----------------------------------------------------------

ENABLE_RESULTS: Mapping[int, str] = {
    0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
    4: "wrongProfileReenabling", 5: "catBusy", 127: "undefinedError"}
DISABLE_RESULTS: Mapping[int, str] = {
    0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInEnabledState", 3: "disallowedByPolicy",
    5: "catBusy", 127: "undefinedError"}
DELETE_RESULTS: Mapping[int, str] = {
    0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
    127: "undefinedError"}
SET_NICKNAME_RESULTS: Mapping[int, str] = {0: "ok", 1: "iccidNotFound", 127: "undefinedError"}
MEMORY_RESET_RESULTS: Mapping[int, str] = {
    0: "ok", 1: "nothingToDelete", 5: "catBusy", 127: "undefinedError"}
NOTIFICATION_SENT_RESULTS: Mapping[int, str] = {
    0: "ok", 1: "nothingToDelete", 127: "undefinedError"}
SET_DEFAULT_DP_RESULTS: Mapping[int, str] = {0: "ok", 127: "undefinedError"}
PROFILE_INFO_LIST_ERRORS: Mapping[int, str] = {1: "incorrectInput", 127: "undefinedError"}
LIST_NOTIFICATION_ERRORS: Mapping[int, str] = {127: "undefinedError"}
RETRIEVE_NOTIFICATIONS_ERRORS: Mapping[int, str] = {
    1: "noResultAvailable", 127: "undefinedError"}
CANCEL_SESSION_ERRORS: Mapping[int, str] = {5: "invalidTransactionId", 127: "undefinedError"}
CANCEL_SESSION_REASONS: Mapping[int, str] = {
    0: "endUserRejection", 1: "postponed", 2: "timeout", 3: "pprNotAllowed",
    4: "metadataMismatch", 5: "loadBppExecutionError", 127: "undefinedReason"}

MAX_NICKNAME = 64
MAX_PROVIDER_NAME = 32
MAX_PROFILE_NAME = 64
MAX_ICON = 1024
MAX_ADDRESS = 255
MAX_TRANSACTION_ID = 16
CHALLENGE_SIZE = 16


# --- small codecs ------------------------------------------------------------------------------

def names_to_bits(names: Iterable[str], table: Sequence[str]) -> list[int]:
    """Bit numbers of ``names`` in a named-bit ``table``; ``ValueError`` for an unknown name."""
    out = []
    for name in names:
        if name not in table:
            raise ValueError(f"unknown bit name {name!r}; known: {', '.join(table)}")
        out.append(table.index(name))
    return out


def bits_to_names(bits: Iterable[int], table: Sequence[str]) -> frozenset[str]:
    """Names of the set ``bits``; bits beyond the table are named ``bitN``."""
    return frozenset(table[b] if b < len(table) else f"bit{b}" for b in bits)


def encode_named_bits(names: Iterable[str], table: Sequence[str]) -> bytes:
    return tlv.encode_bits(names_to_bits(names, table))


def decode_named_bits(data: bytes, table: Sequence[str]) -> frozenset[str]:
    return bits_to_names(tlv.decode_bits(data), table)


def encode_version(version: str) -> bytes:
    """VersionType: ``"2.2.2"`` -> three bytes (major, minor, revision)."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"a version is three numbers 0-255, got {version!r}")
    return bytes(int(p) for p in parts)


def decode_version(data: bytes) -> str:
    if len(data) != 3:
        raise tlv.TlvError(f"a VersionType is 3 bytes, got {len(data)}")
    return ".".join(str(b) for b in data)


def encode_iccid(iccid: str) -> bytes:
    """Iccid: 10 bytes, swapped-nibble BCD with F filler, as in EF.ICCID."""
    return simfiles.encode_iccid(iccid)


def decode_iccid(data: bytes) -> str:
    try:
        return simfiles.decode_iccid(data)
    except ValueError as exc:
        raise tlv.TlvError(f"bad ICCID: {exc}") from None


def plmn_bytes(mcc: str, mnc: str) -> bytes:
    """MCC + MNC as the three PLMN bytes of TS 24.008 (``mccMnc`` of OperatorID)."""
    if len(mcc) != 3 or len(mnc) not in (2, 3) or not (mcc + mnc).isdigit():
        raise ValueError(f"bad MCC/MNC {mcc}/{mnc}")
    m3 = mnc[2] if len(mnc) == 3 else "F"
    return bytes.fromhex(mcc[1] + mcc[0] + m3 + mcc[2] + mnc[1] + mnc[0])


def plmn_text(data: bytes) -> str:
    """Inverse of :func:`plmn_bytes` as ``MCC-MNC`` text (wildcard nibbles ``E`` kept)."""
    if len(data) != 3:
        raise tlv.TlvError(f"mccMnc is 3 bytes, got {len(data)}")
    h = data.hex().upper()
    mcc = h[1] + h[0] + h[3]
    mnc = h[5] + h[4] + ("" if h[2] == "F" else h[2])
    return f"{mcc}-{mnc}"


def fields(item: tlv.Tlv, order: Sequence[int], *, required: Iterable[int] = ()
           ) -> dict[int, tlv.Tlv]:
    """The components of a constructed ``item`` by tag.

    Known tags must appear at most once and in ``order`` (DER keeps the ASN.1 order);
    unknown tags are skipped as extensions. A ``required`` tag that is missing raises.
    """
    if not item.constructed:
        raise tlv.TlvError(f"{item.tag:X} must be constructed")
    found: dict[int, tlv.Tlv] = {}
    last = -1
    for child in item.children():
        if child.tag not in order:
            continue
        index = order.index(child.tag)
        if child.tag in found:
            raise tlv.TlvError(f"{child.tag:X} appears twice in {item.tag:X}")
        if index < last:
            raise tlv.TlvError(f"{child.tag:X} is out of order in {item.tag:X}")
        last = index
        found[child.tag] = child
    for tag in required:
        if tag not in found:
            raise tlv.TlvError(f"{item.tag:X} lacks its mandatory {tag:X}")
    return found


def single(data: bytes, tag: int) -> tlv.Tlv:
    """``data`` as exactly one TLV with ``tag``."""
    item = tlv.decode_one(data)
    if item.tag != tag:
        raise tlv.TlvError(f"expected {tag:X}, got {item.tag:X}")
    return item


def encode_result(tag: int, code: int, *, choice: bool = False) -> bytes:
    """A response made of one INTEGER result (``80``), or of a CHOICE's error (``81``)."""
    return tlv.encode(tag, tlv.encode(0x81 if choice else 0x80, tlv.encode_int(code)))


def decode_result(item: tlv.Tlv) -> int:
    """The INTEGER ``80`` of a single-result response."""
    result = fields(item, (0x80,), required=(0x80,))[0x80]
    return tlv.decode_int(result.value, min_value=0, max_value=255)


# --- operator identity and policy rules --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OperatorId:
    """OperatorID: the PLMN (``mccMnc``, 3 bytes) and optional group identifiers."""

    mcc_mnc: bytes
    gid1: bytes | None = None
    gid2: bytes | None = None

    def encode(self, tag: int = TAG_SEQUENCE) -> bytes:
        body = tlv.encode(0x80, self.mcc_mnc)
        if self.gid1 is not None:
            body += tlv.encode(0x81, self.gid1)
        if self.gid2 is not None:
            body += tlv.encode(0x82, self.gid2)
        return tlv.encode(tag, body)

    @classmethod
    def decode(cls, item: tlv.Tlv) -> OperatorId:
        f = fields(item, (0x80, 0x81, 0x82), required=(0x80,))
        if len(f[0x80].value) != 3:
            raise tlv.TlvError("mccMnc is 3 bytes")
        return cls(f[0x80].value, f[0x81].value if 0x81 in f else None,
                   f[0x82].value if 0x82 in f else None)

    @property
    def plmn(self) -> str:
        return plmn_text(self.mcc_mnc)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """ProfilePolicyAuthorisationRule, one row of the Rules Authorisation Table."""

    ppr_ids: frozenset[str]
    allowed_operators: tuple[OperatorId, ...]
    consent_required: bool = False

    def encode(self) -> bytes:
        operators = b"".join(op.encode() for op in self.allowed_operators)
        return tlv.encode(TAG_SEQUENCE,
                          tlv.encode(0x80, encode_named_bits(self.ppr_ids, PPR_IDS))
                          + tlv.encode(0xA1, operators)
                          + tlv.encode(0x82, tlv.encode_bits([0] if self.consent_required
                                                             else [])))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> PolicyRule:
        f = fields(item, (0x80, 0xA1, 0x82), required=(0x80, 0xA1, 0x82))
        operators = tuple(OperatorId.decode(c) for c in f[0xA1].children())
        return cls(decode_named_bits(f[0x80].value, PPR_IDS), operators,
                   0 in tlv.decode_bits(f[0x82].value))


# --- ProfileInfo ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NotificationConfig:
    """NotificationConfigurationInformation: which operations are reported, and where."""

    operations: frozenset[str]
    address: str

    def encode(self) -> bytes:
        return tlv.encode(TAG_SEQUENCE,
                          tlv.encode(0x80, encode_named_bits(self.operations,
                                                             NOTIFICATION_EVENTS))
                          + tlv.encode(0x81, self.address.encode()))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> NotificationConfig:
        f = fields(item, (0x80, 0x81), required=(0x80, 0x81))
        return cls(decode_named_bits(f[0x80].value, NOTIFICATION_EVENTS),
                   tlv.decode_utf8(f[0x81].value, max_chars=MAX_ADDRESS))


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    """ProfileInfo (tag ``E3``): what ListProfileInfo reports of one profile.

    Every field is optional on the wire (the tag list chooses); ``profile_class`` has the
    ASN.1 DEFAULT ``operational``, which DER leaves out.
    """

    iccid: str | None = None
    isdp_aid: bytes | None = None
    state: str | None = None
    nickname: str | None = None
    provider_name: str | None = None
    profile_name: str | None = None
    icon_type: int | None = None
    icon: bytes | None = None
    profile_class: str = "operational"
    notification_config: tuple[NotificationConfig, ...] | None = None
    owner: OperatorId | None = None
    ppr: frozenset[str] | None = None

    def encode(self, tags: Iterable[int] | None = None) -> bytes:
        """The ``E3`` object with the components named in ``tags`` (all when None)."""
        wanted = set(PROFILE_INFO_TAGS if tags is None else tags)
        parts: list[bytes] = []

        def put(tag: int, value: bytes | None) -> None:
            if tag in wanted and value is not None:
                parts.append(tlv.encode(tag, value))

        put(TAG_ICCID, None if self.iccid is None else encode_iccid(self.iccid))
        put(TAG_ISDP_AID, self.isdp_aid)
        put(TAG_PROFILE_STATE, None if self.state is None else tlv.encode_int(
            PROFILE_STATES.index(self.state)))
        put(TAG_NICKNAME, None if self.nickname is None else self.nickname.encode())
        put(TAG_PROVIDER_NAME, None if self.provider_name is None
            else self.provider_name.encode())
        put(TAG_PROFILE_NAME, None if self.profile_name is None else self.profile_name.encode())
        put(TAG_ICON_TYPE, None if self.icon_type is None else tlv.encode_int(self.icon_type))
        put(TAG_ICON, self.icon)
        if self.profile_class != "operational":
            put(TAG_PROFILE_CLASS, tlv.encode_int(PROFILE_CLASSES.index(self.profile_class)))
        put(TAG_NOTIFICATION_CONFIG, None if self.notification_config is None
            else b"".join(c.encode() for c in self.notification_config))
        if TAG_PROFILE_OWNER in wanted and self.owner is not None:
            parts.append(self.owner.encode(TAG_PROFILE_OWNER))
        put(TAG_PROFILE_POLICY_RULES, None if self.ppr is None
            else encode_named_bits(self.ppr, PPR_IDS))
        return tlv.encode(TAG_PROFILE_INFO, b"".join(parts))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> ProfileInfo:
        if item.tag != TAG_PROFILE_INFO:
            raise tlv.TlvError(f"ProfileInfo is E3, got {item.tag:X}")
        f = fields(item, PROFILE_INFO_TAGS)

        def text(tag: int, limit: int) -> str | None:
            return tlv.decode_utf8(f[tag].value, max_chars=limit) if tag in f else None

        def enum(tag: int, table: Sequence[str]) -> str | None:
            if tag not in f:
                return None
            return table[tlv.decode_int(f[tag].value, min_value=0, max_value=len(table) - 1)]

        owner = OperatorId.decode(f[TAG_PROFILE_OWNER]) if TAG_PROFILE_OWNER in f else None
        config = None
        if TAG_NOTIFICATION_CONFIG in f:
            config = tuple(NotificationConfig.decode(c)
                           for c in f[TAG_NOTIFICATION_CONFIG].children())
        return cls(
            iccid=decode_iccid(f[TAG_ICCID].value) if TAG_ICCID in f else None,
            isdp_aid=f[TAG_ISDP_AID].value if TAG_ISDP_AID in f else None,
            state=enum(TAG_PROFILE_STATE, PROFILE_STATES),
            nickname=text(TAG_NICKNAME, MAX_NICKNAME),
            provider_name=text(TAG_PROVIDER_NAME, MAX_PROVIDER_NAME),
            profile_name=text(TAG_PROFILE_NAME, MAX_PROFILE_NAME),
            icon_type=tlv.decode_int(f[TAG_ICON_TYPE].value) if TAG_ICON_TYPE in f else None,
            icon=f[TAG_ICON].value if TAG_ICON in f else None,
            profile_class=enum(TAG_PROFILE_CLASS, PROFILE_CLASSES) or "operational",
            notification_config=config,
            owner=owner,
            ppr=(decode_named_bits(f[TAG_PROFILE_POLICY_RULES].value, PPR_IDS)
                 if TAG_PROFILE_POLICY_RULES in f else None),
        )


# --- notifications -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NotificationMetadata:
    """NotificationMetadata (tag ``BF2F``): one pending notification as listed."""

    seq: int
    operation: str
    address: str
    iccid: str | None = None

    def encode(self) -> bytes:
        body = (tlv.encode(0x80, tlv.encode_int(self.seq))
                + tlv.encode(0x81, encode_named_bits([self.operation], NOTIFICATION_EVENTS))
                + tlv.encode(TAG_UTF8_STRING, self.address.encode()))
        if self.iccid is not None:
            body += tlv.encode(TAG_ICCID, encode_iccid(self.iccid))
        return tlv.encode(TAG_NOTIFICATION_METADATA, body)

    @classmethod
    def decode(cls, item: tlv.Tlv) -> NotificationMetadata:
        if item.tag != TAG_NOTIFICATION_METADATA:
            raise tlv.TlvError(f"NotificationMetadata is BF2F, got {item.tag:X}")
        f = fields(item, (0x80, 0x81, TAG_UTF8_STRING, TAG_ICCID),
                   required=(0x80, 0x81, TAG_UTF8_STRING))
        bits = sorted(tlv.decode_bits(f[0x81].value))
        if not bits or bits[0] >= len(NOTIFICATION_EVENTS):
            raise tlv.TlvError("profileManagementOperation names no known operation")
        return cls(
            seq=tlv.decode_int(f[0x80].value, min_value=0),
            operation=NOTIFICATION_EVENTS[bits[0]],
            address=tlv.decode_utf8(f[TAG_UTF8_STRING].value, max_chars=MAX_ADDRESS),
            iccid=decode_iccid(f[TAG_ICCID].value) if TAG_ICCID in f else None,
        )


def pending_notification_metadata(item: tlv.Tlv) -> NotificationMetadata:
    """The metadata inside a PendingNotification: an OtherSignedNotification (``30``) or a
    ProfileInstallationResult (``BF37``)."""
    if item.tag == TAG_SEQUENCE:
        inner = item.find(TAG_NOTIFICATION_METADATA)
    elif item.tag == TAG_PROFILE_INSTALLATION_RESULT:
        data = item.find(TAG_PROFILE_INSTALLATION_RESULT_DATA)
        inner = data.find(TAG_NOTIFICATION_METADATA) if data is not None else None
    else:
        raise tlv.TlvError(f"a PendingNotification is 30 or BF37, got {item.tag:X}")
    if inner is None:
        raise tlv.TlvError("PendingNotification holds no NotificationMetadata")
    return NotificationMetadata.decode(inner)


# --- eUICC information ------------------------------------------------------------------------

def _pkid_list(tag: int, pkids: Sequence[bytes]) -> bytes:
    return tlv.encode(tag, b"".join(tlv.encode(TAG_OCTET_STRING, k) for k in pkids))


def _decode_pkids(item: tlv.Tlv) -> tuple[bytes, ...]:
    out = []
    for child in item.children():
        if child.tag != TAG_OCTET_STRING:
            raise tlv.TlvError(f"a SubjectKeyIdentifier is an OCTET STRING, got {child.tag:X}")
        out.append(child.value)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class EuiccInfo1:
    """EUICCInfo1 (``BF20``): the SGP.22 version and the CI key ids the eUICC knows."""

    svn: str
    ci_pkids_verification: tuple[bytes, ...]
    ci_pkids_signing: tuple[bytes, ...]

    def encode(self) -> bytes:
        return tlv.encode(TAG_GET_EUICC_INFO1,
                          tlv.encode(0x82, encode_version(self.svn))
                          + _pkid_list(0xA9, self.ci_pkids_verification)
                          + _pkid_list(0xAA, self.ci_pkids_signing))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> EuiccInfo1:
        f = fields(item, (0x82, 0xA9, 0xAA), required=(0x82, 0xA9, 0xAA))
        return cls(decode_version(f[0x82].value), _decode_pkids(f[0xA9]),
                   _decode_pkids(f[0xAA]))


@dataclass(frozen=True, slots=True)
class CardResources:
    """The extended card resource information of ETSI TS 102 226 (tags 81, 82, 83)."""

    installed_applications: int
    free_nvm: int
    free_ram: int

    def encode(self) -> bytes:
        return (tlv.encode(0x81, tlv.encode_int(self.installed_applications))
                + tlv.encode(0x82, tlv.encode_int(self.free_nvm))
                + tlv.encode(0x83, tlv.encode_int(self.free_ram)))

    @classmethod
    def decode(cls, data: bytes) -> CardResources:
        values = {c.tag: c.value for c in tlv.decode(data)}
        try:
            return cls(*(int.from_bytes(values[t], "big") for t in (0x81, 0x82, 0x83)))
        except KeyError as exc:
            raise tlv.TlvError(f"extCardResource lacks {exc.args[0]:X}") from None


_INFO2_ORDER = (0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0xA9, 0xAA, 0x8B, 0x99,
                TAG_OCTET_STRING, TAG_UTF8_STRING, 0xAC)


@dataclass(frozen=True, slots=True)
class EuiccInfo2:
    """EUICCInfo2 (``BF22``): versions, capabilities, resources and certification data."""

    profile_version: str
    svn: str
    firmware_version: str
    resources: CardResources
    uicc_capabilities: frozenset[str]
    rsp_capabilities: frozenset[str]
    ci_pkids_verification: tuple[bytes, ...]
    ci_pkids_signing: tuple[bytes, ...]
    pp_version: str
    sas_accreditation_number: str
    ts102241_version: str | None = None
    globalplatform_version: str | None = None
    category: str | None = None
    forbidden_ppr: frozenset[str] | None = None
    extra: tuple[int, ...] = field(default=())
    """Tags of components this codec does not know (later SGP.22 versions), when decoded."""

    def encode(self) -> bytes:
        parts = [
            tlv.encode(0x81, encode_version(self.profile_version)),
            tlv.encode(0x82, encode_version(self.svn)),
            tlv.encode(0x83, encode_version(self.firmware_version)),
            tlv.encode(0x84, self.resources.encode()),
            tlv.encode(0x85, encode_named_bits(self.uicc_capabilities, UICC_CAPABILITIES)),
        ]
        if self.ts102241_version is not None:
            parts.append(tlv.encode(0x86, encode_version(self.ts102241_version)))
        if self.globalplatform_version is not None:
            parts.append(tlv.encode(0x87, encode_version(self.globalplatform_version)))
        parts += [
            tlv.encode(0x88, encode_named_bits(self.rsp_capabilities, RSP_CAPABILITIES)),
            _pkid_list(0xA9, self.ci_pkids_verification),
            _pkid_list(0xAA, self.ci_pkids_signing),
        ]
        if self.category is not None:
            parts.append(tlv.encode(0x8B, tlv.encode_int(EUICC_CATEGORIES.index(self.category))))
        if self.forbidden_ppr is not None:
            parts.append(tlv.encode(0x99, encode_named_bits(self.forbidden_ppr, PPR_IDS)))
        parts += [
            tlv.encode(TAG_OCTET_STRING, encode_version(self.pp_version)),
            tlv.encode(TAG_UTF8_STRING, self.sas_accreditation_number.encode()),
        ]
        return tlv.encode(TAG_GET_EUICC_INFO2, b"".join(parts))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> EuiccInfo2:
        f = fields(item, _INFO2_ORDER, required=(0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0xA9,
                                                 0xAA, TAG_OCTET_STRING, TAG_UTF8_STRING))

        def version(tag: int) -> str | None:
            return decode_version(f[tag].value) if tag in f else None

        category = None
        if 0x8B in f:
            number = tlv.decode_int(f[0x8B].value, min_value=0)
            category = (EUICC_CATEGORIES[number] if number < len(EUICC_CATEGORIES)
                        else str(number))
        return cls(
            profile_version=decode_version(f[0x81].value),
            svn=decode_version(f[0x82].value),
            firmware_version=decode_version(f[0x83].value),
            resources=CardResources.decode(f[0x84].value),
            uicc_capabilities=decode_named_bits(f[0x85].value, UICC_CAPABILITIES),
            rsp_capabilities=decode_named_bits(f[0x88].value, RSP_CAPABILITIES),
            ci_pkids_verification=_decode_pkids(f[0xA9]),
            ci_pkids_signing=_decode_pkids(f[0xAA]),
            pp_version=decode_version(f[TAG_OCTET_STRING].value),
            sas_accreditation_number=tlv.decode_utf8(f[TAG_UTF8_STRING].value, max_chars=64),
            ts102241_version=version(0x86),
            globalplatform_version=version(0x87),
            category=category,
            forbidden_ppr=(decode_named_bits(f[0x99].value, PPR_IDS) if 0x99 in f else None),
            extra=tuple(c.tag for c in item.children() if c.tag not in _INFO2_ORDER),
        )

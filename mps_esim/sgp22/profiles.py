"""The ES10 management types: operator identity, policy rules, ProfileInfo and
NotificationMetadata."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22.codec import (
    decode_iccid,
    decode_named_bits,
    encode_iccid,
    encode_named_bits,
    fields,
    plmn_text,
)
from mps_esim.sgp22.tags import (
    MAX_ADDRESS,
    MAX_NICKNAME,
    MAX_PROFILE_NAME,
    MAX_PROVIDER_NAME,
    NOTIFICATION_EVENTS,
    PPR_IDS,
    PROFILE_CLASSES,
    PROFILE_INFO_TAGS,
    PROFILE_STATES,
    TAG_ICCID,
    TAG_ICON,
    TAG_ICON_TYPE,
    TAG_ISDP_AID,
    TAG_NICKNAME,
    TAG_NOTIFICATION_CONFIG,
    TAG_NOTIFICATION_METADATA,
    TAG_PROFILE_CLASS,
    TAG_PROFILE_INFO,
    TAG_PROFILE_INSTALLATION_RESULT,
    TAG_PROFILE_INSTALLATION_RESULT_DATA,
    TAG_PROFILE_NAME,
    TAG_PROFILE_OWNER,
    TAG_PROFILE_POLICY_RULES,
    TAG_PROFILE_STATE,
    TAG_PROVIDER_NAME,
    TAG_SEQUENCE,
    TAG_UTF8_STRING,
)

# --- operator identity and policy rules --------------------------------------------------------

@record
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


@record
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

@record
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


@record
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

@record
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


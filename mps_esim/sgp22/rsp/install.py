"""Profile metadata, installation results and NotificationMetadata helpers."""

from __future__ import annotations

import enum

from mps_common.record import record
from mps_esim import sgp22, tlv
from mps_esim.sgp22 import (
    NOTIFICATION_EVENTS,
    PROFILE_CLASSES,
    TAG_ICCID,
    TAG_ISDP_AID,
    TAG_NOTIFICATION_METADATA,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_PROFILE_INSTALLATION_RESULT,
    TAG_PROFILE_INSTALLATION_RESULT_DATA,
    TAG_SIGNATURE,
    TAG_STORE_METADATA,
)
from mps_esim.sgp22.der import (
    Asn1Error,
    Members,
    children,
    expect,
    int_bytes,
    int_value,
    oid_bytes,
    oid_value,
    opt,
    seq,
    sized,
    text_value,
)
from mps_esim.sgp22.rsp.common import (
    iccid_of,
    sig_tlv,
    txid_of,
)

# --- profile metadata and notifications --------------------------------------------------

@record
class StoreMetadata:
    """``StoreMetadataRequest ::= [37]`` (BF25): the profile metadata the eUICC keeps.

    ``profile_class`` is one of :data:`PROFILE_CLASSES`; ``notifications`` say which
    operations (named as in :data:`NOTIFICATION_EVENTS`) are reported to which address.
    """

    iccid: str
    service_provider: str
    profile_name: str
    profile_class: str = "operational"
    notifications: tuple[sgp22.NotificationConfig, ...] = ()
    der: bytes = b""
    """The DER it was decoded from, if any; not compared."""

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def _compared(self) -> tuple[object, ...]:
        return (self.iccid, self.service_provider, self.profile_name, self.profile_class,
                self.notifications)

    def encode(self) -> bytes:
        if self.der:
            return self.der
        configs = None
        if self.notifications:
            configs = seq(0xB6, *(c.encode() for c in self.notifications))
        return seq(TAG_STORE_METADATA, tlv.encode(TAG_ICCID, sgp22.encode_iccid(self.iccid)),
                   tlv.encode(0x91, self.service_provider.encode()),
                   tlv.encode(0x92, self.profile_name.encode()),
                   None if self.profile_class == "operational" else
                   tlv.encode(0x95, int_bytes(PROFILE_CLASSES.index(self.profile_class))),
                   configs)

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> StoreMetadata:
        where = "StoreMetadataRequest"
        item = expect(data, TAG_STORE_METADATA, where)
        m = Members(item, where)
        iccid = iccid_of(m.required(TAG_ICCID, "iccid"), where)
        spn = text_value(m.required(0x91, "serviceProviderName").value, where,
                         max_length=sgp22.MAX_PROVIDER_NAME)
        name = text_value(m.required(0x92, "profileName").value, where,
                          max_length=sgp22.MAX_PROFILE_NAME)
        m.optional(0x93)
        m.optional(0x94)
        pclass = m.optional(0x95)
        profile_class = "operational"
        if pclass is not None:
            profile_class = PROFILE_CLASSES[int_value(pclass.value, where, low=0,
                                                      high=len(PROFILE_CLASSES) - 1)]
        configs: tuple[sgp22.NotificationConfig, ...] = ()
        nci = m.optional(0xB6)
        if nci is not None:
            configs = tuple(sgp22.NotificationConfig.decode(c) for c in children(nci, where))
        return cls(iccid, spn, name, profile_class, configs, der=item.encode())


def notification(seq_number: int, operation: str, address: str, iccid: str | None = None
                 ) -> sgp22.NotificationMetadata:
    """NotificationMetadata for ``operation`` (one of :data:`NOTIFICATION_EVENTS`)."""
    if operation not in NOTIFICATION_EVENTS:
        raise Asn1Error(f"unknown notification operation {operation!r}")
    return sgp22.NotificationMetadata(seq_number, operation, address, iccid)


def decode_notification_metadata(data: bytes | tlv.Tlv) -> sgp22.NotificationMetadata:
    """NotificationMetadata (BF2F) from its DER, by the shared codec."""
    return sgp22.NotificationMetadata.decode(
        expect(data, TAG_NOTIFICATION_METADATA, "NotificationMetadata"))


class BppCommandId(enum.IntEnum):
    INITIALISE_SECURE_CHANNEL = 0
    CONFIGURE_ISDP = 1
    STORE_METADATA = 2
    STORE_METADATA2 = 3
    REPLACE_SESSION_KEYS = 4
    LOAD_PROFILE_ELEMENTS = 5


class ErrorReason(enum.IntEnum):
    """``ErrorReason`` of a failed profile installation."""

    INCORRECT_INPUT_VALUES = 1
    INVALID_SIGNATURE = 2
    INVALID_TRANSACTION_ID = 3
    UNSUPPORTED_CRT_VALUES = 4
    UNSUPPORTED_REMOTE_OPERATION_TYPE = 5
    UNSUPPORTED_PROFILE_CLASS = 6
    SCP03T_STRUCTURE_ERROR = 7
    SCP03T_SECURITY_ERROR = 8
    ICCID_ALREADY_EXISTS = 9
    INSUFFICIENT_MEMORY = 10
    INTERRUPTION = 11
    PE_PROCESSING_ERROR = 12
    DATA_MISMATCH = 13
    INVALID_NAA_KEY = 14
    PPR_NOT_ALLOWED = 15
    UNKNOWN_ERROR = 127


@record
class InstallSuccess:
    aid: bytes
    sima_response: bytes = b""


@record
class InstallFailure:
    command: int
    reason: int
    sima_response: bytes | None = None


@record
class ProfileInstallationResultData:
    """``ProfileInstallationResultData ::= [39]`` (BF27): what the eUICC signs."""

    transaction_id: bytes
    notification: sgp22.NotificationMetadata
    smdp_oid: str
    result: InstallSuccess | InstallFailure

    def encode(self) -> bytes:
        if isinstance(self.result, InstallSuccess):
            final = seq(0xA0, tlv.encode(TAG_ISDP_AID, self.result.aid),
                        tlv.encode(TAG_OCTET_STRING, self.result.sima_response))
        else:
            final = seq(0xA1, tlv.encode(0x80, int_bytes(self.result.command)),
                        tlv.encode(0x81, int_bytes(self.result.reason)),
                        opt(0x82, self.result.sima_response))
        return seq(TAG_PROFILE_INSTALLATION_RESULT_DATA, tlv.encode(0x80, self.transaction_id),
                   self.notification.encode(), tlv.encode(TAG_OID, oid_bytes(self.smdp_oid)),
                   seq(0xA2, final))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> ProfileInstallationResultData:
        where = "ProfileInstallationResultData"
        m = Members(expect(data, TAG_PROFILE_INSTALLATION_RESULT_DATA, where), where)
        txid = txid_of(m.required(0x80, "transactionId"), where)
        note = decode_notification_metadata(m.required(TAG_NOTIFICATION_METADATA,
                                                       "notificationMetadata"))
        oid = oid_value(m.required(TAG_OID, "smdpOid").value, where)
        final = Members(m.required(0xA2, "finalResult"), where).any("finalResult")
        fm = Members(final, where)
        result: InstallSuccess | InstallFailure
        if final.tag == 0xA0:
            aid = sized(fm.required(TAG_ISDP_AID, "aid").value, where, low=5, high=16)
            sima = fm.required(TAG_OCTET_STRING, "simaResponse").value
            result = InstallSuccess(aid, sima)
        elif final.tag == 0xA1:
            command = int_value(fm.required(0x80, "bppCommandId").value, where)
            reason = int_value(fm.required(0x81, "errorReason").value, where)
            sima_item = fm.optional(0x82)
            result = InstallFailure(command, reason, sima_item.value if sima_item else None)
        else:
            raise Asn1Error(f"unknown finalResult choice {final.tag:X}", where=where)
        return cls(txid, note, oid, result)


@record
class ProfileInstallationResult:
    """``ProfileInstallationResult ::= [55]`` (BF37): the data and the eUICC's signature."""

    data_der: bytes
    signature: bytes

    def encode(self) -> bytes:
        return seq(TAG_PROFILE_INSTALLATION_RESULT, self.data_der, sig_tlv(self.signature))

    @property
    def data(self) -> ProfileInstallationResultData:
        return ProfileInstallationResultData.decode(self.data_der)

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> ProfileInstallationResult:
        where = "ProfileInstallationResult"
        m = Members(expect(data, TAG_PROFILE_INSTALLATION_RESULT, where), where)
        body = m.required(TAG_PROFILE_INSTALLATION_RESULT_DATA, "profileInstallationResultData")
        ProfileInstallationResultData.decode(body)
        signature = m.required(TAG_SIGNATURE, "euiccSignPIR").value
        return cls(body.encode(), signature)

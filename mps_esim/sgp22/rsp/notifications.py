"""Pending notifications: listing, retrieving and acknowledging them."""

from __future__ import annotations

from mps_common.record import record
from mps_esim import sgp22, tlv
from mps_esim.sgp22 import (
    NOTIFICATION_EVENTS,
    TAG_LIST_NOTIFICATION,
    TAG_NOTIFICATION_METADATA,
    TAG_NOTIFICATION_SENT,
    TAG_PROFILE_INSTALLATION_RESULT,
    TAG_RETRIEVE_NOTIFICATIONS,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
)
from mps_esim.sgp22.der import (
    Asn1Error,
    Members,
    expect,
    int_bytes,
    parse,
    seq,
)
from mps_esim.sgp22.responses import (
    LIST_NOTIFICATION,
    NOTIFICATION_SENT,
    RETRIEVE_NOTIFICATIONS,
    Refusal,
)
from mps_esim.sgp22.rsp.common import (
    certificate_of,
    sig_tlv,
)
from mps_esim.sgp22.rsp.install import (
    ProfileInstallationResult,
    decode_notification_metadata,
)


@record
class OtherSignedNotification:
    """``OtherSignedNotification`` (30): enable/disable/delete notifications."""

    tbs_der: bytes
    signature: bytes
    euicc_certificate: bytes
    eum_certificate: bytes

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, self.tbs_der, sig_tlv(self.signature), self.euicc_certificate,
                   self.eum_certificate)

    @property
    def metadata(self) -> sgp22.NotificationMetadata:
        return decode_notification_metadata(self.tbs_der)

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> OtherSignedNotification:
        where = "OtherSignedNotification"
        m = Members(expect(data, TAG_SEQUENCE, where), where)
        tbs = m.required(TAG_NOTIFICATION_METADATA, "tbsOtherNotification")
        decode_notification_metadata(tbs)
        signature = m.required(TAG_SIGNATURE, "euiccNotificationSignature").value
        euicc = certificate_of(m.required(TAG_SEQUENCE, "euiccCertificate"), where)
        eum = certificate_of(m.required(TAG_SEQUENCE, "eumCertificate"), where)
        return cls(tbs.encode(), signature, euicc, eum)


PendingNotification = ProfileInstallationResult | OtherSignedNotification


def decode_pending_notification(data: bytes | tlv.Tlv) -> PendingNotification:
    """``PendingNotification ::= CHOICE`` (BF37 or 30)."""
    item = data if isinstance(data, tlv.Tlv) else parse(data, "PendingNotification")
    if item.tag == TAG_PROFILE_INSTALLATION_RESULT:
        return ProfileInstallationResult.decode(item)
    if item.tag == TAG_SEQUENCE:
        return OtherSignedNotification.decode(item)
    raise Asn1Error(f"unknown choice {item.tag:X}", where="PendingNotification")


def notification_seq_number(notification: PendingNotification) -> int:
    """The sequence number under which the eUICC keeps ``notification``."""
    if isinstance(notification, ProfileInstallationResult):
        return notification.data.notification.seq
    return notification.metadata.seq


def list_notification_request(operation: str | None = None) -> bytes:
    """ListNotificationRequest ``BF28 { [81 operation] }``."""
    return seq(TAG_LIST_NOTIFICATION, None if operation is None else
               tlv.encode(0x81, sgp22.encode_named_bits([operation], NOTIFICATION_EVENTS)))


def encode_notification_list(items: list[sgp22.NotificationMetadata]) -> bytes:
    """ListNotificationResponse ``BF28 { A0 { BF2F ... } }``."""
    return LIST_NOTIFICATION.encode_ok(b"".join(i.encode() for i in items))


def decode_notification_list(data: bytes) -> list[sgp22.NotificationMetadata]:
    """The metadata of a ListNotificationResponse; an error answer raises."""
    return [decode_notification_metadata(c) for c in LIST_NOTIFICATION.ok_members(data)]


def retrieve_notifications_request(seq_number: int | None = None) -> bytes:
    """RetrieveNotificationsListRequest ``BF2B { [A0 { 80 seq }] }``."""
    criteria = None if seq_number is None else seq(
        0xA0, tlv.encode(0x80, int_bytes(seq_number)))
    return seq(TAG_RETRIEVE_NOTIFICATIONS, criteria)


def encode_pending_notifications(items: list[bytes]) -> bytes:
    """RetrieveNotificationsListResponse ``BF2B { A0 { BF37.. | 30.. } }``."""
    return RETRIEVE_NOTIFICATIONS.encode_ok(b"".join(items))


def decode_pending_notifications(data: bytes) -> list[tuple[bytes, PendingNotification]]:
    """Each pending notification of a RetrieveNotificationsListResponse: DER and parsed."""
    return [(c.encode(), decode_pending_notification(c))
            for c in RETRIEVE_NOTIFICATIONS.ok_members(data)]


def notification_sent_request(seq_number: int) -> bytes:
    """NotificationSentRequest ``BF30 { 80 seq }``."""
    return seq(TAG_NOTIFICATION_SENT, tlv.encode(0x80, int_bytes(seq_number)))


def decode_notification_sent(data: bytes) -> int:
    """The deleteNotificationStatus (0 ok, 1 nothing to delete, 127 error)."""
    answer = NOTIFICATION_SENT.decode(data)
    return answer.code if isinstance(answer, Refusal) else 0

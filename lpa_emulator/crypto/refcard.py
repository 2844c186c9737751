"""A reference eUICC for the download's ES10b commands, kept in memory.

It answers the ES10 commands an LPA sends during a profile download (by their request
DER, as :meth:`Es10Client.command` carries them) through :class:`EuiccDownloadSession`,
and keeps installed profiles and pending notifications in dictionaries. The software card
in :mod:`lpa_emulator.euicc` is the product; this one exists so the LPA and the SM-DP+
can be tested end to end against an eUICC side that checks everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from lpa_emulator import sgp22, tlv
from lpa_emulator.crypto import signatures
from lpa_emulator.crypto.euicc_side import EuiccDownloadSession, EuiccIdentity
from lpa_emulator.pki import cert_der
from lpa_emulator.sgp22 import rsp
from lpa_emulator.sgp22.saip import ProfileContent

_TAG_GET_EUICC_DATA = 0xBF3E
_SEGMENT_TAGS = frozenset((0xA0, 0xA1, 0xA2, 0xA3, 0x86, 0x88))


class RefCardError(Exception):
    """The reference card refused a command (the real card would answer 6A80)."""


@dataclass
class InstalledProfile:
    """A profile the reference card holds."""

    content: ProfileContent
    metadata: rsp.StoreMetadata
    aid: bytes
    enabled: bool = False


class ReferenceEuicc:
    """An in-memory eUICC answering ES10b download and notification commands.

    ``fail_on_segment`` (for tests) makes the n-th LoadBoundProfilePackage segment raise
    :class:`RefCardError`, as a card removed mid-package would stop answering.
    """

    def __init__(self, identity: EuiccIdentity, *, default_smdp_address: str | None = None
                 ) -> None:
        self.identity = identity
        self.session = EuiccDownloadSession(identity, default_smdp_address=default_smdp_address)
        self.profiles: dict[str, InstalledProfile] = {}
        self.notifications: dict[int, bytes] = {}
        self._seq = 0
        self._segments = 0
        self.fail_on_segment: int | None = None
        self.commands: list[int] = []
        self._lock = threading.Lock()

    # InstallTarget
    def iccid_in_use(self, iccid: str) -> bool:
        return iccid in self.profiles

    def next_sequence_number(self) -> int:
        self._seq += 1
        return self._seq

    def install(self, profile: ProfileContent, metadata: rsp.StoreMetadata,
                result_for: Callable[[bytes], bytes]) -> None:
        aid = bytes.fromhex("A0000005591010FFFFFFFF89") + (
            0x1000 + 0x100 * len(self.profiles)).to_bytes(4, "big")
        pir = result_for(aid)
        self.profiles[profile.iccid] = InstalledProfile(profile, metadata, aid)
        seq = rsp.ProfileInstallationResult.decode(pir).data.notification.seq
        self.notifications[seq] = pir

    def keep_notification(self, seq_number: int, notification: bytes) -> None:
        self.notifications[seq_number] = notification

    # ES10
    def command(self, data: bytes) -> bytes:
        """Answer one ES10 command (the reassembled STORE DATA payload)."""
        with self._lock:
            return self._command(bytes(data))

    def _command(self, data: bytes) -> bytes:
        if len(data) < 2:
            raise RefCardError("ES10 command too short")
        tag = data[0] if data[0] in _SEGMENT_TAGS else int.from_bytes(data[:2], "big")
        self.commands.append(tag)
        if tag == sgp22.TAG_BOUND_PROFILE_PACKAGE or (
                tag in _SEGMENT_TAGS and self.session.loading):
            self._segments += 1
            if self.fail_on_segment is not None and self._segments >= self.fail_on_segment:
                self.fail_on_segment = None
                self.session.reset()
                raise RefCardError("card removed")
            return self.session.load_segment(data, self)
        handlers: dict[int, Callable[[bytes], bytes]] = {
            sgp22.TAG_GET_EUICC_CHALLENGE: lambda _d: self.session.get_challenge(),
            sgp22.TAG_GET_EUICC_INFO1: lambda _d: self.session.get_info1(),
            sgp22.TAG_GET_EUICC_INFO2: lambda _d: self.session.get_info2(),
            sgp22.TAG_AUTHENTICATE_SERVER: self.session.authenticate_server,
            sgp22.TAG_PREPARE_DOWNLOAD: self.session.prepare_download,
            sgp22.TAG_CANCEL_SESSION: self.session.cancel_session,
            sgp22.TAG_LIST_NOTIFICATION: self._list_notifications,
            sgp22.TAG_RETRIEVE_NOTIFICATIONS: self._retrieve_notifications,
            sgp22.TAG_NOTIFICATION_SENT: self._notification_sent,
            _TAG_GET_EUICC_DATA: self._get_eid,
        }
        handler = handlers.get(tag)
        if handler is None:
            raise RefCardError(f"unknown ES10 command {tag:X}")
        return handler(data)

    def _metadata(self, der: bytes) -> sgp22.NotificationMetadata:
        note = rsp.decode_pending_notification(der)
        if isinstance(note, rsp.ProfileInstallationResult):
            return note.data.notification
        return note.metadata

    def _list_notifications(self, _data: bytes) -> bytes:
        return rsp.encode_notification_list(
            [self._metadata(d) for _s, d in sorted(self.notifications.items())])

    def _retrieve_notifications(self, data: bytes) -> bytes:
        wanted: int | None = None
        criteria = tlv.decode_one(data).find(0xA0)
        if criteria is not None:
            number = criteria.find(0x80)
            wanted = int.from_bytes(number.value, "big") if number is not None else None
        items = [d for s, d in sorted(self.notifications.items()) if wanted in (None, s)]
        return rsp.encode_pending_notifications(items)

    def _notification_sent(self, data: bytes) -> bytes:
        number = tlv.decode_one(data).find(0x80)
        seq = int.from_bytes(number.value, "big") if number is not None else -1
        status = 0 if self.notifications.pop(seq, None) is not None else 1
        return tlv.encode(sgp22.TAG_NOTIFICATION_SENT, tlv.encode(0x80, bytes((status,))))

    def _get_eid(self, _data: bytes) -> bytes:
        return tlv.encode(_TAG_GET_EUICC_DATA, tlv.encode(0x5A, self.identity.eid_bytes))

    def other_notification(self, operation: str, iccid: str, address: str) -> bytes:
        """Queue a signed ``enable``/``disable``/``delete`` notification (as a profile
        operation would)."""
        with self._lock:
            meta = rsp.notification(self.next_sequence_number(), operation, address, iccid)
            tbs = meta.encode()
            der = rsp.OtherSignedNotification(
                tbs, signatures.sign(self.identity.credential.key, tbs),
                self.identity.credential.cert_der, cert_der(self.identity.eum_cert)).encode()
            self.notifications[meta.seq] = der
            return der

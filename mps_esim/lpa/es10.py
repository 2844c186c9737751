"""ES10 commands to the ISD-R, carried in STORE DATA (SGP.22 5.7).

:class:`Es10Client` is a table of commands: each method builds one request with the shared
codec :mod:`mps_esim.sgp22`, sends it with :meth:`Es10Client.command` (STORE DATA
segmentation) and decodes the answer. A refusal the eUICC reports as a result code raises
:class:`Es10ResultError` naming it; a status word other than 9000 or an answer that is not
the response type raises :class:`Es10Error`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from mps_common.record import record
from mps_esim import sgp22, tlv
from mps_esim.errors import EsimError
from mps_esim.iso7816 import SW_OK, ApduChannel, build_apdu, sw_text

DEFAULT_BLOCK_SIZE = 120
"""Bytes per STORE DATA block; independent LPAs use 120 and allow up to 255."""

TAG_GET_EUICC_DATA = sgp22.TAG_GET_EUICC_DATA
TAG_EID = sgp22.TAG_EID

_T = TypeVar("_T")


class Es10Error(EsimError):
    """The eUICC refused an ES10 command or answered something malformed."""

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class Es10ResultError(Es10Error):
    """The eUICC answered the command with a result code other than ok.

    ``code`` is the number, ``reason`` its SGP.22 name (``iccidOrAidNotFound``, ...).
    """

    def __init__(self, command: str, code: int, table: Mapping[int, str]) -> None:
        self.command = command
        self.code = code
        self.reason = table.get(code, f"code {code}")
        super().__init__(f"{command} refused: {self.reason} ({code})")


@record
class ConfiguredAddresses:
    """GetEuiccConfiguredAddresses: the default SM-DP+ and the root SM-DS."""

    default_dp_address: str | None
    root_ds_address: str | None


@record
class PendingNotification:
    """One signed notification as RetrieveNotificationsList returns it: its metadata and
    the complete DER (``30`` OtherSignedNotification or ``BF37``) to send to the SM-DP+."""

    metadata: sgp22.NotificationMetadata
    der: bytes


def _profile_id(iccid: str | None, isdp_aid: bytes | None) -> bytes:
    if (iccid is None) == (isdp_aid is None):
        raise ValueError("name the profile by exactly one of iccid or isdp_aid")
    if iccid is not None:
        return tlv.encode(sgp22.TAG_ICCID, sgp22.encode_iccid(iccid))
    if not 5 <= len(isdp_aid or b"") <= 16:
        raise ValueError("an ISD-P AID is 5 to 16 bytes")
    return tlv.encode(sgp22.TAG_ISDP_AID, isdp_aid or b"")


class Es10Client:
    """Sends ES10 commands over a channel on which the ISD-R is selected."""

    def __init__(self, channel: ApduChannel, *, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if not 1 <= block_size <= 255:
            raise ValueError(f"STORE DATA block size must be 1..255, got {block_size}")
        self.channel = channel
        self.block_size = block_size

    # --- transport ----------------------------------------------------------------------

    def command(self, data: bytes) -> bytes:
        """Send one ES10 command (a complete TLV) and return the eUICC's response data."""
        blocks = [data[i:i + self.block_size] for i in range(0, len(data), self.block_size)]
        if len(blocks) > 256:
            raise Es10Error(f"ES10 command of {len(data)} bytes needs more than 256 blocks")
        response = b""
        for number, block in enumerate(blocks):
            last = number == len(blocks) - 1
            apdu = build_apdu(0x80, 0xE2, 0x91 if last else 0x11, number, block)
            resp = self.channel.transmit(apdu)
            if resp.sw != SW_OK:
                raise Es10Error(
                    f"STORE DATA block {number} refused: {resp.sw:04X} ({sw_text(resp.sw)})",
                    sw=resp.sw)
            if not last and resp.data:
                raise Es10Error(f"eUICC answered data to the non-final block {number}")
            response = resp.data
        return response

    def _call(self, tag: int, body: bytes = b"") -> tlv.Tlv:
        """Send ``tag { body }`` and return the response, which must carry the same tag."""
        data = self.command(tlv.encode(tag, body))
        try:
            return sgp22.single(data, tag)
        except tlv.TlvError as exc:
            raise Es10Error(f"malformed answer to ES10 command {tag:X}: {exc}") from exc

    def _ok(self, response: sgp22.ResponseType, body: bytes = b"") -> tlv.Tlv:
        """Send ``response.tag { body }``: the ok content of the answer (see
        :meth:`sgp22.ResponseType.decode`), :class:`Es10ResultError` for a refusal."""
        answer = self._call(response.tag, body)
        try:
            outcome = response.decode(answer)
        except tlv.TlvError as exc:
            raise Es10Error(f"malformed {response.name} response: {exc}") from exc
        if isinstance(outcome, sgp22.Refusal):
            raise Es10ResultError(response.name, outcome.code, response.codes)
        return outcome

    def _ok_list(self, response: sgp22.ResponseType, body: bytes) -> list[tlv.Tlv]:
        """The members of the ``A0`` list a CHOICE response answers with."""
        content = self._ok(response, body)
        try:
            return content.children()
        except tlv.TlvError as exc:
            raise Es10Error(f"malformed {response.name} response: {exc}") from exc

    # --- ES10 commands --------------------------------------------------------------------

    def get_eid(self) -> str:
        """GetEuiccData asking for the EID (tag 5A): the 32-digit EID."""
        answer = self._call(sgp22.TAG_GET_EUICC_DATA,
                            tlv.encode(sgp22.TAG_TAG_LIST, bytes([sgp22.TAG_EID])))
        eid = next((c.value for c in answer.children() if c.tag == sgp22.TAG_EID), None)
        if eid is None or len(eid) != 16:
            raise Es10Error("GetEuiccData answer holds no 16-byte EID")
        return eid.hex().upper()

    def get_euicc_info1(self) -> sgp22.EuiccInfo1:
        """GetEUICCInfo1: SGP.22 version and CI key ids."""
        return self._decode("GetEUICCInfo1", sgp22.EuiccInfo1.decode,
                            self._call(sgp22.TAG_GET_EUICC_INFO1))

    def get_euicc_info2(self) -> sgp22.EuiccInfo2:
        """GetEUICCInfo2: versions, capabilities, resources, CI key ids."""
        return self._decode("GetEUICCInfo2", sgp22.EuiccInfo2.decode,
                            self._call(sgp22.TAG_GET_EUICC_INFO2))

    def get_euicc_challenge(self) -> bytes:
        """GetEUICCChallenge: 16 random bytes."""
        answer = self._call(sgp22.TAG_GET_EUICC_CHALLENGE)
        challenge = answer.find(0x80)
        if challenge is None or len(challenge.value) != 16:
            raise Es10Error("GetEUICCChallenge answer holds no 16-byte challenge")
        return challenge.value

    def get_configured_addresses(self) -> ConfiguredAddresses:
        """GetEuiccConfiguredAddresses."""
        answer = self._call(sgp22.TAG_GET_CONFIGURED_ADDRESSES)

        def text(tag: int) -> str | None:
            item = f.get(tag)
            return None if item is None else tlv.decode_utf8(item.value)

        try:
            f = sgp22.fields(answer, (0x80, 0x81))
            return ConfiguredAddresses(text(0x80), text(0x81))
        except tlv.TlvError as exc:
            raise Es10Error(f"malformed GetEuiccConfiguredAddresses response: {exc}") from exc

    def set_default_dp_address(self, address: str) -> None:
        """SetDefaultDpAddress; an empty address removes it."""
        self._ok(sgp22.SET_DEFAULT_DP_ADDRESS, tlv.encode(0x80, address.encode()))

    def list_profiles(self, *, iccid: str | None = None, isdp_aid: bytes | None = None,
                      profile_class: str | None = None,
                      tags: Iterable[int] | None = None) -> list[sgp22.ProfileInfo]:
        """ListProfileInfo, optionally for one profile or class, with the given tags."""
        criteria = [c for c in (iccid, isdp_aid, profile_class) if c is not None]
        if len(criteria) > 1:
            raise ValueError("give at most one search criterion")
        body = b""
        if profile_class is not None:
            body += tlv.encode(0xA0, tlv.encode(sgp22.TAG_PROFILE_CLASS, tlv.encode_int(
                sgp22.PROFILE_CLASSES.index(profile_class))))
        elif criteria:
            body += tlv.encode(0xA0, _profile_id(iccid, isdp_aid))
        if tags is not None:
            body += tlv.encode(sgp22.TAG_TAG_LIST, b"".join(tlv.tag_bytes(t) for t in tags))
        items = self._ok_list(sgp22.LIST_PROFILE_INFO, body)
        return [self._decode("ListProfileInfo", sgp22.ProfileInfo.decode, i) for i in items]

    def enable_profile(self, *, iccid: str | None = None, isdp_aid: bytes | None = None,
                       refresh: bool = True) -> None:
        """EnableProfile (the enabled one is disabled by the eUICC)."""
        body = (tlv.encode(0xA0, _profile_id(iccid, isdp_aid))
                + tlv.encode(0x81, tlv.encode_bool(refresh)))
        self._ok(sgp22.ENABLE_PROFILE, body)

    def disable_profile(self, *, iccid: str | None = None, isdp_aid: bytes | None = None,
                        refresh: bool = True) -> None:
        """DisableProfile."""
        body = (tlv.encode(0xA0, _profile_id(iccid, isdp_aid))
                + tlv.encode(0x81, tlv.encode_bool(refresh)))
        self._ok(sgp22.DISABLE_PROFILE, body)

    def delete_profile(self, *, iccid: str | None = None,
                       isdp_aid: bytes | None = None) -> None:
        """DeleteProfile (the profile must be disabled)."""
        self._ok(sgp22.DELETE_PROFILE, _profile_id(iccid, isdp_aid))

    def set_nickname(self, iccid: str, nickname: str) -> None:
        """SetNickname; an empty nickname removes it."""
        body = (tlv.encode(sgp22.TAG_ICCID, sgp22.encode_iccid(iccid))
                + tlv.encode(sgp22.TAG_NICKNAME, nickname.encode()))
        self._ok(sgp22.SET_NICKNAME, body)

    def memory_reset(self, options: Iterable[str]) -> None:
        """eUICCMemoryReset with the named options (:data:`sgp22.MEMORY_RESET_OPTIONS`)."""
        bits = sgp22.encode_named_bits(options, sgp22.MEMORY_RESET_OPTIONS)
        self._ok(sgp22.MEMORY_RESET, tlv.encode(0x82, bits))

    def list_notifications(self, operations: Iterable[str] | None = None
                           ) -> list[sgp22.NotificationMetadata]:
        """ListNotification, optionally only for the named operations."""
        body = b"" if operations is None else tlv.encode(
            0x81, sgp22.encode_named_bits(operations, sgp22.NOTIFICATION_EVENTS))
        items = self._ok_list(sgp22.LIST_NOTIFICATION, body)
        return [self._decode("ListNotification", sgp22.NotificationMetadata.decode, i)
                for i in items]

    def retrieve_notifications(self, *, seq: int | None = None,
                               operations: Iterable[str] | None = None
                               ) -> list[PendingNotification]:
        """RetrieveNotificationsList: all, one sequence number, or some operations."""
        if seq is not None and operations is not None:
            raise ValueError("search by seq or by operations, not both")
        body = b""
        if seq is not None:
            body = tlv.encode(0xA0, tlv.encode(0x80, tlv.encode_int(seq)))
        elif operations is not None:
            body = tlv.encode(0xA0, tlv.encode(0x81, sgp22.encode_named_bits(
                operations, sgp22.NOTIFICATION_EVENTS)))
        items = self._ok_list(sgp22.RETRIEVE_NOTIFICATIONS, body)
        return [PendingNotification(self._decode("RetrieveNotificationsList",
                                                 sgp22.pending_notification_metadata, i),
                                    i.encode()) for i in items]

    def notification_sent(self, seq: int) -> None:
        """NotificationSent: the notification was delivered; the eUICC forgets it."""
        self._ok(sgp22.NOTIFICATION_SENT, tlv.encode(0x80, tlv.encode_int(seq)))

    def cancel_session(self, transaction_id: bytes, reason: int) -> bytes:
        """CancelSession: the signed ``cancelSessionResponseOk`` content for the SM-DP+."""
        body = (tlv.encode(0x80, transaction_id)
                + tlv.encode(0x81, tlv.encode_int(reason)))
        return self._ok(sgp22.CANCEL_SESSION, body).value

    def get_rat(self) -> list[sgp22.PolicyRule]:
        """GetRAT: the Rules Authorisation Table."""
        answer = self._call(sgp22.TAG_GET_RAT)
        try:
            rat = sgp22.fields(answer, (0xA0,), required=(0xA0,))[0xA0]
            return [sgp22.PolicyRule.decode(r) for r in rat.children()]
        except tlv.TlvError as exc:
            raise Es10Error(f"malformed GetRAT response: {exc}") from exc

    @staticmethod
    def _decode(name: str, decode: Callable[[tlv.Tlv], _T], item: tlv.Tlv) -> _T:
        try:
            return decode(item)
        except (tlv.TlvError, ValueError) as exc:
            raise Es10Error(f"malformed {name} response: {exc}") from exc

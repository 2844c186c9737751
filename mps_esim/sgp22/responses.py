"""The ok-or-error shape of SGP.22 responses, written once as a table.

An ES10 response is, by its type, one of three shapes:

* ``RESULT``: ``tag { 80 INTEGER }``, where 0 means ok (EnableProfile, NotificationSent, ...);
* ``CODE``: ``tag { A0 ok-content | 81 INTEGER error }`` (ListProfileInfo, CancelSession, ...);
* ``TRANSACTION``: ``tag { A0 ok-content | A1 { 80 transactionId, 02 INTEGER error } }``
  (the two signed steps of a profile download, AuthenticateServer and PrepareDownload).

Each response type is one :class:`ResponseType` row naming its tag, its shape and the names
of its codes; the row encodes both answers and decodes either into the ok content or a
:class:`Refusal`. Decoding errors are :class:`~mps_esim.sgp22.der.Asn1Error` naming the type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22.codec import fields
from mps_esim.sgp22.der import Asn1Error, children, expect, int_value, sized
from mps_esim.sgp22.tags import (
    MAX_TRANSACTION_ID,
    TAG_AUTHENTICATE_SERVER,
    TAG_CANCEL_SESSION,
    TAG_DELETE_PROFILE,
    TAG_DISABLE_PROFILE,
    TAG_ENABLE_PROFILE,
    TAG_INTEGER,
    TAG_LIST_NOTIFICATION,
    TAG_LIST_PROFILE_INFO,
    TAG_MEMORY_RESET,
    TAG_NOTIFICATION_SENT,
    TAG_PREPARE_DOWNLOAD,
    TAG_RETRIEVE_NOTIFICATIONS,
    TAG_SET_DEFAULT_DP_ADDRESS,
    TAG_SET_NICKNAME,
)


class Shape(enum.Enum):
    """How a response type carries ok and error (see the module's description)."""

    RESULT = "result"
    CODE = "code"
    TRANSACTION = "transaction"


@record
class Refusal:
    """An error answer: the code, its SGP.22 name and, for downloads, the transaction id."""

    code: int
    reason: str
    transaction_id: bytes | None = None


@record
class ResponseType:
    """One SGP.22 response type: ``name`` (the command's), ``tag``, ``shape``, ``codes``."""

    name: str
    tag: int
    shape: Shape
    codes: Mapping[int, str]

    def reason(self, code: int) -> str:
        """The SGP.22 name of ``code`` (``code N`` for one the table does not know)."""
        return self.codes.get(code, f"code {code}")

    def encode_ok(self, content: bytes = b"") -> bytes:
        """The ok answer: result 0, or ``A0`` holding ``content`` (encoded members)."""
        if self.shape is Shape.RESULT:
            return tlv.encode(self.tag, tlv.encode(0x80, tlv.encode_int(0)))
        return tlv.encode(self.tag, tlv.encode(0xA0, content))

    def encode_error(self, code: int, transaction_id: bytes | None = None) -> bytes:
        """The error answer with ``code`` (a TRANSACTION response also names the session)."""
        number = tlv.encode_int(code)
        if self.shape is Shape.RESULT:
            return tlv.encode(self.tag, tlv.encode(0x80, number))
        if self.shape is Shape.CODE:
            return tlv.encode(self.tag, tlv.encode(0x81, number))
        if transaction_id is None:
            raise ValueError(f"an error of {self.name} names its transaction id")
        return tlv.encode(self.tag, tlv.encode(0xA1, tlv.encode(0x80, transaction_id)
                                               + tlv.encode(TAG_INTEGER, number)))

    def decode(self, data: bytes | tlv.Tlv) -> tlv.Tlv | Refusal:
        """The ok content of a response of this type, or its :class:`Refusal`.

        The ok content is the ``A0`` member; for a RESULT response, the response itself.
        """
        where = f"{self.name} response"
        item = expect(data, self.tag, where)
        if self.shape is Shape.RESULT:
            return self._result(item, where)
        choice = children(item, where)
        if len(choice) != 1:
            raise Asn1Error(f"a CHOICE holds one member, got {len(choice)}", where=where)
        member = choice[0]
        if member.tag == 0xA0:
            return member
        if self.shape is Shape.CODE and member.tag == 0x81:
            code = int_value(member.value, where)
            return Refusal(code, self.reason(code))
        if self.shape is Shape.TRANSACTION and member.tag == 0xA1:
            return self._transaction_error(member, where)
        raise Asn1Error(f"unknown choice {member.tag:X}", where=where)

    def ok_members(self, data: bytes | tlv.Tlv) -> list[tlv.Tlv]:
        """The members of the ok content; a refusal raises :class:`Asn1Error` naming it."""
        answer = self.decode(data)
        where = f"{self.name} response"
        if isinstance(answer, Refusal):
            raise Asn1Error(f"eUICC answered error {answer.code} ({answer.reason})",
                            where=where)
        return children(answer, where)

    def _result(self, item: tlv.Tlv, where: str) -> tlv.Tlv | Refusal:
        try:
            result = fields(item, (0x80,), required=(0x80,))[0x80]
        except tlv.TlvError as exc:
            raise Asn1Error(str(exc), where=where) from exc
        code = int_value(result.value, where, high=255)
        return item if code == 0 else Refusal(code, self.reason(code))

    def _transaction_error(self, member: tlv.Tlv, where: str) -> Refusal:
        parts = children(member, where)
        if len(parts) < 2 or parts[0].tag != 0x80 or parts[1].tag != TAG_INTEGER:
            raise Asn1Error("an error is { 80 transactionId, 02 errorCode }", where=where)
        txid = sized(parts[0].value, where, low=1, high=MAX_TRANSACTION_ID)
        code = int_value(parts[1].value, where)
        return Refusal(code, self.reason(code), txid)


_UNDEFINED = {127: "undefinedError"}

ENABLE_PROFILE = ResponseType("EnableProfile", TAG_ENABLE_PROFILE, Shape.RESULT, {
    0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
    4: "wrongProfileReenabling", 5: "catBusy", **_UNDEFINED})
DISABLE_PROFILE = ResponseType("DisableProfile", TAG_DISABLE_PROFILE, Shape.RESULT, {
    0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInEnabledState", 3: "disallowedByPolicy",
    5: "catBusy", **_UNDEFINED})
DELETE_PROFILE = ResponseType("DeleteProfile", TAG_DELETE_PROFILE, Shape.RESULT, {
    0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
    **_UNDEFINED})
SET_NICKNAME = ResponseType("SetNickname", TAG_SET_NICKNAME, Shape.RESULT, {
    0: "ok", 1: "iccidNotFound", **_UNDEFINED})
MEMORY_RESET = ResponseType("eUICCMemoryReset", TAG_MEMORY_RESET, Shape.RESULT, {
    0: "ok", 1: "nothingToDelete", 5: "catBusy", **_UNDEFINED})
NOTIFICATION_SENT = ResponseType("NotificationSent", TAG_NOTIFICATION_SENT, Shape.RESULT, {
    0: "ok", 1: "nothingToDelete", **_UNDEFINED})
SET_DEFAULT_DP_ADDRESS = ResponseType("SetDefaultDpAddress", TAG_SET_DEFAULT_DP_ADDRESS,
                                      Shape.RESULT, {0: "ok", **_UNDEFINED})
LIST_PROFILE_INFO = ResponseType("ListProfileInfo", TAG_LIST_PROFILE_INFO, Shape.CODE, {
    1: "incorrectInput", **_UNDEFINED})
LIST_NOTIFICATION = ResponseType("ListNotification", TAG_LIST_NOTIFICATION, Shape.CODE,
                                 dict(_UNDEFINED))
RETRIEVE_NOTIFICATIONS = ResponseType("RetrieveNotificationsList", TAG_RETRIEVE_NOTIFICATIONS,
                                      Shape.CODE, {1: "noResultAvailable", **_UNDEFINED})
CANCEL_SESSION = ResponseType("CancelSession", TAG_CANCEL_SESSION, Shape.CODE, {
    5: "invalidTransactionId", **_UNDEFINED})
AUTHENTICATE_SERVER = ResponseType("AuthenticateServer", TAG_AUTHENTICATE_SERVER,
                                   Shape.TRANSACTION, {
    1: "invalidCertificate", 2: "invalidSignature", 3: "unsupportedCurve",
    4: "noSessionContext", 5: "invalidOid", 6: "euiccChallengeMismatch", 7: "ciPKUnknown",
    127: "undefinedError"})
PREPARE_DOWNLOAD = ResponseType("PrepareDownload", TAG_PREPARE_DOWNLOAD, Shape.TRANSACTION, {
    1: "invalidCertificate", 2: "invalidSignature", 3: "unsupportedCurve",
    4: "noSessionContext", 5: "invalidTransactionId", 127: "undefinedError"})

RESPONSES: Mapping[int, ResponseType] = {r.tag: r for r in (
    ENABLE_PROFILE, DISABLE_PROFILE, DELETE_PROFILE, SET_NICKNAME, MEMORY_RESET,
    NOTIFICATION_SENT, SET_DEFAULT_DP_ADDRESS, LIST_PROFILE_INFO, LIST_NOTIFICATION,
    RETRIEVE_NOTIFICATIONS, CANCEL_SESSION, AUTHENTICATE_SERVER, PREPARE_DOWNLOAD)}
"""Every response type with an ok-or-error shape, by its tag."""

# The result codes of each response type under the names the rest of the code uses.
ENABLE_RESULTS = ENABLE_PROFILE.codes
DISABLE_RESULTS = DISABLE_PROFILE.codes
DELETE_RESULTS = DELETE_PROFILE.codes
SET_NICKNAME_RESULTS = SET_NICKNAME.codes
MEMORY_RESET_RESULTS = MEMORY_RESET.codes
NOTIFICATION_SENT_RESULTS = NOTIFICATION_SENT.codes
SET_DEFAULT_DP_RESULTS = SET_DEFAULT_DP_ADDRESS.codes
PROFILE_INFO_LIST_ERRORS = LIST_PROFILE_INFO.codes
LIST_NOTIFICATION_ERRORS = LIST_NOTIFICATION.codes
RETRIEVE_NOTIFICATIONS_ERRORS = RETRIEVE_NOTIFICATIONS.codes
CANCEL_SESSION_ERRORS = CANCEL_SESSION.codes
CANCEL_SESSION_REASONS: Mapping[int, str] = {
    0: "endUserRejection", 1: "postponed", 2: "timeout", 3: "pprNotAllowed",
    4: "metadataMismatch", 5: "loadBppExecutionError", 127: "undefinedReason"}

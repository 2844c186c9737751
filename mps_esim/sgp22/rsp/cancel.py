"""CancelSession: ending a download session with a signed reason."""

from __future__ import annotations

import enum

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22 import (
    TAG_CANCEL_SESSION,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
)
from mps_esim.sgp22.der import (
    Members,
    expect,
    int_bytes,
    int_value,
    oid_bytes,
    oid_value,
    seq,
)
from mps_esim.sgp22.responses import (
    CANCEL_SESSION,
    Refusal,
)
from mps_esim.sgp22.rsp.common import (
    sig_tlv,
    txid_of,
)

# --- CancelSession -----------------------------------------------------------------------

class CancelSessionReason(enum.IntEnum):
    END_USER_REJECTION = 0
    POSTPONED = 1
    TIMEOUT = 2
    PPR_NOT_ALLOWED = 3
    METADATA_MISMATCH = 4
    LOAD_BPP_EXECUTION_ERROR = 5
    UNDEFINED = 127


def cancel_session_request(transaction_id: bytes, reason: int) -> bytes:
    """CancelSessionRequest ``BF41 { 80 transactionId, 81 reason }``."""
    return seq(TAG_CANCEL_SESSION, tlv.encode(0x80, transaction_id),
               tlv.encode(0x81, int_bytes(reason)))


def decode_cancel_session_request(data: bytes | tlv.Tlv) -> tuple[bytes, int]:
    where = "CancelSessionRequest"
    m = Members(expect(data, TAG_CANCEL_SESSION, where), where)
    txid = txid_of(m.required(0x80, "transactionId"), where)
    return txid, int_value(m.required(0x81, "reason").value, where)


@record
class EuiccCancelSessionSigned:
    """``EuiccCancelSessionSigned`` (30 { 80 txid, 81 smdpOid, 82 reason })."""

    transaction_id: bytes
    smdp_oid: str
    reason: int

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, tlv.encode(0x80, self.transaction_id),
                   tlv.encode(0x81, oid_bytes(self.smdp_oid)),
                   tlv.encode(0x82, int_bytes(self.reason)))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> EuiccCancelSessionSigned:
        where = "EuiccCancelSessionSigned"
        m = Members(expect(data, TAG_SEQUENCE, where), where)
        txid = txid_of(m.required(0x80, "transactionId"), where)
        oid = oid_value(m.required(0x81, "smdpOid").value, where)
        return cls(txid, oid, int_value(m.required(0x82, "reason").value, where))


@record
class CancelSessionResponseOk:
    signed_der: bytes
    signature: bytes

    def encode(self) -> bytes:
        return CANCEL_SESSION.encode_ok(self.signed_der + sig_tlv(self.signature))

    @property
    def signed(self) -> EuiccCancelSessionSigned:
        return EuiccCancelSessionSigned.decode(self.signed_der)


@record
class CancelSessionResponseError:
    code: int

    def encode(self) -> bytes:
        return CANCEL_SESSION.encode_error(self.code)


CancelSessionResponse = CancelSessionResponseOk | CancelSessionResponseError


def decode_cancel_session_response(data: bytes | tlv.Tlv) -> CancelSessionResponse:
    """``CancelSessionResponse ::= [65] CHOICE`` (BF41 { A0 ok | 81 error })."""
    answer = CANCEL_SESSION.decode(data)
    if isinstance(answer, Refusal):
        return CancelSessionResponseError(answer.code)
    m = Members(answer, "CancelSessionResponseOk")
    signed = m.required(TAG_SEQUENCE, "euiccCancelSessionSigned")
    EuiccCancelSessionSigned.decode(signed)
    return CancelSessionResponseOk(signed.encode(),
                                   m.required(TAG_SIGNATURE, "signature").value)

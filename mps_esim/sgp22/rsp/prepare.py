"""PrepareDownload: the SM-DP+'s signed second step and the eUICC's answer."""

from __future__ import annotations

import enum

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22 import (
    TAG_BOOLEAN,
    TAG_OCTET_STRING,
    TAG_OTPK,
    TAG_PREPARE_DOWNLOAD,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
)
from mps_esim.sgp22.der import (
    Members,
    bool_bytes,
    bool_value,
    expect,
    opt,
    seq,
    sized,
)
from mps_esim.sgp22.responses import (
    PREPARE_DOWNLOAD,
    Refusal,
)
from mps_esim.sgp22.rsp.common import (
    certificate_of,
    sig_tlv,
    txid_of,
)

# --- PrepareDownload ---------------------------------------------------------------------

@record
class SmdpSigned2:
    """``SmdpSigned2`` (30): transaction id, confirmation-code flag, optional otPK.EUICC."""

    transaction_id: bytes
    cc_required: bool
    bpp_euicc_otpk: bytes | None = None

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, tlv.encode(0x80, self.transaction_id),
                   tlv.encode(TAG_BOOLEAN, bool_bytes(self.cc_required)),
                   opt(TAG_OTPK, self.bpp_euicc_otpk))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> SmdpSigned2:
        where = "SmdpSigned2"
        m = Members(expect(data, TAG_SEQUENCE, where), where)
        txid = txid_of(m.required(0x80, "transactionId"), where)
        cc = bool_value(m.required(TAG_BOOLEAN, "ccRequiredFlag").value, where)
        otpk = m.optional(TAG_OTPK)
        return cls(txid, cc, otpk.value if otpk else None)


@record
class PrepareDownloadRequest:
    """``PrepareDownloadRequest ::= [33]`` (BF21), built by the LPA for the eUICC."""

    smdp_signed2: bytes
    smdp_signature2: bytes
    smdp_certificate: bytes
    hash_cc: bytes | None = None

    def encode(self) -> bytes:
        return seq(TAG_PREPARE_DOWNLOAD, self.smdp_signed2, sig_tlv(self.smdp_signature2),
                   opt(TAG_OCTET_STRING, self.hash_cc), self.smdp_certificate)

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> PrepareDownloadRequest:
        where = "PrepareDownloadRequest"
        m = Members(expect(data, TAG_PREPARE_DOWNLOAD, where), where)
        signed = m.required(TAG_SEQUENCE, "smdpSigned2")
        SmdpSigned2.decode(signed)
        signature = m.required(TAG_SIGNATURE, "smdpSignature2").value
        hash_cc = m.optional(TAG_OCTET_STRING)
        cert = certificate_of(m.required(TAG_SEQUENCE, "smdpCertificate"), where)
        return cls(signed.encode(), signature, cert,
                   sized(hash_cc.value, where, size=32) if hash_cc else None)

    @property
    def signed(self) -> SmdpSigned2:
        return SmdpSigned2.decode(self.smdp_signed2)


@record
class EuiccSigned2:
    """``EUICCSigned2`` (30): transaction id, otPK.EUICC, optional hashed confirmation code."""

    transaction_id: bytes
    euicc_otpk: bytes
    hash_cc: bytes | None = None

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, tlv.encode(0x80, self.transaction_id),
                   tlv.encode(TAG_OTPK, self.euicc_otpk), opt(TAG_OCTET_STRING, self.hash_cc))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> EuiccSigned2:
        where = "EUICCSigned2"
        m = Members(expect(data, TAG_SEQUENCE, where), where)
        txid = txid_of(m.required(0x80, "transactionId"), where)
        otpk = sized(m.required(TAG_OTPK, "euiccOtpk").value, where, low=1, high=133)
        hash_cc = m.optional(TAG_OCTET_STRING)
        return cls(txid, otpk, sized(hash_cc.value, where, size=32) if hash_cc else None)


class DownloadErrorCode(enum.IntEnum):
    """``DownloadErrorCode`` of the eUICC's PrepareDownload."""

    INVALID_CERTIFICATE = 1
    INVALID_SIGNATURE = 2
    UNSUPPORTED_CURVE = 3
    NO_SESSION_CONTEXT = 4
    INVALID_TRANSACTION_ID = 5
    UNDEFINED = 127


@record
class PrepareDownloadResponseOk:
    """The eUICC's euiccSigned2 and its signature."""

    euicc_signed2: bytes
    euicc_signature2: bytes

    def encode(self) -> bytes:
        return PREPARE_DOWNLOAD.encode_ok(self.euicc_signed2 + sig_tlv(self.euicc_signature2))

    @property
    def signed(self) -> EuiccSigned2:
        return EuiccSigned2.decode(self.euicc_signed2)


@record
class PrepareDownloadResponseError:
    """The eUICC refused PrepareDownload."""

    transaction_id: bytes
    code: int

    def encode(self) -> bytes:
        return PREPARE_DOWNLOAD.encode_error(self.code, self.transaction_id)


PrepareDownloadResponse = PrepareDownloadResponseOk | PrepareDownloadResponseError


def decode_prepare_download_response(data: bytes | tlv.Tlv) -> PrepareDownloadResponse:
    """``PrepareDownloadResponse ::= [33] CHOICE`` (BF21 { A0 ok | A1 error })."""
    answer = PREPARE_DOWNLOAD.decode(data)
    if isinstance(answer, Refusal):
        return PrepareDownloadResponseError(answer.transaction_id or b"", answer.code)
    m = Members(answer, "PrepareDownloadResponseOk")
    signed = m.required(TAG_SEQUENCE, "euiccSigned2")
    EuiccSigned2.decode(signed)
    signature = m.required(TAG_SIGNATURE, "euiccSignature2").value
    return PrepareDownloadResponseOk(signed.encode(), signature)

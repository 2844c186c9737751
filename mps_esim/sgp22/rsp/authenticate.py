"""ES10b GetEUICCChallenge and AuthenticateServer: the first signed exchange."""

from __future__ import annotations

import enum

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22 import (
    CHALLENGE_SIZE,
    TAG_AUTHENTICATE_SERVER,
    TAG_GET_EUICC_CHALLENGE,
    TAG_GET_EUICC_INFO2,
    TAG_OCTET_STRING,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
)
from mps_esim.sgp22.der import (
    Asn1Error,
    Members,
    children,
    expect,
    opt,
    seq,
    sized,
    text_value,
)
from mps_esim.sgp22.responses import (
    AUTHENTICATE_SERVER,
    Refusal,
)
from mps_esim.sgp22.rsp.common import (
    address_of,
    certificate_of,
    challenge_of,
    decode_euicc_info2,
    sig_tlv,
    txid_of,
)

# --- ES10b: challenge and eUICC info -----------------------------------------------------

def get_euicc_challenge_request() -> bytes:
    """``BF2E 00``."""
    return tlv.encode(TAG_GET_EUICC_CHALLENGE, b"")


def encode_euicc_challenge(challenge: bytes) -> bytes:
    """GetEuiccChallengeResponse ``BF2E { 80 challenge }``."""
    sized(challenge, "euiccChallenge", size=CHALLENGE_SIZE)
    return seq(TAG_GET_EUICC_CHALLENGE, tlv.encode(0x80, challenge))


def decode_euicc_challenge(data: bytes) -> bytes:
    """The 16-byte challenge of a GetEuiccChallengeResponse."""
    where = "GetEuiccChallengeResponse"
    m = Members(expect(data, TAG_GET_EUICC_CHALLENGE, where), where)
    return challenge_of(m.required(0x80, "euiccChallenge"), where)


# --- AuthenticateServer ------------------------------------------------------------------

@record
class ServerSigned1:
    """``ServerSigned1`` (30): what the SM-DP+ signs with SK.DPauth."""

    transaction_id: bytes
    euicc_challenge: bytes
    server_address: str
    server_challenge: bytes

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, tlv.encode(0x80, self.transaction_id),
                   tlv.encode(0x81, self.euicc_challenge),
                   tlv.encode(0x83, self.server_address.encode()),
                   tlv.encode(0x84, self.server_challenge))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> ServerSigned1:
        where = "ServerSigned1"
        m = Members(expect(data, TAG_SEQUENCE, where), where)
        return cls(txid_of(m.required(0x80, "transactionId"), where),
                   challenge_of(m.required(0x81, "euiccChallenge"), where),
                   address_of(m.required(0x83, "serverAddress"), where),
                   challenge_of(m.required(0x84, "serverChallenge"), where))


@record
class DeviceInfo:
    """``DeviceInfo``: TAC, device capabilities (kept as their encoded members), IMEI."""

    tac: bytes
    capabilities: bytes = b""
    imei: bytes | None = None

    def encode(self, tag: int = 0xA1) -> bytes:
        return seq(tag, tlv.encode(0x80, self.tac), tlv.encode(0xA1, self.capabilities),
                   opt(0x82, self.imei))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> DeviceInfo:
        where = "DeviceInfo"
        m = Members(item, where)
        tac = sized(m.required(0x80, "tac").value, where, size=4)
        caps = m.required(0xA1, "deviceCapabilities")
        children(caps, where)
        imei = m.optional(0x82)
        return cls(tac, caps.value, sized(imei.value, where, size=8) if imei else None)


@record
class CtxParams1:
    """``CtxParams1`` (ctxParamsForCommonAuthentication, A0): matching id and device info."""

    device_info: DeviceInfo
    matching_id: str | None = None

    def encode(self) -> bytes:
        mid = None if self.matching_id is None else self.matching_id.encode()
        return seq(0xA0, opt(0x80, mid), self.device_info.encode(0xA1))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> CtxParams1:
        where = "CtxParams1"
        if item.tag != 0xA0:
            raise Asn1Error(f"unknown ctxParams1 choice {item.tag:X}", where=where)
        m = Members(item, where)
        mid = m.optional(0x80)
        info = DeviceInfo.decode(m.required(0xA1, "deviceInfo"))
        matching_id = text_value(mid.value, where, max_length=255) if mid else None
        return cls(info, matching_id)


@record
class AuthenticateServerRequest:
    """``AuthenticateServerRequest ::= [56]`` (BF38), built by the LPA for the eUICC."""

    server_signed1: bytes
    server_signature1: bytes
    ci_pkid: bytes
    server_certificate: bytes
    ctx_params1: CtxParams1

    def encode(self) -> bytes:
        return seq(TAG_AUTHENTICATE_SERVER, self.server_signed1, sig_tlv(self.server_signature1),
                   tlv.encode(TAG_OCTET_STRING, self.ci_pkid), self.server_certificate,
                   self.ctx_params1.encode())

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> AuthenticateServerRequest:
        where = "AuthenticateServerRequest"
        m = Members(expect(data, TAG_AUTHENTICATE_SERVER, where), where)
        signed = m.required(TAG_SEQUENCE, "serverSigned1")
        ServerSigned1.decode(signed)
        signature = m.required(TAG_SIGNATURE, "serverSignature1").value
        pkid = sized(m.required(TAG_OCTET_STRING, "euiccCiPKIdToBeUsed").value, where,
                     low=1, high=64)
        cert = certificate_of(m.required(TAG_SEQUENCE, "serverCertificate"), where)
        ctx = CtxParams1.decode(m.any("ctxParams1"))
        return cls(signed.encode(), signature, pkid, cert, ctx)

    @property
    def signed(self) -> ServerSigned1:
        return ServerSigned1.decode(self.server_signed1)


@record
class EuiccSigned1:
    """``EuiccSigned1`` (30): what the eUICC signs in its answer to AuthenticateServer."""

    transaction_id: bytes
    server_address: str
    server_challenge: bytes
    euicc_info2: bytes
    ctx_params1: CtxParams1

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, tlv.encode(0x80, self.transaction_id),
                   tlv.encode(0x83, self.server_address.encode()),
                   tlv.encode(0x84, self.server_challenge), self.euicc_info2,
                   self.ctx_params1.encode())

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> EuiccSigned1:
        where = "EuiccSigned1"
        m = Members(expect(data, TAG_SEQUENCE, where), where)
        txid = txid_of(m.required(0x80, "transactionId"), where)
        address = address_of(m.required(0x83, "serverAddress"), where)
        challenge = challenge_of(m.required(0x84, "serverChallenge"), where)
        info2 = m.required(TAG_GET_EUICC_INFO2, "euiccInfo2")
        decode_euicc_info2(info2)
        ctx = CtxParams1.decode(m.any("ctxParams1"))
        return cls(txid, address, challenge, info2.encode(), ctx)


class AuthenticateErrorCode(enum.IntEnum):
    """``AuthenticateErrorCode`` of the eUICC."""

    INVALID_CERTIFICATE = 1
    INVALID_SIGNATURE = 2
    UNSUPPORTED_CURVE = 3
    NO_SESSION_CONTEXT = 4
    INVALID_OID = 5
    EUICC_CHALLENGE_MISMATCH = 6
    CI_PK_UNKNOWN = 7
    UNDEFINED = 127


@record
class AuthenticateResponseOk:
    """The eUICC's signed answer: euiccSigned1, its signature, CERT.EUICC and CERT.EUM."""

    euicc_signed1: bytes
    euicc_signature1: bytes
    euicc_certificate: bytes
    eum_certificate: bytes

    def encode(self) -> bytes:
        return AUTHENTICATE_SERVER.encode_ok(self.euicc_signed1 + sig_tlv(self.euicc_signature1)
                                             + self.euicc_certificate + self.eum_certificate)

    @property
    def signed(self) -> EuiccSigned1:
        return EuiccSigned1.decode(self.euicc_signed1)


@record
class AuthenticateResponseError:
    """The eUICC refused AuthenticateServer."""

    transaction_id: bytes
    code: int

    def encode(self) -> bytes:
        return AUTHENTICATE_SERVER.encode_error(self.code, self.transaction_id)


AuthenticateServerResponse = AuthenticateResponseOk | AuthenticateResponseError


def decode_authenticate_server_response(data: bytes | tlv.Tlv) -> AuthenticateServerResponse:
    """``AuthenticateServerResponse ::= [56] CHOICE`` (BF38 { A0 ok | A1 error })."""
    answer = AUTHENTICATE_SERVER.decode(data)
    if isinstance(answer, Refusal):
        return AuthenticateResponseError(answer.transaction_id or b"", answer.code)
    where = "AuthenticateResponseOk"
    m = Members(answer, where)
    signed = m.required(TAG_SEQUENCE, "euiccSigned1")
    EuiccSigned1.decode(signed)
    signature = m.required(TAG_SIGNATURE, "euiccSignature1").value
    euicc = certificate_of(m.required(TAG_SEQUENCE, "euiccCertificate"), where)
    eum = certificate_of(m.required(TAG_SEQUENCE, "eumCertificate"), where)
    return AuthenticateResponseOk(signed.encode(), signature, euicc, eum)

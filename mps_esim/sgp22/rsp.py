"""SGP.22 (RSPDefinitions) data structures of the profile download, encoded and decoded.

They extend the shared codec: the TLV layer and universal types of :mod:`mps_esim.tlv`
and the tags and ES10 types of :mod:`mps_esim.sgp22` (EUICCInfo1/2,
NotificationMetadata, NotificationConfigurationInformation, Iccid), which are used here,
not redefined.

Tags follow the module's AUTOMATIC TAGS: a member without an explicit tag in a SEQUENCE in
which no member has one gets ``[0]``, ``[1]``, ... in order. Decoders keep the bytes of
every signed part (``*_der``) so signatures are checked over exactly what was received.
Every decoding error is a :class:`tlv.TlvError` (:class:`Asn1Error` where the position in
a structure is known).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mps_esim import sgp22, tlv
from mps_esim.sgp22 import (
    CHALLENGE_SIZE,
    MAX_ADDRESS,
    MAX_TRANSACTION_ID,
    NOTIFICATION_EVENTS,
    PROFILE_CLASSES,
    TAG_AUTHENTICATE_SERVER,
    TAG_BOOLEAN,
    TAG_BOUND_PROFILE_PACKAGE,
    TAG_CANCEL_SESSION,
    TAG_CONFIGURE_ISDP,
    TAG_GET_EUICC_CHALLENGE,
    TAG_GET_EUICC_INFO1,
    TAG_GET_EUICC_INFO2,
    TAG_ICCID,
    TAG_INITIALISE_SECURE_CHANNEL,
    TAG_INTEGER,
    TAG_ISDP_AID,
    TAG_LIST_NOTIFICATION,
    TAG_NOTIFICATION_METADATA,
    TAG_NOTIFICATION_SENT,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_OTPK,
    TAG_PREPARE_DOWNLOAD,
    TAG_PROFILE_INSTALLATION_RESULT,
    TAG_PROFILE_INSTALLATION_RESULT_DATA,
    TAG_REPLACE_SESSION_KEYS,
    TAG_RETRIEVE_NOTIFICATIONS,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
    TAG_STORE_METADATA,
)
from mps_esim.sgp22.der import (
    Asn1Error,
    Members,
    bool_bytes,
    bool_value,
    children,
    expect,
    int_bytes,
    int_value,
    oid_bytes,
    oid_value,
    opt,
    parse,
    seq,
    sized,
    text_value,
)

SVN_2_2_0 = "2.2.0"


def _sig(raw: bytes) -> bytes:
    return tlv.encode(TAG_SIGNATURE, raw)


def _txid(item: tlv.Tlv, where: str) -> bytes:
    return sized(item.value, where, low=1, high=MAX_TRANSACTION_ID)


def _challenge(item: tlv.Tlv, where: str) -> bytes:
    return sized(item.value, where, size=CHALLENGE_SIZE)


def _address(item: tlv.Tlv, where: str) -> str:
    return text_value(item.value, where, max_length=MAX_ADDRESS)


def _certificate(item: tlv.Tlv, where: str) -> bytes:
    if item.tag != TAG_SEQUENCE:
        raise Asn1Error("a certificate is a SEQUENCE", where=where)
    return item.encode()


def _iccid(item: tlv.Tlv, where: str) -> str:
    try:
        return sgp22.decode_iccid(sized(item.value, where, size=10))
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def decode_euicc_info1(data: bytes | tlv.Tlv) -> sgp22.EuiccInfo1:
    """EUICCInfo1 (BF20) from its DER, by the shared codec."""
    return sgp22.EuiccInfo1.decode(expect(data, TAG_GET_EUICC_INFO1, "EUICCInfo1"))


def decode_euicc_info2(data: bytes | tlv.Tlv) -> sgp22.EuiccInfo2:
    """EUICCInfo2 (BF22) from its DER, by the shared codec."""
    return sgp22.EuiccInfo2.decode(expect(data, TAG_GET_EUICC_INFO2, "EUICCInfo2"))


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
    return _challenge(m.required(0x80, "euiccChallenge"), where)


# --- AuthenticateServer ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
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
        return cls(_txid(m.required(0x80, "transactionId"), where),
                   _challenge(m.required(0x81, "euiccChallenge"), where),
                   _address(m.required(0x83, "serverAddress"), where),
                   _challenge(m.required(0x84, "serverChallenge"), where))


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class AuthenticateServerRequest:
    """``AuthenticateServerRequest ::= [56]`` (BF38), built by the LPA for the eUICC."""

    server_signed1: bytes
    server_signature1: bytes
    ci_pkid: bytes
    server_certificate: bytes
    ctx_params1: CtxParams1

    def encode(self) -> bytes:
        return seq(TAG_AUTHENTICATE_SERVER, self.server_signed1, _sig(self.server_signature1),
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
        cert = _certificate(m.required(TAG_SEQUENCE, "serverCertificate"), where)
        ctx = CtxParams1.decode(m.any("ctxParams1"))
        return cls(signed.encode(), signature, pkid, cert, ctx)

    @property
    def signed(self) -> ServerSigned1:
        return ServerSigned1.decode(self.server_signed1)


@dataclass(frozen=True, slots=True)
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
        txid = _txid(m.required(0x80, "transactionId"), where)
        address = _address(m.required(0x83, "serverAddress"), where)
        challenge = _challenge(m.required(0x84, "serverChallenge"), where)
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


@dataclass(frozen=True, slots=True)
class AuthenticateResponseOk:
    """The eUICC's signed answer: euiccSigned1, its signature, CERT.EUICC and CERT.EUM."""

    euicc_signed1: bytes
    euicc_signature1: bytes
    euicc_certificate: bytes
    eum_certificate: bytes

    def encode(self) -> bytes:
        return seq(TAG_AUTHENTICATE_SERVER, seq(0xA0, self.euicc_signed1,
                                                _sig(self.euicc_signature1),
                                                self.euicc_certificate, self.eum_certificate))

    @property
    def signed(self) -> EuiccSigned1:
        return EuiccSigned1.decode(self.euicc_signed1)


@dataclass(frozen=True, slots=True)
class AuthenticateResponseError:
    """The eUICC refused AuthenticateServer."""

    transaction_id: bytes
    code: int

    def encode(self) -> bytes:
        return seq(TAG_AUTHENTICATE_SERVER, seq(0xA1, tlv.encode(0x80, self.transaction_id),
                                                tlv.encode(TAG_INTEGER, int_bytes(self.code))))


AuthenticateServerResponse = AuthenticateResponseOk | AuthenticateResponseError


def decode_authenticate_server_response(data: bytes | tlv.Tlv) -> AuthenticateServerResponse:
    """``AuthenticateServerResponse ::= [56] CHOICE`` (BF38 { A0 ok | A1 error })."""
    where = "AuthenticateServerResponse"
    outer = Members(expect(data, TAG_AUTHENTICATE_SERVER, where), where)
    choice = outer.any("authenticateResponse")
    m = Members(choice, where)
    if choice.tag == 0xA0:
        signed = m.required(TAG_SEQUENCE, "euiccSigned1")
        EuiccSigned1.decode(signed)
        signature = m.required(TAG_SIGNATURE, "euiccSignature1").value
        euicc = _certificate(m.required(TAG_SEQUENCE, "euiccCertificate"), where)
        eum = _certificate(m.required(TAG_SEQUENCE, "eumCertificate"), where)
        return AuthenticateResponseOk(signed.encode(), signature, euicc, eum)
    if choice.tag == 0xA1:
        txid = _txid(m.required(0x80, "transactionId"), where)
        code = int_value(m.required(TAG_INTEGER, "authenticateErrorCode").value, where)
        return AuthenticateResponseError(txid, code)
    raise Asn1Error(f"unknown choice {choice.tag:X}", where=where)


# --- PrepareDownload ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
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
        txid = _txid(m.required(0x80, "transactionId"), where)
        cc = bool_value(m.required(TAG_BOOLEAN, "ccRequiredFlag").value, where)
        otpk = m.optional(TAG_OTPK)
        return cls(txid, cc, otpk.value if otpk else None)


@dataclass(frozen=True, slots=True)
class PrepareDownloadRequest:
    """``PrepareDownloadRequest ::= [33]`` (BF21), built by the LPA for the eUICC."""

    smdp_signed2: bytes
    smdp_signature2: bytes
    smdp_certificate: bytes
    hash_cc: bytes | None = None

    def encode(self) -> bytes:
        return seq(TAG_PREPARE_DOWNLOAD, self.smdp_signed2, _sig(self.smdp_signature2),
                   opt(TAG_OCTET_STRING, self.hash_cc), self.smdp_certificate)

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> PrepareDownloadRequest:
        where = "PrepareDownloadRequest"
        m = Members(expect(data, TAG_PREPARE_DOWNLOAD, where), where)
        signed = m.required(TAG_SEQUENCE, "smdpSigned2")
        SmdpSigned2.decode(signed)
        signature = m.required(TAG_SIGNATURE, "smdpSignature2").value
        hash_cc = m.optional(TAG_OCTET_STRING)
        cert = _certificate(m.required(TAG_SEQUENCE, "smdpCertificate"), where)
        return cls(signed.encode(), signature, cert,
                   sized(hash_cc.value, where, size=32) if hash_cc else None)

    @property
    def signed(self) -> SmdpSigned2:
        return SmdpSigned2.decode(self.smdp_signed2)


@dataclass(frozen=True, slots=True)
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
        txid = _txid(m.required(0x80, "transactionId"), where)
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


@dataclass(frozen=True, slots=True)
class PrepareDownloadResponseOk:
    """The eUICC's euiccSigned2 and its signature."""

    euicc_signed2: bytes
    euicc_signature2: bytes

    def encode(self) -> bytes:
        return seq(TAG_PREPARE_DOWNLOAD, seq(0xA0, self.euicc_signed2,
                                             _sig(self.euicc_signature2)))

    @property
    def signed(self) -> EuiccSigned2:
        return EuiccSigned2.decode(self.euicc_signed2)


@dataclass(frozen=True, slots=True)
class PrepareDownloadResponseError:
    """The eUICC refused PrepareDownload."""

    transaction_id: bytes
    code: int

    def encode(self) -> bytes:
        return seq(TAG_PREPARE_DOWNLOAD, seq(0xA1, tlv.encode(0x80, self.transaction_id),
                                             tlv.encode(TAG_INTEGER, int_bytes(self.code))))


PrepareDownloadResponse = PrepareDownloadResponseOk | PrepareDownloadResponseError


def decode_prepare_download_response(data: bytes | tlv.Tlv) -> PrepareDownloadResponse:
    """``PrepareDownloadResponse ::= [33] CHOICE`` (BF21 { A0 ok | A1 error })."""
    where = "PrepareDownloadResponse"
    outer = Members(expect(data, TAG_PREPARE_DOWNLOAD, where), where)
    choice = outer.any("downloadResponse")
    m = Members(choice, where)
    if choice.tag == 0xA0:
        signed = m.required(TAG_SEQUENCE, "euiccSigned2")
        EuiccSigned2.decode(signed)
        signature = m.required(TAG_SIGNATURE, "euiccSignature2").value
        return PrepareDownloadResponseOk(signed.encode(), signature)
    if choice.tag == 0xA1:
        txid = _txid(m.required(0x80, "transactionId"), where)
        code = int_value(m.required(TAG_INTEGER, "downloadErrorCode").value, where)
        return PrepareDownloadResponseError(txid, code)
    raise Asn1Error(f"unknown choice {choice.tag:X}", where=where)


# --- profile metadata and notifications --------------------------------------------------

@dataclass(frozen=True, slots=True)
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
    der: bytes = field(default=b"", compare=False)

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
        iccid = _iccid(m.required(TAG_ICCID, "iccid"), where)
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


@dataclass(frozen=True, slots=True)
class InstallSuccess:
    aid: bytes
    sima_response: bytes = b""


@dataclass(frozen=True, slots=True)
class InstallFailure:
    command: int
    reason: int
    sima_response: bytes | None = None


@dataclass(frozen=True, slots=True)
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
        txid = _txid(m.required(0x80, "transactionId"), where)
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


@dataclass(frozen=True, slots=True)
class ProfileInstallationResult:
    """``ProfileInstallationResult ::= [55]`` (BF37): the data and the eUICC's signature."""

    data_der: bytes
    signature: bytes

    def encode(self) -> bytes:
        return seq(TAG_PROFILE_INSTALLATION_RESULT, self.data_der, _sig(self.signature))

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


@dataclass(frozen=True, slots=True)
class OtherSignedNotification:
    """``OtherSignedNotification`` (30): enable/disable/delete notifications."""

    tbs_der: bytes
    signature: bytes
    euicc_certificate: bytes
    eum_certificate: bytes

    def encode(self) -> bytes:
        return seq(TAG_SEQUENCE, self.tbs_der, _sig(self.signature), self.euicc_certificate,
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
        euicc = _certificate(m.required(TAG_SEQUENCE, "euiccCertificate"), where)
        eum = _certificate(m.required(TAG_SEQUENCE, "eumCertificate"), where)
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
    return seq(TAG_LIST_NOTIFICATION, seq(0xA0, *(i.encode() for i in items)))


def decode_notification_list(data: bytes) -> list[sgp22.NotificationMetadata]:
    """The metadata of a ListNotificationResponse; an error answer raises."""
    where = "ListNotificationResponse"
    choice = Members(expect(data, TAG_LIST_NOTIFICATION, where), where).any("result")
    if choice.tag == 0x81:
        raise Asn1Error(f"eUICC answered error {int_value(choice.value, where)}", where=where)
    if choice.tag != 0xA0:
        raise Asn1Error(f"unknown choice {choice.tag:X}", where=where)
    return [decode_notification_metadata(c) for c in children(choice, where)]


def retrieve_notifications_request(seq_number: int | None = None) -> bytes:
    """RetrieveNotificationsListRequest ``BF2B { [A0 { 80 seq }] }``."""
    criteria = None if seq_number is None else seq(
        0xA0, tlv.encode(0x80, int_bytes(seq_number)))
    return seq(TAG_RETRIEVE_NOTIFICATIONS, criteria)


def encode_pending_notifications(items: list[bytes]) -> bytes:
    """RetrieveNotificationsListResponse ``BF2B { A0 { BF37.. | 30.. } }``."""
    return seq(TAG_RETRIEVE_NOTIFICATIONS, seq(0xA0, *items))


def decode_pending_notifications(data: bytes) -> list[tuple[bytes, PendingNotification]]:
    """Each pending notification of a RetrieveNotificationsListResponse: DER and parsed."""
    where = "RetrieveNotificationsListResponse"
    choice = Members(expect(data, TAG_RETRIEVE_NOTIFICATIONS, where), where).any("result")
    if choice.tag == 0x81:
        raise Asn1Error(f"eUICC answered error {int_value(choice.value, where)}", where=where)
    if choice.tag != 0xA0:
        raise Asn1Error(f"unknown choice {choice.tag:X}", where=where)
    return [(c.encode(), decode_pending_notification(c)) for c in children(choice, where)]


def notification_sent_request(seq_number: int) -> bytes:
    """NotificationSentRequest ``BF30 { 80 seq }``."""
    return seq(TAG_NOTIFICATION_SENT, tlv.encode(0x80, int_bytes(seq_number)))


def decode_notification_sent(data: bytes) -> int:
    """The deleteNotificationStatus (0 ok, 1 nothing to delete, 127 error)."""
    where = "NotificationSentResponse"
    m = Members(expect(data, TAG_NOTIFICATION_SENT, where), where)
    return int_value(m.required(0x80, "deleteNotificationStatus").value, where)


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
    txid = _txid(m.required(0x80, "transactionId"), where)
    return txid, int_value(m.required(0x81, "reason").value, where)


@dataclass(frozen=True, slots=True)
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
        txid = _txid(m.required(0x80, "transactionId"), where)
        oid = oid_value(m.required(0x81, "smdpOid").value, where)
        return cls(txid, oid, int_value(m.required(0x82, "reason").value, where))


@dataclass(frozen=True, slots=True)
class CancelSessionResponseOk:
    signed_der: bytes
    signature: bytes

    def encode(self) -> bytes:
        return seq(TAG_CANCEL_SESSION, seq(0xA0, self.signed_der, _sig(self.signature)))

    @property
    def signed(self) -> EuiccCancelSessionSigned:
        return EuiccCancelSessionSigned.decode(self.signed_der)


@dataclass(frozen=True, slots=True)
class CancelSessionResponseError:
    code: int

    def encode(self) -> bytes:
        return seq(TAG_CANCEL_SESSION, tlv.encode(0x81, int_bytes(self.code)))


CancelSessionResponse = CancelSessionResponseOk | CancelSessionResponseError


def decode_cancel_session_response(data: bytes | tlv.Tlv) -> CancelSessionResponse:
    """``CancelSessionResponse ::= [65] CHOICE`` (BF41 { A0 ok | 81 error })."""
    where = "CancelSessionResponse"
    choice = Members(expect(data, TAG_CANCEL_SESSION, where), where).any("result")
    if choice.tag == 0x81:
        return CancelSessionResponseError(int_value(choice.value, where))
    if choice.tag != 0xA0:
        raise Asn1Error(f"unknown choice {choice.tag:X}", where=where)
    m = Members(choice, where)
    signed = m.required(TAG_SEQUENCE, "euiccCancelSessionSigned")
    EuiccCancelSessionSigned.decode(signed)
    return CancelSessionResponseOk(signed.encode(),
                                   m.required(TAG_SIGNATURE, "signature").value)


# --- the bound profile package -----------------------------------------------------------

REMOTE_OP_INSTALL_BPP = 1
CRT_KEY_TYPE = 0x88
CRT_KEY_LENGTH = 0x10


@dataclass(frozen=True, slots=True)
class InitialiseSecureChannel:
    """``InitialiseSecureChannelRequest ::= [35]`` (BF23)."""

    transaction_id: bytes
    host_id: bytes
    smdp_otpk: bytes
    signature: bytes = b""
    remote_op: int = REMOTE_OP_INSTALL_BPP
    key_type: int = CRT_KEY_TYPE
    key_length: int = CRT_KEY_LENGTH

    def signed_part(self) -> bytes:
        """The data objects before the signature, as they are signed."""
        crt = seq(0xA6, tlv.encode(0x80, bytes((self.key_type,))),
                  tlv.encode(0x81, bytes((self.key_length,))), tlv.encode(0x84, self.host_id))
        return (tlv.encode(0x82, int_bytes(self.remote_op)) + tlv.encode(0x80, self.transaction_id)
                + crt + tlv.encode(TAG_OTPK, self.smdp_otpk))

    def encode(self) -> bytes:
        return tlv.encode(TAG_INITIALISE_SECURE_CHANNEL, self.signed_part() + _sig(self.signature))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> tuple[InitialiseSecureChannel, bytes]:
        """The request and the bytes its signature covers (before ``5F49 || otPK.EUICC``)."""
        where = "InitialiseSecureChannelRequest"
        item = expect(data, TAG_INITIALISE_SECURE_CHANNEL, where)
        m = Members(item, where)
        op = int_value(m.required(0x82, "remoteOpId").value, where)
        txid = _txid(m.required(0x80, "transactionId"), where)
        crt = Members(m.required(0xA6, "controlRefTemplate"), where)
        key_type = sized(crt.required(0x80, "keyType").value, where, size=1)[0]
        key_length = sized(crt.required(0x81, "keyLen").value, where, size=1)[0]
        host_id = sized(crt.required(0x84, "hostId").value, where, low=1, high=16)
        otpk = sized(m.required(TAG_OTPK, "smdpOtpk").value, where, low=1, high=133)
        sig_item = m.required(TAG_SIGNATURE, "smdpSign")
        signed = b"".join(c.encode() for c in children(item, where)
                          if c.tag != TAG_SIGNATURE)
        return (cls(txid, host_id, otpk, sig_item.value, op, key_type, key_length), signed)


@dataclass(frozen=True, slots=True)
class BoundProfilePackage:
    """``BoundProfilePackage ::= [54]`` (BF36) as its protected parts.

    ``configure_isdp``, ``store_metadata``, ``replace_keys`` and ``profile`` hold the
    complete ``87`` / ``88`` / ``87`` / ``86`` segment TLVs.
    """

    initialise_secure_channel: bytes
    configure_isdp: tuple[bytes, ...]
    store_metadata: tuple[bytes, ...]
    profile: tuple[bytes, ...]
    replace_keys: tuple[bytes, ...] | None = None

    def _parts(self) -> list[bytes]:
        parts = [self.initialise_secure_channel, seq(0xA0, *self.configure_isdp),
                 seq(0xA1, *self.store_metadata)]
        if self.replace_keys is not None:
            parts.append(seq(0xA2, *self.replace_keys))
        parts.append(seq(0xA3, *self.profile))
        return parts

    def encode(self) -> bytes:
        return tlv.encode(TAG_BOUND_PROFILE_PACKAGE, b"".join(self._parts()))

    def segments(self) -> list[bytes]:
        """The ES10b.LoadBoundProfilePackage commands, in the order they are sent.

        BF36 header with BF23; A0 whole; A1 header then each 88; A2 whole (if present);
        A3 header then each 86 (SGP.22 2.5.5).
        """
        whole = self.encode()
        outer_header = whole[:len(whole) - sum(len(p) for p in self._parts())]
        out = [outer_header + self.initialise_secure_channel, seq(0xA0, *self.configure_isdp)]
        out.append(_header_of(seq(0xA1, *self.store_metadata)))
        out.extend(self.store_metadata)
        if self.replace_keys is not None:
            out.append(seq(0xA2, *self.replace_keys))
        out.append(_header_of(seq(0xA3, *self.profile)))
        out.extend(self.profile)
        return out

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> BoundProfilePackage:
        where = "BoundProfilePackage"
        m = Members(expect(data, TAG_BOUND_PROFILE_PACKAGE, where), where)
        isc = m.required(TAG_INITIALISE_SECURE_CHANNEL, "initialiseSecureChannelRequest")

        def segments(item: tlv.Tlv, tag: int, name: str) -> tuple[bytes, ...]:
            out = []
            for child in children(item, where):
                if child.tag != tag:
                    raise Asn1Error(f"{name} holds tag {child.tag:X}, expected {tag:X}",
                                    where=where)
                out.append(child.encode())
            return tuple(out)

        a0 = segments(m.required(0xA0, "firstSequenceOf87"), 0x87, "firstSequenceOf87")
        a1 = segments(m.required(0xA1, "sequenceOf88"), 0x88, "sequenceOf88")
        a2_item = m.optional(0xA2)
        a2 = segments(a2_item, 0x87, "secondSequenceOf87") if a2_item is not None else None
        a3 = segments(m.required(0xA3, "sequenceOf86"), 0x86, "sequenceOf86")
        return cls(isc.encode(), a0, a1, a3, a2)


def _header_of(encoded: bytes) -> bytes:
    """Tag and length of one encoded TLV (what precedes its value)."""
    item = tlv.decode_one(encoded)
    return encoded[:len(encoded) - len(item.value)]


def configure_isdp_request(dp_oid: str | None = None) -> bytes:
    """ConfigureISDPRequest ``BF24 { [B8 { 06 dpOid }] }``."""
    data = None if dp_oid is None else seq(0xB8, tlv.encode(TAG_OID, oid_bytes(dp_oid)))
    return seq(TAG_CONFIGURE_ISDP, data)


def replace_session_keys_request(initial_mcv: bytes, ppk_enc: bytes, ppk_mac: bytes) -> bytes:
    """ReplaceSessionKeysRequest ``BF26 { 80 MCV, 81 PPK-ENC, 82 PPK-MAC }``."""
    return seq(TAG_REPLACE_SESSION_KEYS, tlv.encode(0x80, initial_mcv),
               tlv.encode(0x81, ppk_enc), tlv.encode(0x82, ppk_mac))


def decode_replace_session_keys(data: bytes) -> tuple[bytes, bytes, bytes]:
    where = "ReplaceSessionKeysRequest"
    m = Members(expect(data, TAG_REPLACE_SESSION_KEYS, where), where)
    return (sized(m.required(0x80, "initialMacChainingValue").value, where, size=16),
            sized(m.required(0x81, "ppkEnc").value, where, size=16),
            sized(m.required(0x82, "ppkCmac").value, where, size=16))

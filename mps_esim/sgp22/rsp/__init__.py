"""SGP.22 (RSPDefinitions) data structures of the profile download, encoded and decoded.

They extend the shared codec: the TLV layer and universal types of :mod:`mps_esim.tlv`
and the tags and ES10 types of :mod:`mps_esim.sgp22` (EUICCInfo1/2,
NotificationMetadata, NotificationConfigurationInformation, Iccid), which are used here,
not redefined.

Tags follow the module's AUTOMATIC TAGS: a member without an explicit tag in a SEQUENCE in
which no member has one gets ``[0]``, ``[1]``, ... in order. Decoders keep the bytes of
every signed part (``*_der``) so signatures are checked over exactly what was received.
The ok-or-error shape of the responses comes from :mod:`mps_esim.sgp22.responses`.
Every decoding error is a :class:`tlv.TlvError` (:class:`Asn1Error` where the position in
a structure is known).
"""

from __future__ import annotations

from mps_esim.sgp22.rsp.authenticate import (
    AuthenticateErrorCode,
    AuthenticateResponseError,
    AuthenticateResponseOk,
    AuthenticateServerRequest,
    AuthenticateServerResponse,
    CtxParams1,
    DeviceInfo,
    EuiccSigned1,
    ServerSigned1,
    decode_authenticate_server_response,
    decode_euicc_challenge,
    encode_euicc_challenge,
    get_euicc_challenge_request,
)
from mps_esim.sgp22.rsp.bpp import (
    CRT_KEY_LENGTH,
    CRT_KEY_TYPE,
    REMOTE_OP_INSTALL_BPP,
    BoundProfilePackage,
    InitialiseSecureChannel,
    configure_isdp_request,
    decode_replace_session_keys,
    replace_session_keys_request,
)
from mps_esim.sgp22.rsp.cancel import (
    CancelSessionReason,
    CancelSessionResponse,
    CancelSessionResponseError,
    CancelSessionResponseOk,
    EuiccCancelSessionSigned,
    cancel_session_request,
    decode_cancel_session_request,
    decode_cancel_session_response,
)
from mps_esim.sgp22.rsp.common import (
    SVN_2_2_0,
    decode_euicc_info1,
    decode_euicc_info2,
)
from mps_esim.sgp22.rsp.install import (
    BppCommandId,
    ErrorReason,
    InstallFailure,
    InstallSuccess,
    ProfileInstallationResult,
    ProfileInstallationResultData,
    StoreMetadata,
    decode_notification_metadata,
    notification,
)
from mps_esim.sgp22.rsp.notifications import (
    OtherSignedNotification,
    PendingNotification,
    decode_notification_list,
    decode_notification_sent,
    decode_pending_notification,
    decode_pending_notifications,
    encode_notification_list,
    encode_pending_notifications,
    list_notification_request,
    notification_sent_request,
    notification_seq_number,
    retrieve_notifications_request,
)
from mps_esim.sgp22.rsp.prepare import (
    DownloadErrorCode,
    EuiccSigned2,
    PrepareDownloadRequest,
    PrepareDownloadResponse,
    PrepareDownloadResponseError,
    PrepareDownloadResponseOk,
    SmdpSigned2,
    decode_prepare_download_response,
)

__all__ = [
    "CRT_KEY_LENGTH",
    "CRT_KEY_TYPE",
    "REMOTE_OP_INSTALL_BPP",
    "SVN_2_2_0",
    "AuthenticateErrorCode",
    "AuthenticateResponseError",
    "AuthenticateResponseOk",
    "AuthenticateServerRequest",
    "AuthenticateServerResponse",
    "BoundProfilePackage",
    "BppCommandId",
    "CancelSessionReason",
    "CancelSessionResponse",
    "CancelSessionResponseError",
    "CancelSessionResponseOk",
    "CtxParams1",
    "DeviceInfo",
    "DownloadErrorCode",
    "ErrorReason",
    "EuiccCancelSessionSigned",
    "EuiccSigned1",
    "EuiccSigned2",
    "InitialiseSecureChannel",
    "InstallFailure",
    "InstallSuccess",
    "OtherSignedNotification",
    "PendingNotification",
    "PrepareDownloadRequest",
    "PrepareDownloadResponse",
    "PrepareDownloadResponseError",
    "PrepareDownloadResponseOk",
    "ProfileInstallationResult",
    "ProfileInstallationResultData",
    "ServerSigned1",
    "SmdpSigned2",
    "StoreMetadata",
    "cancel_session_request",
    "configure_isdp_request",
    "decode_authenticate_server_response",
    "decode_cancel_session_request",
    "decode_cancel_session_response",
    "decode_euicc_challenge",
    "decode_euicc_info1",
    "decode_euicc_info2",
    "decode_notification_list",
    "decode_notification_metadata",
    "decode_notification_sent",
    "decode_pending_notification",
    "decode_pending_notifications",
    "decode_prepare_download_response",
    "decode_replace_session_keys",
    "encode_euicc_challenge",
    "encode_notification_list",
    "encode_pending_notifications",
    "get_euicc_challenge_request",
    "list_notification_request",
    "notification",
    "notification_sent_request",
    "notification_seq_number",
    "replace_session_keys_request",
    "retrieve_notifications_request",
]

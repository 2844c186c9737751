"""ESipa between the IPA and the eIM (SGP.32 6.1, 6.3): the functions, the JSON binding
used here, and the profile download trigger.

Over HTTPS each function is ``POST /gsma/rsp2/esipa/<function>`` with a JSON body, as ES9+
is (SGP.22 6.5): binary values are base64 of their DER, the EID is 32 digits, results come
in ``header.functionExecutionStatus``. ``getEimPackage`` answers with one of
``euiccPackageRequest``, ``ipaEuiccDataRequest``, ``profileDownloadTriggerRequest`` (each
the base64 DER of that ASN.1 type) or ``eimPackageError``; ``provideEimPackageResult``
carries one of ``euiccPackageResult`` (with ``notificationList``),
``ipaEuiccDataResponse`` or ``profileDownloadTriggerResult`` and is answered with the
``eimAcknowledgements`` (sequence numbers the eUICC may forget).

ProfileDownloadTriggerRequest (``BF54``)::

    BF54 { A0 { 80 activationCode | 81 contactDefaultSmdp | A2 contactSmds }, 82 eimTransactionId }

ProfileDownloadTriggerResult (``BF54``)::

    BF54 { 82 eimTransactionId, BF37 ProfileInstallationResult
                              | 30 { 80 profileDownloadErrorReason, 04 errorResponse } }
"""

from __future__ import annotations

from dataclasses import dataclass

from mps_esim import sgp22, tlv
from mps_esim.sgp22 import der

BASE_PATH = "/gsma/rsp2/esipa/"
FUNCTIONS = ("getEimPackage", "provideEimPackageResult", "handleNotification",
             "initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
             "cancelSession")
"""ESipa functions (SGP.32 6.3); this eIM serves the first three (the IPA talks ES9+ to
the SM-DP+ itself: directRspServerCommunication)."""

PACKAGE_KINDS = ("euiccPackageRequest", "ipaEuiccDataRequest", "profileDownloadTriggerRequest")
RESULT_KINDS = ("euiccPackageResult", "ipaEuiccDataResponse", "profileDownloadTriggerResult")
EIM_PACKAGE_ERRORS = {1: "noEimPackageAvailable", 2: "eidNotFound", 3: "invalidEid",
                      4: "missingEid", 127: "undefinedError"}
NO_PACKAGE, EID_NOT_FOUND = 1, 2
TAG_DOWNLOAD_TRIGGER = 0xBF54
MAX_ACTIVATION_CODE = 255
DOWNLOAD_ERRORS = {104: "ecallActive", 127: "undefinedError"}


@dataclass(frozen=True)
class DownloadTrigger:
    """ProfileDownloadTriggerRequest with an activation code."""

    activation_code: str
    transaction_id: bytes | None = None

    def encode(self) -> bytes:
        if len(self.activation_code.encode()) > MAX_ACTIVATION_CODE:
            raise ValueError("an activation code is at most 255 bytes")
        return der.seq(TAG_DOWNLOAD_TRIGGER,
                       der.seq(0xA0, tlv.encode(0x80, self.activation_code.encode())),
                       der.opt(0x82, self.transaction_id))

    @classmethod
    def decode(cls, data: bytes) -> DownloadTrigger:
        where = "ProfileDownloadTriggerRequest"
        m = der.Members(der.expect(data, TAG_DOWNLOAD_TRIGGER, where), where)
        download = m.optional(0xA0)
        txid = m.optional(0x82)
        if download is None:
            raise der.Asn1Error("no profileDownloadData", where=where)
        choice = der.children(download, where)
        if len(choice) != 1 or choice[0].tag != 0x80:
            raise der.Asn1Error("only activationCode (80) is supported", where=where)
        code = der.text_value(choice[0].value, where, max_length=MAX_ACTIVATION_CODE)
        return cls(code, None if txid is None else der.sized(txid.value, where, low=1,
                                                             high=16))


@dataclass(frozen=True)
class DownloadTriggerResult:
    """ProfileDownloadTriggerResult: the signed ProfileInstallationResult (``BF37``), or
    the reason the IPA could not download."""

    transaction_id: bytes | None
    installation_result: bytes | None = None
    error_reason: int | None = None
    error_response: bytes | None = None

    def encode(self) -> bytes:
        if self.installation_result is not None:
            data = self.installation_result
        else:
            data = der.seq(0x30, tlv.encode(0x80, tlv.encode_int(self.error_reason or 127)),
                           der.opt(0x04, self.error_response))
        return der.seq(TAG_DOWNLOAD_TRIGGER, der.opt(0x82, self.transaction_id), data)

    @classmethod
    def decode(cls, data: bytes) -> DownloadTriggerResult:
        where = "ProfileDownloadTriggerResult"
        m = der.Members(der.expect(data, TAG_DOWNLOAD_TRIGGER, where), where)
        txid_item = m.optional(0x82)
        txid = None if txid_item is None else der.sized(txid_item.value, where, low=1, high=16)
        choice = m.any("profileDownloadTriggerResultData")
        if choice.tag == sgp22.TAG_PROFILE_INSTALLATION_RESULT:
            return cls(txid, installation_result=choice.encode())
        if choice.tag != 0x30:
            raise der.Asn1Error(f"unexpected result tag {choice.tag:X}", where=where)
        e = der.Members(choice, where)
        reason = der.int_value(e.required(0x80, "profileDownloadErrorReason").value, where)
        response = e.optional(0x04)
        return cls(txid, error_reason=reason,
                   error_response=None if response is None else response.value)

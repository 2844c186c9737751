"""The eUICC's part of a profile download (SGP.22 3.1.3, 5.7.5 to 5.7.7, 5.7.13, 5.7.14).

:class:`DownloadSession` holds what one download needs between the ES10b commands
(challenge, transaction id, server certificates, one-time key, secure channel) and answers
GetEUICCChallenge, AuthenticateServer, PrepareDownload, the LoadBoundProfilePackage
segments and CancelSession with the DER the eUICC returns, after checking every certificate
chain, signature, challenge, server address, transaction id and MAC. A refusal is the
response's SGP.22 error code; a request that is not valid DER raises :class:`tlv.TlvError`
(the card answers ``6A80``).

The session lives in the card's volatile memory: a reset, a new challenge or a cancel ends
it, and with it any partly loaded package. It never touches card storage itself:
installing the profile and keeping the installation result as a pending notification are
done, both or neither, through the :class:`InstallTarget` the card hands it.
"""

from __future__ import annotations

import logging
import os

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.euicc.bpp_load import BppFailure, BppLoad, BppPhase, group_length, outer_header
from lpa_emulator.euicc.errors import EuiccError
from lpa_emulator.euicc.identity import EuiccIdentity
from lpa_emulator.euicc.install import InstallRefused, InstallTarget
from mps_esim import sgp22, tlv
from mps_esim.crypto import certs, ecka, signatures
from mps_esim.crypto.errors import CertificateError, CryptoError, Scp03tError
from mps_esim.crypto.kdf import SessionKeys, derive_session_keys
from mps_esim.crypto.scp03t import Scp03t
from mps_esim.sgp22 import rsp
from mps_esim.sgp22.saip import MAX_PACKAGE, parse_profile_package

log = logging.getLogger(__name__)

MAX_PROFILE = MAX_PACKAGE
"""Largest profile package (sum of the 86 segments) an eUICC session accepts."""

MAX_METADATA = 8 * 1024

_SIMA_OK = bytes.fromhex("3007A0053003800100")
"""An EUICCResponse saying the profile elements installed: ``peStatus { { status ok } }``."""


class _Refusal(EuiccError):
    """Ends an ES10b download step with the error code ``reason`` of its response."""

    def __init__(self, reason: rsp.DownloadErrorCode, why: str) -> None:
        super().__init__(why)
        self.reason = reason


class DownloadSession:
    """The eUICC side of one profile download, from the challenge to the installation result.

    ``identity`` is the card's (CERT.EUICC and its key, CERT.EUM, the trusted CIs), ``eid``
    the card's EID (it enters the session keys). Methods take the ES10b request DER (as the
    LPA sends it) and return the response DER.
    """

    def __init__(self, identity: EuiccIdentity, eid: str) -> None:
        self.identity = identity
        self.eid = eid
        self._challenge: bytes | None = None
        self._txid: bytes | None = None
        self._server_address: str | None = None
        self._dpauth: x509.Certificate | None = None
        self._dppb: x509.Certificate | None = None
        self._euicc_signature1: bytes | None = None
        self._otsk: ec.EllipticCurvePrivateKey | None = None
        self._cc_required = False
        self._bpp: BppLoad | None = None

    @property
    def challenge(self) -> bytes | None:
        """The challenge AuthenticateServer expects (None once used or before one)."""
        return self._challenge

    @property
    def transaction_id(self) -> bytes | None:
        """The transaction of the authenticated SM-DP+, if any."""
        return self._txid

    @property
    def server_address(self) -> str | None:
        return self._server_address

    def reset(self) -> None:
        """Forget the session and any partly loaded package (card reset, new challenge,
        cancel)."""
        self.__init__(self.identity, self.eid)  # type: ignore[misc]

    # --- GetEUICCChallenge -----------------------------------------------------------------

    def get_challenge(self) -> bytes:
        """GetEuiccChallengeResponse: a fresh challenge ends any earlier session."""
        self.reset()
        self._challenge = os.urandom(sgp22.CHALLENGE_SIZE)
        return rsp.encode_euicc_challenge(self._challenge)

    # --- AuthenticateServer ---------------------------------------------------------------

    def authenticate_server(self, request: bytes, *, euicc_info2: bytes,
                            default_smdp_address: str | None = None) -> bytes:
        """ES10b.AuthenticateServer: verify the SM-DP+, answer with signed euiccSigned1.

        ``euicc_info2`` is the card's EUICCInfo2 DER (it goes into euiccSigned1); without a
        matching id the server must be ``default_smdp_address``.
        """
        code = rsp.AuthenticateErrorCode
        req = rsp.AuthenticateServerRequest.decode(request)
        signed = req.signed

        def refuse(reason: rsp.AuthenticateErrorCode, why: str) -> bytes:
            log.info("AuthenticateServer refused (%s): %s", reason.name, why)
            return rsp.AuthenticateResponseError(signed.transaction_id, reason).encode()

        if self._challenge is None:
            return refuse(code.NO_SESSION_CONTEXT, "no challenge was issued")
        if req.ci_pkid not in self.identity.signing_pkids:
            return refuse(code.CI_PK_UNKNOWN, "euiccCiPKIdToBeUsed is not one of ours")
        try:
            server = certs.load_der(req.server_certificate, "dpauth")
            key = server.public_key()
            if ecka.rsp_curve(key) is None or not isinstance(key, ec.EllipticCurvePublicKey):
                return refuse(code.UNSUPPORTED_CURVE,
                              "CERT.DPauth is on neither NIST P-256 nor brainpoolP256r1")
            # An SM-DS authenticates with CERT.DSauth for event retrieval (SGP.22 3.6.3).
            from_smds = certs.has_role(server, certs.ROLE_DS_AUTH)
            certs.verify_server_certificate(
                server, self.identity.ci_certificates,
                role=certs.ROLE_DS_AUTH if from_smds else certs.ROLE_DP_AUTH)
        except CertificateError as exc:
            return refuse(code.INVALID_CERTIFICATE, str(exc))
        try:
            signatures.verify(key, req.server_signed1, req.server_signature1)
        except CryptoError as exc:
            return refuse(code.INVALID_SIGNATURE, str(exc))
        if signed.euicc_challenge != self._challenge:
            return refuse(code.EUICC_CHALLENGE_MISMATCH, "serverSigned1 names another challenge")
        if not req.ctx_params1.matching_id and not from_smds and (
                default_smdp_address is None
                or signed.server_address.lower() != default_smdp_address.lower()):
            # Without a matching id an SM-DP+ must be the default one; an SM-DS is asked
            # for events, which carry no matching id.
            return refuse(code.UNDEFINED, f"no matching id, and {signed.server_address} is "
                          f"not the default SM-DP+ ({default_smdp_address or 'none set'})")
        euicc_signed1 = rsp.EuiccSigned1(signed.transaction_id, signed.server_address,
                                         signed.server_challenge, euicc_info2,
                                         req.ctx_params1)
        body = euicc_signed1.encode()
        signature = self.identity.sign(body)
        self._txid = signed.transaction_id
        self._server_address = signed.server_address
        self._dpauth = None if from_smds else server  # no download follows an SM-DS
        self._euicc_signature1 = signature
        self._challenge = None  # one use only: a replayed serverSigned1 finds none
        return rsp.AuthenticateResponseOk(body, signature, self.identity.certificate_der,
                                          self.identity.eum_certificate_der).encode()

    # --- PrepareDownload ------------------------------------------------------------------

    def prepare_download(self, request: bytes) -> bytes:
        """ES10b.PrepareDownload: verify CERT.DPpb and smdpSignature2, make otPK.EUICC."""
        req = rsp.PrepareDownloadRequest.decode(request)
        signed = req.signed
        try:
            dppb = self._check_prepare(req, signed)
        except _Refusal as refusal:
            log.info("PrepareDownload refused (%s): %s", refusal.reason.name, refusal)
            return rsp.PrepareDownloadResponseError(signed.transaction_id,
                                                    refusal.reason).encode()
        otsk = self._otsk
        # The one-time key is on the curve of CERT.DPpb (SGP.22 3.1.3), and the SM-DP+ may
        # ask to reuse the one of an earlier attempt.
        curve = ecka.rsp_curve(dppb.public_key()) or ecka.CURVES["nist"]
        if (otsk is None or otsk.curve.name != curve.name or signed.bpp_euicc_otpk is None
                or ecka.public_point(otsk) != signed.bpp_euicc_otpk):
            otsk = ecka.new_key(curve)
        self._otsk = otsk
        euicc_signed2 = rsp.EuiccSigned2(signed.transaction_id, ecka.public_point(otsk),
                                         req.hash_cc).encode()
        signature = self.identity.sign(
            euicc_signed2 + signatures.signature_object(req.smdp_signature2))
        self._dppb = dppb
        self._cc_required = signed.cc_required
        self._bpp = BppLoad()
        return rsp.PrepareDownloadResponseOk(euicc_signed2, signature).encode()

    def _check_prepare(self, req: rsp.PrepareDownloadRequest, signed: rsp.SmdpSigned2
                       ) -> x509.Certificate:
        """CERT.DPpb of a PrepareDownload that may go on; :class:`_Refusal` if not."""
        code = rsp.DownloadErrorCode
        if self._txid is None or self._dpauth is None or self._euicc_signature1 is None:
            raise _Refusal(code.NO_SESSION_CONTEXT, "no authenticated session")
        try:
            dppb = certs.load_der(req.smdp_certificate, "dppb")
            key = dppb.public_key()
            if ecka.rsp_curve(key) is None or not isinstance(key, ec.EllipticCurvePublicKey):
                raise _Refusal(code.UNSUPPORTED_CURVE,
                               "CERT.DPpb is on neither NIST P-256 nor brainpoolP256r1")
            certs.verify_server_certificate(dppb, self.identity.ci_certificates,
                                            role=certs.ROLE_DP_PB)
            if certs.server_oid(dppb) != certs.server_oid(self._dpauth):
                raise _Refusal(code.INVALID_CERTIFICATE,
                               "CERT.DPpb belongs to another SM-DP+ than CERT.DPauth")
        except CertificateError as exc:
            raise _Refusal(code.INVALID_CERTIFICATE, str(exc)) from exc
        try:
            signatures.verify(key, req.smdp_signed2 + signatures.signature_object(
                self._euicc_signature1), req.smdp_signature2)
        except CryptoError as exc:
            raise _Refusal(code.INVALID_SIGNATURE, str(exc)) from exc
        if signed.transaction_id != self._txid:
            raise _Refusal(code.INVALID_TRANSACTION_ID, "smdpSigned2 names another transaction")
        if signed.cc_required and req.hash_cc is None:
            raise _Refusal(code.UNDEFINED, "a confirmation code is required, none was given")
        return dppb

    # --- LoadBoundProfilePackage -----------------------------------------------------------

    @property
    def loading(self) -> bool:
        """Whether a bound profile package is being loaded (segments are expected)."""
        return self._bpp is not None and self._bpp.phase != BppPhase.START

    def load_segment(self, segment: bytes, target: InstallTarget) -> bytes:
        """One ES10b.LoadBoundProfilePackage command: b"" to go on, or the DER of the
        ProfileInstallationResult (on the last segment, or on the first failure)."""
        bpp = self._bpp
        if bpp is None or self._txid is None or self._dppb is None:
            return self._result(target, rsp.BppCommandId.INITIALISE_SECURE_CHANNEL,
                                rsp.ErrorReason.INVALID_TRANSACTION_ID,
                                "no prepared download")
        try:
            return self._segment(bpp, segment, target)
        except BppFailure as exc:
            return self._result(target, exc.command, exc.reason, str(exc))

    def _segment(self, bpp: BppLoad, segment: bytes, target: InstallTarget) -> bytes:
        cmd = rsp.BppCommandId
        if bpp.phase == BppPhase.START:
            self._initialise(bpp, segment)
            return b""
        bpp.remaining_total -= len(segment)
        if bpp.remaining_total < 0:
            raise BppFailure(cmd.LOAD_PROFILE_ELEMENTS, rsp.ErrorReason.INCORRECT_INPUT_VALUES,
                             "segments run past the package's length")
        if bpp.phase == BppPhase.CONFIGURE:
            self._configure(bpp, segment)
        elif bpp.phase == BppPhase.METADATA_HEADER:
            bpp.left_in_group = group_length(segment, 0xA1, cmd.STORE_METADATA)
            bpp.phase = BppPhase.METADATA
            if bpp.left_in_group == 0:
                raise BppFailure(cmd.STORE_METADATA, rsp.ErrorReason.INCORRECT_INPUT_VALUES,
                                 "StoreMetadata is empty")
        elif bpp.phase == BppPhase.METADATA:
            self._metadata(bpp, segment)
        elif bpp.phase == BppPhase.AFTER_METADATA:
            if segment[:1] == b"\xa2":
                self._replace_keys(bpp, segment)
            else:
                bpp.left_in_group = group_length(segment, 0xA3, cmd.LOAD_PROFILE_ELEMENTS)
                bpp.phase = BppPhase.PROFILE
        elif bpp.phase == BppPhase.PROFILE:
            self._profile_segment(bpp, segment)
            if bpp.left_in_group == 0:
                return self._finish(bpp, target)
        else:
            raise BppFailure(cmd.LOAD_PROFILE_ELEMENTS, rsp.ErrorReason.INCORRECT_INPUT_VALUES,
                             "the package is complete; no more segments are expected")
        return b""

    def _initialise(self, bpp: BppLoad, segment: bytes) -> None:
        cmd, why = rsp.BppCommandId.INITIALISE_SECURE_CHANNEL, rsp.ErrorReason
        assert self._dppb is not None and self._otsk is not None
        header_len, total = outer_header(segment)
        try:
            isc, signed_part = rsp.InitialiseSecureChannel.decode(segment[header_len:])
        except tlv.TlvError as exc:
            raise BppFailure(cmd, why.INCORRECT_INPUT_VALUES, str(exc)) from exc
        if isc.remote_op != rsp.REMOTE_OP_INSTALL_BPP:
            raise BppFailure(cmd, why.UNSUPPORTED_REMOTE_OPERATION_TYPE,
                             f"remote operation {isc.remote_op}")
        if isc.transaction_id != self._txid:
            raise BppFailure(cmd, why.INVALID_TRANSACTION_ID, "BPP of another transaction")
        if (isc.key_type, isc.key_length) != (rsp.CRT_KEY_TYPE, rsp.CRT_KEY_LENGTH):
            raise BppFailure(cmd, why.UNSUPPORTED_CRT_VALUES,
                             f"key type {isc.key_type:02X} length {isc.key_length}")
        key = self._dppb.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        euicc_otpk = tlv.encode(sgp22.TAG_OTPK, ecka.public_point(self._otsk))
        try:
            signatures.verify(key, signed_part + euicc_otpk, isc.signature)
        except CryptoError as exc:
            raise BppFailure(cmd, why.INVALID_SIGNATURE, str(exc)) from exc
        try:
            secret = ecka.shared_secret(self._otsk, isc.smdp_otpk)
        except CryptoError as exc:
            raise BppFailure(cmd, why.INCORRECT_INPUT_VALUES, str(exc)) from exc
        keys = derive_session_keys(secret, isc.host_id, bytes.fromhex(self.eid))
        bpp.channel = Scp03t(keys)
        bpp.remaining_total = total - (len(segment) - header_len)
        if bpp.remaining_total < 0:
            raise BppFailure(cmd, why.INCORRECT_INPUT_VALUES, "BF36 is shorter than BF23")
        bpp.phase = BppPhase.CONFIGURE

    def _unwrap(self, bpp: BppLoad, item: tlv.Tlv, cmd: rsp.BppCommandId) -> bytes:
        assert bpp.channel is not None
        try:
            return bpp.channel.unwrap(item)[1]
        except Scp03tError as exc:
            reason = (rsp.ErrorReason.SCP03T_SECURITY_ERROR if exc.security
                      else rsp.ErrorReason.SCP03T_STRUCTURE_ERROR)
            raise BppFailure(cmd, reason, str(exc)) from exc

    def _whole_group(self, segment: bytes, tag: int, inner: int, cmd: rsp.BppCommandId
                     ) -> list[tlv.Tlv]:
        try:
            group = tlv.decode_one(segment)
            items = group.children() if group.tag == tag else None
        except tlv.TlvError as exc:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR, str(exc)) from exc
        if items is None or not items or any(i.tag != inner for i in items):
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR,
                             f"expected {tag:X} holding {inner:X} segments")
        return items

    def _configure(self, bpp: BppLoad, segment: bytes) -> None:
        cmd = rsp.BppCommandId.CONFIGURE_ISDP
        data = b"".join(self._unwrap(bpp, i, cmd)
                        for i in self._whole_group(segment, 0xA0, 0x87, cmd))
        try:
            item = tlv.decode_one(data)
        except tlv.TlvError as exc:
            raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES, str(exc)) from exc
        if item.tag != sgp22.TAG_CONFIGURE_ISDP:
            raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES,
                             f"ConfigureISDP expected, got {item.tag:X}")
        bpp.phase = BppPhase.METADATA_HEADER

    def _metadata(self, bpp: BppLoad, segment: bytes) -> None:
        cmd = rsp.BppCommandId.STORE_METADATA
        bpp.left_in_group -= len(segment)
        if bpp.left_in_group < 0:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR,
                             "88 segments run past A1")
        try:
            item = tlv.decode_one(segment)
        except tlv.TlvError as exc:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR, str(exc)) from exc
        bpp.metadata += self._unwrap(bpp, item, cmd)
        if len(bpp.metadata) > MAX_METADATA:
            raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES, "metadata too large")
        if bpp.left_in_group == 0:
            try:
                bpp.store_metadata = rsp.StoreMetadata.decode(bytes(bpp.metadata))
            except tlv.TlvError as exc:
                raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES, str(exc)) from exc
            bpp.phase = BppPhase.AFTER_METADATA

    def _replace_keys(self, bpp: BppLoad, segment: bytes) -> None:
        cmd = rsp.BppCommandId.REPLACE_SESSION_KEYS
        data = b"".join(self._unwrap(bpp, i, cmd)
                        for i in self._whole_group(segment, 0xA2, 0x87, cmd))
        try:
            mcv, enc, mac = rsp.decode_replace_session_keys(data)
        except tlv.TlvError as exc:
            raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES, str(exc)) from exc
        # The profile segments that follow are protected with the replaced keys, block
        # counter starting again at 1.
        bpp.channel = Scp03t(SessionKeys(mcv, enc, mac))

    def _profile_segment(self, bpp: BppLoad, segment: bytes) -> None:
        cmd = rsp.BppCommandId.LOAD_PROFILE_ELEMENTS
        bpp.left_in_group -= len(segment)
        if bpp.left_in_group < 0:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR,
                             "86 segments run past A3")
        try:
            item = tlv.decode_one(segment)
        except tlv.TlvError as exc:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR, str(exc)) from exc
        if item.tag != 0x86:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR,
                             f"expected an 86 segment, got {item.tag:X}")
        bpp.profile += self._unwrap(bpp, item, cmd)
        if len(bpp.profile) > MAX_PROFILE:
            raise BppFailure(cmd, rsp.ErrorReason.INSUFFICIENT_MEMORY, "profile too large")

    def _finish(self, bpp: BppLoad, target: InstallTarget) -> bytes:
        cmd, why = rsp.BppCommandId.LOAD_PROFILE_ELEMENTS, rsp.ErrorReason
        if bpp.remaining_total != 0:
            raise BppFailure(cmd, why.INCORRECT_INPUT_VALUES,
                             f"{bpp.remaining_total} bytes of BF36 were never sent")
        try:
            profile = parse_profile_package(bytes(bpp.profile))
        except tlv.TlvError as exc:
            raise BppFailure(cmd, why.PE_PROCESSING_ERROR, str(exc)) from exc
        metadata = bpp.store_metadata
        assert metadata is not None
        if profile.iccid != metadata.iccid:
            raise BppFailure(cmd, why.DATA_MISMATCH,
                             f"profile ICCID {profile.iccid} differs from metadata "
                             f"{metadata.iccid}")
        if target.iccid_in_use(profile.iccid):
            raise BppFailure(cmd, why.ICCID_ALREADY_EXISTS, f"ICCID {profile.iccid} is installed")
        note = self._notification(target, profile.iccid)
        results: list[bytes] = []

        def result_for(aid: bytes) -> bytes:
            data = rsp.ProfileInstallationResultData(
                self._txid or b"", note, self._smdp_oid(),
                rsp.InstallSuccess(aid, _SIMA_OK)).encode()
            results.append(rsp.ProfileInstallationResult(data, self.identity.sign(data)).encode())
            return results[-1]

        try:
            target.install(profile, metadata, result_for)
        except InstallRefused as exc:
            raise BppFailure(cmd, exc.reason, str(exc)) from exc
        if not results:
            raise BppFailure(cmd, why.UNKNOWN_ERROR, "the card stored no installation result")
        bpp.phase = BppPhase.DONE
        self._end_download()
        return results[-1]

    def _notification(self, target: InstallTarget, iccid: str | None
                      ) -> sgp22.NotificationMetadata:
        return rsp.notification(target.next_sequence_number(), "install",
                                self._server_address or "", iccid)

    def _smdp_oid(self) -> str:
        cert = self._dppb or self._dpauth
        return certs.server_oid(cert) if cert is not None else "0.0"

    def _result(self, target: InstallTarget, command: rsp.BppCommandId,
                reason: rsp.ErrorReason, message: str) -> bytes:
        log.info("profile installation failed at %s: %s (%s)", command.name, reason.name,
                 message)
        iccid = None
        if self._bpp is not None and self._bpp.store_metadata is not None:
            iccid = self._bpp.store_metadata.iccid
        note = self._notification(target, iccid)
        data = rsp.ProfileInstallationResultData(
            self._txid or b"\x00", note, self._smdp_oid(),
            rsp.InstallFailure(command, reason)).encode()
        self._end_download()
        pir = rsp.ProfileInstallationResult(data, self.identity.sign(data)).encode()
        if self._server_address is not None:
            # The SM-DP+ learns of the failure as it would of a success.
            target.keep_notification(pir)
        return pir

    def _end_download(self) -> None:
        # The one-time key and the channel never outlive the package (SGP.22 3.1.3).
        self._otsk = None
        self._bpp = None

    # --- CancelSession ----------------------------------------------------------------------

    def cancel_session(self, request: bytes) -> bytes:
        """ES10b.CancelSession: a signed cancellation of the current transaction, which
        ends the session and drops any partly loaded package."""
        txid, reason = rsp.decode_cancel_session_request(request)
        if reason not in sgp22.CANCEL_SESSION_REASONS:
            raise tlv.TlvError(f"unknown cancel reason {reason}")
        if self._txid is None or txid != self._txid or self._dpauth is None:
            return rsp.CancelSessionResponseError(5).encode()  # invalidTransactionId
        signed = rsp.EuiccCancelSessionSigned(txid, certs.server_oid(self._dpauth),
                                              reason).encode()
        response = rsp.CancelSessionResponseOk(signed, self.identity.sign(signed)).encode()
        log.info("session %s cancelled: %s", txid.hex().upper(),
                 sgp22.CANCEL_SESSION_REASONS[reason])
        self.reset()
        return response

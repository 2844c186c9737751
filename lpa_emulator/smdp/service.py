"""The SM-DP+'s ES9+ functions, independent of HTTP (SGP.22 5.6).

:class:`Smdp` takes a function's JSON request body (already parsed) and returns its
JSON response body, or raises :class:`Es9StatusError` with the SGP.22 status code. Binary values
travel as base64 of their DER, the transaction id as hex, as ES9+ prescribes. Every
length, encoding and structure in a request is checked before use.

Sessions live in memory (:class:`SessionTable`: bounded, so unauthenticated callers
cannot fill it), keyed by transaction id, each behind its own lock: calls for one
transaction run one after another, different downloads run side by side. Orders
are claimed with compare-and-set updates in :class:`OrderStore`, so two sessions never
bind the same profile.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.bpp import BindingInput, bind_profile
from lpa_emulator.smdp.client_auth import verify_euicc
from lpa_emulator.smdp.credentials import ServerKeys, SmdpCredentials
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.fields import (
    b64,
    binary_field,
    decoded,
    ec_key,
    text_field,
    transaction_id_field,
)
from lpa_emulator.smdp.orders import Order, OrderState, OrderStore
from lpa_emulator.smdp.report import InstallationReport, Reporter
from lpa_emulator.smdp.session import Session, SessionTable
from mps_common.errors import ConfigError
from mps_esim import sgp22
from mps_esim.crypto import certs, signatures
from mps_esim.crypto.errors import CryptoError
from mps_esim.sgp22 import rsp
from mps_esim.sgp22.saip import ProfileContent, build_profile_package

log = logging.getLogger(__name__)

__all__ = ["FUNCTIONS", "MAX_CC_FAILURES", "SUPPORTED_SVN_MAJOR", "Smdp", "SmdpCredentials"]
_T = TypeVar("_T")

FUNCTIONS = ("initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
             "handleNotification", "cancelSession")
SUPPORTED_SVN_MAJOR = 2
MAX_CC_FAILURES = 3


class Smdp:
    """An SM-DP+: ES9+ functions over the order store, with real SGP.22 cryptography.

    ``address`` is the SM-DP+ address as it appears in activation codes (``host`` or
    ``host:port``); requests naming another address are refused. ``session_ttl`` is an
    authenticated session's lifetime, ``pending_ttl`` an unauthenticated one's (see
    :class:`SessionTable` for the limits).
    """

    def __init__(self, *, address: str, credentials: SmdpCredentials, orders: OrderStore,
                 reporter: Reporter | None = None, session_ttl: float = 600.0,
                 max_sessions: int = 10_000, clock: Callable[[], float] = time.time,
                 replace_session_keys: bool = False, pending_ttl: float = 30.0,
                 max_pending_per_client: int = 64) -> None:
        if not address or len(address) > sgp22.MAX_ADDRESS or "/" in address or " " in address:
            raise ConfigError(f"SM-DP+ address {address!r} is not a host[:port]")
        self.address = address
        self.credentials = credentials
        self.orders = orders
        self.reporter = reporter
        self.replace_session_keys = replace_session_keys
        self._clock = clock
        self.sessions = SessionTable(clock=clock, ttl=session_ttl, pending_ttl=pending_ttl,
                                     max_sessions=max_sessions,
                                     max_pending_per_client=max_pending_per_client)
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"sessions": 0, "bound": 0, "installed": 0, "failed": 0}
        self.on_finished: Callable[[], None] | None = None
        """Called after an installation result was recorded (the ES12 event deleter)."""
        self.packages: dict[str, bytes] = {}
        """Profile packages made by another profile creator, by ICCID: bound as they are
        instead of one built from the order."""

    # --- sessions ------------------------------------------------------------------------

    @property
    def session_ttl(self) -> float:
        return self.sessions.ttl

    @property
    def max_sessions(self) -> int:
        return self.sessions.max_sessions

    @max_sessions.setter
    def max_sessions(self, value: int) -> None:
        self.sessions.max_sessions = value

    def _new_session(self, euicc_challenge: bytes, keys: ServerKeys, ci_pkid: bytes,
                     client: str | None) -> Session:
        session = self.sessions.open(euicc_challenge, keys, ci_pkid, client=client)
        with self._lock:
            self.stats["sessions"] += 1
        return session

    def _session(self, txid: bytes) -> Session:
        return self.sessions.get(txid)

    def _end(self, session: Session) -> None:
        self.sessions.end(session)

    @property
    def session_count(self) -> int:
        return len(self.sessions)

    # --- dispatch ------------------------------------------------------------------------

    def call(self, function: str, body: Mapping[str, Any], *, client: str | None = None
             ) -> dict[str, Any] | None:
        """Run the ES9+ ``function`` on a parsed request body; None means no content.
        ``client`` is the caller's address, which bounds its unauthenticated sessions."""
        if function == "initiateAuthentication":
            return self.initiate_authentication(body, client=client)
        handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any] | None]] = {
            "authenticateClient": self.authenticate_client,
            "getBoundProfilePackage": self.get_bound_profile_package,
            "handleNotification": self.handle_notification,
            "cancelSession": self.cancel_session,
        }
        handler = handlers.get(function)
        if handler is None:
            raise Es9StatusError(st.MALFORMED, f"unknown ES9+ function {function!r}")
        return handler(body)

    # --- initiateAuthentication -------------------------------------------------------------

    def initiate_authentication(self, body: Mapping[str, Any], *,
                                client: str | None = None) -> dict[str, Any]:
        """ES9+.InitiateAuthentication: serverSigned1 signed with SK.DPauth."""
        address = text_field(body, "smdpAddress", max_length=sgp22.MAX_ADDRESS)
        challenge = binary_field(body, "euiccChallenge")
        if len(challenge) != sgp22.CHALLENGE_SIZE:
            raise Es9StatusError(st.MALFORMED, "euiccChallenge must be 16 bytes")
        info1 = decoded(rsp.decode_euicc_info1, binary_field(body, "euiccInfo1"), "euiccInfo1")
        if address.lower() != self.address.lower():
            raise Es9StatusError(st.INVALID_ADDRESS,
                                 f"this SM-DP+ is {self.address}, not {address}")
        if info1.svn.split(".")[0] != str(SUPPORTED_SVN_MAJOR):
            raise Es9StatusError(st.UNSUPPORTED_VERSION, f"eUICC SVN {info1.svn} is not 2.x")
        chosen = self.credentials.select(info1.ci_pkids_verification, info1.ci_pkids_signing)
        if chosen == "signing":
            raise Es9StatusError(st.UNSUPPORTED_SECURITY,
                           "the eUICC signs under no CI this SM-DP+ knows")
        if isinstance(chosen, str):
            raise Es9StatusError(st.NO_DPAUTH_FOR_CI, "the eUICC cannot verify CERT.DPauth")
        keys, ci_pkid = chosen
        session = self._new_session(challenge, keys, ci_pkid, client)
        signed = rsp.ServerSigned1(session.txid, challenge, self.address,
                                   session.server_challenge).encode()
        signature = signatures.sign_object(keys.dpauth.key, signed)
        log.info("session %s: initiated", session.txid_hex)
        return {"transactionId": session.txid_hex, "serverSigned1": b64(signed),
                "serverSignature1": b64(signature),
                "euiccCiPKIdToBeUsed": b64(bytes((0x04, len(ci_pkid))) + ci_pkid),
                "serverCertificate": b64(keys.dpauth.cert_der)}

    # --- authenticateClient -------------------------------------------------------------------

    def authenticate_client(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ES9+.AuthenticateClient: check the eUICC and its order, answer smdpSigned2."""
        txid = transaction_id_field(body)
        response = decoded(rsp.decode_authenticate_server_response,
                           binary_field(body, "authenticateServerResponse"),
                           "authenticateServerResponse")
        session = self._session(txid)
        with session.lock:
            if session.step != "initiated":
                raise Es9StatusError(st.UNKNOWN_TRANSACTION,
                               f"transaction {session.txid_hex} is past authentication")
            if isinstance(response, rsp.AuthenticateResponseError):
                self._end(session)
                raise Es9StatusError(st.EUICC_SIGNATURE, f"the eUICC refused the server "
                               f"(authenticateErrorCode {response.code})")
            result = self._authenticate(session, response)
        return result

    def _authenticate(self, session: Session, response: rsp.AuthenticateResponseOk
                      ) -> dict[str, Any]:
        signed, euicc, eid = verify_euicc(
            response, txid=session.txid, server_challenge=session.server_challenge,
            address=self.address, cis=self.credentials.cis, ci_pkid=session.ci_pkid)
        order = self._order_for(signed.ctx_params1.matching_id, eid)
        if not self.orders.claim(order.matching_id, eid, session.txid_hex):
            raise Es9StatusError(st.MATCHING_ID_REFUSED,
                           "the order is being downloaded by another eUICC")
        smdp_signed2 = rsp.SmdpSigned2(session.txid, order.cc_required).encode()
        signature2 = signatures.sign_object(
            session.keys.dppb.key,
            smdp_signed2 + signatures.signature_object(response.euicc_signature1))
        metadata = self._metadata(order)
        self.sessions.authenticated(session, eid)
        session.euicc_cert = euicc
        session.euicc_cert_der, session.eum_cert_der = (response.euicc_certificate,
                                                        response.eum_certificate)
        session.matching_id, session.smdp_signature2 = order.matching_id, signature2
        session.step = "authenticated"
        log.info("session %s: eUICC %s authenticated for order %s", session.txid_hex, eid,
                 order.matching_id)
        return {"transactionId": session.txid_hex, "profileMetadata": b64(metadata),
                "smdpSigned2": b64(smdp_signed2), "smdpSignature2": b64(signature2),
                "smdpCertificate": b64(session.keys.dppb.cert_der)}

    def _order_for(self, matching_id: str | None, eid: str) -> Order:
        if not matching_id:
            # The eUICC came to its default SM-DP+ (no activation code): the order is the
            # one made for its EID (SGP.22 3.1.2, "default SM-DP+ address").
            order = self.orders.for_eid(eid)
            if order is None:
                raise Es9StatusError(st.MATCHING_ID_REFUSED,
                                     f"no matching id, and no order waits for EID {eid}")
            return self._check_order(order, eid)
        order = self.orders.get(matching_id)
        if order is None:
            raise Es9StatusError(st.MATCHING_ID_REFUSED, "unknown matching id")
        return self._check_order(order, eid)

    def _check_order(self, order: Order, eid: str) -> Order:
        if order.eid is not None and order.eid != eid:
            if order.eid_fixed:
                raise Es9StatusError(st.EID_REFUSED,
                                     f"the order belongs to another EID than {eid}")
            raise Es9StatusError(st.MATCHING_ID_REFUSED,
                                 "the order is being downloaded by another eUICC")
        if order.expires_at is not None and self._clock() > order.expires_at:
            raise Es9StatusError(st.ORDER_EXPIRED)
        if order.state is OrderState.ERROR or order.attempts >= order.max_attempts:
            raise Es9StatusError(st.ORDER_RETRIES)
        if order.state is OrderState.INSTALLED:
            raise Es9StatusError(st.PROFILE_NOT_RELEASED, "the profile is installed already")
        return order

    def _metadata(self, order: Order) -> bytes:
        # Enabling, disabling and deleting the profile are reported back to this SM-DP+.
        reported = sgp22.NotificationConfig(frozenset({"enable", "disable", "delete"}),
                                            self.address)
        return rsp.StoreMetadata(order.iccid, order.service_provider, order.profile_name,
                                 notifications=(reported,)).encode()

    # --- getBoundProfilePackage -----------------------------------------------------------

    def get_bound_profile_package(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ES9+.GetBoundProfilePackage: check euiccSigned2 (and hashCc), bind the profile."""
        txid = transaction_id_field(body)
        response = decoded(rsp.decode_prepare_download_response,
                           binary_field(body, "prepareDownloadResponse"),
                           "prepareDownloadResponse")
        session = self._session(txid)
        with session.lock:
            return self._bind(session, response)

    def _bind(self, session: Session, response: rsp.PrepareDownloadResponse
              ) -> dict[str, Any]:
        if session.step not in ("authenticated", "bound"):
            raise Es9StatusError(st.UNKNOWN_TRANSACTION,
                           f"transaction {session.txid_hex} is not authenticated")
        if isinstance(response, rsp.PrepareDownloadResponseError):
            self._fail(session, f"downloadErrorCode {response.code}")
            raise Es9StatusError(st.EUICC_SIGNATURE,
                           f"the eUICC refused PrepareDownload ({response.code})")
        signed = decoded(rsp.EuiccSigned2.decode, response.euicc_signed2, "euiccSigned2")
        assert session.euicc_cert is not None
        try:
            signatures.verify(ec_key(session.euicc_cert),
                              response.euicc_signed2 + session.smdp_signature2,
                              response.euicc_signature2)
        except CryptoError as exc:
            raise Es9StatusError(st.EUICC_SIGNATURE, f"euiccSignature2: {exc}") from exc
        if signed.transaction_id != session.txid:
            raise Es9StatusError(st.UNKNOWN_TRANSACTION, "euiccSigned2 names another transaction")
        if session.step == "bound":
            # A retried call with the same one-time key gets the same package back.
            if signed.euicc_otpk == session.euicc_otpk and session.bpp is not None:
                return self._bpp_answer(session)
            raise Es9StatusError(st.BPP_REBINDING, "the package was bound to another one-time key")
        assert session.matching_id is not None and session.eid is not None
        order = self.orders.get(session.matching_id)
        if order is None or order.txid != session.txid_hex:
            self._end(session)
            raise Es9StatusError(st.MATCHING_ID_REFUSED,
                                 "the order was taken over by another session")
        self._check_confirmation_code(session, order, signed.hash_cc)
        profile = self.packages.get(order.iccid) or build_profile_package(ProfileContent(
            iccid=order.iccid, imsi=order.imsi, ki=order.ki, opc=order.opc,
            msisdn=order.msisdn, service_provider=order.service_provider))
        try:
            bpp = bind_profile(BindingInput(
                transaction_id=session.txid, euicc_otpk=signed.euicc_otpk,
                eid=bytes.fromhex(session.eid), metadata=self._metadata(order),
                profile=profile, dppb_key=session.keys.dppb.key,
                smdp_oid=self.credentials.oid,
                replace_session_keys=self.replace_session_keys))
        except CryptoError as exc:
            raise Es9StatusError(st.EUICC_SIGNATURE, f"euiccOtpk is unusable: {exc}") from exc
        if not self.orders.mark_downloaded(order.matching_id, session.txid_hex):
            self._end(session)
            raise Es9StatusError(st.MATCHING_ID_REFUSED,
                                 "the order was taken over by another session")
        session.euicc_otpk, session.bpp, session.step = signed.euicc_otpk, bpp, "bound"
        self.stats["bound"] += 1
        log.info("session %s: profile %s bound (%d bytes)", session.txid_hex, order.iccid,
                 len(bpp))
        return self._bpp_answer(session)

    def _bpp_answer(self, session: Session) -> dict[str, Any]:
        assert session.bpp is not None
        return {"transactionId": session.txid_hex, "boundProfilePackage": b64(session.bpp)}

    def _check_confirmation_code(self, session: Session, order: Order,
                                 hash_cc: bytes | None) -> None:
        if order.cc_digest is None:
            return
        if hash_cc is None:
            raise Es9StatusError(st.CC_MISSING)
        expected = hashlib.sha256(order.cc_digest + session.txid).digest()
        if hmac.compare_digest(expected, hash_cc):
            return
        failures = self.orders.cc_failed(order.matching_id, MAX_CC_FAILURES)
        if failures >= MAX_CC_FAILURES:
            self._end(session)
            raise Es9StatusError(st.CC_RETRIES)
        raise Es9StatusError(st.CC_REFUSED, f"wrong confirmation code ({failures} of "
                       f"{MAX_CC_FAILURES} attempts used)")

    # --- handleNotification ---------------------------------------------------------------

    def handle_notification(self, body: Mapping[str, Any]) -> None:
        """ES9+.HandleNotification: record a signed installation result (no content back).

        Notifications that do not verify are logged and dropped: the eUICC keeps them
        until it is told they arrived, and a forged one must change nothing.
        """
        der = binary_field(body, "pendingNotification")
        note = decoded(rsp.decode_pending_notification, der, "pendingNotification")
        if isinstance(note, rsp.OtherSignedNotification):
            self._other_notification(note)
            return
        data = note.data
        session = self.sessions.find(data.transaction_id)
        if session is None or session.euicc_cert is None:
            log.warning("installation result for unknown transaction %s dropped",
                        data.transaction_id.hex().upper())
            return
        with session.lock:
            self._installation_result(session, note, data)

    def _installation_result(self, session: Session, note: rsp.ProfileInstallationResult,
                             data: rsp.ProfileInstallationResultData) -> None:
        assert session.euicc_cert is not None and session.eid is not None
        try:
            signatures.verify(ec_key(session.euicc_cert), note.data_der, note.signature)
        except CryptoError as exc:
            log.warning("session %s: installation result with a bad signature dropped: %s",
                        session.txid_hex, exc)
            return
        if data.smdp_oid != self.credentials.oid:
            log.warning("session %s: installation result names SM-DP+ %s, dropped",
                        session.txid_hex, data.smdp_oid)
            return
        order = self.orders.get(session.matching_id or "")
        if order is None:
            self._end(session)
            return
        if isinstance(data.result, rsp.InstallSuccess):
            if data.notification.iccid not in (None, order.iccid):
                log.warning("session %s: eUICC reports ICCID %s, the order is %s",
                            session.txid_hex, data.notification.iccid, order.iccid)
                return
            done = self.orders.installed(order.matching_id, session.txid_hex, session.eid)
            result, reason = "installed", None
            self.stats["installed"] += 1
        else:
            done = self.orders.release(order.matching_id, session.txid_hex)
            result = "failed"
            try:
                reason = rsp.ErrorReason(data.result.reason).name.lower()
            except ValueError:
                reason = f"reason-{data.result.reason}"
            self.stats["failed"] += 1
        self._end(session)
        log.info("session %s: EID %s %s ICCID %s%s", session.txid_hex, session.eid,
                 result, order.iccid, f" ({reason})" if reason else "")
        if done and self.on_finished is not None:
            self.on_finished()
        if done and self.reporter is not None:
            self.reporter.report(InstallationReport(
                eid=session.eid, iccid=order.iccid, imsi=order.imsi, msisdn=order.msisdn,
                result=result, transaction=session.txid_hex, matching_id=order.matching_id,
                smdp=self.address, ts=int(time.time() * 1000), pir=note.encode(),
                euicc_certificate=session.euicc_cert_der,
                eum_certificate=session.eum_cert_der, reason=reason))

    def _other_notification(self, note: rsp.OtherSignedNotification) -> None:
        try:
            euicc = certs.load_der(note.euicc_certificate, "euicc")
            eum = certs.load_der(note.eum_certificate, "eum")
            eid = certs.verify_euicc_chain(euicc, eum, self.credentials.cis, at=certs.now())
            signatures.verify(ec_key(euicc), note.tbs_der, note.signature)
        except CryptoError as exc:
            log.warning("notification with an unverifiable signature dropped: %s", exc)
            return
        meta = note.metadata
        log.info("eUICC %s: %s of ICCID %s", eid, meta.operation, meta.iccid)

    # --- cancelSession --------------------------------------------------------------------

    def cancel_session(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ES9+.CancelSession: end the download; the order can be downloaded again."""
        txid = transaction_id_field(body)
        response = decoded(rsp.decode_cancel_session_response,
                           binary_field(body, "cancelSessionResponse"), "cancelSessionResponse")
        session = self._session(txid)
        with session.lock:
            if isinstance(response, rsp.CancelSessionResponseError):
                # The eUICC had no session to cancel: the server's ends all the same.
                self._fail(session, f"cancelled, eUICC error {response.code}")
                return {}
            signed = decoded(rsp.EuiccCancelSessionSigned.decode, response.signed_der,
                             "euiccCancelSessionSigned")
            if session.euicc_cert is not None:
                try:
                    signatures.verify(ec_key(session.euicc_cert), response.signed_der,
                                      response.signature)
                except CryptoError as exc:
                    raise Es9StatusError(st.EUICC_SIGNATURE, f"cancel signature: {exc}") from exc
            if signed.transaction_id != session.txid:
                raise Es9StatusError(st.UNKNOWN_TRANSACTION, "the cancellation names another "
                               "transaction")
            if signed.smdp_oid != self.credentials.oid:
                raise Es9StatusError(st.INVALID_OID, f"the cancellation names SM-DP+ "
                               f"{signed.smdp_oid}")
            try:
                reason = rsp.CancelSessionReason(signed.reason).name.lower()
            except ValueError:
                reason = str(signed.reason)
            self._fail(session, f"cancelled by the LPA ({reason})")
        return {}

    def _fail(self, session: Session, why: str) -> None:
        if session.matching_id is not None:
            self.orders.release(session.matching_id, session.txid_hex)
        self._end(session)
        log.info("session %s: ended: %s", session.txid_hex, why)


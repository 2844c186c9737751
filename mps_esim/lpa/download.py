"""The LPA's profile download (SGP.22 3.1.2, 3.1.3) and notification handling (3.5).

:class:`ProfileDownloader` drives one download between an eUICC (through :class:`Es10b`,
the ES10b functions it needs) and an SM-DP+ (through :class:`~mps_esim.lpa.es9.Es9`):

1. GetEUICCChallenge, GetEUICCInfo1 -> ES9+ initiateAuthentication;
2. AuthenticateServer -> ES9+ authenticateClient;
3. PrepareDownload (with the confirmation code's hash) -> ES9+ getBoundProfilePackage;
4. LoadBoundProfilePackage, one ES10b command per segment, until the eUICC answers its
   ProfileInstallationResult;
5. ES9+ handleNotification with that result, then NotificationSent on the eUICC.

When the SM-DP+ or the eUICC refuses a step after the eUICC has a session, the driver
cancels it on both sides (ES10b.CancelSession, then ES9+ cancelSession with the eUICC's
signed answer) before raising. A failure to talk to the card itself ends the download at
once: the eUICC drops a partial package, and the next attempt starts from the challenge.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, TypeVar

from mps_common import logs
from mps_common.record import record
from mps_esim import sgp22, tlv
from mps_esim.errors import EsimError
from mps_esim.lpa.es9 import (
    AuthenticateClientResponse,
    Es9,
    Es9Error,
    Es9FunctionError,
    InitiateAuthenticationResponse,
)
from mps_esim.lpa.es10b import Es10b, Es10bOverStoreData, Es10Transport
from mps_esim.sgp22 import rsp
from mps_esim.sgp22.der import expect

if TYPE_CHECKING:  # SM-DS discovery only: a download by activation code never loads it
    from mps_esim.lpa.es11 import Es11Client, EventEntry

log = logs.get(__name__)
_T = TypeVar("_T")

__all__ = [
    "CardRefusedError", "CardUnavailableError", "ConfirmationCodeRequiredError",
    "DownloadDeclinedError", "DownloadError", "DownloadProgress", "DownloadResult", "Es10Transport",
    "Es10b", "Es10bOverStoreData", "InstallationFailedError", "NotificationOutcome",
    "ProfileDownloader", "Progress", "ServerRefusedError", "Stage", "default_device_info",
    "process_notifications",
]


class Stage(enum.StrEnum):
    """Steps of a download, as progress reports and errors name them."""

    CHALLENGE = "challenge"
    INITIATE = "initiate-authentication"
    AUTHENTICATE_SERVER = "authenticate-server"
    AUTHENTICATE_CLIENT = "authenticate-client"
    PREPARE = "prepare-download"
    GET_BPP = "get-bound-profile-package"
    LOAD = "load-bound-profile-package"
    NOTIFY = "handle-notification"
    DONE = "done"


@record
class DownloadProgress:
    """A progress report of a download: the stage, and for loading, segments done of total."""

    stage: Stage
    done: int = 0
    total: int = 0


Progress = DownloadProgress
"""The name the agent imports :class:`DownloadProgress` under."""


class DownloadError(EsimError):
    """Root of the download's errors; ``stage`` is where it failed."""

    def __init__(self, message: str, *, stage: Stage) -> None:
        super().__init__(message)
        self.stage = stage


class ServerRefusedError(DownloadError):
    """The SM-DP+ refused a function; ``subject``/``reason`` are its SGP.22 status code."""

    def __init__(self, error: Es9FunctionError, *, stage: Stage) -> None:
        super().__init__(str(error), stage=stage)
        self.subject = error.subject
        self.reason = error.reason


class CardRefusedError(DownloadError):
    """The eUICC refused a function with an error code (``code``) of its response."""

    def __init__(self, message: str, *, stage: Stage, code: int | None = None) -> None:
        super().__init__(message, stage=stage)
        self.code = code


class CardUnavailableError(DownloadError, ConnectionError):
    """The eUICC could not be talked to (removed, reset, transport failure)."""


class InstallationFailedError(DownloadError):
    """The eUICC loaded the package and reported a failed installation."""

    def __init__(self, message: str, *, command: int, reason: int) -> None:
        super().__init__(message, stage=Stage.LOAD)
        self.command = command
        self.reason = reason


class ConfirmationCodeRequiredError(DownloadError):
    """The order needs a confirmation code and none was given."""


class DownloadDeclinedError(DownloadError):
    """The profile metadata was shown and the download declined."""


@record
class DownloadResult:
    """A finished download."""

    iccid: str
    aid: bytes
    service_provider: str
    profile_name: str
    transaction_id: str
    notification_sent: bool
    seconds: float


@record
class NotificationOutcome:
    """What :func:`process_notifications` did with one pending notification."""

    seq_number: int
    address: str
    operation: str
    sent: bool
    removed: bool
    error: str | None = None


def default_device_info() -> rsp.DeviceInfo:
    """DeviceInfo for an LTE device: TAC only, capabilities naming E-UTRAN release 13."""
    # deviceCapabilities: eutranEpcSupportedRelease [5] = 13.0.0
    return rsp.DeviceInfo(tac=bytes.fromhex("35290611"), capabilities=bytes.fromhex("85030D0000"))


class ProfileDownloader:
    """Downloads profiles onto one eUICC.

    ``es9_for`` gives the ES9+ client for an SM-DP+ address. ``progress`` is called at each
    stage (and per loaded segment). ``confirm`` sees the profile metadata before the
    package is fetched and may decline it.
    """

    def __init__(self, card: Es10b, es9_for: Callable[[str], Es9], *,
                 device_info: rsp.DeviceInfo | None = None,
                 progress: Callable[[DownloadProgress], None] | None = None,
                 confirm: Callable[[rsp.StoreMetadata], bool] | None = None) -> None:
        self.card = card
        self._es9_for = es9_for
        self.device_info = device_info or default_device_info()
        self._progress = progress
        self._confirm = confirm

    def _report(self, stage: Stage, done: int = 0, total: int = 0) -> None:
        if self._progress is not None:
            self._progress(DownloadProgress(stage, done, total))

    def _card(self, stage: Stage, call: Callable[[], bytes]) -> bytes:
        try:
            return call()
        except Exception as exc:
            # Whatever the transport raises (status word, I/O, a vanished reader), the card
            # is out of this download.
            raise CardUnavailableError(f"the eUICC failed at {stage.value}: {exc}",
                                       stage=stage) from exc

    def download(self, address: str, matching_id: str | None, *,
                 confirmation_code: str | None = None) -> DownloadResult:
        """Download and install the profile ``matching_id`` from the SM-DP+ ``address``."""
        started = time.monotonic()
        es9 = self._es9(Stage.INITIATE, lambda: self._es9_for(address))
        init = self._initiate(es9, address)
        txid = init.transaction_id
        auth_der = self._authenticate_server(es9, init, matching_id)
        client, metadata, hash_cc = self._authenticate_client(es9, txid, auth_der,
                                                              confirmation_code)
        prep_der = self._prepare(es9, txid, client, hash_cc)
        result_der, data = self._install(self._get_bpp(es9, txid, prep_der))
        self._report(Stage.NOTIFY)
        sent = self._send_notification(es9, result_der, data.notification.seq)
        if isinstance(data.result, rsp.InstallFailure):
            raise InstallationFailedError(
                f"the eUICC did not install the profile: "
                f"{_code_name(rsp.ErrorReason, data.result.reason)} at "
                f"{_code_name(rsp.BppCommandId, data.result.command)}",
                command=data.result.command, reason=data.result.reason)
        self._report(Stage.DONE)
        return DownloadResult(metadata.iccid, data.result.aid, metadata.service_provider,
                              metadata.profile_name, txid.hex().upper(), sent,
                              time.monotonic() - started)

    def discover(self, es11: Es11Client, address: str) -> tuple[EventEntry, ...]:
        """SM-DS event retrieval (SGP.22 3.6.3): the events waiting for this eUICC at the
        SM-DS ``address``, after mutual authentication without a matching id."""
        init = self._initiate(es11, address)
        auth_der = self._authenticate_server(es11, init, None)
        self._report(Stage.AUTHENTICATE_CLIENT)
        events = self._es9(Stage.AUTHENTICATE_CLIENT,
                           lambda: es11.events(init.transaction_id, auth_der))
        self._report(Stage.DONE)
        return events

    def _initiate(self, es9: Es9, address: str) -> InitiateAuthenticationResponse:
        """GetEUICCChallenge and GetEUICCInfo1, then ES9+ initiateAuthentication, checked."""
        self._report(Stage.CHALLENGE)
        challenge_der = self._card(Stage.CHALLENGE, self.card.get_euicc_challenge)
        info1 = self._card(Stage.CHALLENGE, self.card.get_euicc_info1)
        try:
            challenge = rsp.decode_euicc_challenge(challenge_der)
        except tlv.TlvError as exc:
            raise CardRefusedError(f"malformed challenge: {exc}", stage=Stage.CHALLENGE) from exc
        self._report(Stage.INITIATE)
        init = self._es9(Stage.INITIATE, lambda: es9.initiate_authentication(
            address, challenge, info1))
        try:
            server_signed1 = rsp.ServerSigned1.decode(init.server_signed1)
        except tlv.TlvError as exc:
            raise DownloadError(f"malformed initiateAuthentication answer: {exc}",
                                stage=Stage.INITIATE) from exc
        if server_signed1.server_address.lower() != address.lower():
            raise DownloadError(f"the SM-DP+ signed address {server_signed1.server_address}, "
                                f"not {address}", stage=Stage.INITIATE)
        if server_signed1.transaction_id != init.transaction_id:
            raise DownloadError("serverSigned1 names another transaction", stage=Stage.INITIATE)
        return init

    def _authenticate_server(self, es9: Es9, init: InitiateAuthenticationResponse,
                             matching_id: str | None) -> bytes:
        """ES10b.AuthenticateServer: the eUICC's signed answer (DER) for the SM-DP+."""
        try:
            ci_pkid = _octet_string(init.ci_pkid)
            signature1 = _signature(init.server_signature1)
        except tlv.TlvError as exc:
            raise DownloadError(f"malformed initiateAuthentication answer: {exc}",
                                stage=Stage.INITIATE) from exc
        self._report(Stage.AUTHENTICATE_SERVER)
        request = rsp.AuthenticateServerRequest(
            init.server_signed1, signature1, ci_pkid, init.server_certificate,
            rsp.CtxParams1(self.device_info, matching_id)).encode()
        auth_der = self._card(Stage.AUTHENTICATE_SERVER,
                              lambda: self.card.authenticate_server(request))
        try:
            auth = rsp.decode_authenticate_server_response(auth_der)
        except tlv.TlvError as exc:
            raise CardRefusedError(f"malformed AuthenticateServer answer: {exc}",
                                   stage=Stage.AUTHENTICATE_SERVER) from exc
        if isinstance(auth, rsp.AuthenticateResponseError):
            self._tell_server(lambda: es9.authenticate_client(init.transaction_id, auth_der))
            raise CardRefusedError(f"the eUICC refused the SM-DP+: "
                                   f"{_code_name(rsp.AuthenticateErrorCode, auth.code)}",
                                   stage=Stage.AUTHENTICATE_SERVER, code=auth.code)
        return auth_der

    def _authenticate_client(self, es9: Es9, txid: bytes, auth_der: bytes,
                             confirmation_code: str | None
                             ) -> tuple[AuthenticateClientResponse, rsp.StoreMetadata,
                                        bytes | None]:
        """ES9+ authenticateClient: its answer, the profile metadata (confirmed when asked)
        and the hashed confirmation code when the order needs one."""
        self._report(Stage.AUTHENTICATE_CLIENT)
        client = self._with_cancel(es9, txid, Stage.AUTHENTICATE_CLIENT,
                                   lambda: es9.authenticate_client(txid, auth_der))
        try:
            metadata = rsp.StoreMetadata.decode(client.profile_metadata)
            smdp_signed2 = rsp.SmdpSigned2.decode(client.smdp_signed2)
            _signature(client.smdp_signature2)
        except tlv.TlvError as exc:
            self._cancel(es9, txid, rsp.CancelSessionReason.UNDEFINED)
            raise DownloadError(f"malformed authenticateClient answer: {exc}",
                                stage=Stage.AUTHENTICATE_CLIENT) from exc
        if self._confirm is not None and not self._confirm(metadata):
            self._cancel(es9, txid, rsp.CancelSessionReason.END_USER_REJECTION)
            raise DownloadDeclinedError(f"download of {metadata.iccid} declined",
                                        stage=Stage.AUTHENTICATE_CLIENT)
        if not smdp_signed2.cc_required:
            return client, metadata, None
        if not confirmation_code:
            self._cancel(es9, txid, rsp.CancelSessionReason.POSTPONED)
            raise ConfirmationCodeRequiredError("this profile needs a confirmation code",
                                                stage=Stage.PREPARE)
        # hashlib only for the orders that need it.
        from mps_esim.crypto.confirmation import confirmation_code_hash

        return client, metadata, confirmation_code_hash(confirmation_code, txid)

    def _prepare(self, es9: Es9, txid: bytes, client: AuthenticateClientResponse,
                 hash_cc: bytes | None) -> bytes:
        """ES10b.PrepareDownload: the eUICC's signed answer (DER) for the SM-DP+."""
        self._report(Stage.PREPARE)
        prepare = rsp.PrepareDownloadRequest(client.smdp_signed2,
                                             _signature(client.smdp_signature2),
                                             client.smdp_certificate, hash_cc).encode()
        prep_der = self._card(Stage.PREPARE, lambda: self.card.prepare_download(prepare))
        try:
            prep = rsp.decode_prepare_download_response(prep_der)
        except tlv.TlvError as exc:
            self._cancel(es9, txid, rsp.CancelSessionReason.UNDEFINED)
            raise CardRefusedError(f"malformed PrepareDownload answer: {exc}",
                                   stage=Stage.PREPARE) from exc
        if isinstance(prep, rsp.PrepareDownloadResponseError):
            self._tell_server(lambda: es9.get_bound_profile_package(txid, prep_der))
            raise CardRefusedError(f"the eUICC refused PrepareDownload: "
                                   f"{_code_name(rsp.DownloadErrorCode, prep.code)}",
                                   stage=Stage.PREPARE, code=prep.code)
        return prep_der

    def _get_bpp(self, es9: Es9, txid: bytes, prep_der: bytes) -> rsp.BoundProfilePackage:
        """ES9+ getBoundProfilePackage: the package, checked to belong to ``txid``."""
        self._report(Stage.GET_BPP)
        bpp_der = self._with_cancel(es9, txid, Stage.GET_BPP,
                                    lambda: es9.get_bound_profile_package(txid, prep_der))
        try:
            bpp = rsp.BoundProfilePackage.decode(bpp_der)
            isc, _signed = rsp.InitialiseSecureChannel.decode(bpp.initialise_secure_channel)
        except tlv.TlvError as exc:
            self._cancel(es9, txid, rsp.CancelSessionReason.LOAD_BPP_EXECUTION_ERROR)
            raise DownloadError(f"malformed bound profile package: {exc}",
                                stage=Stage.GET_BPP) from exc
        if isc.transaction_id != txid:
            self._cancel(es9, txid, rsp.CancelSessionReason.LOAD_BPP_EXECUTION_ERROR)
            raise DownloadError("the package belongs to another transaction",
                                stage=Stage.GET_BPP)
        return bpp

    def _install(self, bpp: rsp.BoundProfilePackage
                 ) -> tuple[bytes, rsp.ProfileInstallationResultData]:
        """Load the package: the eUICC's ProfileInstallationResult (DER) and its data."""
        result_der = self._load(bpp)
        try:
            return result_der, rsp.ProfileInstallationResult.decode(result_der).data
        except tlv.TlvError as exc:
            raise CardRefusedError(f"malformed ProfileInstallationResult: {exc}",
                                   stage=Stage.LOAD) from exc

    def _load(self, bpp: rsp.BoundProfilePackage) -> bytes:
        segments = bpp.segments()
        for number, segment in enumerate(segments, 1):
            self._report(Stage.LOAD, number - 1, len(segments))
            answer = self._card(Stage.LOAD,
                                functools.partial(self.card.load_bound_profile_package, segment))
            if answer:
                self._report(Stage.LOAD, len(segments), len(segments))
                return answer
        raise CardRefusedError("the eUICC gave no installation result after the last segment",
                               stage=Stage.LOAD)

    def _es9(self, stage: Stage, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except Es9FunctionError as exc:
            raise ServerRefusedError(exc, stage=stage) from exc
        except Es9Error as exc:
            raise DownloadError(str(exc), stage=stage) from exc

    def _with_cancel(self, es9: Es9, txid: bytes, stage: Stage, call: Callable[[], _T]
                     ) -> _T:
        try:
            return self._es9(stage, call)
        except DownloadError:
            self._cancel(es9, txid, rsp.CancelSessionReason.UNDEFINED)
            raise

    def _tell_server(self, call: Callable[[], object]) -> None:
        """Pass an eUICC refusal on to the SM-DP+ so it ends its session; it answers Failed."""
        try:
            call()
        except Es9Error as exc:
            log.debug("SM-DP+ acknowledged the eUICC's refusal: %s", exc)

    def _cancel(self, es9: Es9, txid: bytes, reason: rsp.CancelSessionReason) -> None:
        """Cancel the session on the eUICC, then on the SM-DP+; failures are only logged."""
        try:
            answer = self.card.cancel_session(rsp.cancel_session_request(txid, reason))
            response = rsp.decode_cancel_session_response(answer)
        except Exception as exc:  # the card may be gone; the SM-DP+ session then expires
            log.warning("eUICC could not cancel session %s: %s", txid.hex().upper(), exc)
            return
        if isinstance(response, rsp.CancelSessionResponseError):
            log.info("eUICC had no session %s to cancel (%d)", txid.hex().upper(), response.code)
        try:
            es9.cancel_session(txid, answer)
        except Es9Error as exc:
            log.warning("SM-DP+ refused to cancel session %s: %s", txid.hex().upper(), exc)

    def _send_notification(self, es9: Es9, der: bytes, seq_number: int) -> bool:
        try:
            es9.handle_notification(der)
        except Es9Error as exc:
            log.warning("installation result not delivered (kept on the eUICC): %s", exc)
            return False
        try:
            status = rsp.decode_notification_sent(
                self.card.notification_sent(rsp.notification_sent_request(seq_number)))
        except Exception as exc:  # delivered; removing it is best effort, retried later
            log.warning("notification %d delivered but not removed: %s", seq_number, exc)
            return True
        if status not in (0, 1):
            log.warning("eUICC could not remove notification %d (%d)", seq_number, status)
        return True


def process_notifications(card: Es10b, es9_for: Callable[[str], Es9], *,
                          addresses: Container[str] | None = None
                          ) -> list[NotificationOutcome]:
    """Send every pending notification to its address (only those for ``addresses`` when
    given); remove each only once the SM-DP+ acknowledged it."""
    try:
        listed = rsp.decode_notification_list(card.list_notifications(
            rsp.list_notification_request()))
    except tlv.TlvError as exc:
        raise CardRefusedError(f"malformed notification list: {exc}",
                               stage=Stage.NOTIFY) from exc
    outcomes = []
    for meta in listed:
        if addresses is not None and meta.address not in addresses:
            continue
        try:
            pending = rsp.decode_pending_notifications(card.retrieve_notifications(
                rsp.retrieve_notifications_request(meta.seq)))
        except tlv.TlvError as exc:
            outcomes.append(NotificationOutcome(meta.seq, meta.address, meta.operation,
                                                False, False, str(exc)))
            continue
        for der, note in pending:
            if rsp.notification_seq_number(note) != meta.seq:
                continue
            try:
                es9_for(meta.address).handle_notification(der)
            except Es9Error as exc:
                outcomes.append(NotificationOutcome(meta.seq, meta.address, meta.operation,
                                                    False, False, str(exc)))
                continue
            status = rsp.decode_notification_sent(
                card.notification_sent(rsp.notification_sent_request(meta.seq)))
            outcomes.append(NotificationOutcome(meta.seq, meta.address, meta.operation,
                                                True, status == 0))
    return outcomes


def _octet_string(der: bytes) -> bytes:
    """The value of a ``04`` TLV (euiccCiPKIdToBeUsed as ES9+ sends it)."""
    return expect(der, sgp22.TAG_OCTET_STRING, "euiccCiPKIdToBeUsed").value


def _signature(der: bytes) -> bytes:
    """The raw signature in a ``5F37`` data object."""
    return expect(der, sgp22.TAG_SIGNATURE, "signature").value


def _code_name(table: type[enum.IntEnum], code: int) -> str:
    try:
        return f"{table(code).name.lower()} ({code})"
    except ValueError:
        return str(code)

"""The ES10b functions of the eUICC a profile download and notification delivery use."""

from __future__ import annotations

from typing import Protocol

from mps_esim.sgp22 import rsp


class Es10b(Protocol):
    """The eUICC functions a download and notification delivery use.

    Each returns the eUICC's complete response DER; the requests are DER as SGP.22 defines
    them. :class:`Es10bOverStoreData` implements this over any ES10 transport.
    """

    def get_euicc_challenge(self) -> bytes:
        """GetEuiccChallenge (``BF2E``): ``BF2E { 80 challenge(16) }``."""

    def get_euicc_info1(self) -> bytes:
        """GetEUICCInfo1 (``BF20``): EUICCInfo1 ``BF20 { 82 svn, A9 {04..}, AA {04..} }``."""

    def authenticate_server(self, request: bytes) -> bytes:
        """AuthenticateServer: ``BF38`` request in, ``BF38 { A0 ok | A1 error }`` out."""

    def prepare_download(self, request: bytes) -> bytes:
        """PrepareDownload: ``BF21`` request in, ``BF21 { A0 ok | A1 error }`` out."""

    def load_bound_profile_package(self, segment: bytes) -> bytes:
        """One LoadBoundProfilePackage segment: b"" while more are expected, else the
        ProfileInstallationResult ``BF37`` (after the last segment or the first failure)."""

    def cancel_session(self, request: bytes) -> bytes:
        """CancelSession: ``BF41 { 80 txid, 81 reason }`` in, ``BF41 { A0 ok | 81 err }`` out."""

    def list_notifications(self, request: bytes) -> bytes:
        """ListNotification: ``BF28`` in, ``BF28 { A0 { BF2F.. } | 81 err }`` out."""

    def retrieve_notifications(self, request: bytes) -> bytes:
        """RetrieveNotificationsList: ``BF2B`` in, ``BF2B { A0 { BF37.. | 30.. } }`` out."""

    def notification_sent(self, request: bytes) -> bytes:
        """NotificationSent (remove): ``BF30 { 80 seq }`` in, ``BF30 { 80 status }`` out."""


class Es10Transport(Protocol):
    """Anything that carries one ES10 command and returns its response data."""

    def command(self, data: bytes) -> bytes: ...


class Es10bOverStoreData:
    """:class:`Es10b` over an ES10 transport (e.g. :class:`Es10Client`'s STORE DATA)."""

    def __init__(self, transport: Es10Transport) -> None:
        self.transport = transport

    def get_euicc_challenge(self) -> bytes:
        return self.transport.command(rsp.get_euicc_challenge_request())

    def get_euicc_info1(self) -> bytes:
        return self.transport.command(bytes.fromhex("BF2000"))

    def authenticate_server(self, request: bytes) -> bytes:
        return self.transport.command(request)

    def prepare_download(self, request: bytes) -> bytes:
        return self.transport.command(request)

    def load_bound_profile_package(self, segment: bytes) -> bytes:
        return self.transport.command(segment)

    def cancel_session(self, request: bytes) -> bytes:
        return self.transport.command(request)

    def list_notifications(self, request: bytes) -> bytes:
        return self.transport.command(request)

    def retrieve_notifications(self, request: bytes) -> bytes:
        return self.transport.command(request)

    def notification_sent(self, request: bytes) -> bytes:
        return self.transport.command(request)

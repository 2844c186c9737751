"""ES9+ towards the SM-DP+: the LPA's client side (SGP.22 5.6, 6.5).

:class:`JsonEs9` shapes each function's JSON request and checks its response (base64 of
DER for binary values, the transaction id in hex, the ``functionExecutionStatus`` header).
Its transport is one method, ``_post``; :class:`Es9Client` implements it over HTTPS.

The HTTPS transport is :mod:`mps_esim.lpa.https` (a small HTTP/1.1 client) with an
:class:`ssl.SSLContext`: it verifies the server against a given CA file (``--ca``) or the
system's trust store, checks the host name, keeps one connection alive for the few calls of
a download, and reads at most :data:`MAX_RESPONSE` bytes of a response. On a device that is
all ES9+ needs, without another dependency.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
from typing import Any, Protocol, Self

from mps_common import logs
from mps_common.record import record
from mps_esim.errors import EsimError
from mps_esim.lpa.https import Disconnected, HttpsConnection

log = logs.get(__name__)

ADMIN_PROTOCOL = "gsma/rsp/v2.2.0"
BASE_PATH = "/gsma/rsp2/es9plus/"
MAX_RESPONSE = 1024 * 1024
"""Largest ES9+ response read (a bound profile package with applets stays well below)."""
DEFAULT_TIMEOUT = 30.0
HTTP_OK, HTTP_NO_CONTENT = 200, 204


class Es9Error(EsimError):
    """Root of the ES9+ client's errors."""


class Es9TransportError(Es9Error, ConnectionError):
    """The SM-DP+ could not be reached, TLS failed, or the connection broke."""


class Es9ProtocolError(Es9Error, ValueError):
    """The SM-DP+ answered something that is not a valid ES9+ response."""


class Es9FunctionError(Es9Error):
    """The SM-DP+ executed the function and reported ``Failed`` with a status code."""

    def __init__(self, function: str, subject: str, reason: str, message: str) -> None:
        super().__init__(f"{function} failed: {subject}/{reason} {message}".rstrip())
        self.function = function
        self.subject = subject
        self.reason = reason
        self.message = message


@record
class InitiateAuthenticationResponse:
    """What ES9+.InitiateAuthentication returns; signature and key id as their DER objects."""

    transaction_id: bytes
    server_signed1: bytes
    server_signature1: bytes
    ci_pkid: bytes
    server_certificate: bytes


@record
class AuthenticateClientResponse:
    """What ES9+.AuthenticateClient returns."""

    transaction_id: bytes
    profile_metadata: bytes
    smdp_signed2: bytes
    smdp_signature2: bytes
    smdp_certificate: bytes


class Es9(Protocol):
    """The ES9+ functions a download uses, whatever carries them."""

    def initiate_authentication(self, address: str, euicc_challenge: bytes,
                                euicc_info1: bytes) -> InitiateAuthenticationResponse: ...

    def authenticate_client(self, transaction_id: bytes, authenticate_server_response: bytes
                            ) -> AuthenticateClientResponse: ...

    def get_bound_profile_package(self, transaction_id: bytes,
                                  prepare_download_response: bytes) -> bytes: ...

    def handle_notification(self, pending_notification: bytes) -> None: ...

    def cancel_session(self, transaction_id: bytes, cancel_session_response: bytes) -> None: ...


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


class JsonEs9:
    """ES9+ as JSON bodies; subclasses carry them (``_post``)."""

    address_field = "smdpAddress"
    """What initiateAuthentication calls the server's address (ES11: ``smdsAddress``)."""

    def _post(self, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request; the parsed JSON response, or None for 204 No Content."""
        raise NotImplementedError

    def _call(self, function: str, body: dict[str, Any], *, empty_ok: bool = False
              ) -> dict[str, Any]:
        answer = self._post(function, body)
        if answer is None:
            if empty_ok:
                return {}
            raise Es9ProtocolError(f"{function}: the SM-DP+ answered no content")
        _check_status(function, answer)
        return answer

    def call(self, function: str, body: dict[str, Any], *, empty_ok: bool = False
             ) -> dict[str, Any]:
        """Run ``function`` with ``body`` as given (a relay's pass-through); the response
        body, its header checked (:class:`Es9FunctionError` for a failed function)."""
        return self._call(function, body, empty_ok=empty_ok)

    @staticmethod
    def _binary(function: str, answer: dict[str, Any], name: str) -> bytes:
        value = answer.get(name)
        if not isinstance(value, str):
            raise Es9ProtocolError(f"{function}: response lacks {name}")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Es9ProtocolError(f"{function}: {name} is not valid base64") from exc
        if not raw:
            raise Es9ProtocolError(f"{function}: {name} is empty")
        return raw

    @staticmethod
    def _txid(function: str, answer: dict[str, Any], expected: bytes | None = None) -> bytes:
        value = answer.get("transactionId")
        try:
            txid = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            txid = b""
        if not 1 <= len(txid) <= 16:
            raise Es9ProtocolError(f"{function}: response lacks a valid transactionId")
        if expected is not None and txid != expected:
            raise Es9ProtocolError(f"{function}: response names another transaction")
        return txid

    def initiate_authentication(self, address: str, euicc_challenge: bytes,
                                euicc_info1: bytes) -> InitiateAuthenticationResponse:
        fn = "initiateAuthentication"
        answer = self._call(fn, {self.address_field: address,
                                 "euiccChallenge": _b64(euicc_challenge),
                                 "euiccInfo1": _b64(euicc_info1)})
        return InitiateAuthenticationResponse(
            self._txid(fn, answer), self._binary(fn, answer, "serverSigned1"),
            self._binary(fn, answer, "serverSignature1"),
            self._binary(fn, answer, "euiccCiPKIdToBeUsed"),
            self._binary(fn, answer, "serverCertificate"))

    def authenticate_client(self, transaction_id: bytes, authenticate_server_response: bytes
                            ) -> AuthenticateClientResponse:
        fn = "authenticateClient"
        answer = self._call(fn, {"transactionId": transaction_id.hex().upper(),
                                 "authenticateServerResponse": _b64(authenticate_server_response)})
        return AuthenticateClientResponse(
            self._txid(fn, answer, transaction_id), self._binary(fn, answer, "profileMetadata"),
            self._binary(fn, answer, "smdpSigned2"), self._binary(fn, answer, "smdpSignature2"),
            self._binary(fn, answer, "smdpCertificate"))

    def get_bound_profile_package(self, transaction_id: bytes,
                                  prepare_download_response: bytes) -> bytes:
        fn = "getBoundProfilePackage"
        answer = self._call(fn, {"transactionId": transaction_id.hex().upper(),
                                 "prepareDownloadResponse": _b64(prepare_download_response)})
        self._txid(fn, answer, transaction_id)
        return self._binary(fn, answer, "boundProfilePackage")

    def handle_notification(self, pending_notification: bytes) -> None:
        self._call("handleNotification", {"pendingNotification": _b64(pending_notification)},
                   empty_ok=True)

    def cancel_session(self, transaction_id: bytes, cancel_session_response: bytes) -> None:
        self._call("cancelSession", {"transactionId": transaction_id.hex().upper(),
                                     "cancelSessionResponse": _b64(cancel_session_response)},
                   empty_ok=True)


def _check_status(function: str, answer: dict[str, Any]) -> None:
    header = answer.get("header")
    status = header.get("functionExecutionStatus") if isinstance(header, dict) else None
    if not isinstance(status, dict):
        raise Es9ProtocolError(f"{function}: response lacks header.functionExecutionStatus")
    state = status.get("status")
    if state in ("Executed-Success", "Executed-WithWarning"):
        return
    data = status.get("statusCodeData")
    data = data if isinstance(data, dict) else {}
    raise Es9FunctionError(function, str(data.get("subjectCode", "?")),
                           str(data.get("reasonCode", "?")), str(data.get("message", "")))


def tls_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A client TLS context trusting ``ca_file`` (PEM), or the system store without one."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise Es9TransportError(f"cannot load the CA file {ca_file}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def split_address(address: str) -> tuple[str, int]:
    """``host[:port]`` as host and port (443 by default)."""
    if address.count(":") == 1:
        host, port = address.split(":")
        if port.isdigit() and 1 <= int(port) <= 65535:
            return host, int(port)
        raise Es9Error(f"SM-DP+ address {address!r} has a bad port")
    return address, 443


class Es9Client(JsonEs9):
    """ES9+ over HTTPS to one SM-DP+ ``address`` (``host[:port]``)."""

    base_path = BASE_PATH
    """Where the functions are (``<base_path><function>``); ES11, ES12 and ESipa differ."""

    def __init__(self, address: str, *, ca_file: str | os.PathLike[str] | None = None,
                 context: ssl.SSLContext | None = None, timeout: float = DEFAULT_TIMEOUT,
                 admin_protocol: str = ADMIN_PROTOCOL) -> None:
        self.address = address
        self.host, self.port = split_address(address)
        self._context = context or tls_context(ca_file)
        self._timeout = timeout
        self._protocol = admin_protocol
        self._conn: HttpsConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        status, data = self._exchange(function, json.dumps(body).encode())
        if len(data) > MAX_RESPONSE:
            self.close()
            raise Es9ProtocolError(f"{function}: response longer than {MAX_RESPONSE} bytes")
        if status == HTTP_NO_CONTENT:
            return None
        try:
            answer = json.loads(data) if data else None
        except ValueError as exc:
            raise Es9ProtocolError(f"{function}: HTTP {status} with a body that is not "
                                   f"JSON") from exc
        if not isinstance(answer, dict):
            raise Es9ProtocolError(f"{function}: HTTP {status} without a JSON object")
        if status != HTTP_OK and "header" not in answer:
            raise Es9ProtocolError(f"{function}: HTTP {status}")
        return answer

    def _exchange(self, function: str, payload: bytes) -> tuple[int, bytes]:
        """POST ``payload`` to ``function``: the HTTP status and up to one byte more than
        :data:`MAX_RESPONSE` of the body."""
        headers = {"Content-Type": "application/json;charset=UTF-8",
                   "X-Admin-Protocol": self._protocol, "User-Agent": "mps-lpa",
                   "Accept": "application/json"}
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = HttpsConnection(self.host, self.port, context=self._context,
                                             timeout=self._timeout)
            try:
                response = self._conn.post(self.base_path + function, payload, headers,
                                           limit=MAX_RESPONSE)
                return response.status, response.body
            except (Disconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                # A kept-alive connection the server closed meanwhile: open a new one once.
                if reused and attempt == 0:
                    continue
                raise Es9TransportError(f"{function}: connection to {self.address} "
                                        f"broke: {exc}") from exc
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise Es9TransportError(f"{function}: the certificate of {self.address} does "
                                        f"not verify: {exc.verify_message}") from exc
            except OSError as exc:
                self.close()
                raise Es9TransportError(f"{function}: cannot reach {self.address}: "
                                        f"{exc}") from exc
        raise Es9TransportError(f"{function}: connection to {self.address} broke twice")


class Es9Clients:
    """ES9+ clients by SM-DP+ address, sharing one TLS context (``ca_file`` or the system's
    trust store); closed together."""

    def __init__(self, ca_file: str | os.PathLike[str] | None = None) -> None:
        self.ca_file = ca_file
        self._context: ssl.SSLContext | None = None
        self._clients: dict[str, Es9Client] = {}

    def client(self, address: str) -> Es9Client:
        found = self._clients.get(address)
        if found is None:
            if self._context is None:
                self._context = tls_context(self.ca_file)
            found = self._clients[address] = Es9Client(address, context=self._context)
        return found

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> Es9Clients:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

"""An SM-DS (SGP.22 3.6, 5.8, 5.9): event registration by SM-DP+s (ES12) and event
retrieval by LPAs (ES11), independent of HTTP.

An SM-DP+ registers an event for an EID (ES12.RegisterEvent: an event id, which is the
order's matching id, and the SM-DP+'s address). An LPA authenticates the eUICC to the
SM-DS as it would to an SM-DP+ (ES11.InitiateAuthentication and AuthenticateClient, with
CERT.DSauth in place of CERT.DPauth and no matching id) and gets back the events waiting
for that EID. Events stay until the SM-DP+ deletes them (ES12.DeleteEvent).

The JSON shapes follow ES9+ (SGP.22 6.5): base64 for DER values, the transaction id in
hex; AuthenticateClient answers ``eventEntries``, a list of ``{eventId, rspServerAddress}``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from lpa_emulator.pki import (
    CI_CERT,
    DSAUTH_CERT,
    DSAUTH_KEY,
    TLS_CERT,
    TLS_KEY,
    Credential,
    PkiError,
    load_certificates,
)
from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.client_auth import verify_euicc
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.fields import (
    b64,
    binary_field,
    decoded,
    text_field,
    transaction_id_field,
)
from mps_common.errors import ConfigError
from mps_esim import sgp22
from mps_esim.crypto import certs, signatures
from mps_esim.crypto.errors import CertificateError
from mps_esim.sgp22 import rsp
from mps_wire.identifiers import IdentifierError, validate_eid

log = logging.getLogger(__name__)

ES11_FUNCTIONS = ("initiateAuthentication", "authenticateClient")
ES12_FUNCTIONS = ("registerEvent", "deleteEvent")
MAX_EVENTS_PER_EID = 16
MAX_EVENT_ID = 128


@dataclass(frozen=True, slots=True)
class SmdsCredentials:
    """CERT.DSauth with its key, the CIs of the eUICCs served, and the TLS files."""

    dsauth: Credential
    cis: tuple[x509.Certificate, ...]
    tls_cert: Path
    tls_key: Path

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> SmdsCredentials:
        """``dsauth.*``, ``ci.pem`` (and ``ci-<name>.pem``) and ``tls.*`` of a PKI directory."""
        root = Path(directory)
        try:
            cis = [*load_certificates(root / CI_CERT)]
            for path in sorted(root.glob("ci-*.pem")):
                cis += load_certificates(path)
            dsauth = Credential.load(root / DSAUTH_CERT, root / DSAUTH_KEY)
            certs.verify_server_certificate(dsauth.cert, cis, role=certs.ROLE_DS_AUTH,
                                            at=certs.now())
        except (PkiError, CertificateError) as exc:
            raise ConfigError(f"the SM-DS credentials are not usable: {exc}") from exc
        return cls(dsauth, tuple(cis), root / TLS_CERT, root / TLS_KEY)

    @property
    def ci_pkid(self) -> bytes:
        return certs.authority_key_id(self.dsauth.cert) or b""


@dataclass(frozen=True, slots=True)
class Event:
    """One event waiting for an eUICC: its id and the SM-DP+ to contact."""

    event_id: str
    rsp_server_address: str


@dataclass
class _Session:
    txid: bytes
    created: float
    euicc_challenge: bytes
    server_challenge: bytes
    lock: threading.Lock = field(default_factory=threading.Lock)


class Smds:
    """The SM-DS: ES12 for SM-DP+s, ES11 for LPAs, events kept in memory."""

    def __init__(self, *, address: str, credentials: SmdsCredentials,
                 session_ttl: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.address = address
        self.credentials = credentials
        self.session_ttl = session_ttl
        self._clock = clock
        self._events: dict[str, list[Event]] = {}
        self._sessions: dict[bytes, _Session] = {}
        self._lock = threading.Lock()

    def call(self, function: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run the ES11 or ES12 ``function`` on a parsed request body."""
        handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any] | None]] = {
            "initiateAuthentication": self.initiate_authentication,
            "authenticateClient": self.authenticate_client,
            "registerEvent": self.register_event,
            "deleteEvent": self.delete_event,
        }
        handler = handlers.get(function)
        if handler is None:
            raise Es9StatusError(st.MALFORMED, f"unknown SM-DS function {function!r}")
        return handler(body)

    # --- ES12 -----------------------------------------------------------------------------

    @staticmethod
    def _eid(body: Mapping[str, Any]) -> str:
        try:
            return validate_eid(text_field(body, "eid", max_length=32))
        except IdentifierError as exc:
            raise Es9StatusError(st.MALFORMED, str(exc)) from exc

    def register_event(self, body: Mapping[str, Any]) -> None:
        """ES12.RegisterEvent: keep an event for the EID (the same id again replaces it)."""
        eid = self._eid(body)
        event = Event(text_field(body, "eventId", max_length=MAX_EVENT_ID),
                      text_field(body, "rspServerAddress", max_length=sgp22.MAX_ADDRESS))
        with self._lock:
            events = [e for e in self._events.get(eid, []) if e.event_id != event.event_id]
            if len(events) >= MAX_EVENTS_PER_EID:
                raise Es9StatusError(st.BUSY, f"EID {eid} has {MAX_EVENTS_PER_EID} events")
            self._events[eid] = [*events, event]
        log.info("event %s registered for %s at %s", event.event_id, eid,
                 event.rsp_server_address)

    def delete_event(self, body: Mapping[str, Any]) -> None:
        """ES12.DeleteEvent."""
        eid, event_id = self._eid(body), text_field(body, "eventId", max_length=MAX_EVENT_ID)
        with self._lock:
            self._events[eid] = [e for e in self._events.get(eid, [])
                                 if e.event_id != event_id]

    def events_for(self, eid: str) -> list[Event]:
        with self._lock:
            return list(self._events.get(eid, []))

    # --- ES11 -----------------------------------------------------------------------------

    def initiate_authentication(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ES11.InitiateAuthentication: serverSigned1 signed with SK.DSauth."""
        address = text_field(body, "smdsAddress", max_length=sgp22.MAX_ADDRESS)
        challenge = binary_field(body, "euiccChallenge")
        if len(challenge) != sgp22.CHALLENGE_SIZE:
            raise Es9StatusError(st.MALFORMED, "euiccChallenge must be 16 bytes")
        info1 = decoded(rsp.decode_euicc_info1, binary_field(body, "euiccInfo1"), "euiccInfo1")
        if address.lower() != self.address.lower():
            raise Es9StatusError(st.INVALID_ADDRESS, f"this SM-DS is {self.address}")
        pkid = self.credentials.ci_pkid
        if pkid not in info1.ci_pkids_signing:
            raise Es9StatusError(st.UNSUPPORTED_SECURITY, "the eUICC signs under another CI")
        if pkid not in info1.ci_pkids_verification:
            raise Es9StatusError(st.NO_DPAUTH_FOR_CI, "the eUICC cannot verify CERT.DSauth")
        now = self._clock()
        session = _Session(os.urandom(sgp22.MAX_TRANSACTION_ID), now, challenge,
                           os.urandom(sgp22.CHALLENGE_SIZE))
        with self._lock:
            for key in [k for k, s in self._sessions.items()
                        if now - s.created > self.session_ttl]:
                del self._sessions[key]
            self._sessions[session.txid] = session
        signed = rsp.ServerSigned1(session.txid, challenge, self.address,
                                   session.server_challenge).encode()
        return {"transactionId": session.txid.hex().upper(), "serverSigned1": b64(signed),
                "serverSignature1": b64(signatures.sign_object(self.credentials.dsauth.key,
                                                               signed)),
                "euiccCiPKIdToBeUsed": b64(bytes((0x04, len(pkid))) + pkid),
                "serverCertificate": b64(self.credentials.dsauth.cert_der)}

    def authenticate_client(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ES11.AuthenticateClient: the eUICC authenticated, the events for its EID."""
        txid = transaction_id_field(body)
        response = decoded(rsp.decode_authenticate_server_response,
                           binary_field(body, "authenticateServerResponse"),
                           "authenticateServerResponse")
        with self._lock:
            session = self._sessions.pop(txid, None)  # one use, whatever the outcome
        if session is None:
            raise Es9StatusError(st.UNKNOWN_TRANSACTION, "transaction unknown")
        if isinstance(response, rsp.AuthenticateResponseError):
            raise Es9StatusError(st.EUICC_SIGNATURE, f"the eUICC refused the SM-DS "
                                 f"(authenticateErrorCode {response.code})")
        _, _, eid = verify_euicc(response, txid=txid, server_challenge=session.server_challenge,
                                 address=self.address, cis=self.credentials.cis)
        events = self.events_for(eid)
        log.info("ES11 %s: %d events for %s", txid.hex().upper(), len(events), eid)
        return {"transactionId": txid.hex().upper(),
                "eventEntries": [{"eventId": e.event_id,
                                  "rspServerAddress": e.rsp_server_address} for e in events]}

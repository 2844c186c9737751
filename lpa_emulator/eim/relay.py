"""Indirect profile download (SGP.32 3.2.3, ESipa 6.3): the eIM talks ES9+ to the SM-DP+ on
the device's behalf.

An IPA whose eIM configuration carries ``indirectProfileDownload`` runs the SGP.22
download against the eIM: ESipa initiateAuthentication, authenticateClient,
getBoundProfilePackage, cancelSession and handleNotification carry the same bodies as
ES9+, and the eIM passes each to the SM-DP+ and its answer back (the eUICC's signatures
and the bound profile package are end to end; the eIM sees nothing it could alter
unnoticed). The SM-DP+ of a session is the one initiateAuthentication named; a
notification goes to the address in its metadata. The eIM relays only to the SM-DP+s it
is configured for, so it cannot be made to call anywhere else. Sessions live in memory
for ``ttl`` seconds: after a restart of the eIM a download starts over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.fields import binary_field
from mps_esim import sgp22, tlv
from mps_esim.lpa.es9 import (
    Es9Client,
    Es9Error,
    Es9FunctionError,
    split_address,
)

log = logging.getLogger(__name__)

FUNCTIONS = ("initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
             "cancelSession")
"""The ESipa functions relayed by transaction (handleNotification goes by address)."""
MAX_SESSIONS = 10_000


class Es9Relay:
    """ES9+ to the SM-DP+s in ``allowed`` (``host:port``), trusting ``ca_file`` for their
    TLS certificates."""

    def __init__(self, allowed: Iterable[str], *, ca_file: str | Path | None = None,
                 ttl: float = 600.0, timeout: float = 30.0) -> None:
        self.allowed = frozenset(allowed)
        if not self.allowed:
            raise ValueError("the relay needs at least one SM-DP+ address")
        for address in self.allowed:
            split_address(address)  # Es9Error names a bad port
        self._ca_file = ca_file
        self._ttl = ttl
        self._timeout = timeout
        self._sessions: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.forwarded: Counter[str] = Counter()

    def call(self, function: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Relay ``function``; the SM-DP+'s response body (None: no content)."""
        address = self._address(function, body)
        try:
            with Es9Client(address, ca_file=self._ca_file, timeout=self._timeout) as smdp:
                answer = smdp.call(function, dict(body),
                                   empty_ok=function in ("handleNotification", "cancelSession"))
        except Es9FunctionError as exc:
            # The SM-DP+'s own refusal reaches the IPA unchanged.
            raise Es9StatusError(st.StatusCode(exc.subject, exc.reason, exc.message or
                                               "refused by the SM-DP+")) from exc
        except Es9Error as exc:
            raise Es9StatusError(st.BUSY, f"the SM-DP+ {address} cannot be reached: "
                                          f"{exc}") from exc
        self.forwarded[function] += 1
        if function == "initiateAuthentication":
            self._remember(answer.get("transactionId"), address)
        elif function == "cancelSession":
            self._forget(str(body.get("transactionId", "")).upper())
        answer.pop("header", None)
        return answer or None

    def notify(self, body: Mapping[str, Any]) -> bool:
        """Pass a handleNotification to the SM-DP+ its metadata names, when this relay
        serves it; False for a notification addressed elsewhere (it stays with the eIM)."""
        if _notification_address(body) not in self.allowed:
            return False
        self.call("handleNotification", body)
        return True

    def _address(self, function: str, body: Mapping[str, Any]) -> str:
        if function == "initiateAuthentication":
            address = body.get("smdpAddress")
        elif function == "handleNotification":
            address = _notification_address(body)
        elif function in FUNCTIONS:
            address = self._session(body.get("transactionId"))
        else:
            raise Es9StatusError(st.MALFORMED, f"{function} is not relayed")
        if not isinstance(address, str) or address not in self.allowed:
            raise Es9StatusError(st.INVALID_ADDRESS,
                                 f"this eIM does not relay to the SM-DP+ {address!r}")
        return address

    def _session(self, txid: object) -> str:
        key = txid.upper() if isinstance(txid, str) else ""
        with self._lock:
            found = self._sessions.get(key)
        if found is None or found[1] < time.monotonic():
            raise Es9StatusError(st.UNKNOWN_TRANSACTION,
                                 f"no relayed session {key or '(none)'}")
        return found[0]

    def _remember(self, txid: object, address: str) -> None:
        if not isinstance(txid, str):
            return
        now = time.monotonic()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions = {k: v for k, v in self._sessions.items() if v[1] >= now}
            if len(self._sessions) < MAX_SESSIONS:
                self._sessions[txid.upper()] = (address, now + self._ttl)

    def _forget(self, txid: str) -> None:
        with self._lock:
            self._sessions.pop(txid, None)


def _notification_address(body: Mapping[str, Any]) -> str:
    der = binary_field(body, "pendingNotification")
    try:
        return sgp22.pending_notification_metadata(tlv.decode_one(der)).address
    except tlv.TlvError as exc:
        raise Es9StatusError(st.MALFORMED, f"pendingNotification is not valid DER: "
                                           f"{exc}") from exc

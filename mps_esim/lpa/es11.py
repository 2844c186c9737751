"""ES11 towards an SM-DS: the LPA's event retrieval (SGP.22 3.6.3, 5.8), and ES12, by
which an SM-DP+ registers and deletes events (SGP.22 5.9).

ES11 has the shape of ES9+ (JSON over HTTPS, base64 of DER values): InitiateAuthentication
names the ``smdsAddress`` and AuthenticateClient answers ``eventEntries`` instead of
profile metadata. The eUICC authenticates to the SM-DS without a matching id; each event
names an SM-DP+ (``rspServerAddress``) and an event id, which serves as the matching id
of the download there.
"""

from __future__ import annotations

from typing import Any

from mps_common.record import record
from mps_esim.lpa.es9 import (
    AuthenticateClientResponse,
    Es9Client,
    Es9ProtocolError,
    _b64,
)

ES11_PATH = "/gsma/rsp2/es11/"
ES12_PATH = "/gsma/rsp2/es12/"
MAX_EVENTS = 64


@record
class EventEntry:
    """An event the SM-DS holds for the eUICC: where to download, with which id."""

    event_id: str
    rsp_server_address: str


class Es11Client(Es9Client):
    """ES11 over HTTPS to one SM-DS ``address``."""

    base_path = ES11_PATH
    address_field = "smdsAddress"

    def authenticate_client(self, transaction_id: bytes, authenticate_server_response: bytes
                            ) -> AuthenticateClientResponse:
        """Only to tell the SM-DS of a refusal: an SM-DS answers events, never metadata."""
        self.events(transaction_id, authenticate_server_response)
        raise Es9ProtocolError("authenticateClient: an SM-DS answers events, not a profile")

    def events(self, transaction_id: bytes, authenticate_server_response: bytes
               ) -> tuple[EventEntry, ...]:
        """ES11.AuthenticateClient: the events registered for the authenticated eUICC."""
        fn = "authenticateClient"
        answer = self._call(fn, {"transactionId": transaction_id.hex().upper(),
                                 "authenticateServerResponse": _b64(authenticate_server_response)})
        self._txid(fn, answer, transaction_id)
        return _event_entries(answer.get("eventEntries", []))


def _event_entries(raw: Any) -> tuple[EventEntry, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_EVENTS:
        raise Es9ProtocolError(f"authenticateClient: eventEntries is not a list of at most "
                               f"{MAX_EVENTS}")
    entries: list[EventEntry] = []
    for item in raw:
        event_id = item.get("eventId") if isinstance(item, dict) else None
        address = item.get("rspServerAddress") if isinstance(item, dict) else None
        if not (isinstance(event_id, str) and isinstance(address, str) and event_id
                and address):
            raise Es9ProtocolError("authenticateClient: an event lacks eventId or "
                                   "rspServerAddress")
        entries.append(EventEntry(event_id, address))
    return tuple(entries)


class Es12Client(Es9Client):
    """ES12 over HTTPS: an SM-DP+ registering and deleting events at an SM-DS."""

    base_path = ES12_PATH

    def register_event(self, eid: str, event_id: str, rsp_server_address: str) -> None:
        self._call("registerEvent", {"eid": eid, "eventId": event_id,
                                     "rspServerAddress": rsp_server_address,
                                     "forwardingIndicator": False}, empty_ok=True)

    def delete_event(self, eid: str, event_id: str) -> None:
        self._call("deleteEvent", {"eid": eid, "eventId": event_id}, empty_ok=True)

"""What a repeated request's refusal means when the first attempt's reply was lost.

The clients send a request again until answered (:class:`~mps_mqtt.client.Retry`). When
the first attempt took effect and only its reply was lost, the repeat finds the work done:
an unpairing by number is told the app is ``not-paired``, a consent answer that the
prompt was ``answered``. Where the operation is idempotent, that is the success the
first reply would have said, once the registry's state confirms it; anything else stays
the refusal it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mps_wire.errors import ErrorCode
from mps_wire.messages import EventKind, Reason, Reply, Status

if TYPE_CHECKING:
    from mps_sdk.client import PairingClient
    from mps_sdk.consent import ConsentClient

#: How far back in the app's events an unpairing just made is looked for.
RECENT_EVENTS = 100


def unpaired(client: PairingClient, refusal: Reply) -> Reply | None:
    """The unpairing the first attempt made, for a repeat refused ``not-paired``: the
    app's newest ``pairing-ended`` (``unpaired``) event names it. None when there is none,
    or the refusal is another."""
    if refusal.code is not ErrorCode.NOT_FOUND or \
            refusal.body.get("reason") != Reason.NOT_PAIRED.value:
        return None
    newest = client.newest_seq()
    page = client.fetch_events(max(0, newest - RECENT_EVENTS), limit=RECENT_EVENTS)
    for event in reversed(page.events):
        if event.kind is EventKind.PAIRING_ENDED and event.reason == Reason.UNPAIRED.value:
            return Reply(Status.OK, body={"pairing": event.pairing, "state": "ended",
                                          "contract": event.contract})
    return None


def answered(client: ConsentClient, prompt: str, approve: bool, refusal: Reply
             ) -> Reply | None:
    """The answer the first attempt gave, for a repeat refused ``answered``: approved
    when the prompt's pairing is now granted; denied when it is neither granted nor
    open. None when the prompt was never seen by this client, the state says otherwise,
    or the refusal is another."""
    if refusal.body.get("reason") != Reason.ANSWERED.value:
        return None
    pairing = client.prompt_pairing(prompt)
    if pairing is None:
        return None
    state = client.consent()
    granted = any(g.pairing == pairing for g in state.granted)
    still_open = any(p.prompt == prompt for p in state.prompts)
    if granted != approve or still_open:
        return None
    return Reply(Status.OK, body={"prompt": prompt, "pairing": pairing,
                                  "decision": "approve" if approve else "deny"})

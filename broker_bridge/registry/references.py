"""References to the user other than the number: an app may name the user by the contract
reference the user gave it, or by the pseudonymous id the registry gave the app at pairing
(the ``contract`` of its pairing reply), so that it need not keep the user's number.

Both resolve to a number of the contract, and the request then goes the way a request by
number goes: the same checks, the same audit, the same answers. A reference that resolves
to nothing is carried on as if it were an unknown number, so that before consent a pair
request by an unknown reference is answered as one by a stranger's number (no
enumeration): the work done is the same for both, one index probe for the pseudonym, one
for the app's live pairing and one for the contract.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from broker_bridge.model import PairingState
from broker_bridge.registry.core import RegistryCore
from mps_wire.messages import DevicesRequest, PairRequest

_Request = TypeVar("_Request", PairRequest, DevicesRequest)

_LIVE = (PairingState.ACTIVE,)
"""Pairings whose pseudonym resolves: one the user consented to. A pending pairing's
reference is per number (it tells nothing yet), and an ended one no longer names a user
for this app."""


def number(request: PairRequest | DevicesRequest) -> str:
    """The number a resolved request names (see :meth:`ReferenceRules.resolved`)."""
    if request.msisdn is None:
        raise ValueError("the request names a user reference: resolve it first")
    return request.msisdn


class ReferenceRules(RegistryCore):
    """Resolves the user references of app requests."""

    def resolved(self, app_id: str, request: _Request) -> _Request:
        """``request`` naming a number: its own, or the one its user reference stands
        for (the reference itself when it stands for none, answered like an unknown
        number)."""
        ref = request.user
        if ref is None:
            return request
        return replace(request, msisdn=self.user_number(app_id, ref), user=None)

    def user_number(self, app_id: str, ref: str) -> str:
        """The number behind ``ref`` for ``app_id``: the first number of the contract that
        ``ref`` is this app's pseudonym for (an active pairing's), or that has ``ref`` as
        its reference; ``ref`` itself when neither."""
        store = self.store
        contract_id = store.user_ref_contract(app_id, ref)
        live = store.live_pairing(app_id, contract_id or ref)
        if live is None or live.state not in _LIVE:
            contract_id = None  # issued for a pairing that is no longer active
        if contract_id is None:
            contract = store.contract(ref)
            contract_id = contract.id if contract is not None else None
        numbers = store.numbers_of_contract(contract_id) if contract_id is not None else []
        return numbers[0] if numbers else ref

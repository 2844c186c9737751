"""The part of the storage interface schema version 8 added (see
:mod:`broker_bridge.choices`); :class:`~broker_bridge.storage.base.Store` includes it."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from broker_bridge.choices import Binding, EsimRequest, EsimState, PairingChoice, Presence


class ChoiceStore(abc.ABC):
    """Users' choices, presence, binding history and eSIM requests."""

    @abc.abstractmethod
    def pairing_choice(self, pairing_id: str) -> PairingChoice | None:
        """The view the user chose for a pairing; None: everything its trust allows."""

    @abc.abstractmethod
    def pairing_choices(self, contract_id: str) -> dict[str, PairingChoice]:
        """The chosen views of a contract's pairings, by pairing id."""

    @abc.abstractmethod
    def all_pairing_choices(self) -> dict[str, PairingChoice]:
        """Every stored choice, by pairing id (for filling the read model at start)."""

    @abc.abstractmethod
    def all_presences(self, contracts: Sequence[str] | None = None) -> dict[str, Presence]:
        """Every device's last reported presence (on ``contracts`` only, if given), by
        EID."""

    @abc.abstractmethod
    def all_bindings(self, contracts: Sequence[str] | None = None
                     ) -> dict[str, list[Binding]]:
        """Every binding change (of the devices now on ``contracts`` only, if given), by
        EID, oldest first."""

    @abc.abstractmethod
    def put_pairing_choice(self, choice: PairingChoice) -> None:
        """Store (replace) the view chosen for a pairing."""

    @abc.abstractmethod
    def presence(self, eid: str) -> Presence | None:
        """A device's last reported presence, if any."""

    @abc.abstractmethod
    def presences(self, contract_id: str) -> dict[str, Presence]:
        """The presence of a contract's devices, by EID."""

    @abc.abstractmethod
    def put_presence(self, presence: Presence) -> bool:
        """Record a presence; False (nothing written) when it is the state already held."""

    @abc.abstractmethod
    def add_binding(self, binding: Binding) -> Binding:
        """Append a binding change of a device, numbered after its others; as stored."""

    @abc.abstractmethod
    def bindings(self, eid: str) -> list[Binding]:
        """A device's binding changes, oldest first."""

    @abc.abstractmethod
    def bindings_of_contract(self, contract_id: str) -> dict[str, list[Binding]]:
        """The binding changes recorded under a contract, by EID, oldest first."""

    @abc.abstractmethod
    def add_esim_request(self, request: EsimRequest) -> None:
        """Store a new eSIM request."""

    @abc.abstractmethod
    def esim_request(self, request_id: str) -> EsimRequest | None:
        """The eSIM request with this id, if any."""

    @abc.abstractmethod
    def esim_requests(self, *, contract_id: str | None = None, eid: str | None = None,
                      states: Sequence[EsimState] | None = None) -> list[EsimRequest]:
        """eSIM requests matching every given filter, oldest first."""

    @abc.abstractmethod
    def update_esim_request(self, request: EsimRequest, *, expect: EsimState) -> bool:
        """Write a request's state fields if its stored state is still ``expect``."""

    @abc.abstractmethod
    def next_esim_counter(self, eid: str) -> int:
        """The next number of a device's signed orders (1, 2, ...), counted in the
        current transaction."""

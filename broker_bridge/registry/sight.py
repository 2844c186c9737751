"""What one app sees through one pairing: the device fields of its trust level, narrowed
to the devices and fields the user chose (schema version 8), with presence and the binding
history where they are among them.

A pairing without a stored choice sees everything its app may be shown: the trust level's
fields, presence, and (partner apps) the binding history, of every device of the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from broker_bridge.choices import HISTORY, PRESENCE, Binding, PairingChoice, Presence
from broker_bridge.model import App, Device, Pairing, TrustLevel
from broker_bridge.storage.base import Store
from broker_bridge.views import AppView, record_of
from mps_wire.records import DISCLOSABLE, BindingChange, DevicePresence, DeviceRecord


def choosable(app: App, disclosed: Iterable[str]) -> frozenset[str]:
    """The fields a user may choose for ``app``: those its trust level discloses
    (``disclosed``), presence, and the binding history for partner apps."""
    fields = set(disclosed) | {PRESENCE}
    if app.trust is TrustLevel.PARTNER:
        fields.add(HISTORY)
    return frozenset(fields)


@dataclass(frozen=True, slots=True)
class Sight:
    """The fields shown and the devices (EIDs; None: all) one pairing sees."""

    fields: frozenset[str]
    devices: frozenset[str] | None = None

    def shows(self, eid: str) -> bool:
        return self.devices is None or eid in self.devices


def sight_of(store: Store, view: AppView, app: App, pairing: Pairing | None, *,
             choices: Mapping[str, PairingChoice] | None = None) -> Sight:
    """What ``app`` (seen through ``view``) sees through ``pairing`` (None: standing
    consent without a pairing); ``choices`` are the contract's, when read already."""
    allowed = choosable(app, view.fields)
    if pairing is None:
        choice = None
    elif choices is not None:
        choice = choices.get(pairing.id)
    else:
        choice = store.pairing_choice(pairing.id)
    if choice is None:
        return Sight(allowed)
    return Sight(choice.fields & allowed,
                 None if choice.devices is None else frozenset(choice.devices))


class Records:
    """Device records of one contract as apps see them, with the contract's presence and
    binding history read once, when first needed."""

    def __init__(self, store: Store, contract_id: str, *,
                 presence: Mapping[str, Presence] | None = None,
                 history: Mapping[str, list[Binding]] | None = None) -> None:
        self.store = store
        self.contract_id = contract_id
        # Given when read for many contracts at once (by EID; see warm_reads).
        self._presence = presence
        self._history = history

    def presence(self, eid: str) -> Presence | None:
        if self._presence is None:
            self._presence = self.store.presences(self.contract_id)
        return self._presence.get(eid)

    def history(self, eid: str) -> list[Binding]:
        if self._history is None:
            self._history = self.store.bindings_of_contract(self.contract_id)
        return self._history.get(eid, [])

    def record(self, view: AppView, sight: Sight, device: Device) -> DeviceRecord:
        """``device`` as the app of ``view`` sees it through ``sight``."""
        record = record_of(device, sight.fields & view.fields & DISCLOSABLE,
                           device_id=view.device_id(device.eid))
        if PRESENCE in sight.fields:
            presence = self.presence(device.eid)
            if presence is not None:
                record = replace(record, presence=DevicePresence(
                    "online" if presence.online else "offline", presence.since))
        if HISTORY in sight.fields:
            record = replace(record, history=tuple(_change(b) for b in
                                                   self.history(device.eid)))
        return record

    def listing(self, view: AppView, sight: Sight, devices: Iterable[Device]
                ) -> list[DeviceRecord]:
        """The records of the ``devices`` the sight shows."""
        return [self.record(view, sight, d) for d in devices if sight.shows(d.eid)]


def _change(b: Binding) -> BindingChange:
    return BindingChange(b.at, b.source.value, b.eid, b.imei, b.iccid, b.previous_imei,
                         b.previous_iccid)

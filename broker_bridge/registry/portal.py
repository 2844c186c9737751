"""The registry as the user's page of one contract sees it: :class:`ContractPortal`.

Everything a portal reads or changes belongs to its one contract; an id of another
contract's prompt, pairing, device or eSIM request is refused exactly as an unknown id
(:class:`NotFound`). Changes are units of work of the registry, audited under the
portal's ``actor``, and return the :class:`~broker_bridge.registry.work.Effects` to
publish (a running bridge publishes whatever was not, within its housekeeping interval).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from broker_bridge.choices import EsimState
from broker_bridge.model import Device, PairingState
from broker_bridge.registry.portal_views import (
    CHOOSABLE_EXTRA,
    AlreadyDecided,
    BindingView,
    ChoiceRefused,
    DeviceView,
    EsimRequestView,
    NotFound,
    PairingView,
    PortalError,
    PromptView,
)
from broker_bridge.registry.work import Effects

if TYPE_CHECKING:
    from broker_bridge.registry import Registry

__all__ = [
    "CHOOSABLE_EXTRA", "AlreadyDecided", "BindingView", "ChoiceRefused", "ContractPortal",
    "DeviceView", "EsimRequestView", "NotFound", "PairingView", "PortalError", "PromptView",
]


class ContractPortal:
    """The page of contract ``contract_id`` over ``registry``; ``actor`` names the user in
    the audit log (default ``user:<contract>``). Constructing does no I/O."""

    def __init__(self, registry: Registry, contract_id: str, *, actor: str | None = None
                 ) -> None:
        self.registry = registry
        self.contract_id = contract_id
        self.actor = actor or f"user:{contract_id}"

    # --- reads -------------------------------------------------------------------------

    def devices(self) -> list[DeviceView]:
        """The contract's devices with their presence, in registration order."""
        store = self.registry.store
        presence = store.presences(self.contract_id)
        return [_device_view(d, presence.get(d.eid))
                for d in store.devices_of_contract(self.contract_id)]

    def prompts(self) -> list[PromptView]:
        """The open (unexpired) consent prompts, oldest first, with what may be chosen."""
        store = self.registry.store
        now = self.registry.now()
        devices = tuple(self.devices())
        found = []
        for pairing in store.pairings(contract_id=self.contract_id,
                                      states=(PairingState.PENDING,)):
            app = store.app(pairing.app_id)
            if app is None or (pairing.expires_at or 0) <= now:
                continue
            found.append(PromptView(
                pairing.prompt_id or "", pairing.id, app.id, app.name, app.trust.value,
                pairing.purpose, tuple(sorted(self.registry.allowed_fields(app))), devices,
                pairing.created_at, pairing.expires_at or pairing.created_at))
        return found

    def pairings(self) -> list[PairingView]:
        """The apps paired with the contract, and what each sees now."""
        store = self.registry.store
        choices = store.pairing_choices(self.contract_id)
        eids = tuple(d.eid for d in store.devices_of_contract(self.contract_id))
        found = []
        for pairing in store.pairings(contract_id=self.contract_id,
                                      states=(PairingState.ACTIVE,)):
            app = store.app(pairing.app_id)
            if app is None:
                continue
            allowed = self.registry.allowed_fields(app)
            choice = choices.get(pairing.id)
            fields = allowed if choice is None else choice.fields & allowed
            chosen = None if choice is None else choice.devices
            found.append(PairingView(
                pairing.id, app.id, app.name, app.trust.value, pairing.purpose,
                (pairing.consent.value if pairing.consent else "user"),
                pairing.decided_at or pairing.created_at, tuple(sorted(fields)),
                tuple(sorted(allowed)),
                eids if chosen is None else tuple(e for e in eids if e in chosen),
                chosen is None))
        return found

    def history(self, eid: str) -> list[BindingView]:
        """Every binding change of one device of the contract, oldest first."""
        device = self.registry.store.device(eid)
        if device is None or device.contract_id != self.contract_id:
            raise NotFound(f"no device {eid} on this contract", "unknown-device")
        return [BindingView(b.at, b.eid, b.source.value, b.imei, b.iccid, b.previous_imei,
                            b.previous_iccid) for b in self.registry.store.bindings(eid)]

    def esim_requests(self, *, open_only: bool = True) -> list[EsimRequestView]:
        """eSIM operation requests on the contract's devices; ``open_only``: those
        awaiting the user's word."""
        states = (EsimState.AWAITING,) if open_only else None
        now = self.registry.now()
        found = []
        for r in self.registry.store.esim_requests(contract_id=self.contract_id,
                                                    states=states):
            if open_only and r.expires_at <= now:
                continue
            found.append(EsimRequestView(r.id, r.eid, r.action.value, r.iccid, r.state.value,
                                         r.requested_by, r.requested_at, r.expires_at,
                                         r.decided_at, r.decided_by, r.result))
        return found

    # --- changes -----------------------------------------------------------------------

    def approve(self, prompt: str, *, devices: Iterable[str] | None = None,
                fields: Iterable[str] | None = None) -> Effects:
        """Approve a prompt for ``devices`` (EIDs; None: all, future ones too) and
        ``fields`` (None: all the app may be shown)."""
        return self.registry.approve_choice(self.contract_id, prompt, devices=devices,
                                            fields=fields, actor=self.actor)

    def deny(self, prompt: str) -> Effects:
        """Deny a prompt."""
        return self.registry.deny_prompt(self.contract_id, prompt, actor=self.actor)

    def set_view(self, pairing: str, *, devices: Iterable[str] | None = None,
                 fields: Iterable[str] | None = None) -> Effects:
        """Narrow or widen what a pairing sees (as :meth:`approve` chooses)."""
        return self.registry.set_view(self.contract_id, pairing, devices=devices,
                                      fields=fields, actor=self.actor)

    def end(self, pairing: str) -> Effects:
        """End a pairing: the user withdraws consent."""
        return self.registry.end_pairing(self.contract_id, pairing, actor=self.actor)

    def approve_esim(self, request: str) -> Effects:
        """The user's word for an eSIM operation: the bridge sends its signed order."""
        return self.registry.decide_esim(self.contract_id, request, approve=True,
                                         actor=self.actor)

    def refuse_esim(self, request: str) -> Effects:
        """Refuse an eSIM operation: nothing changes on the device."""
        return self.registry.decide_esim(self.contract_id, request, approve=False,
                                         actor=self.actor)


def _device_view(device: Device, presence: object) -> DeviceView:
    from broker_bridge.choices import Presence

    p = presence if isinstance(presence, Presence) else None
    model = " ".join(part for part in (device.model.manufacturer, device.model.model) if part)
    return DeviceView(device.eid, device.imei, device.iccid, device.imsi, device.msisdn, model,
                      device.registered_at, device.updated_at,
                      None if p is None else p.online, None if p is None else p.since)

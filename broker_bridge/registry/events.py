"""The changes several concerns make to devices and pairings, with the events they cause.

Each works through a :class:`~broker_bridge.registry.work.UnitOfWork`: what it stores and
the events it appends commit together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from broker_bridge.choices import PRESENCE
from broker_bridge.model import App, ConsentSource, Device, Pairing, PairingState
from broker_bridge.registry.sight import Records, sight_of
from broker_bridge.registry.work import UnitOfWork
from mps_wire.messages import ChangeKind, EventKind, Reason


def announce(work: UnitOfWork, contract_id: str, kind: EventKind, device: Device, *,
             changes: Iterable[ChangeKind] = (), reason: str | None = None) -> None:
    """Append a device event for every app with an active pairing on the contract whose
    view (see :mod:`.sight`) shows the device; presence changes only where presence is
    shown."""
    store = work.store
    changes = tuple(changes)
    records = Records(store, contract_id)
    pairings = store.pairings(contract_id=contract_id, states=(PairingState.ACTIVE,))
    choices = store.pairing_choices(contract_id) if pairings else {}
    for pairing in pairings:
        app = store.app(pairing.app_id)
        if app is None:
            continue
        view = work.view(app)
        sight = sight_of(store, view, app, pairing, choices=choices)
        if not sight.shows(device.eid) or (changes == (ChangeKind.PRESENCE,)
                                           and PRESENCE not in sight.fields):
            continue
        payload: dict[str, Any] = {
            "event": kind.value, "ts": work.now, "pairing": pairing.id,
            "contract": view.contract_ref(contract_id),
            "device": records.record(view, sight, device).to_wire(),
        }
        if kind is EventKind.DEVICE_UPDATED:
            payload["changes"] = [c.value for c in changes]
        if reason is not None:
            payload["reason"] = str(reason)
        work.event(app.id, kind, payload, contract_id=contract_id, pairing_id=pairing.id)


def granted(work: UnitOfWork, app: App, pairing: Pairing) -> None:
    """Tell the app its pairing is active, with every device it sees."""
    view = work.view(app)
    devices = Records(work.store, pairing.contract_id).listing(
        view, sight_of(work.store, view, app, pairing),
        work.store.devices_of_contract(pairing.contract_id))
    ref = view.contract_ref(pairing.contract_id)
    # The app may name the user by this id from now on (registry/references.py).
    work.store.put_user_ref(app.id, ref, pairing.contract_id)
    payload = {
        "event": EventKind.PAIRING_GRANTED.value, "ts": work.now, "pairing": pairing.id,
        "contract": ref, "purpose": pairing.purpose,
        "consent": (pairing.consent or ConsentSource.USER).value,
        "devices": [r.to_wire() for r in devices],
    }
    work.event(app.id, EventKind.PAIRING_GRANTED, payload, contract_id=pairing.contract_id,
               pairing_id=pairing.id)


def denied(work: UnitOfWork, app: App, pairing: Pairing, reason: str) -> None:
    """Tell the app its pairing was not granted."""
    _pairing_event(work, EventKind.PAIRING_DENIED, app, pairing, reason)


def end(work: UnitOfWork, app: App, pairing: Pairing, *, by: str, reason: str) -> bool:
    """End a live pairing and tell the app; False if another process changed it first."""
    ended = replace(pairing, state=PairingState.ENDED, ended_at=work.now, ended_by=by,
                    end_reason=str(reason))
    if not work.store.update_pairing(ended, expect=pairing.state):
        return False
    if pairing.state is PairingState.PENDING:
        work.consent_changed(pairing.contract_id)
    _pairing_event(work, EventKind.PAIRING_ENDED, app, pairing, reason)
    return True


def expire(work: UnitOfWork, pairing: Pairing) -> None:
    """Expire a pending pairing whose consent prompt timed out; its app is denied."""
    expired = replace(pairing, state=PairingState.EXPIRED, decided_at=work.now,
                      decided_by="registry")
    # Another process may have expired (or the user answered) it first.
    if not work.store.update_pairing(expired, expect=PairingState.PENDING):
        return
    work.consent_changed(pairing.contract_id)
    app = work.store.app(pairing.app_id)
    if app is not None:
        denied(work, app, expired, Reason.EXPIRED)
    work.audit("registry", "consent", "expired", contract_id=pairing.contract_id,
               app_id=pairing.app_id, subject=pairing.prompt_id,
               detail={"pairing": pairing.id, "purpose": pairing.purpose})


def expire_decoy(work: UnitOfWork, decoy: Pairing) -> None:
    """Expire a decoy as :func:`expire` does a prompt nobody answered: its app is denied
    with the same event (see schema version 7)."""
    if not work.store.close_decoy(decoy.id, work.now):
        return
    app = work.store.app(decoy.app_id)
    if app is not None:
        denied(work, app, replace(decoy, state=PairingState.EXPIRED), Reason.EXPIRED)
    work.audit("registry", "consent", "expired", app_id=decoy.app_id, subject=decoy.msisdn,
               detail={"pairing": decoy.id, "purpose": decoy.purpose, "decoy": True})


def end_decoy(work: UnitOfWork, app: App, decoy: Pairing, *, reason: str) -> bool:
    """End an open decoy as :func:`end` does a pending pairing, with the same event;
    False if it was closed already."""
    if not work.store.close_decoy(decoy.id, work.now):
        return False
    _pairing_event(work, EventKind.PAIRING_ENDED, app, decoy, reason)
    return True


def _pairing_event(work: UnitOfWork, kind: EventKind, app: App, pairing: Pairing,
                   reason: str) -> None:
    view = work.view(app)
    payload = {"event": kind.value, "ts": work.now, "pairing": pairing.id,
               "contract": view.pairing_ref(pairing),
               "purpose": pairing.purpose, "reason": str(reason)}
    work.event(app.id, kind, payload, contract_id=pairing.contract_id or None,
               pairing_id=pairing.id)


def view_changed(work: UnitOfWork, app: App, pairing: Pairing) -> None:
    """Tell the app the user changed what it sees: the fields and every device now shown."""
    view = work.view(app)
    sight = sight_of(work.store, view, app, pairing)
    devices = Records(work.store, pairing.contract_id).listing(
        view, sight, work.store.devices_of_contract(pairing.contract_id))
    payload = {
        "event": EventKind.VIEW_CHANGED.value, "ts": work.now, "pairing": pairing.id,
        "contract": view.contract_ref(pairing.contract_id),
        "fields": sorted(sight.fields), "devices": [r.to_wire() for r in devices],
    }
    work.event(app.id, EventKind.VIEW_CHANGED, payload, contract_id=pairing.contract_id,
               pairing_id=pairing.id)

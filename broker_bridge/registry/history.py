"""The binding history: every change of the IMEI or ICCID seen with a device's EID, from
registrations, swaps and the SM-DP+'s installation reports (schema version 8)."""

from __future__ import annotations

from broker_bridge.choices import Binding, BindingSource
from broker_bridge.model import RegistrationOutcome
from broker_bridge.registry.work import UnitOfWork
from mps_wire.messages import ChangeKind, RegistrationResult


def registered(work: UnitOfWork, outcome: RegistrationOutcome) -> None:
    """Record a first registration, or a registration that changed the IMEI or ICCID."""
    device, before = outcome.device, outcome.previous
    if outcome.result is RegistrationResult.REGISTERED:
        work.store.add_binding(Binding(device.eid, 0, outcome.contract_id, work.now,
                                       BindingSource.REGISTRATION, device.imei, device.iccid))
        return
    if before is None or not {ChangeKind.DEVICE_SWAP, ChangeKind.SIM_SWAP} & set(outcome.changes):
        return
    work.store.add_binding(Binding(device.eid, 0, outcome.contract_id, work.now,
                                   BindingSource.SWAP, device.imei, device.iccid,
                                   previous_imei=before.imei, previous_iccid=before.iccid))


def installed(work: UnitOfWork, eid: str, iccid: str, contract_id: str | None, *,
              source: BindingSource = BindingSource.INSTALLATION) -> None:
    """Record that the profile ``iccid`` was installed on (or bound to) the eUICC ``eid``."""
    if contract_id is None:
        return
    device = work.store.device(eid)
    work.store.add_binding(Binding(
        eid, 0, contract_id, work.now, source, device.imei if device else None, iccid,
        previous_iccid=device.iccid if device and device.iccid != iccid else None))

"""Profile state changes the eIM reports (SGP.32 PSMOs carried out on an eUICC).

A deletion unbinds the profile from the eUICC that deleted it, so the profile may be
installed and registered elsewhere; the device that used the profile on that eUICC no
longer holds its subscription and leaves its contract (``device-removed``, reason
``subscription-removed``). Enabling and disabling change no binding: they are audited, and
a device that comes up on another profile registers with it as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.work import Outcome, UnitOfWork, refusal
from mps_wire.errors import WireError
from mps_wire.messages import EventKind, ProfileChange, ProfileOutcome, Reason, Reply, Status

log = logging.getLogger(__name__)

PROFILES_SOURCE = "eim"
"""The operator source named in the audit log for the eIM's profile state changes."""


class ProfileRules(RegistryCore):
    """What the registry does with the eIM's profile state changes."""

    def handle_profile_change(self, msg: Mapping[str, Any]) -> Outcome:
        """Record a decoded profile state change of the eIM."""
        try:
            report = ProfileChange.from_wire(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.profile_change(report)

    def profile_change(self, report: ProfileChange) -> Outcome:
        """Apply one report; a report that arrives twice changes nothing the second time."""
        with self._work() as work:
            change = "unchanged"
            detail: dict[str, Any] = {"eid": report.eid, "transaction": report.transaction,
                                      "eim": report.eim, "seq": report.seq}
            if report.result is ProfileOutcome.DELETED:
                change, removed = _deleted(work, report)
                if removed:
                    detail["devices_removed"] = removed
            sub = self.store.subscription_by_iccid(report.iccid)
            if change != "unchanged" or report.result is not ProfileOutcome.DELETED:
                work.audit(f"operator:{PROFILES_SOURCE}", "profile", report.result.value,
                           contract_id=sub.contract_id if sub else None,
                           subject=report.iccid, detail={**detail, "change": change})
        return Outcome(Reply.ok(iccid=report.iccid, change=change), work.effects)


def _deleted(work: UnitOfWork, report: ProfileChange) -> tuple[str, list[str]]:
    """Unbind the deleted profile and remove the device that used it on that eUICC."""
    store = work.store
    bound = store.installation(report.iccid)
    if bound is not None and bound.eid == report.eid and bound.ts > report.ts:
        return "unchanged", []  # installed there again since: the report is stale
    unbound = store.remove_installation(report.iccid, report.eid, ts=report.ts)
    removed = []
    device = store.device(report.eid)
    if device is not None and device.iccid == report.iccid:
        events.announce(work, device.contract_id, EventKind.DEVICE_REMOVED, device,
                        reason=Reason.SUBSCRIPTION_REMOVED)
        store.remove_device(device.eid)
        removed.append(device.eid)
        log.info("profile %s deleted from %s: the device left its contract",
                 report.iccid, report.eid)
    return ("removed" if unbound or removed else "unchanged"), removed

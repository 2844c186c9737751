"""App requests for the devices of a contract, answered from the read model
(:mod:`broker_bridge.registry.reads`) when it holds the answer at the store's versions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker_bridge.model import App, AuditEntry, Device, Pairing, PairingState
from broker_bridge.policy import ConsentRule
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.reads import Versions
from broker_bridge.registry.work import Outcome, denied, refusal
from broker_bridge.storage.base import Store
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import AppOp, DevicesRequest, Reason, Reply, Status, parse_app_request

#: The reply of an answer sent from its encoding: the status is what counts.
_KEPT_OK = Reply(Status.OK)


def devices_number(msg: Mapping[str, Any]) -> str | None:
    """The number a decoded ``devices`` request names; None for any other (or a bad)
    request, which the full path answers."""
    if msg.get("op") != AppOp.DEVICES.value:
        return None
    try:
        request = parse_app_request(msg)
    except WireError:
        return None
    return request.msisdn if isinstance(request, DevicesRequest) else None


class DeviceListing(RegistryCore):
    """What an app sees of a contract's devices, and the read model that keeps it."""

    def kept_devices(self, app_id: str, msg: Mapping[str, Any], *, store: Store | None = None
                     ) -> tuple[Outcome, AuditEntry] | None:
        """The answer to a decoded ``devices`` request from the read model, with its audit
        entry still to be written (numbered then); None for anything else, or when the
        read model has no answer at the store's current versions (read from ``store``, a
        connection to the registry's database; default the registry's own). The
        outcome's reply carries the status only; what is sent is its ``encoded`` answer."""
        msisdn = devices_number(msg)
        return None if msisdn is None else self.kept_answer(app_id, msisdn, store=store)

    def kept_answer(self, app_id: str, msisdn: str, *, store: Store | None = None
                    ) -> tuple[Outcome, AuditEntry] | None:
        """:meth:`kept_devices` for a request already parsed: the number it names."""
        versions = (store or self.store).read_versions(msisdn)
        found = self._kept(app_id, msisdn, versions)
        if found is None:
            return None
        encoded, entry = found
        return Outcome(_KEPT_OK, read_only=True, encoded=encoded), entry

    def _kept(self, app_id: str, msisdn: str, versions: Versions | None
              ) -> tuple[bytes, AuditEntry] | None:
        if versions is None:
            return None
        kept = self.reads.get(app_id, versions)
        if kept is None:
            return None
        entry = AuditEntry(0, self._clock(), f"app:{app_id}", "devices", Status.OK.value,
                           contract_id=versions[0], app_id=app_id, subject=msisdn,
                           detail=kept.detail())
        return kept.encoded, entry

    def devices(self, app_id: str, request: DevicesRequest, *,
                admitted: App | None = None) -> Outcome:
        """Every device of the contract behind the number, for a paired app (or one with
        standing consent): from the read model when it holds the answer at the store's
        versions, else from the store (and kept)."""
        # The versions first: whatever is read after them is at least as new.
        versions = self.store.read_versions(request.msisdn)
        found = self._kept(app_id, request.msisdn, versions)
        if found is not None:
            encoded, entry = found
            self.store.append_audits([entry])
            return Outcome(self.reads.reply(encoded), read_only=True, encoded=encoded)
        actor = f"app:{app_id}"
        audit = {"app_id": app_id, "subject": request.msisdn}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self.refuse(actor, "devices", app, **audit)
        routed = self.route(request.msisdn)
        if isinstance(routed, Reply):
            return self.refuse(actor, "devices", routed, **audit)
        contract = routed
        live = self.store.live_pairing(app.id, contract.id)
        refused = self._unpaired(app, live)
        if refused is not None:
            return self.refuse(actor, "devices", refused, contract_id=contract.id, **audit)
        reply, detail = self._listing(app, contract.id, live,
                                      self.store.devices_of_contract(contract.id))
        self._audit(actor, "devices", Status.OK.value, contract_id=contract.id, **audit,
                    detail=detail)
        if versions is not None and versions[0] == contract.id:
            self.reads.keep(app.id, versions, reply, detail)
        return Outcome(reply, read_only=True)

    def _listing(self, app: App, contract_id: str, live: Pairing | None,
                 devices: Iterable[Device]) -> tuple[Reply, dict[str, Any]]:
        """The ``ok`` reply with the contract's ``devices`` as ``app`` sees them, and its
        audit detail."""
        view = self.view(app)
        records = [view.record(d).to_wire() for d in devices]
        detail = {"devices": len(records), "pairing": live.id if live is not None else None}
        return Reply.ok(contract=view.contract_ref(contract_id), devices=records), detail

    def _unpaired(self, app: App, live: Pairing | None) -> Reply | None:
        """The refusal for an app asking without an active pairing, None if it has one
        or its standing consent lets it see the devices all the same."""
        if live is not None and live.state is PairingState.ACTIVE:
            return None
        decision = self.policy.pairing(app, None)
        if not decision.allowed:
            return denied(decision)
        if decision.consent is ConsentRule.STANDING:
            return None
        if live is not None:
            return refusal(Status.PENDING, ErrorCode.DENIED,
                           "the user has not answered the consent prompt yet",
                           Reason.CONSENT_PENDING)
        return refusal(Status.DENIED, ErrorCode.DENIED,
                       f"app {app.id} is not paired with this contract; ask to pair first",
                       Reason.NOT_PAIRED)

    def warm_reads(self, limit: int | None = None) -> int:
        """Fill the read model from the store: every answer an app may get now, up to
        ``limit`` (default: the read model's own); how many were kept."""
        room = self.reads.limit if limit is None else min(limit, self.reads.limit)
        contracts, apps_version = self.store.contract_versions()  # first, see devices()
        admitted = [a for a in self.store.apps() if self.policy.admit(a.id, a).allowed]
        live: dict[tuple[str, str], Pairing] = {
            (p.app_id, p.contract_id): p for p in self.store.pairings(
                states=(PairingState.PENDING, PairingState.ACTIVE))}
        kept = 0
        by_contract = self.store.devices_by_contract()
        for contract_id, version in contracts.items():
            for app in admitted:
                if kept >= room:
                    return kept
                pairing = live.get((app.id, contract_id))
                if self._unpaired(app, pairing) is None:
                    self.reads.keep(app.id, (contract_id, version, apps_version),
                                    *self._listing(app, contract_id, pairing,
                                                   by_contract.get(contract_id, ())))
                    kept += 1
        return kept

"""App requests for the devices of a contract, answered from the read model
(:mod:`broker_bridge.registry.reads`) when it holds the answer at the store's versions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from broker_bridge.choices import PairingChoice
from broker_bridge.model import App, AuditEntry, Device, Pairing, PairingState
from broker_bridge.policy import ConsentRule
from broker_bridge.registry.freshness import KnownVersions
from broker_bridge.registry.reads import Versions
from broker_bridge.registry.references import ReferenceRules, number
from broker_bridge.registry.sight import Records, sight_of
from broker_bridge.registry.work import Outcome, denied, refusal
from broker_bridge.storage.base import Store
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import AppOp, DevicesRequest, Reason, Reply, Status, parse_app_request

#: The reply of an answer sent from its encoding: the status is what counts.
_KEPT_OK = Reply(Status.OK)
_OK_VALUE = Status.OK.value
#: Contracts whose devices are read at once while filling the read model.
WARM_CHUNK = 500


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


#: A ``devices`` request as apps encode it: a CBOR map of two, ``op`` first, then
#: ``msisdn`` as text of fewer than 24 bytes (RFC 8949 section 3.1: major types 5 and 3).
_PLAIN_DEVICES = re.compile(rb"\xa2\x62op\x67devices\x66msisdn([\x60-\x77])(\+[1-9][0-9]{1,14})",
                            re.DOTALL)


def plain_devices_number(payload: bytes) -> str | None:
    """The number of a ``devices`` request encoded the plain way (no separators in the
    number, no other key), read from its bytes; None for any other payload, which
    :func:`devices_number` then decodes. Whatever it returns, decoding would too."""
    found = _PLAIN_DEVICES.fullmatch(payload)
    if found is None or found[1][0] - 0x60 != len(found[2]):
        return None
    return found[2].decode("ascii")


class DeviceListing(ReferenceRules):
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

    def kept_answer(self, app_id: str, msisdn: str, *, store: Store | None = None,
                    known: KnownVersions | None = None) -> tuple[Outcome, AuditEntry] | None:
        """:meth:`kept_devices` for a request already parsed: the number it names. The
        versions come from ``known`` where given (see :mod:`.freshness`)."""
        versions = (known.get(msisdn) if known is not None
                    else (store or self.store).read_versions(msisdn))
        found = self._kept(app_id, msisdn, versions)
        if found is None:
            return None
        encoded, entry = found
        return Outcome(_KEPT_OK, read_only=True, encoded=encoded), entry

    def _kept(self, app_id: str, msisdn: str, versions: Versions | None
              ) -> tuple[bytes, AuditEntry] | None:
        if versions is None:
            return None
        return self.kept_entry("app:" + app_id, app_id, msisdn, versions)

    def kept_entry(self, actor: str, app_id: str, msisdn: str, versions: Versions
                   ) -> tuple[bytes, AuditEntry] | None:
        """The kept answer (as sent) of ``app_id`` for ``msisdn`` at ``versions``, with its
        audit entry (``actor`` is ``app:<app_id>``); None when the read model has none."""
        kept = self.reads.get(app_id, versions)
        if kept is None:
            return None
        return kept.encoded, AuditEntry(0, self._clock(), actor, "devices", _OK_VALUE,
                                        versions[0], app_id, msisdn, kept.audit_detail)

    def devices(self, app_id: str, request: DevicesRequest, *,
                admitted: App | None = None) -> Outcome:
        """Every device of the contract behind the number, for a paired app (or one with
        standing consent): from the read model when it holds the answer at the store's
        versions, else from the store (and kept). A user reference stands for its number
        (:mod:`~broker_bridge.registry.references`)."""
        request = self.resolved(app_id, request)
        # The versions first: whatever is read after them is at least as new.
        msisdn = number(request)
        versions = self.store.read_versions(msisdn)
        found = self._kept(app_id, msisdn, versions)
        if found is not None:
            encoded, entry = found
            self.store.append_audits([entry])
            return Outcome(self.reads.reply(encoded), read_only=True, encoded=encoded)
        actor = f"app:{app_id}"
        audit = {"app_id": app_id, "subject": request.msisdn}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self.refuse(actor, "devices", app, **audit)
        routed = self.route(number(request))
        if isinstance(routed, Reply):
            return self.refuse(actor, "devices", self._stranger(app, request, routed),
                               **audit)
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
                 devices: Iterable[Device], *, records: Records | None = None,
                 choices: Mapping[str, PairingChoice] | None = None,
                 store: Store | None = None) -> tuple[Reply, dict[str, Any]]:
        """The ``ok`` reply with the contract's ``devices`` as ``app`` sees them (through
        the user's choice, see :mod:`.sight`), and its audit detail; ``records`` and
        ``choices`` when read for many answers at once (through ``store``)."""
        store = store or self.store
        view = self.view(app)
        sight = sight_of(store, view, app, live, choices=choices)
        listed = [r.to_wire() for r in (records or Records(store, contract_id)).listing(
            view, sight, devices)]
        detail = {"devices": len(listed), "pairing": live.id if live is not None else None}
        return Reply.ok(contract=view.contract_ref(contract_id), devices=listed), detail

    def _stranger(self, app: App, request: DevicesRequest, routed: Reply) -> Reply:
        """The refusal for a number not served here: what an unpaired app hears for a
        customer's number (pending while its decoy is open), so that it learns nothing
        of the number; only apps with standing consent hear where it is served."""
        if self.policy.pairing(app, None).consent is ConsentRule.STANDING:
            return routed
        refused = self._unpaired(app, self.store.live_decoy(app.id, number(request)))
        return refused if refused is not None else routed

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

    def warm_reads(self, limit: int | None = None, *, store: Store | None = None,
                   chunk: int = WARM_CHUNK) -> int:
        """Fill the read model from the store (``store``: another connection to it, for
        filling while serving): every answer an app may get now, up to ``limit``
        (default: the read model's own); how many were kept. Read ``chunk`` contracts at
        a time, so that memory holds one chunk's devices besides the answers kept."""
        store = store or self.store
        room = self.reads.limit if limit is None else min(limit, self.reads.limit)
        contracts, apps_version = store.contract_versions()  # first, see devices()
        admitted = [a for a in store.apps() if self.policy.admit(a.id, a).allowed]
        live: dict[tuple[str, str], Pairing] = {
            (p.app_id, p.contract_id): p for p in store.pairings(
                states=(PairingState.PENDING, PairingState.ACTIVE))}
        choices = store.all_pairing_choices()
        # Without a pairing, what an app may see depends on the app alone: asked once.
        standing = {app.id: self._unpaired(app, None) is None for app in admitted}
        wanted = []
        for contract_id in sorted(contracts):
            for app in admitted:
                pairing = live.get((app.id, contract_id))
                if (standing[app.id] if pairing is None
                        else self._unpaired(app, pairing) is None):
                    wanted.append((contract_id, app, pairing))
            if len(wanted) >= room:
                break
        del wanted[room:]
        for start in range(0, len(wanted), chunk):
            part = wanted[start:start + chunk]
            ids = sorted({w[0] for w in part})
            # The users' choices, presence and history in a few reads, not three per answer.
            by_contract = store.devices_by_contract(ids)
            presence, history = store.all_presences(ids), store.all_bindings(ids)
            for contract_id, app, pairing in part:
                records = Records(store, contract_id, presence=presence, history=history)
                self.reads.keep(app.id, (contract_id, contracts[contract_id], apps_version),
                                *self._listing(app, contract_id, pairing,
                                               by_contract.get(contract_id, ()),
                                               records=records, choices=choices,
                                               store=store))
        return len(wanted)

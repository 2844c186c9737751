"""The registry's side of number portability: importing the operator's list, and what it
changes at once. A number the list gives to another operator leaves its contract here, and
the pairings made with it end (``pairing-ended``, reason ``number-ported``); a number it
brings here with a contract is filed under it. Requests are answered by the list through
:meth:`~broker_bridge.registry.core.RegistryCore.route`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from broker_bridge.model import PairingState
from broker_bridge.portability import HOME, check_references, read_portability
from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.work import Effects, UnitOfWork
from mps_wire.messages import Reason

_LIVE = (PairingState.ACTIVE, PairingState.PENDING)


@dataclass(frozen=True, slots=True)
class PortabilityReport:
    """What an import did."""

    entries: int
    replaced: int
    ported_out: tuple[str, ...]
    ported_in: tuple[str, ...]
    pairings_ended: int


class PortabilityRules(RegistryCore):
    """Imports the portability list and applies it."""

    def import_portability(self, path: str | os.PathLike[str], *, home: str = HOME,
                           actor: str = "operator:cli") -> tuple[PortabilityReport, Effects]:
        """Replace the portability list with the file's, all of it or (on any problem,
        :class:`~broker_bridge.errors.OperatorDataError` naming each) nothing, and apply
        the entries valid now. Audited."""
        entries = read_portability(path, home=home)
        contracts = {e.contract for e in entries if e.contract is not None}
        check_references(str(path), entries, {o.id for o in self.store.operators()},
                         {c for c in contracts if self.store.contract(c) is not None})
        with self._work() as work:
            replaced = self.store.replace_portability(entries)
            out, ended = self._port_out_due(work, actor)
            came = self._port_in_due(work)
            report = PortabilityReport(len(entries), replaced, out, came, ended)
            work.audit(actor, "portability", "imported", subject=os.fspath(path),
                       detail={"entries": report.entries, "replaced": replaced,
                               "ported_out": len(out), "ported_in": len(came),
                               "pairings_ended": ended})
        return report, work.effects

    def apply_due_ports(self, effects: Effects, *, since: int,
                        actor: str = "operator:portability") -> int:
        """Apply the list's periods that began after ``since`` (housekeeping: a port
        that comes due); returns when it looked, the next round's ``since``."""
        with self._work(effects) as work:
            self._port_out_due(work, actor, since=since)
            self._port_in_due(work, since=since)
            return work.now

    def _port_out_due(self, work: UnitOfWork, actor: str, *, since: int = -1
                      ) -> tuple[tuple[str, ...], int]:
        """Numbers filed here that the list gives away now: they leave their contract,
        redirect from now on, and the pairings made with them end."""
        store = self.store
        moved, ended = [], 0
        for msisdn, operator in store.filed_ported_away(work.now, since):
            contract_id = store.remove_number(msisdn)
            store.set_ported(msisdn, operator)
            moved.append(msisdn)
            for pairing in store.pairings(contract_id=contract_id, states=_LIVE):
                app = store.app(pairing.app_id)
                if pairing.msisdn == msisdn and app is not None and events.end(
                        work, app, pairing, by=actor, reason=Reason.NUMBER_PORTED):
                    ended += 1
            work.audit(actor, "port-out", "ok", contract_id=contract_id, subject=msisdn,
                       detail={"operator": operator})
        return tuple(moved), ended

    def _port_in_due(self, work: UnitOfWork, *, since: int = -1) -> tuple[str, ...]:
        """Numbers the list brings here now with a contract: filed under it."""
        store = self.store
        filed = []
        for msisdn, contract_id in store.unfiled_ported_in(work.now, since):
            store.upsert_number(msisdn, contract_id)
            store.clear_ported(msisdn)
            filed.append(msisdn)
        return tuple(filed)

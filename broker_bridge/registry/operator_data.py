"""Operator data changes: contracts, numbers, subscriptions, number portability."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from broker_bridge.errors import UnknownContractError, UnknownEntityError
from broker_bridge.model import Change, Contract, OtherOperator, Subscription
from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.work import Effects, Outcome, UnitOfWork, refusal
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import (
    EventKind,
    OperatorOp,
    OperatorRequest,
    Reason,
    Reply,
    Status,
    parse_operator_request,
)

_Apply = Callable[["OperatorRules", OperatorRequest, UnitOfWork], dict[str, Any]]


class OperatorRules(RegistryCore):
    """Changes the operator's systems send, each all of it or nothing."""

    def handle_operator(self, source: str, msg: Mapping[str, Any]) -> Outcome:
        """Apply a decoded operator data change from ``source``."""
        try:
            request = parse_operator_request(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.operator_request(source, request)

    def operator_request(self, source: str, request: OperatorRequest) -> Outcome:
        """Apply one validated operator data change, all of it or nothing."""
        actor = f"operator:{source}"
        action = f"operator:{request.op.value}"
        subject = request.msisdn or request.iccid or request.contract
        try:
            with self._work() as work:
                body = _APPLY[request.op](self, request, work)
                work.audit(actor, action, Status.OK.value, contract_id=body.get("contract"),
                           subject=subject, detail=request.to_wire())
        except (UnknownContractError, UnknownEntityError) as exc:
            reply = refusal(Status.ERROR, ErrorCode.NOT_FOUND, str(exc))
            return self.refuse(actor, action, reply, contract_id=request.contract,
                               subject=subject, detail=request.to_wire())
        return Outcome(Reply.ok(op=request.op.value,
                                **{k: v for k, v in body.items() if v is not None}),
                       work.effects)

    def _add_contract(self, req: OperatorRequest, _work: UnitOfWork) -> dict[str, Any]:
        contract = Contract(req.contract or "", req.holder or "")
        change = self.store.upsert_contract(contract)
        for msisdn in req.msisdns:
            self.file_number(msisdn, contract.id)
        return {"contract": contract.id, "change": change.value}

    def _add_number(self, req: OperatorRequest, _work: UnitOfWork) -> dict[str, Any]:
        change = self.file_number(req.msisdn or "", req.contract or "")
        return {"contract": req.contract, "msisdn": req.msisdn, "change": change.value}

    def _remove_number(self, req: OperatorRequest, _work: UnitOfWork) -> dict[str, Any]:
        left = self.store.remove_number(req.msisdn or "")
        if left is None:
            raise UnknownEntityError("number", req.msisdn or "")
        return {"contract": left, "msisdn": req.msisdn, "change": "removed"}

    def _add_subscription(self, req: OperatorRequest, work: UnitOfWork) -> dict[str, Any]:
        sub = Subscription(req.iccid or "", req.imsi, req.msisdn, req.contract or "")
        change = self.put_subscription(sub, work.effects)
        return {"contract": sub.contract_id, "iccid": sub.iccid, "change": change.value}

    def _remove_subscription(self, req: OperatorRequest, work: UnitOfWork) -> dict[str, Any]:
        removed, devices = self.drop_subscription(req.iccid or "", work.effects)
        return {"contract": removed.contract_id, "iccid": removed.iccid,
                "change": "removed", "devices_removed": devices}

    def _port_out(self, req: OperatorRequest, _work: UnitOfWork) -> dict[str, Any]:
        other = self.store.operator(req.operator or "")
        if other is None:
            raise UnknownEntityError("operator", req.operator or "")
        left = self.store.remove_number(req.msisdn or "")
        self.store.set_ported(req.msisdn or "", other.id)
        return {"contract": left, "msisdn": req.msisdn, "operator": other.id,
                "change": "ported-out"}

    def file_number(self, msisdn: str, contract_id: str) -> Change:
        """File a number under a contract; a number ported away before comes back."""
        with self.store.transaction():
            change = self.store.upsert_number(msisdn, contract_id)
            self.store.clear_ported(msisdn)
        return change

    def put_subscription(self, sub: Subscription, effects: Effects) -> Change:
        """Add or update a subscription; a move to another contract moves its devices,
        which the apps of both contracts are told."""
        store = self.store
        with self._work(effects) as work:
            before = store.subscription_by_iccid(sub.iccid)
            moving = (store.devices_by_iccid(sub.iccid)
                      if before is not None and before.contract_id != sub.contract_id else [])
            change = store.upsert_subscription(sub)
            if sub.msisdn is not None:
                store.clear_ported(sub.msisdn)
            for device in moving:
                events.announce(work, device.contract_id, EventKind.DEVICE_REMOVED, device,
                                reason=Reason.LEFT_CONTRACT)
                moved = store.device(device.eid)
                if moved is not None:
                    events.announce(work, moved.contract_id, EventKind.DEVICE_ADDED, moved)
        return change

    def drop_subscription(self, iccid: str, effects: Effects) -> tuple[Subscription, int]:
        """Remove a subscription; the devices using it leave their contract."""
        with self._work(effects) as work:
            sub = self.store.subscription_by_iccid(iccid)
            if sub is None:
                raise UnknownEntityError("subscription", iccid)
            devices = self.store.devices_by_iccid(iccid)
            for device in devices:
                events.announce(work, device.contract_id, EventKind.DEVICE_REMOVED, device,
                                reason=Reason.SUBSCRIPTION_REMOVED)
                self.store.remove_device(device.eid)
            self.store.remove_subscription(iccid)
        return sub, len(devices)

    def put_operator(self, operator: OtherOperator) -> Change:
        """Add or update another operator and its number prefixes."""
        return self.store.upsert_operator(operator)


_APPLY: dict[OperatorOp, _Apply] = {
    OperatorOp.ADD_CONTRACT: OperatorRules._add_contract,
    OperatorOp.ADD_NUMBER: OperatorRules._add_number,
    OperatorOp.PORT_IN: OperatorRules._add_number,
    OperatorOp.REMOVE_NUMBER: OperatorRules._remove_number,
    OperatorOp.ADD_SUBSCRIPTION: OperatorRules._add_subscription,
    OperatorOp.REMOVE_SUBSCRIPTION: OperatorRules._remove_subscription,
    OperatorOp.PORT_OUT: OperatorRules._port_out,
}

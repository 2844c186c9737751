"""eSIM profile operations with the user's word (schema version 8).

A disable, enable or delete of a profile on a device of a contract is requested by the
operator, a partner app or the device's own LPA, and waits for the user: approved, it
becomes an order the registry signs with its order key (bound to the EID, numbered per
device, expiring), which the bridge sends to the device; the device's report closes it.
Refused or expired requests change nothing. Every step is written to the audit log.

The order key is derived from a secret of the registry's store (``registry_secrets``), so
every bridge process of a registry signs with the same key; its public half goes into the
agents' settings (``mps-bridge esim key``).
"""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.choices import EsimAction, EsimRequest, EsimState
from broker_bridge.model import App, TrustLevel
from broker_bridge.registry.core import new_id
from broker_bridge.registry.pairing import PairingRules
from broker_bridge.registry.portal_views import AlreadyDecided, NotFound
from broker_bridge.registry.work import Effects, Outcome, refusal
from mps_wire.errors import ErrorCode
from mps_wire.identifiers import validate_eid, validate_iccid
from mps_wire.messages import AppRequest, Reason, Reply, Status
from mps_wire.orders import EsimOrder, EsimOrderResult, OrderAction, OrderOutcome, sign_order
from mps_wire.requests import EsimAppRequest

ESIM_REQUEST_TTL = 24 * 3600.0
"""Seconds a request waits for the user's word before it expires."""
ORDER_TTL = 3600.0
"""Seconds an approved order stays valid on the device."""
REPORT_GRACE = 300.0
"""Seconds after its expiry an order sent but never reported is closed as failed."""
_FINISHED = (EsimState.DONE, EsimState.FAILED)

_ORDER_KEY_NAME = "esim-orders"
# The order of the P-256 group: a secret maps onto a private scalar in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class EsimRules(PairingRules):
    """Requests for profile operations, the user's word on them, and their orders."""

    def app_request(self, app_id: str, request: AppRequest, *, admitted: App | None = None
                    ) -> Outcome:
        """Answer one validated app request (``esim-request`` here, the others by
        :class:`~broker_bridge.registry.pairing.PairingRules`)."""
        if isinstance(request, EsimAppRequest):
            return self.esim_app_request(app_id, request, admitted=admitted)
        return super().app_request(app_id, request, admitted=admitted)

    def esim_app_request(self, app_id: str, request: EsimAppRequest, *,
                         admitted: App | None = None) -> Outcome:
        """A partner app paired with the contract asks for a profile operation on one of
        its devices; ``ok`` with the request, which waits for the user's word."""
        actor = f"app:{app_id}"
        audit = {"app_id": app_id, "subject": request.eid,
                 "detail": {"action": request.action.value, "iccid": request.iccid}}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self.refuse(actor, "esim-request", app, **audit)
        if app.trust is not TrustLevel.PARTNER:
            return self.refuse(actor, "esim-request", refusal(
                Status.DENIED, ErrorCode.DENIED, f"app {app.id} is not a partner: only "
                "partner apps may ask for eSIM operations", Reason.UNTRUSTED), **audit)
        routed = self.route(request.msisdn)
        if isinstance(routed, Reply):
            return self.refuse(actor, "esim-request", routed, **audit)
        refused = self._unpaired(app, self.store.live_pairing(app.id, routed.id))
        device = self.store.device(request.eid)
        if refused is None and (device is None or device.contract_id != routed.id):
            refused = refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                              f"no device {request.eid} on this contract")
        if refused is not None:
            return self.refuse(actor, "esim-request", refused, contract_id=routed.id,
                               **audit)
        made = self.request_esim(request.eid, request.action.value, request.iccid,
                                 actor=actor)
        return Outcome(Reply.ok(request=made.id, state=made.state.value,
                                expires_at=made.expires_at))

    _order_key: ec.EllipticCurvePrivateKey | None = None

    def now(self) -> int:
        """The registry's time (ms since the epoch)."""
        return self._clock()

    def order_key(self) -> ec.EllipticCurvePrivateKey:
        """The registry's order-signing key (P-256), the same in every bridge process."""
        if self._order_key is None:
            secret = self.store.secret(_ORDER_KEY_NAME)
            scalar = int.from_bytes(secret, "big") % (_P256_ORDER - 1) + 1
            self._order_key = ec.derive_private_key(scalar, ec.SECP256R1())
        return self._order_key

    def request_esim(self, eid: str, action: EsimAction | str, iccid: str, *, actor: str,
                     ttl: float = ESIM_REQUEST_TTL) -> EsimRequest:
        """Ask the user of the device's contract for a profile operation; the request
        waits for their word. NotFound for a device the registry does not know; ValueError
        for a bad EID, ICCID or action."""
        validate_eid(eid)
        validate_iccid(iccid)
        chosen = EsimAction(action)
        device = self.store.device(eid)
        if device is None:
            self._audit(actor, "esim-request", "not-found", subject=eid,
                        detail={"action": chosen.value, "iccid": iccid})
            raise NotFound(f"no device {eid} is registered", "unknown-device")
        with self._work() as work:
            request = EsimRequest(new_id("esim"), eid, device.contract_id, chosen, iccid,
                                  EsimState.AWAITING, actor, work.now,
                                  work.now + int(ttl * 1000))
            self.store.add_esim_request(request)
            work.audit(actor, "esim-request", EsimState.AWAITING.value,
                       contract_id=device.contract_id, subject=request.id,
                       detail={"eid": eid, "action": chosen.value, "iccid": iccid})
        return request

    def decide_esim(self, contract_id: str, request_id: str, *, approve: bool,
                    actor: str | None = None) -> Effects:
        """The user's word on a request of ``contract_id``: approved, it is numbered and
        becomes an order for the bridge to send; refused, nothing happens. NotFound for a
        request of another contract or none; AlreadyDecided once decided or expired."""
        who = actor or f"user:{contract_id}"
        request = self.store.esim_request(request_id)
        if request is None or request.contract_id != contract_id:
            raise NotFound(f"no eSIM request {request_id} on this contract",
                           "unknown-request")
        if request.state is not EsimState.AWAITING:
            raise AlreadyDecided(f"eSIM request {request_id} is {request.state.value} "
                                 "already", "answered")
        if request.expires_at <= self._clock():
            with self.store.transaction():
                self._expire(self._clock(), request)
            raise AlreadyDecided(f"eSIM request {request_id} has expired", "expired")
        with self._work() as work:
            if approve:
                decided = replace(request, state=EsimState.APPROVED, decided_at=work.now,
                                  decided_by=who,
                                  counter=self.store.next_esim_counter(request.eid),
                                  order_expires=work.now + int(ORDER_TTL * 1000))
            else:
                decided = replace(request, state=EsimState.REFUSED, decided_at=work.now,
                                  decided_by=who)
            if not self.store.update_esim_request(decided, expect=EsimState.AWAITING):
                raise AlreadyDecided(f"eSIM request {request_id} was decided already",
                                     "answered")
            work.audit(who, "esim-consent", decided.state.value, contract_id=contract_id,
                       subject=request_id, detail={"eid": request.eid,
                                                   "action": request.action.value,
                                                   "iccid": request.iccid,
                                                   "counter": decided.counter})
        return work.effects

    def _expire(self, now: int, request: EsimRequest) -> None:
        expired = replace(request, state=EsimState.EXPIRED, decided_at=now,
                          decided_by="registry")
        if self.store.update_esim_request(expired, expect=EsimState.AWAITING):
            self.store.append_audit("registry", "esim-consent", EsimState.EXPIRED.value,
                                    contract_id=request.contract_id, subject=request.id,
                                    detail={"eid": request.eid}, now=now)

    def expire_esim_requests(self) -> int:
        """Expire requests nobody answered in time; how many."""
        now = self._clock()
        due = [r for r in self.store.esim_requests(states=(EsimState.AWAITING,))
               if r.expires_at <= now]
        for request in due:
            with self.store.transaction():
                self._expire(now, request)
        return len(due)

    def orders_to_send(self) -> list[tuple[EsimRequest, bytes]]:
        """Approved requests whose order is still valid, each with its signed order (the
        bridge publishes them and calls :meth:`order_sent`); an order past its expiry is
        closed as failed instead."""
        now = self._clock()
        found = []
        for request in self.store.esim_requests(states=(EsimState.APPROVED,)):
            if (request.order_expires or 0) <= now:
                self._close(request, EsimState.APPROVED, EsimState.FAILED, "order expired",
                            actor="registry")
                continue
            order = EsimOrder(request.id, request.eid, OrderAction(request.action.value),
                              request.iccid, request.counter or 0, request.order_expires or 0)
            found.append((request, sign_order(order, self.order_key())))
        return found

    def orders_to_clear(self) -> list[EsimRequest]:
        """Finished orders still retained on their device's orders topic: each device's
        newest sent order, once done or failed (an older one was replaced by a newer
        order already). A sent order never reported is closed as failed first, once
        :data:`REPORT_GRACE` seconds past its expiry."""
        now = self._clock()
        newest: dict[str, EsimRequest] = {}
        for found in self.store.esim_requests(states=(EsimState.SENT, *_FINISHED)):
            if found.sent_at is None:
                continue
            request: EsimRequest | None = found
            if (found.state is EsimState.SENT
                    and (found.order_expires or 0) + int(REPORT_GRACE * 1000) <= now
                    and self._close(found, EsimState.SENT, EsimState.FAILED,
                                    "no report from the device", actor="registry")):
                request = self.store.esim_request(found.id)  # as closed
            if request is None:
                continue
            held = newest.get(request.eid)
            if held is None or (request.sent_at or 0) >= (held.sent_at or 0):
                newest[request.eid] = request
        return [r for r in newest.values() if r.state in _FINISHED and r.cleared_at is None]

    def order_cleared(self, request: EsimRequest) -> bool:
        """Note that the retained order of a finished request was removed."""
        return self.store.update_esim_request(replace(request, cleared_at=self._clock()),
                                              expect=request.state)

    def order_sent(self, request: EsimRequest) -> bool:
        """Note that the order of ``request`` reached the broker."""
        with self._work() as work:
            sent = replace(request, state=EsimState.SENT, sent_at=work.now)
            if not self.store.update_esim_request(sent, expect=EsimState.APPROVED):
                return False
            work.audit("registry", "esim-order", "sent", contract_id=request.contract_id,
                       subject=request.id, detail={"eid": request.eid,
                                                   "counter": request.counter})
        return True

    def order_result(self, eid: str, result: EsimOrderResult) -> bool:
        """Record the device's report of an order; False for one it was not sent (or
        whose report came already, or from another device)."""
        request = self.store.esim_request(result.op)
        if request is None or request.eid != eid or result.eid != eid:
            self._audit(f"device:{eid}", "esim-result", "unknown", subject=result.op,
                        detail={"outcome": result.outcome.value})
            return False
        state = EsimState.DONE if result.outcome is OrderOutcome.DONE else EsimState.FAILED
        reason = result.outcome.value if result.reason is None else (
            f"{result.outcome.value}: {result.reason}")
        return self._close(request, EsimState.SENT, state, reason, actor=f"device:{eid}")

    def _close(self, request: EsimRequest, expect: EsimState, state: EsimState,
               result: str, *, actor: str) -> bool:
        with self._work() as work:
            closed = replace(request, state=state, finished_at=work.now, result=result)
            if not self.store.update_esim_request(closed, expect=expect):
                return False
            work.audit(actor, "esim-result", state.value, contract_id=request.contract_id,
                       subject=request.id, detail={"eid": request.eid,
                                                   "action": request.action.value,
                                                   "result": result})
        return True

"""App requests: pairing with a contract, its devices, unpairing and the event stream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from broker_bridge.model import App, ConsentSource, Contract, Pairing, PairingState
from broker_bridge.policy import ConsentRule, PolicyDecision
from broker_bridge.registry import events
from broker_bridge.registry.core import new_id
from broker_bridge.registry.listing import DeviceListing
from broker_bridge.registry.references import number
from broker_bridge.registry.sight import Records, sight_of
from broker_bridge.registry.work import Outcome, UnitOfWork, denied, refusal
from mps_wire import codec
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import (
    AppOp,
    AppRequest,
    DevicesRequest,
    EventsSinceRequest,
    PairRequest,
    Reason,
    Reply,
    Status,
    UnpairRequest,
    parse_app_request,
)

EVENTS_PAGE_BYTES = 48 * 1024
"""About how much event data one ``events-since`` reply carries; the rest is ``more``."""

_APP_OPS = frozenset(op.value for op in AppOp)


class PairingRules(DeviceListing):
    """What apps ask: to pair, for the devices, to unpair, for their events."""

    def handle_app(self, app_id: str, msg: Mapping[str, Any]) -> Outcome:
        """Answer a decoded app request: unknown apps are denied before anything else."""
        app = self._admit(app_id)
        if isinstance(app, Reply):
            op = msg.get("op")
            return self.refuse(f"app:{app_id}", op if isinstance(op, str) and
                               op in _APP_OPS else "request", app, app_id=app_id)
        try:
            request = parse_app_request(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.app_request(app_id, request, admitted=app)

    def app_request(self, app_id: str, request: AppRequest, *, admitted: App | None = None
                    ) -> Outcome:
        """Answer one validated app request; ``admitted`` is the app when the caller has
        just admitted it."""
        if isinstance(request, PairRequest):
            return self.pair(app_id, request, admitted=admitted)
        if isinstance(request, DevicesRequest):
            return self.devices(app_id, request, admitted=admitted)
        if isinstance(request, UnpairRequest):
            return self.unpair(app_id, request, admitted=admitted)
        if isinstance(request, EventsSinceRequest):
            return self.events_since(app_id, request, admitted=admitted)
        # Served by another concern of the registry (see EsimRules.app_request).
        return Outcome(refusal(Status.ERROR, ErrorCode.BAD_REQUEST,
                               f"{type(request).__name__} is not served here"))

    def pair(self, app_id: str, request: PairRequest, *,
             admitted: App | None = None) -> Outcome:
        """Pair the app with the contract behind the number, asking the user if needed.

        ``ok`` with every device of the contract when paired at once (standing consent,
        or already paired); ``pending`` while the user is asked; ``denied`` for an app
        whose trust or purposes do not allow it; ``redirect``/``not-found`` for a number
        not served here. An app has at most one live pairing per contract: asking again
        while one is pending or active answers about that one.
        """
        actor = f"app:{app_id}"
        request = self.resolved(app_id, request)
        audit = {"app_id": app_id, "subject": request.msisdn,
                 "detail": {"purpose": request.purpose}}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self.refuse(actor, "pair", app, **audit)
        routed = self.route(number(request))
        # Decided on the app and purpose alone: a refusal tells nothing of the number.
        decision = self.policy.pairing(app, request.purpose)
        if not decision.allowed:
            return self.refuse(actor, "pair", denied(decision), contract_id=(
                routed.id if isinstance(routed, Contract) else None), **audit)
        if isinstance(routed, Reply):
            if decision.consent is ConsentRule.STANDING:
                return self.refuse(actor, "pair", routed, **audit)
            # No enumeration: the app is told what a customer's number gets, and the
            # request expires as a prompt nobody answers.
            return self._decoy(app, request)
        contract = routed
        if self._asked_for_another(app, contract, request):
            # The same pairing would link the two numbers before consent.
            return self._decoy(app, request)
        with self._work() as work:
            live = self.store.live_pairing(app.id, contract.id)
            if (live is not None and live.state is PairingState.PENDING
                    and (live.expires_at or 0) <= work.now):
                events.expire(work, live)
                live = None
            repeat = live is not None
            if live is None:
                live = self._start_pairing(work, app, decision, contract, request)
            reply = self._pairing_reply(app, live, work.now)
            work.audit(actor, "pair", reply.status.value, contract_id=contract.id,
                       app_id=app.id, subject=request.msisdn,
                       detail={"purpose": request.purpose, "pairing": live.id,
                               "repeat": repeat, "consent": decision.consent.value})
        return Outcome(reply, work.effects)

    def _asked_for_another(self, app: App, contract: Contract, request: PairRequest) -> bool:
        """Whether the user is being asked already about the app, for another number of
        the contract."""
        asked = self.store.live_pairing(app.id, contract.id)
        return (asked is not None and asked.state is PairingState.PENDING
                and asked.msisdn != request.msisdn and (asked.expires_at or 0) > self._clock())

    def _decoy(self, app: App, request: PairRequest) -> Outcome:
        with self._work() as work:
            live = self.store.live_decoy(app.id, number(request))
            if live is not None and (live.expires_at or 0) <= work.now:
                events.expire_decoy(work, live)
                live = None
            repeat = live is not None
            if live is None:
                live = Pairing(id=new_id("pr"), app_id=app.id, contract_id="",
                               msisdn=number(request), purpose=request.purpose,
                               state=PairingState.PENDING, created_at=work.now,
                               expires_at=work.now + self.consent_ttl_ms)
                self.store.add_decoy(live)
            reply = self._pairing_reply(app, live, work.now)
            work.audit(f"app:{app.id}", "pair", reply.status.value, app_id=app.id,
                       subject=request.msisdn,
                       detail={"purpose": request.purpose, "pairing": live.id,
                               "repeat": repeat, "decoy": True})
        return Outcome(reply, work.effects)

    def _start_pairing(self, work: UnitOfWork, app: App, decision: PolicyDecision,
                       contract: Contract, request: PairRequest) -> Pairing:
        now = work.now
        pairing = Pairing(id=new_id("pr"), app_id=app.id, contract_id=contract.id,
                          msisdn=number(request), purpose=request.purpose,
                          state=PairingState.PENDING, created_at=now)
        if decision.consent is ConsentRule.STANDING:
            pairing = replace(pairing, state=PairingState.ACTIVE,
                              consent=ConsentSource.STANDING, decided_at=now,
                              decided_by="operator")
            self.store.add_pairing(pairing)
            events.granted(work, app, pairing)
        else:
            pairing = replace(pairing, prompt_id=new_id("cp"),
                              expires_at=now + self.consent_ttl_ms)
            self.store.add_pairing(pairing)
            work.consent_changed(contract.id)
        return pairing

    def _pairing_reply(self, app: App, pairing: Pairing, now: int) -> Reply:
        view = self.view(app)
        body: dict[str, Any] = {"pairing": pairing.id, "state": pairing.state.value,
                                "contract": view.pairing_ref(pairing),
                                "purpose": pairing.purpose}
        if pairing.state is PairingState.PENDING:
            body["expires_at"] = pairing.expires_at or now
            return Reply(Status.PENDING, message="waiting for the user's consent", body=body)
        body["consent"] = (pairing.consent or ConsentSource.USER).value
        sight = sight_of(self.store, view, app, pairing)
        body["devices"] = [r.to_wire() for r in Records(self.store, pairing.contract_id).listing(
            view, sight, self.store.devices_of_contract(pairing.contract_id))]
        return Reply.ok(**body)

    def unpair(self, app_id: str, request: UnpairRequest, *,
               admitted: App | None = None) -> Outcome:
        """End the app's pairing (named by id, or by the number it was made with).

        No enumeration: for a number not served here the app's decoy is ended (or, with
        none, the app told it has no such pairing), as for a customer's number; only apps
        with standing consent learn where a number is served."""
        actor = f"app:{app_id}"
        audit: dict[str, Any] = {"app_id": app_id,
                                 "subject": request.msisdn or request.pairing}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self.refuse(actor, "unpair", app, **audit)
        pairing = self._to_unpair(app, request)
        if isinstance(pairing, Reply):
            return self.refuse(actor, "unpair", pairing, **audit)
        if pairing is None:
            return self.refuse(actor, "unpair", refusal(
                Status.ERROR, ErrorCode.NOT_FOUND, "no such pairing of this app",
                Reason.NOT_PAIRED), **audit)
        with self._work() as work:
            decoy = not pairing.contract_id
            if pairing.state.live:
                if decoy:
                    events.end_decoy(work, app, pairing, reason=Reason.UNPAIRED)
                else:
                    events.end(work, app, pairing, by=actor, reason=Reason.UNPAIRED)
            current = ((self.store.decoy(pairing.id) if decoy
                        else self.store.pairing(pairing.id)) or pairing)
            work.audit(actor, "unpair", Status.OK.value, contract_id=pairing.contract_id or None,
                       **audit, detail={"pairing": pairing.id, "was": pairing.state.value,
                                        **({"decoy": True} if decoy else {})})
        # Before consent the number's reference: unpairing links no two numbers either.
        return Outcome(Reply.ok(pairing=pairing.id, state=current.state.value,
                                contract=self.view(app).pairing_ref(current)), work.effects)

    def _to_unpair(self, app: App, request: UnpairRequest) -> Pairing | Reply | None:
        """The pairing (or decoy) an unpair request names, None for none; the routing
        reply for a number served elsewhere, told only to apps with standing consent."""
        if request.pairing is not None:
            pairing = self.store.pairing(request.pairing) or self.store.decoy(request.pairing)
            # Another app's pairing: as if it did not exist.
            return pairing if pairing is not None and pairing.app_id == app.id else None
        routed = self.route(request.msisdn or "")
        if not isinstance(routed, Reply):
            return self.store.live_pairing(app.id, routed.id)
        if self.policy.pairing(app, None).consent is ConsentRule.STANDING:
            return routed
        return self.store.live_decoy(app.id, request.msisdn or "")

    def events_since(self, app_id: str, request: EventsSinceRequest, *,
                     admitted: App | None = None) -> Outcome:
        """The app's events after its cursor ``seq``, a page at a time."""
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return Outcome(app)
        last = self.store.last_event_seq(app.id)
        fetched = self.store.events_since(app.id, request.seq, limit=request.limit)
        page: list[dict[str, Any]] = []
        size = 0
        for event in fetched:
            size += len(codec.encode(event.payload))
            if page and size > EVENTS_PAGE_BYTES:
                break
            page.append(event.payload)
        more = bool(page) and page[-1]["seq"] < last
        return Outcome(Reply.ok(events=page, last=last, more=more), read_only=True)

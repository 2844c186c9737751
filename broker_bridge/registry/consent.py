"""The user's side of consent: open prompts and granted consents, answers, withdrawals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from broker_bridge.model import App, ConsentSource, Pairing, PairingState
from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.sight import choosable
from broker_bridge.registry.work import Outcome, Refused, UnitOfWork, refusal
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import (
    ConsentAnswerRequest,
    ConsentListRequest,
    ConsentWithdrawRequest,
    Reason,
    Reply,
    Status,
    UserRequest,
    parse_user_request,
)
from mps_wire.messages import Decision as UserDecision


def _not_found(message: str, reason: str) -> Refused:
    return Refused(refusal(Status.ERROR, ErrorCode.NOT_FOUND, message, reason))


class ConsentRules(RegistryCore):
    """What the user agent of a contract asks and answers."""

    def handle_user(self, contract_id: str, msg: Mapping[str, Any]) -> Outcome:
        """Answer a decoded request of the user agent of ``contract_id``."""
        try:
            request = parse_user_request(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.user_request(contract_id, request)

    def user_request(self, contract_id: str, request: UserRequest) -> Outcome:
        """Answer one validated request of the user agent of ``contract_id``."""
        if self.store.contract(contract_id) is None:
            return Outcome(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                   f"no contract {contract_id}"))
        if isinstance(request, ConsentListRequest):
            return Outcome(Reply.ok(**self.consent_view(contract_id)))
        if isinstance(request, ConsentAnswerRequest):
            return self.answer(contract_id, request.prompt, request.decision)
        return self.withdraw(contract_id, request)

    def consent_view(self, contract_id: str) -> dict[str, Any]:
        """The contract's open prompts and granted consents, as the user agent sees them."""
        now = self._clock()
        prompts = []
        granted = []
        for pairing in self.store.pairings(contract_id=contract_id,
                                           states=(PairingState.PENDING,
                                                   PairingState.ACTIVE)):
            app = self.store.app(pairing.app_id)
            if app is None:
                continue
            if pairing.state is PairingState.PENDING:
                if (pairing.expires_at or 0) > now:
                    prompts.append(self.prompt_wire(app, pairing))
            else:
                granted.append({"pairing": pairing.id, "app": app.id, "app_name": app.name,
                                "trust": app.trust.value, "purpose": pairing.purpose,
                                "consent": (pairing.consent or ConsentSource.USER).value,
                                "since": pairing.decided_at or pairing.created_at})
        return {"contract": contract_id, "prompts": prompts, "granted": granted}

    def prompt_wire(self, app: App, pairing: Pairing) -> dict[str, Any]:
        """One consent prompt as shown to the user (``consent-prompt`` in the CDDL)."""
        fields = sorted({"device_id", *choosable(app, self.policy.disclose(app).fields)})
        return {"prompt": pairing.prompt_id or "", "pairing": pairing.id, "app": app.id,
                "app_name": app.name, "trust": app.trust.value, "purpose": pairing.purpose,
                "fields": fields, "created_at": pairing.created_at,
                "expires_at": pairing.expires_at or pairing.created_at}

    def consent_snapshot(self, contract_id: str) -> tuple[int, dict[str, Any]]:
        """The retained consent-topic message of a contract and its revision."""
        # The revision is read first: should a change slip in between, the snapshot is
        # newer than its number says, and the change's own publication follows.
        revision = self.store.consent_revision(contract_id)
        view = self.consent_view(contract_id)
        return revision, {"contract": contract_id, "rev": revision, "ts": self._clock(),
                          "prompts": view["prompts"]}

    def answer(self, contract_id: str, prompt_id: str, decision: UserDecision, *,
               actor: str | None = None) -> Outcome:
        """The user's answer to a consent prompt of ``contract_id``."""
        who = actor or f"user:{contract_id}"
        try:
            with self._work() as work:
                pairing, app = self._open_prompt(work, contract_id, prompt_id)
                self._decide(work, app, pairing, decision, who)
        except Refused as refused:
            return self.refuse(who, "consent", refused.reply, contract_id=contract_id,
                               subject=prompt_id, detail={"decision": decision.value})
        return Outcome(Reply.ok(prompt=prompt_id, decision=decision.value,
                                pairing=pairing.id, app=app.id), work.effects)

    def _open_prompt(self, work: UnitOfWork, contract_id: str, prompt_id: str
                     ) -> tuple[Pairing, App]:
        """The pending pairing of a prompt still open on the contract, and its app."""
        pairing = self.store.pairing_by_prompt(prompt_id)
        if pairing is None or pairing.contract_id != contract_id:
            raise _not_found(f"no consent prompt {prompt_id} for this contract",
                             Reason.UNKNOWN_PROMPT)
        app = self.store.app(pairing.app_id)
        if pairing.state is not PairingState.PENDING or app is None:
            raise _not_found(f"consent prompt {prompt_id} was already {pairing.state.value}",
                             Reason.ANSWERED)
        if (pairing.expires_at or 0) <= work.now:
            raise _not_found(f"consent prompt {prompt_id} has expired", Reason.EXPIRED)
        return pairing, app

    def _decide(self, work: UnitOfWork, app: App, pairing: Pairing, decision: UserDecision,
                who: str) -> None:
        approve = decision is UserDecision.APPROVE
        if approve:
            decided = replace(pairing, state=PairingState.ACTIVE, consent=ConsentSource.USER,
                              decided_at=work.now, decided_by=who)
        else:
            decided = replace(pairing, state=PairingState.DENIED, decided_at=work.now,
                              decided_by=who)
        if not self.store.update_pairing(decided, expect=PairingState.PENDING):
            raise _not_found(f"consent prompt {pairing.prompt_id} was already answered",
                             Reason.ANSWERED)
        if approve:
            events.granted(work, app, decided)
        else:
            events.denied(work, app, decided, Reason.USER_DENIED)
        work.consent_changed(pairing.contract_id)
        work.audit(who, "consent", decision.value, app_id=app.id,
                   contract_id=pairing.contract_id, subject=pairing.prompt_id,
                   detail={"pairing": pairing.id, "purpose": pairing.purpose})

    def withdraw(self, contract_id: str, request: ConsentWithdrawRequest, *,
                 actor: str | None = None) -> Outcome:
        """The user withdraws consent: the pairings named end, their apps are told."""
        who = actor or f"user:{contract_id}"
        if request.pairing is not None:
            found = self.store.pairing(request.pairing)
            targets = ([found] if found is not None and found.contract_id == contract_id
                       and found.state is PairingState.ACTIVE else [])
        else:
            targets = self.store.pairings(app_id=request.app, contract_id=contract_id,
                                          states=(PairingState.ACTIVE,))
        if not targets:
            return self.refuse(who, "consent-withdraw", refusal(
                Status.ERROR, ErrorCode.NOT_FOUND, "no such granted consent on this contract",
                Reason.NOT_PAIRED), contract_id=contract_id,
                subject=request.pairing or request.app)
        ended: list[str] = []
        with self._work() as work:
            for pairing in targets:
                app = self.store.app(pairing.app_id)
                if app is not None and events.end(work, app, pairing, by=who,
                                                  reason=Reason.CONSENT_WITHDRAWN):
                    ended.append(pairing.id)
                    work.audit(who, "consent-withdraw", "ok", contract_id=contract_id,
                               app_id=pairing.app_id, subject=pairing.id,
                               detail={"purpose": pairing.purpose})
        return Outcome(Reply.ok(ended=ended), work.effects)

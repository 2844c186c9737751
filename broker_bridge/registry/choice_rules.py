"""The user's choice: approving a prompt for some devices and some fields, narrowing or
widening a pairing's view later, ending it (schema version 8, see :mod:`.sight`).

Refusals raise :class:`~broker_bridge.registry.portal_views.PortalError` (after their audit
entry) and change nothing; an id of another contract is refused as an unknown one.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker_bridge.choices import PairingChoice
from broker_bridge.model import App, Pairing, PairingState
from broker_bridge.registry import events
from broker_bridge.registry.consent import ConsentRules
from broker_bridge.registry.portal_views import (
    CHOOSABLE_EXTRA,
    AlreadyDecided,
    ChoiceRefused,
    NotFound,
    PortalError,
)
from broker_bridge.registry.sight import choosable
from broker_bridge.registry.work import Effects, Outcome, Refused, UnitOfWork, refusal
from mps_wire.errors import ErrorCode
from mps_wire.messages import (
    ConsentAnswerRequest,
    ConsentWithdrawRequest,
    Decision,
    Reason,
    Reply,
    Status,
    UserRequest,
)
from mps_wire.records import DISCLOSABLE

_KNOWN_FIELDS = DISCLOSABLE | frozenset(CHOOSABLE_EXTRA)


def _portal_error(refused: Refused) -> PortalError:
    reply = refused.reply
    reason = str(reply.body.get("reason", ""))
    message = reply.message or reason
    if reply.code is ErrorCode.NOT_FOUND and reason in (Reason.ANSWERED, Reason.EXPIRED):
        return AlreadyDecided(message, reason)
    return NotFound(message, reason or "not-found")


class ChoiceRules(ConsentRules):
    """What the user of a contract chooses for the apps paired with it."""

    def allowed_fields(self, app: App) -> frozenset[str]:
        """The fields the user may choose for ``app``."""
        return choosable(app, self.policy.disclose(app).fields)

    def _choice(self, work: UnitOfWork, app: App, pairing: Pairing,
                devices: Iterable[str] | None, fields: Iterable[str] | None,
                who: str) -> PairingChoice:
        """The checked choice for ``pairing``; raises ChoiceRefused / NotFound."""
        allowed = self.allowed_fields(app)
        chosen = allowed if fields is None else frozenset(fields)
        unknown = sorted(chosen - _KNOWN_FIELDS)
        if unknown:
            raise ChoiceRefused(f"unknown field {unknown[0]!r}; the fields are "
                                f"{', '.join(sorted(_KNOWN_FIELDS))}", "unknown-field")
        beyond = sorted(chosen - allowed)
        if beyond:
            raise ChoiceRefused(f"app {app.id} ({app.trust.value}) may not be shown "
                                f"{', '.join(beyond)}; it may be shown "
                                f"{', '.join(sorted(allowed))}", "field-not-allowed")
        eids: tuple[str, ...] | None = None
        if devices is not None:
            eids = tuple(sorted(set(devices)))
            if not eids:
                raise ChoiceRefused("choose at least one device", "empty-choice")
            own = {d.eid for d in self.store.devices_of_contract(pairing.contract_id)}
            for eid in eids:
                if eid not in own:
                    raise NotFound(f"no device {eid} on this contract", "unknown-device")
        return PairingChoice(pairing.id, pairing.contract_id, eids, chosen, work.now, who)

    def approve_choice(self, contract_id: str, prompt_id: str, *,
                       devices: Iterable[str] | None = None,
                       fields: Iterable[str] | None = None,
                       actor: str | None = None) -> Effects:
        """Approve a prompt for ``devices`` (EIDs; None: all, future ones too) and
        ``fields`` (None: all the app may be shown); its app is paired and told what it
        sees."""
        who = actor or f"user:{contract_id}"
        detail = {"decision": "approve", "devices": None if devices is None else
                  sorted(devices), "fields": None if fields is None else sorted(fields)}
        try:
            with self._work() as work:
                try:
                    pairing, app = self._open_prompt(work, contract_id, prompt_id)
                except Refused as refused:
                    raise _portal_error(refused) from None
                choice = self._choice(work, app, pairing, devices, fields, who)
                if devices is not None or fields is not None:
                    # Without a choice the pairing follows its app's trust level.
                    self.store.put_pairing_choice(choice)
                self._decide(work, app, pairing, Decision.APPROVE, who)
        except PortalError as exc:
            self._audit(who, "consent", "refused", contract_id=contract_id,
                        subject=prompt_id, detail={**detail, "reason": exc.reason})
            raise
        return work.effects

    def user_request(self, contract_id: str, request: UserRequest) -> Outcome:
        """Answer one validated request of the user agent; an approval may choose devices
        and fields (see :meth:`approve_choice`)."""
        if (not isinstance(request, ConsentAnswerRequest)
                or request.decision is not Decision.APPROVE
                or (request.devices is None and request.fields is None)):
            return super().user_request(contract_id, request)
        if self.store.contract(contract_id) is None:
            return Outcome(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                   f"no contract {contract_id}"))
        try:
            effects = self.approve_choice(contract_id, request.prompt, devices=request.devices,
                                          fields=request.fields)
        except PortalError as exc:
            code = (ErrorCode.NOT_FOUND if isinstance(exc, NotFound | AlreadyDecided)
                    else ErrorCode.BAD_REQUEST)
            return Outcome(refusal(Status.ERROR, code, str(exc), exc.reason))
        pairing = self.store.pairing_by_prompt(request.prompt)
        return Outcome(Reply.ok(prompt=request.prompt, decision=Decision.APPROVE.value,
                                pairing=pairing.id if pairing else "",
                                app=pairing.app_id if pairing else ""), effects)

    def deny_prompt(self, contract_id: str, prompt_id: str, *, actor: str | None = None
                    ) -> Effects:
        """Deny a prompt; its app is told."""
        who = actor or f"user:{contract_id}"
        outcome = self.answer(contract_id, prompt_id, Decision.DENY, actor=who)
        if not outcome.reply.is_ok:
            raise _portal_error(Refused(outcome.reply))
        return outcome.effects

    def _active(self, contract_id: str, pairing_id: str) -> tuple[Pairing, App]:
        pairing = self.store.pairing(pairing_id)
        app = self.store.app(pairing.app_id) if pairing is not None else None
        if (pairing is None or app is None or pairing.contract_id != contract_id
                or pairing.state is not PairingState.ACTIVE):
            raise NotFound(f"no active pairing {pairing_id} on this contract",
                           Reason.NOT_PAIRED)
        return pairing, app

    def set_view(self, contract_id: str, pairing_id: str, *,
                 devices: Iterable[str] | None = None, fields: Iterable[str] | None = None,
                 actor: str | None = None) -> Effects:
        """Narrow or widen what an active pairing sees; its app gets ``view-changed``."""
        who = actor or f"user:{contract_id}"
        detail = {"devices": None if devices is None else sorted(devices),
                  "fields": None if fields is None else sorted(fields)}
        try:
            with self._work() as work:
                pairing, app = self._active(contract_id, pairing_id)
                choice = self._choice(work, app, pairing, devices, fields, who)
                self.store.put_pairing_choice(choice)
                events.view_changed(work, app, pairing)
                work.audit(who, "consent-view", "ok", contract_id=contract_id,
                           app_id=app.id, subject=pairing.id, detail=detail)
        except PortalError as exc:
            self._audit(who, "consent-view", "refused", contract_id=contract_id,
                        subject=pairing_id, detail={**detail, "reason": exc.reason})
            raise
        return work.effects

    def end_pairing(self, contract_id: str, pairing_id: str, *, actor: str | None = None
                    ) -> Effects:
        """End an active pairing of the contract (consent withdrawn); its app is told."""
        who = actor or f"user:{contract_id}"
        outcome = self.withdraw(contract_id, ConsentWithdrawRequest(pairing=pairing_id),
                                actor=who)
        if not outcome.reply.is_ok:
            raise NotFound(f"no active pairing {pairing_id} on this contract",
                           Reason.NOT_PAIRED)
        return outcome.effects

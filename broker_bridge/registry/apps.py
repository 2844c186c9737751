"""App administration: registering apps with their trust and purposes, removing them."""

from __future__ import annotations

from broker_bridge.model import App, Change, ConsentSource, PairingState
from broker_bridge.policy import ConsentRule
from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.work import Effects, UnitOfWork
from mps_wire.messages import Reason

_LIVE = (PairingState.PENDING, PairingState.ACTIVE)


class AppRules(RegistryCore):
    """What the operator decides about apps, and what it ends."""

    def put_app(self, app: App, *, actor: str = "operator:cli") -> tuple[Change, Effects]:
        """Register or update an app. Pairings its new trust, purposes or consent no longer
        allow end (``pairing-ended``); user consents survive a change of trust level."""
        with self._work() as work:
            before = self.store.app(app.id)
            change = self.store.upsert_app(app)
            if before is not None and change is Change.UPDATED:
                self._enforce(work, app, by=actor)
            if change is not Change.UNCHANGED:
                work.audit(actor, "app", change.value, app_id=app.id,
                           detail={"trust": app.trust.value, "purposes": list(app.purposes),
                                   "standing_consent": app.standing_consent})
        return change, work.effects

    def _enforce(self, work: UnitOfWork, app: App, *, by: str) -> None:
        for pairing in self.store.pairings(app_id=app.id, states=_LIVE):
            decision = self.policy.pairing(app, pairing.purpose)
            reason: str | None = None
            if not decision.allowed:
                reason = (Reason.PURPOSE_REVOKED
                          if decision.reason == Reason.PURPOSE_NOT_ALLOWED
                          else Reason.TRUST_CHANGED)
            elif (pairing.consent is ConsentSource.STANDING
                  and decision.consent is not ConsentRule.STANDING):
                reason = Reason.TRUST_CHANGED
            if reason is not None:
                events.end(work, app, pairing, by=by, reason=reason)

    def remove_app(self, app_id: str, *, actor: str = "operator:cli") -> tuple[bool, Effects]:
        """Unregister an app: its pairings end first (``pairing-ended``, ``app-removed``)."""
        with self._work() as work:
            app = self.store.app(app_id)
            if app is None:
                return False, work.effects
            for pairing in self.store.pairings(app_id=app_id, states=_LIVE):
                events.end(work, app, pairing, by=actor, reason=Reason.APP_REMOVED)
            self.store.remove_app(app_id)
            work.audit(actor, "app", "removed", app_id=app_id)
        return True, work.effects

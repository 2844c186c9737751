"""The registry's housekeeping: what time alone changes."""

from __future__ import annotations

from broker_bridge.registry import events
from broker_bridge.registry.portability import PortabilityRules
from broker_bridge.registry.work import Effects


class Housekeeping(PortabilityRules):
    """Rounds any bridge may run, side by side with the others."""

    _ports_since = -1
    """Where the last round's look at the portability list ended (-1: never looked)."""

    def expire_prompts(self, *, limit: int = 100) -> Effects:
        """Expire the consent prompts whose time is up; their apps get ``pairing-denied``."""
        effects = Effects()
        now = self._clock()
        for pairing in self.store.expired_prompts(now, limit=limit):
            # One unit of work each: a prompt another process expired first is skipped.
            with self._work(effects) as work:
                events.expire(work, pairing)
        for decoy in self.store.expired_decoys(now, limit=limit):
            with self._work(effects) as work:
                events.expire_decoy(work, decoy)
        # Ports that came due since the last round (the first round looks at all).
        self._ports_since = self.apply_due_ports(effects, since=self._ports_since)
        return effects

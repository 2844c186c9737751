"""The registry's housekeeping: what time alone changes."""

from __future__ import annotations

from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.work import Effects


class Housekeeping(RegistryCore):
    """Rounds any bridge may run, side by side with the others."""

    def expire_prompts(self, *, limit: int = 100) -> Effects:
        """Expire the consent prompts whose time is up; their apps get ``pairing-denied``."""
        effects = Effects()
        for pairing in self.store.expired_prompts(self._clock(), limit=limit):
            # One unit of work each: a prompt another process expired first is skipped.
            with self._work(effects) as work:
                events.expire(work, pairing)
        return effects

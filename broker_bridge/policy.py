"""Who may ask the registry what: the seam where trust levels and consent plug in.

The registry asks its policy twice per app request: :meth:`AccessPolicy.admit` before it
looks anything up (so an unknown app learns nothing, not even whether a number exists),
and :meth:`AccessPolicy.disclose` once it knows the contract, to learn which fields of the
devices the app may see. A policy that needs the user's consent will answer ``pending``
from ``disclose``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from broker_bridge.model import App, Contract
from broker_bridge.records import DISCLOSABLE


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's answer; ``fields`` are the device fields an allowed app may see."""

    verdict: Verdict
    reason: str = ""
    fields: frozenset[str] = DISCLOSABLE

    @classmethod
    def allow(cls, fields: frozenset[str] = DISCLOSABLE) -> Decision:
        return cls(Verdict.ALLOW, fields=fields)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(Verdict.DENY, reason=reason, fields=frozenset())

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


class AccessPolicy(Protocol):
    """Decides app requests; called on the MQTT network thread, so it must not block long."""

    def admit(self, app_id: str, app: App | None) -> Decision:
        """May the app (``None`` when the operator does not know it) ask at all?"""
        ...

    def disclose(self, app_id: str, app: App | None, contract: Contract) -> Decision:
        """May the app see the devices of ``contract``, and which of their fields?"""
        ...


class KnownAppsPolicy:
    """Every app the operator registered sees every field; unknown apps are denied."""

    def admit(self, app_id: str, app: App | None) -> Decision:
        if app is None:
            return Decision.deny(f"app {app_id} is not registered with the operator")
        return Decision.allow()

    def disclose(self, app_id: str, app: App | None, contract: Contract) -> Decision:
        return Decision.allow() if app is not None else self.admit(app_id, app)

"""Who may ask the registry what: trust levels, consent and which device fields an app sees.

The registry asks its policy three questions: :meth:`AccessPolicy.admit` before it looks
anything up (so an unknown app learns nothing, not even whether a number exists),
:meth:`AccessPolicy.pairing` when an app asks to pair (refused, ask the user, or answered
at once on the operator's standing consent), and :meth:`AccessPolicy.disclose` for the
fields of each device an app may see.

The default, :class:`TrustPolicy`, discloses by trust level:

============  ====================================================  ===================
trust level   device fields                                         pairing
============  ====================================================  ===================
partner       device_id, eid, imei, iccid, imsi, msisdn, ip,        at once with
              capabilities, model; the real contract id             standing consent,
                                                                    else the user is
                                                                    asked
verified      device_id, ip, capabilities, model; a pseudonymous    the user is asked
              contract reference
unverified    nothing                                               refused
============  ====================================================  ===================

``device_id`` is always a pseudonym, stable per app and device (an HMAC of the EID under a
secret of the registry), so an app's own device ids never change, not even with its trust
level, and two apps cannot match their ids. Timestamps are always present.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from broker_bridge.model import App, TrustLevel
from mps_wire.messages import Reason
from mps_wire.records import DISCLOSABLE


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class ConsentRule(enum.StrEnum):
    """How an allowed pairing gets its consent."""

    ASK = "ask"  # a prompt to the user; the app gets ``pending``
    STANDING = "standing"  # the operator's standing consent; answered at once


#: The device fields each trust level sees (see the module's table).
FIELDS_BY_TRUST: dict[TrustLevel, frozenset[str]] = {
    TrustLevel.PARTNER: DISCLOSABLE,
    TrustLevel.VERIFIED: frozenset({"ip", "capabilities", "model"}),
    TrustLevel.UNVERIFIED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """A policy's answer; ``fields`` are the device fields an allowed app may see.

    ``reason`` is a :class:`~mps_wire.messages.Reason` value for refusals, ``message``
    the readable explanation.
    """

    verdict: Verdict
    reason: str = ""
    fields: frozenset[str] = DISCLOSABLE
    consent: ConsentRule = ConsentRule.ASK
    message: str = ""
    real_contract: bool = True

    @classmethod
    def allow(cls, fields: frozenset[str] = DISCLOSABLE, *,
              consent: ConsentRule = ConsentRule.ASK, real_contract: bool = True) -> PolicyDecision:
        return cls(Verdict.ALLOW, fields=fields, consent=consent, real_contract=real_contract)

    @classmethod
    def deny(cls, reason: str, message: str = "") -> PolicyDecision:
        return cls(Verdict.DENY, reason=reason, fields=frozenset(), message=message or reason)

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


class AccessPolicy(Protocol):
    """Decides app requests; called on the MQTT network thread, so it must not block long."""

    def admit(self, app_id: str, app: App | None) -> PolicyDecision:
        """May the app (``None`` when the operator does not know it) ask at all?"""
        ...

    def pairing(self, app: App, purpose: str | None) -> PolicyDecision:
        """May the app pair (for ``purpose``; None: a look-up without one), and how?"""
        ...

    def disclose(self, app: App) -> PolicyDecision:
        """Which device fields the app sees, and whether it sees real contract ids."""
        ...


class TrustPolicy:
    """The operator's rules: trust levels, allowed purposes and standing consent."""

    def admit(self, app_id: str, app: App | None) -> PolicyDecision:
        if app is None:
            return PolicyDecision.deny(Reason.UNKNOWN_APP,
                                 f"app {app_id} is not registered with the operator")
        return PolicyDecision.allow()

    def pairing(self, app: App, purpose: str | None) -> PolicyDecision:
        if app.trust is TrustLevel.UNVERIFIED:
            return PolicyDecision.deny(Reason.UNTRUSTED,
                                 f"app {app.id} is not verified by the operator")
        if purpose is not None and purpose not in app.purposes:
            return PolicyDecision.deny(Reason.PURPOSE_NOT_ALLOWED,
                                 f"app {app.id} may not pair for the purpose {purpose!r}")
        disclosed = self.disclose(app)
        standing = app.trust is TrustLevel.PARTNER and app.standing_consent
        return PolicyDecision.allow(disclosed.fields,
                              consent=ConsentRule.STANDING if standing else ConsentRule.ASK,
                              real_contract=disclosed.real_contract)

    def disclose(self, app: App) -> PolicyDecision:
        return PolicyDecision.allow(FIELDS_BY_TRUST[app.trust],
                              real_contract=app.trust is TrustLevel.PARTNER)

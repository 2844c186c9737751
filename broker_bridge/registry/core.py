"""What every concern of the registry shares: its settings, the app views, number routing,
admission of apps, refusals with their audit entries and the unit of work."""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.model import App, AuditEntry, Contract, now_ms
from broker_bridge.policy import AccessPolicy, TrustPolicy
from broker_bridge.registry.reads import DEFAULT_LIMIT as READ_LIMIT
from broker_bridge.registry.reads import ReadModel
from broker_bridge.registry.work import (
    Effects,
    Outcome,
    UnitOfWork,
    denied,
    refusal,
    reply_detail,
)
from broker_bridge.storage.base import Store
from broker_bridge.views import AppView
from mps_wire.errors import ErrorCode
from mps_wire.messages import Reply, Status

DEFAULT_CONSENT_TTL = 900.0
"""Seconds a consent prompt stays open before it expires (and the app is denied)."""

_PSEUDONYM_KEY_NAME = "pseudonyms"


class SignaturePolicy(enum.StrEnum):
    """Which registrations must be signed (COSE_Sign1, ES256) by the device's enrolled key.

    Under both, a device whose key the operator enrolled is refused unless it signs with
    that key: enrolling a key can never be undone by an attacker sending unsigned
    messages.
    """

    REQUIRED = "required"  # every registration; a device without a key cannot register
    ENROLLED = "enrolled"  # devices with a key; the others may register unsigned


def new_id(kind: str) -> str:
    """A fresh random id: ``pr-`` for pairings, ``cp-`` for consent prompts."""
    return f"{kind}-{secrets.token_hex(8)}"


class RegistryCore:
    """The registry's state over ``store``; see :class:`broker_bridge.registry.Registry`."""

    def __init__(self, store: Store, *, policy: AccessPolicy | None = None,
                 consent_ttl: float = DEFAULT_CONSENT_TTL,
                 signatures: SignaturePolicy = SignaturePolicy.ENROLLED,
                 clock: Callable[[], int] = now_ms, read_limit: int = READ_LIMIT) -> None:
        if isinstance(consent_ttl, bool) or not consent_ttl > 0:
            raise ValueError(f"consent_ttl must be a positive number of seconds, "
                             f"not {consent_ttl!r}")
        self.signatures = SignaturePolicy(signatures)
        self.store = store
        self.policy: AccessPolicy = policy or TrustPolicy()
        self.consent_ttl_ms = int(consent_ttl * 1000)
        self._clock = clock
        self._secret: bytes | None = None
        self._keys: dict[bytes, ec.EllipticCurvePublicKey] = {}  # parsed public keys by their DER
        self.reads = ReadModel(store, limit=read_limit)

    def pseudonym_secret(self) -> bytes:
        """The registry's key for pseudonyms, made by the first process that asks."""
        if self._secret is None:
            self._secret = self.store.secret(_PSEUDONYM_KEY_NAME)
        return self._secret

    def view(self, app: App) -> AppView:
        """How ``app`` sees devices and contracts under the policy."""
        disclosed = self.policy.disclose(app)
        return AppView(app.id, self.pseudonym_secret(), disclosed.fields,
                       real_contract=disclosed.real_contract)

    def _work(self, effects: Effects | None = None) -> UnitOfWork:
        """A unit of work for one operation; ``effects`` of an enclosing one to add to."""
        return UnitOfWork(self.store, self._clock, self.view, effects)

    def _audit(self, actor: str, action: str, outcome: str, **kw: Any) -> AuditEntry:
        """An audit entry of an operation that needs no unit of work (it only reads)."""
        return self.store.append_audit(actor, action, outcome, now=self._clock(), **kw)

    def route(self, msisdn: str) -> Contract | Reply:
        """The contract behind a number, or the reply for a number not served here.

        The portability list decides first: a number it gives to another operator gets
        ``redirect`` to that operator's registry. Otherwise a number filed under a
        contract is ours (ported in or not); a number ported away or in another
        operator's prefix range (and not brought here by the list) gets ``redirect``;
        anything else is ``not-found``.
        """
        # The portability list first: it says who serves a number now, ahead of the
        # filing it leads to (a number it brings here is not redirected by its range).
        entry = self.store.port_entry(msisdn, self._clock())
        if entry is not None and entry.operator is not None:
            other = self.store.operator(entry.operator)
        else:
            contract = self.store.contract_by_msisdn(msisdn)
            if contract is not None:
                return contract
            other = None if entry is not None else (
                self.store.ported_to(msisdn) or self.store.operator_by_prefix(msisdn))
        if other is not None:
            return Reply(Status.REDIRECT, message=f"the number {msisdn} is served by "
                         f"{other.name}; ask its registry",
                         body={"msisdn": msisdn, "operator": other.id, "name": other.name,
                               "registry": other.registry, "prefix": other.prefix})
        return refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                       f"no contract for the number {msisdn}")

    def refuse(self, actor: str, action: str, reply: Reply, **kw: Any) -> Outcome:
        """Record a refusal in the audit log and return it as the outcome.

        ``kw`` are the audit entry's fields (``subject``, ``app_id``, ``contract_id``,
        ``detail``); the reply's code and reason are added to the detail.
        """
        self._audit(actor, action, "not-found" if reply.code is ErrorCode.NOT_FOUND else
                    reply.status.value,
                    detail={**kw.pop("detail", {}), **reply_detail(reply)}, **kw)
        return Outcome(reply)

    def _admit(self, app_id: str, admitted: App | None = None) -> App | Reply:
        if admitted is not None and admitted.id == app_id:
            return admitted
        app = self.store.app(app_id)
        decision = self.policy.admit(app_id, app)
        if app is None or not decision.allowed:
            return denied(decision)
        return app

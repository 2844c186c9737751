"""One operation's unit of work, and what an operation answers.

A :class:`UnitOfWork` owns the store's transaction (a savepoint inside a bridge's group, see
:meth:`Store.batch`) and collects what the operation causes: app events, whose sequence
numbers the transaction assigns, the contracts whose consent prompts changed, and audit
entries, all stamped with the one time of the operation. The caller publishes the collected
:class:`Effects` after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from broker_bridge.model import App, AuditEntry, StoredEvent
from broker_bridge.policy import PolicyDecision
from broker_bridge.storage.base import Store
from broker_bridge.views import AppView
from mps_wire.errors import ErrorCode
from mps_wire.messages import EventKind, Reply, Status


@dataclass(slots=True)
class Effects:
    """What a committed operation asks its caller to publish."""

    events: list[StoredEvent] = field(default_factory=list)
    consent: set[str] = field(default_factory=set)  # contracts whose open prompts changed

    def add(self, other: Effects) -> None:
        """Take over ``other``'s events and consent changes."""
        self.events += other.events
        self.consent |= other.consent

    def __bool__(self) -> bool:
        return bool(self.events or self.consent)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's reply and the effects to publish once it is committed."""

    reply: Reply
    effects: Effects = field(default_factory=Effects)
    #: Nothing but its audit entry was written: the reply tells only what was already
    #: committed, so it may go out before that entry commits (see the bridge).
    read_only: bool = False


class Refused(Exception):
    """Raised inside a unit of work to roll it back and answer ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.message)
        self.reply = reply


def refusal(status: Status, code: ErrorCode, message: str, reason: str | None = None
            ) -> Reply:
    """A refusing reply with a stable ``reason`` in its body."""
    return Reply(status, code=code, message=message,
                 body={"reason": str(reason)} if reason else {})


def denied(decision: PolicyDecision) -> Reply:
    """The refusal for a policy decision that does not allow a request."""
    return refusal(Status.DENIED, ErrorCode.DENIED, decision.message or "not allowed",
                   decision.reason or None)


def reply_detail(reply: Reply) -> dict[str, Any]:
    """What of a refusing reply goes into its audit entry."""
    detail: dict[str, Any] = {}
    if reply.code is not None:
        detail["code"] = reply.code.value
    for key in ("reason", "operator"):
        if key in reply.body:
            detail[key] = reply.body[key]
    return detail


class UnitOfWork:
    """One all-or-nothing operation on ``store``: enter it, change, leave it to commit.

    ``effects`` collects the events and consent changes; pass the effects of an enclosing
    operation to add to them. ``now`` is the operation's time, read once on entering.
    """

    __slots__ = ("_clock", "_transaction", "_view", "effects", "now", "store")

    def __init__(self, store: Store, clock: Callable[[], int], view: Callable[[App], AppView],
                 effects: Effects | None = None) -> None:
        self.store = store
        self.effects = Effects() if effects is None else effects
        self.now = 0
        self._clock = clock
        self._view = view
        self._transaction: AbstractContextManager[None] | None = None

    def __enter__(self) -> UnitOfWork:
        transaction = self.store.transaction()
        transaction.__enter__()
        self._transaction = transaction
        self.now = self._clock()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        transaction, self._transaction = self._transaction, None
        if transaction is None:
            raise RuntimeError("a unit of work left without entering it")
        return transaction.__exit__(et, ev, tb)

    def view(self, app: App) -> AppView:
        """How ``app`` sees devices and contracts."""
        return self._view(app)

    def event(self, app_id: str, kind: EventKind, payload: dict[str, Any], *,
              contract_id: str | None, pairing_id: str | None) -> StoredEvent:
        """Append an event to the app's stream; it is published after the commit."""
        event = self.store.append_event(app_id, kind, payload, contract_id=contract_id,
                                        pairing_id=pairing_id, now=self.now)
        self.effects.events.append(event)
        return event

    def consent_changed(self, contract_id: str) -> None:
        """The contract's open prompts changed: a new consent-topic revision."""
        self.store.bump_consent_revision(contract_id)
        self.effects.consent.add(contract_id)

    def audit(self, actor: str, action: str, outcome: str, **kw: Any) -> AuditEntry:
        """Append an audit entry, committed with the rest."""
        return self.store.append_audit(actor, action, outcome, now=self.now, **kw)

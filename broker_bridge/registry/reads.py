"""The read model: answers to ``devices`` queries kept in memory, exactly in step with the
store.

An answer is kept under the versions the store held when it was made: the version of the
contract (raised by the database, in the changing transaction, on any change to the
contract's devices, subscriptions or pairings) and the version of the apps (raised on any
change to any app: trust level, purposes, standing consent, removal). A query reads the
number's contract and both versions in one statement (:meth:`Store.read_versions`) and
uses a kept answer only when both are unchanged; anything else goes to the store and
keeps what it answers. Since the versions live in the database, a change committed by
any bridge process or administration command is seen by the very next query of every
process; no message between processes is needed, and none can arrive late.

What was read inside a transaction that was then rolled back may never have been
stored, and a later commit may reuse the same version numbers: a rollback anywhere in
this process (:attr:`Store.rollbacks`) forgets every kept answer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker_bridge.storage.base import Store
from mps_wire.codec import decode, encode
from mps_wire.messages import Reply

#: Answers kept at most; beyond that the oldest go first.
DEFAULT_LIMIT = 100_000

Versions = tuple[str, int, int]  # contract id, contract version, apps version


@dataclass(frozen=True, slots=True)
class Answer:
    """A ``devices`` answer for one app and contract, as of ``versions``: the reply as
    sent, and what its audit entry records (kept small: there may be very many)."""

    versions: Versions
    encoded: bytes
    devices: int
    pairing: str | None
    #: The detail of its audit entries, one dict shared by all of them (never changed).
    audit_detail: dict[str, Any] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "audit_detail",
                           {"devices": self.devices, "pairing": self.pairing})

    def detail(self) -> dict[str, Any]:
        """The detail of its audit entry."""
        return dict(self.audit_detail)


class ReadModel:
    """Kept answers by app and contract; safe to use from several threads."""

    def __init__(self, store: Store, *, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit!r}")
        self.store = store
        self.limit = limit
        self.hits = self.misses = 0
        self._answers: dict[tuple[str, str], Answer] = {}
        self._rollbacks = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._answers)

    def _check(self) -> None:
        rollbacks = self.store.rollbacks
        if rollbacks != self._rollbacks:
            self._answers.clear()
            self._rollbacks = rollbacks

    def get(self, app_id: str, versions: Versions) -> Answer | None:
        """The kept answer for ``app_id`` if it was made at ``versions``."""
        with self._lock:
            self._check()
            found = self._answers.get((app_id, versions[0]))
            if found is None or found.versions != versions:
                self.misses += 1
                return None
            self.hits += 1
            return found

    @staticmethod
    def reply(encoded: bytes) -> Reply:
        """The reply of a kept answer."""
        # The registry's own answer, whatever its size: the limit on received payloads
        # does not apply (a contract's list of devices grows past it).
        return Reply.from_wire(decode(encoded, max_size=len(encoded)))

    def keep(self, app_id: str, versions: Versions, reply: Reply,
             detail: Mapping[str, Any]) -> Answer:
        """Keep ``reply`` (with its audit ``detail``), read from the store after
        ``versions`` were read."""
        answer = Answer(versions, encode(reply.to_wire()), int(detail["devices"]),
                        detail["pairing"])
        with self._lock:
            self._check()
            if self.limit == 0:
                return answer
            key = (app_id, versions[0])
            self._answers.pop(key, None)
            while len(self._answers) >= self.limit:
                del self._answers[next(iter(self._answers))]
            self._answers[key] = answer
        return answer

    def clear(self) -> None:
        """Forget every kept answer."""
        with self._lock:
            self._answers.clear()

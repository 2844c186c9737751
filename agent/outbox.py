"""The device's durable outbox: its sequence counter, the publication not yet acknowledged,
and what the registry last acknowledged. Written atomically, so a crash at any step
resumes with the same message instead of a second registration."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from mps_common.durable import atomic_write
from mps_wire.errors import ValidationError
from mps_wire.messages import DeviceInfo

FORMAT_VERSION = 1


class OutboxError(AgentError):
    """The outbox file is unreadable or corrupt."""


def _key(info: DeviceInfo) -> list[Any]:
    wire = info.to_wire()
    return [wire.get(k) for k in sorted(wire) if k not in ("seq", "ts")]


@dataclass
class _State:
    seq: int = 0
    pending: dict[str, Any] | None = None
    delivered: list[Any] | None = None
    delivered_seq: int | None = None


class Outbox:
    """A JSON file holding the device's publication state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state = _State()

    def load(self) -> Outbox:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._state = _State()
            return self
        except (OSError, ValueError) as exc:
            raise OutboxError(f"outbox {self.path} is unreadable: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
            raise OutboxError(f"outbox {self.path} has an unknown format")
        seq = raw.get("seq")
        if not isinstance(seq, int) or seq < 0:
            raise OutboxError(f"outbox {self.path}: seq must be a non-negative integer")
        self._state = _State(seq=seq, pending=raw.get("pending"),
                             delivered=raw.get("delivered"),
                             delivered_seq=raw.get("delivered_seq"))
        return self

    def _save(self) -> None:
        data = {"version": FORMAT_VERSION, "seq": self._state.seq,
                "pending": self._state.pending, "delivered": self._state.delivered,
                "delivered_seq": self._state.delivered_seq}
        atomic_write(self.path, json.dumps(data).encode("utf-8"))

    @property
    def pending(self) -> DeviceInfo | None:
        """The publication waiting for the registry's acknowledgement, if any."""
        if self._state.pending is None:
            return None
        try:
            return DeviceInfo.from_wire(self._state.pending)
        except ValidationError as exc:
            raise OutboxError(f"outbox {self.path} holds an invalid message: {exc}") from exc

    def is_delivered(self, info: DeviceInfo) -> bool:
        """True when the registry already acknowledged this identity."""
        return self._state.delivered == _key(info)

    def stage(self, make: Callable[[int], DeviceInfo]) -> DeviceInfo:
        """Return the message to publish: the pending one when its identity is unchanged
        (resuming after a crash), else a new one built by ``make(seq)`` with the next
        sequence number, made durable before it is returned."""
        probe = make(self._state.seq)
        pending = self.pending
        if pending is not None and _key(pending) == _key(probe):
            return pending
        self._state.seq += 1
        info = make(self._state.seq)
        self._state.pending = info.to_wire()
        self._save()
        return info

    @property
    def seq(self) -> int:
        """The sequence number of the newest staged message."""
        return self._state.seq

    def resume_after(self, last_seq: int) -> None:
        """Continue numbering above ``last_seq``, the newest sequence number the registry
        accepted from this device (its ``replay`` refusal says which): a device whose
        outbox was lost or restored from an old copy would otherwise never be heard again.
        The pending message is dropped; the next :meth:`stage` makes a fresh one."""
        if last_seq < 0:
            raise ValueError("last_seq must not be negative")
        self._state.seq = max(self._state.seq, last_seq)
        self._state.pending = None
        self._save()

    def mark_delivered(self, info: DeviceInfo) -> None:
        self._state.delivered = _key(info)
        self._state.delivered_seq = info.seq
        if self._state.pending is not None and self._state.pending.get("seq") == info.seq:
            self._state.pending = None
        self._save()

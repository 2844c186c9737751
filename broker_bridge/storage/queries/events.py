"""The per-app event streams, which are also the outbox of what to publish."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from broker_bridge.model import StoredEvent
from broker_bridge.storage.core import Row, SqlCore
from mps_wire.messages import EventKind

_EVENT_SELECT = (
    "SELECT app_id, seq, kind, contract_id, pairing_id, payload, created_at, published_at "
    "FROM app_events"
)


_EVENT_INSERT = (
    "INSERT INTO app_events (app_id, seq, kind, contract_id, pairing_id, payload, created_at,"
    " published_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
)


def _event(row: Row) -> StoredEvent:
    return StoredEvent(app_id=row[0], seq=row[1], kind=EventKind(row[2]), contract_id=row[3],
                       pairing_id=row[4], payload=json.loads(row[5]), created_at=row[6],
                       published_at=row[7])


class EventQueries(SqlCore):
    """The per-app event streams, which are also the outbox of what to publish."""

    def append_event(self, app_id: str, kind: EventKind, payload: dict[str, Any], *,
                     contract_id: str | None = None, pairing_id: str | None = None,
                     now: int | None = None) -> StoredEvent:
        stamp = self._clock() if now is None else now
        with self.transaction():
            # The upsert takes the stream's row lock until commit: concurrent writers of
            # the same app's events queue here, so numbers follow commit order.
            seq = int(self._execute(
                "INSERT INTO app_streams (app_id, last_seq) VALUES (?, 1) "
                "ON CONFLICT (app_id) DO UPDATE SET last_seq = app_streams.last_seq + 1 "
                "RETURNING last_seq", (app_id,))[0][0])
            body = {**payload, "seq": seq}
            self._execute(
                _EVENT_INSERT,
                (app_id, seq, kind.value, contract_id, pairing_id,
                 json.dumps(body, separators=(",", ":"), sort_keys=True), stamp))
        return StoredEvent(app_id=app_id, seq=seq, kind=kind, contract_id=contract_id,
                           pairing_id=pairing_id, payload=body, created_at=stamp)

    def events_since(self, app_id: str, seq: int, *, limit: int = 100) -> list[StoredEvent]:
        rows = self._read(_EVENT_SELECT + " WHERE app_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                          (app_id, seq, limit))
        return [_event(row) for row in rows]

    def last_event_seq(self, app_id: str) -> int:
        rows = self._read("SELECT last_seq FROM app_streams WHERE app_id = ?", (app_id,))
        return int(rows[0][0]) if rows else 0

    def unpublished_events(self, created_before: int, *, limit: int = 100
                           ) -> list[StoredEvent]:
        rows = self._read(_EVENT_SELECT + " WHERE published_at IS NULL AND created_at < ? "
                          "ORDER BY created_at, app_id, seq LIMIT ?", (created_before, limit))
        return [_event(row) for row in rows]

    def mark_published(self, keys: Iterable[tuple[str, int]], *, now: int | None = None
                       ) -> None:
        stamp = self._clock() if now is None else now
        with self.transaction():
            for app_id, seq in keys:
                self._execute("UPDATE app_events SET published_at = ? WHERE app_id = ? AND "
                              "seq = ? AND published_at IS NULL", (stamp, app_id, seq))

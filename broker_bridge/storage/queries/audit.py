"""The append-only audit log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from broker_bridge.model import AuditEntry
from broker_bridge.storage.core import Row, SqlCore, _detail_json

_AUDIT_SELECT = (
    "SELECT id, at, actor, action, outcome, contract_id, app_id, subject, detail "
    "FROM audit_log"
)


def _audit(row: Row) -> AuditEntry:
    return AuditEntry(id=row[0], at=row[1], actor=row[2], action=row[3], outcome=row[4],
                      contract_id=row[5], app_id=row[6], subject=row[7],
                      detail=json.loads(row[8]))


class AuditQueries(SqlCore):
    """The append-only audit log."""

    def append_audit(self, actor: str, action: str, outcome: str, *,
                     contract_id: str | None = None, app_id: str | None = None,
                     subject: str | None = None, detail: dict[str, Any] | None = None,
                     now: int | None = None) -> AuditEntry:
        """Inside :meth:`batch`, the entry is written with the batch's others in one
        statement when it commits, and numbered then (its ``id`` here is 0)."""
        entry = AuditEntry(id=0, at=self._clock() if now is None else now, actor=actor,
                           action=action, outcome=outcome, contract_id=contract_id,
                           app_id=app_id, subject=subject, detail=dict(detail or {}))
        return self.append_audits([entry])[0]

    def append_audits(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        if not entries:
            return []
        # Encoded before the lock (unless batched, a hint read without it): a thread that
        # would read on this connection meanwhile (Store.data_version) finds it free sooner.
        details = None if self._batched else [_detail_json(e.detail) for e in entries]
        with self._lock:
            if self._batched:
                # Written with the batch's others in one statement when it commits.
                self._audit_buffer.extend(entries)
                return list(entries)
            with self.transaction():
                return self._write_audits(entries, details)

    def audit(self, *, contract_id: str | None = None, app_id: str | None = None,
              after: int = 0, limit: int | None = None) -> list[AuditEntry]:
        where = ["id > ?"]
        params: list[object] = [after]
        if contract_id is not None:
            where.append("contract_id = ?")
            params.append(contract_id)
        if app_id is not None:
            where.append("app_id = ?")
            params.append(app_id)
        sql = _AUDIT_SELECT + " WHERE " + " AND ".join(where) + " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_audit(row) for row in self._read(sql, params)]

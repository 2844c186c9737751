"""The append-only audit log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from broker_bridge.model import AuditEntry
from broker_bridge.storage.core import Row, SqlCore

_AUDIT_SELECT = (
    "SELECT id, at, actor, action, outcome, contract_id, app_id, subject, detail "
    "FROM audit_log"
)


_AUDIT_INSERT = (
    "INSERT INTO audit_log (id, at, actor, action, outcome, contract_id, app_id, subject, "
    "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        stamp = self._clock() if now is None else now
        details = dict(detail or {})
        with self.transaction():
            entry_id = int(self._execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'audit' "
                "RETURNING value")[0][0])
            self._execute(
                _AUDIT_INSERT,
                (entry_id, stamp, actor, action, outcome, contract_id, app_id, subject,
                 json.dumps(details, separators=(",", ":"), sort_keys=True)))
        return AuditEntry(id=entry_id, at=stamp, actor=actor, action=action, outcome=outcome,
                          contract_id=contract_id, app_id=app_id, subject=subject,
                          detail=details)

    def append_audits(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """Append ``entries`` (their ``id`` is ignored) in one statement, numbered in order;
        what they became."""
        if not entries:
            return []
        with self.transaction():
            last = int(self._execute(
                "UPDATE counters SET value = value + ? WHERE name = 'audit' "
                "RETURNING value", (len(entries),))[0][0])
            first = last - len(entries) + 1
            numbered = [replace(e, id=first + i) for i, e in enumerate(entries)]
            self._execute_many(_AUDIT_INSERT, [
                (e.id, e.at, e.actor, e.action, e.outcome, e.contract_id, e.app_id, e.subject,
                 json.dumps(e.detail, separators=(",", ":"), sort_keys=True))
                for e in numbered])
        return numbered

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

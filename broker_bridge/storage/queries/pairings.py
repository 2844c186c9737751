"""Pairings, consent prompts and the consent topic's revisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from broker_bridge.model import ConsentSource, Pairing, PairingState
from broker_bridge.storage.core import Row, SqlCore

_PAIRING_SELECT = (
    "SELECT id, app_id, contract_id, msisdn, purpose, state, consent, prompt_id, created_at, "
    "expires_at, decided_at, decided_by, ended_at, ended_by, end_reason FROM pairings"
)


_PAIRING_INSERT = (
    "INSERT INTO pairings (id, app_id, contract_id, msisdn, purpose, state, consent, "
    "prompt_id, created_at, expires_at, decided_at, decided_by, ended_at, ended_by, "
    "end_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _pairing(row: Row) -> Pairing:
    return Pairing(
        id=row[0], app_id=row[1], contract_id=row[2], msisdn=row[3], purpose=row[4],
        state=PairingState(row[5]), consent=ConsentSource(row[6]) if row[6] else None,
        prompt_id=row[7], created_at=row[8], expires_at=row[9], decided_at=row[10],
        decided_by=row[11], ended_at=row[12], ended_by=row[13], end_reason=row[14],
    )


_DECOY_SELECT = ("SELECT id, app_id, msisdn, purpose, created_at, expires_at "
                 "FROM pairing_decoys")


def _decoy(row: Row) -> Pairing:
    return Pairing(id=row[0], app_id=row[1], contract_id="", msisdn=row[2], purpose=row[3],
                   state=PairingState.PENDING, created_at=row[4], expires_at=row[5])


class PairingQueries(SqlCore):
    """Pairings, consent prompts and the consent topic's revisions."""

    def add_decoy(self, decoy: Pairing) -> None:
        d = decoy
        with self.transaction():
            self._execute("INSERT INTO pairing_decoys (id, app_id, msisdn, purpose, "
                          "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (d.id, d.app_id, d.msisdn, d.purpose, d.created_at,
                           d.expires_at or d.created_at))

    def live_decoy(self, app_id: str, msisdn: str) -> Pairing | None:
        rows = self._read(_DECOY_SELECT + " WHERE app_id = ? AND msisdn = ? AND closed_at "
                          "IS NULL ORDER BY created_at DESC LIMIT 1", (app_id, msisdn))
        return _decoy(rows[0]) if rows else None

    def decoy(self, decoy_id: str) -> Pairing | None:
        rows = self._read("SELECT id, app_id, msisdn, purpose, created_at, expires_at, "
                          "closed_at FROM pairing_decoys WHERE id = ?", (decoy_id,))
        if not rows:
            return None
        decoy, closed = _decoy(rows[0]), rows[0][6]
        if closed is None:
            return decoy
        ended = closed < (decoy.expires_at or 0)
        return replace(decoy, state=PairingState.ENDED if ended else PairingState.EXPIRED,
                       ended_at=closed if ended else None)

    def expired_decoys(self, now: int, *, limit: int = 100) -> list[Pairing]:
        rows = self._read(_DECOY_SELECT + " WHERE closed_at IS NULL AND expires_at <= ? "
                          "ORDER BY expires_at LIMIT ?", (now, limit))
        return [_decoy(row) for row in rows]

    def close_decoy(self, decoy_id: str, now: int) -> bool:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT 1 FROM pairing_decoys WHERE id = ? AND closed_at IS NULL"), (decoy_id,))
            if rows:
                self._execute("UPDATE pairing_decoys SET closed_at = ? WHERE id = ?",
                              (now, decoy_id))
            return bool(rows)

    def add_pairing(self, pairing: Pairing) -> None:
        p = pairing
        with self.transaction():
            self._execute(
                _PAIRING_INSERT,
                (p.id, p.app_id, p.contract_id, p.msisdn, p.purpose, p.state.value,
                 p.consent.value if p.consent else None, p.prompt_id, p.created_at,
                 p.expires_at, p.decided_at, p.decided_by, p.ended_at, p.ended_by,
                 p.end_reason))

    def update_pairing(self, pairing: Pairing, *, expect: PairingState) -> bool:
        p = pairing
        with self.transaction():
            rows = self._execute(self._locking("SELECT state FROM pairings WHERE id = ?"),
                                 (p.id,))
            if not rows or rows[0][0] != expect.value:
                return False
            self._execute(
                "UPDATE pairings SET state = ?, consent = ?, decided_at = ?, decided_by = ?, "
                "ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ?",
                (p.state.value, p.consent.value if p.consent else None, p.decided_at,
                 p.decided_by, p.ended_at, p.ended_by, p.end_reason, p.id))
            return True

    def pairing(self, pairing_id: str) -> Pairing | None:
        rows = self._read(_PAIRING_SELECT + " WHERE id = ?", (pairing_id,))
        return _pairing(rows[0]) if rows else None

    def pairing_by_prompt(self, prompt_id: str) -> Pairing | None:
        rows = self._read(_PAIRING_SELECT + " WHERE prompt_id = ?", (prompt_id,))
        return _pairing(rows[0]) if rows else None

    def live_pairing(self, app_id: str, contract_id: str) -> Pairing | None:
        rows = self._read(_PAIRING_SELECT + " WHERE app_id = ? AND contract_id = ? AND "
                          "state IN ('pending', 'active')", (app_id, contract_id))
        return _pairing(rows[0]) if rows else None

    def pairings(self, *, app_id: str | None = None, contract_id: str | None = None,
                 states: Sequence[PairingState] | None = None) -> list[Pairing]:
        where: list[str] = []
        params: list[object] = []
        if app_id is not None:
            where.append("app_id = ?")
            params.append(app_id)
        if contract_id is not None:
            where.append("contract_id = ?")
            params.append(contract_id)
        if states is not None:
            if not states:
                return []
            where.append("state IN (" + ", ".join("?" * len(states)) + ")")
            params += [state.value for state in states]
        # Only fixed conditions with placeholders are joined here, never values.
        clause = " WHERE " + " AND ".join(where) if where else ""
        rows = self._read(_PAIRING_SELECT + clause + " ORDER BY created_at, id", params)
        return [_pairing(row) for row in rows]

    def expired_prompts(self, now: int, *, limit: int = 100) -> list[Pairing]:
        rows = self._read(_PAIRING_SELECT + " WHERE state = 'pending' AND expires_at <= ? "
                          "ORDER BY expires_at, id LIMIT ?", (now, limit))
        return [_pairing(row) for row in rows]

    def bump_consent_revision(self, contract_id: str) -> int:
        with self.transaction():
            self._require_contract(contract_id)
            rows = self._execute("UPDATE contracts SET consent_rev = consent_rev + 1 "
                                 "WHERE id = ? RETURNING consent_rev", (contract_id,))
            return int(rows[0][0])

    def consent_revision(self, contract_id: str) -> int:
        rows = self._read("SELECT consent_rev FROM contracts WHERE id = ?", (contract_id,))
        return int(rows[0][0]) if rows else 0

    def unpublished_consent(self, *, limit: int = 100) -> list[tuple[str, int]]:
        rows = self._read("SELECT id, consent_rev FROM contracts "
                          "WHERE consent_rev > consent_published_rev ORDER BY id LIMIT ?",
                          (limit,))
        return [(row[0], int(row[1])) for row in rows]

    def mark_consent_published(self, contract_id: str, revision: int) -> None:
        with self.transaction():
            self._execute("UPDATE contracts SET consent_published_rev = ? WHERE id = ? "
                          "AND consent_published_rev < ?", (revision, contract_id, revision))

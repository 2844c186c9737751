"""The consent page's sign-in codes, rate-limit counters and browser sessions."""

from __future__ import annotations

from broker_bridge.model import SignInCode, WebSession
from broker_bridge.storage.core import Row, SqlCore

_CODE_SELECT = (
    "SELECT id, msisdn, client, created_at, expires_at, contract_id, code_hash, used_at, "
    "attempts FROM signin_codes"
)
_SESSION_SELECT = (
    "SELECT token_hash, contract_id, msisdn, csrf, created_at, expires_at, ended_at "
    "FROM web_sessions"
)
#: Throttle rows older than this (ms) are pruned as new ones are written.
_THROTTLE_KEEP = 24 * 3600 * 1000


def _code(row: Row) -> SignInCode:
    return SignInCode(id=row[0], msisdn=row[1], client=row[2], created_at=row[3],
                      expires_at=row[4], contract_id=row[5], code_hash=row[6], used_at=row[7],
                      attempts=row[8])


def _session(row: Row) -> WebSession:
    return WebSession(token_hash=row[0], contract_id=row[1], msisdn=row[2], csrf=row[3],
                      created_at=row[4], expires_at=row[5], ended_at=row[6])


class SignInQueries(SqlCore):
    """Sign-in codes, throttles and sessions of the consent page."""

    def add_signin_code(self, code: SignInCode) -> None:
        c = code
        with self.transaction():
            self._execute("INSERT INTO signin_codes (id, msisdn, client, created_at, "
                          "expires_at, contract_id, code_hash, used_at, attempts) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (c.id, c.msisdn, c.client, c.created_at, c.expires_at,
                           c.contract_id, c.code_hash, c.used_at, c.attempts))

    def signin_codes(self, msisdn: str, *, limit: int = 20) -> list[SignInCode]:
        rows = self._read(_CODE_SELECT + " WHERE msisdn = ? ORDER BY created_at DESC, id "
                          "LIMIT ?", (msisdn, limit))
        return [_code(r) for r in rows]

    def live_signin_code(self, msisdn: str, now: int) -> SignInCode | None:
        rows = self._read(_CODE_SELECT + " WHERE msisdn = ? AND used_at IS NULL AND "
                          "expires_at > ? ORDER BY created_at DESC, id LIMIT 1", (msisdn, now))
        return _code(rows[0]) if rows else None

    def count_signin_attempt(self, code_id: str) -> int:
        with self.transaction():
            rows = self._execute("UPDATE signin_codes SET attempts = attempts + 1 "
                                 "WHERE id = ? RETURNING attempts", (code_id,))
        return int(rows[0][0]) if rows else 0

    def use_signin_code(self, code_id: str, now: int) -> bool:
        with self.transaction():
            rows = self._execute("UPDATE signin_codes SET used_at = ? WHERE id = ? AND "
                                 "used_at IS NULL AND expires_at > ? RETURNING id",
                                 (now, code_id, now))
        return bool(rows)

    def note_throttle(self, key: str, now: int) -> None:
        with self.transaction():
            self._execute("DELETE FROM web_throttle WHERE key = ? AND at < ?",
                          (key, now - _THROTTLE_KEEP))
            self._execute("INSERT INTO web_throttle (key, at) VALUES (?, ?)", (key, now))

    def throttle_count(self, key: str, since: int) -> int:
        rows = self._read("SELECT COUNT(*) FROM web_throttle WHERE key = ? AND at >= ?",
                          (key, since))
        return int(rows[0][0])

    def add_web_session(self, session: WebSession) -> None:
        s = session
        with self.transaction():
            self._execute("INSERT INTO web_sessions (token_hash, contract_id, msisdn, csrf, "
                          "created_at, expires_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (s.token_hash, s.contract_id, s.msisdn, s.csrf, s.created_at,
                           s.expires_at, s.ended_at))

    def web_session(self, token_hash: str) -> WebSession | None:
        rows = self._read(_SESSION_SELECT + " WHERE token_hash = ?", (token_hash,))
        return _session(rows[0]) if rows else None

    def end_web_session(self, token_hash: str, now: int) -> bool:
        with self.transaction():
            rows = self._execute("UPDATE web_sessions SET ended_at = ? WHERE token_hash = ? "
                                 "AND ended_at IS NULL RETURNING token_hash", (now, token_hash))
        return bool(rows)

"""Broker identities the operator issued, and the registry's own secrets."""

from __future__ import annotations

import os

from broker_bridge.model import BrokerIdentity, Change, Role
from broker_bridge.storage.core import Row, SqlCore

_IDENTITY_SELECT = (
    "SELECT username, role, subject, issued_at, password_hash, certificate, revoked_at "
    "FROM broker_identities"
)


def _identity(row: Row) -> BrokerIdentity:
    return BrokerIdentity(username=row[0], role=Role(row[1]), subject=row[2],
                          issued_at=row[3], password_hash=row[4], certificate=row[5],
                          revoked_at=row[6])


class IdentityQueries(SqlCore):
    """Broker identities the operator issued, and the registry's own secrets."""

    def put_identity(self, identity: BrokerIdentity) -> Change:
        i = identity
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT role, subject, password_hash, certificate, revoked_at "
                "FROM broker_identities WHERE username = ?"), (i.username,))
            values = (i.role.value, i.subject, i.password_hash, i.certificate, i.issued_at,
                      i.revoked_at)
            if not rows:
                self._execute("INSERT INTO broker_identities (role, subject, password_hash, "
                              "certificate, issued_at, revoked_at, username) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", (*values, i.username))
                return Change.ADDED
            if tuple(rows[0]) == (i.role.value, i.subject, i.password_hash, i.certificate,
                                  i.revoked_at):
                return Change.UNCHANGED
            self._execute("UPDATE broker_identities SET role = ?, subject = ?, "
                          "password_hash = ?, certificate = ?, issued_at = ?, revoked_at = ? "
                          "WHERE username = ?", (*values, i.username))
            return Change.UPDATED

    def identity(self, username: str) -> BrokerIdentity | None:
        rows = self._read(_IDENTITY_SELECT + " WHERE username = ?", (username,))
        return _identity(rows[0]) if rows else None

    def identities(self, *, include_revoked: bool = False) -> list[BrokerIdentity]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = self._read(_IDENTITY_SELECT + where + " ORDER BY username")
        return [_identity(row) for row in rows]

    def revoke_identity(self, username: str, *, now: int | None = None) -> bool:
        stamp = self._clock() if now is None else now
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT revoked_at FROM broker_identities WHERE username = ?"), (username,))
            if not rows or rows[0][0] is not None:
                return False
            self._execute("UPDATE broker_identities SET revoked_at = ? WHERE username = ?",
                          (stamp, username))
            return True

    def secret(self, name: str) -> bytes:
        with self.transaction():
            # Whichever process comes first makes the secret; the others read it.
            self._execute("INSERT INTO registry_secrets (name, value, created_at) "
                          "VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                          (name, os.urandom(32).hex(), self._clock()))
            rows = self._execute("SELECT value FROM registry_secrets WHERE name = ?", (name,))
        return bytes.fromhex(rows[0][0])

"""Apps and their trust levels."""

from __future__ import annotations

from broker_bridge.errors import StoreError
from broker_bridge.model import App, Change, TrustLevel
from broker_bridge.storage.core import Row, SqlCore, dump_list, load_list

_APP_SELECT = "SELECT id, name, trust, purposes, standing_consent FROM apps"


class AppQueries(SqlCore):
    """Apps and their trust levels."""

    def upsert_app(self, app: App) -> Change:
        purposes = dump_list(app.purposes)
        standing = int(app.standing_consent)
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT name, trust, purposes, standing_consent, removed_at FROM apps "
                "WHERE id = ?"), (app.id,))
            now = self._clock()
            if not rows:
                self._execute(
                    "INSERT INTO apps (id, name, trust, purposes, standing_consent, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (app.id, app.name, app.trust.value, purposes, standing, now, now))
                return Change.ADDED
            removed = rows[0][4] is not None
            if not removed and tuple(rows[0][:4]) == (app.name, app.trust.value, purposes,
                                                      standing):
                return Change.UNCHANGED
            self._execute("UPDATE apps SET name = ?, trust = ?, purposes = ?, "
                          "standing_consent = ?, removed_at = NULL, updated_at = ? WHERE id = ?",
                          (app.name, app.trust.value, purposes, standing, now, app.id))
            return Change.ADDED if removed else Change.UPDATED

    def remove_app(self, app_id: str) -> bool:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT removed_at FROM apps WHERE id = ?"), (app_id,))
            if not rows or rows[0][0] is not None:
                return False
            now = self._clock()
            self._execute("UPDATE apps SET removed_at = ?, updated_at = ? WHERE id = ?",
                          (now, now, app_id))
            return True

    def app(self, app_id: str) -> App | None:
        rows = self._read(_APP_SELECT + " WHERE id = ? AND removed_at IS NULL", (app_id,))
        return self._app(rows[0]) if rows else None

    def apps(self) -> list[App]:
        rows = self._read(_APP_SELECT + " WHERE removed_at IS NULL ORDER BY id")
        return [self._app(row) for row in rows]

    def _app(self, row: Row) -> App:
        try:
            trust = TrustLevel(row[2])
        except ValueError as exc:
            raise StoreError(f"{self._describe()}: app {row[0]!r} has unknown trust level "
                             f"{row[2]!r}") from exc
        return App(id=row[0], name=row[1], trust=trust, purposes=load_list(row[3]),
                   standing_consent=bool(row[4]))

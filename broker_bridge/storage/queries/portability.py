"""The number portability list and the pseudonymous user ids (schema version 10)."""

from __future__ import annotations

from collections.abc import Sequence

from broker_bridge.portability import PortEntry
from broker_bridge.storage.core import SqlCore

_CHUNK = 10_000  # rows per executemany call: bounded memory in the driver

_CURRENT = ("SELECT msisdn, valid_from, valid_until, operator_id, contract_id "
            "FROM portability WHERE msisdn = ? AND valid_from <= ? "
            "AND (valid_until IS NULL OR valid_until > ?) ORDER BY valid_from DESC LIMIT 1")


class PortabilityQueries(SqlCore):
    """The portability list: replaced whole, looked up by number."""

    def replace_portability(self, entries: Sequence[PortEntry]) -> int:
        """Put ``entries`` in place of the whole list, in the caller's transaction (or
        one of its own); returns how many entries the list held before."""
        with self.transaction():
            before = self._execute("SELECT COUNT(*) FROM portability")[0][0]
            self._execute("DELETE FROM portability")
            now = self._clock()
            sql = ("INSERT INTO portability (msisdn, valid_from, valid_until, operator_id, "
                   "contract_id, imported_at) VALUES (?, ?, ?, ?, ?, ?)")
            for start in range(0, len(entries), _CHUNK):
                self._execute_many(sql, [(*e, now) for e in entries[start:start + _CHUNK]])
        return int(before)

    def port_entry(self, msisdn: str, now: int) -> PortEntry | None:
        """The list's entry for ``msisdn`` valid at ``now``, if any (one index probe)."""
        rows = self._read(_CURRENT, (msisdn, now, now))
        return PortEntry(*rows[0]) if rows else None

    def portability_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM portability")[0][0])

    def filed_ported_away(self, now: int, since: int = -1) -> list[tuple[str, str]]:
        """(number, operator) of numbers filed under a contract here that the list puts
        with another operator now, in a period that began after ``since``: due to be
        ported out."""
        rows = self._read(
            "SELECT p.msisdn, p.operator_id FROM portability p "
            "JOIN numbers n ON n.msisdn = p.msisdn WHERE p.operator_id IS NOT NULL "
            "AND p.valid_from > ? AND p.valid_from <= ? "
            "AND (p.valid_until IS NULL OR p.valid_until > ?)", (since, now, now))
        return [(row[0], row[1]) for row in rows]

    def unfiled_ported_in(self, now: int, since: int = -1) -> list[tuple[str, str]]:
        """(number, contract) of numbers the list brings here now with a contract that
        are not filed under it, in a period that began after ``since``: due to be
        filed."""
        rows = self._read(
            "SELECT p.msisdn, p.contract_id FROM portability p "
            "LEFT JOIN numbers n ON n.msisdn = p.msisdn WHERE p.operator_id IS NULL "
            "AND p.contract_id IS NOT NULL AND p.valid_from > ? AND p.valid_from <= ? "
            "AND (p.valid_until IS NULL OR p.valid_until > ?) "
            "AND (n.contract_id IS NULL OR n.contract_id <> p.contract_id)",
            (since, now, now))
        return [(row[0], row[1]) for row in rows]

    def put_user_ref(self, app_id: str, ref: str, contract_id: str) -> None:
        """Remember that ``app_id`` was given ``ref`` for ``contract_id``."""
        # Another process granting the same pairing at once is no error: the id is the same.
        self._execute("INSERT INTO user_refs (app_id, ref, contract_id, issued_at) "
                      "VALUES (?, ?, ?, ?) ON CONFLICT (app_id, ref) DO NOTHING",
                      (app_id, ref, contract_id, self._clock()))

    def user_ref_contract(self, app_id: str, ref: str) -> str | None:
        """The contract ``app_id`` was given ``ref`` for, if it was."""
        rows = self._read("SELECT contract_id FROM user_refs WHERE app_id = ? AND ref = ?",
                          (app_id, ref))
        return str(rows[0][0]) if rows else None

"""Contracts with their numbers and subscriptions, other operators and ported numbers."""

from __future__ import annotations

from broker_bridge.model import Change, Contract, OtherOperator, Subscription
from broker_bridge.storage.core import SqlCore

# One statement, so that the versions and the number's contract are of one snapshot.
_VERSIONS = ("SELECT n.contract_id, c.version, g.value FROM numbers n "
             "JOIN contracts c ON c.id = n.contract_id "
             "JOIN counters g ON g.name = 'apps' WHERE n.msisdn = ?")
_ALL_VERSIONS = ("SELECT n.msisdn, n.contract_id, c.version, g.value FROM numbers n "
                 "JOIN contracts c ON c.id = n.contract_id "
                 "JOIN counters g ON g.name = 'apps'")


def _prefixes_of(msisdn: str) -> list[str]:
    """Every prefix of an E.164 number that a prefix table may hold: "+4", "+49", ..."""
    return [msisdn[:n] for n in range(2, len(msisdn) + 1)]


class ContractQueries(SqlCore):
    """Contracts with their numbers and subscriptions, other operators and ported numbers."""

    def upsert_contract(self, contract: Contract) -> Change:
        with self.transaction():
            rows = self._execute("SELECT holder FROM contracts WHERE id = ?", (contract.id,))
            now = self._clock()
            if not rows:
                self._execute("INSERT INTO contracts (id, holder, created_at, updated_at) "
                              "VALUES (?, ?, ?, ?)", (contract.id, contract.holder, now, now))
                return Change.ADDED
            if rows[0][0] == contract.holder:
                return Change.UNCHANGED
            self._execute("UPDATE contracts SET holder = ?, updated_at = ? WHERE id = ?",
                          (contract.holder, now, contract.id))
            return Change.UPDATED

    def upsert_number(self, msisdn: str, contract_id: str) -> Change:
        with self.transaction():
            self._require_contract(contract_id)
            rows = self._execute("SELECT contract_id FROM numbers WHERE msisdn = ?", (msisdn,))
            now = self._clock()
            if not rows:
                self._execute("INSERT INTO numbers (msisdn, contract_id, updated_at) "
                              "VALUES (?, ?, ?)", (msisdn, contract_id, now))
                return Change.ADDED
            if rows[0][0] == contract_id:
                return Change.UNCHANGED
            self._execute("UPDATE numbers SET contract_id = ?, updated_at = ? WHERE msisdn = ?",
                          (contract_id, now, msisdn))
            return Change.UPDATED

    def upsert_subscription(self, subscription: Subscription) -> Change:
        sub = subscription
        with self.transaction():
            self._require_contract(sub.contract_id)
            if sub.msisdn is not None:
                self.upsert_number(sub.msisdn, sub.contract_id)
            rows = self._execute(
                self._locking("SELECT imsi, msisdn, contract_id FROM subscriptions "
                              "WHERE iccid = ?"), (sub.iccid,))
            now = self._clock()
            if not rows:
                self._execute(
                    "INSERT INTO subscriptions (iccid, imsi, msisdn, contract_id, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (sub.iccid, sub.imsi, sub.msisdn, sub.contract_id, now, now))
                return Change.ADDED
            imsi, msisdn, contract_id = rows[0]
            if (imsi, msisdn, contract_id) == (sub.imsi, sub.msisdn, sub.contract_id):
                return Change.UNCHANGED
            self._execute(
                "UPDATE subscriptions SET imsi = ?, msisdn = ?, contract_id = ?, updated_at = ? "
                "WHERE iccid = ?", (sub.imsi, sub.msisdn, sub.contract_id, now, sub.iccid))
            if contract_id != sub.contract_id:
                # The device holding the profile belongs to whoever holds the subscription.
                self._execute("UPDATE devices SET contract_id = ?, updated_at = ? "
                              "WHERE iccid = ?", (sub.contract_id, now, sub.iccid))
            return Change.UPDATED

    def remove_number(self, msisdn: str) -> str | None:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT contract_id FROM numbers WHERE msisdn = ?"), (msisdn,))
            now = self._clock()
            self._execute("UPDATE subscriptions SET msisdn = NULL, updated_at = ? "
                          "WHERE msisdn = ?", (now, msisdn))
            if not rows:
                return None
            self._execute("DELETE FROM numbers WHERE msisdn = ?", (msisdn,))
            return str(rows[0][0])

    def remove_subscription(self, iccid: str) -> Subscription | None:
        with self.transaction():
            sub = self.subscription_by_iccid(iccid)
            if sub is not None:
                self._execute("DELETE FROM subscriptions WHERE iccid = ?", (iccid,))
            return sub

    def upsert_operator(self, operator: OtherOperator) -> Change:
        op = operator
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT name, registry, prefix FROM operators WHERE id = ?"), (op.id,))
            before = self.operator(op.id) if rows else None
            now = self._clock()
            if before is None:
                self._execute("INSERT INTO operators (id, name, registry, prefix, created_at, "
                              "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                              (op.id, op.name, op.registry, op.prefix, now, now))
            elif before == op:
                return Change.UNCHANGED
            else:
                self._execute("UPDATE operators SET name = ?, registry = ?, prefix = ?, "
                              "updated_at = ? WHERE id = ?",
                              (op.name, op.registry, op.prefix, now, op.id))
            self._execute("DELETE FROM operator_prefixes WHERE operator_id = ?", (op.id,))
            for prefix in op.number_prefixes:
                # A prefix belongs to one operator: the newest statement about it wins.
                self._execute("DELETE FROM operator_prefixes WHERE prefix = ?", (prefix,))
                self._execute("INSERT INTO operator_prefixes (prefix, operator_id) "
                              "VALUES (?, ?)", (prefix, op.id))
            return Change.ADDED if before is None else Change.UPDATED

    def set_ported(self, msisdn: str, operator_id: str) -> Change:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT operator_id FROM ported_numbers WHERE msisdn = ?"), (msisdn,))
            now = self._clock()
            if not rows:
                self._execute("INSERT INTO ported_numbers (msisdn, operator_id, updated_at) "
                              "VALUES (?, ?, ?)", (msisdn, operator_id, now))
                return Change.ADDED
            if rows[0][0] == operator_id:
                return Change.UNCHANGED
            self._execute("UPDATE ported_numbers SET operator_id = ?, updated_at = ? "
                          "WHERE msisdn = ?", (operator_id, now, msisdn))
            return Change.UPDATED

    def clear_ported(self, msisdn: str) -> bool:
        with self.transaction():
            rows = self._execute("SELECT 1 FROM ported_numbers WHERE msisdn = ?", (msisdn,))
            if rows:
                self._execute("DELETE FROM ported_numbers WHERE msisdn = ?", (msisdn,))
            return bool(rows)

    def contract(self, contract_id: str) -> Contract | None:
        rows = self._read("SELECT id, holder FROM contracts WHERE id = ?", (contract_id,))
        return Contract(rows[0][0], rows[0][1]) if rows else None

    def contract_by_msisdn(self, msisdn: str) -> Contract | None:
        rows = self._read("SELECT c.id, c.holder FROM numbers n JOIN contracts c "
                          "ON c.id = n.contract_id WHERE n.msisdn = ?", (msisdn,))
        return Contract(rows[0][0], rows[0][1]) if rows else None

    def read_versions(self, msisdn: str) -> tuple[str, int, int] | None:
        rows = self._read(_VERSIONS, (msisdn,))
        return (rows[0][0], int(rows[0][1]), int(rows[0][2])) if rows else None

    def number_versions(self) -> dict[str, tuple[str, int, int]]:
        rows = self._read(_ALL_VERSIONS)
        return {row[0]: (row[1], int(row[2]), int(row[3])) for row in rows}

    def contract_versions(self) -> tuple[dict[str, int], int]:
        # One transaction: the apps' version and the contracts' are of one moment.
        with self.transaction():
            apps = self._execute("SELECT value FROM counters WHERE name = 'apps'")
            rows = self._execute("SELECT id, version FROM contracts")
        return {row[0]: int(row[1]) for row in rows}, int(apps[0][0])

    def numbers_of_contract(self, contract_id: str) -> list[str]:
        rows = self._read("SELECT msisdn FROM numbers WHERE contract_id = ? ORDER BY msisdn",
                          (contract_id,))
        return [row[0] for row in rows]

    def subscription_by_iccid(self, iccid: str) -> Subscription | None:
        rows = self._read("SELECT iccid, imsi, msisdn, contract_id FROM subscriptions "
                          "WHERE iccid = ?", (iccid,))
        return Subscription(*rows[0]) if rows else None

    def subscriptions_of_contract(self, contract_id: str) -> list[Subscription]:
        rows = self._read("SELECT iccid, imsi, msisdn, contract_id FROM subscriptions "
                          "WHERE contract_id = ? ORDER BY iccid", (contract_id,))
        return [Subscription(*row) for row in rows]

    def operators(self) -> list[OtherOperator]:
        rows = self._read("SELECT id FROM operators ORDER BY id")
        found = [self.operator(row[0]) for row in rows]
        return [op for op in found if op is not None]

    def operator(self, operator_id: str) -> OtherOperator | None:
        with self._lock:
            rows = self._read("SELECT id, name, registry, prefix FROM operators WHERE id = ?",
                              (operator_id,))
            if not rows:
                return None
            prefixes = self._read("SELECT prefix FROM operator_prefixes WHERE operator_id = ? "
                                  "ORDER BY prefix", (operator_id,))
        return OtherOperator(id=rows[0][0], name=rows[0][1], registry=rows[0][2],
                             prefix=rows[0][3], number_prefixes=tuple(r[0] for r in prefixes))

    def ported_to(self, msisdn: str) -> OtherOperator | None:
        rows = self._read("SELECT operator_id FROM ported_numbers WHERE msisdn = ?", (msisdn,))
        return self.operator(rows[0][0]) if rows else None

    def operator_by_prefix(self, msisdn: str) -> OtherOperator | None:
        candidates = _prefixes_of(msisdn)
        marks = ", ".join("?" * len(candidates))
        rows = self._read("SELECT prefix, operator_id FROM operator_prefixes "  # noqa: S608 (only placeholders are added)
                          "WHERE prefix IN (" + marks + ")", candidates)
        if not rows:
            return None
        longest = max(rows, key=lambda row: len(row[0]))
        return self.operator(longest[1])

    def ported_numbers(self) -> list[tuple[str, str]]:
        rows = self._read("SELECT msisdn, operator_id FROM ported_numbers ORDER BY msisdn")
        return [(row[0], row[1]) for row in rows]

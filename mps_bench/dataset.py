"""A large registry, loaded fast: ``devices`` devices on ``contracts`` contracts, each
contract with a phone number, each device with its subscription, plus free subscriptions
for devices that register during the benchmark, and one partner app.

Identifiers are valid (Luhn for IMEI and ICCID, mod 97 for EID, E.164 numbers) and derive
from the device number, so the benchmark can name any of them without reading them back.
Rows go in through one transaction per table with ``executemany`` on SQLite and COPY on
PostgreSQL, after the store's own migrations made the schema.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker_bridge.model import App, TrustLevel
from broker_bridge.storage.base import Store
from broker_bridge.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from broker_bridge.storage.postgres import PostgresStore

APP_ID = "bench-partner"
"""The partner app (standing consent) whose ``devices`` requests the benchmark sends."""

TAC = ("35209900", "35209901")  # two type allocation codes: 2 x 10^6 serial numbers
MODEL = ("Quectel", "EC25", "EC25EFAR06A06M4G")
PROFILE = "bench"
CAPABILITIES = json.dumps(["lte", "gps"], separators=(",", ":"))
LOADED_AT = 1_700_000_000_000


def _luhn_tables() -> tuple[list[int], list[int]]:
    """Luhn sums of every 3-digit group, for groups whose last digit is doubled (index 0)
    or not (index 1); a number's sum is the sum over its groups from the right."""

    def digit(d: int, doubled: bool) -> int:
        if not doubled:
            return d
        d *= 2
        return d - 9 if d > 9 else d

    tables: tuple[list[int], list[int]] = ([], [])
    for parity in (0, 1):
        for group in range(1000):
            a, b, c = group // 100, group // 10 % 10, group % 10
            # c is at an even distance from the right end when parity is 0
            tables[parity].append(digit(c, parity == 0) + digit(b, parity == 1)
                                  + digit(a, parity == 0))
    return tables


_LUHN = _luhn_tables()


def _luhn_sum(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total


class LuhnNumbers:
    """Valid Luhn numbers ``prefix`` + ``n`` zero-padded to ``width`` digits + check digit,
    fast: the prefix's sum is computed once, the serial's from a table per 3 digits."""

    def __init__(self, prefix: str, width: int) -> None:
        if width % 3:
            raise ValueError("the serial width must be a multiple of 3")
        self.prefix = prefix
        self.width = width
        self.groups = width // 3
        # The prefix's digits sit left of the serial: their distance from the right end
        # grows by the serial's width, which is a multiple of 3 but not always even.
        self._prefix_sum = _luhn_sum(prefix + "0" * width)
        self._tables = [_LUHN[k % 2] for k in range(self.groups)]
        self._limit = 10 ** width
        self._format = prefix + "{:0" + str(width) + "d}{}"

    def __call__(self, n: int) -> str:
        if not 0 <= n < self._limit:
            raise ValueError(f"{n} does not fit in {self.width} digits")
        total = self._prefix_sum
        rest = n
        for table in self._tables:
            total += table[rest % 1000]
            rest //= 1000
        return self._format.format(n, (10 - total % 10) % 10)


_ICCID = LuhnNumbers("8949262", 12)  # 19-digit body: 89 49 262 + 12-digit serial
_IMEI = [LuhnNumbers(tac, 6) for tac in TAC]
_EID_PREFIX = 89049032 * 10 ** 24  # "89049032" + 22 digits + 2 check digits


def eid(n: int) -> str:
    """The EID of bench device ``n``."""
    value = _EID_PREFIX + n * 100
    return f"{value + 98 - value % 97:032d}"


def iccid(n: int) -> str:
    """The ICCID of bench subscription ``n``."""
    return _ICCID(n)


def imsi(n: int) -> str:
    return f"26201{n:010d}"


def imei(n: int) -> str:
    return _IMEI[n // 1_000_000](n % 1_000_000)


def contract_id(c: int) -> str:
    return f"C-{c:07d}"


def msisdn(c: int) -> str:
    """The phone number of bench contract ``c``."""
    return f"+49151{c:08d}"


def ip(n: int) -> str:
    """The stored address list (JSON) of bench device ``n``."""
    return f'["10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"]'


@dataclass(frozen=True, slots=True)
class Dataset:
    """The shape of the registry: devices ``0..devices-1`` hold subscriptions of the same
    numbers; subscriptions ``devices..devices+spare-1`` are free; device ``n`` belongs to
    contract ``n % contracts``."""

    devices: int
    contracts: int
    spare: int = 0

    def __post_init__(self) -> None:
        if self.contracts < 1 or self.devices < self.contracts:
            raise ValueError("a dataset needs at least one device per contract")
        if self.devices + self.spare > len(TAC) * 1_000_000:
            raise ValueError("too many devices for the bench's IMEI range")

    def contract_of(self, n: int) -> int:
        return n % self.contracts

    def contract_rows(self) -> Iterator[tuple[object, ...]]:
        for c in range(self.contracts):
            yield (contract_id(c), f"Holder {c}", LOADED_AT, LOADED_AT)

    def number_rows(self) -> Iterator[tuple[object, ...]]:
        for c in range(self.contracts):
            yield (msisdn(c), contract_id(c), LOADED_AT)

    def subscription_rows(self) -> Iterator[tuple[object, ...]]:
        for n in range(self.devices + self.spare):
            c = self.contract_of(n)
            # The first subscription of each contract carries the contract's number.
            number = msisdn(c) if n < self.contracts else None
            yield (iccid(n), imsi(n), number, contract_id(c), LOADED_AT, LOADED_AT)

    def device_rows(self) -> Iterator[tuple[object, ...]]:
        for n in range(self.devices):
            yield (eid(n), contract_id(self.contract_of(n)), iccid(n), imei(n), imsi(n),
                   ip(n), CAPABILITIES, *MODEL, PROFILE, 1, LOADED_AT, LOADED_AT, LOADED_AT)


    def installation_rows(self) -> Iterator[tuple[object, ...]]:
        # The operator's binding of every subscription, free ones too, to the eUICC of the
        # device of its number: registrations need proof of the subscription.
        for n in range(self.devices + self.spare):
            yield (iccid(n), eid(n), f"bind-{n}", "operator", LOADED_AT, LOADED_AT)


TABLES: dict[str, tuple[str, ...]] = {
    "contracts": ("id", "holder", "created_at", "updated_at"),
    "numbers": ("msisdn", "contract_id", "updated_at"),
    "subscriptions": ("iccid", "imsi", "msisdn", "contract_id", "created_at", "updated_at"),
    "devices": ("eid", "contract_id", "iccid", "imei", "imsi", "ip", "capabilities",
                "manufacturer", "model", "revision", "profile", "last_seq", "device_ts",
                "registered_at", "updated_at"),
    "installations": ("iccid", "eid", "txn", "smdp", "ts", "recorded_at"),
}


def _rows(data: Dataset, table: str) -> Iterator[tuple[object, ...]]:
    return {"contracts": data.contract_rows, "numbers": data.number_rows,
            "subscriptions": data.subscription_rows, "devices": data.device_rows,
            "installations": data.installation_rows}[table]()


def load(store: Store, data: Dataset) -> float:
    """Fill an empty, open store with ``data``; returns the seconds it took.

    The partner app goes in through the store's interface; the bulk rows straight into
    its tables.
    """
    started = time.perf_counter()
    if store.device_count():
        raise ValueError(f"{store!r} is not empty")
    store.upsert_app(App(APP_ID, "Bench partner", TrustLevel.PARTNER, ("support",),
                         standing_consent=True))
    if isinstance(store, SqliteStore):
        _load_sqlite(store.path, data)
    else:
        from broker_bridge.storage import postgres

        if not isinstance(store, postgres.PostgresStore):
            raise TypeError(f"cannot bulk-load a {type(store).__name__}")
        _load_postgres(store, data)
    return time.perf_counter() - started


def _load_postgres(store: PostgresStore, data: Dataset) -> None:
    with store.transaction():
        # As on SQLite: secondary indexes are made again after the rows are in.
        indexes = store._execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename IN ('contracts', 'numbers', 'subscriptions', 'devices') "
            "AND indexname NOT LIKE '%_pkey'")
        # ...and foreign keys checked once for all rows, instead of a trigger per row.
        keys = store._execute(
            "SELECT c.conname, t.relname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid WHERE c.contype = 'f' "
            "AND c.connamespace = current_schema()::regnamespace "
            "AND t.relname IN ('contracts', 'numbers', 'subscriptions', 'devices')")
        for name, table, _definition in keys:
            store._execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        for name, _sql in indexes:
            store._execute(f'DROP INDEX "{name}"')
        for table, columns in TABLES.items():
            store.copy_rows(table, columns, _rows(data, table))
        for _name, sql in indexes:
            store._execute(sql)
        for name, table, definition in keys:
            store._execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    store._execute("ANALYZE")  # fresh statistics for the planner after the bulk load


def _load_sqlite(path: str, data: Dataset) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        # One transaction; the indexes are made again afterwards, which is quicker than
        # keeping them up to date row by row.
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN IMMEDIATE")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('contracts', 'numbers', 'subscriptions', 'devices')").fetchall()
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for table, columns in TABLES.items():
            marks = ", ".join("?" * len(columns))
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608 (names from TABLES)
                _rows(data, table))
        for _name, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

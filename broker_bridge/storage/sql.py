"""The store's logic in portable SQL, shared by every SQL backend.

Backends supply a connection and a few dialect hooks (how to begin a transaction, how to
lock a row for a read-modify-write); the schema, the migrations and every query live here,
written in the SQL that SQLite and PostgreSQL both understand (``?`` placeholders are
rewritten by backends whose driver wants another style).
"""

from __future__ import annotations

import abc
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from broker_bridge.errors import (
    SchemaVersionError,
    StoreError,
    UnknownContractError,
    UnknownSubscriptionError,
)
from broker_bridge.model import (
    App,
    Change,
    Contract,
    Device,
    RegistrationOutcome,
    Subscription,
    TrustLevel,
    now_ms,
)
from broker_bridge.storage.base import Store
from mps_wire.messages import DeviceInfo, ModelInfo, RegistrationResult

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema; applied once, in order, inside a transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  BIGINT NOT NULL
)"""

# Lists (addresses, capabilities, purposes) are JSON text: portable, and never queried
# by element. Times are milliseconds since the Unix epoch.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "registry: contracts, numbers, subscriptions, devices, apps", (
        """CREATE TABLE contracts (
            id          TEXT PRIMARY KEY,
            holder      TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL
        )""",
        """CREATE TABLE numbers (
            msisdn      TEXT PRIMARY KEY,
            contract_id TEXT NOT NULL REFERENCES contracts (id),
            updated_at  BIGINT NOT NULL
        )""",
        "CREATE INDEX numbers_by_contract ON numbers (contract_id)",
        """CREATE TABLE subscriptions (
            iccid       TEXT PRIMARY KEY,
            imsi        TEXT,
            msisdn      TEXT,
            contract_id TEXT NOT NULL REFERENCES contracts (id),
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL
        )""",
        "CREATE INDEX subscriptions_by_contract ON subscriptions (contract_id)",
        """CREATE TABLE devices (
            eid           TEXT PRIMARY KEY,
            contract_id   TEXT NOT NULL REFERENCES contracts (id),
            iccid         TEXT NOT NULL REFERENCES subscriptions (iccid),
            imei          TEXT NOT NULL,
            imsi          TEXT,
            ip            TEXT NOT NULL,
            capabilities  TEXT NOT NULL,
            manufacturer  TEXT NOT NULL,
            model         TEXT NOT NULL,
            revision      TEXT NOT NULL,
            profile       TEXT NOT NULL,
            last_seq      BIGINT NOT NULL,
            device_ts     BIGINT NOT NULL,
            registered_at BIGINT NOT NULL,
            updated_at    BIGINT NOT NULL
        )""",
        "CREATE INDEX devices_by_contract ON devices (contract_id)",
        "CREATE INDEX devices_by_iccid ON devices (iccid)",
        """CREATE TABLE apps (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            trust       TEXT NOT NULL,
            purposes    TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL
        )""",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version

_DEVICE_SELECT = (
    "SELECT d.eid, d.contract_id, d.iccid, d.imei, d.imsi, s.msisdn, d.ip, d.capabilities, "
    "d.manufacturer, d.model, d.revision, d.profile, d.last_seq, d.device_ts, "
    "d.registered_at, d.updated_at FROM devices d LEFT JOIN subscriptions s "
    "ON s.iccid = d.iccid"
)


def _dump_list(items: Sequence[str]) -> str:
    return json.dumps(list(items), separators=(",", ":"))


def _load_list(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _device(row: Row) -> Device:
    return Device(
        eid=row[0], contract_id=row[1], iccid=row[2], imei=row[3], imsi=row[4], msisdn=row[5],
        ip=_load_list(row[6]), capabilities=_load_list(row[7]),
        model=ModelInfo(row[8], row[9], row[10]), profile=row[11], last_seq=row[12],
        device_ts=row[13], registered_at=row[14], updated_at=row[15],
    )


class SqlStore(Store):
    """A :class:`Store` over one database connection, serialised by a re-entrant lock.

    Subclasses implement the private hooks; everything else is shared.
    """

    #: appended to the SELECT of a read-modify-write, e.g. " FOR UPDATE" on PostgreSQL
    _lock_rows = ""

    def __init__(self, *, clock: Callable[[], int] = now_ms) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._open = False
        self._clock = clock

    # --- backend hooks -----------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> None:
        """Open the connection and verify the database; raise StoreError if unusable."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close the connection."""

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one statement; return its rows (empty for statements without any)."""

    @abc.abstractmethod
    def _begin(self) -> None:
        """Begin a write transaction."""

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _rollback(self) -> None: ...

    def _locking(self, select: str) -> str:
        """``select`` made to lock the rows it reads until the transaction ends."""
        return select + self._lock_rows

    def _describe(self) -> str:
        """Where the database is, for messages."""
        return type(self).__name__

    # --- life cycle --------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._open:
                return
            self._connect()
            try:
                self._migrate()
            except BaseException:
                self._disconnect()
                raise
            self._open = True

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self._disconnect()

    def _migrate(self) -> None:
        self._execute(MIGRATIONS_TABLE)
        current = self._version()
        if current > LATEST_VERSION:
            raise SchemaVersionError(
                f"{self._describe()} has schema version {current}; this registry knows up to "
                f"{LATEST_VERSION}: upgrade the registry",
                found=current, supported=LATEST_VERSION)
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            self._begin()
            try:
                # Another process may have migrated while we waited for the write lock.
                if self._version() < migration.version:
                    for statement in migration.statements:
                        self._execute(statement)
                    self._execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (?, ?, ?)", (migration.version, migration.name, self._clock()))
                    log.info("%s: applied migration %d (%s)", self._describe(),
                             migration.version, migration.name)
            except BaseException:
                self._rollback()
                raise
            self._commit()

    def _version(self) -> int:
        rows = self._execute("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def schema_version(self) -> int:
        with self._lock:
            self._require_open()
            return self._version()

    def _require_open(self) -> None:
        if not self._open:
            raise StoreError(f"{self._describe()} is not open")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._require_open()
            if self._depth:
                # Nested calls join the outer transaction; it alone commits or rolls back.
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield
                self._commit()
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            self._require_open()
            return self._execute(sql, params)

    # --- operator data -----------------------------------------------------------------

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

    def _require_contract(self, contract_id: str) -> None:
        if not self._execute("SELECT 1 FROM contracts WHERE id = ?", (contract_id,)):
            raise UnknownContractError(contract_id)

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

    def upsert_app(self, app: App) -> Change:
        purposes = _dump_list(app.purposes)
        with self.transaction():
            rows = self._execute(
                self._locking("SELECT name, trust, purposes FROM apps WHERE id = ?"), (app.id,))
            now = self._clock()
            if not rows:
                self._execute(
                    "INSERT INTO apps (id, name, trust, purposes, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (app.id, app.name, app.trust.value, purposes, now, now))
                return Change.ADDED
            if tuple(rows[0]) == (app.name, app.trust.value, purposes):
                return Change.UNCHANGED
            self._execute("UPDATE apps SET name = ?, trust = ?, purposes = ?, updated_at = ? "
                          "WHERE id = ?", (app.name, app.trust.value, purposes, now, app.id))
            return Change.UPDATED

    # --- look-ups ----------------------------------------------------------------------

    def contract(self, contract_id: str) -> Contract | None:
        rows = self._read("SELECT id, holder FROM contracts WHERE id = ?", (contract_id,))
        return Contract(rows[0][0], rows[0][1]) if rows else None

    def contract_by_msisdn(self, msisdn: str) -> Contract | None:
        rows = self._read("SELECT c.id, c.holder FROM numbers n JOIN contracts c "
                          "ON c.id = n.contract_id WHERE n.msisdn = ?", (msisdn,))
        return Contract(rows[0][0], rows[0][1]) if rows else None

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

    def app(self, app_id: str) -> App | None:
        rows = self._read("SELECT id, name, trust, purposes FROM apps WHERE id = ?", (app_id,))
        return self._app(rows[0]) if rows else None

    def apps(self) -> list[App]:
        rows = self._read("SELECT id, name, trust, purposes FROM apps ORDER BY id")
        return [self._app(row) for row in rows]

    def _app(self, row: Row) -> App:
        try:
            trust = TrustLevel(row[2])
        except ValueError as exc:
            raise StoreError(f"{self._describe()}: app {row[0]!r} has unknown trust level "
                             f"{row[2]!r}") from exc
        return App(id=row[0], name=row[1], trust=trust, purposes=_load_list(row[3]))

    # --- devices -----------------------------------------------------------------------

    def register_device(self, info: DeviceInfo, *, now: int | None = None
                        ) -> RegistrationOutcome:
        with self.transaction():
            sub = self.subscription_by_iccid(info.iccid)
            if sub is None:
                raise UnknownSubscriptionError(info.iccid)
            rows = self._execute(self._locking(
                "SELECT eid, contract_id, iccid, imei, imsi, NULL, ip, capabilities, "
                "manufacturer, model, revision, profile, last_seq, device_ts, registered_at, "
                "updated_at FROM devices WHERE eid = ?"), (info.eid,))
            stamp = self._clock() if now is None else now
            if not rows:
                device = self._new_device(info, sub, stamp, stamp)
                self._execute(
                    "INSERT INTO devices (eid, contract_id, iccid, imei, imsi, ip, capabilities,"
                    " manufacturer, model, revision, profile, last_seq, device_ts, "
                    "registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)", self._device_params(device))
                return RegistrationOutcome(RegistrationResult.REGISTERED, sub.contract_id, device)
            stored = _device(rows[0])
            if (stored.contract_id == sub.contract_id
                    and stored.as_info().identity_key() == info.identity_key()):
                # A repeat (QoS 1 redelivery, agent restart): only the freshest sequence
                # number and device clock are kept, for replay checks.
                if info.seq > stored.last_seq:
                    self._execute("UPDATE devices SET last_seq = ?, device_ts = ? WHERE eid = ?",
                                  (info.seq, info.ts, info.eid))
                    stored = replace(stored, last_seq=info.seq, device_ts=info.ts)
                stored = replace(stored, msisdn=sub.msisdn)
                return RegistrationOutcome(RegistrationResult.UNCHANGED, sub.contract_id, stored)
            device = self._new_device(info, sub, stored.registered_at, stamp)
            self._execute(
                "UPDATE devices SET contract_id = ?, iccid = ?, imei = ?, imsi = ?, ip = ?, "
                "capabilities = ?, manufacturer = ?, model = ?, revision = ?, profile = ?, "
                "last_seq = ?, device_ts = ?, registered_at = ?, updated_at = ? WHERE eid = ?",
                (*self._device_params(device)[1:], device.eid))
            return RegistrationOutcome(RegistrationResult.UPDATED, sub.contract_id, device)

    @staticmethod
    def _new_device(info: DeviceInfo, sub: Subscription, registered_at: int, updated_at: int
                    ) -> Device:
        return Device(
            eid=info.eid, contract_id=sub.contract_id, iccid=info.iccid, imei=info.imei,
            imsi=info.imsi, msisdn=sub.msisdn, ip=info.ip, capabilities=info.capabilities,
            model=info.model, profile=info.profile, last_seq=info.seq, device_ts=info.ts,
            registered_at=registered_at, updated_at=updated_at,
        )

    @staticmethod
    def _device_params(d: Device) -> tuple[object, ...]:
        return (d.eid, d.contract_id, d.iccid, d.imei, d.imsi, _dump_list(d.ip),
                _dump_list(d.capabilities), d.model.manufacturer, d.model.model,
                d.model.revision, d.profile, d.last_seq, d.device_ts, d.registered_at,
                d.updated_at)

    def device(self, eid: str) -> Device | None:
        rows = self._read(_DEVICE_SELECT + " WHERE d.eid = ?", (eid,))
        return _device(rows[0]) if rows else None

    def devices_of_contract(self, contract_id: str) -> list[Device]:
        rows = self._read(_DEVICE_SELECT + " WHERE d.contract_id = ? "
                          "ORDER BY d.registered_at, d.eid", (contract_id,))
        return [_device(row) for row in rows]

    def device_count(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM devices")
        return int(rows[0][0])

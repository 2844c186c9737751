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
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    AuditEntry,
    BrokerIdentity,
    Change,
    ConsentSource,
    Contract,
    Device,
    DeviceKey,
    Installation,
    OtherOperator,
    Pairing,
    PairingState,
    RegistrationOutcome,
    Role,
    StoredEvent,
    Subscription,
    TrustLevel,
    device_changes,
    now_ms,
)
from broker_bridge.storage.base import Store
from mps_wire.messages import DeviceInfo, EventKind, ModelInfo, RegistrationResult

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
    # Trust levels trusted/partner/public become partner with standing consent (both were
    # answered without asking the user) and unverified (see model.LEGACY_TRUST); pairings,
    # consent, event streams and the audit log arrive. Sequence numbers come from counter
    # rows updated inside the writing transaction, which is portable and keeps them
    # gap-free in commit order.
    Migration(2, "trust levels, other operators, pairings, events, audit log", (
        "ALTER TABLE apps ADD COLUMN standing_consent INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE apps ADD COLUMN removed_at BIGINT",
        "UPDATE apps SET standing_consent = 1 WHERE trust IN ('trusted', 'partner')",
        "UPDATE apps SET trust = 'partner' WHERE trust = 'trusted'",
        "UPDATE apps SET trust = 'unverified' WHERE trust = 'public'",
        "ALTER TABLE contracts ADD COLUMN consent_rev BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE contracts ADD COLUMN consent_published_rev BIGINT NOT NULL DEFAULT 0",
        """CREATE TABLE operators (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            registry    TEXT NOT NULL,
            prefix      TEXT NOT NULL,
            created_at  BIGINT NOT NULL,
            updated_at  BIGINT NOT NULL
        )""",
        """CREATE TABLE operator_prefixes (
            prefix      TEXT PRIMARY KEY,
            operator_id TEXT NOT NULL REFERENCES operators (id)
        )""",
        "CREATE INDEX operator_prefixes_by_operator ON operator_prefixes (operator_id)",
        """CREATE TABLE ported_numbers (
            msisdn      TEXT PRIMARY KEY,
            operator_id TEXT NOT NULL REFERENCES operators (id),
            updated_at  BIGINT NOT NULL
        )""",
        """CREATE TABLE pairings (
            id          TEXT PRIMARY KEY,
            app_id      TEXT NOT NULL REFERENCES apps (id),
            contract_id TEXT NOT NULL REFERENCES contracts (id),
            msisdn      TEXT NOT NULL,
            purpose     TEXT NOT NULL,
            state       TEXT NOT NULL,
            consent     TEXT,
            prompt_id   TEXT UNIQUE,
            created_at  BIGINT NOT NULL,
            expires_at  BIGINT,
            decided_at  BIGINT,
            decided_by  TEXT,
            ended_at    BIGINT,
            ended_by    TEXT,
            end_reason  TEXT
        )""",
        # At most one live pairing per app and contract, whichever process writes it.
        "CREATE UNIQUE INDEX pairings_live ON pairings (app_id, contract_id) "
        "WHERE state IN ('pending', 'active')",
        "CREATE INDEX pairings_by_contract ON pairings (contract_id, state)",
        "CREATE INDEX pairings_by_expiry ON pairings (state, expires_at)",
        """CREATE TABLE app_streams (
            app_id      TEXT PRIMARY KEY REFERENCES apps (id),
            last_seq    BIGINT NOT NULL
        )""",
        """CREATE TABLE app_events (
            app_id       TEXT NOT NULL REFERENCES apps (id),
            seq          BIGINT NOT NULL,
            kind         TEXT NOT NULL,
            contract_id  TEXT,
            pairing_id   TEXT,
            payload      TEXT NOT NULL,
            created_at   BIGINT NOT NULL,
            published_at BIGINT,
            PRIMARY KEY (app_id, seq)
        )""",
        "CREATE INDEX app_events_unpublished ON app_events (created_at) "
        "WHERE published_at IS NULL",
        """CREATE TABLE counters (
            name        TEXT PRIMARY KEY,
            value       BIGINT NOT NULL
        )""",
        "INSERT INTO counters (name, value) VALUES ('audit', 0)",
        """CREATE TABLE audit_log (
            id          BIGINT PRIMARY KEY,
            at          BIGINT NOT NULL,
            actor       TEXT NOT NULL,
            action      TEXT NOT NULL,
            outcome     TEXT NOT NULL,
            contract_id TEXT,
            app_id      TEXT,
            subject     TEXT,
            detail      TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_contract ON audit_log (contract_id, id)",
        "CREATE INDEX audit_by_app ON audit_log (app_id, id)",
        """CREATE TABLE registry_secrets (
            name        TEXT PRIMARY KEY,
            value       TEXT NOT NULL,
            created_at  BIGINT NOT NULL
        )""",
    )),
    # The SM-DP+'s installation results: which eUICC holds which profile.
    Migration(3, "profile installations", (
        """CREATE TABLE installations (
            iccid       TEXT PRIMARY KEY,
            eid         TEXT NOT NULL,
            txn         TEXT NOT NULL,
            smdp        TEXT NOT NULL,
            ts          BIGINT NOT NULL,
            recorded_at BIGINT NOT NULL
        )""",
        "CREATE INDEX installations_by_eid ON installations (eid)",
    )),
    # Signed registrations: the devices' public keys, the newest registration accepted
    # from each EID (outliving the device record, so a replay after a removal is still
    # one), and the broker credentials the operator issued.
    Migration(4, "device keys, replay state, broker identities", (
        """CREATE TABLE device_keys (
            eid         TEXT PRIMARY KEY,
            public_key  TEXT NOT NULL,
            kid         TEXT NOT NULL,
            enrolled_at BIGINT NOT NULL,
            enrolled_by TEXT NOT NULL
        )""",
        """CREATE TABLE device_sequences (
            eid         TEXT PRIMARY KEY,
            last_seq    BIGINT NOT NULL,
            digest      TEXT NOT NULL,
            updated_at  BIGINT NOT NULL
        )""",
        # Devices registered before this version: their newest sequence number is known.
        "INSERT INTO device_sequences (eid, last_seq, digest, updated_at) "
        "SELECT eid, last_seq, '', updated_at FROM devices",
        """CREATE TABLE broker_identities (
            username      TEXT PRIMARY KEY,
            role          TEXT NOT NULL,
            subject       TEXT NOT NULL,
            password_hash TEXT,
            certificate   TEXT,
            issued_at     BIGINT NOT NULL,
            revoked_at    BIGINT
        )""",
        "CREATE INDEX broker_identities_by_subject ON broker_identities (role, subject)",
    )),
    # The housekeeping looks for consent prompts not yet published every second: only
    # the few such contracts are indexed, not every contract scanned.
    Migration(5, "index of contracts with unpublished consent", (
        "CREATE INDEX contracts_consent_unpublished ON contracts (id) "
        "WHERE consent_rev > consent_published_rev",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version

_DEVICE_SELECT = (
    "SELECT d.eid, d.contract_id, d.iccid, d.imei, d.imsi, s.msisdn, d.ip, d.capabilities, "
    "d.manufacturer, d.model, d.revision, d.profile, d.last_seq, d.device_ts, "
    "d.registered_at, d.updated_at FROM devices d LEFT JOIN subscriptions s "
    "ON s.iccid = d.iccid"
)


_PAIRING_SELECT = (
    "SELECT id, app_id, contract_id, msisdn, purpose, state, consent, prompt_id, created_at, "
    "expires_at, decided_at, decided_by, ended_at, ended_by, end_reason FROM pairings"
)
_PAIRING_INSERT = (
    "INSERT INTO pairings (id, app_id, contract_id, msisdn, purpose, state, consent, "
    "prompt_id, created_at, expires_at, decided_at, decided_by, ended_at, ended_by, "
    "end_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EVENT_SELECT = (
    "SELECT app_id, seq, kind, contract_id, pairing_id, payload, created_at, published_at "
    "FROM app_events"
)
_EVENT_INSERT = (
    "INSERT INTO app_events (app_id, seq, kind, contract_id, pairing_id, payload, created_at,"
    " published_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
)
_AUDIT_SELECT = (
    "SELECT id, at, actor, action, outcome, contract_id, app_id, subject, detail "
    "FROM audit_log"
)
_AUDIT_INSERT = (
    "INSERT INTO audit_log (id, at, actor, action, outcome, contract_id, app_id, subject, "
    "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_APP_SELECT = "SELECT id, name, trust, purposes, standing_consent FROM apps"
_IDENTITY_SELECT = (
    "SELECT username, role, subject, issued_at, password_hash, certificate, revoked_at "
    "FROM broker_identities"
)


def _device_key(row: Row) -> DeviceKey:
    return DeviceKey(eid=row[0], public_key=bytes.fromhex(row[1]), kid=bytes.fromhex(row[2]),
                     enrolled_at=row[3], enrolled_by=row[4])


def _identity(row: Row) -> BrokerIdentity:
    return BrokerIdentity(username=row[0], role=Role(row[1]), subject=row[2],
                          issued_at=row[3], password_hash=row[4], certificate=row[5],
                          revoked_at=row[6])


def _pairing(row: Row) -> Pairing:
    return Pairing(
        id=row[0], app_id=row[1], contract_id=row[2], msisdn=row[3], purpose=row[4],
        state=PairingState(row[5]), consent=ConsentSource(row[6]) if row[6] else None,
        prompt_id=row[7], created_at=row[8], expires_at=row[9], decided_at=row[10],
        decided_by=row[11], ended_at=row[12], ended_by=row[13], end_reason=row[14],
    )


def _event(row: Row) -> StoredEvent:
    return StoredEvent(app_id=row[0], seq=row[1], kind=EventKind(row[2]), contract_id=row[3],
                       pairing_id=row[4], payload=json.loads(row[5]), created_at=row[6],
                       published_at=row[7])


def _audit(row: Row) -> AuditEntry:
    return AuditEntry(id=row[0], at=row[1], actor=row[2], action=row[3], outcome=row[4],
                      contract_id=row[5], app_id=row[6], subject=row[7],
                      detail=json.loads(row[8]))


def _prefixes_of(msisdn: str) -> list[str]:
    """Every prefix of an E.164 number that a prefix table may hold: "+4", "+49", ..."""
    return [msisdn[:n] for n in range(2, len(msisdn) + 1)]


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
        self._batched = False  # inside batch(): operations become savepoints
        self._broken = False  # a savepoint could not be undone; the batch must not commit
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

    def _dialect_statements(self, version: int) -> tuple[str, ...]:
        """Backend-specific statements to run after migration ``version``'s own."""
        return ()

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
                    for statement in (*migration.statements,
                                      *self._dialect_statements(migration.version)):
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
                # Directly inside a batch, each is an operation of its own: a savepoint.
                savepoint = self._batched and self._depth == 1
                if savepoint:
                    if self._broken:
                        raise StoreError(f"{self._describe()}: the batch's transaction "
                                         "was lost")
                    self._execute("SAVEPOINT operation")
                self._depth += 1
                try:
                    yield
                except BaseException:
                    if savepoint:
                        self._undo_operation()
                    raise
                else:
                    if savepoint:
                        self._execute("RELEASE SAVEPOINT operation")
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

    def _undo_operation(self) -> None:
        try:
            self._execute("ROLLBACK TO SAVEPOINT operation")
            self._execute("RELEASE SAVEPOINT operation")
        except StoreError as exc:
            # The database ended the whole transaction (I/O error, disk full, ...): what
            # the batch did before is gone too, so it must not commit anything.
            self._broken = True
            log.warning("%s: undoing a failed operation failed: %s", self._describe(), exc)

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                raise StoreError(f"{self._describe()}: a batch cannot begin inside a "
                                 "transaction")
            with self.transaction():
                self._batched, self._broken = True, False
                try:
                    yield
                    if self._broken:
                        raise StoreError(f"{self._describe()}: the batch's transaction was "
                                         "lost; nothing of it is stored")
                finally:
                    self._batched = False

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
        return App(id=row[0], name=row[1], trust=trust, purposes=_load_list(row[3]),
                   standing_consent=bool(row[4]))

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
            old_sub = self.subscription_by_iccid(stored.iccid)
            previous = replace(stored, msisdn=old_sub.msisdn if old_sub else None)
            device = self._new_device(info, sub, stored.registered_at, stamp)
            self._execute(
                "UPDATE devices SET contract_id = ?, iccid = ?, imei = ?, imsi = ?, ip = ?, "
                "capabilities = ?, manufacturer = ?, model = ?, revision = ?, profile = ?, "
                "last_seq = ?, device_ts = ?, registered_at = ?, updated_at = ? WHERE eid = ?",
                (*self._device_params(device)[1:], device.eid))
            return RegistrationOutcome(RegistrationResult.UPDATED, sub.contract_id, device,
                                       previous=previous,
                                       changes=device_changes(previous, device))

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

    def devices_by_iccid(self, iccid: str) -> list[Device]:
        rows = self._read(_DEVICE_SELECT + " WHERE d.iccid = ? ORDER BY d.eid", (iccid,))
        return [_device(row) for row in rows]

    def remove_device(self, eid: str) -> bool:
        with self.transaction():
            rows = self._execute("SELECT 1 FROM devices WHERE eid = ?", (eid,))
            if rows:
                self._execute("DELETE FROM devices WHERE eid = ?", (eid,))
            return bool(rows)

    def record_installation(self, installation: Installation) -> Change:
        i = installation
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT eid, txn, ts FROM installations WHERE iccid = ?"), (i.iccid,))
            now = self._clock()
            if not rows:
                self._execute("INSERT INTO installations (iccid, eid, txn, smdp, ts, "
                              "recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                              (i.iccid, i.eid, i.transaction, i.smdp, i.ts, now))
                return Change.ADDED
            eid, txn, ts = rows[0]
            if txn == i.transaction or ts > i.ts:
                return Change.UNCHANGED  # a repeat, or older than what is known
            self._execute("UPDATE installations SET eid = ?, txn = ?, smdp = ?, ts = ?, "
                          "recorded_at = ? WHERE iccid = ?",
                          (i.eid, i.transaction, i.smdp, i.ts, now, i.iccid))
            return Change.UPDATED if eid != i.eid else Change.UNCHANGED

    def installation(self, iccid: str) -> Installation | None:
        rows = self._read("SELECT iccid, eid, txn, smdp, ts FROM installations "
                          "WHERE iccid = ?", (iccid,))
        return Installation(*rows[0]) if rows else None

    # --- pairings and consent ----------------------------------------------------------

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

    # --- the per-app event streams -----------------------------------------------------

    def append_event(self, app_id: str, kind: EventKind, payload: dict[str, Any], *,
                     contract_id: str | None = None, pairing_id: str | None = None,
                     now: int | None = None) -> StoredEvent:
        stamp = self._clock() if now is None else now
        with self.transaction():
            # The upsert takes the stream's row lock until commit: concurrent writers of
            # the same app's events queue here, so numbers follow commit order.
            seq = int(self._execute(
                "INSERT INTO app_streams (app_id, last_seq) VALUES (?, 1) "
                "ON CONFLICT (app_id) DO UPDATE SET last_seq = app_streams.last_seq + 1 "
                "RETURNING last_seq", (app_id,))[0][0])
            body = {**payload, "seq": seq}
            self._execute(
                _EVENT_INSERT,
                (app_id, seq, kind.value, contract_id, pairing_id,
                 json.dumps(body, separators=(",", ":"), sort_keys=True), stamp))
        return StoredEvent(app_id=app_id, seq=seq, kind=kind, contract_id=contract_id,
                           pairing_id=pairing_id, payload=body, created_at=stamp)

    def events_since(self, app_id: str, seq: int, *, limit: int = 100) -> list[StoredEvent]:
        rows = self._read(_EVENT_SELECT + " WHERE app_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                          (app_id, seq, limit))
        return [_event(row) for row in rows]

    def last_event_seq(self, app_id: str) -> int:
        rows = self._read("SELECT last_seq FROM app_streams WHERE app_id = ?", (app_id,))
        return int(rows[0][0]) if rows else 0

    def unpublished_events(self, created_before: int, *, limit: int = 100
                           ) -> list[StoredEvent]:
        rows = self._read(_EVENT_SELECT + " WHERE published_at IS NULL AND created_at < ? "
                          "ORDER BY created_at, app_id, seq LIMIT ?", (created_before, limit))
        return [_event(row) for row in rows]

    def mark_published(self, keys: Iterable[tuple[str, int]], *, now: int | None = None
                       ) -> None:
        stamp = self._clock() if now is None else now
        with self.transaction():
            for app_id, seq in keys:
                self._execute("UPDATE app_events SET published_at = ? WHERE app_id = ? AND "
                              "seq = ? AND published_at IS NULL", (stamp, app_id, seq))

    # --- audit ---------------------------------------------------------------------------

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

    # --- device keys, replay state and broker identities -------------------------------

    def put_device_key(self, key: DeviceKey) -> Change:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT public_key FROM device_keys WHERE eid = ?"), (key.eid,))
            if not rows:
                self._execute("INSERT INTO device_keys (eid, public_key, kid, enrolled_at, "
                              "enrolled_by) VALUES (?, ?, ?, ?, ?)",
                              (key.eid, key.public_key.hex(), key.kid.hex(), key.enrolled_at,
                               key.enrolled_by))
                return Change.ADDED
            if rows[0][0] == key.public_key.hex():
                return Change.UNCHANGED
            self._execute("UPDATE device_keys SET public_key = ?, kid = ?, enrolled_at = ?, "
                          "enrolled_by = ? WHERE eid = ?",
                          (key.public_key.hex(), key.kid.hex(), key.enrolled_at,
                           key.enrolled_by, key.eid))
            return Change.UPDATED

    def device_key(self, eid: str) -> DeviceKey | None:
        rows = self._read("SELECT eid, public_key, kid, enrolled_at, enrolled_by "
                          "FROM device_keys WHERE eid = ?", (eid,))
        return _device_key(rows[0]) if rows else None

    def remove_device_key(self, eid: str) -> bool:
        with self.transaction():
            rows = self._execute("SELECT 1 FROM device_keys WHERE eid = ?", (eid,))
            if rows:
                self._execute("DELETE FROM device_keys WHERE eid = ?", (eid,))
            return bool(rows)

    def device_keys(self) -> list[DeviceKey]:
        rows = self._read("SELECT eid, public_key, kid, enrolled_at, enrolled_by "
                          "FROM device_keys ORDER BY eid")
        return [_device_key(row) for row in rows]

    def last_registration(self, eid: str) -> tuple[int, str] | None:
        rows = self._read("SELECT last_seq, digest FROM device_sequences WHERE eid = ?",
                          (eid,))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def note_registration(self, eid: str, seq: int, digest: str, *, now: int | None = None
                          ) -> None:
        stamp = self._clock() if now is None else now
        with self.transaction():
            self._execute("INSERT INTO device_sequences (eid, last_seq, digest, updated_at) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT (eid) DO UPDATE SET "
                          "last_seq = excluded.last_seq, digest = excluded.digest, "
                          "updated_at = excluded.updated_at", (eid, seq, digest, stamp))

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

    # --- secrets -------------------------------------------------------------------------

    def secret(self, name: str) -> bytes:
        with self.transaction():
            # Whichever process comes first makes the secret; the others read it.
            self._execute("INSERT INTO registry_secrets (name, value, created_at) "
                          "VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                          (name, os.urandom(32).hex(), self._clock()))
            rows = self._execute("SELECT value FROM registry_secrets WHERE name = ?", (name,))
        return bytes.fromhex(rows[0][0])

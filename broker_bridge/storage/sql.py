"""The store in portable SQL, shared by every SQL backend: the life cycle and migrations
over :class:`~broker_bridge.storage.core.SqlCore`, with the queries of every aggregate."""

from __future__ import annotations

import logging
import os

from broker_bridge.errors import SchemaVersionError, StoreError, StoreMissingError
from broker_bridge.storage.core import Row, SqlCore
from broker_bridge.storage.migrations import LATEST_VERSION, MIGRATIONS, MIGRATIONS_TABLE, Migration
from broker_bridge.storage.queries.apps import AppQueries
from broker_bridge.storage.queries.audit import AuditQueries
from broker_bridge.storage.queries.contracts import ContractQueries
from broker_bridge.storage.queries.devices import DeviceQueries
from broker_bridge.storage.queries.events import EventQueries
from broker_bridge.storage.queries.identities import IdentityQueries
from broker_bridge.storage.queries.pairings import PairingQueries
from broker_bridge.storage.queries.portability import PortabilityQueries

__all__ = ["LATEST_VERSION", "MIGRATIONS", "MIGRATIONS_TABLE", "Migration", "Row", "SqlStore"]

log = logging.getLogger(__name__)

#: Bytes of the row a write probe adds and removes: more than a page.
_PROBE_BYTES = 8192


class SqlStore(ContractQueries, AppQueries, DeviceQueries, PairingQueries, EventQueries,
               AuditQueries, IdentityQueries, PortabilityQueries, SqlCore):
    """A :class:`Store` over one database connection, serialised by a re-entrant lock.

    The queries come per aggregate from :mod:`broker_bridge.storage.queries`, the schema
    from :mod:`broker_bridge.storage.migrations`; subclasses implement the private hooks
    of :class:`~broker_bridge.storage.core.SqlCore`.
    """

    def open(self) -> None:
        with self._lock:
            if self._open:
                return
            self._connect()
            try:
                if not self.create and not self._has_schema():
                    raise StoreMissingError(self._describe())
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

    def check_writable(self) -> None:
        # A row larger than a page: the write allocates, as a registration's would.
        name = f"probe:{os.urandom(8).hex()}"
        with self.transaction():
            self._execute("INSERT INTO counters (name, value) VALUES (?, 0)",
                          (name + "." * _PROBE_BYTES,))
            self._execute("DELETE FROM counters WHERE name = ?", (name + "." * _PROBE_BYTES,))

    def _has_schema(self) -> bool:
        """Whether the database holds this registry's tables (its migrations table)."""
        try:
            self._execute("SELECT MAX(version) FROM schema_migrations")
        except StoreError:
            return False
        return True

    def _version(self) -> int:
        rows = self._execute("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def schema_version(self) -> int:
        with self._lock:
            self._require_open()
            return self._version()

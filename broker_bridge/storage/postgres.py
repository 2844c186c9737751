"""The shared store: one PostgreSQL database (or one schema of it), for several bridge
processes on one or many machines.

The schema, migrations and queries are :class:`~broker_bridge.storage.sql.SqlStore`'s; this
module adds the connection (psycopg 3), the placeholder style, row locks for
read-modify-writes and PostgreSQL's way of keeping the audit log append-only.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from broker_bridge.errors import StoreCorruptError, StoreError
from broker_bridge.model import now_ms
from broker_bridge.storage.migrations.v6_read_versions import CONTRACT_TABLES
from broker_bridge.storage.migrations.v8_consent_choices import POSTGRES_TRIGGERS
from broker_bridge.storage.sql import MIGRATIONS_TABLE, Row, SqlStore
from mps_common.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")

# Every writer of one registry takes this lock (with the schema's hash as second key) right
# after BEGIN, so write transactions run one at a time, as SQLite's BEGIN IMMEDIATE makes
# them: the registry's read-then-write rules (replay checks, one live pairing per app and
# contract, upserts) stay correct with any number of bridge processes, without retries.
_WRITER_LOCK_KEY = 0x4D5053  # "MPS"

# Store.read_versions as a statement prepared on the connection (see read_versions).
_VERSIONS_NAME = b"mps_read_versions"
_VERSIONS_SQL = (b"SELECT n.contract_id, c.version, g.value FROM numbers n "
                 b"JOIN contracts c ON c.id = n.contract_id "
                 b"JOIN counters g ON g.name = 'apps' WHERE n.msisdn = $1")


def _check(result: pq.abc.PGresult) -> pq.abc.PGresult:
    """``result`` if its statement succeeded; else StoreError."""
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        raise StoreError((result.error_message or b"").decode(errors="replace").strip())
    return result

_BEGIN_LOCKED = ("BEGIN; SELECT pg_advisory_xact_lock("
                 f"{_WRITER_LOCK_KEY}, hashtext(current_schema()))")

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Tables of this registry: finding one of them without schema_migrations means the
# database belongs to something else.
_OUR_TABLES = ("contracts", "numbers", "subscriptions", "devices", "apps", "audit_log")

_AUDIT_APPEND_ONLY = (
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$fn$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $fn$",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)

# Schema version 6: the read model's versions, raised in the changing transaction.
_VERSION_TRIGGERS = (
    "CREATE FUNCTION contract_version_bump() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
    "BEGIN "
    "IF TG_OP <> 'INSERT' THEN "
    "UPDATE contracts SET version = version + 1 WHERE id = OLD.contract_id; END IF; "
    "IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' "
    "AND NEW.contract_id IS DISTINCT FROM OLD.contract_id) THEN "
    "UPDATE contracts SET version = version + 1 WHERE id = NEW.contract_id; END IF; "
    "RETURN NULL; END $fn$",
    *(f"CREATE TRIGGER {table}_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
      "FOR EACH ROW EXECUTE FUNCTION contract_version_bump()" for table in CONTRACT_TABLES),
    "CREATE FUNCTION apps_version_bump() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
    "BEGIN UPDATE counters SET value = value + 1 WHERE name = 'apps'; RETURN NULL; END $fn$",
    "CREATE TRIGGER apps_version AFTER INSERT OR UPDATE OR DELETE ON apps "
    "FOR EACH STATEMENT EXECUTE FUNCTION apps_version_bump()",
)

SynchronousCommit = Literal["on", "off"]


def _placeholders(sql: str) -> str:
    """``sql`` with SQLite's ``?`` placeholders as psycopg's ``%s`` (and literal ``%``
    doubled); quoted text is left alone."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


def split_url(url: str) -> tuple[str, str | None]:
    """The libpq connection URL and the ``schema`` option of a ``postgresql://`` URL.

    ``?schema=NAME`` is this registry's own option (libpq would refuse it); every other
    query option goes to libpq unchanged.
    """
    if not url.startswith(SCHEMES):
        raise ConfigError(f"{url!r} is not a postgresql:// URL")
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in options if key == "schema"]
    rest = [(key, value) for key, value in options if key != "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(f"schema {schema!r} in {redact(url)!r} must be a lower-case SQL "
                          "name (letters, digits, _)")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(SqlStore):
    """A :class:`~broker_bridge.storage.base.Store` in a PostgreSQL database.

    ``url`` is a libpq URL (``postgresql://user@host:5432/dbname``, any libpq option in
    its query); ``schema`` (or ``?schema=NAME`` in the URL) keeps the registry's tables in
    a schema of their own, made on :meth:`open` if missing, so one database can hold
    several registries. Write transactions are serialised across every process using the
    same schema (see the module's writer lock); reads never wait for them.

    ``synchronous_commit`` is PostgreSQL's durability setting for this store's
    transactions: ``on`` returns from a commit once it is on disk, ``off`` up to three
    WAL-writer delays earlier (a crash of the server may lose the newest commits, never
    corrupt the database); None (the default) keeps what the server or the URL says
    (``?options=-csynchronous_commit%3Doff``).
    """

    _lock_rows = " FOR UPDATE"

    def __init__(self, url: str, *, schema: str | None = None,
                 synchronous_commit: SynchronousCommit | None = None,
                 connect_timeout: float = 10.0,
                 clock: Callable[[], int] = now_ms) -> None:
        super().__init__(clock=clock)
        conninfo, url_schema = split_url(url)
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r} must be a lower-case SQL name")
        if synchronous_commit not in ("on", "off", None):
            raise ValueError(f"synchronous_commit must be on or off, not {synchronous_commit!r}")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.url = url
        self.schema = schema or url_schema
        self.synchronous_commit = synchronous_commit
        self.connect_timeout = connect_timeout
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Row] | None = None
        self._sql_cache: dict[str, str] = {}
        self._in_transaction = False
        self._versions_on: pq.abc.PGconn | None = None  # where _VERSIONS_NAME is prepared

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r}, schema={self.schema!r})"

    def _describe(self) -> str:
        where = redact(self.url)
        return f"{where} (schema {self.schema})" if self.schema else where

    def _error(self, action: str, exc: psycopg.Error) -> StoreError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(f"{self._describe()}: {action} failed: {text}")

    # --- hooks -------------------------------------------------------------------------

    def _connect(self) -> None:
        try:
            conn: psycopg.Connection[Row] = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, round(
                    self.connect_timeout)), application_name="mps-bridge")
        except psycopg.Error as exc:
            raise self._error("connecting", exc) from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: psycopg.Connection[Row]) -> None:
        try:
            if self.schema:
                if self.create:
                    # Several processes may make the schema at once: IF NOT EXISTS can
                    # still collide in the catalog, and then the schema is there all the same.
                    with contextlib.suppress(pg_errors.UniqueViolation):
                        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(f'SET search_path TO "{self.schema}"')
            if self.synchronous_commit is not None:
                conn.execute("SET synchronous_commit TO " + self.synchronous_commit)
            # The bookkeeping table is made under the writer lock: concurrent
            # CREATE TABLE IF NOT EXISTS of the same table can fail in PostgreSQL.
            with conn.transaction():
                self._take_writer_lock(conn)
                self._claim(conn)
                if self.create:
                    conn.execute(MIGRATIONS_TABLE)
        except psycopg.Error as exc:
            raise self._error("checking the database", exc) from exc

    @staticmethod
    def _take_writer_lock(conn: psycopg.Connection[Row]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                     (_WRITER_LOCK_KEY,))

    def _claim(self, conn: psycopg.Connection[Row]) -> None:
        found = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()").fetchall()}
        if "schema_migrations" in found:
            return
        clash = sorted(found.intersection(_OUR_TABLES))
        if clash:
            raise StoreCorruptError(
                f"{self._describe()} holds tables of another application "
                f"({', '.join(clash)}); use another database or schema",
                path=self._describe(), problems=clash)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:
                log.warning("%s: closing failed: %s", self._describe(), exc)

    def _sql(self, sql: str) -> str:
        found = self._sql_cache.get(sql)
        if found is None:
            found = self._sql_cache[sql] = _placeholders(sql)
        return found

    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        conn = self._connection()
        try:
            return self._run(conn, sql, params)
        except psycopg.OperationalError as exc:
            if self._in_transaction or not conn.closed:
                raise self._error("a query", exc) from exc
            # The server restarted or dropped us: a statement outside a transaction is
            # safe to run again on a new connection (inside one the caller must see it).
            log.warning("%s: connection lost (%s); connecting again", self._describe(),
                        exc)
        except psycopg.Error as exc:
            raise self._error("a query", exc) from exc
        try:
            return self._run(self._reconnect(), sql, params)
        except psycopg.Error as exc:
            raise self._error("a query", exc) from exc

    def _execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        except psycopg.Error as exc:
            raise self._error("a query", exc) from exc

    def read_versions(self, msisdn: str) -> tuple[str, int, int] | None:
        """As every store's, in one prepared statement sent by libpq itself: a query
        answered from the read model waits for this round trip, and psycopg's cursor,
        statement cache and result machinery cost as much again as the server's work."""
        conn = self._conn
        if conn is None or conn.closed or self._in_transaction:
            return super().read_versions(msisdn)
        with self._lock, conn.lock:
            pg = conn.pgconn
            try:
                if self._versions_on is not pg:
                    _check(pg.prepare(_VERSIONS_NAME, _VERSIONS_SQL))
                    self._versions_on = pg
                found = _check(pg.exec_prepared(_VERSIONS_NAME, [msisdn.encode()]))
            except (psycopg.Error, StoreError):
                found = None
        if found is None:  # lost or refused: the ordinary path reconnects or reports
            self._versions_on = None
            return super().read_versions(msisdn)
        if not found.ntuples:
            return None
        contract, version, apps = (found.get_value(0, i) or b"" for i in range(3))
        return contract.decode(), int(version), int(apps)

    def sibling(self) -> PostgresStore:
        return PostgresStore(self.url, schema=self.schema,
                             synchronous_commit=self.synchronous_commit,
                             connect_timeout=self.connect_timeout, clock=self._clock)

    def _run(self, conn: psycopg.Connection[Row], sql: str, params: Sequence[object]
             ) -> list[Row]:
        # Without parameters there is nothing to rewrite (and a literal % stays as it is).
        cur = conn.execute(self._sql(sql), params) if params else conn.execute(sql)
        return cur.fetchall() if cur.description is not None else []

    def _connection(self) -> psycopg.Connection[Row]:
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self._describe()} is not open")
        if conn.closed and not self._in_transaction:
            return self._reconnect()
        return conn

    def _reconnect(self) -> psycopg.Connection[Row]:
        self._disconnect()
        self._connect()
        if self._conn is None:  # pragma: no cover - _connect sets it or raises
            raise StoreError(f"{self._describe()} is not open")
        return self._conn

    def _dialect_statements(self, version: int) -> tuple[str, ...]:
        # Migration 2 made the audit log; from then on it only grows.
        return {2: _AUDIT_APPEND_ONLY, 6: _VERSION_TRIGGERS, 8: POSTGRES_TRIGGERS}.get(version, ())

    def _begin(self) -> None:
        conn = self._connection()
        try:
            # One round trip for both: every write transaction pays it.
            conn.execute(_BEGIN_LOCKED)
            self._in_transaction = True
        except psycopg.Error as exc:
            self._rollback()
            raise self._error("beginning a transaction", exc) from exc

    def _commit(self) -> None:
        try:
            self._execute("COMMIT")
        finally:
            self._in_transaction = False

    def _rollback(self) -> None:
        self._in_transaction = False
        conn = self._conn
        if conn is None or conn.closed:
            return
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error as exc:
                # The original error is what matters; this one is only worth a note.
                log.warning("%s: rollback failed: %s", self._describe(), exc)

    # --- bulk loading --------------------------------------------------------------------

    def copy_rows(self, table: str, columns: Sequence[str],
                  rows: Iterable[Sequence[object]]) -> int:
        """Append ``rows`` to ``table`` with COPY, inside the current transaction (or one
        of its own): the fast way to load operator data in bulk. Returns the row count.

        ``table`` and ``columns`` must be plain names of this registry's schema; values go
        through COPY's own encoding, never into the statement.
        """
        for name in (table, *columns):
            if not _SCHEMA_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a table or column name")
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        count = 0
        with self.transaction():
            conn = self._connection()
            try:
                with conn.cursor().copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
                        count += 1
            except psycopg.Error as exc:
                raise self._error(f"copying into {table}", exc) from exc
        return count

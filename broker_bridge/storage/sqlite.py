"""The embedded store: one SQLite file in WAL mode."""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Literal

from broker_bridge.errors import StoreCorruptError, StoreError, StoreMissingError
from broker_bridge.model import now_ms
from broker_bridge.storage.migrations.v6_read_versions import CONTRACT_TABLES
from broker_bridge.storage.migrations.v8_consent_choices import SQLITE_TRIGGERS
from broker_bridge.storage.sql import Row, SqlStore

log = logging.getLogger(__name__)

# Marks a file as this registry's database ("MPS1"), so that opening some other
# application's SQLite file fails instead of migrating our tables into it.
APPLICATION_ID = 0x4D505331

# The WAL index header's size, and its first field (WALINDEX_MAX_VERSION, native order).
_WAL_HEADER = 48
_WAL_INDEX_VERSION = struct.pack("=I", 3007000)

_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

_BUMP = "UPDATE contracts SET version = version + 1 WHERE id"

# Schema version 6: the read model's versions, raised in the changing transaction.
_VERSION_TRIGGERS = (
    *(statement for table in CONTRACT_TABLES for statement in (
        f"CREATE TRIGGER {table}_version_insert AFTER INSERT ON {table} "
        f"BEGIN {_BUMP} = NEW.contract_id; END",
        f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} "
        f"BEGIN {_BUMP} IN (OLD.contract_id, NEW.contract_id); END",
        f"CREATE TRIGGER {table}_version_delete AFTER DELETE ON {table} "
        f"BEGIN {_BUMP} = OLD.contract_id; END")),
    *(f"CREATE TRIGGER apps_version_{verb.lower()} AFTER {verb} ON apps "  # noqa: S608 - fixed words
      "BEGIN UPDATE counters SET value = value + 1 WHERE name = 'apps'; END"
      for verb in ("INSERT", "UPDATE", "DELETE")),
)


#: The -shm files this process has opened, by (device, inode): the descriptor and its
#: mapping (None until the file is large enough), neither closed while the file exists.
#: Closing any descriptor of a file releases every POSIX lock the process holds on it
#: (fcntl(2)), SQLite's own among them: the read lock on the -shm that tells other
#: processes it is in use. Without it, the next process to open the database truncates
#: the -shm and builds it again under this one's connections (and a read of the mapping
#: in between is a SIGBUS).
_SHM_FILES: dict[tuple[int, int], tuple[int, mmap.mmap | None]] = {}
#: Descriptors of a file already open here (replaced by it between a look and an open):
#: kept open for the same reason.
_SHM_SPARE: list[int] = []
_SHM_LOCK = threading.Lock()


def _shm_headers(path: str) -> mmap.mmap | None:
    """A read-only mapping of the first two WAL index headers of the -shm file ``path``,
    shared by the whole process; None where there is none yet."""
    with _SHM_LOCK:
        for key, (fd, view) in list(_SHM_FILES.items()):
            if os.fstat(fd).st_nlink == 0:  # deleted (SQLite's last close): nobody can
                del _SHM_FILES[key]           # open it again, so its locks matter no more
                if view is not None:
                    view.close()
                os.close(fd)
        fd, view = -1, None
        try:
            info = os.stat(path)
            fd, view = _SHM_FILES.get((info.st_dev, info.st_ino), (-1, None))
            if fd < 0:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                info = os.fstat(fd)
                if (info.st_dev, info.st_ino) in _SHM_FILES:
                    _SHM_SPARE.append(fd)
                    fd, view = _SHM_FILES[(info.st_dev, info.st_ino)]
            if view is None:
                view = mmap.mmap(fd, 2 * _WAL_HEADER, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # none yet, or not yet two headers long
            view = None
        if fd >= 0:
            _SHM_FILES[(info.st_dev, info.st_ino)] = fd, view
        return view


class SqliteStore(SqlStore):
    """A :class:`~broker_bridge.storage.base.Store` in one SQLite file.

    On :meth:`open` the file is created if missing, put in WAL mode (readers never block
    the writer, several bridge processes may share the file), checked with
    ``PRAGMA integrity_check`` and migrated. Foreign keys are enforced. Write transactions
    take the write lock at once (``BEGIN IMMEDIATE``), so concurrent writers wait up to
    ``busy_timeout`` seconds instead of failing half-way.

    ``synchronous`` is SQLite's durability setting: ``FULL`` survives power loss,
    ``NORMAL`` only the crash of the process, for fewer fsyncs.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 synchronous: Literal["FULL", "NORMAL"] = "FULL",
                 check_integrity: bool = True, busy_timeout: float = 5.0,
                 clock: Callable[[], int] = now_ms) -> None:
        super().__init__(clock=clock)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if busy_timeout < 0:
            raise ValueError("busy_timeout must not be negative")
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.check_integrity = check_integrity
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    def _describe(self) -> str:
        return self.path

    def _error(self, action: str, exc: sqlite3.Error) -> StoreError:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _CORRUPT_CODES:
            return StoreCorruptError(f"{self.path} is damaged or not an SQLite database "
                                     f"({action}: {exc})", path=self.path, problems=[str(exc)])
        return StoreError(f"{self.path}: {action} failed: {exc}")

    # --- hooks -------------------------------------------------------------------------

    def _connect(self) -> None:
        # Connecting would make the file; an empty one would be taken as a new database.
        if (not self.create and self.path != ":memory:" and not self.path.startswith("file:")
                and (not os.path.exists(self.path) or os.path.getsize(self.path) == 0)):
            raise StoreMissingError(self.path)
        try:
            # Autocommit mode: transactions are begun and ended explicitly, nothing implicit.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error("opening", exc) from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StoreError(f"{self.path}: cannot use WAL mode (journal mode is {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if self.check_integrity:
                self._check(conn)
            self._claim(conn)
        except sqlite3.Error as exc:
            raise self._error("checking the database", exc) from exc

    def _check(self, conn: sqlite3.Connection) -> None:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            raise StoreCorruptError(
                f"{self.path} failed its integrity check ({len(problems)} problems, first: "
                f"{problems[0]}); restore it from a backup", path=self.path, problems=problems)
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            raise StoreCorruptError(
                f"{self.path} has {len(dangling)} rows referring to missing rows (first in "
                f"table {dangling[0][0]}); restore it from a backup", path=self.path,
                problems=[f"{row[0]} row {row[1]} -> {row[2]}" for row in dangling])

    def _claim(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id == APPLICATION_ID:
            return
        tables = conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if app_id != 0 or tables:
            raise StoreCorruptError(f"{self.path} is an SQLite database of another application",
                                    path=self.path)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                log.warning("%s: closing failed: %s", self.path, exc)

    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self.path} is not open")
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error("a query", exc) from exc

    def _execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self.path} is not open")
        try:
            conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error("a query", exc) from exc

    def data_version(self) -> int | None:
        # SQLite's PRAGMA data_version: unchanged by this connection's own commits.
        # Never waits: another thread may be in a transaction on this connection.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._depth or self._conn is None:
                return None
            return int(self._execute("PRAGMA data_version")[0][0])
        finally:
            self._lock.release()

    def commit_marker(self) -> Callable[[], bytes | None] | None:
        # The WAL index header in the -shm file (https://sqlite.org/walformat.html): every
        # commit rewrites it (a counter, the last frame, checksums) before COMMIT returns,
        # second copy first. Both copies alike: a whole header, as of that moment.
        if self.path == ":memory:" or self.path.startswith("file:") or self._conn is None:
            return None
        headers = _shm_headers(self.path + "-shm")
        if headers is None:
            return None

        def marker() -> bytes | None:
            try:
                first = headers[:_WAL_HEADER]
                second = headers[_WAL_HEADER:2 * _WAL_HEADER]
            except ValueError:  # unmapped: the file was deleted (see _shm_headers)
                return None
            if first[:4] != _WAL_INDEX_VERSION or first != second:
                return None  # being written, or a format this code does not know
            return first

        return marker

    def sibling(self) -> SqliteStore:
        if self.path == ":memory:" or self.path.startswith("file:"):
            return self
        # The file is checked by whoever opened it first.
        return SqliteStore(self.path, synchronous=self.synchronous, check_integrity=False,
                           busy_timeout=self.busy_timeout, clock=self._clock)

    def _dialect_statements(self, version: int) -> tuple[str, ...]:
        if version == 6:
            return _VERSION_TRIGGERS
        if version == 8:
            return SQLITE_TRIGGERS
        if version != 2:
            return ()
        # The audit log is append-only: refuse changes even from a hand-made query.
        return tuple(
            f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            for verb in ("UPDATE", "DELETE"))

    def _begin(self) -> None:
        self._execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._execute("COMMIT")

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                # The original error is what matters; this one is only worth a note.
                log.warning("%s: rollback failed: %s", self.path, exc)

"""The connection and transaction machinery every SQL backend shares.

Backends supply a connection and a few dialect hooks (how to begin a transaction, how to
lock a row for a read-modify-write); the query classes of
:mod:`broker_bridge.storage.queries` work through :meth:`SqlCore._execute` and
:meth:`SqlCore.transaction`, written in the SQL that SQLite and PostgreSQL both
understand (``?`` placeholders are rewritten by backends whose driver wants another style).
"""

from __future__ import annotations

import abc
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from broker_bridge.errors import StoreError, UnknownContractError
from broker_bridge.model import AuditEntry, now_ms
from broker_bridge.storage.base import Store

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

_AUDIT_COLUMNS = ("id", "at", "actor", "action", "outcome", "contract_id", "app_id",
                  "subject", "detail")
#: Audit entries inserted by one statement at most (9 parameters each: within SQLite's
#: 32766 since 3.32, and PostgreSQL's 65535).
_AUDIT_ROWS = 512


@functools.cache
def _audit_insert(rows: int) -> str:
    """The statement inserting ``rows`` audit entries."""
    row = "(" + ", ".join("?" * len(_AUDIT_COLUMNS)) + ")"
    return (f"INSERT INTO audit_log ({', '.join(_AUDIT_COLUMNS)}) "  # noqa: S608 - fixed words
            f"VALUES {', '.join([row] * rows)}")


#: An audit entry's detail as stored: compact, keys sorted.
_detail_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def dump_list(items: Sequence[str]) -> str:
    """A list column's text: compact JSON."""
    return json.dumps(list(items), separators=(",", ":"))


def load_list(text: str) -> tuple[str, ...]:
    """A list column's values."""
    # dump_list's own output the short way: without a backslash, no string in the array
    # holds a quote (JSON escapes it), so '","' separates the strings exactly. Filling
    # the read model reads two such columns for every device.
    if text == "[]":
        return ()
    if text.startswith('["') and text.endswith('"]') and "\\" not in text:
        return tuple(text[2:-2].split('","'))
    return tuple(json.loads(text))


def in_list(column: str, values: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause keeping the rows whose ``column`` is one of ``values``, and its
    parameters; no clause for None (every row)."""
    if values is None:
        return "", ()
    if not values:
        return " WHERE 1 = 0", ()
    return f" WHERE {column} IN ({', '.join('?' * len(values))})", tuple(values)


class SqlCore(Store):
    """A :class:`Store`'s connection and transactions, serialised by a re-entrant lock.

    Backends implement the private hooks; the query classes build on the rest.
    """

    #: appended to the SELECT of a read-modify-write, e.g. " FOR UPDATE" on PostgreSQL
    _lock_rows = ""
    #: Whether :meth:`open` makes the database when there is none (a missing or empty
    #: file, an empty schema); False raises StoreMissingError instead (``serve``).
    create = True

    def __init__(self, *, clock: Callable[[], int] = now_ms) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._batched = False  # inside batch(): operations become savepoints
        self._broken = False  # a savepoint could not be undone; the batch must not commit
        self._open = False
        self._clock = clock
        self._rollbacks = 0
        # Inside batch(): audit entries gathered for one statement at its commit.
        self._audit_buffer: list[AuditEntry] = []

    @property
    def rollbacks(self) -> int:
        return self._rollbacks

    @abc.abstractmethod
    def _connect(self) -> None:
        """Open the connection and verify the database; raise StoreError if unusable."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close the connection."""

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one statement; return its rows (empty for statements without any)."""

    def _execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement for each of ``rows``; backends send them in one go."""
        for params in rows:
            self._execute(sql, params)

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
                audited = len(self._audit_buffer)
                if savepoint:
                    if self._broken:
                        raise StoreError(f"{self._describe()}: the batch's transaction "
                                         "was lost")
                    self._execute("SAVEPOINT operation")
                self._depth += 1
                try:
                    yield
                except BaseException:
                    self._rollbacks += 1
                    if savepoint:
                        del self._audit_buffer[audited:]
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
                self._rollbacks += 1
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
                    self._write_audits(self._audit_buffer)
                finally:
                    self._batched = False
                    self._audit_buffer = []

    def _write_audits(self, entries: Sequence[AuditEntry],
                      details: Sequence[str] | None = None) -> list[AuditEntry]:
        """Append ``entries`` in one statement, numbered in order, inside the current
        transaction; what they became. ``details`` are their details as stored, if
        encoded already."""
        if not entries:
            return []
        if details is None:
            details = [_detail_json(e.detail) for e in entries]
        last = int(self._execute(
            "UPDATE counters SET value = value + ? WHERE name = 'audit' RETURNING value",
            (len(entries),))[0][0])
        first = last - len(entries) + 1
        # Built field by field: dataclasses.replace and json.dumps with options (a new
        # encoder each call) cost most of a batch's time otherwise.
        numbered = [AuditEntry(first + i, e.at, e.actor, e.action, e.outcome, e.contract_id,
                               e.app_id, e.subject, e.detail) for i, e in enumerate(entries)]
        values: list[object] = []
        for e, detail in zip(numbered, details, strict=True):
            values += (e.id, e.at, e.actor, e.action, e.outcome, e.contract_id, e.app_id,
                       e.subject, detail)
        # Many rows a statement: each statement lets go of the interpreter while the
        # database works, and a thread waiting for it (the bridge's network thread,
        # answering queries) takes it over each time; one per row made a batch of a
        # thousand entries cost the replies that many switches.
        # Chunks of powers of two rows: few statements, and few distinct ones to prepare.
        start, left, columns = 0, len(numbered), len(_AUDIT_COLUMNS)
        while left:
            rows = min(_AUDIT_ROWS, 1 << (left.bit_length() - 1))
            self._execute(_audit_insert(rows), values[start:start + rows * columns])
            start, left = start + rows * columns, left - rows
        return numbered

    def _require_contract(self, contract_id: str) -> None:
        if not self._execute("SELECT 1 FROM contracts WHERE id = ?", (contract_id,)):
            raise UnknownContractError(contract_id)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            self._require_open()
            return self._execute(sql, params)

"""The eIM's state in SQLite: its own identity, the fleet of eUICCs it manages, the
packages queued per EID, what came back, and the reports for the registry (an outbox).

One file, WAL mode, one connection per thread. Counters only grow: the counter of a
package is taken (``counter + 1``) and stored in the same transaction that marks it sent,
so a package is never signed twice with one counter, even when the eIM restarts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpa_emulator.errors import EmulatorError

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS euiccs (
    eid TEXT PRIMARY KEY, counter INTEGER NOT NULL DEFAULT 0, association_token INTEGER,
    euicc_certificate BLOB, eum_certificate BLOB, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, eid TEXT NOT NULL REFERENCES euiccs(eid),
    kind TEXT NOT NULL, request TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
    counter INTEGER, transaction_id TEXT, created REAL NOT NULL, sent REAL, done REAL,
    result TEXT);
CREATE INDEX IF NOT EXISTS packages_by_eid ON packages (eid, state, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, eid TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL,
    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, created REAL NOT NULL,
    delivered REAL);
"""
STATES = ("queued", "sent", "done", "failed")


class EimStoreError(EmulatorError):
    """The eIM's database cannot be used, or a request names what it does not hold."""


@dataclass(frozen=True)
class Euicc:
    eid: str
    counter: int
    association_token: int | None
    euicc_certificate: bytes | None
    eum_certificate: bytes | None


@dataclass(frozen=True)
class Package:
    """A queued (or sent, done, failed) piece of work for one eUICC. ``request`` is the
    operator's order as JSON data (operations, or the activation code of a download)."""

    id: int
    eid: str
    kind: str
    request: dict[str, Any]
    state: str
    counter: int | None
    transaction_id: bytes | None
    result: dict[str, Any] | None


def _package(row: sqlite3.Row) -> Package:
    txid = row["transaction_id"]
    return Package(row["id"], row["eid"], row["kind"], json.loads(row["request"]),
                   row["state"], row["counter"], None if txid is None else bytes.fromhex(txid),
                   None if row["result"] is None else json.loads(row["result"]))


class EimStore:
    """The eIM's SQLite database at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self._db().executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise EimStoreError(f"cannot use the eIM database {self.path}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # --- settings (the eIM's identity) ----------------------------------------------------

    def setting(self, name: str) -> str | None:
        row = self._db().execute("SELECT value FROM settings WHERE name = ?",
                                 (name,)).fetchone()
        return None if row is None else str(row["value"])

    def set_settings(self, values: dict[str, str]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO settings VALUES (?, ?)", values.items())

    # --- the fleet ---------------------------------------------------------------------------

    def associate(self, eid: str, *, counter: int = 0, association_token: int | None = None
                  ) -> bool:
        """Add ``eid`` to the fleet; False when it was there already (nothing changes)."""
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO euiccs (eid, counter, association_token, "
                             "added) VALUES (?, ?, ?, ?)",
                             (eid, counter, association_token, time.time()))
            return cur.rowcount == 1

    def euicc(self, eid: str) -> Euicc | None:
        row = self._db().execute("SELECT * FROM euiccs WHERE eid = ?", (eid,)).fetchone()
        if row is None:
            return None
        return Euicc(row["eid"], row["counter"], row["association_token"],
                     row["euicc_certificate"], row["eum_certificate"])

    def euiccs(self) -> list[Euicc]:
        rows = self._db().execute("SELECT eid FROM euiccs ORDER BY eid").fetchall()
        return [e for e in (self.euicc(r["eid"]) for r in rows) if e is not None]

    def set_certificates(self, eid: str, euicc: bytes, eum: bytes) -> None:
        with self._tx() as db:
            db.execute("UPDATE euiccs SET euicc_certificate = ?, eum_certificate = ? "
                       "WHERE eid = ?", (euicc, eum, eid))

    # --- packages ----------------------------------------------------------------------------

    def queue(self, eid: str, kind: str, request: dict[str, Any]) -> int:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM euiccs WHERE eid = ?", (eid,)).fetchone() is None:
                raise EimStoreError(f"EID {eid} is not associated with this eIM")
            cur = db.execute("INSERT INTO packages (eid, kind, request, created) "
                             "VALUES (?, ?, ?, ?)", (eid, kind, json.dumps(request), time.time()))
            return int(cur.lastrowid or 0)

    def next_queued(self, eid: str) -> Package | None:
        row = self._db().execute("SELECT * FROM packages WHERE eid = ? AND state = 'queued' "
                                 "ORDER BY id LIMIT 1", (eid,)).fetchone()
        return None if row is None else _package(row)

    def mark_sent(self, package_id: int, transaction_id: bytes, *, take_counter: bool
                  ) -> int | None:
        """Mark a package sent with ``transaction_id``; with ``take_counter`` also take the
        eUICC's next counter value, in the same transaction, and return it."""
        with self._tx() as db:
            row = db.execute("SELECT eid FROM packages WHERE id = ?", (package_id,)).fetchone()
            counter = None
            if take_counter:
                db.execute("UPDATE euiccs SET counter = counter + 1 WHERE eid = ?",
                           (row["eid"],))
                counter = int(db.execute("SELECT counter FROM euiccs WHERE eid = ?",
                                         (row["eid"],)).fetchone()["counter"])
            db.execute("UPDATE packages SET state = 'sent', sent = ?, counter = ?, "
                       "transaction_id = ? WHERE id = ?",
                       (time.time(), counter, transaction_id.hex().upper(), package_id))
            return counter

    def sent_package(self, eid: str, transaction_id: bytes | None) -> Package | None:
        """The sent package the result answers: by transaction id, else the oldest sent."""
        db = self._db()
        if transaction_id is not None:
            row = db.execute("SELECT * FROM packages WHERE eid = ? AND transaction_id = ?",
                             (eid, transaction_id.hex().upper())).fetchone()
        else:
            row = db.execute("SELECT * FROM packages WHERE eid = ? AND state = 'sent' "
                             "ORDER BY id LIMIT 1", (eid,)).fetchone()
        return None if row is None else _package(row)

    def finish(self, package_id: int, *, ok: bool, result: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE packages SET state = ?, done = ?, result = ? WHERE id = ?",
                       ("done" if ok else "failed", time.time(), json.dumps(result),
                        package_id))

    def packages(self, eid: str | None = None) -> list[Package]:
        sql, args = "SELECT * FROM packages", tuple[str, ...]()
        if eid is not None:
            sql, args = sql + " WHERE eid = ?", (eid,)
        return [_package(r) for r in self._db().execute(sql + " ORDER BY id", args)]

    # --- report outbox (profile state changes for the registry) -------------------------------

    def queue_report(self, make: Callable[[int], bytes]) -> int:
        """Keep a report for delivery; ``make(seq)`` builds its payload from its number,
        in the same transaction."""
        with self._tx() as db:
            cur = db.execute("INSERT INTO reports (payload, created) VALUES (x'', ?)",
                             (time.time(),))
            seq = int(cur.lastrowid or 0)
            db.execute("UPDATE reports SET payload = ? WHERE seq = ?", (make(seq), seq))
            return seq

    def pending_reports(self, limit: int = 100) -> list[tuple[int, bytes]]:
        """Undelivered reports, oldest first."""
        rows = self._db().execute("SELECT seq, payload FROM reports WHERE delivered IS NULL "
                                  "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(r["seq"]), bytes(r["payload"])) for r in rows]

    def report_delivered(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE reports SET delivered = ? WHERE seq = ?", (time.time(), seq))

    # --- what came back ----------------------------------------------------------------------

    def record(self, eid: str | None, kind: str, detail: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (eid, kind, detail, at) VALUES (?, ?, ?, ?)",
                       (eid, kind, json.dumps(detail), time.time()))

    def events(self, eid: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self._db().execute("SELECT * FROM events ORDER BY id").fetchall()
        return [{"eid": r["eid"], "kind": r["kind"], "at": r["at"], **json.loads(r["detail"])}
                for r in rows if (eid is None or r["eid"] == eid)
                and (kind is None or r["kind"] == kind)]

"""Profile download orders and the SM-DP+'s durable state, in SQLite.

An order is one subscription (ICCID, IMSI, MSISDN, network keys) waiting for an eUICC. It
is found by its matching id, may demand a confirmation code (only its SHA-256 is kept,
which is all hashCc needs) and may be fixed to one EID. SQLite in WAL mode lets
``mps-emu smdp order`` add orders while the server runs, and every state change is one
compare-and-set statement, so concurrent sessions cannot both claim the same order.

The same database keeps the installation reports waiting to be delivered to the
registry (an outbox), so a report survives a restart of the SM-DP+ or an absent broker.
"""

from __future__ import annotations

import enum
import os
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpa_emulator.smdp.errors import OrderError
from mps_esim.crypto.confirmation import confirmation_code_digest
from mps_wire.identifiers import (
    IdentifierError,
    validate_eid,
    validate_iccid,
    validate_imsi,
    validate_msisdn,
)

DB_NAME = "smdp.sqlite3"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CC_ATTEMPTS = 3
_MATCHING_ID = frozenset(string.ascii_uppercase + string.digits + "-")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    matching_id TEXT PRIMARY KEY,
    iccid TEXT NOT NULL UNIQUE,
    imsi TEXT NOT NULL,
    msisdn TEXT,
    ki BLOB NOT NULL,
    opc BLOB NOT NULL,
    service_provider TEXT NOT NULL,
    profile_name TEXT NOT NULL,
    cc_digest BLOB,
    eid TEXT,
    eid_fixed INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    txid TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cc_failures INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    expires_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    matching_id TEXT PRIMARY KEY REFERENCES orders (matching_id),
    smds TEXT NOT NULL,
    registered_at REAL NOT NULL,
    deleted_at REAL
);
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL
);
"""


class OrderState(enum.StrEnum):
    """Where an order is in its life (after SGP.22's download order states)."""

    RELEASED = "released"  # ready for download
    DOWNLOADED = "downloaded"  # a bound package went out, no result yet
    INSTALLED = "installed"  # the eUICC signed a successful installation
    ERROR = "error"  # no more attempts allowed


@dataclass(frozen=True, slots=True)
class Order:
    """One profile download order."""

    matching_id: str
    iccid: str
    imsi: str
    msisdn: str | None
    ki: bytes
    opc: bytes
    service_provider: str
    profile_name: str
    cc_digest: bytes | None
    eid: str | None
    eid_fixed: bool
    state: OrderState
    txid: str | None
    attempts: int
    cc_failures: int
    max_attempts: int
    expires_at: float | None
    created_at: float

    @property
    def cc_required(self) -> bool:
        return self.cc_digest is not None

    def __repr__(self) -> str:
        return (f"Order({self.matching_id!r}, iccid={self.iccid!r}, state={self.state.value}, "
                f"eid={self.eid!r})")

    def summary(self) -> dict[str, object]:
        """The order without its secrets (for listings)."""
        return {"matching_id": self.matching_id, "iccid": self.iccid, "imsi": self.imsi,
                "msisdn": self.msisdn, "eid": self.eid, "state": self.state.value,
                "attempts": self.attempts, "confirmation_code": self.cc_required,
                "created_at": self.created_at}


def new_matching_id() -> str:
    """A random matching id: 20 characters from A-Z0-9 in groups (about 103 bits)."""
    alphabet = string.ascii_uppercase + string.digits
    raw = "".join(secrets.choice(alphabet) for _ in range(20))
    return "-".join(raw[i:i + 5] for i in range(0, 20, 5))


def check_matching_id(value: str) -> str:
    """A matching id as accepted in orders: 1 to 64 of ``A-Z 0-9 -``."""
    mid = value.strip().upper()
    if not 1 <= len(mid) <= 64 or not set(mid) <= _MATCHING_ID:
        raise OrderError(f"matching id {value!r} must be 1 to 64 of A-Z, 0-9 and '-'")
    return mid


def _identifiers(iccid: str, imsi: str, msisdn: str | None, eid: str | None
                 ) -> tuple[str, str, str | None, str | None]:
    """The identifiers of an order, validated and normalised."""
    try:
        return (validate_iccid(iccid), validate_imsi(imsi),
                validate_msisdn(msisdn) if msisdn is not None else None,
                validate_eid(eid) if eid is not None else None)
    except IdentifierError as exc:
        raise OrderError(str(exc)) from exc


def _check_order(confirmation_code: str | None, max_attempts: int, ki: bytes | None,
                 opc: bytes | None) -> None:
    if confirmation_code is not None and not 1 <= len(confirmation_code) <= 64:
        raise OrderError("a confirmation code has 1 to 64 characters")
    if max_attempts < 1:
        raise OrderError("max_attempts must be at least 1")
    for name, key in (("K", ki), ("OPc", opc)):
        if key is not None and len(key) != 16:
            raise OrderError(f"{name} must be 16 bytes")


class OrderStore:
    """The SQLite database of one SM-DP+ (orders, settings, report outbox). Thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OrderError(f"cannot open the order database {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    @classmethod
    def in_dir(cls, directory: str | os.PathLike[str]) -> OrderStore:
        return cls(Path(directory) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- settings ------------------------------------------------------------------------

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                       (key, value))

    def setting(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = ?",
                                   (key,)).fetchone()
        return None if row is None else str(row[0])

    # --- orders --------------------------------------------------------------------------

    def add(self, *, iccid: str, imsi: str, msisdn: str | None = None,
            confirmation_code: str | None = None, eid: str | None = None,
            matching_id: str | None = None, service_provider: str = "MPS",
            profile_name: str = "MPS operational", ki: bytes | None = None,
            opc: bytes | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
            ttl: float | None = None) -> Order:
        """Prepare a profile and release its order; the new :class:`Order`.

        K and OPc are random unless given. ``ttl`` (seconds) makes the order expire.
        """
        iccid, imsi, msisdn, eid = _identifiers(iccid, imsi, msisdn, eid)
        _check_order(confirmation_code, max_attempts, ki, opc)
        mid = check_matching_id(matching_id) if matching_id else new_matching_id()
        now = time.time()
        cc = confirmation_code_digest(confirmation_code) if confirmation_code else None
        row = (mid, iccid, imsi, msisdn, ki or secrets.token_bytes(16),
               opc or secrets.token_bytes(16), service_provider[:32], profile_name[:64], cc,
               eid, int(eid is not None), OrderState.RELEASED.value, max_attempts,
               now + ttl if ttl else None, now, now)
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO orders (matching_id, iccid, imsi, msisdn, ki, opc, "
                    "service_provider, profile_name, cc_digest, eid, eid_fixed, state, "
                    "max_attempts, expires_at, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError as exc:
            raise OrderError(self._conflict(iccid, mid)) from exc
        order = self.get(mid)
        if order is None:
            raise OrderError(f"the order {mid} vanished as it was made")
        return order

    @staticmethod
    def _order(row: Any) -> Order:
        (mid, iccid, imsi, msisdn, ki, opc, spn, name, cc, eid, fixed, state, txid, attempts,
         cc_failures, max_attempts, expires, created) = row
        return Order(mid, iccid, imsi, msisdn, bytes(ki), bytes(opc), spn, name,
                     None if cc is None else bytes(cc), eid, bool(fixed), OrderState(state),
                     txid, attempts, cc_failures, max_attempts, expires, created)

    _COLUMNS = ("matching_id, iccid, imsi, msisdn, ki, opc, service_provider, profile_name, "
                "cc_digest, eid, eid_fixed, state, txid, attempts, cc_failures, max_attempts, "
                "expires_at, created_at")

    def get(self, matching_id: str) -> Order | None:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM orders "  # noqa: S608
                                   "WHERE matching_id = ?", (matching_id,)).fetchone()
        return None if row is None else self._order(row)

    def _conflict(self, iccid: str, matching_id: str) -> str:
        """What stands in the way of a new order for ``iccid`` under ``matching_id``."""
        existing = self.by_iccid(iccid)
        if existing is not None:
            return (f"ICCID {iccid} is ordered already: order {existing.matching_id}, "
                    f"{existing.state.value}")
        taken = self.get(matching_id)
        if taken is not None:
            return f"the matching id {matching_id} is taken by the order for ICCID {taken.iccid}"
        return f"the order for ICCID {iccid} conflicts with one made meanwhile"

    def by_iccid(self, iccid: str) -> Order | None:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM orders "  # noqa: S608
                                   "WHERE iccid = ?", (iccid,)).fetchone()
        return None if row is None else self._order(row)

    def for_eid(self, eid: str) -> Order | None:
        """The oldest order made for ``eid`` (``--eid``) that is not installed yet: what the
        eUICC downloads from its default SM-DP+, without a matching id."""
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM orders "  # noqa: S608
                                   "WHERE eid = ? AND eid_fixed = 1 AND state IN (?, ?) "
                                   "ORDER BY created_at LIMIT 1",
                                   (eid, OrderState.RELEASED.value,
                                    OrderState.DOWNLOADED.value)).fetchone()
        return None if row is None else self._order(row)

    def all(self) -> list[Order]:
        with self._lock:
            rows = self._db.execute(f"SELECT {self._COLUMNS} FROM orders "  # noqa: S608
                                    "ORDER BY created_at").fetchall()
        return [self._order(r) for r in rows]

    def claim(self, matching_id: str, eid: str, txid: str) -> bool:
        """Bind a released (or downloaded, not installed) order to a session of ``eid``.

        A new session of the same eUICC takes over (the old one is dead: a card runs one
        download at a time); another eUICC is refused while the order is bound to one.
        """
        with self._tx() as db:
            cur = db.execute(
                "UPDATE orders SET eid = ?, txid = ?, updated_at = ? WHERE matching_id = ? "
                "AND state IN (?, ?) AND (eid IS NULL OR eid = ?) AND attempts < max_attempts",
                (eid, txid, time.time(), matching_id, OrderState.RELEASED.value,
                 OrderState.DOWNLOADED.value, eid))
            return cur.rowcount == 1

    def mark_downloaded(self, matching_id: str, txid: str) -> bool:
        """The bound package went out in session ``txid`` (one more attempt used)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE orders SET state = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE matching_id = ? AND txid = ? AND state IN (?, ?)",
                (OrderState.DOWNLOADED.value, time.time(), matching_id, txid,
                 OrderState.RELEASED.value, OrderState.DOWNLOADED.value))
            return cur.rowcount == 1

    def cc_failed(self, matching_id: str, limit: int = DEFAULT_CC_ATTEMPTS) -> int:
        """Count a wrong confirmation code; after ``limit`` the order goes to ERROR."""
        with self._tx() as db:
            db.execute("UPDATE orders SET cc_failures = cc_failures + 1, updated_at = ? "
                       "WHERE matching_id = ?", (time.time(), matching_id))
            row = db.execute("SELECT cc_failures FROM orders WHERE matching_id = ?",
                             (matching_id,)).fetchone()
            failures = int(row[0]) if row else 0
            if failures >= limit:
                db.execute("UPDATE orders SET state = ?, txid = NULL WHERE matching_id = ?",
                           (OrderState.ERROR.value, matching_id))
            return failures

    def installed(self, matching_id: str, txid: str, eid: str) -> bool:
        """The eUICC ``eid`` signed a successful installation in session ``txid``."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE orders SET state = ?, eid = ?, eid_fixed = 1, txid = NULL, "
                "updated_at = ? WHERE matching_id = ? AND txid = ? AND state IN (?, ?)",
                (OrderState.INSTALLED.value, eid, time.time(), matching_id, txid,
                 OrderState.RELEASED.value, OrderState.DOWNLOADED.value))
            return cur.rowcount == 1

    def release(self, matching_id: str, txid: str) -> bool:
        """Session ``txid`` failed or was cancelled: the order may be downloaded again.

        An order whose EID was not fixed at ordering time is free for any eUICC again;
        one out of attempts goes to ERROR.
        """
        with self._tx() as db:
            cur = db.execute(
                "UPDATE orders SET state = CASE WHEN attempts >= max_attempts THEN ? ELSE ? "
                "END, txid = NULL, eid = CASE WHEN eid_fixed THEN eid ELSE NULL END, "
                "updated_at = ? WHERE matching_id = ? AND txid = ? AND state IN (?, ?)",
                (OrderState.ERROR.value, OrderState.RELEASED.value, time.time(), matching_id,
                 txid, OrderState.RELEASED.value, OrderState.DOWNLOADED.value))
            return cur.rowcount == 1

    # --- report outbox ---------------------------------------------------------------------

    def queue_report(self, make: Callable[[int], bytes]) -> int:
        """Keep a report for delivery; ``make(seq)`` builds its payload from its sequence
        number. Returns the sequence number."""
        with self._tx() as db:
            cur = db.execute("INSERT INTO reports (payload, created_at) VALUES (?, ?)",
                             (b"", time.time()))
            seq = int(cur.lastrowid or 0)
            db.execute("UPDATE reports SET payload = ? WHERE seq = ?", (make(seq), seq))
            return seq

    def pending_reports(self, limit: int = 100) -> list[tuple[int, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM reports WHERE delivered_at IS "
                                    "NULL ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def report_delivered(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE reports SET delivered_at = ? WHERE seq = ?", (time.time(), seq))

    # --- SM-DS events (ES12) ---------------------------------------------------------------

    def event_registered(self, matching_id: str, smds: str) -> None:
        """The order's event is registered at the SM-DS ``smds`` (ES12.RegisterEvent)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO events (matching_id, smds, registered_at) "
                       "VALUES (?, ?, ?)", (matching_id, smds, time.time()))

    def events_to_delete(self) -> list[tuple[str, str, str]]:
        """(matching id, EID, SM-DS) of the events whose download is over (the order
        installed, or out of attempts) and which the SM-DS still holds."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.matching_id, o.eid, e.smds FROM events e JOIN orders o USING "
                "(matching_id) WHERE e.deleted_at IS NULL AND o.state IN (?, ?) AND "
                "o.eid IS NOT NULL ORDER BY e.registered_at",
                (OrderState.INSTALLED.value, OrderState.ERROR.value)).fetchall()
        return [(str(m), str(e), str(s)) for m, e, s in rows]

    def event_deleted(self, matching_id: str) -> None:
        """The SM-DS confirmed ES12.DeleteEvent for the order's event."""
        with self._tx() as db:
            db.execute("UPDATE events SET deleted_at = ? WHERE matching_id = ?",
                       (time.time(), matching_id))

    def event_of(self, matching_id: str) -> tuple[str, bool] | None:
        """The SM-DS holding the order's event and whether it was deleted there."""
        with self._lock:
            row = self._db.execute("SELECT smds, deleted_at FROM events WHERE matching_id = ?",
                                   (matching_id,)).fetchone()
        return None if row is None else (str(row[0]), row[1] is not None)

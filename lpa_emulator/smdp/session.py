"""The ES9+ download sessions of the SM-DP+, from initiateAuthentication to their end, and
the table that keeps them bounded."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.credentials import ServerKeys
from lpa_emulator.smdp.errors import Es9StatusError
from mps_esim import sgp22


@dataclass
class Session:
    """What the SM-DP+ keeps of one download while it runs; ``lock`` orders its calls.

    ``client`` is the address the session was opened from (None in-process).
    """

    txid: bytes
    created: float
    euicc_challenge: bytes
    server_challenge: bytes
    keys: ServerKeys
    ci_pkid: bytes
    """euiccCiPKIdToBeUsed: the CI the eUICC's certificate chain must be issued under."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    step: str = "initiated"
    eid: str | None = None
    euicc_cert: x509.Certificate | None = None
    euicc_cert_der: bytes = b""
    eum_cert_der: bytes = b""
    matching_id: str | None = None
    smdp_signature2: bytes = b""
    euicc_otpk: bytes | None = None
    bpp: bytes | None = None
    client: str | None = None

    @property
    def txid_hex(self) -> str:
        return self.txid.hex().upper()

    @property
    def authenticated(self) -> bool:
        return self.eid is not None


class SessionTable:
    """Download sessions by transaction id, bounded so that nobody can fill the table.

    initiateAuthentication needs no credential (SGP.22 5.6.1), so a session stays
    *pending* until authenticateClient proves an eUICC: a pending session lives
    ``pending_ttl`` seconds, one client address holds at most ``max_pending_per_client``
    (its oldest goes first), and when the table is full the oldest pending session is
    evicted before a new one is refused. An authenticated session lives ``ttl`` seconds,
    one per EID (a card runs one download at a time: a newer session of the same eUICC
    ends the older). Only a table full of authenticated sessions refuses a new one.
    """

    def __init__(self, *, clock: Callable[[], float], ttl: float = 600.0,
                 pending_ttl: float = 30.0, max_sessions: int = 10_000,
                 max_pending_per_client: int = 64) -> None:
        if min(ttl, pending_ttl) <= 0 or min(max_sessions, max_pending_per_client) < 1:
            raise ValueError("session lifetimes and limits must be positive")
        self.ttl = ttl
        self.pending_ttl = pending_ttl
        self.max_sessions = max_sessions
        self.max_pending_per_client = max_pending_per_client
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[bytes, Session] = {}
        # Insertion order is creation order: the first entry is the oldest.
        self._pending: dict[bytes, Session] = {}
        self._pending_of: dict[str | None, dict[bytes, None]] = {}
        self._by_eid: dict[str, bytes] = {}
        self.evicted = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def open(self, euicc_challenge: bytes, keys: ServerKeys, ci_pkid: bytes, *,
             client: str | None = None) -> Session:
        """A new pending session; BUSY only when every place holds an authenticated one."""
        now = self._clock()
        with self._lock:
            self._expire_pending(now)
            own = self._pending_of.get(client, {})
            if len(own) >= self.max_pending_per_client:
                self._evict(next(iter(own)))
            if len(self._sessions) >= self.max_sessions:
                self._expire_authenticated(now)
            if len(self._sessions) >= self.max_sessions:
                if not self._pending:
                    raise Es9StatusError(st.BUSY, "too many download sessions in progress")
                self._evict(next(iter(self._pending)))
            txid = os.urandom(sgp22.MAX_TRANSACTION_ID)
            while txid in self._sessions:
                txid = os.urandom(sgp22.MAX_TRANSACTION_ID)
            session = Session(txid, now, euicc_challenge,
                              os.urandom(sgp22.CHALLENGE_SIZE), keys, ci_pkid,
                              client=client)
            self._sessions[txid] = session
            self._pending[txid] = session
            self._pending_of.setdefault(client, {})[txid] = None
        return session

    def get(self, txid: bytes) -> Session:
        """The live session ``txid``; UNKNOWN_TRANSACTION when there is none (any more)."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(txid)
            if session is not None and now - session.created > self._lifetime(session):
                self._remove(session)
                session = None
        if session is None:
            raise Es9StatusError(st.UNKNOWN_TRANSACTION,
                                 f"transaction {txid.hex().upper()} is unknown")
        return session

    def find(self, txid: bytes) -> Session | None:
        """The session ``txid`` if the table still holds it, expired or not."""
        with self._lock:
            return self._sessions.get(txid)

    def authenticated(self, session: Session, eid: str) -> None:
        """``session`` proved eUICC ``eid``: it leaves the pending ones and ends any older
        session of the same eUICC."""
        with self._lock:
            older = self._by_eid.get(eid)
            if older is not None and older != session.txid and older in self._sessions:
                self._remove(self._sessions[older])
            session.eid = eid
            self._unpend(session)
            if session.txid in self._sessions:
                self._by_eid[eid] = session.txid

    def end(self, session: Session) -> None:
        with self._lock:
            if self._sessions.get(session.txid) is session:
                self._remove(session)

    # --- internals (called with the lock held) ---------------------------------------------

    def _lifetime(self, session: Session) -> float:
        return self.ttl if session.authenticated else self.pending_ttl

    def _expire_pending(self, now: float) -> None:
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.created <= self.pending_ttl:
                return
            self._remove(oldest)

    def _expire_authenticated(self, now: float) -> None:
        for session in [s for s in self._sessions.values()
                        if s.authenticated and now - s.created > self.ttl]:
            self._remove(session)

    def _evict(self, txid: bytes) -> None:
        self.evicted += 1
        self._remove(self._sessions[txid])

    def _unpend(self, session: Session) -> None:
        if self._pending.pop(session.txid, None) is not None:
            own = self._pending_of.get(session.client)
            if own is not None:
                own.pop(session.txid, None)
                if not own:
                    del self._pending_of[session.client]

    def _remove(self, session: Session) -> None:
        self._sessions.pop(session.txid, None)
        self._unpend(session)
        if session.eid is not None and self._by_eid.get(session.eid) == session.txid:
            del self._by_eid[session.eid]

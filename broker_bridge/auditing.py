"""The audit writer: audit entries of answers given from the read model, written in
batches off the reply's path, and their messages acknowledged once written.

A query answered from memory (:mod:`broker_bridge.registry.reads`) changes nothing but
the audit log. Its reply goes out at once; its audit entry goes to :class:`AuditWriter`,
which appends whatever has gathered in one statement per transaction on a connection of
its own (so that waiting for the disk holds up no reply), and only then acknowledges the
requests' MQTT messages. A bridge killed between a reply and that commit has not
acknowledged the request: the broker delivers it again (to this group, with a
persistent session), and it is answered and audited then. Nothing is acknowledged that
was not stored.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import paho.mqtt.client as mqtt

from broker_bridge.errors import StoreError
from broker_bridge.health import StoreHealth
from broker_bridge.model import AuditEntry
from broker_bridge.storage.base import Store
from mps_mqtt.lean import held_wakes

log = logging.getLogger(__name__)

#: Entries written in one transaction at most.
BATCH_MAX = 1000

#: Seconds the writer waits for more entries after the first of a batch. Each commit
#: costs CPU and holds up the network thread (the interpreter, the WAL, the database
#: server): in ``mps-bench perf``, PostgreSQL's sequential query p50 was 1.7-2x the
#: echo's at 10 ms, 1.25-1.4x at 50 ms and more. The acknowledgements it delays bound
#: nothing: the writer starts early once FLUSH_AT entries wait, well before the broker's
#: RECEIVE_MAXIMUM (1000) unacknowledged messages are reached.
LINGER = 0.05

#: Entries waiting after which the writer writes without lingering further.
FLUSH_AT = BATCH_MAX // 2

#: Seconds an acknowledgement waits for the network thread before the writer sends it.
ACK_GRACE = 0.002

#: Seconds between attempts while the store refuses to write.
RETRY_SECONDS = 0.5


#: An entry and the packet id and QoS of the message to acknowledge once it is written.
#: A tuple: built on the network thread for every query answered from memory. Not the
#: message itself: held for a batch's linger, a message (its properties, payload and
#: their lists) would outlive young collections of the cyclic collector at every
#: request, and make each of them, and the older ones they bring on, slower (8 ms
#: pauses of the network thread at 64 requests in flight).
_Pending = tuple[AuditEntry, int, int]


class AuditWriter:
    """Writes audit entries into ``store`` on its own thread, then acknowledges their
    messages on ``client``.

    The writer wakes once per batch, not once per entry: after the first entry it waits
    ``linger`` seconds for more, then writes all that gathered (at most
    :data:`BATCH_MAX`) in one transaction. A longer ``linger`` makes larger batches and
    acknowledges later; the broker sends a client only so many unacknowledged messages
    (Mosquitto's ``max_inflight_messages``), so it bounds the rate at about that many
    per ``linger`` plus one commit.
    """

    def __init__(self, store: Store, *, linger: float = LINGER,
                 health: StoreHealth | None = None) -> None:
        if isinstance(linger, bool) or not linger >= 0:
            raise ValueError(f"linger must be a number of seconds >= 0, not {linger!r}")
        self.store = store
        self.health = health or StoreHealth()
        self.linger = float(linger)
        self.written = 0
        self._pending: list[_Pending] = []
        self._wake = threading.Condition(threading.Lock())
        self._closing = False
        self._thread: threading.Thread | None = None
        self._own: Store | None = None
        self._on: Store | None = None
        self._due: collections.deque[tuple[int, int]] = collections.deque()

    def start(self, client: mqtt.Client, connection: Store | None = None) -> None:
        """Start writing on ``connection`` (an open store on the same database, left open
        by :meth:`stop`), else on a connection of its own where the store allows one."""
        self._on = connection
        sibling = self.store.sibling() if connection is None else self.store
        if sibling is not self.store:
            sibling.open()
            self._own = sibling
        self._closing = False
        self._thread = threading.Thread(target=self._run, args=(client,), daemon=True,
                                        name="mps-bridge-audit")
        self._thread.start()

    def put(self, entry: AuditEntry, msg: mqtt.MQTTMessage) -> bool:
        """Write ``entry``, then acknowledge ``msg``; False (nothing taken) when the
        writer is not running or the store fails, so that the caller does not answer
        what it cannot audit."""
        with self._wake:
            if self._thread is None or self._closing or self.health.down:
                return False
            pending = self._pending
            pending.append((entry, msg.mid, msg.qos))
            if len(pending) == 1 or len(pending) == FLUSH_AT:
                self._wake.notify()
        return True

    def stop(self) -> None:
        """Write and acknowledge what was put so far (a store that refuses to write is
        not waited for: those requests stay unacknowledged), then stop."""
        with self._wake:
            thread, self._thread = self._thread, None
            self._closing = True
            self._wake.notify()
        if thread is not None:
            thread.join()
        own, self._own = self._own, None
        if own is not None:
            own.close()

    def send_acks(self, client: mqtt.Client) -> None:
        """Acknowledge the messages whose entries are written. Called on paho's network
        thread as messages arrive, so that acknowledgements go out with its own writes;
        the writer sends what is left after :data:`ACK_GRACE` itself."""
        due = self._due
        with held_wakes(client):  # from the writer: one wake of the network thread
            while due:
                try:
                    mid, qos = due.popleft()
                except IndexError:  # taken by the other thread meanwhile
                    return
                client.ack(mid, qos)

    def _run(self, client: mqtt.Client) -> None:
        while True:
            with self._wake:
                if not self._pending and not self._closing:
                    self._wake.wait(ACK_GRACE if self._due else None)
                closing = self._closing
                waiting = bool(self._pending)
            if not waiting:
                self.send_acks(client)
                if closing:
                    return
                continue
            with self._wake:
                if self.linger and not closing:
                    self._linger()
                batch = self._pending[:BATCH_MAX]
                del self._pending[:BATCH_MAX]
            self._write(batch)

    def _linger(self) -> None:
        """Wait (holding ``_wake``) up to :attr:`linger` for more entries, less once
        :data:`FLUSH_AT` wait or the writer is stopping."""
        deadline = time.monotonic() + self.linger
        while len(self._pending) < FLUSH_AT and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(left)

    def _write(self, batch: list[_Pending]) -> None:
        store = self._on or self._own or self.store
        while True:
            try:
                store.append_audits([entry for entry, _mid, _qos in batch])
                break
            except StoreError as exc:
                if self._closing:
                    # Unacknowledged, the requests come again to whoever serves next.
                    log.warning("could not write %d audit entries before stopping: %s",
                                len(batch), exc)
                    return
                # Logged once per condition; kept, and written once the store recovers.
                self.health.failed(exc)
                time.sleep(RETRY_SECONDS)
        self.health.recovered()
        self.written += len(batch)
        self._due.extend((mid, qos) for _entry, mid, qos in batch if qos)

"""The SM-DP+'s side of ES12 (SGP.22 5.9): the event it registers at an SM-DS for an order
(ES12.RegisterEvent, the order's matching id as the event id) and deletes once the
download is over (ES12.DeleteEvent, SGP.22 3.1.2 / 5.9.2), so an eUICC asking the SM-DS
later is not sent to a profile it has already installed.

The events are kept in the order store; :class:`EventDeleter` deletes the finished ones
in its own thread, woken when an installation result arrives, and retries an SM-DS that
could not be reached (also after a restart: the store says what is left to delete).
"""

from __future__ import annotations

import logging
import os
import threading

from lpa_emulator.smdp.orders import OrderStore
from mps_esim.lpa.es9 import Es9Error, tls_context
from mps_esim.lpa.es11 import Es12Client

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0


def register_event(store: OrderStore, *, matching_id: str, eid: str, smdp: str, smds: str,
                   ca_file: str | os.PathLike[str] | None = None) -> None:
    """ES12.RegisterEvent of the order ``matching_id`` for ``eid`` at ``smds``, kept in
    ``store`` for its deletion. Raises :class:`Es9Error` when the SM-DS refuses."""
    with Es12Client(smds, ca_file=ca_file) as es12:
        es12.register_event(eid, matching_id, smdp)
    store.event_registered(matching_id, smds)


class EventDeleter:
    """Deletes the events of finished orders at their SM-DS (ES12.DeleteEvent).

    :meth:`delete_finished` does one pass; between :meth:`start` and :meth:`stop` a thread
    does one whenever :meth:`wake` is called, and every :data:`RETRY_SECONDS` while an
    SM-DS could not be reached.
    """

    def __init__(self, store: OrderStore, *, ca_file: str | os.PathLike[str] | None = None
                 ) -> None:
        self._store = store
        self._context = tls_context(ca_file)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deleted = 0

    def wake(self) -> None:
        """An installation result arrived: look for finished events now."""
        self._wake.set()

    def delete_finished(self) -> int:
        """Delete every finished event; returns how many could not be deleted yet."""
        left = 0
        for matching_id, eid, smds in self._store.events_to_delete():
            try:
                with Es12Client(smds, context=self._context) as es12:
                    es12.delete_event(eid, matching_id)
            except Es9Error as exc:
                log.warning("event %s stays at the SM-DS %s for now: %s", matching_id, smds,
                            exc)
                left += 1
                continue
            self._store.event_deleted(matching_id)
            self.deleted += 1
            log.info("event %s deleted at the SM-DS %s", matching_id, smds)
        return left

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the event deleter is running already")
        self._thread = threading.Thread(target=self._run, name="smdp-es12", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        self._wake.set()  # first, what a previous run left
        while not self._stop.is_set():
            # Woken by a result, or every RETRY_SECONDS for an SM-DS that was away.
            self._wake.wait(RETRY_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.delete_finished()
            except Exception:  # the thread must outlive a store hiccup
                log.exception("deleting finished SM-DS events failed")

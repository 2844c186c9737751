"""Whether the store takes writes: a bridge whose store fails (disk full, I/O error, a
damaged file) answers and acknowledges nothing until it recovers.

Messages that arrive meanwhile are held unacknowledged: the broker sends a client only so
many unacknowledged QoS 1 messages (Receive Maximum, MQTT v5 section 3.1.2.11.3; Mosquitto's
``max_inflight_messages``), so holding them takes bounded memory, and a bridge that stops
before the store recovers leaves them to be delivered again (MQTT v5 section 4.4). Each
condition is logged once when it begins and once when it ends, never once per message.
"""

from __future__ import annotations

import logging
import threading
import time

from broker_bridge.errors import StoreError
from broker_bridge.storage.base import Store

log = logging.getLogger(__name__)

#: Seconds between attempts to write while the store fails.
PROBE_SECONDS = 0.5


class StoreHealth:
    """The store's condition, shared by the bridge's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self.failures = 0  # conditions seen since the bridge was made

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """Note that a write failed with ``exc``; logs the first failure of a condition."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
            self.failures += 1
        log.error("the store failed (%s): nothing is answered or acknowledged until it "
                  "takes writes again", exc)

    def recovered(self, held: int = 0) -> None:
        """Note that a write succeeded; logs the end of a condition."""
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            log.warning("the store takes writes again after %.1f s; handling the %d "
                        "messages held meanwhile", time.monotonic() - since, held)

    def probe(self, store: Store) -> bool:
        """Try a write that needs new space; True (and recovered) when it commits."""
        try:
            store.check_writable()
        except StoreError as exc:
            self.failed(exc)
            return False
        return True

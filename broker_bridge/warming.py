"""Filling the read model when the bridge starts.

A small registry's answers are read before the bridge subscribes: its first queries are
answered from memory. A large one's (more than :data:`BACKGROUND_ABOVE` devices) are read
on a thread of their own, over a connection of their own, while the bridge already
serves: at a million devices that takes tens of seconds, and a bridge that subscribed
late would leave its share of the group's messages waiting. Until then a query the read
model cannot answer takes the store's path, exactly as after any change; nothing is
answered from memory that the store's versions do not vouch for (see
:mod:`broker_bridge.registry.reads`), so filling while serving changes no answer.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from broker_bridge.registry import Registry
from broker_bridge.storage.base import Store

log = logging.getLogger(__name__)

#: Registries with more devices than this are read into memory while serving.
BACKGROUND_ABOVE = 20_000


class Warming:
    """Fills ``registry``'s read model from ``store``; :attr:`done` is set once it is
    filled (or could not be)."""

    def __init__(self, registry: Registry, store: Store, *,
                 background_above: int = BACKGROUND_ABOVE) -> None:
        self.registry = registry
        self.store = store
        self.background_above = background_above
        self.done = threading.Event()
        self.kept = 0
        self.seconds = 0.0
        self.background = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._freeze = False

    def start(self) -> None:
        """Fill now for a small registry (or one whose database cannot be shared), else
        start filling on a thread."""
        # Made now if it is not yet: that is a commit, and one after the bridge took the
        # versions it knows would have them all read again (see registry.freshness).
        self.registry.pseudonym_secret()
        other = self.store.sibling()
        if other is self.store or self.store.device_count() <= self.background_above:
            try:
                self._fill(self.store)
            finally:
                self.done.set()
            return
        self.background = True
        self._thread = threading.Thread(target=self._fill_over, args=(other,), daemon=True,
                                        name="mps-bridge-warming")
        self._thread.start()

    def freeze_when_filled(self) -> None:
        """Once filled, leave the read model to the collector's permanent generation
        (``gc.freeze``), as a long-running process does with what it read at start: a
        full collection need not walk hundreds of thousands of answers again and again."""
        with self._lock:
            self._freeze = True
            filled = self.done.is_set()
        if filled:
            gc.freeze()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until filled; False if ``timeout`` passed first."""
        return self.done.wait(timeout)

    def _fill_over(self, other: Store) -> None:
        try:
            other.open()
            try:
                self._fill(other)
            finally:
                other.close()
        except Exception:
            # The bridge serves on from the store; only its speed suffers.
            log.exception("filling the read model failed; queries are answered from the "
                          "store")
        finally:
            with self._lock:
                self.done.set()
                freeze = self._freeze
            if freeze:
                gc.freeze()

    def _fill(self, store: Store) -> None:
        started = time.monotonic()
        try:
            self.kept = self.registry.warm_reads(store=store)
        finally:
            self.seconds = time.monotonic() - started
        log.info("read model: %d answers from the store in %.1f s%s", self.kept,
                 self.seconds, " (while serving)" if self.background else "")

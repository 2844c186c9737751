"""Each app's share of the registry: a token bucket per app.

The broker hands the registry its messages in arrival order, and a bridge takes only so
many unacknowledged ones at a time (Mosquitto's ``max_inflight_messages``), so one app
pipelining thousands of requests would put every other app's request behind them. An app
over its rate is therefore answered ``busy`` at once, on the network thread, and its
message acknowledged at once: that changes nothing in the registry, takes no space, and
drains the flood from the broker at network speed, so that the other apps' requests are
reached. Only a few refusals a second are answered (:data:`TELL_RATE`): an app that waits
for its answers hears ``busy``, a flood is drained at the cost of receiving it. The refusals
are audited in sum, one entry per app and housekeeping round.
"""

from __future__ import annotations

import threading
import time

#: Requests per second an app may send on average (well below what one bridge answers from
#: memory, so that one app's flood leaves the others their latency; ``mps-bench faults``
#: measures it) ...
APP_RATE = 500.0
#: ... and at once.
APP_BURST = 200.0
#: Refusals per second answered to one app (and at once); the rest are only acknowledged.
TELL_RATE = 10.0
#: Apps whose buckets are kept; beyond, all are forgotten (full buckets again).
MAX_APPS = 100_000


class AppLimiter:
    """Token buckets of ``rate`` requests per second and ``burst`` at most, per app."""

    def __init__(self, *, rate: float = APP_RATE, burst: float = APP_BURST) -> None:
        if not rate > 0 or not burst >= 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # app: (tokens, at)
        self._told: dict[str, tuple[float, float]] = {}  # app: (answers left, at)
        self._refused: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, app_id: str, now: float | None = None) -> bool:
        """Take one request of ``app_id``; False (and counted) when it is over its share.
        :meth:`tell` says whether to answer the refusal."""
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(app_id, (self.burst, at))
            tokens = min(self.burst, tokens + (at - last) * self.rate)
            if tokens >= 1:
                if len(self._buckets) >= MAX_APPS and app_id not in self._buckets:
                    self._buckets.clear()
                    self._told.clear()
                self._buckets[app_id] = (tokens - 1, at)
                return True
            self._buckets[app_id] = (tokens, at)
            self._refused[app_id] = self._refused.get(app_id, 0) + 1
            return False

    def tell(self, app_id: str, now: float | None = None) -> bool:
        """Whether to answer the refusal just counted: up to :data:`TELL_RATE` a second
        per app. A flood is drained at the cost of receiving it, not of answering it; an
        app that waits for its answers (or retries on a timeout) still hears ``busy``."""
        at = time.monotonic() if now is None else now
        with self._lock:
            left, last = self._told.get(app_id, (TELL_RATE, at))
            left = min(TELL_RATE, left + (at - last) * TELL_RATE)
            told = left >= 1
            self._told[app_id] = (left - 1 if told else left, at)
            return told

    def take_refused(self) -> dict[str, int]:
        """The refusals per app since the last call."""
        with self._lock:
            refused, self._refused = self._refused, {}
        return refused

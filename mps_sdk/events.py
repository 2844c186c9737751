"""Following an app's event stream: each event once and in order, gaps fetched, and a
watch running a handler on a thread of its own."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mps_wire.records import Event

if TYPE_CHECKING:
    from mps_sdk.client import PairingClient

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
"""How often a wait for the next event looks at its stop flag."""


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of ``events-since``: the events, the app's newest number, and whether more
    events follow the page."""

    events: tuple[Event, ...]
    last: int
    more: bool


class EventCursor:
    """The sequence number of the last event handed out; hands out each event once, in
    order, fetching pages (``fetch(since)``) for what it has not seen."""

    def __init__(self, fetch: Callable[[int], EventPage], since: int) -> None:
        self.fetch = fetch
        self.seq = since

    def catch_up(self) -> Iterator[Event]:
        """Every event above the cursor the registry holds, page by page."""
        while True:
            page = self.fetch(self.seq)
            for event in page.events:
                if event.seq > self.seq:
                    self.seq = event.seq
                    yield event
            if not page.more:
                return

    def live(self, event: Event) -> Generator[Event, None, bool]:
        """``event`` from the live stream, after any events missing before it; returns
        whether ``event`` itself was handed out."""
        if event.seq <= self.seq:
            return False  # a duplicate (QoS 1, or published again by the registry)
        if event.seq > self.seq + 1:
            # A gap: the missing events are committed (numbers follow commit order) but
            # their publication is late or was lost; fetch them.
            yield from self.catch_up()
            if event.seq <= self.seq:
                return False
        self.seq = event.seq
        yield event
        return True


class IdleTimer:
    """How long to wait for the next event: ``timeout`` seconds from the last one (None:
    for ever)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.until: float | None = None
        self.restart()

    def restart(self) -> None:
        """Count the time from now."""
        self.until = None if self.timeout is None else time.monotonic() + self.timeout

    def wait(self) -> float:
        """Seconds to wait now; 0 or less when the time is up."""
        if self.until is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, self.until - time.monotonic())


def received(inbox: queue.Queue[bytes], idle: IdleTimer,
             stop: threading.Event | None) -> Iterator[bytes]:
    """Messages from ``inbox`` until ``idle`` runs out or ``stop`` is set."""
    while stop is None or not stop.is_set():
        wait = idle.wait()
        if wait <= 0:
            return
        try:
            raw = inbox.get(timeout=wait)
        except queue.Empty:
            continue
        yield raw


class EventWatch:
    """A running :meth:`PairingClient.watch`: ``stop()`` ends it, ``cursor`` is where it got to,
    ``error`` the exception that ended it early (None while running or after ``stop``)."""

    def __init__(self, client: PairingClient, handler: Callable[[Event], None],
                 since: int) -> None:
        self.cursor = since
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._client = client
        self._handler = handler
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"mps-events-{client.app_id}")
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._client.events(self.cursor, stop=self._stop):
                self._handler(event)
                self.cursor = event.seq
        except Exception as exc:  # surfaced through .error
            log.warning("watching events stopped: %s", exc)
            self.error = exc

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

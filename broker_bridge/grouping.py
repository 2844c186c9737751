"""Group commit: consecutive messages share one transaction, one wait for the disk.

The worker takes a message and the ones waiting behind it, each still all-or-nothing on its
own (a savepoint, see :meth:`Store.batch`), and commits the group when no more are waiting,
or after :data:`GROUP_MAX` messages or :data:`GROUP_SECONDS`. Replies and events of the group
are published after that commit, and the messages acknowledged after it. A read-only request
that meets a group with nothing but audit entries uncommitted is answered at once, since its
reply tells only what was committed; it too is acknowledged only after its audit entry
commits. A group whose commit fails is handled again message by message.

Between groups, a message the registry's read model answers (an app's ``devices``
request, see :mod:`broker_bridge.registry.reads`) needs no transaction: it is answered at
once and its audit entry handed to the :class:`~broker_bridge.auditing.AuditWriter`, which
acknowledges it once that entry is written.
"""

from __future__ import annotations

import collections
import logging
import queue
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from broker_bridge.auditing import AuditWriter
from broker_bridge.errors import StoreError
from broker_bridge.handling import Counters, Handled, MessageHandler
from broker_bridge.health import PROBE_SECONDS, StoreHealth
from broker_bridge.publishing import Publisher
from broker_bridge.registry import Outcome
from broker_bridge.storage.base import Store
from mps_mqtt.lean import held_wakes
from mps_wire.errors import ErrorCode
from mps_wire.messages import Reply

log = logging.getLogger(__name__)

#: At most this many messages share one commit ...
GROUP_MAX = 500
#: ... and a group takes new messages for at most this long (seconds).
GROUP_SECONDS = 0.02

#: What the worker's queue holds: messages, and None to stop.
MessageQueue = queue.SimpleQueue[mqtt.MQTTMessage | None]


@dataclass(slots=True)
class _Group:
    items: list[Handled] = field(default_factory=list)
    more: bool = True  # stop() was not seen
    changed: bool = False  # something besides audit entries is uncommitted


class GroupWorker:
    """Handles the messages of ``messages`` in groups over ``store``, then publishes and
    acknowledges them; runs on the bridge's worker thread.

    While the store fails (``health``, see :mod:`broker_bridge.health`) the messages are
    held, neither answered nor acknowledged, and handled in their order once a write
    succeeds again.
    """

    def __init__(self, store: Store, messages: MessageQueue, handler: MessageHandler,
                 publisher: Publisher, counters: Counters, audits: AuditWriter,
                 health: StoreHealth | None = None) -> None:
        self.store = store
        self.messages = messages
        self.handler = handler
        self.publisher = publisher
        self.counters = counters
        self.audits = audits
        self.health = health or StoreHealth()
        self._backlog: collections.deque[mqtt.MQTTMessage] = collections.deque()

    def run(self, client: mqtt.Client) -> None:
        """Handle groups until stop() queues None."""
        more = True
        while more:
            if self.health.down and not self._wait_for_store():
                return
            first = self._backlog.popleft() if self._backlog else self.messages.get()
            if first is None:
                return
            try:
                if not self.quick(client, first):
                    more = self.group(client, first)
            except Exception:
                log.exception("failed to handle a group of messages")

    def _wait_for_store(self) -> bool:
        """Hold what arrives until a write succeeds; False when stop() was seen first (the
        held messages stay unacknowledged, for the broker to deliver again)."""
        while True:
            try:
                msg = self.messages.get(timeout=PROBE_SECONDS)
            except queue.Empty:
                pass
            else:
                if msg is None:
                    log.warning("stopping with %d messages held unacknowledged: the broker "
                                "delivers them again", len(self._backlog))
                    self._backlog.clear()
                    return False
                self._backlog.append(msg)
            if self.health.probe(self.store):
                self.health.recovered(len(self._backlog))
                return True

    def quick(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> bool:
        """Answer ``msg`` from the read model if it can be; False if it needs a group."""
        if self.health.down:
            return False
        found = self.handler.quick(msg)
        if found is None:
            return False
        item, entry = found
        if not self.audits.put(entry, msg):
            return False
        self.answer(client, item)
        return True

    def group(self, client: mqtt.Client, first: mqtt.MQTTMessage) -> bool:
        """Handle ``first`` and the messages waiting behind it in one transaction, then
        publish and acknowledge; False when stop() was seen."""
        group = _Group()
        try:
            with self.store.batch():
                self._collect(client, first, group)
        except Exception as exc:
            # Nothing of the group is stored: each message again, in its own transaction
            # (what was answered already is not answered twice).
            if not isinstance(exc, StoreError):
                log.exception("committing a group of %d messages failed; handling them "
                              "one by one", len(group.items))
            group.items = self._redo(group.items or [Handled(first)])
        items = self._settle(group.items)
        # Queued together: the network thread is woken once for the lot, not per packet.
        with held_wakes(client):
            for item in items:
                self.answer(client, item)
                if item.outcome is not None:
                    self.publisher.effects(client, item.outcome.effects)
            for item in items:
                if item.msg.qos:
                    client.ack(item.msg.mid, item.msg.qos)
        return group.more

    def _settle(self, items: list[Handled]) -> list[Handled]:
        """The items to answer and acknowledge; those the store failed are held when a
        write fails now too, else (the failure was the message's own) answered with an
        internal error."""
        failed = [item for item in items if item.store_error is not None]
        if not failed:
            return items
        settled = [item for item in items if item.store_error is None]
        if self.health.probe(self.store):
            again = self._redo(failed)  # a passing failure (a lock held too long)
            settled += [item for item in again if item.store_error is None]
            failed = [item for item in again if item.store_error is not None]
            if not failed or self.health.probe(self.store):
                for item in failed:  # the store takes writes, but not this message's
                    log.warning("the store refused the message on %s: %s", item.msg.topic,
                                item.store_error)
                    item.outcome = Outcome(Reply.error(
                        ErrorCode.INTERNAL, "the registry failed; try again later"))
                return settled + failed
        self._backlog.extendleft(reversed([item.msg for item in failed]))
        return settled

    def _collect(self, client: mqtt.Client, first: mqtt.MQTTMessage, group: _Group) -> None:
        deadline = time.monotonic() + GROUP_SECONDS
        msg: mqtt.MQTTMessage | None = first
        while msg is not None:
            item = self.handler.take(msg)
            group.items.append(item)
            outcome = item.outcome
            if outcome is not None and outcome.read_only and not group.changed:
                self.answer(client, item)
            elif outcome is not None or item.error is not None:
                group.changed = True
            if len(group.items) >= GROUP_MAX or time.monotonic() >= deadline:
                return
            try:
                msg = self._backlog.popleft() if self._backlog else self.messages.get_nowait()
            except queue.Empty:
                return
            group.more = msg is not None

    def _redo(self, items: list[Handled]) -> list[Handled]:
        redone = []
        for item in items:
            again = self.handler.take(item.msg)
            again.done = item.done
            redone.append(again)
        return redone

    def answer(self, client: mqtt.Client, item: Handled) -> None:
        """Count ``item`` and publish its reply, once."""
        if item.done:
            return
        item.done = True
        self.counters.count(item)
        self.publisher.reply(client, item)

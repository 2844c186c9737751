"""The registry service: device registrations, app, user and operator requests over MQTT v5.

One :class:`Bridge` is one member of a shared-subscription group; several processes (on
one machine or many) can serve side by side, each message going to exactly one of them.
Every request is answered on its Response Topic with its Correlation Data echoed, once
the Response Topic is known to belong to the requester. Messages are acknowledged only
after what they changed, and their audit entries, are committed, so with a fixed
``client_id`` (persistent session) nothing that was not stored and answered is lost
when the bridge stops.

Messages are handled on a worker thread in groups that share one commit
(:mod:`broker_bridge.grouping`); each message is routed and handed to the registry by
:mod:`broker_bridge.handling`, and what it caused is published by
:mod:`broker_bridge.publishing` once committed.

What a request changes is committed before anything is published. An app's events then
go out with QoS 1 on its events topic, and consent prompts as a retained message on the
user's consent topic. Events whose publication the broker has not confirmed (a bridge
that stopped half-way, a change made by ``mps-bridge`` on the database) are published
again by the housekeeping of any bridge after ``relay_grace`` seconds; apps drop
duplicates by sequence number and fetch gaps with ``events-since``.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker_bridge.auditing import LINGER as AUDIT_LINGER
from broker_bridge.auditing import AuditWriter
from broker_bridge.errors import BrokerError, StoreError
from broker_bridge.grouping import GROUP_MAX, GROUP_SECONDS, GroupWorker, MessageQueue
from broker_bridge.handling import (
    BridgeStats,
    Counters,
    MessageHandler,
)
from broker_bridge.health import StoreHealth
from broker_bridge.limits import APP_BURST, APP_RATE, AppLimiter
from broker_bridge.model import now_ms
from broker_bridge.orders_out import send_orders
from broker_bridge.policy import AccessPolicy
from broker_bridge.publishing import QOS, Publisher
from broker_bridge.quick import QuickAnswers
from broker_bridge.registry import DEFAULT_CONSENT_TTL, Effects, Outcome, Registry, SignaturePolicy
from broker_bridge.registry.freshness import KnownVersions
from broker_bridge.registry.reads import DEFAULT_LIMIT as READ_LIMIT
from broker_bridge.storage.base import Store
from broker_bridge.warming import Warming
from mps_mqtt.client import (
    BrokerUnreachableError,
    BrokerURL,
    connect,
    disconnect,
    new_client,
)
from mps_mqtt.lean import spare_matching
from mps_mqtt.props import set_nodelay
from mps_wire.cose import es256
from mps_wire.messages import INSTALLATIONS, PROFILES
from mps_wire.topics import DEFAULT_SHARE_GROUP, Topics, check_level

__all__ = ["AUDIT_LINGER", "GROUP_MAX", "GROUP_SECONDS", "QOS", "SWITCH_INTERVAL", "Bridge",
           "BridgeStats"]

log = logging.getLogger(__name__)

#: Seconds a thread may hold the interpreter while another waits, in serve_forever.
SWITCH_INTERVAL = 0.0005

#: Seconds between reconnection attempts: from the first ...
RECONNECT_MIN = 1
#: ... doubling up to this, so a broker back from an outage is rejoined within seconds.
RECONNECT_MAX = 3

#: Messages the broker may send the bridge unacknowledged (MQTT v5 Receive Maximum). A
#: message is acknowledged once what it changed, or its audit entry, is committed: the
#: broker's default (Mosquitto: 20) would let one wait for the disk stall the rest.
#: The audit writer and a group take up to 1000 and 500 at once.
RECEIVE_MAXIMUM = 1000

#: Seconds without a message after which a leaving bridge takes nothing more to be coming.
SETTLE_SECONDS = 0.1


#: Publications (replies, events) the bridge has unconfirmed by the broker at once. Beyond
#: paho's default of 20 an app's burst of answers would queue every other app's answer
#: behind it, waiting for the broker's PUBACKs.
REPLY_WINDOW = 1000


class Bridge:
    """Serves registrations, app, user and operator requests from ``broker`` into ``store``.

    Constructing does no I/O: :meth:`start` opens the store, connects and subscribes;
    :meth:`serve_forever` also waits for SIGTERM/SIGINT or :meth:`stop`. ``client_id``
    makes the MQTT session persistent (QoS 1 requests queue while the bridge is away);
    without it the bridge joins with a fresh, clean session. ``policy`` decides what apps
    may ask (default: :class:`~broker_bridge.policy.TrustPolicy`), ``signatures`` which
    registrations must be signed (:class:`~broker_bridge.registry.SignaturePolicy`).
    ``consent_ttl`` is how long a consent prompt stays open; every ``sweep_interval``
    seconds the bridge expires prompts and publishes what is still unpublished after
    ``relay_grace`` seconds. ``audit_linger`` is how long the audit writer gathers the
    entries of queries answered from memory before writing them (and acknowledging
    their requests); see :mod:`broker_bridge.auditing`. ``app_rate`` and ``app_burst``
    are each app's share (requests per second, and at once; see :mod:`broker_bridge.limits`).
    """

    #: How long :meth:`stop` waits for the broker to confirm publications in flight.
    DRAIN_SECONDS = 1.0
    #: How long :meth:`stop` waits to leave the group and receive what was in flight.
    LEAVE_SECONDS = 3.0

    def __init__(self, store: Store, broker: BrokerURL, *, topics: Topics | None = None,
                 group: str = DEFAULT_SHARE_GROUP, client_id: str | None = None,
                 policy: AccessPolicy | None = None,
                 consent_ttl: float = DEFAULT_CONSENT_TTL, sweep_interval: float = 1.0,
                 relay_grace: float = 5.0,
                 signatures: SignaturePolicy = SignaturePolicy.ENROLLED,
                 audit_linger: float = AUDIT_LINGER, app_rate: float = APP_RATE,
                 app_burst: float = APP_BURST, read_model_size: int = READ_LIMIT) -> None:
        if not isinstance(broker, BrokerURL):
            raise TypeError(f"broker must be a BrokerURL, not {type(broker).__name__}")
        if topics is not None and not isinstance(topics, Topics):
            raise TypeError(f"topics must be a Topics, not {type(topics).__name__}")
        check_level(group, "share group")
        if client_id is not None and not client_id:
            raise ValueError("client_id must not be empty")
        for name, value in (("sweep_interval", sweep_interval), ("relay_grace", relay_grace)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.store = store
        self.broker = broker
        self.topics = topics or Topics()
        self.group = group
        self.client_id = client_id
        self.registry = Registry(store, policy=policy, consent_ttl=consent_ttl,
                                 signatures=signatures, read_limit=read_model_size)
        self.warming = Warming(self.registry, store)
        self.policy: AccessPolicy = self.registry.policy
        self.sweep_interval = float(sweep_interval)
        self.relay_grace = float(relay_grace)
        self.filters = (
            Topics.shared(group, self.topics.all_registrations()),
            Topics.shared(group, self.topics.all_app_requests()),
            Topics.shared(group, self.topics.all_user_requests()),
            Topics.shared(group, self.topics.all_operator_requests()),
            Topics.shared(group, self.topics.operator(INSTALLATIONS)),
            Topics.shared(group, self.topics.operator(PROFILES)),
            *(Topics.shared(group, f) for f in (self.topics.all_device_states(),
                                                self.topics.all_order_results(),
                                                self.topics.all_esim_requests())),
        )
        self._client: mqtt.Client | None = None
        self._reader: Store | None = None  # the read model's connection, see _on_message
        self._known: KnownVersions | None = None  # ... and its audit writer's
        self._counters = Counters()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._housekeeper: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._queue: MessageQueue = MessageQueue()
        self._handler = MessageHandler(self.topics, self.registry)
        self._publisher = Publisher(self.topics, self.registry, self._counters)
        self.limiter = AppLimiter(rate=app_rate, burst=app_burst)
        self.health = StoreHealth()
        self._audits = AuditWriter(store, linger=audit_linger, health=self.health)
        self._groups = GroupWorker(store, self._queue, self._handler, self._publisher,
                                   self._counters, self._audits, self.health)
        self._quick = QuickAnswers(self._handler, self.registry, self.limiter, self._audits,
                                   self._publisher, self._counters, self.health)

    def __repr__(self) -> str:
        return f"Bridge({self.broker}, prefix={self.topics.prefix!r}, group={self.group!r})"

    @property
    def stats(self) -> BridgeStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    @property
    def running(self) -> bool:
        return self._client is not None

    # --- life cycle --------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Open the store, connect and subscribe; return once the broker confirmed."""
        with self._lock:
            if self._client is not None:
                return
            self._stopping.clear()
            self.store.open()
            es256()  # the crypto backend loaded now, not on the first signed registration
            self.warming = Warming(self.registry, self.store)
            self.warming.start()
            persistent = self.client_id is not None
            client = new_client(self.client_id, persistent=persistent, manual_ack=True,
                                lean=True)
            spare_matching(client)
            # Back with the broker within seconds of its return, not paho's two minutes.
            client.reconnect_delay_set(min_delay=RECONNECT_MIN, max_delay=RECONNECT_MAX)
            client.max_inflight_messages_set(REPLY_WINDOW)
            client.on_message = self._on_message
            client.on_publish = self._publisher.on_publish
            self._open_reader()
            self._audits.start(client, None if self._known is None else self._known.watch)
            try:
                self._connect(client, timeout, persistent=persistent)
            except BaseException:
                self._audits.stop()
                self._close_reader()
                raise
            # From now on paho reconnects by itself; a clean session must subscribe again.
            client.on_connect = self._on_reconnect
            self._client = client
            self._worker = threading.Thread(target=self._groups.run, args=(client,), daemon=True,
                                            name="mps-bridge-worker")
            self._worker.start()
            self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True,
                                                 name="mps-bridge-housekeeping")
            self._housekeeper.start()
        log.info("serving %s on %s (group %s)", self.topics.prefix, self.broker, self.group)

    def _open_reader(self) -> None:
        # The network thread's connections (see broker_bridge.registry.freshness); none
        # for a database that cannot be shared: the worker then answers everything.
        self._known = KnownVersions.open(self.store)
        self._reader = None if self._known is None else self._known.read
        self._quick.reader, self._quick.known = self._reader, self._known

    def _close_reader(self) -> None:
        known, self._known, self._reader = self._known, None, None
        self._quick.reader = self._quick.known = None
        if known is not None:
            log.info("versions of %d queries known, %d read again, %d read while the audit "
                     "writer wrote", known.hits, known.misses, known.unwatched)
            known.close()

    def _connect(self, client: mqtt.Client, timeout: float, *, persistent: bool) -> None:
        try:
            connect(client, self.broker, timeout=timeout, persistent=persistent,
                    receive_maximum=RECEIVE_MAXIMUM)
        except BrokerUnreachableError as exc:
            raise BrokerError(str(exc)) from exc
        set_nodelay(client)
        try:
            self._subscribe(client, timeout)
        except BaseException:
            disconnect(client)
            raise

    def _subscribe(self, client: mqtt.Client, timeout: float) -> None:
        done = threading.Event()
        acks: dict[int, list[ReasonCode]] = {}
        lock = threading.Lock()

        def on_subscribe(_c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode],
                         _p: Properties | None) -> None:
            with lock:
                acks[mid] = codes
            done.set()

        client.on_subscribe = on_subscribe
        with lock:
            rc, mid = client.subscribe([(f, SubscribeOptions(qos=QOS)) for f in self.filters])
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerError(f"subscribing on {self.broker} failed: {mqtt.error_string(rc)}")
        if not done.wait(timeout):
            raise BrokerError(f"{self.broker} did not confirm the subscriptions within "
                              f"{timeout:g} s")
        client.on_subscribe = None
        with lock:
            granted = acks.get(mid, [])
        refused = [f for f, code in zip(self.filters, granted, strict=False) if code.is_failure]
        if refused or len(granted) != len(self.filters):
            raise BrokerError(f"{self.broker} refused the subscriptions "
                              f"{refused or list(self.filters)}")

    def _on_reconnect(self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags,
                      reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            log.warning("reconnecting to %s failed: %s", self.broker, reason)
            return
        if self._stopping.is_set():
            return  # left the group: no subscribing again while stopping
        log.info("reconnected to %s (session %s)", self.broker,
                 "kept" if flags.session_present else "new")
        set_nodelay(client)
        # Subscribe again even when the session was kept: Mosquitto (2.0.11 at least)
        # restores a shared subscription from its persistence file in a state that
        # receives no new messages until it is made again. Subscribing anew is harmless.
        client.subscribe([(f, SubscribeOptions(qos=QOS)) for f in self.filters])

    def stop(self) -> None:
        """Leave the group, finish what was received, then disconnect.

        The bridge first unsubscribes: once the broker confirms (UNSUBACK), it adds no new
        message for this member, and a persistent session keeps none for its return
        (MQTT v5 section 3.10.4); the other members get them. What the broker had sent
        already is handled, answered and acknowledged before the bridge disconnects.
        """
        self._stopping.set()
        with self._lock:
            client, self._client = self._client, None
            housekeeper, self._housekeeper = self._housekeeper, None
            worker, self._worker = self._worker, None
        if client is not None:
            self._leave_group(client)
        if housekeeper is not None:
            housekeeper.join()
        if worker is not None:
            # What was received so far is handled, answered and acknowledged first.
            self._queue.put(None)
            worker.join()
            self._audits.stop()
            try:
                self._audit_refusals()  # the refusals since the last round
            except StoreError as exc:
                log.warning("could not write the last refusals to the audit log: %s", exc)
        if client is not None:
            # Give the broker a moment to confirm what is in flight, so that it need not
            # be published again by whoever runs next.
            self._publisher.drain(self.DRAIN_SECONDS)
            disconnect(client)
            self._close_reader()
            try:
                self._publisher.flush_acks(self.store)
            except StoreError as exc:
                log.warning("could not note the last publications: %s", exc)
            log.info("stopped serving %s on %s", self.topics.prefix, self.broker)

    def _leave_group(self, client: mqtt.Client) -> None:
        """Unsubscribe and wait for the broker's confirmation, then until what it had in
        flight has arrived (no message for :data:`SETTLE_SECONDS`), at most
        :attr:`LEAVE_SECONDS` in all."""
        deadline = time.monotonic() + self.LEAVE_SECONDS
        left = threading.Event()
        client.on_unsubscribe = lambda *_a: left.set()
        rc, _mid = client.unsubscribe(list(self.filters))
        if rc != mqtt.MQTT_ERR_SUCCESS or not left.wait(self.LEAVE_SECONDS):
            log.warning("%s did not confirm leaving the group; stopping all the same",
                        self.broker)
            return
        seen = self.stats.received
        while time.monotonic() < deadline:
            time.sleep(SETTLE_SECONDS)
            now = self.stats.received
            if now == seen:
                return
            seen = now

    def serve_forever(self, *, ready: Callable[[], None] | None = None) -> None:
        """Start if needed and serve until :meth:`stop`, SIGTERM or SIGINT; then stop.

        ``ready`` is called once the subscriptions are confirmed.
        """
        previous: dict[int, Any] = {}
        switch = sys.getswitchinterval()
        # The process is the bridge's: its network thread, waking for every packet, gets
        # the interpreter within SWITCH_INTERVAL of a worker busy with a group instead of
        # the default 5 ms.
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL))
        if threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, _frame: FrameType | None) -> None:
                log.info("received %s, stopping", signal.Signals(signum).name)
                self._stopping.set()

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            # What start() read (the read model above all) lives as long as the process:
            # the collector need not walk it again in every full collection.
            gc.freeze()
            self.warming.freeze_when_filled()  # the same, for what is read while serving
            if ready is not None:
                ready()
            # A timeout keeps the main thread returning to the interpreter, where signal
            # handlers run.
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()
            sys.setswitchinterval(switch)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def __enter__(self) -> Bridge:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- messages ----------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._counters.lock:
            self._counters.received += 1
        try:
            self._take(client, msg)
        finally:
            # After this message's reply, not before it: a batch of acknowledgements
            # queued first would delay the answer the requester waits for.
            self._audits.send_acks(client)

    def _take(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        # Refusals over an app's share, and queries the read model answers, are answered
        # here, on paho's network thread, as a bare echo would answer: see QuickAnswers.
        if not self._quick.take(client, msg):
            # Everything else goes to the worker; see GroupWorker.
            self._queue.put(msg)

    def _audit_refusals(self) -> None:
        """One audit entry per app refused over its share since the last call."""
        for app_id, refused in sorted(self.limiter.take_refused().items()):
            self.store.append_audit(f"app:{app_id}", "request", "busy", app_id=app_id,
                                    subject=app_id, detail={"refused": refused})

    def dispatch(self, topic: str, payload: bytes) -> Outcome | None:
        """What the bridge does with ``payload`` arriving on ``topic``, without MQTT: the
        outcome (committed; its effects are not published), None for a topic it does not
        serve. For tests and fuzzing; exceptions of a handler propagate."""
        return self._handler.dispatch(topic, payload)

    # --- housekeeping --------------------------------------------------------------------

    def _housekeeping(self) -> None:
        while not self._stopping.wait(self.sweep_interval):
            try:
                self.sweep()
                if self.health.down and self.health.probe(self.store):
                    self.health.recovered()
            except StoreError as exc:
                self.health.failed(exc)  # one line per condition, not one per round
            except Exception:
                log.exception("housekeeping failed; trying again in %g s", self.sweep_interval)

    def sweep(self) -> None:
        """One round of housekeeping: note confirmed publications, expire consent prompts,
        publish again what was not confirmed in time."""
        client = self._client
        if client is None:
            return
        publisher = self._publisher
        publisher.flush_acks(self.store)
        self._audit_refusals()
        publisher.effects(client, self.registry.expire_prompts())
        send_orders(client, self.topics, self.registry)
        pending = publisher.pending()
        due = now_ms() - int(self.relay_grace * 1000)
        late = [e for e in self.store.unpublished_events(due, limit=200)
                if ("event", e.app_id, e.seq) not in pending]
        if late:
            log.info("publishing %d events not confirmed in time", len(late))
            publisher.effects(client, Effects(events=late))
        for contract_id, revision in self.store.unpublished_consent():
            if ("consent", contract_id, revision) not in pending:
                publisher.consent(client, contract_id)

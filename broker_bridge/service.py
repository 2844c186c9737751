"""The registry service: device registrations, app, user and operator requests over MQTT v5.

One :class:`Bridge` is one member of a shared-subscription group; several processes (on
one machine or many) can serve side by side, each message going to exactly one of them.
Every request is answered on its Response Topic with its Correlation Data echoed, once
the Response Topic is known to belong to the requester. Messages are acknowledged only
after what they changed, and their audit entries, are committed, so with a fixed
``client_id`` (persistent session) nothing that was not stored and answered is lost
when the bridge stops.

Messages are handled on a worker thread in groups: consecutive messages share one
transaction (each still all-or-nothing on its own, see :meth:`Store.batch`), committed
when no more are waiting, or after ``GROUP_MAX`` messages or ``GROUP_SECONDS``; one
commit (one wait for the disk) then serves the whole group. Replies and events of the
group are published after that commit, and the messages acknowledged after it. A
read-only request (``devices``, ``events-since``) that meets a group with nothing but
audit entries uncommitted is answered at once, since its reply tells only what was
committed; it too is acknowledged only after its audit entry commits, so a bridge that
stops before that gets the request again (or another member of the group does), and
audits it then. A group whose commit fails is handled again message by message.

What a request changes is committed before anything is published. An app's events then
go out with QoS 1 on its events topic, and consent prompts as a retained message on the
user's consent topic. Events whose publication the broker has not confirmed (a bridge
that stopped half-way, a change made by ``mps-bridge`` on the database) are published
again by the housekeeping of any bridge after ``relay_grace`` seconds; apps drop
duplicates by sequence number and fetch gaps with ``events-since``.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker_bridge.errors import BrokerError, StoreError
from broker_bridge.model import now_ms
from broker_bridge.policy import AccessPolicy
from broker_bridge.registry import (
    DEFAULT_CONSENT_TTL,
    INSTALLATIONS_SOURCE,
    Effects,
    Outcome,
    Registry,
    SignaturePolicy,
    refusal,
)
from broker_bridge.storage.base import Store
from mps_mqtt.client import BrokerUnreachableError, BrokerURL, connect, disconnect, new_client
from mps_mqtt.props import echo_correlation, response_topic, set_nodelay
from mps_wire.codec import decode, encode
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import INSTALLATIONS, Reply, Status
from mps_wire.topics import DEFAULT_SHARE_GROUP, Topics, check_level

log = logging.getLogger(__name__)

QOS = 1


# ("event", app id, seq) / ("consent", contract id, revision) / ("reply", "", 0)
_Key = tuple[str, str, int]
_REPLY: _Key = ("reply", "", 0)

#: Seconds a thread may hold the interpreter while another waits, in serve_forever.
SWITCH_INTERVAL = 0.0005

#: At most this many messages share one commit ...
GROUP_MAX = 500
#: ... and a group takes new messages for at most this long (seconds).
GROUP_SECONDS = 0.02

# Leaves of the registry's own topics: a Response Topic naming one would make the
# registry publish onto a topic it or its clients treat as something else.
_RESERVED_LEAVES = frozenset({"register", "state", "requests", "events", "consent"})


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """Counters since the bridge was created.

    ``handled`` requests got an ``ok`` or ``pending`` reply, ``failed`` ones any other reply
    or none (``dropped``: no usable Response Topic, or a topic the bridge does not serve);
    ``errors`` counts failures by code, ``forbidden-topic`` included.
    ``events_published`` counts app events handed to the broker (repeats included).
    """

    received: int = 0
    handled: int = 0
    failed: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    events_published: int = 0

    def error_count(self, code: ErrorCode) -> int:
        return self.errors.get(code.value, 0)


@dataclass(slots=True)
class _Handled:
    """A message handled inside a group, waiting for the group's commit."""

    msg: mqtt.MQTTMessage
    reply_to: str | None = None
    outcome: Outcome | None = None  # None: dropped, nothing to publish
    error: ErrorCode | None = None  # why it was dropped, when it counts as an error
    done: bool = False  # counted, and its reply published


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = self.handled = self.failed = self.dropped = self.events = 0
        self.errors: Counter[str] = Counter()

    def snapshot(self) -> BridgeStats:
        with self.lock:
            return BridgeStats(self.received, self.handled, self.failed, self.dropped,
                               dict(self.errors), self.events)


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
    ``relay_grace`` seconds.
    """

    #: How long :meth:`stop` waits for the broker to confirm publications in flight.
    DRAIN_SECONDS = 1.0

    def __init__(self, store: Store, broker: BrokerURL, *, topics: Topics | None = None,
                 group: str = DEFAULT_SHARE_GROUP, client_id: str | None = None,
                 policy: AccessPolicy | None = None,
                 consent_ttl: float = DEFAULT_CONSENT_TTL, sweep_interval: float = 1.0,
                 relay_grace: float = 5.0,
                 signatures: SignaturePolicy = SignaturePolicy.ENROLLED) -> None:
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
                                 signatures=signatures)
        self.policy: AccessPolicy = self.registry.policy
        self.sweep_interval = float(sweep_interval)
        self.relay_grace = float(relay_grace)
        self.filters = (
            Topics.shared(group, self.topics.all_registrations()),
            Topics.shared(group, self.topics.all_app_requests()),
            Topics.shared(group, self.topics.all_user_requests()),
            Topics.shared(group, self.topics.all_operator_requests()),
            Topics.shared(group, self.topics.operator(INSTALLATIONS)),
        )
        self._client: mqtt.Client | None = None
        self._counters = _Counters()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._housekeeper: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._queue: queue.SimpleQueue[mqtt.MQTTMessage | None] = queue.SimpleQueue()
        # Publications awaiting the broker's PUBACK: mid -> what to mark published.
        self._pub_lock = threading.Lock()
        self._inflight: dict[int, _Key] = {}
        self._early: set[int] = set()  # PUBACKs that overtook publish() returning the mid
        self._acked: list[_Key] = []

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
            persistent = self.client_id is not None
            client = new_client(self.client_id, persistent=persistent, manual_ack=True)
            client.on_message = self._on_message
            client.on_publish = self._on_publish
            try:
                connect(client, self.broker, timeout=timeout, persistent=persistent)
            except BrokerUnreachableError as exc:
                raise BrokerError(str(exc)) from exc
            set_nodelay(client)
            try:
                self._subscribe(client, timeout)
            except BaseException:
                disconnect(client)
                raise
            # From now on paho reconnects by itself; a clean session must subscribe again.
            client.on_connect = self._on_reconnect
            self._client = client
            self._worker = threading.Thread(target=self._work, args=(client,), daemon=True,
                                            name="mps-bridge-worker")
            self._worker.start()
            self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True,
                                                 name="mps-bridge-housekeeping")
            self._housekeeper.start()
        log.info("serving %s on %s (group %s)", self.topics.prefix, self.broker, self.group)

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
        log.info("reconnected to %s (session %s)", self.broker,
                 "kept" if flags.session_present else "new")
        set_nodelay(client)
        # Subscribe again even when the session was kept: Mosquitto (2.0.11 at least)
        # restores a shared subscription from its persistence file in a state that
        # receives no new messages until it is made again. Subscribing anew is harmless.
        client.subscribe([(f, SubscribeOptions(qos=QOS)) for f in self.filters])

    def stop(self) -> None:
        """Unsubscribe by disconnecting; messages in flight go to the other members."""
        self._stopping.set()
        with self._lock:
            client, self._client = self._client, None
            housekeeper, self._housekeeper = self._housekeeper, None
            worker, self._worker = self._worker, None
        if housekeeper is not None:
            housekeeper.join()
        if worker is not None:
            # What was received so far is handled, answered and acknowledged first.
            self._queue.put(None)
            worker.join()
        if client is not None:
            # Give the broker a moment to confirm what is in flight, so that it need not
            # be published again by whoever runs next.
            deadline = time.monotonic() + self.DRAIN_SECONDS
            while time.monotonic() < deadline:
                with self._pub_lock:
                    if not self._inflight:
                        break
                time.sleep(0.01)
            disconnect(client)
            try:
                self._flush_acks()
            except StoreError as exc:
                log.warning("could not note the last publications: %s", exc)
            log.info("stopped serving %s on %s", self.topics.prefix, self.broker)

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

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # paho's network thread only hands the message over; see _work.
        with self._counters.lock:
            self._counters.received += 1
        self._queue.put(msg)

    def _work(self, client: mqtt.Client) -> None:
        """The worker: handles the messages in groups until stop() queues None."""
        more = True
        while more:
            first = self._queue.get()
            if first is None:
                return
            try:
                more = self._group(client, first)
            except Exception:
                log.exception("failed to handle a group of messages")

    def _group(self, client: mqtt.Client, first: mqtt.MQTTMessage) -> bool:
        """Handle ``first`` and the messages waiting behind it in one transaction, then
        publish and acknowledge; False when stop() was seen."""
        group: list[_Handled] = []
        more = True
        changed = False  # something besides audit entries is uncommitted
        try:
            with self.store.batch():
                deadline = time.monotonic() + GROUP_SECONDS
                msg: mqtt.MQTTMessage | None = first
                while msg is not None:
                    item = self._take(msg)
                    group.append(item)
                    outcome = item.outcome
                    if outcome is not None and outcome.read_only and not changed:
                        self._answer(client, item)
                    elif item.outcome is not None or item.error is not None:
                        changed = True
                    if len(group) >= GROUP_MAX or time.monotonic() >= deadline:
                        break
                    try:
                        msg = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    more = msg is not None
        except Exception:
            # Nothing of the group is stored: each message again, in its own transaction
            # (what was answered already is not answered twice).
            log.exception("committing a group of %d messages failed; handling them one "
                          "by one", len(group))
            redo, group = group or [_Handled(first)], []
            for item in redo:
                again = self._take(item.msg)
                again.done = item.done
                group.append(again)
        for item in group:
            self._answer(client, item)
            if item.outcome is not None:
                self._publish_effects(client, item.outcome.effects)
        for item in group:
            if item.msg.qos:
                client.ack(item.msg.mid, item.msg.qos)
        return more

    def _answer(self, client: mqtt.Client, item: _Handled) -> None:
        """Count ``item`` and publish its reply, once."""
        if item.done:
            return
        item.done = True
        counters = self._counters
        outcome = item.outcome
        with counters.lock:
            if outcome is None:
                counters.failed += 1
                counters.dropped += 1
                if item.error is not None:
                    counters.errors[item.error.value] += 1
            elif outcome.reply.status in (Status.OK, Status.PENDING):
                counters.handled += 1
            else:
                counters.failed += 1
                counters.errors[(outcome.reply.code or ErrorCode.INTERNAL).value] += 1
        if outcome is not None and item.reply_to is not None:
            self._publish(client, item.reply_to, encode(outcome.reply.to_wire()), _REPLY,
                          properties=echo_correlation(item.msg.properties))

    def _route(self, topic: str) -> tuple[str, str, str, Callable[[str, bytes], Outcome]] | None:
        """(kind, id, namespace, handler) of a topic the bridge serves, else None."""
        if topic == self.topics.operator(INSTALLATIONS):
            return ("operator", INSTALLATIONS, self.topics.operator_namespace(INSTALLATIONS),
                    self._installation)
        try:
            kind, ident, leaf = self.topics.parse(topic)
        except ValueError:
            return None
        if kind == "devices" and leaf == "register":
            return kind, ident, self.topics.device_namespace(ident), self._register
        if kind == "apps" and leaf == "requests":
            return kind, ident, self.topics.app_namespace(ident), self._app_request
        if kind == "users" and leaf == "requests":
            return kind, ident, self.topics.user_namespace(ident), self._user_request
        if kind == "operator" and leaf == "requests":
            return kind, ident, self.topics.operator_namespace(ident), self._operator_request
        return None

    def dispatch(self, topic: str, payload: bytes) -> Outcome | None:
        """What the bridge does with ``payload`` arriving on ``topic``, without MQTT: the
        outcome (committed; its effects are not published), None for a topic it does not
        serve. For tests and fuzzing; exceptions of a handler propagate."""
        route = self._route(topic)
        if route is None:
            return None
        _kind, ident, _namespace, handler = route
        return handler(ident, payload)

    def _take(self, msg: mqtt.MQTTMessage) -> _Handled:
        """Handle one message (its changes stay uncommitted); what to publish for it."""
        item = _Handled(msg)
        topic = msg.topic
        route = self._route(topic)
        if route is None:
            log.warning("message on unexpected topic %r: dropped", topic)
            return item
        kind, ident, namespace, handler = route

        reply_to = response_topic(msg.properties)
        if reply_to is None:
            if kind == "apps":
                log.warning("app request on %s without a Response Topic: dropped", topic)
                return item
            # Devices, user agents and operator systems may send without waiting for an
            # answer; the request is handled all the same.
            log.info("request on %s without a Response Topic: not answered", topic)
        elif not _inside(reply_to, namespace):
            # Answering would let a requester reflect data onto someone else's topic.
            log.warning("request on %s names Response Topic %r outside %s: not processed",
                        topic, reply_to, namespace)
            item.error = ErrorCode.FORBIDDEN_TOPIC
            self._audit_forbidden(kind, ident, reply_to)
            return item

        try:
            item.outcome = handler(ident, bytes(msg.payload))
        except Exception:
            log.exception("internal error handling the request on %s", topic)
            item.outcome = Outcome(Reply.error(ErrorCode.INTERNAL,
                                               "the registry failed; try again later"))
        item.reply_to = reply_to
        return item

    def _audit_forbidden(self, kind: str, ident: str, reply_to: str) -> None:
        actor = {"devices": "device", "apps": "app", "users": "user"}.get(kind, kind)
        audit: dict[str, Any] = {"subject": ident}
        if kind == "apps":
            audit["app_id"] = ident
        elif kind == "users":
            audit["contract_id"] = ident
        try:
            self.registry.refuse(
                f"{actor}:{ident}", "request",
                refusal(Status.ERROR, ErrorCode.FORBIDDEN_TOPIC,
                        "the Response Topic lies outside the requester's namespace"),
                detail={"response_topic": reply_to[:256]}, **audit)
        except StoreError as exc:
            log.warning("could not audit a forbidden Response Topic: %s", exc)

    # --- publishing ----------------------------------------------------------------------

    def _publish(self, client: mqtt.Client, topic: str, payload: bytes, key: _Key, *,
                 retain: bool = False, properties: Properties | None = None) -> None:
        info = client.publish(topic, payload, qos=QOS, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # QoS 1: paho keeps the message queued and sends it after reconnecting.
            log.warning("publication to %s queued: %s", topic, mqtt.error_string(info.rc))
        # paho calls on_publish holding its own lock, so publish() is never called with
        # ours held; a PUBACK that overtakes this bookkeeping is parked in _early.
        with self._pub_lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                if key is not _REPLY:
                    self._acked.append(key)
            else:
                self._inflight[info.mid] = key

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode,
                    _p: Properties | None) -> None:
        with self._pub_lock:
            key = self._inflight.pop(mid, None)
            if key is None:
                self._early.add(mid)
            elif key is not _REPLY and not reason.is_failure:
                self._acked.append(key)

    def _publish_effects(self, client: mqtt.Client, effects: Effects) -> None:
        for event in effects.events:
            self._publish(client, self.topics.app_events(event.app_id),
                          encode(event.payload), ("event", event.app_id, event.seq))
        with self._counters.lock:
            self._counters.events += len(effects.events)
        for contract_id in sorted(effects.consent):
            self._publish_consent(client, contract_id)

    def _publish_consent(self, client: mqtt.Client, contract_id: str) -> None:
        revision, snapshot = self.registry.consent_snapshot(contract_id)
        # Retained: a user agent that connects later still sees the open prompts.
        self._publish(client, self.topics.user_consent(contract_id), encode(snapshot),
                      ("consent", contract_id, revision), retain=True)

    # --- housekeeping --------------------------------------------------------------------

    def _housekeeping(self) -> None:
        while not self._stopping.wait(self.sweep_interval):
            try:
                self.sweep()
            except Exception:
                log.exception("housekeeping failed; trying again in %g s", self.sweep_interval)

    def sweep(self) -> None:
        """One round of housekeeping: note confirmed publications, expire consent prompts,
        publish again what was not confirmed in time."""
        client = self._client
        if client is None:
            return
        self._flush_acks()
        self._publish_effects(client, self.registry.expire_prompts())
        with self._pub_lock:
            pending = set(self._inflight.values())
        due = now_ms() - int(self.relay_grace * 1000)
        late = [e for e in self.store.unpublished_events(due, limit=200)
                if ("event", e.app_id, e.seq) not in pending]
        if late:
            log.info("publishing %d events not confirmed in time", len(late))
            self._publish_effects(client, Effects(events=late))
        for contract_id, revision in self.store.unpublished_consent():
            if ("consent", contract_id, revision) not in pending:
                self._publish_consent(client, contract_id)

    def _flush_acks(self) -> None:
        with self._pub_lock:
            acked, self._acked = self._acked, []
        events = [(app_id, seq) for kind, app_id, seq in acked if kind == "event"]
        if events:
            self.store.mark_published(events)
        for kind, contract_id, revision in acked:
            if kind == "consent":
                self.store.mark_consent_published(contract_id, revision)

    # --- handlers: each returns the outcome; raising means an internal error -----------

    def _register(self, device_id: str, payload: bytes) -> Outcome:
        try:
            outcome = self.registry.handle_registration(device_id, payload)
        except StoreError:
            log.exception("storing the registration of %s failed", device_id)
            return Outcome(Reply.error(ErrorCode.INTERNAL, "the registry could not store the "
                                                           "registration; try again later"))
        _log_refusal(f"registration of {device_id}", outcome.reply)
        return outcome

    def _installation(self, _source: str, payload: bytes) -> Outcome:
        try:
            msg = decode(payload)
        except WireError as exc:
            return self._undecodable(f"operator:{INSTALLATIONS_SOURCE}", "installation",
                                     INSTALLATIONS, exc, payload)
        outcome = self.registry.handle_installation(msg)
        _log_refusal("installation result", outcome.reply)
        return outcome

    def _app_request(self, app_id: str, payload: bytes) -> Outcome:
        try:
            msg = decode(payload)
        except WireError as exc:
            return self._undecodable(f"app:{app_id}", "request", app_id, exc, payload,
                                     app_id=app_id)
        outcome = self.registry.handle_app(app_id, msg)
        _log_refusal(f"request of app {app_id}", outcome.reply)
        return outcome

    def _user_request(self, contract_id: str, payload: bytes) -> Outcome:
        try:
            msg = decode(payload)
        except WireError as exc:
            return self._undecodable(f"user:{contract_id}", "request", contract_id, exc,
                                     payload, contract_id=contract_id)
        outcome = self.registry.handle_user(contract_id, msg)
        _log_refusal(f"request for contract {contract_id}", outcome.reply)
        return outcome

    def _operator_request(self, source: str, payload: bytes) -> Outcome:
        try:
            msg = decode(payload)
        except WireError as exc:
            return self._undecodable(f"operator:{source}", "request", source, exc, payload)
        outcome = self.registry.handle_operator(source, msg)
        _log_refusal(f"operator request of {source}", outcome.reply)
        return outcome


    def _undecodable(self, actor: str, action: str, subject: str, exc: WireError,
                     payload: bytes, **audit: Any) -> Outcome:
        """Refuse a payload that could not be decoded, and record who sent it."""
        log.info("%s %s refused (%s): %s", actor, action, exc.code, exc.message)
        return self.registry.refuse(actor, action, refusal(Status.ERROR, exc.code, exc.message),
                                    subject=subject, detail={"bytes": len(payload)}, **audit)


def _inside(topic: str, namespace: str) -> bool:
    """True when ``topic`` is a publishable topic below ``namespace`` (which ends in /),
    and not one of the registry's own topics there."""
    return (len(topic) > len(namespace) and topic.startswith(namespace)
            and "+" not in topic and "#" not in topic and "\0" not in topic
            and topic[len(namespace):] not in _RESERVED_LEAVES)


def _log_refusal(what: str, reply: Reply) -> None:
    if reply.status not in (Status.OK, Status.PENDING):
        log.info("%s answered %s (%s): %s", what, reply.status, reply.code, reply.message)

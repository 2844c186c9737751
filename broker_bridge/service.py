"""The registry service: device registrations and app requests over MQTT v5.

One :class:`Bridge` is one member of a shared-subscription group; several processes (on
one machine or many) can serve side by side, each message going to exactly one of them.
Every request is answered on its Response Topic with its Correlation Data echoed, once
the Response Topic is known to belong to the requester. Messages are acknowledged only
after they have been handled, so with a fixed ``client_id`` (persistent session) nothing
that was not stored and answered is lost when the bridge stops.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker_bridge._mqtt import echo_correlation, response_topic, set_nodelay
from broker_bridge.errors import BrokerError, StoreError, UnknownSubscriptionError
from broker_bridge.model import App
from broker_bridge.policy import AccessPolicy, KnownAppsPolicy
from broker_bridge.records import DeviceRecord
from broker_bridge.storage.base import Store
from mps_wire.codec import decode, encode
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import DeviceInfo, Reply, Status, parse_app_request
from mps_wire.mqtt import BrokerUnreachableError, BrokerURL, connect, disconnect, new_client
from mps_wire.topics import DEFAULT_SHARE_GROUP, Topics, check_level

log = logging.getLogger(__name__)

QOS = 1


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """Counters since the bridge was created.

    ``handled`` requests got an ``ok`` reply, ``failed`` ones any other reply or none
    (``dropped``: no usable Response Topic, or a topic the bridge does not serve);
    ``errors`` counts failures by code, ``forbidden-topic`` included.
    """

    received: int = 0
    handled: int = 0
    failed: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error_count(self, code: ErrorCode) -> int:
        return self.errors.get(code.value, 0)


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = self.handled = self.failed = self.dropped = 0
        self.errors: Counter[str] = Counter()

    def snapshot(self) -> BridgeStats:
        with self.lock:
            return BridgeStats(self.received, self.handled, self.failed, self.dropped,
                               dict(self.errors))


class Bridge:
    """Serves registrations and app requests from ``broker`` into ``store``.

    Constructing does no I/O: :meth:`start` opens the store, connects and subscribes;
    :meth:`serve_forever` also waits for SIGTERM/SIGINT or :meth:`stop`. ``client_id``
    makes the MQTT session persistent (QoS 1 requests queue while the bridge is away);
    without it the bridge joins with a fresh, clean session. ``policy`` decides what apps
    may ask (default: every app the operator registered, nothing for others).
    """

    def __init__(self, store: Store, broker: BrokerURL, *, topics: Topics | None = None,
                 group: str = DEFAULT_SHARE_GROUP, client_id: str | None = None,
                 policy: AccessPolicy | None = None) -> None:
        if not isinstance(broker, BrokerURL):
            raise TypeError(f"broker must be a BrokerURL, not {type(broker).__name__}")
        if topics is not None and not isinstance(topics, Topics):
            raise TypeError(f"topics must be a Topics, not {type(topics).__name__}")
        check_level(group, "share group")
        if client_id is not None and not client_id:
            raise ValueError("client_id must not be empty")
        self.store = store
        self.broker = broker
        self.topics = topics or Topics()
        self.group = group
        self.client_id = client_id
        self.policy: AccessPolicy = policy or KnownAppsPolicy()
        self.filters = (
            Topics.shared(group, self.topics.all_registrations()),
            Topics.shared(group, self.topics.all_app_requests()),
        )
        self._client: mqtt.Client | None = None
        self._counters = _Counters()
        self._stopping = threading.Event()
        self._lock = threading.Lock()

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
        log.info("reconnected to %s", self.broker)
        set_nodelay(client)
        if not flags.session_present:
            client.subscribe([(f, SubscribeOptions(qos=QOS)) for f in self.filters])

    def stop(self) -> None:
        """Unsubscribe by disconnecting; messages in flight go to the other members."""
        self._stopping.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            disconnect(client)
            log.info("stopped serving %s on %s", self.topics.prefix, self.broker)

    def serve_forever(self, *, ready: Callable[[], None] | None = None) -> None:
        """Start if needed and serve until :meth:`stop`, SIGTERM or SIGINT; then stop.

        ``ready`` is called once the subscriptions are confirmed.
        """
        previous: dict[int, Any] = {}
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
        # Runs on paho's network thread: an exception escaping here would end it.
        try:
            self._handle(client, msg)
        except Exception:
            log.exception("failed to handle a message on %s", msg.topic)
        finally:
            if msg.qos:
                client.ack(msg.mid, msg.qos)

    def _handle(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        counters = self._counters
        with counters.lock:
            counters.received += 1
        topic = msg.topic
        try:
            kind, ident, leaf = self.topics.parse(topic)
        except ValueError:
            self._drop(f"message on unexpected topic {topic!r}")
            return
        handler: Callable[[str, bytes], Reply]
        if kind == "devices" and leaf == "register":
            namespace = self.topics.device_namespace(ident)
            handler = self._register
        elif kind == "apps" and leaf == "requests":
            namespace = self.topics.app_namespace(ident)
            handler = self._app_request
        else:
            self._drop(f"message on unexpected topic {topic!r}")
            return

        props = msg.properties
        reply_to = response_topic(props)
        if reply_to is None:
            if kind == "apps":
                self._drop(f"app request on {topic} without a Response Topic")
                return
            # A device may register without waiting for an answer; it is its own topic.
            log.info("registration on %s without a Response Topic: not answered", topic)
        elif not _inside(reply_to, namespace):
            # Answering would let a requester reflect data onto someone else's topic.
            log.warning("request on %s names Response Topic %r outside %s: not processed",
                        topic, reply_to, namespace)
            with counters.lock:
                counters.failed += 1
                counters.dropped += 1
                counters.errors[ErrorCode.FORBIDDEN_TOPIC.value] += 1
            return

        try:
            reply = handler(ident, bytes(msg.payload))
        except Exception:
            log.exception("internal error handling the request on %s", topic)
            reply = Reply.error(ErrorCode.INTERNAL, "the registry failed; try again later")
        with counters.lock:
            if reply.status is Status.OK:
                counters.handled += 1
            else:
                counters.failed += 1
                counters.errors[(reply.code or ErrorCode.INTERNAL).value] += 1
        if reply_to is not None:
            info = client.publish(reply_to, encode(reply.to_wire()), qos=QOS,
                                  properties=echo_correlation(props))
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                # QoS 1: paho keeps the reply queued and sends it after reconnecting.
                log.warning("reply to %s queued: %s", reply_to, mqtt.error_string(info.rc))

    def _drop(self, why: str) -> None:
        log.warning("%s: dropped", why)
        with self._counters.lock:
            self._counters.failed += 1
            self._counters.dropped += 1

    # --- handlers: each returns the reply; raising means an internal error -------------

    def _register(self, device_id: str, payload: bytes) -> Reply:
        try:
            info = DeviceInfo.from_wire(decode(payload))
        except WireError as exc:
            return _refuse(f"registration on {device_id}", exc.code, exc.message)
        if info.eid != device_id:
            return _refuse(f"registration on {device_id}", ErrorCode.BAD_REQUEST,
                           f"the EID {info.eid} is not the device id {device_id} of the topic")
        try:
            outcome = self.store.register_device(info)
        except UnknownSubscriptionError as exc:
            return _refuse(f"registration of {device_id}", exc.code, str(exc))
        except StoreError:
            log.exception("storing the registration of %s failed", device_id)
            return Reply.error(ErrorCode.INTERNAL, "the registry could not store the "
                                                   "registration; try again later")
        log.debug("device %s: %s under contract %s", device_id, outcome.result,
                  outcome.contract_id)
        return Reply.ok(result=outcome.result.value, device_id=info.device_id,
                        contract=outcome.contract_id)

    def _app_request(self, app_id: str, payload: bytes) -> Reply:
        app: App | None = self.store.app(app_id)
        decision = self.policy.admit(app_id, app)
        if not decision.allowed:
            return _deny(app_id, decision.reason)
        try:
            request = parse_app_request(decode(payload))
        except WireError as exc:
            return _refuse(f"request of app {app_id}", exc.code, exc.message)
        contract = self.store.contract_by_msisdn(request.msisdn)
        if contract is None:
            return _refuse(f"request of app {app_id}", ErrorCode.NOT_FOUND,
                           f"no contract for the number {request.msisdn}")
        decision = self.policy.disclose(app_id, app, contract)
        if not decision.allowed:
            return _deny(app_id, decision.reason)
        records = [DeviceRecord.from_device(device, decision.fields).to_wire()
                   for device in self.store.devices_of_contract(contract.id)]
        return Reply.ok(contract=contract.id, devices=records)


def _inside(topic: str, namespace: str) -> bool:
    """True when ``topic`` is a publishable topic below ``namespace`` (which ends in /)."""
    return (len(topic) > len(namespace) and topic.startswith(namespace)
            and "+" not in topic and "#" not in topic and "\0" not in topic)


def _refuse(what: str, code: ErrorCode, message: str) -> Reply:
    log.info("%s refused (%s): %s", what, code, message)
    return Reply.error(code, message)


def _deny(app_id: str, reason: str) -> Reply:
    log.info("request of app %s denied: %s", app_id, reason)
    return Reply.error(ErrorCode.DENIED, reason or "not allowed", status=Status.DENIED)

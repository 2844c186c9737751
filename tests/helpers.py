"""Builders for valid test devices and operator data, and an MQTT probe for raw requests."""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker_bridge.model import App, Contract, Installation, Subscription, TrustLevel
from broker_bridge.registry import BINDING_SOURCE, Registry
from broker_bridge.service import Bridge
from broker_bridge.storage.base import Store
from broker_bridge.storage.sql import SqlStore
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client, new_properties
from mps_mqtt.props import set_nodelay
from mps_wire import codec
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import DeviceInfo, ModelInfo
from mps_wire.topics import Topics


def iccid_for(sub: int) -> str:
    """The (valid) ICCID of test subscription number ``sub``."""
    return make_iccid(f"894926201{sub:09d}")


def imsi_for(sub: int) -> str:
    """The IMSI of test subscription number ``sub``."""
    return f"26201{sub:010d}"


def make_device(n: int = 1, *, sub: int | None = None, **overrides: Any) -> DeviceInfo:
    """A valid DeviceInfo whose EID and IMEI derive from ``n``.

    It holds the profile of test subscription ``sub`` (default ``n``): see
    :func:`iccid_for` and :func:`add_contract`. ``overrides`` replace any field.
    """
    s = n if sub is None else sub
    info = DeviceInfo(
        eid=make_eid(f"89049032{n:022d}"),
        imei=make_imei("35209900", f"{n:06d}"),
        iccid=iccid_for(s),
        imsi=imsi_for(s),
        ip=(f"10.0.{n // 256}.{n % 256}",),
        capabilities=("lte", "gps"),
        model=ModelInfo("Quectel", "EC25", "EC25EFAR06A06M4G"),
        profile="emulated-quectel",
        seq=1,
        ts=1_700_000_000_000,
    )
    return replace(info, **overrides) if overrides else info


def add_contract(store: Store, contract_id: str, *, subs: Iterable[int],
                 msisdns: Iterable[str] = (), holder: str = "Test Holder",
                 bind: bool = True) -> None:
    """File a contract with its numbers and the test subscriptions ``subs`` in ``store``.

    The first number, if any, is the number of the first subscription. With ``bind``,
    the operator's data binds each subscription ``n`` to the eUICC of :func:`make_device`
    ``n`` (as for a profile the operator put on the device itself), so that device may
    register with it; an SM-DP+ installation result elsewhere replaces the binding.
    """
    subs = list(subs)
    numbers = list(msisdns)
    with store.transaction():
        store.upsert_contract(Contract(contract_id, holder))
        for msisdn in numbers:
            store.upsert_number(msisdn, contract_id)
        for i, s in enumerate(subs):
            msisdn = numbers[0] if numbers and i == 0 else None
            store.upsert_subscription(Subscription(iccid_for(s), imsi_for(s), msisdn,
                                                   contract_id))
    if bind:
        operator_binds(store, subs)


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    correlation: bytes | None
    payload: bytes

    def decoded(self) -> dict[str, Any]:
        return codec.decode(self.payload)


class MqttProbe:
    """A raw MQTT v5 client for tests: sends requests with any Response Topic and
    Correlation Data, and records everything that arrives on the topics it listens to."""

    def __init__(self, broker: str) -> None:
        self.broker = BrokerURL.parse(broker)
        self.client = new_client()
        self.received: queue.Queue[Received] = queue.Queue()
        self._acks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> MqttProbe:
        self.client.on_message = self._on_message
        connect(self.client, self.broker)
        set_nodelay(self.client)
        self.client.on_subscribe = self._on_subscribe
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        disconnect(self.client)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        self.received.put(Received(msg.topic, bytes(corr) if corr is not None else None,
                                   bytes(msg.payload)))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _rc: list[ReasonCode],
                      _p: Properties | None) -> None:
        with self._lock:
            event = self._acks.setdefault(mid, threading.Event())
        event.set()

    def listen(self, topic_filter: str, timeout: float = 5.0) -> None:
        """Subscribe and wait for the SUBACK."""
        with self._lock:
            _rc, mid = self.client.subscribe(topic_filter, qos=1)
            assert mid is not None
            event = self._acks.setdefault(mid, threading.Event())
        assert event.wait(timeout), f"no SUBACK for {topic_filter}"

    def send(self, topic: str, payload: bytes, *, response_topic: str | None = None,
             correlation: bytes | None = None) -> bytes:
        """Publish a request (QoS 1); return its Correlation Data (random unless given)."""
        corr = os.urandom(8) if correlation is None else correlation
        props = new_properties()
        if response_topic is not None:
            props.ResponseTopic = response_topic
        props.CorrelationData = corr
        self.client.publish(topic, payload, qos=1, properties=props)
        return corr

    def next(self, timeout: float = 5.0) -> Received:
        """The next message that arrived; queue.Empty after ``timeout``."""
        return self.received.get(timeout=timeout)

    def request(self, topic: str, payload: bytes, response_topic: str,
                timeout: float = 5.0) -> dict[str, Any]:
        """Send a request and return the decoded reply carrying its Correlation Data.

        Fails if anything else arrives first: tests see every stray reply.
        """
        corr = self.send(topic, payload, response_topic=response_topic)
        got = self.next(timeout)
        assert got.correlation == corr, f"unexpected message first: {got}"
        assert got.topic == response_topic
        return got.decoded()


# --- the registry's story: Paul, his devices and the apps ------------------------------

PAUL = "C-PAUL"
PAUL_MSISDN = "+4915112345678"
LENA = "C-LENA"
LENA_MSISDN = "+4917098765432"


def paul_and_apps(store: Store, *, devices: int = 4, bind: bool = True) -> list[DeviceInfo]:
    """Paul's contract with subscriptions 1-6 and ``devices`` registered devices (1..n),
    Lena's contract with subscription 9, and one app of each kind; with ``bind``, each
    subscription ``n`` bound to device ``n`` (see :func:`add_contract`):

    ``health`` verified (health-monitoring), ``care`` partner with standing consent,
    ``coach`` partner without it, ``tracker`` unverified.
    """
    add_contract(store, PAUL, subs=range(1, 7), msisdns=[PAUL_MSISDN], holder="Paul Becker",
                 bind=bind)
    add_contract(store, LENA, subs=[9], msisdns=[LENA_MSISDN], holder="Lena Vogel",
                 bind=bind)
    for app in (
        App("health", "Health Monitor", TrustLevel.VERIFIED, ("health-monitoring",)),
        App("care", "Operator care", TrustLevel.PARTNER, ("support",), standing_consent=True),
        App("coach", "Coach", TrustLevel.PARTNER, ("fitness",)),
        App("tracker", "Tracker", TrustLevel.UNVERIFIED, ("fitness",)),
    ):
        store.upsert_app(app)
    infos = [make_device(n) for n in range(1, devices + 1)]
    for info in infos:
        store.register_device(info)
    return infos


def operator_binds(store: Store, subs: Iterable[int]) -> None:
    """The operator's data binding each test subscription ``n`` to the eUICC of
    :func:`make_device` ``n`` (older than any installation result of the SM-DP+)."""
    for n in subs:
        store.record_installation(Installation(iccid_for(n), make_device(n).eid,
                                               f"bind-{n}", BINDING_SOURCE, 0), rebind=True)


def bind_devices(store: Store, subs: Iterable[int]) -> None:
    """Bind each test subscription ``n`` to the eUICC of :func:`make_device` ``n``, as the
    operator does for a profile it put on the device itself (``mps-bridge operator bind``)."""
    registry = Registry(store)
    for n in subs:
        registry.bind_subscription(iccid_for(n), make_device(n).eid, actor="operator:test")


def random_topics() -> Topics:
    """A prefix of its own per test, so tests sharing the broker never see each other."""
    return Topics(f"t-{uuid.uuid4().hex[:10]}/mps/v1")


@contextmanager
def running_bridge(store: Store, broker: str, topics: Topics, **options: Any
                   ) -> Iterator[Bridge]:
    """A bridge with quick housekeeping, for tests: prompts expire and late events are
    published again within a second."""
    settings: dict[str, Any] = {"sweep_interval": 0.05, "relay_grace": 0.3, **options}
    with Bridge(store, BrokerURL.parse(broker), topics=topics, **settings) as bridge:
        yield bridge


def table_state(store: Store) -> dict[str, Any]:
    """Everything of the registry's state but the audit log, for "nothing changed" checks."""
    tables = ("contracts", "numbers", "subscriptions", "devices", "apps", "pairings",
              "app_streams", "app_events", "ported_numbers", "operators")
    assert isinstance(store, SqlStore)
    # Publication bookkeeping changes in the background and is no part of it.
    bookkeeping = {"published_at", "consent_published_rev"}
    state: dict[str, Any] = {}
    for name in tables:
        columns = [row[1] for row in store._read(f"PRAGMA table_info({name})")
                   if row[1] not in bookkeeping]
        rows = store._read(f"SELECT {', '.join(columns)} FROM {name}")
        state[name] = sorted(map(repr, rows))
    return state


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

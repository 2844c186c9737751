"""Per-app event streams over a real Mosquitto: new devices, changes, swaps and departures
reach every paired app, durably, in order, once each, and resumably from a cursor."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.registry import Registry
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_mqtt.client import BrokerURL
from mps_sdk.client import PairingClient
from mps_testbed.stack import Mosquitto
from mps_wire import codec
from mps_wire.messages import DeviceInfo, EventKind, Reason
from mps_wire.records import Event
from mps_wire.topics import Topics
from tests.helpers import (
    LENA,
    PAUL,
    PAUL_MSISDN,
    MqttProbe,
    add_contract,
    iccid_for,
    imsi_for,
    make_device,
    paul_and_apps,
    running_bridge,
    wait_until,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s)
        yield s


@pytest.fixture
def care(bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> Iterator[PairingClient]:
    """The partner app, paired with Paul's contract (standing consent)."""
    with PairingClient(mosquitto.url, "care", topics=topics, timeout=5) as c:
        assert c.pair(PAUL_MSISDN, "support").active
        yield c


def register(probe: MqttProbe, topics: Topics, info: DeviceInfo) -> dict[str, Any]:
    """Register like a device: on its own topic, answered on its own reply topic."""
    reply_topic = topics.device_reply(info.eid)
    probe.listen(reply_topic)
    return probe.request(topics.device_register(info.eid), codec.encode(info.to_wire()),
                         reply_topic)


def live(probe: MqttProbe, topics: Topics, app: str) -> None:
    probe.listen(topics.app_events(app))


def next_event(probe: MqttProbe, timeout: float = 5.0) -> Event:
    while True:
        got = probe.next(timeout)
        if "/events" in got.topic:
            return Event.from_wire(got.decoded())


def test_a_new_device_reaches_every_paired_app_at_once(
        care: PairingClient, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    live(probe, topics, "care")
    racket = make_device(5)
    assert register(probe, topics, racket)["result"] == "registered"
    event = next_event(probe)
    assert (event.seq, event.kind, event.contract) == (2, EventKind.DEVICE_ADDED, PAUL)
    assert event.device is not None and event.device.eid == racket.eid
    assert event.device.imei == racket.imei  # a partner sees identifiers
    # A device on another contract is no business of this pairing.
    lenas = make_device(9)
    assert register(probe, topics, lenas)["contract"] == LENA
    with pytest.raises(queue.Empty):
        next_event(probe, timeout=0.3)
    assert wait_until(lambda: store.unpublished_events(10**15) == [])


def test_changes_swaps_and_repeats(care: PairingClient, probe: MqttProbe, topics: Topics,
                                   store: SqliteStore) -> None:
    live(probe, topics, "care")
    info = make_device(1)
    # The same registration again (a redelivery, a restart): unchanged, nothing announced.
    reply = register(probe, topics, replace(info, seq=2))
    assert reply["result"] == "unchanged" and "changes" not in reply
    with pytest.raises(queue.Empty):
        next_event(probe, timeout=0.3)

    # The operator moves profile 6 into this device (one profile, one device: a swap).
    Registry(store).bind_subscription(iccid_for(6), info.eid, swap=True)
    cases: list[tuple[DeviceInfo, list[str]]] = [
        (replace(info, seq=3, ip=("192.0.2.9",)), ["ip"]),
        (replace(info, seq=4, ip=("192.0.2.9",), profile="quectel-bg96"), ["profile"]),
        (replace(info, seq=5, ip=("192.0.2.9",), profile="quectel-bg96",
                 imei=make_device(40).imei), ["device-swap"]),
        (replace(info, seq=6, ip=("192.0.2.9",), profile="quectel-bg96",
                 imei=make_device(40).imei, iccid=iccid_for(6), imsi=imsi_for(6)),
         ["sim-swap"]),
    ]
    for changed, kinds in cases:
        reply = register(probe, topics, changed)
        assert (reply["result"], reply["changes"]) == ("updated", kinds)
        event = next_event(probe)
        assert (event.kind, list(event.changes)) == (EventKind.DEVICE_UPDATED, kinds)
        assert event.device is not None and event.device.eid == info.eid
    assert event.device.iccid == iccid_for(6) and event.device.imei == make_device(40).imei
    # Each swap is recorded with what it replaced.
    swaps = {tuple(e.detail["changes"]): e.detail for e in store.audit()
             if e.action == "register" and e.outcome == "updated"}
    assert swaps[("device-swap",)]["imei"] == [info.imei, make_device(40).imei]
    assert swaps[("sim-swap",)]["iccid"] == [info.iccid, iccid_for(6)]


def test_a_device_moving_to_another_contract_leaves_this_one(
        care: PairingClient, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    live(probe, topics, "care")
    info = make_device(2)
    Registry(store).bind_subscription(iccid_for(9), info.eid, swap=True)
    moved = replace(info, seq=9, iccid=iccid_for(9), imsi=imsi_for(9))  # Lena's profile
    assert register(probe, topics, moved)["contract"] == LENA
    event = next_event(probe)
    assert (event.kind, event.reason) == (EventKind.DEVICE_REMOVED, Reason.LEFT_CONTRACT)
    assert event.device is not None and event.device.eid == info.eid


def test_a_removed_subscription_takes_its_device_off_the_contract(
        care: PairingClient, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    live(probe, topics, "care")
    source = topics.operator_replies("crm")
    probe.listen(source)
    reply = probe.request(topics.operator_requests("crm"), codec.encode(
        {"op": "remove-subscription", "iccid": iccid_for(3)}), source)
    assert (reply["status"], reply["devices_removed"]) == ("ok", 1)
    event = next_event(probe)
    assert (event.kind, event.reason) == (EventKind.DEVICE_REMOVED,
                                          Reason.SUBSCRIPTION_REMOVED)
    assert event.device is not None and event.device.eid == make_device(3).eid
    assert store.device(make_device(3).eid) is None
    assert len(care.devices(PAUL_MSISDN)) == 3


def test_resuming_from_a_cursor_after_being_offline(
        care: PairingClient, probe: MqttProbe, topics: Topics, bridge: Bridge) -> None:
    granted = next(care.events(0, timeout=5))
    assert granted.kind is EventKind.PAIRING_GRANTED
    cursor = granted.seq
    # While the app is away, three devices join; each event is stored with its number.
    for n in (5, 6):
        register(probe, topics, make_device(n))
    register(probe, topics, replace(make_device(1), seq=7, ip=("198.51.100.4",)))
    page = care.fetch_events(cursor, limit=2)
    assert [e.seq for e in page.events] == [2, 3] and page.more and page.last == 4
    resumed = care.events(cursor, timeout=0.3)
    kinds = [(e.seq, e.kind) for e in resumed]
    assert kinds == [(2, EventKind.DEVICE_ADDED), (3, EventKind.DEVICE_ADDED),
                     (4, EventKind.DEVICE_UPDATED)]
    assert [e.seq for e in care.events(4, timeout=0.3)] == []


def test_the_live_stream_fills_gaps_and_drops_duplicates(
        care: PairingClient, probe: MqttProbe, topics: Topics, bridge: Bridge,
        store: SqliteStore) -> None:
    seen: list[int] = []
    watch = care.watch(lambda e: seen.append(e.seq), since=0)
    try:
        assert wait_until(lambda: seen == [1])
        # An event committed but never published (a bridge that stopped in between)...
        bridge.registry.register(make_device(5))
        # ...and a duplicate of an old one, as a QoS 1 redelivery would bring it.
        old = store.events_since("care", 0)[0]
        probe.client.publish(topics.app_events("care"), codec.encode(old.payload), qos=1)
        register(probe, topics, make_device(6))  # seq 3, published normally
        assert wait_until(lambda: seen == [1, 2, 3]), seen
    finally:
        watch.stop()
    assert watch.cursor == 3 and watch.error is None


def test_unpublished_events_are_published_again(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics, probe: MqttProbe) -> None:
    with running_bridge(store, mosquitto.url, topics), \
            PairingClient(mosquitto.url, "care", topics=topics, timeout=5) as care:
        care.pair(PAUL_MSISDN, "support")
    # Changes made while no bridge runs (here: on the database) wait in the outbox...
    Registry(store).register(make_device(5))
    assert [e.seq for e in store.unpublished_events(10**15)] == [2]
    live(probe, topics, "care")
    # ...and the next bridge to run publishes them.
    with running_bridge(store, mosquitto.url, topics):
        event = next_event(probe)
        assert (event.seq, event.kind) == (2, EventKind.DEVICE_ADDED)
        assert wait_until(lambda: store.unpublished_events(10**15) == [])


def test_two_bridges_number_one_stream_without_gaps(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics, probe: MqttProbe) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    add_contract(store, PAUL, subs=range(10, 16), holder="Paul Becker")
    broker = BrokerURL.parse(mosquitto.url)
    options: dict[str, Any] = {"topics": topics, "group": group, "sweep_interval": 0.05,
                               "relay_grace": 0.3}
    with Bridge(store, broker, **options) as one, Bridge(store, broker, **options) as two, \
            PairingClient(mosquitto.url, "care", topics=topics, timeout=5) as care:
        care.pair(PAUL_MSISDN, "support")
        for n in range(10, 16):
            register(probe, topics, make_device(n))
        events = list(care.events(0, timeout=0.5))
        assert one.stats.received >= 1 and two.stats.received >= 1
    assert [e.seq for e in events] == list(range(1, 8))
    assert [e.kind for e in events[1:]] == [EventKind.DEVICE_ADDED] * 6

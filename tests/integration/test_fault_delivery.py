"""The agent's delivery against a real broker and registry: a broker that is not there
yet, a broker that restarts under a connected device, and an outbox that fell behind
the registry's numbering."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.firstboot import AgentSettings, FirstBoot
from agent.publisher import Backoff, Delivery, Publisher
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from firmware_profiles import PROFILE_DIR, load_profile
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.mosquitto import free_port
from tests.helpers import add_contract, make_device, random_topics, running_bridge

FAST = Backoff(initial=0.1, factor=2.0, maximum=0.8)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        add_contract(s, "C-1", subs=[1, 2, 3])
        yield s


def registrations(store: SqliteStore) -> int:
    return sum(1 for e in store.audit() if e.action == "register"
               and e.outcome == "registered")


def test_delivery_waits_for_a_broker_that_comes_up_later(tmp_path: Path,
                                                          store: SqliteStore) -> None:
    port = free_port()
    broker = Mosquitto(port=port, workdir=tmp_path / "broker")
    topics = random_topics()
    info = make_device(1)
    came_up = threading.Event()

    def start_late() -> None:
        threading.Event().wait(1.0)
        broker.start()
        came_up.set()

    starter = threading.Thread(target=start_late)
    starter.start()
    try:
        # The bridge must be there too: it joins once the broker is.
        bridge_ready = threading.Event()
        stop_bridge = threading.Event()

        def serve() -> None:
            came_up.wait(10)
            with running_bridge(store, broker.url, topics):
                bridge_ready.set()
                stop_bridge.wait(30)

        server = threading.Thread(target=serve)
        server.start()
        pub = Publisher(f"mqtt://127.0.0.1:{port}", info.eid, prefix=topics.prefix)
        delivery = Delivery(pub, retry_for=20, backoff=FAST)
        try:
            reply = delivery.deliver(info, timeout=2)
        finally:
            pub.close()
            stop_bridge.set()
            server.join(10)
        assert reply.is_ok and reply.body["result"] == "registered"
        assert delivery.attempts > 1  # it did have to wait
        assert registrations(store) == 1 and store.device(info.eid) is not None
    finally:
        starter.join(10)
        broker.close()


def test_a_connected_device_rides_out_a_broker_restart(tmp_path: Path,
                                                       store: SqliteStore) -> None:
    topics = random_topics()
    with Mosquitto(workdir=tmp_path / "broker", persistence=True) as broker, \
            running_bridge(store, broker.url, topics, client_id="restart-bridge"):
        info = make_device(2)
        with Publisher(broker.url, info.eid, prefix=topics.prefix) as pub:
            assert pub.register(info, timeout=5).is_ok
            broker.restart()
            changed = replace(info, seq=2, ip=("192.0.2.2",))
            reply = Delivery(pub, retry_for=30, backoff=FAST).deliver(changed, timeout=3)
            assert reply.is_ok and reply.body["result"] == "updated"
            assert pub.reconnects >= 1
    stored = store.device(info.eid)
    assert stored is not None and stored.ip == ("192.0.2.2",)
    assert registrations(store) == 1


def test_an_outbox_behind_the_registry_continues_above_its_number(
        tmp_path: Path, store: SqliteStore, mosquitto: Mosquitto) -> None:
    topics = random_topics()
    info = make_device(3)
    Registry(store).register(replace(info, seq=40))  # the device's history before a reset
    profile = replace(load_profile(PROFILE_DIR / "emulated-emu.toml"))
    profile = replace(profile, broker=replace(profile.broker, prefix=topics.prefix))
    settings = AgentSettings.from_profile(profile, broker_url=mosquitto.url,
                                     state_dir=tmp_path / "agent")
    boot = FirstBoot(settings)
    boot.outbox.load()
    staged = boot.outbox.stage(lambda seq: replace(info, seq=seq))
    assert staged.seq == 1  # a wiped outbox starts again at 1
    with running_bridge(store, mosquitto.url, topics):
        reply = boot.publish(staged)
    assert reply.is_ok
    assert boot.delivered is not None and boot.delivered.seq == 41
    last = store.last_registration(info.eid)
    assert last is not None and last[0] == 41
    assert [e.detail.get("code") for e in store.audit() if e.outcome == "denied"] == \
        ["replay"]

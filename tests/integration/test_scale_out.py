"""Scaling out: two ``mps-bridge serve`` processes in one shared-subscription group, one
PostgreSQL database and one broker. Nothing may assume a single instance: every
registration is stored and announced once, event numbers have no gaps or repeats
whichever process wrote them, consent and pairing stay consistent when requests of one
app land on both processes, and a process that stops half-way loses nothing."""

from __future__ import annotations

import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from broker_bridge.model import App, PairingState, TrustLevel
from broker_bridge.storage.postgres import PostgresStore
from mps_sdk.client import PairingClient
from mps_sdk.consent import ConsentClient
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, Service, console_script
from mps_wire import codec
from mps_wire.messages import EventKind, PairRequest
from mps_wire.topics import Topics
from tests.helpers import MqttProbe, add_contract, make_device, random_topics, wait_until
from tests.postgres_support import fresh_schema

pytest.importorskip("psycopg")

CONTRACT = "C-SCALE"
MSISDN = "+4915155500001"
DEVICES = 40


@dataclass
class Cluster:
    """Two bridge processes of one group, their store and their topics."""

    url: str
    topics: Topics
    broker: str
    procs: ProcessGroup
    group: str
    bridges: dict[str, Service]

    def start(self, name: str) -> Service:
        argv = [*console_script("mps-bridge"), "serve", "--db", self.url, "--broker",
                self.broker, "--prefix", self.topics.prefix, "--group", self.group,
                # A fixed client id: a persistent session keeps what arrives while away.
                "--client-id", f"{self.group}-{name}"]
        svc = self.procs.start(f"{name}-{uuid.uuid4().hex[:4]}", argv,
                               env={**os.environ, "MPS_LOG_LEVEL": "warning"})
        svc.wait_for_line("serving", 30)
        self.bridges[name] = svc
        return svc

    def stop(self, name: str) -> int:
        """Stop one bridge; return how many messages it received."""
        svc = self.bridges.pop(name)
        svc.stop()
        found = re.search(r"stopped after (\d+) messages", svc.log_path.read_text())
        assert found, svc.tail()
        return int(found.group(1))


@pytest.fixture
def cluster(mosquitto: Mosquitto, tmp_path: Any) -> Iterator[Cluster]:
    with fresh_schema("scale") as url:
        with PostgresStore(url) as store:
            add_contract(store, CONTRACT, subs=range(1, DEVICES + 2), msisdns=[MSISDN])
            store.upsert_app(App("care", "Care", TrustLevel.PARTNER, ("support",),
                                 standing_consent=True))
            store.upsert_app(App("health", "Health", TrustLevel.VERIFIED,
                                 ("health-monitoring",)))
        with ProcessGroup(tmp_path / "logs") as procs:
            c = Cluster(url, random_topics(), mosquitto.url, procs,
                        f"g-{uuid.uuid4().hex[:8]}", {})
            c.start("one")
            c.start("two")
            yield c


def register_all(probe: MqttProbe, topics: Topics, numbers: range) -> None:
    """Every device registers at once, as devices of a fleet would after a power cut."""
    for n in numbers:
        info = make_device(n)
        probe.send(topics.device_register(info.eid), codec.encode(info.to_wire()),
                   response_topic=topics.device_reply(info.eid))


def test_two_bridges_one_database_lose_and_double_nothing(cluster: Cluster) -> None:
    topics = cluster.topics
    with MqttProbe(cluster.broker) as probe, \
            PairingClient(cluster.broker, "care", topics=topics, timeout=10) as care:
        assert care.pair(MSISDN, "support").active  # pairing-granted is event 1
        probe.listen(topics.app_events("care"))
        probe.listen(f"{topics.prefix}/devices/+/reply")
        register_all(probe, topics, range(1, DEVICES + 1))
        replies: dict[str, dict[str, Any]] = {}
        events: list[int] = []
        deadline = time.monotonic() + 30
        while (len(replies) < DEVICES or len(events) < DEVICES) and \
                time.monotonic() < deadline:
            try:
                got = probe.next(timeout=1)
            except queue.Empty:
                continue
            if got.topic.endswith("/events"):
                event = got.decoded()
                # pairing-granted (event 1) may still be on its way: only devices count
                if event["event"] == EventKind.DEVICE_ADDED.value:
                    events.append(event["seq"])
            else:
                replies[got.topic] = got.decoded()
        assert len(replies) == DEVICES
        assert {r["result"] for r in replies.values()} == {"registered"}
        # Each device announced once, numbered 2..41 without gaps, whoever wrote it.
        assert sorted(events) == list(range(2, DEVICES + 2))
        devices = care.devices(MSISDN)
        assert len(devices) == DEVICES
    with PostgresStore(cluster.url) as store:
        stored = store.events_since("care", 0, limit=1000)
        assert [e.seq for e in stored] == list(range(1, DEVICES + 2))
        assert [e.kind for e in stored].count(EventKind.DEVICE_ADDED) == DEVICES
        assert wait_until(lambda: store.unpublished_events(10**15) == [], 10)
        assert store.device_count() == DEVICES
    # Both processes took part: the group spread the work.
    assert cluster.stop("one") > 0 and cluster.stop("two") > 0


def test_consent_and_pairing_stay_consistent_across_processes(cluster: Cluster) -> None:
    topics = cluster.topics
    with MqttProbe(cluster.broker) as probe, \
            PairingClient(cluster.broker, "health", topics=topics, timeout=10) as health, \
            ConsentClient(cluster.broker, CONTRACT, topics=topics, timeout=10) as user:
        # The same app asks twice at once: one pairing, whichever process answers.
        probe.listen(topics.app_replies("health"))
        request = codec.encode(PairRequest(MSISDN, "health-monitoring").to_wire())
        for _ in range(8):
            probe.send(topics.app_requests("health"), request,
                       response_topic=topics.app_replies("health"))
        answers = [probe.next(timeout=10).decoded() for _ in range(8)]
        assert {a["status"] for a in answers} == {"pending"}
        pairing = answers[0]["pairing"]
        assert {a["pairing"] for a in answers} == {pairing}
        prompt = user.wait_for_prompt(app="health", timeout=10)
        # Answered through whichever process gets it; the grant reaches the app once.
        assert prompt.pairing == pairing
        user.approve(prompt.prompt)
        decision = health.wait_for_decision(pairing, timeout=10)
        assert decision.kind is EventKind.PAIRING_GRANTED
        assert health.pair(MSISDN, "health-monitoring").active
    with PostgresStore(cluster.url) as store:
        live = store.pairings(app_id="health")
        assert [(p.id, p.state) for p in live] == [(pairing, PairingState.ACTIVE)]
        kinds = [e.kind for e in store.events_since("health", 0)]
        assert kinds == [EventKind.PAIRING_GRANTED]


def test_a_bridge_stopping_half_way_loses_nothing(cluster: Cluster) -> None:
    topics = cluster.topics
    with MqttProbe(cluster.broker) as probe, \
            PairingClient(cluster.broker, "care", topics=topics, timeout=10) as care:
        care.pair(MSISDN, "support")
        probe.listen(f"{topics.prefix}/devices/+/reply")
        sender = threading.Thread(target=register_all, args=(probe, topics,
                                                             range(1, DEVICES + 1)))
        sender.start()
        probe.next(timeout=10)  # registrations are being handled: stop one process now
        cluster.stop("one")
        sender.join()
        time.sleep(0.5)
        cluster.start("one")  # its session kept what was sent to it meanwhile
        with PostgresStore(cluster.url) as store:
            assert wait_until(lambda: store.device_count() == DEVICES, 30)
            seqs = [e.seq for e in store.events_since("care", 0, limit=1000)]
            assert seqs == list(range(1, DEVICES + 2))
        events = list(care.events(0, timeout=1))
        assert [e.seq for e in events] == list(range(1, DEVICES + 2))

"""Speed bought with no staleness and no lost audit entry: two ``mps-bridge serve``
processes of one group answer devices queries from memory, over one broker and one
PostgreSQL database. After an unpair, a consent withdrawal, a trust downgrade or a device
removal commits in one process (or in a third, as ``mps-bridge`` on the database), the
very next query shows it, whichever process answers. And a bridge killed (SIGKILL)
between a reply and the commit of its audit entry loses no audit entry: the request was
not acknowledged, so the broker delivers it again."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker_bridge.model import App, TrustLevel
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from broker_bridge.storage.postgres import PostgresStore
from mps_sdk.client import PairingClient
from mps_sdk.consent import ConsentClient
from mps_sdk.errors import DeniedError
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, Service, console_script
from mps_wire import codec
from mps_wire.messages import DevicesRequest, OperatorOp, OperatorRequest
from mps_wire.topics import Topics
from tests.helpers import (
    MqttProbe,
    add_contract,
    iccid_for,
    make_device,
    random_topics,
    wait_until,
)
from tests.postgres_support import fresh_schema

pytest.importorskip("psycopg")

CONTRACT = "C-FRESH"
MSISDN = "+4915155500077"
DEVICES = 3
#: Queries after each change: enough that both processes answer some of them.
ROUNDS = 6

CARE = App("care", "Care", TrustLevel.PARTNER, ("support",), standing_consent=True)
HEALTH = App("health", "Health", TrustLevel.VERIFIED, ("health-monitoring",))


@dataclass
class Bridges:
    db: str
    topics: Topics
    broker: str
    procs: ProcessGroup
    group: str
    running: dict[str, Service]

    def start(self, name: str, *extra: str) -> Service:
        argv = [*console_script("mps-bridge"), "serve", "--db", self.db, "--broker",
                self.broker, "--prefix", self.topics.prefix, "--group", self.group,
                "--client-id", f"{self.group}-{name}", *extra]
        svc = self.procs.start(f"{name}-{uuid.uuid4().hex[:4]}", argv,
                               env={**os.environ, "MPS_LOG_LEVEL": "warning"})
        svc.wait_for_line("serving", 30)
        self.running[name] = svc
        return svc


def _fill(store: PostgresStore | SqliteStore) -> None:
    add_contract(store, CONTRACT, subs=range(1, DEVICES + 1), msisdns=[MSISDN])
    for app in (CARE, HEALTH):
        store.upsert_app(app)
    for n in range(1, DEVICES + 1):
        store.register_device(make_device(n))


@pytest.fixture
def cluster(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Bridges]:
    with fresh_schema("fresh") as url:
        with PostgresStore(url) as store:
            _fill(store)
        with ProcessGroup(tmp_path / "logs") as procs:
            bridges = Bridges(url, random_topics(), mosquitto.url, procs,
                              f"g-{uuid.uuid4().hex[:8]}", {})
            bridges.start("a")
            bridges.start("b")
            yield bridges


def _every_answer(ask: Callable[[], object], expect: Callable[[object], bool]) -> None:
    for _ in range(ROUNDS):
        assert expect(ask())


def _denied(ask: Callable[[], object]) -> bool:
    try:
        ask()
    except DeniedError:
        return True
    return False


def test_the_next_query_shows_a_change_whichever_process_answers(cluster: Bridges) -> None:
    topics = cluster.topics
    with PairingClient(cluster.broker, "care", topics=topics, timeout=10) as care, \
            PairingClient(cluster.broker, "health", topics=topics, timeout=10) as health, \
            ConsentClient(cluster.broker, CONTRACT, topics=topics, timeout=10) as user, \
            MqttProbe(cluster.broker) as probe, \
            PostgresStore(cluster.db) as admin:

        def pair_health() -> None:
            answer = health.pair(MSISDN, "health-monitoring")
            user.approve(user.wait_for_prompt(app="health", timeout=10).prompt)
            health.wait_for_decision(answer.pairing, timeout=10)
            # Both processes answer (and keep) the paired app's devices.
            _every_answer(lambda: health.devices(MSISDN), lambda d: len(d) == DEVICES)

        _every_answer(lambda: care.devices(MSISDN), lambda d: len(d) == DEVICES)
        # Unpair, committed by whichever process takes it: every next answer is refused.
        pair_health()
        health.unpair(MSISDN)
        _every_answer(lambda: _denied(lambda: health.devices(MSISDN)), bool)
        # Consent withdrawn by the user.
        pair_health()
        assert user.withdraw(app="health")
        _every_answer(lambda: _denied(lambda: health.devices(MSISDN)), bool)
        # Trust downgraded by the operator on the database (a third process's commit):
        # verified apps have no standing consent.
        Registry(admin).put_app(App("care", "Care", TrustLevel.VERIFIED, ("support",)))
        _every_answer(lambda: _denied(lambda: care.devices(MSISDN)), bool)
        Registry(admin).put_app(CARE)
        _every_answer(lambda: care.devices(MSISDN), lambda d: len(d) == DEVICES)
        # A device removed with its subscription, by an operator request over MQTT.
        removal = OperatorRequest(OperatorOp.REMOVE_SUBSCRIPTION, iccid=iccid_for(1))
        probe.listen(topics.operator_replies("crm"))
        got = probe.request(topics.operator_requests("crm"),
                            codec.encode(removal.to_wire()), topics.operator_replies("crm"))
        assert got["status"] == "ok", got
        _every_answer(lambda: care.devices(MSISDN), lambda d: len(d) == DEVICES - 1)
    # Both processes answered.
    for name in ("a", "b"):
        svc = cluster.running.pop(name)
        svc.stop()
        assert "stopped after 0 messages" not in svc.log_path.read_text()


def test_a_bridge_killed_before_its_audit_commit_loses_no_audit_entry(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    with SqliteStore(db) as store:
        _fill(store)
    topics = random_topics()
    with ProcessGroup(tmp_path / "logs") as procs, MqttProbe(mosquitto.url) as probe:
        bridges = Bridges(str(db), topics, mosquitto.url, procs, f"g-{uuid.uuid4().hex[:8]}",
                          {})
        # Audit entries wait a minute before they are written: the kill lands between.
        first = bridges.start("one", "--audit-linger", "60")
        reply_to = topics.app_replies("care")
        probe.listen(reply_to)
        request = codec.encode(DevicesRequest(MSISDN).to_wire())
        sent = probe.send(topics.app_requests("care"), request, response_topic=reply_to)
        got = probe.next(timeout=10)
        assert got.correlation == sent and got.decoded()["status"] == "ok"
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        with SqliteStore(db) as store:
            assert [e for e in store.audit() if e.action == "devices"] == []
        # The same member comes back (its persistent session kept the request).
        bridges.start("one")
        again = probe.next(timeout=15)
        assert again.correlation == sent
        with SqliteStore(db) as store:
            assert wait_until(lambda: [e.actor for e in store.audit()
                                       if e.action == "devices"] == ["app:care"], 10)
        time.sleep(0.2)

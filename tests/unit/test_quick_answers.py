"""Queries answered on the network thread (broker_bridge.quick): a kept answer goes out as
the full path would send it, with its audit entry handed over first; anything the full
path must see (a foreign Response Topic, an unknown number, another request, a stale
answer) is left to it; an app over its share hears ``busy``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker_bridge.auditing import AuditWriter
from broker_bridge.handling import Counters, MessageHandler
from broker_bridge.health import StoreHealth
from broker_bridge.limits import AppLimiter
from broker_bridge.publishing import Publisher
from broker_bridge.quick import AppRoute, QuickAnswers
from broker_bridge.registry import Registry
from broker_bridge.registry.freshness import KnownVersions
from broker_bridge.storage.sqlite import SqliteStore
from mps_wire.codec import decode, encode
from mps_wire.errors import ErrorCode
from mps_wire.topics import Topics
from tests.helpers import LENA_MSISDN, PAUL_MSISDN, make_device, paul_and_apps

TOPICS = Topics()


@dataclass
class Sent:
    rc: int = 0
    mid: int = 0


@dataclass
class FakeClient:
    """What the quick path asks of paho: publish and ack."""

    published: list[tuple[str, bytes, int, bytes]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                properties: Any = None) -> Sent:
        self.published.append((topic, payload, qos, properties.pack() if properties else b""))
        return Sent(0, len(self.published))

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


@dataclass
class Quick:
    answers: QuickAnswers
    store: SqliteStore
    registry: Registry
    audits: AuditWriter
    counters: Counters
    acks: FakeClient  # the audit writer's: what it acknowledged


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Quick]:
    with SqliteStore(tmp_path / "registry.db") as store:
        paul_and_apps(store)
        registry = Registry(store)
        registry.warm_reads()
        counters = Counters()
        audits = AuditWriter(store, linger=0.3)  # nothing written while the test looks
        answers = QuickAnswers(MessageHandler(TOPICS, registry), registry,
                               AppLimiter(rate=1, burst=3), audits,
                               Publisher(TOPICS, registry, counters), counters, StoreHealth())
        known = KnownVersions.open(store)
        assert known is not None
        answers.reader, answers.known = known.read, known
        acks = FakeClient()
        audits.start(acks, known.watch)  # type: ignore[arg-type]
        try:
            yield Quick(answers, store, registry, audits, counters, acks)
        finally:
            audits.stop()
            known.close()


def _request(payload: dict[str, Any], *, app: str = "care", reply_to: str | None = None,
             mid: int = 7) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid, TOPICS.app_requests(app).encode())
    msg.payload = encode(payload)
    msg.qos = 1
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_to or TOPICS.app_replies(app)
    props.CorrelationData = b"corr-7"
    msg.properties = props
    return msg


def _devices(msisdn: str = PAUL_MSISDN) -> dict[str, Any]:
    return {"op": "devices", "msisdn": msisdn}


def test_a_kept_answer_goes_out_with_the_correlation_data_after_its_audit_entry(
        quick: Quick) -> None:
    client = FakeClient()
    assert quick.answers.take(client, _request(_devices()))  # type: ignore[arg-type]
    [(topic, payload, qos, props)] = client.published
    assert topic == TOPICS.app_replies("care") and qos == 1
    assert props.endswith(b"corr-7")
    reply = decode(payload)
    assert reply["status"] == "ok" and len(reply["devices"]) == 4
    assert quick.counters.handled == 1
    assert not quick.acks.acked  # acknowledged once its audit entry is written
    quick.audits.stop()
    assert quick.acks.acked == [7]
    [entry] = [e for e in quick.store.audit(app_id="care") if e.action == "devices"]
    assert entry.actor == "app:care" and entry.subject == PAUL_MSISDN
    assert entry.outcome == "ok" and entry.detail["devices"] == 4


def test_the_audit_writer_keeps_what_it_acknowledges_not_the_message(quick: Quick) -> None:
    # Held for the batch's linger, messages would outlive the collector's young
    # generations at every request; the packet id and QoS are all an acknowledgement needs.
    msg = _request(_devices(), mid=9)
    held = sys.getrefcount(msg)
    assert quick.answers.take(FakeClient(), msg)  # type: ignore[arg-type]
    assert sys.getrefcount(msg) == held
    quick.audits.stop()
    assert quick.acks.acked == [9]


@pytest.mark.parametrize("case", ["foreign-reply-topic", "reserved-leaf", "other-request",
                                  "unknown-number", "not-an-app"])
def test_what_the_full_path_must_see_is_left_to_it(quick: Quick, case: str) -> None:
    client = FakeClient()
    msg = {
        "foreign-reply-topic": lambda: _request(_devices(), reply_to=TOPICS.app_replies("coach")),
        "reserved-leaf": lambda: _request(_devices(), reply_to=TOPICS.app_events("care")),
        "other-request": lambda: _request({"op": "pair", "msisdn": PAUL_MSISDN,
                                           "purpose": "support"}),
        "unknown-number": lambda: _request(_devices("+4915100000000")),
        "not-an-app": lambda: _request(_devices()),
    }[case]()
    if case == "not-an-app":
        msg.topic = TOPICS.user_requests("C-PAUL").encode()  # type: ignore[misc]
    assert not quick.answers.take(client, msg)  # type: ignore[arg-type]
    assert not client.published and quick.counters.handled == 0


def test_a_change_committed_elsewhere_is_never_answered_from_memory(quick: Quick) -> None:
    client = FakeClient()
    assert quick.answers.take(client, _request(_devices(LENA_MSISDN)))  # type: ignore[arg-type]
    with SqliteStore(quick.store.path) as other:
        other.register_device(make_device(5))  # another process's commit
    assert not quick.answers.take(client, _request(_devices()))  # type: ignore[arg-type]
    assert len(client.published) == 1


def test_an_app_over_its_share_hears_busy_and_is_acknowledged_at_once(quick: Quick) -> None:
    client = FakeClient()
    for mid in range(1, 4):
        assert quick.answers.take(client, _request(_devices(), mid=mid))  # type: ignore[arg-type]
    assert quick.answers.take(client, _request(_devices(), mid=4))  # type: ignore[arg-type]
    assert client.acked == [4]
    assert decode(client.published[-1][1])["code"] == "busy"
    assert quick.counters.snapshot().error_count(ErrorCode.BUSY) == 1
    # Over its share with a foreign Response Topic: acknowledged, not answered there.
    assert quick.answers.take(client, _request(  # type: ignore[arg-type]
        _devices(), mid=5, reply_to=TOPICS.app_replies("coach")))
    assert client.acked == [4, 5] and len(client.published) == 4


def test_a_route_checks_each_response_topic_once_and_forgets_beyond_its_bound() -> None:
    route = AppRoute("care", TOPICS.app_namespace("care"))
    assert route.actor == "app:care"
    assert route.answers_to(TOPICS.app_replies("care"))
    assert not route.answers_to(TOPICS.app_replies("coach"))
    assert not route.answers_to(TOPICS.app_namespace("care") + "x/#")
    assert route.replies == {TOPICS.app_replies("care"): True,
                             TOPICS.app_replies("coach"): False,
                             TOPICS.app_namespace("care") + "x/#": False}

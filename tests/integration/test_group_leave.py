"""A registry member that stops leaves its group first: what arrives afterwards goes to the
other members at once, none of it waits in the stopped member's session. And a member
rejoins a broker back from an outage within seconds.

MQTT v5 section 3.10.4: once the Server has sent UNSUBACK it adds no new messages for the
removed subscription; section 4.8.2: a shared subscription's messages go to its members.
"""

from __future__ import annotations

import contextlib
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.service import RECONNECT_MAX, Bridge
from broker_bridge.storage import SqliteStore
from mps_testbed.stack import Mosquitto
from mps_wire import codec
from mps_wire.topics import Topics
from tests.helpers import MqttProbe, make_device, paul_and_apps, running_bridge, wait_until


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=0)
        yield s


def register_all(probe: MqttProbe, topics: Topics, numbers: range) -> dict[bytes, Any]:
    sent = {}
    probe.listen(f"{topics.prefix}/devices/+/reply")
    for n in numbers:
        info = make_device(n)
        sent[probe.send(topics.device_register(info.eid), codec.encode(info.to_wire()),
                        response_topic=topics.device_reply(info.eid))] = n
    return sent


def test_a_stopped_member_leaves_its_group_and_nothing_waits_for_it(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics, probe: MqttProbe) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {"group": group}
    # Both with persistent sessions: a member that merely disconnected would keep its share.
    with running_bridge(store, mosquitto.url, topics, client_id=f"{group}-two",
                        **options) as two:
        one = Bridge(store, two.broker, topics=topics, client_id=f"{group}-one", **options)
        one.start()
        one.stop()
        sent = register_all(probe, topics, range(1, 7))
        got = {}
        deadline = time.monotonic() + 5
        while len(got) < len(sent) and time.monotonic() < deadline:
            reply = probe.next(timeout=5)
            got[reply.correlation] = reply.decoded()
        assert set(got) == set(sent)
        assert {r["result"] for r in got.values()} == {"registered"}
        assert two.stats.received == len(sent)
        assert one.stats.received == 0


def test_a_member_rejoins_a_broker_back_from_an_outage_within_seconds(
        store: SqliteStore, tmp_path: Path, topics: Topics) -> None:
    with Mosquitto(workdir=tmp_path / "broker") as broker, \
            running_bridge(store, broker.url, topics, client_id="rejoin"):
        broker.stop()
        time.sleep(2 * RECONNECT_MAX + 2)  # paho alone would wait 8 s for its next try here
        broker.start()
        back = time.monotonic()
        with MqttProbe(broker.url) as probe:
            info = make_device(1)
            probe.listen(topics.device_reply(info.eid))
            reply = None
            while reply is None and time.monotonic() - back < 30:
                # As a device does: sent again until answered (a message that arrives
                # before the registry has subscribed again has nobody to go to).
                probe.send(topics.device_register(info.eid), codec.encode(info.to_wire()),
                           response_topic=topics.device_reply(info.eid))
                with contextlib.suppress(queue.Empty):
                    reply = probe.next(timeout=0.5).decoded()
        assert reply is not None and reply["result"] == "registered"
        assert time.monotonic() - back < RECONNECT_MAX + 2


def test_an_app_over_its_share_is_told_busy_and_another_app_is_served(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics, probe: MqttProbe) -> None:
    """A flood is refused at once (busy, once and then every 256th) and acknowledged, so
    that it is drained; the refusals are audited in sum; another app is answered."""
    from mps_wire.messages import PairRequest
    from tests.helpers import PAUL_MSISDN

    assert bridge_registry(store).app_request(
        "care", PairRequest(PAUL_MSISDN, "support")).reply.is_ok
    with running_bridge(store, mosquitto.url, topics, app_rate=0.001, app_burst=5) as bridge:
        replies = topics.app_replies("care")
        probe.listen(replies)
        for _ in range(300):
            probe.send(topics.app_requests("care"), codec.encode(
                {"op": "devices", "msisdn": PAUL_MSISDN}), response_topic=replies)
        answers = []
        with contextlib.suppress(queue.Empty):
            while True:
                answers.append(probe.next(timeout=1.0).decoded())
        busy = [a for a in answers if a.get("code") == "busy"]
        assert len([a for a in answers if a.get("status") == "ok"]) == 5  # its share
        assert 1 <= len(busy) <= 30  # told, but not 295 times
        assert bridge.stats.received == 300

        def refused() -> int:
            return sum(e.detail.get("refused", 0) for e in store.audit()
                       if e.outcome == "busy" and e.app_id == "care")

        assert wait_until(lambda: refused() == 295)
        # Another app is answered as ever (here: not paired yet).
        probe.listen(topics.app_replies("coach"))
        reply = probe.request(topics.app_requests("coach"), codec.encode(
            {"op": "devices", "msisdn": PAUL_MSISDN}), topics.app_replies("coach"))
        assert reply.get("code") != "busy" and reply["status"] == "denied"


def bridge_registry(store: SqliteStore) -> Any:
    from broker_bridge.registry import Registry

    return Registry(store)

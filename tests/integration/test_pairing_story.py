"""Figures 3 and 4 end to end over a real Mosquitto with the in-process bridge: Paul's four
devices register, a health app pairs with his number, he approves on the consent topic,
the app sees all four; his new tennis racket registers and the app is told without asking
again; an app of lower trust is refused, a partner sees more."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from broker_bridge.storage import SqliteStore
from mps_testbed.stack import Mosquitto
from mps_testbed.story import StoryApps, StoryError, run_story, verify_story
from mps_wire import codec
from mps_wire.messages import DeviceInfo, EventKind, ModelInfo, Reason
from mps_wire.topics import Topics
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    MqttProbe,
    make_device,
    paul_and_apps,
    random_topics,
    running_bridge,
)

APPS = StoryApps(health="health", lower="tracker", partner="care")
RACKET = replace(make_device(5), model=ModelInfo("Babolat", "Play Pure Drive", "2.1"),
                 capabilities=("lte", "motion", "impact"), ip=("10.20.0.5",))


@pytest.fixture
def topics() -> Topics:
    return random_topics()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=0)  # Paul's devices register below, over MQTT
        yield s


def register(probe: MqttProbe, topics: Topics, info: DeviceInfo) -> str:
    reply_topic = topics.device_reply(info.eid)
    probe.listen(reply_topic)
    reply = probe.request(topics.device_register(info.eid), codec.encode(info.to_wire()),
                          reply_topic)
    assert reply["contract"] == PAUL
    return str(reply["result"])


def test_the_story_of_figures_3_and_4(store: SqliteStore, mosquitto: Mosquitto,
                                      topics: Topics) -> None:
    lines: list[str] = []
    with running_bridge(store, mosquitto.url, topics), MqttProbe(mosquitto.url) as probe:
        for n in range(1, 5):
            assert register(probe, topics, make_device(n)) == "registered"
        result = run_story(mosquitto.url, msisdn=PAUL_MSISDN, contract=PAUL,
                           new_device=lambda: register(probe, topics, RACKET),
                           topics=topics, apps=APPS, say=lines.append, timeout=10)
    assert verify_story(result, devices=4) == []
    assert result.prompt is not None and result.prompt.app == "health"
    # The health app saw all four, pseudonymously, then the racket on its own.
    assert len(result.granted) == 4
    assert {d.model.model for d in result.granted} == {"EC25"}
    added = result.added
    assert added is not None and added.kind is EventKind.DEVICE_ADDED
    assert added.device is not None and added.device.model.model == "Play Pure Drive"
    assert added.device.capabilities == ("lte", "motion", "impact")
    assert added.device.eid is None and added.device.device_id not in {
        d.device_id for d in result.granted}
    # Lower trust: refused, nothing seen. The partner: everything, at once.
    assert result.lower is not None and getattr(result.lower, "reason", None) == \
        Reason.UNTRUSTED
    assert result.partner is not None and result.partner.consent == "standing"
    assert {d.eid for d in result.partner.devices} == {
        *(make_device(n).eid for n in range(1, 5)), RACKET.eid}
    assert lines and any("without asking again" in line for line in lines)
    # Paul's consent is on record.
    decisions = [(e.actor, e.outcome) for e in store.audit(contract_id=PAUL)
                 if e.action == "consent"]
    assert decisions == [(f"user:{PAUL}", "approve")]


def test_the_story_reports_a_missing_announcement(store: SqliteStore, mosquitto: Mosquitto,
                                                  topics: Topics) -> None:
    with running_bridge(store, mosquitto.url, topics), MqttProbe(mosquitto.url) as probe:
        register(probe, topics, make_device(1))
        with pytest.raises(StoryError, match="not told of the new device") as caught:
            run_story(mosquitto.url, msisdn=PAUL_MSISDN, contract=PAUL,
                      new_device=lambda: None, topics=topics, apps=APPS,
                      say=lambda _line: None, timeout=0.5)
    assert len(caught.value.result.granted) == 1
    assert verify_story(caught.value.result, devices=1) == [
        "the health app was not told of the new device"]

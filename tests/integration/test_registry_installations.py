"""The SM-DP+'s installation results over a real Mosquitto: a profile is bound to the eUICC
that installed it, and only that eUICC may register with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from lpa_emulator.smdp.report import InstallationReport
from mps_wire import codec
from mps_wire.errors import ErrorCode
from mps_wire.messages import DeviceInfo
from mps_wire.topics import Topics
from tests.helpers import (
    PAUL,
    MqttProbe,
    iccid_for,
    imsi_for,
    make_device,
    operator_binds,
    paul_and_apps,
    table_state,
    wait_until,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=0, bind=False)
        operator_binds(s, range(2, 7))  # profile 1 waits for the SM-DP+'s report
        yield s


def report(eid: str, sub: int, *, transaction: str, result: str = "installed",
           ts: int = 1_700_000_000_000) -> InstallationReport:
    """A report as the SM-DP+ makes it (its own class), with stand-in signature bytes."""
    return InstallationReport(
        eid=eid, iccid=iccid_for(sub), imsi=imsi_for(sub), msisdn=None, result=result,
        transaction=transaction, matching_id="MATCH", smdp="smdp.operator.example", ts=ts,
        pir=b"\x30\x03\x02\x01\x00", euicc_certificate=b"\x30\x00",
        eum_certificate=b"\x30\x00", reason=None if result == "installed" else "8")


def publish(probe: MqttProbe, topics: Topics, rep: InstallationReport, seq: int) -> None:
    # As the SM-DP+ publishes: QoS 1 on the operator topic, no Response Topic.
    probe.client.publish(topics.operator("installations"), codec.encode(rep.to_wire(seq)),
                         qos=1).wait_for_publish(5)


def register(probe: MqttProbe, topics: Topics, info: DeviceInfo) -> dict[str, Any]:
    reply_topic = topics.device_reply(info.eid)
    probe.listen(reply_topic)
    return probe.request(topics.device_register(info.eid), codec.encode(info.to_wire()),
                         reply_topic)


def test_only_the_installing_euicc_registers_with_the_profile(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    holder, impostor = make_device(1), make_device(2, sub=1)  # both claim profile 1
    publish(probe, topics, report(holder.eid, 1, transaction="tx-1"), seq=1)
    assert wait_until(lambda: store.installation(iccid_for(1)) is not None)

    before = table_state(store)
    refused = register(probe, topics, impostor)
    assert (refused["status"], refused["code"]) == ("denied", "denied")
    assert "installed on another eUICC" in refused["message"]
    assert table_state(store) == before
    assert register(probe, topics, holder)["result"] == "registered"

    # The same report again (the SM-DP+ retries after a crash) changes nothing.
    entries = len(store.audit())
    publish(probe, topics, report(holder.eid, 1, transaction="tx-1"), seq=1)
    assert register(probe, topics, make_device(3))["result"] == "registered"  # served after
    assert len([e for e in store.audit() if e.action == "installation"]) == 1
    assert len(store.audit()) == entries + 1  # only device 3's registration

    # The profile downloaded again onto another eUICC: the binding moves with it.
    publish(probe, topics, report(impostor.eid, 1, transaction="tx-2",
                                  ts=1_700_000_100_000), seq=2)
    assert wait_until(lambda: store.installation(iccid_for(1)).eid == impostor.eid)  # type: ignore[union-attr]
    installed = [e for e in store.audit() if e.action == "installation"][-1]
    assert installed.detail["devices_removed"] == [holder.eid]  # one profile, one device
    assert installed.contract_id == PAUL
    assert store.device(holder.eid) is None


def test_failed_and_malformed_reports(bridge: Bridge, probe: MqttProbe, topics: Topics,
                                      store: SqliteStore) -> None:
    publish(probe, topics, report(make_device(1).eid, 1, transaction="tx-9",
                                  result="failed"), seq=7)
    assert wait_until(lambda: any(e.action == "installation" for e in store.audit()))
    failed = next(e for e in store.audit() if e.action == "installation")
    assert (failed.outcome, failed.detail["reason"]) == ("failed", "8")
    assert store.installation(iccid_for(1)) is None  # nothing bound
    bad = report(make_device(1).eid, 1, transaction="tx-10").to_wire(8)
    bad["eid"] = "123"
    probe.client.publish(topics.operator("installations"), codec.encode(bad), qos=1)
    refused = register(probe, topics, make_device(1))  # served after; still unproven
    assert (refused["status"], refused["code"]) == ("denied", "denied")
    assert register(probe, topics, make_device(2))["result"] == "registered"
    assert bridge.stats.error_count(ErrorCode.INVALID_IDENTIFIER) == 1

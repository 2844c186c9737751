"""The registry hears of an eIM-signed delete (SGP.32 3.4.3 Delete Profile, run as a PSMO of
an eUICC package, 5.9.1 LoadEuiccPackage): a device that booted headless through the eIM
and registered loses its profile on the eIM's order, the eIM reports the verified result
on ``operator/profiles``, the registry unbinds the profile from the eUICC, and the paired
app sees the device go. Real Mosquitto, real HTTPS for the eIM and the SM-DP+, the
software eUICC in-process behind the agent's card link."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.activation import ActivationPlan, ensure_operational_profile
from agent.card.emu import EmuCardLink
from agent.ipa import daemon_round
from broker_bridge import cli as bridge_cli
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from lpa_emulator.eim import reports
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.report import MqttReportPublisher
from mps_sdk.client import PairingClient
from mps_testbed.stack import Mosquitto
from mps_wire import codec
from mps_wire.messages import EventKind, Reason
from mps_wire.records import Event
from mps_wire.topics import Topics
from tests.fixtures.eim import ServedEim
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    MqttProbe,
    iccid_for,
    imsi_for,
    make_device,
    paul_and_apps,
    wait_until,
)
from tests.integration.test_eim_firstboot import EID, empty_card
from tests.rsp_support import Served


@pytest.fixture
def registry_db(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
def store(registry_db: Path) -> Iterator[SqliteStore]:
    # Paul's subscriptions, none bound: subscription 1 waits for the SM-DP+'s report.
    with SqliteStore(registry_db) as s:
        paul_and_apps(s, devices=0, bind=False)
        yield s


def next_event(probe: MqttProbe) -> Event:
    while True:
        got = probe.next(10)
        if got.topic.endswith("/events"):
            return Event.from_wire(got.decoded())


def show(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = bridge_cli.main(["devices", "show", EID, "--db", str(db), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_an_eim_signed_delete_reaches_the_registry_and_the_app(
        tmp_path: Path, eim_smdp: Served, eim_server: ServedEim, bridge: Bridge,
        mosquitto: Mosquitto, probe: MqttProbe, topics: Topics, store: SqliteStore,
        registry_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served, eim = eim_smdp, eim_server.eim
    publisher = MqttReportPublisher(eim.store, mosquitto.url, topics=topics,
                                    kind=reports.REPORT_KIND)
    eim.on_report = publisher.wake
    publisher.start()
    link = EmuCardLink(empty_card(tmp_path / "card.json", eim))
    link.connect()
    try:
        with PairingClient(mosquitto.url, "care", topics=topics, timeout=5) as care:
            # Listen first and take the pairing's own event, so that it cannot arrive
            # between a later request and its reply.
            probe.listen(topics.app_events("care"))
            assert care.pair(PAUL_MSISDN, "support").active
            assert next_event(probe).kind is EventKind.PAIRING_GRANTED

            # First boot through the eIM; the SM-DP+'s installation report binds EID and
            # ICCID, and the device registers with its new profile.
            iccid = iccid_for(1)
            order = served.store.add(iccid=iccid, imsi=imsi_for(1), eid=EID)
            eim.order_download(EID, f"LPA:1${served.address}${order.matching_id}")
            plan = ActivationPlan(ca_file=served.ca)
            assert ensure_operational_profile(link, plan).action == "downloaded"
            (installed,) = served.reports.items
            probe.client.publish(topics.operator("installations"),
                                 codec.encode(installed.to_wire(1)), qos=1)
            assert wait_until(lambda: store.installation(iccid) is not None)
            device = make_device(1, eid=EID)
            reply_topic = topics.device_reply(EID)
            probe.listen(reply_topic)
            answer = probe.request(topics.device_register(EID),
                                   codec.encode(device.to_wire()), reply_topic, timeout=10)
            assert answer["result"] == "registered"
            added = next_event(probe)
            assert added.kind is EventKind.DEVICE_ADDED and added.device is not None
            code, shown = show(registry_db, capsys)
            assert code == 0 and shown["device"] is not None
            assert [p["iccid"] for p in shown["profiles"]] == [iccid]  # type: ignore[union-attr]

            # The eIM orders disable and delete in one signed package; the daemon's round
            # runs it, the eIM verifies the eUICC's signed result and reports both.
            eim.queue_operations(EID, [{"kind": "disable", "iccid": iccid},
                                       {"kind": "delete", "iccid": iccid}])
            (outcome,) = daemon_round(link, plan)
            assert outcome.detail["operations"] == [["disable", "ok"], ["delete", "ok"]]
            removed = next_event(probe)
            assert (removed.kind, removed.reason, removed.contract) == (
                EventKind.DEVICE_REMOVED, Reason.SUBSCRIPTION_REMOVED, PAUL)
            # The same device (the app knows it by its own pseudonymous id).
            assert removed.device is not None
            assert removed.device.device_id == added.device.device_id
            assert wait_until(lambda: any(e.action == "profile" and e.outcome == "deleted"
                                          for e in store.audit()))
    finally:
        link.close()
        publisher.stop()
    assert CardState.load(tmp_path / "card.json").profiles == []
    assert store.device(EID) is None and store.installation(iccid) is None
    audits = [(e.outcome, e.subject, e.detail["change"]) for e in store.audit()
              if e.action == "profile"]
    assert audits == [("disabled", iccid, "unchanged"), ("deleted", iccid, "removed")]
    deleted = next(e for e in store.audit() if e.outcome == "deleted")
    assert deleted.actor == "operator:eim" and deleted.contract_id == PAUL
    assert deleted.detail["devices_removed"] == [EID]
    assert publisher.delivered == 2 and eim.store.pending_reports() == []
    code, shown = show(registry_db, capsys)
    assert (code, shown["device"], shown["profiles"]) == (1, None, [])

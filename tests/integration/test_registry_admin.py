"""The operator's side over a real Mosquitto: incremental operator data (command and
operator topic), number routing, apps and their trust levels, and the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.cli import main as bridge_main
from broker_bridge.model import PairingState, TrustLevel
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_sdk.client import PairingClient
from mps_sdk.errors import DeniedError, RedirectError
from mps_testbed.stack import Mosquitto
from mps_wire import codec
from mps_wire.messages import EventKind, Reason
from mps_wire.topics import Topics
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    MqttProbe,
    iccid_for,
    imsi_for,
    make_device,
    table_state,
)

ROOT = Path(__file__).parents[2]


@pytest.fixture
def care(bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> Iterator[PairingClient]:
    with PairingClient(mosquitto.url, "care", topics=topics, timeout=5) as c:
        assert c.pair(PAUL_MSISDN, "support").active
        yield c


def mps_bridge(capsys: pytest.CaptureFixture[str], db: Path, *args: str
               ) -> tuple[int, Any]:
    """Run ``mps-bridge ARGS --db DB --json`` in-process; (status, parsed output)."""
    status = bridge_main([*args, "--db", str(db), "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out) if out.strip() else None


def operator(probe: MqttProbe, topics: Topics, **msg: Any) -> dict[str, Any]:
    """Send an operator request on the operator topic as the CRM would."""
    replies = topics.operator_replies("crm")
    probe.listen(replies)
    return probe.request(topics.operator_requests("crm"), codec.encode(msg), replies)


def test_the_command_changes_operator_data_and_paired_apps_hear_of_it(
        care: PairingClient, db: Path, store: SqliteStore,
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out = mps_bridge(capsys, db, "operator", "remove-subscription",
                             "--iccid", iccid_for(2))
    assert (status, out["status"], out["devices_removed"]) == (0, "ok", 1)
    # The bridge publishes what the command stored: the app learns the device left.
    removed = next(care.events(1, timeout=2))
    assert (removed.seq, removed.kind, removed.reason) == (
        2, EventKind.DEVICE_REMOVED, Reason.SUBSCRIPTION_REMOVED)
    assert removed.device is not None and removed.device.eid == make_device(2).eid

    assert mps_bridge(capsys, db, "operator", "add-contract", "--contract", "C-NEW",
                      "--holder", "Nina", "--msisdn", "+4915100000042")[0] == 0
    status, out = mps_bridge(capsys, db, "operator", "add-subscription", "--iccid",
                             iccid_for(20), "--imsi", imsi_for(20), "--contract", "C-NEW")
    assert (status, out["change"]) == (0, "added")
    assert store.subscription_by_iccid(iccid_for(20)) is not None
    assert mps_bridge(capsys, db, "operator", "add-number", "--msisdn", "+4915100000043",
                      "--contract", "C-NEW")[0] == 0
    assert store.numbers_of_contract("C-NEW") == ["+4915100000042", "+4915100000043"]
    assert mps_bridge(capsys, db, "operator", "remove-number", "--msisdn",
                      "+4915100000043")[0] == 0
    status, shown = mps_bridge(capsys, db, "operator", "show", "--contract", "C-NEW")
    assert (status, shown["msisdns"]) == (0, ["+4915100000042"])
    assert [s["iccid"] for s in shown["subscriptions"]] == [iccid_for(20)]

    # Refusals: usage errors for bad identifiers, failures for unknown things.
    before = table_state(store)
    assert mps_bridge(capsys, db, "operator", "add-subscription", "--iccid", "8949000",
                      "--imsi", imsi_for(21), "--contract", "C-NEW")[0] == 2
    assert mps_bridge(capsys, db, "operator", "add-number", "--msisdn", "+4915100000044",
                      "--contract", "C-NONE")[0] == 1
    assert mps_bridge(capsys, db, "operator", "remove-subscription", "--iccid",
                      iccid_for(77))[0] == 1
    assert mps_bridge(capsys, db, "operator", "show", "--contract", "C-NONE")[0] == 1
    assert table_state(store) == before


def test_number_porting_and_routing(
        care: PairingClient, db: Path, store: SqliteStore, probe_topics: tuple[MqttProbe,
                                                                              Topics],
        capsys: pytest.CaptureFixture[str]) -> None:
    probe, topics = probe_topics
    status, out = mps_bridge(capsys, db, "operator", "add-operator", "--id", "other",
                             "--name", "Other Mobile", "--registry",
                             "mqtts://registry.other.example:8883", "--number-prefix",
                             "+49160")
    assert (status, out["change"]) == (0, "added")
    with pytest.raises(RedirectError) as caught:
        care.pair("+4916011112222", "support")
    assert caught.value.registry == "mqtts://registry.other.example:8883"
    # A number of another operator's range ported in to Paul is ours again.
    assert operator(probe, topics, op="port-in", msisdn="+4916011112222",
                    contract=PAUL)["status"] == "ok"
    assert care.contract_devices("+4916011112222").contract == PAUL
    # Paul's number ported out: the registry now redirects for it.
    reply = operator(probe, topics, op="port-out", msisdn="+4916011112222", operator="other")
    assert (reply["status"], reply["contract"]) == ("ok", PAUL)
    with pytest.raises(RedirectError):
        care.devices("+4916011112222")
    assert store.ported_numbers() == [("+4916011112222", "other")]
    # The pairing itself is with the contract, not the number: it goes on.
    assert len(care.devices(PAUL_MSISDN)) == 4


@pytest.fixture
def probe_topics(mosquitto: Mosquitto, topics: Topics) -> Iterator[tuple[MqttProbe, Topics]]:
    with MqttProbe(mosquitto.url) as probe:
        yield probe, topics


def test_the_operator_topic_is_validated_and_transactional(
        care: PairingClient, store: SqliteStore, probe_topics: tuple[MqttProbe, Topics]
        ) -> None:
    probe, topics = probe_topics
    reply = operator(probe, topics, op="add-contract", contract="C-9", holder="Nina",
                     msisdns=["+4915100000099"])
    assert (reply["status"], reply["change"]) == ("ok", "added")
    reply = operator(probe, topics, op="add-subscription", iccid=iccid_for(30),
                     imsi=imsi_for(30), msisdn="+4915100000098", contract="C-9")
    assert reply["status"] == "ok"
    assert store.contract_by_msisdn("+4915100000098").id == "C-9"  # type: ignore[union-attr]
    # Moving a subscription to another contract moves its device: Paul's apps hear of it.
    reply = operator(probe, topics, op="add-subscription", iccid=iccid_for(4),
                     imsi=imsi_for(4), contract="C-9")
    assert (reply["status"], reply["change"]) == ("ok", "updated")
    event = next(care.events(1, timeout=2))
    assert (event.kind, event.reason) == (EventKind.DEVICE_REMOVED, Reason.LEFT_CONTRACT)

    before = table_state(store)
    for msg, code in (
            ({"op": "add-subscription", "iccid": iccid_for(31), "imsi": imsi_for(31),
              "contract": "C-NONE"}, "not-found"),
            ({"op": "add-subscription", "iccid": "8949", "imsi": imsi_for(31),
              "contract": "C-9"}, "invalid-identifier"),
            ({"op": "add-contract", "contract": "C-10"}, "bad-request"),
            ({"op": "add-contract", "contract": "a/b", "holder": "x"}, "bad-request"),
            ({"op": "remove-number", "msisdn": "+4915100000001", "extra": 1}, "bad-request"),
            ({"op": "port-out", "msisdn": PAUL_MSISDN, "operator": "nobody"}, "not-found"),
            ({"op": "remove-number", "msisdn": "+4915100000055"}, "not-found"),
            ({"op": "teleport"}, "bad-request")):
        reply = operator(probe, topics, **msg)
        assert (reply["status"], reply["code"]) == ("error", code), msg
    assert table_state(store) == before
    actions = [(e.actor, e.action, e.outcome) for e in store.audit()
               if e.actor == "operator:crm"]
    assert ("operator:crm", "operator:add-contract", "ok") in actions
    assert ("operator:crm", "operator:port-out", "not-found") in actions


def test_apps_command_and_trust_changes(
        care: PairingClient, bridge: Bridge, mosquitto: Mosquitto, topics: Topics, db: Path,
        store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    status, app = mps_bridge(capsys, db, "apps", "add", "maps", "--name", "Maps",
                             "--trust", "verified", "--purpose", "navigation")
    assert (status, app["change"], app["standing_consent"]) == (0, "added", False)
    status, apps = mps_bridge(capsys, db, "apps", "list")
    assert {a["app"]: a["trust"] for a in apps}["maps"] == "verified"
    assert {a["app"]: a["standing_consent"] for a in apps}["care"] is True
    # Standing consent is for partners only; unknown levels are usage errors.
    assert bridge_main(["apps", "add", "x", "--name", "X", "--trust", "verified",
                        "--standing-consent", "--db", str(db)]) == 2
    assert bridge_main(["apps", "add", "x", "--name", "X", "--trust", "root", "--db",
                        str(db)]) == 2
    capsys.readouterr()

    # A partner losing its standing consent loses the pairings that rested on it.
    status, out = mps_bridge(capsys, db, "apps", "set-trust", "care", "verified")
    assert (status, out["trust"], out["pairings_ended"]) == (0, "verified", 1)
    ended = next(care.events(1, timeout=2))
    assert (ended.seq, ended.kind, ended.reason) == (2, EventKind.PAIRING_ENDED,
                                                     Reason.TRUST_CHANGED)
    with pytest.raises(DeniedError):
        care.devices(PAUL_MSISDN)
    assert store.app("care").trust is TrustLevel.VERIFIED  # type: ignore[union-attr]

    # Removing an app ends its pairings (here a pending one) and forgets the app.
    with PairingClient(mosquitto.url, "coach", topics=topics, timeout=5) as coach:
        pending = coach.pair(PAUL_MSISDN, "fitness")
        status, out = mps_bridge(capsys, db, "apps", "remove", "coach")
        assert (status, out["change"]) == (0, "removed")
        assert store.pairing(pending.pairing).state is PairingState.ENDED  # type: ignore[union-attr]
        with pytest.raises(DeniedError) as caught:
            coach.pair(PAUL_MSISDN, "fitness")
        assert caught.value.reason == Reason.UNKNOWN_APP
    assert mps_bridge(capsys, db, "apps", "remove", "coach")[0] == 1
    assert mps_bridge(capsys, db, "apps", "set-trust", "nobody", "partner")[0] == 1


def test_the_audit_command(care: PairingClient, db: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    care.devices(PAUL_MSISDN)
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do
        care.pair("+4915100000077", "support")
    status, entries = mps_bridge(capsys, db, "audit", "--app", "care")
    assert status == 0
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("pair", "ok"), ("devices", "ok"), ("pair", "not-found")]
    assert entries[0]["contract"] == PAUL and entries[0]["actor"] == "app:care"
    assert entries[0]["detail"]["consent"] == "standing"
    status, by_contract = mps_bridge(capsys, db, "audit", "--contract", PAUL, "--limit", "1")
    assert [e["id"] for e in by_contract] == [entries[0]["id"]]
    status, after = mps_bridge(capsys, db, "audit", "--after", str(entries[1]["id"]))
    assert entries[2]["id"] in [e["id"] for e in after]
    # The human table, from the installed module as scripts would run it.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MPS_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "broker_bridge.cli", "audit", "--app", "care",
                           "--db", str(db)], env=env, check=False, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == ["ID", "TIME", "(UTC)", "ACTOR", "ACTION"]
    assert len(lines) == 4 and "app:care" in lines[1] and "pair" in lines[1]

"""The user's choice from the command line: ``mps-user consent approve --devices --fields``
over MQTT, ``mps-bridge consent approve|view --devices --fields`` on the database, and
``mps-bridge devices history --json``; the app sees exactly the choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.cli import main as bridge_main
from broker_bridge.registry import Registry
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_sdk.user_cli import main as user_main
from mps_testbed.stack import Mosquitto
from mps_wire.messages import DevicesRequest, PairRequest
from mps_wire.topics import Topics
from tests.helpers import PAUL, PAUL_MSISDN, make_device, wait_until


def in_process(main: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run a command's main in this process: its exit status and its output (errors
    appended)."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def ask(store: SqliteStore, app: str = "health", purpose: str = "health-monitoring") -> str:
    registry = Registry(store)
    registry.app_request(app, PairRequest(PAUL_MSISDN, purpose))
    (prompt,) = [p for p in registry.portal(PAUL).prompts() if p.app == app]
    return prompt.prompt


def seen(store: SqliteStore, app: str = "health") -> list[dict[str, Any]]:
    reply = Registry(store).app_request(app, DevicesRequest(PAUL_MSISDN)).reply
    return list(reply.body["devices"])


def test_mps_user_approves_a_choice_over_mqtt(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, store: SqliteStore,
        capsys: pytest.CaptureFixture[str]) -> None:
    prompt = ask(store)
    conn = ["--broker", mosquitto.url, "--prefix", topics.prefix, "--contract", PAUL,
            "--timeout", "5"]
    status, out = in_process(user_main, capsys, "consent", "approve", prompt, *conn,
                             "--fields", "ip,imei")
    assert status == 1  # imei is beyond a verified app: refused, still open
    assert "may not be shown imei" in out
    status, out = in_process(user_main, capsys, "consent", "approve", prompt, *conn,
                             "--devices", f"{make_device(2).eid},{make_device(4).eid}",
                             "--fields", "ip", "--json")
    assert status == 0, out
    assert json.loads(out)["decision"] == "approve"
    records = seen(store)
    assert len(records) == 2
    assert all(r["ip"] and r["capabilities"] == [] for r in records)


def test_mps_bridge_consent_approve_and_view_with_a_choice(
        db: Path, store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = ask(store)
    base = ["--db", str(db), "--contract", PAUL, "--json"]
    status, out = in_process(bridge_main, capsys, "consent", "approve", prompt, *base,
                             "--devices", make_device(1).eid, "--fields", "model,presence")
    assert status == 0
    done = json.loads(out)
    assert (done["devices"], done["fields"]) == ([make_device(1).eid], ["model", "presence"])
    assert len(seen(store)) == 1
    status, out = in_process(bridge_main, capsys, "consent", "view", done["pairing"], *base,
                             "--fields", "ip")
    assert (status, json.loads(out)["devices"]) == (0, None)  # every device again
    assert len(seen(store)) == 4
    status, out = in_process(bridge_main, capsys, "consent", "view", done["pairing"], *base,
                             "--fields", "eid")
    assert status == 1
    assert json.loads(out.splitlines()[0])["reason"] == "field-not-allowed"


def test_devices_history_as_json(db: Path, store: SqliteStore,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(store)
    registry.register(make_device(5))
    status, out = in_process(bridge_main, capsys, "devices", "history", make_device(5).eid,
                             "--db", str(db), "--json")
    assert status == 0
    (change,) = json.loads(out)["history"]
    assert (change["source"], change["imei"]) == ("registration", make_device(5).imei)
    status, out = in_process(bridge_main, capsys, "devices", "history", make_device(5).eid,
                             "--db", str(db))
    assert status == 0 and "registration" in out
    assert in_process(bridge_main, capsys, "devices", "history", make_device(9).eid,
                      "--db", str(db))[0] == 1


def test_an_app_shown_presence_hears_a_device_go_offline(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, store: SqliteStore) -> None:
    from agent.publisher import Publisher
    from mps_sdk.client import PairingClient

    registry = Registry(store)
    registry.portal(PAUL).approve(ask(store), devices=[make_device(1).eid],
                                  fields=["model", "presence"])
    with PairingClient(mosquitto.url, "health", topics=topics, timeout=5) as health:
        since = health.newest_seq()
        # The device's agent connects (online) and drops off (its goodbye says offline).
        with Publisher(mosquitto.url, make_device(1).eid, prefix=topics.prefix,
                       presence=True):
            pass
        # Another device's presence is not shown to the app: the user did not choose it.
        with Publisher(mosquitto.url, make_device(2).eid, prefix=topics.prefix,
                       presence=True):
            pass
        states = []
        for event in health.events(since, timeout=3):
            assert event.kind.value == "device-updated" and event.changes == ("presence",)
            assert event.device is not None and event.device.presence is not None
            states.append(event.device.presence.state)
            if len(states) == 2:
                break
    assert states == ["online", "offline"]
    (record,) = seen(store)
    assert record["presence"]["state"] == "offline"
    # Device 2's states were recorded, and never told to the app.
    assert wait_until(lambda: registry.portal(PAUL).devices()[1].online is False, 5)
    updates = [e for e in store.events_since("health", 0) if e.kind.value == "device-updated"]
    assert len(updates) == 2

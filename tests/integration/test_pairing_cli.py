"""``mps-app pair|devices|watch|unpair`` and ``mps-user consent list|approve|deny|withdraw``
against a bridge on a real Mosquitto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.cli import main as bridge_main
from broker_bridge.model import PairingState
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_sdk.app_cli import main as app_main
from mps_sdk.client import PairingClient
from mps_sdk.consent import ConsentClient
from mps_sdk.user_cli import main as user_main
from mps_testbed.stack import Mosquitto
from mps_wire.topics import Topics
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    make_device,
    wait_until,
)

ROOT = Path(__file__).parents[2]


def run(module: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("MPS_CONFIG", None)
    return subprocess.run([sys.executable, "-m", module, *args], env=full_env, check=False,
                          capture_output=True, text=True, timeout=30)


def conn(mosquitto: Mosquitto, topics: Topics, app: str) -> list[str]:
    return ["--broker", mosquitto.url, "--prefix", topics.prefix, "--app-id", app,
            "--timeout", "5"]


def user_conn(mosquitto: Mosquitto, topics: Topics) -> list[str]:
    return ["--broker", mosquitto.url, "--prefix", topics.prefix, "--contract", PAUL,
            "--timeout", "5"]


def in_process(main: Any, capsys: pytest.CaptureFixture[str], *args: str
               ) -> tuple[int, str]:
    status = main(list(args))
    return status, capsys.readouterr().out


def test_pair_approve_watch_devices_unpair(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, store: SqliteStore,
        capsys: pytest.CaptureFixture[str]) -> None:
    app = conn(mosquitto, topics, "health")
    paired = run("mps_sdk.app_cli", "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                 "health-monitoring", *app, "--json")
    assert paired.returncode == 0, paired.stderr
    pending = json.loads(paired.stdout)
    assert pending["state"] == "pending"

    # The user lists the prompt and approves it, over MQTT like any user agent.
    listed = run("mps_sdk.user_cli", "consent", "list", *user_conn(mosquitto, topics),
                 "--json")
    assert listed.returncode == 0, listed.stderr
    prompts = json.loads(listed.stdout)["prompts"]
    assert [(p["app"], p["purpose"]) for p in prompts] == [("health", "health-monitoring")]
    status, out = in_process(user_main, capsys, "consent", "list",
                             *user_conn(mosquitto, topics))
    assert status == 0 and prompts[0]["prompt"] in out and "1 open prompt" in out
    approved = run("mps_sdk.user_cli", "consent", "approve", prompts[0]["prompt"],
                   *user_conn(mosquitto, topics))
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(f"approved prompt {prompts[0]['prompt']}")

    watched = run("mps_sdk.app_cli", "watch", "--count", "1", *app, "--json")
    assert watched.returncode == 0, watched.stderr
    granted = json.loads(watched.stdout.splitlines()[0])
    assert (granted["event"], len(granted["devices"])) == ("pairing-granted", 4)
    assert "cursor 1" in watched.stderr

    status, out = in_process(app_main, capsys, "devices", "--msisdn", PAUL_MSISDN, *app)
    assert status == 0
    lines = out.splitlines()
    assert lines[1].split()[0] == "DEVICE" and len(lines) == 6
    status, out = in_process(app_main, capsys, "watch", "--since", "1", "--idle", "0.3", *app)
    assert (status, out) == (0, "")  # nothing new after the cursor

    status, out = in_process(app_main, capsys, "unpair", "--msisdn", PAUL_MSISDN, *app)
    assert (status, out.strip()) == (0, f"pairing {pending['pairing']} ended")
    status, out = in_process(app_main, capsys, "watch", "--since", "1", "--count", "1",
                             *app)
    assert status == 0 and "pairing-ended" in out and "[unpaired]" in out
    assert store.pairing(pending["pairing"]).state is PairingState.ENDED  # type: ignore[union-attr]


def test_pair_and_wait_while_the_user_approves(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics,
        capsys: pytest.CaptureFixture[str]) -> None:
    def approve() -> None:
        with ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=5) as user:
            user.approve(user.wait_for_prompt(app="health", timeout=5).prompt)

    helper = threading.Thread(target=approve)
    helper.start()
    status, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                             "health-monitoring", "--wait", "5",
                             *conn(mosquitto, topics, "health"))
    helper.join()
    assert status == 0
    assert "pending: waiting" in out and "active (user consent)" in out
    assert out.count("Quectel EC25") == 4


def test_denials_and_usage(bridge: Bridge, mosquitto: Mosquitto, topics: Topics, db: Path,
                           store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                             "fitness", *conn(mosquitto, topics, "tracker"), "--json")
    assert (status, json.loads(out)["reason"]) == (1, "untrusted")
    status, out = in_process(app_main, capsys, "devices", "--msisdn", PAUL_MSISDN,
                             *conn(mosquitto, topics, "health"), "--json")
    assert (status, json.loads(out)["reason"]) == (1, "not-paired")
    assert in_process(app_main, capsys, "pair", "--msisdn", "0151",
                      "--purpose", "x", *conn(mosquitto, topics, "health"))[0] == 2
    assert in_process(app_main, capsys, "unpair", *conn(mosquitto, topics, "health"))[0] == 2
    assert in_process(user_main, capsys, "consent", "approve", "cp-1",
                      *user_conn(mosquitto, topics))[0] == 1
    assert in_process(user_main, capsys, "consent", "list", "--db", str(db),
                      *user_conn(mosquitto, topics))[0] == 2  # the SDK has no --db
    assert in_process(user_main, capsys, "consent", "list")[0] == 2  # no contract

    # The operator answers on the user's behalf, on the database; the bridge tells the app.
    status, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                             "fitness", *conn(mosquitto, topics, "coach"), "--json")
    pairing = json.loads(out)["pairing"]
    status, out = in_process(bridge_main, capsys, "consent", "list", "--db", str(db),
                             "--contract", PAUL, "--json")
    prompt = json.loads(out)["prompts"][0]["prompt"]
    status, out = in_process(bridge_main, capsys, "consent", "deny", prompt, "--db", str(db),
                             "--contract", PAUL, "--json")
    assert (status, json.loads(out)["pairing"]) == (0, pairing)
    status, out = in_process(app_main, capsys, "watch", "--count", "1", "--idle", "3",
                             *conn(mosquitto, topics, "coach"), "--json")
    denied = json.loads(out)
    assert (denied["event"], denied["reason"]) == ("pairing-denied", "user-denied")
    assert store.audit(app_id="coach")[-1].actor == "operator:mps-bridge"
    assert in_process(bridge_main, capsys, "consent", "deny", prompt, "--db", str(db),
                      "--contract", PAUL)[0] == 1  # already answered


def test_withdraw_from_the_user_side(bridge: Bridge, mosquitto: Mosquitto, topics: Topics,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    app = conn(mosquitto, topics, "care")
    status, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                             "support", *app, "--json")
    assert status == 0 and json.loads(out)["state"] == "active"
    status, out = in_process(user_main, capsys, "consent", "withdraw", "--app", "care",
                             *user_conn(mosquitto, topics), "--json")
    assert status == 0 and len(json.loads(out)["ended"]) == 1
    bridge.registry.register(make_device(5))
    status, out = in_process(app_main, capsys, "watch", "--idle", "0.5", *app, "--json")
    kinds = [json.loads(line)["event"] for line in out.splitlines()]
    assert kinds == ["pairing-granted", "pairing-ended"]
    assert in_process(user_main, capsys, "consent", "withdraw", "--app", "care",
                      *user_conn(mosquitto, topics))[0] == 1


def test_the_example_health_app(bridge: Bridge, mosquitto: Mosquitto, topics: Topics,
                                store: SqliteStore) -> None:
    from broker_bridge.model import App, TrustLevel

    store.upsert_app(App("health-app", "Health", TrustLevel.VERIFIED, ("health-monitoring",)))
    # An earlier pairing of the app, granted with 4 devices and ended: history the
    # example must not replay as if it were the pairing it makes now.
    with PairingClient(mosquitto.url, "health-app", topics=topics, timeout=5) as old, \
            ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=5) as user:
        old.pair(PAUL_MSISDN, "health-monitoring")
        user.approve(user.wait_for_prompt(app="health-app", timeout=5).prompt)
        old.unpair(PAUL_MSISDN)
    bridge.registry.register(make_device(5))
    script = ROOT / "examples" / "health_app.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPS_PREFIX": topics.prefix}
    proc = subprocess.Popen([sys.executable, str(script), mosquitto.url, PAUL_MSISDN], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=5) as user:
            user.approve(user.wait_for_prompt(app="health-app", timeout=10).prompt)
            bridge.registry.register(make_device(6))
            assert wait_until(lambda: len(store.events_since("health-app", 0)) >= 4, 5)
            user.withdraw(app="health-app")
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("waiting for the user's consent (pairing pr-")
    assert lines[1] == "paired: 5 devices"
    assert all(re.fullmatch(r"  \S+ EC25 10\.0\.0\.[1-5]", line) for line in lines[2:7])
    assert re.fullmatch(r"device-added: \S+ EC25 10\.0\.0\.6", lines[7])
    assert lines[8:] == ["pairing-ended: consent-withdrawn", "resume with cursor 5"]


def test_watch_follows_the_current_pairing_or_replays_on_request(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics,
        capsys: pytest.CaptureFixture[str]) -> None:
    app = conn(mosquitto, topics, "care")  # standing consent: granted at once
    _, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                        "support", *app, "--json")
    old = json.loads(out)["pairing"]
    assert in_process(app_main, capsys, "unpair", "--pairing", old, *app)[0] == 0
    _, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                        "support", *app, "--json")
    current = json.loads(out)["pairing"]
    assert current != old

    # --since 0 replays both pairings, as its help says; --pairing keeps to one.
    status, out = in_process(app_main, capsys, "watch", "--idle", "0.5", *app)
    assert status == 0
    assert [line.split()[1:3] for line in out.splitlines()] == [
        [old, "pairing-granted"], [old, "pairing-ended"], [current, "pairing-granted"]]
    status, out = in_process(app_main, capsys, "watch", "--pairing", current, "--idle", "0.5",
                             *app)
    assert status == 0
    assert [line.split()[1:3] for line in out.splitlines()] == [[current, "pairing-granted"]]
    # --since latest: nothing of the past; the cursor to go on from is the newest event.
    latest = run("mps_sdk.app_cli", "watch", "--since", "latest", "--idle", "0.5", *app)
    assert (latest.returncode, latest.stdout, latest.stderr) == (0, "", "mps-app: cursor 3\n")

    helped = run("mps_sdk.app_cli", "watch", "--help")
    assert "every event the registry keeps for this app, of all its pairings" in \
        " ".join(helped.stdout.split())
    assert "--pairing ID" in helped.stdout and "latest" in helped.stdout
    bad = run("mps_sdk.app_cli", "watch", "--since", "soon", *app)
    assert bad.returncode == 2 and "expected a sequence number (0 or more) or 'latest', " \
        "not 'soon'" in bad.stderr


def test_devices_by_any_reference_to_the_user(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics,
        capsys: pytest.CaptureFixture[str]) -> None:
    # care (partner, standing consent) pairs by number; the contract its answer names is
    # what it may keep instead of the number, and the user's own contract reference works
    # too: all three list the same devices.
    app = conn(mosquitto, topics, "care")
    status, out = in_process(app_main, capsys, "pair", "--msisdn", PAUL_MSISDN,
                             "--purpose", "support", *app, "--json")
    assert status == 0, out
    issued = json.loads(out)["contract"]
    listings = []
    for flag, who in (("--msisdn", PAUL_MSISDN), ("--user", issued), ("--user", PAUL),
                      ("--user", PAUL_MSISDN)):
        status, out = in_process(app_main, capsys, "devices", flag, who, *app, "--json")
        assert status == 0, out
        listings.append(json.loads(out)["devices"])
    assert listings[0] and all(listing == listings[0] for listing in listings)
    status, out = in_process(app_main, capsys, "devices", "--user", issued, *app)
    assert status == 0 and out.startswith(f"{issued}: contract {issued}, ")
    # Both or neither is a usage error, as is a reference that is no reference.
    assert app_main(["devices", "--user", PAUL, "--msisdn", PAUL_MSISDN, *app]) == 2
    assert app_main(["devices", "--user", "a b", *app]) == 1
    assert "user" in capsys.readouterr().err

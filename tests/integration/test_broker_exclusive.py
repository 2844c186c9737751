"""The configuration ``mps-bridge broker-config`` writes keeps the registry's shared
subscription group and every identity's client id to their owners, on a real Mosquitto
2.0 (MQTT v5 section 4.8.2: shared subscriptions; section 3.1.3.1: the Client
Identifier names the session, and a second connection with the same one takes it over,
section 3.1.4)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.credentials import DeviceCredentials
from agent.publisher import Publisher
from broker_bridge.brokerconf import MosquittoConfig, MosquittoConfigError, render_conf
from broker_bridge.registry import SignaturePolicy
from broker_bridge.service import Bridge
from mps_mqtt.client import connect, disconnect, new_client
from mps_sdk.client import PairingClient
from mps_testbed.stack.procs import console_script
from mps_wire.topics import Topics
from tests.helpers import PAUL_MSISDN
from tests.integration.test_broker_config import (
    DEVICE_A,
    NOT_AUTHORIZED,
    Client,
    Deployment,
    deploy,
)

TOPICS = Topics()
GROUP = "mps-bridge"


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    yield from deploy(tmp_path)


def test_the_file_acl_mode_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(MosquittoConfigError, match="does not check subscriptions"):
        MosquittoConfig(acl="file")
    done = subprocess.run([*console_script("mps-bridge"), "broker-config", "--out",
                           str(tmp_path / "out"), "--db", str(tmp_path / "r.db"),
                           "--acl", "file"], capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 2
    assert "does not check subscriptions" in done.stderr
    assert not (tmp_path / "out" / "acl").exists()


def test_the_configuration_binds_client_ids_and_limits_every_client(tmp_path: Path) -> None:
    conf = render_conf(MosquittoConfig(port=1883, max_packet_size=65536,
                                       dynsec_plugin="/x/dynsec.so"), tmp_path,
                       ca_file=None, server_cert=None, server_key=None)
    lines = conf.splitlines()
    assert "use_username_as_clientid true" in lines
    assert "max_packet_size 65536" in lines
    assert {"max_queued_messages 100000", "max_inflight_messages 20"} <= set(lines)
    assert not any(line.startswith(("acl_file", "password_file")) for line in lines)
    with pytest.raises(MosquittoConfigError, match="20 KiB"):
        MosquittoConfig(max_packet_size=1000)


def test_nobody_but_a_bridge_joins_the_registry_group(dep: Deployment) -> None:
    app, device = Client(dep.url("health")), Client(dep.url("b"))
    try:
        for who in (app, device):
            for topic in (TOPICS.all_app_requests(), TOPICS.all_registrations(),
                          TOPICS.all_user_requests()):
                assert who.subscribe(Topics.shared(GROUP, topic)) == NOT_AUTHORIZED
                assert who.subscribe(Topics.shared("other", topic)) == NOT_AUTHORIZED
    finally:
        app.close()
        device.close()


def _log(dep: Deployment) -> str:
    return (dep.broker.workdir / "mosquitto.log").read_text(errors="replace")


def test_client_id_takeover_leaves_the_owner_connected(dep: Deployment) -> None:
    """An unverified app and a device connect naming the bridge's and device A's client
    ids: each is connected under its own identity, the owners stay, nothing is lost."""
    credentials = DeviceCredentials.load(dep.bundles["a"])
    with Bridge(dep.store, dep.url("bridge"), signatures=SignaturePolicy.REQUIRED,
                client_id="bridge-one", group=GROUP), \
            Publisher(dep.url("a"), DEVICE_A.eid, signer=credentials.signer) as device_a:
        attackers = []
        for who, victim in (("health", "bridge-one"), ("b", f"mps-dev-{DEVICE_A.eid}"),
                            ("health", DEVICE_A.eid), ("b", "bridge.one")):
            client = new_client(victim)
            connect(client, dep.url(who), timeout=5)
            attackers.append(client)
        try:
            time.sleep(0.3)
            log = _log(dep)
            assert "as bridge-one" not in log and f"as mps-dev-{DEVICE_A.eid}" not in log
            assert "Client bridge.one already connected" not in log
            assert f"Client {DEVICE_A.eid} already connected" not in log
            # The owners still work: the registry answers every request, device A's
            # connection registers.
            assert device_a.register(DEVICE_A, timeout=5).is_ok
            with PairingClient(dep.url("care"), "care") as care:
                assert care.pair(PAUL_MSISDN, "support").active
                for _ in range(10):
                    assert [d.eid for d in care.devices(PAUL_MSISDN)] == [DEVICE_A.eid]
        finally:
            for client in attackers:
                disconnect(client)

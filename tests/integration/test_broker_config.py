"""``mps-bridge broker-config`` and the issued credentials on a real Mosquitto: TLS with
the operator's CA, passwords and client certificates, and ACLs that keep every device,
app and user agent inside its own topics."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.credentials import DeviceCredentials
from agent.publisher import Publisher
from broker_bridge.brokerconf import MosquittoConfig, acl_rules, write_broker_config
from broker_bridge.credentials import (
    OperatorCA,
    check_mosquitto_hash,
    issue,
    mosquitto_hash,
    revoke,
    username_for,
)
from broker_bridge.model import Role
from broker_bridge.registry import Registry, SignaturePolicy
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_mqtt.bundle import CredentialBundle
from mps_mqtt.client import BrokerUnreachableError, BrokerURL, connect, disconnect, new_client
from mps_sdk.client import PairingClient
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.mosquitto import free_port
from mps_testbed.stack.procs import console_script
from mps_wire.errors import ErrorCode
from mps_wire.topics import Topics
from tests.helpers import LENA, PAUL, PAUL_MSISDN, make_device, paul_and_apps

NOT_AUTHORIZED = 0x87
RUN_AS = "root" if os.geteuid() == 0 else None
DEVICE_A, DEVICE_B = make_device(1), make_device(2)
TOPICS = Topics()


@dataclass
class Deployment:
    root: Path
    store: SqliteStore
    registry: Registry
    ca: OperatorCA
    broker: Mosquitto
    bundles: dict[str, Path]

    def url(self, who: str, *, tls: bool = True) -> BrokerURL:
        bundle = CredentialBundle.load(self.bundles[who])
        base = self.broker.tls_url(self.ca.cert_file) if tls else self.broker.url
        return bundle.broker_url(base)


def deploy(tmp_path: Path, *, acl: str = "dynsec", client_certificates: bool = False,
           plain: bool = True) -> Iterator[Deployment]:
    with SqliteStore(tmp_path / "registry.db") as store:
        paul_and_apps(store, devices=0)
        registry = Registry(store, signatures=SignaturePolicy.REQUIRED)
        ca = OperatorCA.create(tmp_path / "ca")
        bundles: dict[str, Path] = {}
        for name, role, subject in (("bridge", Role.BRIDGE, "one"),
                                    ("a", Role.DEVICE, DEVICE_A.eid),
                                    ("b", Role.DEVICE, DEVICE_B.eid),
                                    ("health", Role.APP, "health"), ("care", Role.APP, "care"),
                                    ("paul", Role.USER, PAUL), ("lena", Role.USER, LENA),
                                    ("crm", Role.OPERATOR, "crm")):
            bundles[name] = issue(registry, role, subject, tmp_path / "bundles" / name, ca=ca,
                                  certificate=client_certificates).directory
        port, tls_port = (free_port() if plain else None), free_port()
        config = MosquittoConfig(port=port, tls_port=tls_port, acl=acl, user=RUN_AS,
                              client_certificates=client_certificates)
        files = write_broker_config(tmp_path / "broker", config, store.identities(), ca=ca)
        broker = Mosquitto(config_file=files.conf, port=port, tls_port=tls_port,
                           workdir=tmp_path / "broker")
        with broker:
            yield Deployment(tmp_path, store, registry, ca, broker, bundles)


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    yield from deploy(tmp_path)


class Client:
    """A raw MQTT v5 client recording SUBACK and PUBACK reason codes and messages."""

    def __init__(self, url: BrokerURL) -> None:
        self.client = new_client()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.acks: dict[int, list[int]] = {}
        self._events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic,
                                                                      bytes(m.payload)))
        self.client.on_subscribe = self._on_ack
        self.client.on_publish = self._on_pub
        connect(self.client, url)

    def _event(self, mid: int) -> threading.Event:
        with self._lock:
            return self._events.setdefault(mid, threading.Event())

    def _on_ack(self, _c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode],
                _p: Properties | None) -> None:
        self.acks[mid] = [c.value for c in codes]
        self._event(mid).set()

    def _on_pub(self, _c: mqtt.Client, _u: Any, mid: int, code: ReasonCode,
                _p: Properties | None) -> None:
        self.acks[mid] = [code.value]
        self._event(mid).set()

    def subscribe(self, topic: str) -> int:
        _rc, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None and self._event(mid).wait(5), f"no SUBACK for {topic}"
        return self.acks[mid][0]

    def publish(self, topic: str, payload: bytes = b"x") -> int:
        info = self.client.publish(topic, payload, qos=1)
        assert self._event(info.mid).wait(5), f"no PUBACK for {topic}"
        return self.acks[info.mid][0]

    def received(self, timeout: float = 0.5) -> list[tuple[str, bytes]]:
        got: list[tuple[str, bytes]] = []
        try:
            while True:
                got.append(self.messages.get(timeout=timeout))
        except queue.Empty:
            return got

    def close(self) -> None:
        disconnect(self.client)


def test_passwords_are_mosquitto_passwd_compatible(tmp_path: Path) -> None:
    hashed = mosquitto_hash("s3cret", salt=bytes(range(12)), iterations=101)
    assert hashed.startswith("$7$101$AAECAwQFBgcICQoL$")
    assert check_mosquitto_hash("s3cret", hashed) and not check_mosquitto_hash("x", hashed)
    # A hash made by Mosquitto's own tool checks out here too.
    passwd = tmp_path / "pw"
    passwd.write_text("alice:opensesame\n")
    done = subprocess.run(["mosquitto_passwd", "-U", str(passwd)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip("mosquitto_passwd is not available")
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert check_mosquitto_hash("opensesame", theirs)
    assert not check_mosquitto_hash("opensesamE", theirs)


def test_usernames_keep_the_roles_apart() -> None:
    assert username_for(Role.DEVICE, DEVICE_A.eid) == DEVICE_A.eid
    assert username_for(Role.APP, "health") == "app.health"
    assert username_for(Role.USER, "C-1") == "user.C-1"
    for role, bad in ((Role.DEVICE, "1234"), (Role.APP, "a/b"), (Role.USER, "x+y")):
        with pytest.raises(ValueError):
            username_for(role, bad)


def test_each_identity_stays_in_its_own_topics(dep: Deployment) -> None:
    bridge = Client(dep.url("bridge"))
    a, b = Client(dep.url("a")), Client(dep.url("b"))
    health, care = Client(dep.url("health")), Client(dep.url("care"))
    paul = Client(dep.url("paul"))
    try:
        # Publishing anywhere but its own request topics is refused (PUBACK 0x87).
        assert a.publish(TOPICS.device_register(DEVICE_B.eid)) == NOT_AUTHORIZED
        assert a.publish(TOPICS.device_reply(DEVICE_B.eid)) == NOT_AUTHORIZED
        assert a.publish(TOPICS.app_events("health")) == NOT_AUTHORIZED
        assert a.publish(TOPICS.device_register(DEVICE_A.eid)) < 0x80
        assert health.publish(TOPICS.app_requests("care")) == NOT_AUTHORIZED
        assert health.publish(TOPICS.app_events("health")) == NOT_AUTHORIZED  # forging
        assert health.publish(TOPICS.app_requests("health")) < 0x80
        assert paul.publish(TOPICS.user_requests(LENA)) == NOT_AUTHORIZED
        assert paul.publish(TOPICS.user_consent(PAUL)) == NOT_AUTHORIZED
        assert bridge.publish("elsewhere/x") == NOT_AUTHORIZED
        # Subscriptions outside their own namespace never deliver anything.
        a.subscribe(TOPICS.device_reply(DEVICE_B.eid))
        a.subscribe(TOPICS.device_namespace(DEVICE_B.eid) + "#")
        health.subscribe(TOPICS.app_events("care"))
        health.subscribe("#")
        paul.subscribe(TOPICS.user_consent(LENA))
        b.subscribe(TOPICS.device_reply(DEVICE_B.eid))
        care.subscribe(TOPICS.app_events("care"))
        assert bridge.publish(TOPICS.device_reply(DEVICE_B.eid), b"for b") < 0x80
        assert bridge.publish(TOPICS.app_events("care"), b"for care") < 0x80
        assert bridge.publish(TOPICS.user_consent(LENA), b"for lena") < 0x80
        assert b.received() == [(TOPICS.device_reply(DEVICE_B.eid), b"for b")]
        assert care.received() == [(TOPICS.app_events("care"), b"for care")]
        assert a.received(0.1) == [] and health.received(0.1) == [] and \
            paul.received(0.1) == []
    finally:
        for c in (bridge, a, b, health, care, paul):
            c.close()


def test_logins_without_valid_credentials_are_refused(dep: Deployment) -> None:
    good = dep.url("a")
    for url in (replace(good, password="wrong"), replace(good, username=None, password=None),
                replace(good, username="app.health")):
        with pytest.raises(BrokerUnreachableError, match=r"refused|Not authorized"):
            c = new_client()
            connect(c, url, timeout=2)
    # A TLS client that does not trust the operator's CA does not talk to the broker.
    with pytest.raises(BrokerUnreachableError):
        connect(new_client(), replace(good, ca_file=None), timeout=1)


def test_a_revoked_identity_is_locked_out_after_a_restart(dep: Deployment) -> None:
    c = Client(dep.url("health"))
    c.close()
    assert revoke(dep.registry, "app.health")
    config = MosquittoConfig(port=dep.broker.port, tls_port=dep.broker.tls_port, user=RUN_AS)
    files = write_broker_config(dep.root / "broker", config, dep.store.identities(),
                                ca=dep.ca)
    assert "app.health" not in files.dynsec.read_text()
    dep.broker.restart()  # the plugin reads its file at start
    with pytest.raises(BrokerUnreachableError, match="Not authorized"):
        probe = new_client()
        connect(probe, dep.url("health"), timeout=5)
        disconnect(probe)
    assert any(e.action == "credentials" and e.outcome == "revoked"
               for e in dep.store.audit())


def test_the_dynamic_security_plugin_refuses_foreign_subscriptions(tmp_path: Path) -> None:
    from broker_bridge.brokerconf import find_dynsec_plugin

    if find_dynsec_plugin() is None:
        pytest.skip("Mosquitto's dynamic security plugin is not installed")
    for dep in deploy(tmp_path, acl="dynsec"):
        a, health, bridge = Client(dep.url("a")), Client(dep.url("health")), \
            Client(dep.url("bridge"))
        try:
            assert a.subscribe(TOPICS.device_reply(DEVICE_B.eid)) == NOT_AUTHORIZED
            assert a.subscribe(TOPICS.device_reply(DEVICE_A.eid)) < 0x80
            assert health.subscribe(TOPICS.app_events("care")) == NOT_AUTHORIZED
            assert health.subscribe("#") == NOT_AUTHORIZED
            assert health.subscribe(TOPICS.app_events("health")) < 0x80
            assert health.publish(TOPICS.app_requests("care")) == NOT_AUTHORIZED
            # The registry's shared subscriptions are its own.
            assert bridge.subscribe(Topics.shared("mps-bridge",
                                                  TOPICS.all_registrations())) < 0x80
            assert bridge.subscribe("$CONTROL/dynamic-security/#") == NOT_AUTHORIZED
        finally:
            for c in (a, health, bridge):
                c.close()


def test_client_certificates_are_the_identity(tmp_path: Path) -> None:
    for dep in deploy(tmp_path, client_certificates=True, plain=False):
        bundle = CredentialBundle.load(dep.bundles["a"])
        assert bundle.cert_file is not None
        cert_only = replace(dep.url("a"), username=None, password=None)
        a = Client(cert_only)
        try:
            assert a.publish(TOPICS.device_register(DEVICE_B.eid)) == NOT_AUTHORIZED
            assert a.publish(TOPICS.device_register(DEVICE_A.eid)) < 0x80
        finally:
            a.close()
        # A certificate from another CA is not accepted.
        stranger = OperatorCA.create(tmp_path / "stranger-ca")
        cert, key = stranger.issue_client(DEVICE_A.eid)
        from cryptography.hazmat.primitives import serialization

        (tmp_path / "s.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "s.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        with pytest.raises(BrokerUnreachableError):
            connect(new_client(), replace(cert_only, cert_file=str(tmp_path / "s.pem"),
                                          key_file=str(tmp_path / "s.key")), timeout=1)


def test_signed_registration_and_pairing_over_tls(dep: Deployment) -> None:
    with Bridge(dep.store, dep.url("bridge"), signatures=SignaturePolicy.REQUIRED):
        credentials = DeviceCredentials.load(dep.bundles["a"])
        assert credentials.signer is not None
        with Publisher(credentials.broker_url(dep.broker.tls_url(dep.ca.cert_file)),
                       DEVICE_A.eid, signer=credentials.signer) as device:
            reply = device.register(DEVICE_A, timeout=5)
            assert reply.is_ok and reply.body["result"] == "registered"
            again = device.register(replace(DEVICE_A, seq=0), timeout=5)
            assert again.code is ErrorCode.REPLAY
        # Device B holds a key, but an unsigned registration from it is refused.
        with Publisher(dep.url("b"), DEVICE_B.eid) as unsigned:
            assert unsigned.register(DEVICE_B, timeout=5).code is ErrorCode.SIGNATURE_REQUIRED
        with PairingClient(dep.url("care"), "care") as app:
            answer = app.pair(PAUL_MSISDN, "support")
            assert answer.active
            assert [d.eid for d in answer.devices] == [DEVICE_A.eid]
        # The command line takes the same bundle.
        from mps_sdk.app_cli import main as app_main

        tls = dep.broker.tls_url(dep.ca.cert_file)
        assert app_main(["devices", "--broker", tls, "--credentials", str(dep.bundles["care"]),
                         "--app-id", "care", "--msisdn", PAUL_MSISDN, "--json"]) == 0
        assert app_main(["devices", "--broker", tls, "--credentials", str(dep.root),
                         "--app-id", "care", "--msisdn", PAUL_MSISDN]) == 2  # no bundle


def test_acl_rules_of_every_role_name_only_the_own_namespace(dep: Deployment) -> None:
    for identity in dep.store.identities():
        rules = acl_rules(identity, TOPICS)
        assert rules
        if identity.role is Role.BRIDGE:
            continue
        own = {Role.DEVICE: TOPICS.device_namespace, Role.APP: TOPICS.app_namespace,
               Role.USER: TOPICS.user_namespace,
               Role.OPERATOR: TOPICS.operator_namespace}[identity.role](identity.subject)
        assert all(topic.startswith(own) for _access, topic in rules), rules


def test_the_commands_issue_and_write_the_configuration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from broker_bridge.cli import main

    db, ca, out = tmp_path / "r.db", tmp_path / "ca", tmp_path / "broker"
    assert main(["operator", "ca", "--ca", str(ca)]) == 0
    assert main(["operator", "ca", "--ca", str(ca)]) == 1  # never overwritten
    assert main(["operator", "issue", "device", DEVICE_A.eid, "--out", str(tmp_path / "dev"),
                 "--ca", str(ca), "--certificate", "--db", str(db), "--json"]) == 0
    assert {"signing-key.pem", "client.pem", "client.key", "password", "ca.pem",
            "identity.json"} <= {p.name for p in (tmp_path / "dev").iterdir()}
    assert (tmp_path / "dev" / "signing-key.pem").stat().st_mode & 0o077 == 0
    assert main(["operator", "issue", "device", "1234", "--out", str(tmp_path / "x"),
                 "--db", str(db)]) == 2
    assert main(["operator", "issue", "bridge", "one", "--out", str(tmp_path / "br"),
                 "--db", str(db)]) == 0
    port, tls_port = free_port(), free_port()
    capsys.readouterr()
    # The real command once, as an operator runs it.
    done = subprocess.run([*console_script("mps-bridge"), "broker-config", "--out", str(out),
                           "--db", str(db), "--ca", str(ca), "--port", str(port),
                           "--tls-port", str(tls_port),
                           *(["--user", RUN_AS] if RUN_AS else [])],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "for 2 users" in done.stdout
    with Mosquitto(config_file=out / "mosquitto.conf", port=port, tls_port=tls_port,
                   workdir=out) as broker:
        url = CredentialBundle.load(tmp_path / "dev").broker_url(
            broker.tls_url(ca / "ca.pem"))
        c = new_client()
        connect(c, url)
        disconnect(c)
    assert main(["operator", "identities", "--db", str(db), "--json"]) == 0
    assert DEVICE_A.eid in capsys.readouterr().out
    assert main(["operator", "revoke", DEVICE_A.eid, "--db", str(db)]) == 0
    assert main(["operator", "revoke", DEVICE_A.eid, "--db", str(db)]) == 1

"""The registry service over a real Mosquitto: registrations, refusals, and the command."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.errors import BrokerError, StoreError
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_mqtt.client import BrokerURL
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.mosquitto import free_port
from mps_wire import codec
from mps_wire.errors import ErrorCode
from mps_wire.messages import DeviceInfo
from mps_wire.topics import Topics
from tests.helpers import MqttProbe, add_contract, make_device

ROOT = Path(__file__).parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        add_contract(s, "C-1", subs=[1, 2], msisdns=["+4915100000001"])
        add_contract(s, "C-2", subs=[3], msisdns=["+4915100000003"])
        yield s


@pytest.fixture
def bridge(store: SqliteStore, mosquitto: Mosquitto, topics: Topics) -> Iterator[Bridge]:
    with Bridge(store, BrokerURL.parse(mosquitto.url), topics=topics) as b:
        yield b


class Device:
    """One device's side of the contract: its register topic and its own reply topic."""

    def __init__(self, probe: MqttProbe, topics: Topics, device_id: str) -> None:
        self.probe = probe
        self.topic = topics.device_register(device_id)
        self.reply_topic = topics.device_reply(device_id)
        probe.listen(self.reply_topic)

    def register(self, payload: bytes | DeviceInfo) -> dict[str, Any]:
        if isinstance(payload, DeviceInfo):
            payload = codec.encode(payload.to_wire())
        return self.probe.request(self.topic, payload, self.reply_topic)


def wire(info: DeviceInfo, change: Callable[[dict[str, Any]], None]) -> bytes:
    msg = info.to_wire()
    change(msg)
    return codec.encode(msg)


def test_register_unchanged_updated(bridge: Bridge, probe: MqttProbe, topics: Topics,
                                    store: SqliteStore) -> None:
    info = make_device(1)
    device = Device(probe, topics, info.eid)
    assert device.register(info) == {"status": "ok", "result": "registered",
                                     "device_id": info.eid, "contract": "C-1"}
    assert device.register(replace(info, seq=2))["result"] == "unchanged"
    reply = device.register(replace(info, seq=3, ip=("192.0.2.7",)))
    assert reply["result"] == "updated"
    stored = store.device(info.eid)
    assert stored is not None and stored.ip == ("192.0.2.7",)
    stats = bridge.stats
    assert (stats.received, stats.handled, stats.failed) == (3, 3, 0)


def _bad_imei(msg: dict[str, Any]) -> None:
    imei = msg["imei"]
    msg["imei"] = imei[:-1] + str((int(imei[-1]) + 1) % 10)


def _no_model(msg: dict[str, Any]) -> None:
    del msg["model"]


REFUSALS: list[Any] = [
    pytest.param(lambda i: wire(i, _bad_imei), ErrorCode.INVALID_IDENTIFIER, "imei",
                 id="bad-imei-check-digit"),
    pytest.param(lambda i: codec.encode(make_device(9, sub=9).to_wire()),
                 ErrorCode.UNKNOWN_SUBSCRIPTION, "ICCID", id="unknown-iccid"),
    pytest.param(lambda i: b"\xa1\x61", ErrorCode.MALFORMED, "CBOR", id="malformed-cbor"),
    pytest.param(lambda i: bytes.fromhex("83010203"), ErrorCode.MALFORMED, "map",
                 id="not-a-map"),
    pytest.param(lambda i: wire(i, _no_model), ErrorCode.BAD_REQUEST, "model",
                 id="missing-field"),
    pytest.param(lambda i: wire(i, lambda m: m.update(pad="x" * 20_000)),
                 ErrorCode.TOO_LARGE, "limit", id="oversized"),
    pytest.param(lambda i: codec.encode(make_device(2).to_wire()), ErrorCode.BAD_REQUEST,
                 "topic", id="eid-topic-mismatch"),
]


@pytest.mark.parametrize(("payload", "code", "mentions"), REFUSALS)
def test_a_refused_registration_gets_its_code_and_stores_nothing(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore,
        payload: Callable[[DeviceInfo], bytes], code: ErrorCode, mentions: str) -> None:
    info = make_device(1)
    sender = make_device(9, sub=9) if code is ErrorCode.UNKNOWN_SUBSCRIPTION else info
    reply = Device(probe, topics, sender.eid).register(payload(info))
    assert reply["status"] == "error"
    assert reply["code"] == code.value
    assert mentions in reply["message"]
    assert store.device_count() == 0
    assert bridge.stats.error_count(code) == 1


def test_after_every_refusal_the_store_holds_exactly_the_good_devices(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    good = [make_device(1), make_device(2), make_device(3)]
    for info in good[:2]:
        assert Device(probe, topics, info.eid).register(info)["status"] == "ok"
    victim = make_device(1)
    device = Device(probe, topics, victim.eid)
    for case in REFUSALS:
        make_payload, code = case.values[0], case.values[1]
        if code is ErrorCode.UNKNOWN_SUBSCRIPTION:
            continue  # needs a topic of its own; covered above
        changed = replace(victim, ip=("198.51.100.1",), seq=5)
        assert device.register(make_payload(changed))["code"] == code.value
    assert Device(probe, topics, good[2].eid).register(good[2])["result"] == "registered"
    assert {d.eid for d in store.devices_of_contract("C-1")} == {good[0].eid, good[1].eid}
    assert [d.eid for d in store.devices_of_contract("C-2")] == [good[2].eid]
    stored = store.device(victim.eid)
    assert stored is not None and stored.ip == victim.ip  # none of the bad ones applied
    assert bridge.stats.handled == 3


def test_a_response_topic_outside_the_namespace_gets_no_reply(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    attacker, victim = make_device(1), make_device(2)
    foreign = topics.device_reply(victim.eid)  # another device's reply topic
    probe.listen(foreign)
    probe.send(topics.device_register(attacker.eid), codec.encode(attacker.to_wire()),
               response_topic=foreign)
    probe.send(topics.device_register(attacker.eid), codec.encode(attacker.to_wire()),
               response_topic=topics.app_replies("some-app"))
    probe.send(topics.device_register(attacker.eid), codec.encode(attacker.to_wire()),
               response_topic=topics.device_namespace(attacker.eid))  # the bare namespace
    # The bridge handles messages in order: once this is answered, the others were seen.
    assert Device(probe, topics, victim.eid).register(victim)["result"] == "registered"
    with pytest.raises(queue.Empty):
        probe.next(timeout=0.2)
    assert store.device(attacker.eid) is None
    stats = bridge.stats
    assert stats.error_count(ErrorCode.FORBIDDEN_TOPIC) == 3
    assert (stats.dropped, stats.handled) == (3, 1)


def test_a_registration_without_response_topic_is_stored_unanswered(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore) -> None:
    quiet, loud = make_device(1), make_device(2)
    probe.send(topics.device_register(quiet.eid), codec.encode(quiet.to_wire()))
    assert Device(probe, topics, loud.eid).register(loud)["status"] == "ok"
    assert store.device(quiet.eid) is not None
    with pytest.raises(queue.Empty):
        probe.next(timeout=0.1)


def test_an_unexpected_failure_answers_internal_and_the_bridge_keeps_serving(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = store.register_device
    calls = iter([RuntimeError("simulated bug")])

    def flaky(info: DeviceInfo, **kw: Any) -> Any:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return real(info, **kw)

    monkeypatch.setattr(store, "register_device", flaky)
    info = make_device(1)
    device = Device(probe, topics, info.eid)
    reply = device.register(info)
    assert (reply["status"], reply["code"]) == ("error", "internal")
    assert "simulated bug" in caplog.text  # logged with its traceback
    assert device.register(info)["result"] == "registered"
    assert bridge.stats.error_count(ErrorCode.INTERNAL) == 1


def test_two_bridges_in_a_group_share_the_work(
        store: SqliteStore, mosquitto: Mosquitto, probe: MqttProbe, topics: Topics) -> None:
    broker = BrokerURL.parse(mosquitto.url)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with Bridge(store, broker, topics=topics, group=group) as one, \
            Bridge(store, broker, topics=topics, group=group, client_id=f"b-{group}") as two:
        for n in (1, 2, 3):
            info = make_device(n)
            assert Device(probe, topics, info.eid).register(info)["status"] == "ok"
        assert one.stats.received + two.stats.received == 3  # each message once
        assert one.stats.received >= 1 and two.stats.received >= 1


def test_bridge_checks_its_options_and_does_no_io_before_start(store: SqliteStore) -> None:
    unreachable = BrokerURL.parse(f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="share group"):
        Bridge(store, unreachable, group="a/b")
    with pytest.raises(TypeError):
        Bridge(store, "mqtt://127.0.0.1:1883")  # type: ignore[arg-type]
    bridge = Bridge(store, unreachable)
    assert not bridge.running
    with pytest.raises(BrokerError, match="cannot reach"):
        bridge.start(timeout=2)
    assert not bridge.running


def _cli_env() -> dict[str, str]:
    """The environment of ``python -m broker_bridge.cli``: this checkout, no config file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MPS_CONFIG", None)
    return env


@contextlib.contextmanager
def _serving(db: Path, broker: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``mps-bridge serve`` on ``db`` and ``broker``, once it says it serves; killed on
    exit if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker_bridge.cli", "serve", "--db", str(db), "--broker",
         broker, *args],
        env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving" in line, proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_serve_command_answers_and_stops_on_sigterm(
        mosquitto: Mosquitto, tmp_path: Path, topics: Topics, probe: MqttProbe) -> None:
    db = tmp_path / "new" / "registry.db"
    operator = tmp_path / "operator.json"
    info = make_device(1)
    operator.write_text(f"""{{"contracts": [{{"id": "C-7", "holder": "Sub Process",
        "subscriptions": [{{"iccid": "{info.iccid}", "imsi": "{info.imsi}",
                            "eid": "{info.eid}"}}]}}]}}""")
    imported = subprocess.run(
        [sys.executable, "-m", "broker_bridge.cli", "operator", "import", str(operator),
         "--db", str(db)], env=_cli_env(), check=False, capture_output=True, text=True,
        timeout=30)
    assert imported.returncode == 0, imported.stderr
    with _serving(db, mosquitto.url, "--prefix", topics.prefix, "--group",
                  "serve-test") as proc:
        reply = Device(probe, topics, info.eid).register(info)
        assert (reply["result"], reply["contract"]) == ("registered", "C-7")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped after 1 messages (1 handled, 0 failed)" in out
    with SqliteStore(db) as s:
        assert [d.eid for d in s.devices_of_contract("C-7")] == [info.eid]


def test_the_serve_command_leaves_its_threads_stacks_when_it_crashes(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    # SIGBUS is what reading a mapping of a truncated file gives: native code, no
    # exception to log. The log tells where every thread was.
    db = tmp_path / "r.db"
    subprocess.run([sys.executable, "-m", "broker_bridge.cli", "db", "init", "--db", str(db)],
                   env=_cli_env(), check=True, capture_output=True, timeout=30)
    with _serving(db, mosquitto.url, "--group", "crash-test") as proc:
        proc.send_signal(signal.SIGBUS)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in err
    assert err.count("(most recent call first)") >= 3  # the main, network, worker threads
    assert "broker_bridge" in err


def test_the_serve_command_reports_an_unreachable_broker(tmp_path: Path) -> None:
    env = _cli_env()
    subprocess.run([sys.executable, "-m", "broker_bridge.cli", "db", "init", "--db",
                    str(tmp_path / "r.db")], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "broker_bridge.cli", "serve", "--db", str(tmp_path / "r.db"),
         "--broker", f"mqtt://127.0.0.1:{free_port()}"],
        env=env, check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "cannot reach broker" in done.stderr


def test_a_group_whose_commit_fails_is_handled_again_message_by_message(
        bridge: Bridge, probe: MqttProbe, topics: Topics, store: SqliteStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.batch
    failures = iter([StoreError("simulated commit failure")])

    @contextlib.contextmanager
    def failing() -> Iterator[None]:
        with real():
            yield
            failure = next(failures, None)
            if failure is not None:
                raise failure

    monkeypatch.setattr(store, "batch", failing)
    info = make_device(1)
    assert Device(probe, topics, info.eid).register(info)["result"] == "registered"
    assert store.device(info.eid) is not None
    assert [e.action for e in store.audit()].count("register") == 1
    assert bridge.stats.handled == 1

"""The app SDK and ``mps-app`` against a bridge on a real Mosquitto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_bridge.model import App, TrustLevel
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_mqtt.client import BrokerURL
from mps_sdk.client import ContractDevices, DeviceRecord, PairingClient
from mps_sdk.errors import (
    DeniedError,
    NotFoundError,
    PairingConnectionError,
    PairingError,
    PairingTimeoutError,
    RequestError,
)
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.mosquitto import free_port
from mps_wire.errors import ErrorCode
from mps_wire.messages import Status
from mps_wire.topics import Topics
from tests.helpers import add_contract, iccid_for, imsi_for, make_device

ROOT = Path(__file__).parents[2]
APP = "demo-app"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        add_contract(s, "C-1", subs=[1, 2, 3], msisdns=["+4915100000001", "+4915100000009"])
        add_contract(s, "C-2", subs=[4], msisdns=["+4917000000004"])
        add_contract(s, "C-3", subs=[5], msisdns=["+4917000000005"])  # no devices yet
        # A partner with standing consent may ask without pairing first.
        s.upsert_app(App(APP, "Demo", TrustLevel.PARTNER, ("device-discovery",),
                         standing_consent=True))
        for n in (1, 2, 3, 4):
            s.register_device(make_device(n), now=1_000 * n)
        yield s


@pytest.fixture
def bridge(store: SqliteStore, mosquitto: Mosquitto, topics: Topics) -> Iterator[Bridge]:
    with Bridge(store, BrokerURL.parse(mosquitto.url), topics=topics) as b:
        yield b


@pytest.fixture
def client(bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> Iterator[PairingClient]:
    with PairingClient(mosquitto.url, APP, topics=topics, timeout=5) as c:
        yield c


def test_devices_by_number_are_all_devices_of_that_contract(client: PairingClient) -> None:
    devices = client.devices("+4915100000001")
    assert [d.eid for d in devices] == [make_device(n).eid for n in (1, 2, 3)]
    first = devices[0]
    info = make_device(1)
    # The device id is the app's own pseudonym of the device, not its EID.
    assert first.device_id != info.eid and len(first.device_id) == 32
    assert first == DeviceRecord(
        device_id=first.device_id, ip=info.ip, capabilities=info.capabilities, model=info.model,
        registered_at=1_000, updated_at=1_000, eid=info.eid, imei=info.imei,
        iccid=iccid_for(1), imsi=imsi_for(1), msisdn="+4915100000001")
    assert [d.msisdn for d in devices[1:]] == [None, None]  # data-only subscriptions
    # Another number of the same contract finds the same devices; other contracts differ.
    assert client.devices("+49 151 00000009") == devices
    assert client.contract_devices("+4917000000004") == ContractDevices(
        "C-2", (client.devices("+4917000000004")[0],))
    assert client.devices("+4917000000004")[0].eid == make_device(4).eid
    assert client.devices("+4917000000005") == []


def test_unknown_number_raises_not_found(client: PairingClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.devices("+4915199999999")
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert "+4915199999999" in caught.value.message
    assert isinstance(caught.value, LookupError)


def test_unknown_app_is_denied(bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> None:
    with PairingClient(mosquitto.url, "stranger", topics=topics, timeout=5) as c, \
            pytest.raises(DeniedError) as caught:
        c.devices("+4915100000001")
    assert (caught.value.code, caught.value.status) == (ErrorCode.DENIED, Status.DENIED)
    assert isinstance(caught.value, PermissionError)
    assert bridge.stats.error_count(ErrorCode.DENIED) == 1


def test_an_invalid_number_is_refused_before_sending(
        bridge: Bridge, client: PairingClient) -> None:
    with pytest.raises(RequestError) as caught:
        client.devices("0151 1234")
    assert caught.value.code is ErrorCode.INVALID_IDENTIFIER
    assert bridge.stats.received == 0


def test_options_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="timeout"):
        PairingClient("mqtt://127.0.0.1:1883", APP, timeout=0)
    with pytest.raises(ValueError, match="app id"):
        PairingClient("mqtt://127.0.0.1:1883", "a/b")
    with pytest.raises(ValueError, match="mqtt://"):
        PairingClient("http://127.0.0.1", APP)
    with pytest.raises(PairingConnectionError, match="not connected"):
        PairingClient("mqtt://127.0.0.1:1883", APP).devices("+4915100000001")


def test_no_bridge_times_out_and_no_broker_fails_to_connect(
        mosquitto: Mosquitto, topics: Topics) -> None:
    with PairingClient(mosquitto.url, APP, topics=topics, timeout=0.3) as c, \
            pytest.raises(PairingTimeoutError):
        c.devices("+4915100000001")
    with pytest.raises(PairingConnectionError) as caught, \
            PairingClient(f"mqtt://127.0.0.1:{free_port()}", APP, timeout=2):
        pass
    assert isinstance(caught.value, PairingError)
    assert isinstance(caught.value, ConnectionError)


def _mps_app(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("MPS_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "mps_sdk.app_cli", *args], env=full_env,
                          check=False, capture_output=True, text=True, timeout=30)


def test_the_devices_command_prints_json(bridge: Bridge, mosquitto: Mosquitto,
                                         topics: Topics) -> None:
    done = _mps_app("devices", "--msisdn", "+4915100000001", "--broker", mosquitto.url,
                    "--app-id", APP, "--prefix", topics.prefix, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["contract"] == "C-1"
    assert [d["eid"] for d in result["devices"]] == [make_device(n).eid for n in (1, 2, 3)]
    assert result["devices"][0]["imei"] == make_device(1).imei


def test_the_devices_command_table_and_environment(bridge: Bridge, mosquitto: Mosquitto,
                                                   topics: Topics, tmp_path: Path) -> None:
    config = tmp_path / "mps.toml"
    config.write_text(f'[app]\nprefix = "{topics.prefix}"\ntimeout = 5\n')
    # broker and app from the environment, prefix from the configuration file
    done = _mps_app("devices", "--msisdn", "+4917000000004", "--config", str(config),
                    env={"MPS_BROKER": mosquitto.url, "MPS_APP_ID": APP})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "+4917000000004: contract C-2, 1 device"
    assert re.split(r"\s{2,}", lines[1])[:4] == ["DEVICE", "EID", "IMEI", "ICCID"]
    assert lines[2].split()[1:4] == [make_device(4).eid, make_device(4).imei, iccid_for(4)]

    missing = _mps_app("devices", "--msisdn", "+4915199999999", "--config", str(config),
                       "--json", env={"MPS_BROKER": mosquitto.url, "MPS_APP_ID": APP})
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["code"] == "not-found"

    usage = _mps_app("devices", "--msisdn", "+4915100000001", env={"MPS_BROKER": ""})
    assert usage.returncode == 2
    assert "--broker" in usage.stderr

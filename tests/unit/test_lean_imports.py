"""What the agent does not load for a first boot, and that leaving it out changes nothing:
paho's proxy lookup without urllib.request, durable writes without tempfile."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mps_common.durable import atomic_write

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, **env: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **env}).stdout.strip()


_CONNECT = ("import sys, agent.firstboot\n"
            "from mps_mqtt.client import new_client\n"
            "proxy = new_client('x')._get_proxy()\n"
            "print(proxy, sorted(m for m in ('email', 'http.client', 'tempfile', 'shutil')"
            " if m in sys.modules))\n")


def test_a_first_boot_connects_without_urllib_request() -> None:
    # No mqtt_proxy variable: the lookup paho does through urllib.request finds nothing.
    env = {k: v for k, v in os.environ.items() if k.lower() != "mqtt_proxy"}
    out = subprocess.run([sys.executable, "-c", _CONNECT], check=True, capture_output=True,
                         text=True, cwd=ROOT, env=env).stdout.strip()
    assert out == "None []"


def test_the_deferred_module_loads_whole_on_first_use() -> None:
    out = _run("import agent, sys\n"
               "import urllib.request as r\n"
               "before = 'http.client' in sys.modules\n"
               "from urllib.request import Request, getproxies\n"
               "print(before, r.Request is Request, sys.modules['urllib.request'] is not r,"
               " type(sys.modules['urllib.request']).__name__, callable(r.urlopen))")
    assert out == "False True True module True"


@pytest.mark.skipif(sys.platform != "linux", reason="the shortcut is Linux only")
def test_an_mqtt_proxy_variable_is_still_honoured() -> None:
    pytest.importorskip("socks")
    out = _run(_CONNECT, mqtt_proxy="socks://127.0.0.1:1080")
    assert out.startswith("{'proxy_type': 2, 'proxy_addr': '127.0.0.1', 'proxy_port': 1080}")


def test_a_proxy_set_on_the_client_or_as_socks_default_is_used() -> None:
    socks = pytest.importorskip("socks")
    from mps_mqtt.client import new_client

    client = new_client("x")
    client.proxy_set(proxy_type=socks.HTTP, proxy_addr="10.0.0.1", proxy_port=3128)
    assert client._get_proxy() == {"proxy_type": socks.HTTP, "proxy_addr": "10.0.0.1",
                                   "proxy_port": 3128}
    socks.set_default_proxy(socks.SOCKS5, "10.0.0.2", 1080)
    try:
        got = new_client("y")._get_proxy()
    finally:
        socks.set_default_proxy()
    assert got is not None and got["proxy_addr"] == "10.0.0.2"
    assert got["proxy_type"] == socks.SOCKS5 and got["proxy_port"] == 1080


def test_atomic_write_replaces_with_the_mode_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write(target, b"one", mode=0o600)
    atomic_write(target, b"two", mode=0o640)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"old")

    def refuse(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_signer_still_signs_what_the_registry_verifies(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.signing import DeviceSigner, SigningKeyError
    from mps_wire.cose import CoseError, key_id
    from mps_wire.identifiers import make_eid, make_iccid, make_imei
    from mps_wire.messages import DeviceInfo, ModelInfo
    from mps_wire.registration import decode_registration

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "signing-key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    signer = DeviceSigner.from_file(path)
    assert signer.kid == key_id(key.public_key())
    info = DeviceInfo(eid=make_eid("89049032" + "0" * 20 + "42"),
                      imei=make_imei("35209900", "000042"),
                      iccid=make_iccid("8949000000000000042"), imsi=None, ip=(),
                      capabilities=(), model=ModelInfo("m", "r", "v"), profile="p",
                      seq=1, ts=2)
    registration = decode_registration(signer.encode(info))
    assert registration.info == info
    registration.verify(key.public_key())
    with pytest.raises(CoseError):
        registration.verify(ec.generate_private_key(ec.SECP256R1()).public_key())
    path.write_bytes(b"not a key")
    with pytest.raises(SigningKeyError):
        DeviceSigner.from_file(path)


def test_a_deferred_top_level_module_loads_whole_on_first_use() -> None:
    # uuid, which paho imports, is deferred too: a named client makes no uuid, and the
    # first use (through paho's name for the module) gets the real module.
    out = _run("import sys, agent.firstboot\n"
               "from mps_mqtt.client import new_client\n"
               "new_client('x')._get_proxy()\n"
               "before = '_uuid' in sys.modules\n"
               "import paho.mqtt.client as paho\n"
               "made = paho.uuid.uuid4()\n"
               "import uuid\n"
               "print(before, type(sys.modules['uuid']).__name__, isinstance(made, uuid.UUID),"
               " made.version, uuid.uuid4() != made)")
    assert out == "False module True 4 True"


def test_the_reports_and_kinds_are_reexported_by_the_messages_module() -> None:
    from mps_wire import kinds, messages, reports

    for name in ("InstallationResult", "ProfileChange", "ProfileOutcome", "MAX_CERTIFICATE"):
        assert getattr(messages, name) is getattr(reports, name)
    for name in ("EventKind", "ChangeKind", "Reason", "RegistrationResult"):
        assert getattr(messages, name) is getattr(kinds, name)


def test_the_requests_are_still_reexported_by_the_messages_module() -> None:
    from mps_wire import messages, requests

    for name in ("Decision", "DevicesRequest", "MAX_EVENTS_PAGE", "parse_app_request"):
        assert getattr(messages, name) is getattr(requests, name)
    with pytest.raises(AttributeError):
        _ = messages.NoSuchName  # type: ignore[attr-defined]

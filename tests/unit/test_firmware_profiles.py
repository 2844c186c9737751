import json
from pathlib import Path

import pytest

from firmware_profiles import DIALECTS, ProfileError, bundled_profiles, find_profile, load_profile

GOOD = """
name = "board-1"
[modem]
port = "/dev/ttyUSB2"
[card]
url = "pcsc://?reader=Virtual"
isdr_aid = "A0000005591010FFFFFFFF8900000100"
[device]
capabilities = ["lte", "gps"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_bundled_profiles_load() -> None:
    names = {load_profile(p).name for p in bundled_profiles()}
    assert {"emulated-emu", "emulated-at", "emulated-pcsc"} <= names


def test_good_profile(tmp_path: Path) -> None:
    p = load_profile(write(tmp_path, GOOD))
    assert p.card.isdr_aid == bytes.fromhex("A0000005591010FFFFFFFF8900000100")
    assert p.capabilities == ("lte", "gps")
    assert p.broker.url == "mqtt://127.0.0.1:1883"
    assert p.modem.dialect == "quectel"


@pytest.mark.parametrize(("change", "key", "problem"), [
    (("[modem]\nport", "[modem]\nportt"), "modem.port", "is required"),
    (('url = "pcsc', 'url = "usb'), "card.url", "must start with"),
    (('"lte", "gps"', '"lte", "GPS!"'), "device.capabilities[1]", "must match"),
    (('isdr_aid = "A0', 'isdr_aid = "ZZ'), "card.isdr_aid", "hexadecimal"),
    (("[device]", "[device]\nnetwork_timeout = -1"), "device.network_timeout", "greater than 0"),
    (("[device]", "[device]\ncolour = 1"), "device.colour", "not a known setting"),
    (('name = "board-1"', "name = 7"), "name", "must be text"),
])
def test_errors_name_file_key_and_problem(tmp_path: Path, change: tuple[str, str], key: str,
                                          problem: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(path) in str(err.value)


def test_not_toml_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(write(tmp_path, "name = "))
    with pytest.raises(ProfileError, match="no such file"):
        load_profile(tmp_path / "absent.toml")


# --- the bundled profiles ----------------------------------------------------------------

REAL_BOARDS = {"quectel-ec25": "quectel", "simcom-sim7600": "sim7600",
               "simcom-sim7080": "sim7080", "ublox-sara-r5": "ublox",
               "generic-27007": "generic"}


def test_every_real_board_has_a_profile_in_its_dialect() -> None:
    profiles = {p.name: p for p in map(load_profile, bundled_profiles())}
    for name, dialect in REAL_BOARDS.items():
        profile = profiles[name]
        assert profile.modem.dialect == dialect
        assert profile.activation is not None
        assert profile.capabilities, name
        assert profile.network_timeout >= 60, "a real modem can take minutes to attach"
        assert profile.broker.url.startswith("mqtts://"), "real boards talk TLS"


def test_profile_dialects_are_the_agents_and_the_emulators() -> None:
    from agent.modem import DIALECTS as AGENT
    from lpa_emulator.modem import DIALECTS as EMULATED

    assert set(DIALECTS) == set(AGENT) == set(EMULATED)


def test_find_profile_by_name_or_path(tmp_path: Path) -> None:
    assert find_profile("quectel-ec25").name == "quectel-ec25.toml"
    assert find_profile(tmp_path / "x.toml") == tmp_path / "x.toml"
    assert find_profile("my.toml") == Path("my.toml")
    with pytest.raises(ProfileError, match="bundled profile"):
        find_profile("no-such-board")


# --- activation ------------------------------------------------------------------------

@pytest.mark.parametrize(("table", "code"), [
    ('code = "LPA:1$smdp.example.com$04386-AGYFT-A74Y8-3F815"', "04386-AGYFT-A74Y8-3F815"),
    ('code = "1$smdp.example.com:8443$ABC"', "ABC"),
    ('code = "LPA:1$smdp.example.com$$1.3.6.1.4.1.31746"', ""),
])
def test_activation_codes(tmp_path: Path, table: str, code: str) -> None:
    p = load_profile(write(tmp_path, GOOD + "[activation]\n" + table + "\n"))
    assert p.activation is not None and p.activation.code is not None
    assert p.activation.code.matching_id == code
    assert p.activation.code.address.startswith("smdp.example.com")
    assert not p.activation.use_default_smdp


def test_activation_code_with_confirmation(tmp_path: Path) -> None:
    p = load_profile(write(tmp_path, GOOD + '[activation]\ncode = "LPA:1$smdp.example.com$'
                           'X1$1.2.3$1"\nconfirmation_code = "1234"\n'))
    assert p.activation is not None and p.activation.code is not None
    assert p.activation.code.cc_required
    assert p.activation.code.smdp_oid == "1.2.3"
    assert p.activation.confirmation_code == "1234"


def test_default_smdp(tmp_path: Path) -> None:
    p = load_profile(write(tmp_path, GOOD + "[activation]\nuse_default_smdp = true\n"))
    assert p.activation is not None
    assert p.activation.use_default_smdp and p.activation.code is None
    assert load_profile(write(tmp_path, GOOD)).activation is None


@pytest.mark.parametrize(("table", "key", "problem"), [
    ('code = "LPA:2$smdp.example.com$X"', "activation.code", "format"),
    ('code = "LPA:1$smdp.example.com"', "activation.code", "matching id"),
    ('code = "LPA:1$not a host$X"', "activation.code", "not a valid host name"),
    ('code = "LPA:1$smdp.example.com:99999$X"', "activation.code", "port"),
    ('code = "LPA:1$smdp.example.com$X Y"', "activation.code", "matching id"),
    ('code = "LPA:1$smdp.example.com$X$banana"', "activation.code", "dotted decimal"),
    ('code = "LPA:1$smdp.example.com$X$1.2$2"', "activation.code", "flag"),
    ('code = "LPA:1$smdp.example.com$X$1.2$1"', "activation.confirmation_code",
     "is required"),
    ('code = "LPA:1$smdp.example.com$X"\nuse_default_smdp = true',
     "activation.use_default_smdp", "not both"),
    ("use_default_smdp = false", "activation.code", "is required unless"),
    ('use_default_smdp = "yes"', "activation.use_default_smdp", "must be true or false"),
    ('use_default_smdp = true\nconfirmation_code = ""', "activation.confirmation_code",
     "1 to 64"),
    ("use_default_smdp = true\nretries = 3", "activation.retries", "not a known setting"),
])
def test_activation_errors(tmp_path: Path, table: str, key: str, problem: str) -> None:
    path = write(tmp_path, GOOD + "[activation]\n" + table + "\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert (err.value.key, str(path)) == (key, err.value.path)
    assert problem in err.value.problem


@pytest.mark.parametrize(("change", "key", "problem"), [
    (('port = "/dev/ttyUSB2"', 'port = "ttyUSB2"'), "modem.port", "device path"),
    (('port = "/dev/ttyUSB2"', 'port = "usb://1"'), "modem.port", "serial://"),
    (("[device]", '[broker]\nurl = "mqtt://h?colour=red"\n[device]'), "broker.url",
     "unknown options"),
    (("[device]", '[broker]\nurl = "http://h"\n[device]'), "broker.url", "mqtt://"),
    (("[modem]", '[modem]\ndialect = "huawei"'), "modem.dialect", "sim7080"),
])
def test_more_errors_name_the_key(tmp_path: Path, change: tuple[str, str], key: str,
                                  problem: str) -> None:
    with pytest.raises(ProfileError) as err:
        load_profile(write(tmp_path, GOOD.replace(*change)))
    assert err.value.key == key
    assert problem in err.value.problem


def test_urls_for_the_modem_port(tmp_path: Path) -> None:
    for port in ("serial:///dev/serial0?baud=115200", "socket://127.0.0.1:7000"):
        p = load_profile(write(tmp_path, GOOD.replace("/dev/ttyUSB2", port)))
        assert p.modem.port == port


# --- mps-agent profiles ----------------------------------------------------------------

def test_profiles_list(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    assert main(["profiles", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(REAL_BOARDS) <= set(rows)
    assert rows["simcom-sim7080"]["dialect"] == "sim7080"
    assert rows["quectel-ec25"]["activation"] == "default SM-DP+"
    assert main(["profiles", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["NAME", "DIALECT", "PORT", "CARD"]
    assert any(line.startswith("ublox-sara-r5 ") for line in table)


def test_profiles_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    good = write(tmp_path, GOOD)
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('"lte", "gps"', '"lte", "GPS!"'))
    assert main(["profiles", "check", str(good), "simcom-sim7600"]) == 0
    assert "ok (simcom-sim7600)" in capsys.readouterr().out
    assert main(["profiles", "check", str(good), str(bad), "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["key"] == "device.capabilities[1]"
    assert results[1]["file"] == str(bad)
    assert main(["profiles", "check", str(bad)]) == 1
    assert f"{bad}: device.capabilities[1]: must match" in capsys.readouterr().err


def test_activation_ca_is_relative_to_the_profile(tmp_path: Path) -> None:
    from agent.firstboot import AgentSettings

    text = GOOD + '[activation]\ncode = "LPA:1$smdp.example.com$MID-1"\nca = "certs/ci.pem"\n'
    profile = load_profile(write(tmp_path, text))
    assert profile.activation is not None
    assert profile.activation.ca == (tmp_path / "certs" / "ci.pem").resolve()
    assert AgentSettings.from_profile(profile).smdp_ca == profile.activation.ca
    assert AgentSettings.from_profile(profile, smdp_ca="/other.pem").smdp_ca == Path("/other.pem")
    with pytest.raises(ProfileError) as err:
        load_profile(write(tmp_path, GOOD + '[activation]\nuse_default_smdp = true\nca = " "\n'))
    assert err.value.key == "activation.ca"


def test_every_problem_of_a_profile_at_once(tmp_path: Path) -> None:
    from mps_common.errors import ConfigError

    text = (GOOD.replace('"lte", "gps"', '"lte", "GPS!"')
            .replace("[modem]", "[modem]\ncolour = 1").replace('url = "pcsc', 'url = "usb'))
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert isinstance(err.value, ProfileError)
    assert [p.where for p in err.value.problems] == [
        "modem.colour", "card.url", "device.capabilities[1]"]
    assert err.value.source == str(path)
    assert all(line.startswith(f"{path}: ") for line in str(err.value).splitlines())

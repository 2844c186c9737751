from pathlib import Path

import pytest

from firmware_profiles import ProfileError, bundled_profiles, load_profile

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
    (('name = "board-1"', "name = 7"), "name", "must be str"),
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

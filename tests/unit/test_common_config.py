"""Layered settings and the declarative checker every configuration file goes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from mps_common.config import Settings, positive_float
from mps_common.errors import ConfigError
from mps_common.schema import Key, Table, collect, matches, positive, validate
from mps_sdk.app_cli import main as app_main


def test_arguments_beat_environment_beat_file(tmp_path: Path) -> None:
    config = tmp_path / "mps.toml"
    config.write_text('[app]\nbroker = "mqtt://file:1883"\ntimeout = 4\n')
    settings = Settings({"broker": None, "timeout": None}, section="app",
                        config_file=str(config), environ={"MPS_BROKER": "mqtt://env:1883"},
                        file_options=("broker", "timeout"))
    assert settings.text("broker") == "mqtt://env:1883"
    assert settings.get("timeout", 10.0, positive_float) == 4.0
    settings = Settings({"broker": "mqtt://arg:1883"}, section="app", config_file=str(config),
                        environ={"MPS_BROKER": "mqtt://env:1883"})
    assert settings.text("broker") == "mqtt://arg:1883"


def test_a_settings_file_with_several_mistakes_names_each(tmp_path: Path) -> None:
    config = tmp_path / "mps.toml"
    config.write_text('[app]\nbrokr = "mqtt://x"\ntimeout = [1]\napp_id = "fit"\n')
    settings = Settings({"app_id": None}, section="app", config_file=str(config),
                        environ={}, file_options=("broker", "timeout", "app_id"))
    with pytest.raises(ConfigError) as caught:
        settings.text("app_id")
    assert [(p.where, p.what) for p in caught.value.problems] == [
        ("timeout", "must be text or an integer or a number or true or false, got list"),
        ("brokr", "is not a known setting"),
    ]
    assert f"{config} [app]: brokr: is not a known setting" in str(caught.value)


def test_mps_app_refuses_an_unknown_key_in_its_file(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mps.toml"
    config.write_text('[app]\nbroker = "mqtt://127.0.0.1:1"\napp-id = "fit"\n')
    status = app_main(["devices", "--msisdn", "+4915112345678", "--config", str(config)])
    assert status == 2
    assert "app-id: is not a known setting" in capsys.readouterr().err


SCHEMA = Table(
    Key("name", str, check=matches(r"[a-z]+")),
    Key("ratio", float, 1.0, check=positive),
    Key("tags", list, [], items=str),
    Table.key("inner", Table(Key("port", int)), required=False),
)


def test_validate_types_defaults_and_every_problem_at_once() -> None:
    assert validate({"name": "ok", "ratio": 2}, SCHEMA, source="f.toml") == {
        "name": "ok", "ratio": 2.0, "tags": [], "inner": None}
    with pytest.raises(ConfigError) as caught:
        validate({"name": "NO", "ratio": True, "tags": ["a", 1], "inner": {"port": "x"},
                  "extra": 1}, SCHEMA, source="f.toml")
    assert [str(p) for p in caught.value.problems] == [
        "name: must match [a-z]+",
        "ratio: must be a number, got bool",
        "tags[1]: must be text",
        "inner.port: must be an integer, got str",
        "extra: is not a known setting",
    ]
    assert caught.value.source == "f.toml"


def test_collect_leaves_the_decision_to_the_caller() -> None:
    values, problems = collect({"ratio": -1}, SCHEMA)
    assert values["ratio"] is None
    assert [str(p) for p in problems] == ["name: is required", "ratio: must be greater than 0"]

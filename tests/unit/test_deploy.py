"""The deployment files for a board: the systemd units parse and say what they must, and the
udev rule is well-formed and covers the USB modules the bundled profiles name."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mps_testbed.stack.procs import console_script

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = {"mps-agent-firstboot": DEPLOY / "systemd" / "mps-agent-firstboot.service",
         "mps-agent": DEPLOY / "systemd" / "mps-agent.service"}
RULES = DEPLOY / "udev" / "99-mps-modem.rules"
INSTALLED_AGENT = "/opt/mps-agent/bin/mps-agent"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values; anything malformed fails the test."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert re.fullmatch(r"\[[A-Za-z]+\]", line), f"{path}:{n}: bad section {line}"
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}:{n}: a setting before any section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"{path}:{n}: {line}"
        current.setdefault(key, []).append(value)
    return sections


@pytest.mark.parametrize("name", sorted(UNITS))
def test_units_have_what_a_board_needs(name: str) -> None:
    unit = parse_unit(UNITS[name])
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert unit["Unit"]["Description"]
    assert service["ExecStart"][0].startswith(f"{INSTALLED_AGENT} ")
    assert "--profile /etc/mps-agent/profile.toml" in service["ExecStart"][0]
    assert service["Restart"] == ["on-failure"]
    assert service["StandardOutput"] == service["StandardError"] == ["journal"]
    assert service["StateDirectory"] == ["mps-agent"]
    assert "dialout" in service["SupplementaryGroups"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_first_boot_runs_once() -> None:
    unit = parse_unit(UNITS["mps-agent-firstboot"])
    assert unit["Service"]["Type"] == ["oneshot"]
    marker = unit["Unit"]["ConditionPathExists"][0]
    assert marker.startswith("!/var/lib/mps-agent/")
    assert unit["Service"]["ExecStartPost"] == [f"/usr/bin/touch {marker[1:]}"]
    assert " run " in unit["Service"]["ExecStart"][0]
    assert "--daemon" not in unit["Service"]["ExecStart"][0]
    assert unit["Unit"]["Before"] == ["mps-agent.service"]


def test_the_service_stays_up() -> None:
    unit = parse_unit(UNITS["mps-agent"])
    assert "--daemon" in unit["Service"]["ExecStart"][0]
    assert "mps-agent-firstboot.service" in unit["Unit"]["After"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    # Verified as installed, but with this machine's agent in place of /opt/mps-agent's.
    agent = console_script("mps-agent")[0]
    copies = []
    for name, path in UNITS.items():
        copy = tmp_path / f"{name}.service"
        copy.write_text(path.read_text().replace(INSTALLED_AGENT, agent))
        copies.append(str(copy))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *copies],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warned about


# --- the udev rule ----------------------------------------------------------------------

_MATCH = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "ENV", "ATTRS"}
_ASSIGN = {"ENV", "SYMLINK", "GROUP", "MODE", "GOTO", "LABEL", "IMPORT"}
_TOKEN = re.compile(r'\s*([A-Z]+)(?:\{([A-Za-z0-9_]+)\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*')


def rule_lines() -> list[list[tuple[str, str | None, str, str]]]:
    rules = []
    for n, raw in enumerate(RULES.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = []
        for part in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', line):
            m = _TOKEN.fullmatch(part)
            assert m is not None, f"{RULES}:{n}: cannot read {part!r}"
            key, attr, op, value = m.groups()
            if op in ("==", "!="):
                assert key in _MATCH, f"{RULES}:{n}: {key} cannot be matched"
            else:
                assert key in _ASSIGN, f"{RULES}:{n}: {key} cannot be assigned"
            if key in ("ENV", "ATTRS", "IMPORT"):
                assert attr, f"{RULES}:{n}: {key} needs {{name}}"
            tokens.append((key, attr, op, value))
        rules.append(tokens)
    return rules


def test_udev_rule_syntax_and_labels() -> None:
    rules = rule_lines()
    labels = [v for r in rules for k, _, _, v in r if k == "LABEL"]
    gotos = {v for r in rules for k, _, _, v in r if k == "GOTO"}
    assert gotos <= set(labels), "every GOTO has its LABEL"
    assert len(labels) == len(set(labels))
    assert rules[-1] == [("LABEL", None, "=", "mps_modem_end")]


@pytest.mark.parametrize(("vendor", "product"), [("2c7c", "0125"), ("2c7c", "0296"),
                                                 ("1e0e", "9001")])
def test_udev_rule_hides_the_at_port_from_modemmanager(vendor: str, product: str) -> None:
    for rule in rule_lines():
        env = {attr: value for key, attr, op, value in rule if key == "ENV" and op == "=="}
        if (env.get("ID_VENDOR_ID"), env.get("ID_MODEL_ID")) == (vendor, product):
            assert env["ID_USB_INTERFACE_NUM"] == "02", "only the AT port"
            assert ("ENV", "ID_MM_DEVICE_IGNORE", "=", "1") in rule
            assert ("SYMLINK", None, "+=", "mps-modem") in rule
            return
    pytest.fail(f"no rule for {vendor}:{product}")


def test_profiles_that_use_the_udev_name_are_usb_modules() -> None:
    from firmware_profiles import bundled_profiles, load_profile

    users = {p.name for p in map(load_profile, bundled_profiles())
             if p.modem.port == "/dev/mps-modem"}
    assert users == {"quectel-ec25", "simcom-sim7600"}

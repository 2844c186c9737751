"""``mps-agent doctor`` on emulated boards: every check passing, and the failures a board
meets (no card, a silent modem, a plain SIM, no network, no broker) each explained."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import tty
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.doctor import (
    ADDRESS,
    BROKER,
    CHECKS,
    EUICC,
    ISDR,
    MODEM,
    NETWORK,
    PORT,
    PROFILE,
    SIM,
    CheckStatus,
    Doctor,
    DoctorReport,
    render,
)
from agent.firstboot import AgentSettings
from firmware_profiles import load_profile
from lpa_emulator.euicc import EuiccCard
from mps_testbed.stack import Mosquitto, free_port
from mps_testbed.stack.procs import console_script
from tests.fixtures.modem import EmulatorFactory

pytestmark = pytest.mark.timeout(60)

PROFILE_TEXT = """
name = "doctor-test"
[modem]
port = "{port}"
dialect = "{dialect}"
command_timeout = 1
[card]
url = "{card}"
{isdr}
[broker]
url = "{broker}"
[device]
capabilities = ["lte"]
"""


def write_profile(path: Path, *, port: str, card: str = "at://", broker: str,
                  dialect: str = "quectel", isdr_aid: str | None = None) -> Path:
    isdr = f'isdr_aid = "{isdr_aid}"' if isdr_aid else ""
    path.write_text(PROFILE_TEXT.format(port=port, card=card, broker=broker, dialect=dialect,
                                        isdr=isdr))
    return path


def doctor(profile: Path, **kw: float) -> DoctorReport:
    return Doctor(AgentSettings.from_profile(load_profile(profile)), broker_timeout=2, **kw).run()


def statuses(report: DoctorReport) -> dict[str, CheckStatus]:
    return {c.name: c.status for c in report.checks}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script("mps-agent"), "doctor", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with Mosquitto() as mosquitto:
        yield mosquitto.url


@pytest.fixture
def euicc(tmp_path: Path) -> EuiccCard:
    return EuiccCard.open(tmp_path / "euicc.json")


def test_a_healthy_board_passes_every_check(modem_emulator_factory: EmulatorFactory,
                                            euicc: EuiccCard, broker: str,
                                            tmp_path: Path) -> None:
    running = modem_emulator_factory(euicc, registration_delay=0.2)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker)
    done = cli("--profile", str(profile), "--network-wait", "5", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECKS)
    details = {c["name"]: c["detail"] for c in report["checks"]}
    assert euicc.eid in details[ISDR]
    assert running.state.ip_addresses[0] in details[ADDRESS]
    assert running.state.imei in details[MODEM]


@pytest.mark.parametrize("dialect", ["sim7080", "ublox", "generic"])
def test_other_dialects_pass(modem_emulator_factory: EmulatorFactory, euicc: EuiccCard,
                             broker: str, tmp_path: Path, dialect: str) -> None:
    running = modem_emulator_factory(euicc, dialect=dialect, registration_delay=0.0)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker,
                            dialect=dialect)
    report = doctor(profile, network_wait=5)
    assert report.ok, render(report)


def test_missing_card_in_the_modem_is_explained(modem_emulator_factory: EmulatorFactory,
                                                broker: str, tmp_path: Path) -> None:
    running = modem_emulator_factory(None)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker)
    done = cli("--profile", str(profile), "--network-wait", "5")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    sim = next(i for i, line in enumerate(lines) if SIM in line)
    assert lines[sim].startswith("[FAIL]")
    assert "hint:" in lines[sim + 1] and "SIM slot" in lines[sim + 1]
    for name in (EUICC, ISDR, PROFILE):
        assert any(line.startswith("[skip]") and name in line for line in lines), name
    assert any(line.startswith("[ ok ]") and MODEM in line for line in lines)
    assert "1 check(s) failed" in done.stdout


def test_missing_emulated_card_is_explained(modem_emulator_factory: EmulatorFactory,
                                            broker: str, tmp_path: Path) -> None:
    running = modem_emulator_factory(None)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker,
                            card=f"emu://{tmp_path}/nowhere/card.json")
    done = cli("--profile", str(profile), "--json")
    assert done.returncode == 1
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks[SIM]["status"] == "fail"
    assert "state directory" in checks[SIM]["hint"]
    assert checks[MODEM]["status"] == "pass"


def test_unanswering_modem_is_explained(broker: str, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        profile = write_profile(tmp_path / "p.toml", port=os.ttyname(slave), broker=broker)
        done = cli("--profile", str(profile))
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if MODEM in line)
    assert lines[at].startswith("[FAIL]") and "no answer to AT" in lines[at]
    assert "nothing answers AT" in lines[at + 1] and "AT port" in lines[at + 1]
    assert any(line.startswith("[ ok ]") and PORT in line for line in lines)
    for name in (SIM, NETWORK, ADDRESS):
        assert any(line.startswith("[skip]") and name in line for line in lines), name
    assert any(line.startswith("[ ok ]") and BROKER in line for line in lines)


def test_missing_port(broker: str, tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", port="/dev/mps-modem", broker=broker)
    report = doctor(profile)
    port = report.get(PORT)
    assert port.status is CheckStatus.FAIL
    assert "udev" in port.hint and "--modem" in port.hint
    assert statuses(report)[MODEM] is CheckStatus.SKIP


def test_plain_sim_has_no_isdr(modem_emulator_factory: EmulatorFactory, euicc: EuiccCard,
                               broker: str, tmp_path: Path) -> None:
    running = modem_emulator_factory(euicc)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker,
                            isdr_aid="A0000005591010FFFFFFFF8900000200")
    report = doctor(profile)
    isdr = report.get(ISDR)
    assert isdr.status is CheckStatus.FAIL
    assert "plain SIM" in isdr.hint
    assert statuses(report)[EUICC] is CheckStatus.PASS


def test_no_network_and_no_address(modem_emulator_factory: EmulatorFactory,
                                   euicc: EuiccCard, broker: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    running = modem_emulator_factory(euicc, registration_delay=3600)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker)
    report = Doctor(AgentSettings.from_profile(load_profile(profile)), broker_timeout=2,
                    network_wait=0.6, show_progress=True).run()
    # The wait showed itself, and was taken away again.
    err = capsys.readouterr().err
    assert "waiting for the network CEREG stat 2" in err and err.endswith("\r\x1b[K")
    network = report.get(NETWORK)
    assert network.status is CheckStatus.FAIL
    assert "stat 2" in network.detail and "antenna" in network.hint
    assert statuses(report)[ADDRESS] is CheckStatus.SKIP


def test_unreachable_broker(modem_emulator_factory: EmulatorFactory, euicc: EuiccCard,
                           tmp_path: Path) -> None:
    running = modem_emulator_factory(euicc)
    profile = write_profile(tmp_path / "p.toml", port=str(running.link),
                            broker=f"mqtt://127.0.0.1:{free_port()}")
    check = doctor(profile).get(BROKER)
    assert check.status is CheckStatus.FAIL
    assert "nothing listens" in check.hint
    profile = write_profile(tmp_path / "p.toml", port=str(running.link),
                            broker=f"mqtts://127.0.0.1:{free_port()}?ca={tmp_path}/ca.pem")
    check = doctor(profile).get(BROKER)
    assert check.status is CheckStatus.FAIL and "ca.pem" in check.detail


def test_dialect_mismatch_is_noted(modem_emulator_factory: EmulatorFactory,
                                   euicc: EuiccCard, broker: str, tmp_path: Path) -> None:
    running = modem_emulator_factory(euicc, dialect="generic")
    state = replace(running.state, manufacturer="Quectel")
    running.emulator.state = state
    profile = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker,
                            dialect="ublox")
    check = doctor(profile).get(MODEM)
    assert check.status is CheckStatus.PASS
    assert "'ublox'" in check.hint and "Quectel" in check.hint


def test_bad_profile_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[modem]\nport = "/dev/x"\ndialect = "nokia"\n'
                   '[card]\nurl = "at://"\n')
    done = cli("--profile", str(bad))
    assert done.returncode == 2
    assert "modem.dialect" in done.stderr


def test_a_bundled_profile_by_name(tmp_path: Path) -> None:
    done = cli("--profile", "quectel-ec25", "--modem", str(tmp_path / "absent"),
               "--broker", f"mqtt://127.0.0.1:{free_port()}", "--broker-timeout", "1",
               "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["profile"] == "quectel-ec25"
    assert report["checks"][0]["status"] == "fail"


def test_an_empty_card_is_fine_when_first_boot_can_download(
        modem_emulator_factory: EmulatorFactory, broker: str, tmp_path: Path) -> None:
    from lpa_emulator.euicc import CardState

    empty = tmp_path / "empty.json"
    CardState.new(profiles=[]).save(empty)
    running = modem_emulator_factory(EuiccCard.open(empty), registration_delay=0.2)
    bare = write_profile(tmp_path / "p.toml", port=str(running.link), broker=broker)
    checks = {c.name: c for c in doctor(bare, network_wait=5).checks}
    assert checks[PROFILE].status is CheckStatus.FAIL
    assert "[activation]" in checks[PROFILE].hint

    with_code = tmp_path / "q.toml"
    with_code.write_text(bare.read_text() + '[activation]\ncode = "LPA:1$smdp.example$MID"\n')
    checks = {c.name: c for c in doctor(with_code, network_wait=5).checks}
    assert checks[PROFILE].status is CheckStatus.PASS
    assert "smdp.example" in checks[PROFILE].hint

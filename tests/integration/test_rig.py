"""Test rigs: N emulated devices through first boot against the embedded stack or an
existing deployment, the summary, the operator data, and the progress bar they show."""

from __future__ import annotations

import io
import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpa_emulator.cli import main
from mps_common.progress import Progress, progress_wanted
from mps_testbed.rig import (
    DIALECTS,
    Rig,
    RigError,
    RigResult,
    plan_devices,
    summary,
    verify,
)
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire.identifiers import validate_eid, validate_iccid

pytestmark = pytest.mark.timeout(120)


def emu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script("mps-emu"), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_ten_devices_in_every_dialect_register(tmp_path: Path) -> None:
    done = emu("rig", "--devices", "10", "--dialects", "all", "--workdir",
               str(tmp_path / "rig"), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["registered"], out["failed"]) == (10, 0)
    devices = out["devices"]
    assert {d["dialect"] for d in devices} == set(DIALECTS)
    assert {d["card"] for d in devices} >= {"emu", "at"}
    listed = {r["eid"]: r for r in out["app_devices"]}
    assert set(listed) == {d["eid"] for d in devices}
    for d in devices:
        validate_eid(d["eid"])
        assert validate_iccid(listed[d["eid"]]["iccid"]) == d["iccid"]
        assert d["seconds"] > 0 and d["boot_s"] is not None and d["error"] is None
    assert set(out["per_device_s"]) == {"mean", "median", "p95", "max"}
    assert set(out["phases_s"]) >= {"operator", "cards", "modems", "boot", "app"}
    # One modem process serves all ten modems.
    assert len(list((tmp_path / "rig").glob("modems*.toml"))) == 1


def test_summary_line(tmp_path: Path) -> None:
    devices = plan_devices(3, tmp_path, ["emu"])
    for d, seconds in zip(devices, (1.0, 2.0, 4.0), strict=True):
        d.seconds = seconds
    devices[2].error = "wait for the registry: unknown-subscription"
    result = RigResult(devices=devices, app_devices=[], app_table="", seconds=9.87,
                       notes=[], app_checked=False)
    assert summary(result) == ("registered: 2, failed: 1 (3 devices in 9.9 s; per device "
                               "boot: mean 2.33 s, median 2.00 s, p95 4.00 s, max 4.00 s)")
    assert verify(result) == ["dev2: wait for the registry: unknown-subscription"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An operator's deployment the rig did not start: a broker and a registry."""
    tmp_path = tmp_path_factory.mktemp("deployment")
    db = tmp_path / "registry.sqlite"
    subprocess.run([*console_script("mps-bridge"), "db", "init", "--db", str(db)], check=True,
                   capture_output=True)
    with Mosquitto() as broker, ProcessGroup(tmp_path / "logs") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        yield broker.url, db


def test_existing_deployment_learns_the_subscriptions_on_its_operator_topic(
        deployment: tuple[str, Path], tmp_path: Path) -> None:
    url, db = deployment
    lines: list[str] = []
    # The subscriptions go over the operator topic; the preloaded cards' bindings into
    # the deployment's database, as the operator's own tools would put them.
    result = Rig(2, workdir=tmp_path / "rig", kinds=["emu", "at"], broker=url, db=str(db),
                 operator_data="topic", say=lines.append, progress=False).run()
    assert (result.registered, result.failed) == (2, 0), [d.error for d in result.devices]
    assert any("operator topic" in line for line in lines)
    # This registry has no app of the story: the app check is a note, not a failure.
    assert not result.app_checked
    assert any("operator-care" in note for note in result.notes)
    assert verify(result) == []


def test_existing_deployment_with_imported_operator_data(
        deployment: tuple[str, Path], tmp_path: Path) -> None:
    url, db = deployment
    result = Rig(2, workdir=tmp_path / "rig", kinds=["emu"], broker=url, db=str(db),
                 first=50, say=lambda _: None, progress=False).run()
    assert verify(result) == []
    assert result.app_checked
    assert {d.eid for d in result.devices} <= {r["eid"] for r in result.app_devices}


def test_devices_the_registry_does_not_know_fail_and_are_counted(
        deployment: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = deployment
    result = Rig(2, workdir=tmp_path / "rig", kinds=["emu"], broker=url, first=900,
                 operator_data="none", say=lambda _: None, progress=False,
                 app_check=False).run()
    assert (result.registered, result.failed) == (0, 2)
    assert all("unknown-subscription" in (d.error or "") for d in result.devices)
    assert summary(result).startswith("registered: 0, failed: 2 ")
    assert len(verify(result)) == 2


def test_exported_operator_data_matches_the_devices(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "--devices", "3", "--first", "5", "--export-operator-data", "-"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    iccids = [s["iccid"] for s in data["contracts"][0]["subscriptions"]]
    assert iccids == [d.iccid for d in plan_devices(3, tmp_path, ["emu"], first=5)]
    assert [a["id"] for a in data["apps"]] == ["operator-care", "health-app", "fitness-tracker"]
    assert [a["trust"] for a in data["apps"]] == ["partner", "verified", "unverified"]
    out = tmp_path / "ops.toml"
    assert main(["rig", "--devices", "2", "--export-operator-data", str(out)]) == 0
    assert len(tomllib.loads(out.read_text())["contracts"][0]["subscriptions"]) == 2


@pytest.mark.parametrize("args", [
    ["--cards", "emu,usb"], ["--dialects", "nokia"], ["--db", "x.sqlite"],
    ["--operator-data", "topic"], ["--devices", "0"], ["--broker", "http://x"],
    ["--broker", "mqtt://127.0.0.1:1", "--operator-data", "import"],
])
def test_bad_options_are_usage_errors(args: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", *args]) == 2
    assert capsys.readouterr().err.startswith("mps-emu: ")


def test_plan_is_deterministic_and_cycles(tmp_path: Path) -> None:
    devices = plan_devices(6, tmp_path, ["emu", "at"], dialects=["quectel", "sim7600", "ublox"])
    assert [d.kind for d in devices] == ["emu", "at"] * 3
    assert [d.dialect for d in devices] == ["quectel", "sim7600", "ublox"] * 2
    assert plan_devices(6, tmp_path, ["emu"])[3].iccid == devices[3].iccid
    assert len({d.iccid for d in devices}) == 6
    with pytest.raises(RigError):
        Rig(2, kinds=["emu"], dialects=["nokia"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_hundred_devices_register(tmp_path: Path) -> None:
    result = Rig(100, workdir=tmp_path / "rig", say=lambda _: None, progress=False).run()
    assert verify(result) == [], [d.error for d in result.devices if d.error][:5]
    assert result.registered == 100
    print(summary(result), result.phases)


# --- the progress bar ------------------------------------------------------------------

class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_drawn_on_a_terminal_and_redrawn_below_messages() -> None:
    out, clock = Tty(), Clock()
    lines: list[str] = []
    bar = Progress(4, label="boot", stream=out, enabled=True, clock=clock,
                   note=lambda: "1 failed")
    with bar:
        clock.now = 1.5
        bar.advance()
        bar.message("dev0 registered", write=lines.append)
        bar.advance(3)
    text = out.getvalue()
    assert "\r\x1b[Kboot [" in text
    assert "1/4 1 failed 1.5 s" in text
    assert "4/4" in text
    assert lines == ["dev0 registered"]
    assert text.endswith("\r\x1b[K"), "closing takes the bar away"


def test_progress_redraws_at_most_ten_times_a_second() -> None:
    out, clock = Tty(), Clock()
    bar = Progress(1000, stream=out, enabled=True, clock=clock)
    for _ in range(500):
        bar.advance()
    assert out.getvalue().count("\r\x1b[K") == 1
    clock.now = 0.2
    bar.advance()
    assert out.getvalue().count("\r\x1b[K") == 2


def test_progress_is_silent_in_pipes_and_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    bar = Progress(3, stream=pipe)
    with bar:
        bar.advance()
        bar.message("still printed")
    assert pipe.getvalue() == "still printed\n"
    monkeypatch.delenv("MPS_PROGRESS", raising=False)
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(Tty())
    monkeypatch.delenv("CI")
    monkeypatch.setenv("TERM", "xterm")
    assert progress_wanted(Tty())
    monkeypatch.setenv("MPS_PROGRESS", "0")
    assert not progress_wanted(Tty())
    monkeypatch.setenv("MPS_PROGRESS", "1")
    assert progress_wanted(io.StringIO())


def test_progress_render_fits_the_width() -> None:
    bar = Progress(None, label="downloading", enabled=True, stream=Tty(), clock=Clock())
    bar.done = 12345
    assert bar.render(200) == "downloading 12345 0.0 s"
    assert len(bar.render(10)) == 10
    with pytest.raises(ValueError):
        Progress(-1)

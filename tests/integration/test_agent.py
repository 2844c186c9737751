"""The agent against real parts: the emulated modem on a pty, cards over every link,
the real broker and registry; and the failures a board meets (silent modem, no card)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_profiles import PROFILE_DIR
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire.identifiers import validate_eid, validate_iccid, validate_imei
from tests.fixtures.pcsc import ServedCard

ICCID = "8949010000000000008"


@dataclass
class Board:
    """One emulated board: a modem process on a pty and a card state file."""

    link: Path
    card_state: Path
    eid: str
    workdir: Path


def make_card(path: Path, iccid: str = ICCID) -> str:
    out = subprocess.run([*console_script("mps-emu"), "euicc", "--state", str(path),
                          "--iccid", iccid, "--imsi", "262010000000001"],
                         capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)["eid"])


def start_modem(procs: ProcessGroup, workdir: Path, *, card: Path | None) -> Path:
    link = workdir / "modem"
    argv = [*console_script("mps-emu"), "modem", "--link", str(link),
            "--state", str(workdir / "modem.json")]
    argv += ["--card-state", str(card)] if card else ["--no-card"]
    procs.start(f"modem-{workdir.name}", argv).wait_for_path(link, 15)
    return link


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    card = tmp_path / "euicc.json"
    eid = make_card(card)
    with ProcessGroup(tmp_path / "logs") as procs:
        # The modem hosts the same card file only for at:// boards; the others read it
        # in-process or through PC/SC, so each test starts the modem it needs.
        yield Board(link=tmp_path / "modem", card_state=card, eid=eid, workdir=tmp_path)
        procs.stop_all()


def agent(*args: str, env: dict[str, str] | None = None, timeout: float = 60
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script("mps-agent"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def check_identity(out: str, board: Board) -> dict[str, object]:
    data = json.loads(out)
    assert validate_imei(data["imei"]) == data["imei"]
    assert validate_eid(data["eid"]) == board.eid
    assert validate_iccid(data["iccid"]) == ICCID
    assert data["ip"], "the emulated modem reports an address once registered"
    return data


def test_identity_over_at(board: Board, tmp_path: Path) -> None:
    with ProcessGroup(tmp_path / "l2") as procs:
        link = start_modem(procs, tmp_path, card=board.card_state)
        done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-at.toml"),
                     "--modem", str(link), "--card", f"at://{link}")
        assert done.returncode == 0, done.stderr
        data = check_identity(done.stdout, board)
        assert data["imsi"] == "262010000000001"
        assert data["model"] == {"manufacturer": "Quectel", "model": "EC25",
                                 "revision": data["model"]["revision"]}  # type: ignore[index]


def test_identity_over_emu(board: Board, tmp_path: Path) -> None:
    with ProcessGroup(tmp_path / "l2") as procs:
        link = start_modem(procs, tmp_path, card=None)
        done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-emu.toml"),
                     "--modem", str(link), "--card", f"emu://{board.card_state}")
        assert done.returncode == 0, done.stderr
        check_identity(done.stdout, board)


@pytest.mark.pcsc
def test_identity_over_pcsc(board: Board, tmp_path: Path, pcsc_sandbox: object) -> None:
    from mps_testbed.stack.pcsc import PcscSandbox

    assert isinstance(pcsc_sandbox, PcscSandbox)
    served = ServedCard(pcsc_sandbox, board.card_state).start()
    try:
        with ProcessGroup(tmp_path / "l2") as procs:
            link = start_modem(procs, tmp_path, card=None)
            done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-pcsc.toml"),
                         "--modem", str(link),
                         "--card", f"pcsc://?reader={served.reader.replace(' ', '%20')}",
                         env=pcsc_sandbox.env())
            assert done.returncode == 0, done.stderr
            check_identity(done.stdout, board)
    finally:
        served.stop()


def test_run_registers_and_is_idempotent(board: Board, tmp_path: Path) -> None:
    opfile = tmp_path / "operator.toml"
    opfile.write_text(f"""
[[contracts]]
id = "C-1"
holder = "Paul"
msisdns = ["+4917612345678"]
  [[contracts.subscriptions]]
  iccid = "{ICCID}"
  imsi = "262010000000001"
  eid = "{board.eid}"
""")
    db = tmp_path / "reg.sqlite"
    subprocess.run([*console_script("mps-bridge"), "operator", "import", str(opfile),
                    "--db", str(db)], check=True, capture_output=True)
    with Mosquitto() as broker, ProcessGroup(tmp_path / "l2") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        link = start_modem(procs, tmp_path, card=board.card_state)
        args = ["run", "--profile", str(PROFILE_DIR / "emulated-at.toml"), "--modem", str(link),
                "--card", f"at://{link}", "--broker", broker.url,
                "--state-dir", str(tmp_path / "agent"), "--json"]
        first = agent(*args)
        assert first.returncode == 0, first.stderr
        out = json.loads(first.stdout)
        assert (out["result"], out["device_id"], out["contract"]) == ("registered", board.eid,
                                                                      "C-1")
        second = agent(*args)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["result"] == "unchanged"


def test_unknown_subscription_is_refused_with_its_code(board: Board, tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    subprocess.run([*console_script("mps-bridge"), "db", "init", "--db", str(db)], check=True,
                   capture_output=True)
    with Mosquitto() as broker, ProcessGroup(tmp_path / "l2") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        link = start_modem(procs, tmp_path, card=None)
        done = agent("run", "--profile", str(PROFILE_DIR / "emulated-emu.toml"),
                     "--modem", str(link), "--card", f"emu://{board.card_state}",
                     "--broker", broker.url, "--state-dir", str(tmp_path / "agent"))
        assert done.returncode == 1
        assert "wait for the registry" in done.stderr
        assert "unknown-subscription" in done.stderr


def test_silent_modem_names_the_probe_step(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-emu.toml"),
                     "--modem", os.ttyname(slave), "--card", f"emu://{tmp_path}/card.json")
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 1
    assert "probe hardware" in done.stderr
    assert "modem" in done.stderr


def test_missing_card_names_the_probe_step(board: Board, tmp_path: Path) -> None:
    with ProcessGroup(tmp_path / "l2") as procs:
        link = start_modem(procs, tmp_path, card=None)
        done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-at.toml"),
                     "--modem", str(link), "--card", f"at://{link}")
    assert done.returncode == 1
    assert "probe hardware" in done.stderr
    assert "no card" in done.stderr.lower() or "no sim" in done.stderr.lower()


def test_unreachable_broker_names_the_publish_step(board: Board, tmp_path: Path) -> None:
    from mps_testbed.stack import free_port

    with ProcessGroup(tmp_path / "l2") as procs:
        link = start_modem(procs, tmp_path, card=None)
        done = agent("run", "--profile", str(PROFILE_DIR / "emulated-emu.toml"),
                     "--modem", str(link), "--card", f"emu://{board.card_state}",
                     "--broker", f"mqtt://127.0.0.1:{free_port()}",
                     "--state-dir", str(tmp_path / "agent"))
    assert done.returncode == 1
    assert "publish" in done.stderr
    # The message waits in the outbox for the next attempt.
    outbox = json.loads((tmp_path / "agent" / "outbox.json").read_text())
    assert outbox["pending"]["eid"] == board.eid


def test_bad_profile_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[modem]\nport = 5\n[card]\nurl = "emu:///x"\n')
    done = agent("identity", "--profile", str(bad))
    assert done.returncode == 2
    assert "modem.port" in done.stderr


def test_python_m_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "agent.cli", "profiles", "list", "--json"],
                          capture_output=True, text=True, check=True)
    assert {p["name"] for p in json.loads(done.stdout)} >= {"emulated-at", "emulated-emu"}

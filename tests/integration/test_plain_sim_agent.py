"""A board with a plain SIM (mps-emu uicc) behind the emulated modem (AT+CSIM, 3GPP TS
27.007 8.17) and in-process: the agent reads ICCID and IMSI from its files and no EID,
and registers with the real registry under that ICCID once the operator filed the SIM."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from firmware_profiles import PROFILE_DIR
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from tests.integration.test_agent import agent, start_modem

ICCID = "8949010000000000016"
IMSI = "262010000000002"


def make_sim(path: Path) -> None:
    done = subprocess.run([*console_script("mps-emu"), "uicc", "--state", str(path),
                           "--iccid", ICCID, "--imsi", IMSI], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout)["eid"] is None


@pytest.mark.parametrize("link_kind", ["at", "emu"])
def test_a_plain_sim_board_registers_under_its_iccid(tmp_path: Path, link_kind: str) -> None:
    sim = tmp_path / "sim.json"
    make_sim(sim)
    opfile = tmp_path / "operator.toml"
    opfile.write_text(f"""
[[contracts]]
id = "C-1"
holder = "Paul"
msisdns = ["+4917612345678"]
  [[contracts.subscriptions]]
  iccid = "{ICCID}"
  imsi = "{IMSI}"
  plain_sim = true
""")
    db = tmp_path / "reg.sqlite"
    subprocess.run([*console_script("mps-bridge"), "operator", "import", str(opfile),
                    "--db", str(db)], check=True, capture_output=True)
    with Mosquitto() as broker, ProcessGroup(tmp_path / "logs") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        link = start_modem(procs, tmp_path, card=sim if link_kind == "at" else None)
        card = f"at://{link}" if link_kind == "at" else f"emu://{sim}"
        ident = agent("identity", "--profile", str(PROFILE_DIR / f"emulated-{link_kind}.toml"),
                      "--modem", str(link), "--card", card)
        assert ident.returncode == 0, ident.stderr
        data = json.loads(ident.stdout)
        assert (data["eid"], data["iccid"], data["imsi"]) == (None, ICCID, IMSI)
        done = agent("run", "--profile", str(PROFILE_DIR / f"emulated-{link_kind}.toml"),
                     "--modem", str(link), "--card", card, "--broker", broker.url,
                     "--state-dir", str(tmp_path / "agent"), "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert (out["result"], out["device_id"], out["contract"]) == ("registered", ICCID,
                                                                      "C-1")
    shown = subprocess.run([*console_script("mps-bridge"), "operator", "show", "--contract",
                            "C-1", "--db", str(db), "--json"], capture_output=True, text=True,
                           check=True)
    (device,) = json.loads(shown.stdout)["devices"]
    assert (device["device_id"], device["eid"], device["iccid"]) == (ICCID, None, ICCID)


@pytest.mark.pcsc
def test_a_plain_sim_over_pcsc_has_no_eid(tmp_path: Path, pcsc_sandbox: object) -> None:
    from mps_testbed.stack.pcsc import PcscSandbox
    from tests.fixtures.pcsc import ServedCard

    assert isinstance(pcsc_sandbox, PcscSandbox)
    sim = tmp_path / "sim.json"
    make_sim(sim)
    served = ServedCard(pcsc_sandbox, sim, kind="uicc").start()
    try:
        with ProcessGroup(tmp_path / "logs") as procs:
            link = start_modem(procs, tmp_path, card=None)
            done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-pcsc.toml"),
                         "--modem", str(link),
                         "--card", f"pcsc://?reader={served.reader.replace(' ', '%20')}",
                         env=pcsc_sandbox.env())
            assert done.returncode == 0, done.stderr
            data = json.loads(done.stdout)
            assert (data["eid"], data["iccid"], data["imsi"]) == (None, ICCID, IMSI)
    finally:
        served.stop()

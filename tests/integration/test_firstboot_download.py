"""First boot of a device whose eUICC has no operational profile: the agent downloads one
from the SM-DP+ over HTTPS (activation code from the command line, the environment or the
firmware profile), enables it, and registers with the new subscription; a failure names the
download step."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_profiles import PROFILE_DIR
from lpa_emulator.euicc import CardState
from mps_testbed.smdp import SmdpService, start_smdp
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script

ICCID = "8949010000000009017"
IMSI = "262010000009010"
MSISDN = "+4917600009010"


@dataclass
class Deployment:
    broker: str
    db: Path
    smdp: SmdpService
    procs: ProcessGroup
    workdir: Path

    def modem(self, card: Path | None) -> Path:
        link = self.workdir / "modem"
        argv = [*console_script("mps-emu"), "modem", "--link", str(link),
                "--state", str(self.workdir / "modem.json")]
        argv += ["--card-state", str(card)] if card else ["--no-card"]
        self.procs.start("modem", argv).wait_for_path(link, 15)
        return link


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    opfile = tmp_path / "operator.toml"
    opfile.write_text(f"""
[[contracts]]
id = "C-9"
holder = "Paul"
msisdns = ["{MSISDN}"]
  [[contracts.subscriptions]]
  iccid = "{ICCID}"
  imsi = "{IMSI}"
  msisdn = "{MSISDN}"
""")
    db = tmp_path / "reg.sqlite"
    subprocess.run([*console_script("mps-bridge"), "operator", "import", str(opfile),
                    "--db", str(db)], check=True, capture_output=True)
    with Mosquitto() as broker, ProcessGroup(tmp_path / "logs") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        smdp = start_smdp(tmp_path, procs, broker=broker.url)
        try:
            yield Deployment(broker.url, db, smdp, procs, tmp_path)
        finally:
            smdp.close()


def empty_card(path: Path) -> str:
    state = CardState.new(profiles=[])
    # The root SM-DS is asked when there is no activation code: here one that is not there.
    state.root_ds_address = "127.0.0.1:1"
    state.save(path)
    return state.eid


def agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script("mps-agent"), *args], capture_output=True,
                          text=True, timeout=90, env=env, check=False)


def test_first_boot_downloads_enables_and_registers(deployment: Deployment,
                                                    tmp_path: Path) -> None:
    card = tmp_path / "euicc.json"
    eid = empty_card(card)
    code = deployment.smdp.order(ICCID, IMSI, MSISDN)
    link = deployment.modem(None)
    args = ["run", "--profile", str(PROFILE_DIR / "emulated-emu.toml"), "--modem", str(link),
            "--card", f"emu://{card}", "--broker", deployment.broker,
            "--state-dir", str(tmp_path / "agent"), "--json",
            "--activation-code", code, "--smdp-ca", str(deployment.smdp.ca_file)]
    done = agent(*args)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["result"], out["device_id"], out["contract"]) == ("registered", eid, "C-9")
    assert out["identity"]["iccid"] == ICCID
    assert "download a profile" in out["timings_s"]
    state = CardState.load(card)
    enabled = state.enabled_profile()
    assert enabled is not None and (enabled.iccid, enabled.imsi) == (ICCID, IMSI)
    # Installation and enabling were both delivered to the SM-DP+.
    assert state.notifications == []
    # A second boot finds the profile and downloads nothing.
    again = agent(*args)
    assert again.returncode == 0, again.stderr
    assert "download a profile" not in json.loads(again.stdout)["timings_s"]
    # The SM-DP+ reported the installation to the registry, which bound ICCID to EID.
    deadline = time.monotonic() + 15
    while True:
        audit = subprocess.run([*console_script("mps-bridge"), "audit", "--db",
                                str(deployment.db), "--json"], capture_output=True, text=True,
                               check=True)
        found = [e for e in json.loads(audit.stdout) if e.get("action") == "installation"]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert found and found[0]["subject"] == ICCID and found[0]["detail"]["eid"] == eid


def test_identity_downloads_through_the_modem(deployment: Deployment, tmp_path: Path) -> None:
    card = tmp_path / "euicc.json"
    empty_card(card)
    code = deployment.smdp.order(ICCID, IMSI, MSISDN)
    link = deployment.modem(card)
    env = {**os.environ, "MPS_ACTIVATION_CODE": code,
           **deployment.smdp.agent_env()}
    done = agent("identity", "--profile", str(PROFILE_DIR / "emulated-at.toml"),
                 "--modem", str(link), "--card", f"at://{link}", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["iccid"], data["imsi"]) == (ICCID, IMSI)


def test_download_failures_name_the_step(deployment: Deployment, tmp_path: Path) -> None:
    card = tmp_path / "euicc.json"
    empty_card(card)
    link = deployment.modem(None)
    base = ["identity", "--profile", str(PROFILE_DIR / "emulated-emu.toml"), "--modem",
            str(link), "--card", f"emu://{card}", "--no-network"]
    done = agent(*base)
    assert done.returncode == 1
    assert "'ensure an enabled profile'" in done.stderr and "no activation code" in done.stderr
    assert "SM-DS 127.0.0.1:1 failed" in done.stderr
    done = agent(*base, "--activation-code", f"LPA:1${deployment.smdp.address}$NO-SUCH",
                 "--smdp-ca", str(deployment.smdp.ca_file))
    assert done.returncode == 1
    assert "'download a profile'" in done.stderr and "authenticate-client" in done.stderr
    # Without the SM-DP+'s CA its certificate does not verify.
    done = agent(*base, "--activation-code", f"LPA:1${deployment.smdp.address}$X")
    assert done.returncode == 1 and "does not verify" in done.stderr
    done = agent(*base, "--activation-code", "LPA:9$x$y")
    assert done.returncode == 1 and "format" in done.stderr
    assert CardState.load(card).profiles == []

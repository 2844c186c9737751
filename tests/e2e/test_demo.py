"""The demo's story end to end: four devices boot over real parts, an app finds them all,
a health app pairs with the user's consent and hears of a new device unasked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from mps_testbed.stack.procs import console_script
from mps_wire.identifiers import validate_eid, validate_iccid, validate_imei


def test_the_story_of_the_demo(tmp_path: Path) -> None:
    done = subprocess.run([*console_script("mps-demo"), "--json", "--workdir",
                           str(tmp_path / "demo")], capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["problems"] == []
    assert out["registered"] == 5 and out["failed"] == 0  # four at boot, the racket later
    kinds = {d["card"] for d in out["devices"]}
    assert {"emu", "at"} <= kinds
    first_four = out["devices"][:4]
    listed = {r["eid"]: r for r in out["app_devices"]}
    assert set(listed) == {d["eid"] for d in first_four}
    for d in first_four:
        record = listed[d["eid"]]
        validate_eid(record["eid"])
        validate_imei(record["imei"])
        assert validate_iccid(record["iccid"]) == d["iccid"]
        assert record["ip"], "every emulated modem reports an address"
        assert "lte" in record["capabilities"]
    # Every card started empty: first boot downloaded each profile from the SM-DP+.
    assert all(d["downloaded"] for d in out["devices"])
    story = "\n".join(out["story"])
    assert "pending" in story and "approves" in story
    assert "device-added" in story
    assert "fitness-tracker asks too: denied" in story
    assert "sees 5 devices" in story
    # Across operators: a ported number is paired at the other operator's registry.
    across = "\n".join(out["federation"])
    assert "redirected to other-mobile, followed; active there, sees 1 device" in across

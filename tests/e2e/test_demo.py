"""The demo's story end to end: four devices boot over real parts, an app finds them all."""

from __future__ import annotations

from pathlib import Path

from lpa_emulator.rig import Rig, verify
from mps_wire.identifiers import validate_eid, validate_iccid, validate_imei


def test_four_devices_boot_and_the_app_finds_all_of_them(tmp_path: Path) -> None:
    lines: list[str] = []
    result = Rig(4, workdir=tmp_path / "rig", say=lines.append).run()
    assert verify(result) == []
    assert result.registered == 4
    kinds = {d.kind for d in result.devices}
    assert {"emu", "at"} <= kinds
    listed = {r["eid"]: r for r in result.app_devices}
    assert set(listed) == {d.eid for d in result.devices}
    for d in result.devices:
        record = listed[d.eid]
        validate_eid(record["eid"])
        validate_imei(record["imei"])
        assert validate_iccid(record["iccid"]) == d.iccid
        assert record["ip"], "every emulated modem reports an address"
        assert "lte" in record["capabilities"]
    # The human table shows every EID too.
    for d in result.devices:
        assert d.eid in result.app_table
    assert any("registry" in line for line in lines)

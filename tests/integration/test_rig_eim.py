"""``mps-emu rig --eim``: emulated devices whose cards leave the factory empty with an eIM
associated boot headless (no activation code), their profile ordered by the eIM (SGP.32
3.2), register, and the app sees them; the eIM holds each device's finished work."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpa_emulator import cli as emu_cli
from lpa_emulator.eim.store import EimStore
from mps_testbed.eim import EimProfiles
from mps_testbed.rig import Rig


def test_devices_boot_headless_through_the_eim(tmp_path: Path) -> None:
    rig = Rig(3, kinds=["emu", "at"], workdir=tmp_path, say=lambda _line: None,
              progress=False, profiles=EimProfiles())
    result = rig.run()
    assert (result.registered, result.failed) == (3, 0)
    assert len(result.app_devices) == 3
    store = EimStore(tmp_path / "eim" / "eim.db")
    try:
        packages = store.packages()
        assert sorted((p.kind, p.state) for p in packages) == sorted(
            [("ipaEuiccData", "done"), ("download", "done")] * 3)
        installed = {e["iccid"] for e in store.events(kind="download") if e["installed"]}
        assert installed == {d.iccid for d in result.devices}
    finally:
        store.close()


def test_eim_does_not_go_with_preloaded_cards(capsys: pytest.CaptureFixture[str]) -> None:
    assert emu_cli.main(["rig", "--devices", "1", "--eim", "--preloaded"]) == 2
    assert "--preloaded" in capsys.readouterr().err

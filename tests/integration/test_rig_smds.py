"""``mps-emu rig --smds``: emulated devices whose cards leave the factory empty with a root
SM-DS (ES10a rootDsAddress) and no activation code or default SM-DP+ boot through the
SM-DS (SGP.22 3.6.3: ES11 event retrieval, then the download from the SM-DP+ the event
names), register, and the SM-DP+ deletes each event once installed (ES12.DeleteEvent,
SGP.22 5.9.2). Real HTTPS, real processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lpa_emulator import cli as emu_cli
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.orders import OrderStore
from mps_testbed.rig import Rig
from mps_testbed.smds import EimSmdsProfiles, SmdsProfiles


def test_devices_find_their_profile_through_the_root_smds(tmp_path: Path) -> None:
    profiles = SmdsProfiles()
    rig = Rig(2, kinds=["emu", "at"], workdir=tmp_path, say=lambda _line: None,
              progress=False, profiles=profiles)
    result = rig.run()
    assert (result.registered, result.failed) == (2, 0)
    assert len(result.app_devices) == 2
    for device in result.devices:
        state = CardState.load(device.card_state)
        enabled = state.enabled_profile()
        assert state.root_ds_address == profiles.smds_address
        assert enabled is not None and enabled.iccid == device.iccid
        assert "activation" not in device.profile.read_text()
    store = OrderStore.in_dir(tmp_path / "smdp" / "data")
    try:
        orders = {o.iccid: o for o in store.all()}
        deadline = time.monotonic() + 30
        for device in result.devices:
            mid = orders[device.iccid].matching_id
            while store.event_of(mid) != (profiles.smds_address, True):
                assert time.monotonic() < deadline, f"event {mid} not deleted"
                time.sleep(0.05)
    finally:
        store.close()


def test_smds_does_not_go_with_eim_or_preloaded(capsys: pytest.CaptureFixture[str]) -> None:
    assert emu_cli.main(["rig", "--devices", "1", "--smds", "--eim"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert emu_cli.main(["rig", "--devices", "1", "--smds", "--preloaded"]) == 2
    assert "--preloaded" in capsys.readouterr().err


def test_smds_eim_and_codes_side_by_side(tmp_path: Path) -> None:
    """The demo's mix: the first card finds its profile through the SM-DS, the next boots
    headless through the eIM (SGP.32), the last carries its activation code."""
    profiles = EimSmdsProfiles(through_smds=1, headless=1)
    rig = Rig(3, kinds=["emu"], workdir=tmp_path, say=lambda _line: None, progress=False,
              profiles=profiles)
    result = rig.run()
    assert (result.registered, result.failed) == (3, 0)
    first, second, third = sorted(result.devices, key=lambda d: d.index)
    assert CardState.load(first.card_state).root_ds_address == profiles.smds_address
    assert "activation" not in first.profile.read_text()
    assert f'eim = "{profiles.address}"' in second.profile.read_text()
    assert "code = " in third.profile.read_text()
    assert profiles.smds_address != profiles.address

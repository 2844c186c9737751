"""TS.48-shaped profile packages made by a second encoder (:mod:`tests.profile_packages`,
header ICCID non-swapped as the TCA eUICC Profile Package specification v2.3 codes it),
bound by the SM-DP+ and installed over every card link and through ``mps-lpa``.

The card reports the ICCID of EF.ICCID (ETSI TS 102 221 13.2) in ProfileInfo (SGP.22
5.7.15) and in the installation result's notification (SGP.22 5.7.6), as a real card does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import lpa_cli
from lpa_emulator import pki
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.orders import OrderState
from mps_esim.lpa.download import Es10bOverStoreData, ProfileDownloader
from mps_esim.lpa.es10 import Es10Client
from tests import profile_packages as pp
from tests.fixtures.cards import LinkUnderTest, write_link_card
from tests.rsp_support import Served, served_smdp


@pytest.fixture(scope="module")
def builtin_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, builtin_ci=True, euicc_count=0)
    return root


@pytest.fixture
def served(builtin_pki: Path, tmp_path: Path) -> Iterator[Served]:
    with served_smdp(builtin_pki, tmp_path / "smdp") as s:
        for profile in pp.SHIPPED.values():
            s.smdp.packages[profile.iccid] = pp.ts48_package(profile)
        yield s


def _order(served: Served, name: str) -> tuple[pp.Ts48, str]:
    profile = pp.SHIPPED[name]
    assert (pp.DATA / name).read_bytes() == served.smdp.packages[profile.iccid]
    order = served.store.add(iccid=profile.iccid, imsi=profile.imsi, msisdn=profile.msisdn)
    return profile, order.matching_id


def test_ts48_package_installs_over_every_link(card_link: LinkUnderTest,
                                               served: Served) -> None:
    profile, matching_id = _order(served, "ts48-generic-19.der")
    with card_link.link.open_isdr() as isdr:
        es10 = Es10Client(isdr)
        result = ProfileDownloader(Es10bOverStoreData(es10), served.client).download(
            served.address, matching_id)
        assert result.iccid == profile.iccid and result.notification_sent
        listed = {p.iccid for p in es10.list_profiles()}
        assert profile.iccid in listed
        es10.enable_profile(iccid=profile.iccid)
    record = card_link.state.find_profile(iccid=profile.iccid)
    assert record is not None
    assert (record.imsi, record.ki, record.opc, record.msisdn) == (
        profile.imsi, profile.ki, profile.opc, profile.msisdn)
    found = served.store.get(matching_id)
    assert found is not None and found.state is OrderState.INSTALLED
    assert served.reports.items[-1].iccid == profile.iccid
    assert card_link.link.read_iccid() == profile.iccid


def test_ts48_package_installs_through_mps_lpa(tmp_path: Path, served: Served,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    card = write_link_card(tmp_path / "card.json")
    profile, matching_id = _order(served, "ts48-generic-20.der")
    code = lpa_cli.main(["--apdu", "emu", "--state", str(card), "--json", "profile",
                         "download", "-a", f"LPA:1${served.address}${matching_id}",
                         "--ca", str(served.ca), "--enable"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["iccid"] == profile.iccid
    enabled = CardState.load(card).enabled_profile()
    assert enabled is not None and (enabled.iccid, enabled.imsi) == (profile.iccid,
                                                                      profile.imsi)

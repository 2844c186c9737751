"""First boot through the eIM (SGP.32 3.2: profile download initiated by the eIM, the
IPAd talking ES9+ to the SM-DP+ directly): an eUICC with no profile, associated with an
eIM at manufacture (AddInitialEim, SGP.32 5.9), and no activation code boots, gets its
profile, and enables it; the SM-DP+ receives the installation result as with any
download (so the registry binds EID and ICCID the same way). The daemon's rounds then run
the eIM's PSMOs. Real HTTPS for the eIM and the SM-DP+, the software eUICC in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.activation import ActivationError, ActivationPlan, ensure_operational_profile
from agent.card.emu import EmuCardLink
from agent.ipa import daemon_round
from lpa_emulator.eim.service import Eim
from lpa_emulator.euicc import CardState, EuiccCard
from lpa_emulator.smdp.orders import OrderState
from mps_esim.ipa import card as ipa_card
from mps_esim.lpa.es10 import Es10Client
from mps_wire.identifiers import make_eid
from tests.fixtures.eim import ServedEim
from tests.rsp_support import IsdrChannel, Served, new_subscription

EID = make_eid("890490320000000000000000006161")


def empty_card(path: Path, eim: Eim) -> Path:
    """A card as it leaves the factory: no profile, its eIM associated."""
    CardState.new(eid=EID, profiles=[]).save(path)
    ipa_card.add_initial_eim(Es10Client(IsdrChannel(EuiccCard.open(path))), [eim.config()])
    eim.associate(EID)
    return path


def test_first_boot_without_activation_code_through_the_eim(
        tmp_path: Path, eim_smdp: Served, eim_server: ServedEim) -> None:
    served, eim = eim_smdp, eim_server.eim
    card = empty_card(tmp_path / "card.json", eim)
    plan = ActivationPlan(ca_file=served.ca)
    link = EmuCardLink(card)
    link.connect()
    try:
        with pytest.raises(ActivationError, match="ordered no profile"):
            ensure_operational_profile(link, plan)
        iccid, imsi = new_subscription()
        order = served.store.add(iccid=iccid, imsi=imsi, eid=EID)
        eim.order_download(EID, f"LPA:1${served.address}${order.matching_id}")
        started: list[bool] = []
        outcome = ensure_operational_profile(link, plan, on_download=lambda: started.append(True))
        assert (outcome.iccid, outcome.action, started) == (iccid, "downloaded", [True])
        assert ensure_operational_profile(link, plan).action == "present"
        # The SM-DP+ has the installation result, as for any download: what the registry
        # binds EID and ICCID by.
        found = served.store.get(order.matching_id)
        assert found is not None and found.state is OrderState.INSTALLED and found.eid == EID
        assert [r.iccid for r in served.reports.items] == [iccid]

        # The daemon's round runs the PSMOs the eIM queues since.
        eim.queue_operations(EID, [{"kind": "listProfileInfo"}])
        outcomes = daemon_round(link, plan)
        assert [o.detail.get("operations") for o in outcomes] == [[["listProfileInfo", "ok"]]]
        assert daemon_round(link, plan) == []
    finally:
        link.close()
    enabled = CardState.load(card).enabled_profile()
    assert enabled is not None and enabled.iccid == iccid


def test_an_sgp22_card_without_an_eim_still_uses_its_activation_path(
        tmp_path: Path, eim_smdp: Served) -> None:
    served = eim_smdp
    path = tmp_path / "card.json"
    state = CardState.new(eid=EID, profiles=[])
    state.root_ds_address = ""  # no public SM-DS is ever asked by a test
    state.save(path)
    link = EmuCardLink(path)
    link.connect()
    try:
        # No eIM on the card and none configured: the SGP.22 paths are taken as before.
        with pytest.raises(ActivationError, match="names no root SM-DS"):
            ensure_operational_profile(link, ActivationPlan(ca_file=served.ca))
        assert daemon_round(link, ActivationPlan()) == []
    finally:
        link.close()

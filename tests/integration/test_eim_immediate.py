"""Immediate Profile Enabling and the rollback of an enable, through a real eIM on HTTPS
(SGP.32 v1.2 2.11.1.1 configureImmediateEnable and enable's rollbackFlag, 3.4.1, 5.9.16
ES10b.ProfileRollback): the eIM queues the PSMOs, the IPA's rounds run them on the
software eUICC, the eIM verifies each signed result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
from mps_esim.ipa import card as ipa_card
from mps_esim.ipa.esipa import EsipaClient
from mps_esim.ipa.poll import poll, profile_downloader
from mps_esim.lpa.es9 import Es9TransportError
from mps_esim.lpa.es10 import Es10Client
from mps_wire.identifiers import make_eid, make_iccid
from tests.fixtures.eim import ServedEim
from tests.rsp_support import IsdrChannel, Served, new_subscription

EID = make_eid("890490320000000000000000007272")
ICCID_A = make_iccid("894900000000000081")
ICCID_B = make_iccid("894900000000000082")


def card(path: Path, eim: ServedEim, profiles: list[ProfileRecord]) -> Es10Client:
    CardState.new(eid=EID, profiles=profiles).save(path)
    client = Es10Client(IsdrChannel(EuiccCard.open(path)))
    ipa_card.add_initial_eim(client, [eim.eim.config()])
    eim.eim.associate(EID)
    return client


def enabled(path: Path) -> str | None:
    profile = CardState.load(path).enabled_profile()
    return None if profile is None else profile.iccid


def test_a_profile_is_enabled_on_installation_once_configured(
        tmp_path: Path, eim_smdp: Served, eim_server: ServedEim) -> None:
    served, eim = eim_smdp, eim_server.eim
    path = tmp_path / "card.json"
    client = card(path, eim_server, [])
    eim.queue_operations(EID, [{"kind": "configureImmediateEnable", "enable": True,
                                "smdp_address": served.address}])
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi, eid=EID)
    eim.order_download(EID, f"LPA:1${served.address}${order.matching_id}")
    with EsipaClient(eim_server.address, ca_file=served.ca) as esipa:
        rounds = poll(client, esipa, EID, downloader=profile_downloader(client, served.client))
    assert [r.kind for r in rounds] == ["ipaEuiccDataRequest", "euiccPackageRequest",
                                        "profileDownloadTriggerRequest"]
    assert rounds[1].detail["operations"] == [["configureImmediateEnable", "ok"]]
    # The IPA did not enable it: the eUICC did, right after installing it.
    assert enabled(path) == iccid
    assert CardState.load(path).default_dp_address == served.address
    (result,) = eim.store.events(EID, "euiccPackageResult")
    assert result["verified"] and result["operations"] == [["configureImmediateEnable", "ok"]]


def test_a_profile_from_another_smdp_waits_to_be_enabled(
        tmp_path: Path, eim_smdp: Served, eim_server: ServedEim) -> None:
    served, eim = eim_smdp, eim_server.eim
    path = tmp_path / "card.json"
    client = card(path, eim_server, [])
    eim.queue_operations(EID, [{"kind": "configureImmediateEnable", "enable": True,
                                "smdp_oid": "2.999.4242"}])
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi, eid=EID)
    eim.order_download(EID, f"LPA:1${served.address}${order.matching_id}")
    with EsipaClient(eim_server.address, ca_file=served.ca) as esipa:
        poll(client, esipa, EID, downloader=profile_downloader(client, served.client))
    assert [p.iccid for p in CardState.load(path).profiles] == [iccid]
    assert enabled(path) is None


class NoRouteOnce(EsipaClient):
    """The eIM as the device sees it when the profile just enabled gives no connectivity:
    the first result after the enable does not get through."""

    failed = False

    def provide_eim_package_result(self, eid: str, kind: str, result: bytes,
                                   notifications: Any = ()) -> list[int]:
        if kind == "euiccPackageResult" and not self.failed:
            self.failed = True
            raise Es9TransportError("no route to the eIM")
        return super().provide_eim_package_result(eid, kind, result, notifications)


def test_the_ipa_rolls_back_when_the_new_profile_gives_no_way_to_the_eim(
        tmp_path: Path, eim_smdp: Served, eim_server: ServedEim) -> None:
    served, eim = eim_smdp, eim_server.eim
    path = tmp_path / "card.json"
    client = card(path, eim_server, [
        ProfileRecord(iccid=ICCID_A, imsi="262011234500081", enabled=True),
        ProfileRecord(iccid=ICCID_B, imsi="262011234500082",
                      isdp_aid=bytes.fromhex("A0000005591010FFFFFFFF8900001200"))])
    with EsipaClient(eim_server.address, ca_file=served.ca) as esipa:
        assert [r.kind for r in poll(client, esipa, EID)] == ["ipaEuiccDataRequest"]
    eim.queue_operations(EID, [{"kind": "enable", "iccid": ICCID_B, "rollback": True}])
    with NoRouteOnce(eim_server.address, ca_file=served.ca) as esipa:
        (rolled,) = poll(client, esipa, EID)
    assert rolled.detail["rolled_back"] is True
    assert enabled(path) == ICCID_A
    (package,) = [p for p in eim.store.packages(EID) if p.kind == "euiccPackage"]
    assert package.state == "done"
    (result,) = eim.store.events(EID, "euiccPackageResult")
    assert result["verified"] and result["operations"] == [["rollback", "ok"]]
    # The enable's own result is still on the eUICC: the eIM gets it on a later round.
    assert len(ipa_card.package_results(client)) == 1
    assert CardState.load(path).iot.rollback is None


def test_ecos_through_the_eim(tmp_path: Path, eim_smdp: Served, eim_server: ServedEim) -> None:
    """SGP.32 2.11.1.1 eCOs queued by the operator, run by the IPA's rounds: another eIM
    is added, listed, updated and deleted; each result verified by the eIM."""
    from lpa_emulator.eim.service import Eim
    from lpa_emulator.eim.store import EimStore

    eim = eim_server.eim
    client = card(tmp_path / "card.json", eim_server, [])
    other_store = EimStore(tmp_path / "other.db")
    try:
        other = Eim.create(other_store, "eim.other.test", "other.example:8444").config()
    finally:
        other_store.close()
    moved = replace(other, fqdn="moved.example:8444")
    for ops in ([{"kind": "addEim", "config": other.encode().hex()}, {"kind": "listEim"}],
                [{"kind": "updateEim", "config": moved.encode().hex()}],
                [{"kind": "deleteEim", "eim_id": "eim.other.test"}]):
        eim.queue_operations(EID, ops)
    with EsipaClient(eim_server.address, ca_file=eim_smdp.ca) as esipa:
        rounds = poll(client, esipa, EID)[1:]  # after the certificate request
    assert [r.detail["operations"] for r in rounds] == [
        [["addEim", "ok"], ["listEim", "ok"]], [["updateEim", "ok"]], [["deleteEim", "ok"]]]
    assert all(r["verified"] for r in eim.store.events(EID, "euiccPackageResult"))
    assert [e.eim_id for e in ipa_card.get_eim_configuration(client)] == [eim.eim_id]

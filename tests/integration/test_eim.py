"""Zero-touch provisioning through an eIM (SGP.32): the eIM on real HTTPS with its state in
SQLite, the IPA polling it over ESipa, the SM-DP+ on HTTPS, the software eUICC reached
over every card link (in-process, real pcscd + vpcd, the emulated modem's AT+CCHO/CGLA
and AT+CSIM).

The eIM triggers a download (ProfileDownloadTriggerRequest with an activation code, SGP.32
2.11.1.3, 3.2), the IPA downloads from the SM-DP+ (SGP.22 ES9+) and returns the signed
ProfileInstallationResult; then eIM-signed PSMOs enable, disable and delete the profile
(SGP.32 2.11.1.1, 3.3), each result verified by the eIM against CERT.EUICC it asked the
IPA for (IpaEuiccDataRequest, 2.11.1.2), and the notifications reach the eIM, which
acknowledges them (EimAcknowledgements) so the eUICC forgets them.
"""

from __future__ import annotations

from mps_esim.ipa import card as ipa_card
from mps_esim.ipa.esipa import EsipaClient
from mps_esim.ipa.poll import poll, profile_downloader
from mps_esim.lpa.es10 import Es10Client
from tests.fixtures.cards import LINK_EID, LINK_ICCID_A, LinkUnderTest
from tests.fixtures.eim import ServedEim
from tests.rsp_support import Served, new_subscription


def test_download_triggered_by_the_eim_then_psmo_round(
        card_link: LinkUnderTest, eim_smdp: Served, eim_server: ServedEim) -> None:
    served, service, address = eim_smdp, eim_server.eim, eim_server.address
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    with card_link.link.open_isdr() as isdr, EsipaClient(address, ca_file=served.ca) as esipa:
        client = Es10Client(isdr)
        # Provisioning: the IPA gives the eUICC its initial eIM; the eIM learns the EID.
        ipa_card.add_initial_eim(client, [service.config()])
        service.associate(LINK_EID)
        service.order_download(LINK_EID, f"LPA:1${served.address}${order.matching_id}")
        rounds = poll(client, esipa, LINK_EID,
                      downloader=profile_downloader(client, served.client))
        assert [r.kind for r in rounds] == ["ipaEuiccDataRequest",
                                            "profileDownloadTriggerRequest"]
        assert rounds[1].detail["iccid"] == iccid
        (installed,) = service.store.events(LINK_EID, "download")
        assert installed["installed"] and installed["iccid"] == iccid
        euicc = service.store.euicc(LINK_EID)
        assert euicc is not None and euicc.euicc_certificate is not None

        # PSMOs: enable the new profile (the old one is disabled with it), then back, then
        # delete the new one. Each result is signed by the eUICC and checked by the eIM.
        for ops in ([{"kind": "enable", "iccid": iccid}],
                    [{"kind": "enable", "iccid": LINK_ICCID_A}],
                    [{"kind": "delete", "iccid": iccid}, {"kind": "listProfileInfo"}]):
            service.queue_operations(LINK_EID, ops)
        rounds = poll(client, esipa, LINK_EID)
        assert [r.detail["operations"] for r in rounds] == [
            [["enable", "ok"]], [["enable", "ok"]],
            [["delete", "ok"], ["listProfileInfo", "ok"]]]
        assert all(p.state == "done" for p in service.store.packages(LINK_EID))
        results = service.store.events(LINK_EID, "euiccPackageResult")
        assert [r["verified"] for r in results] == [True, True, True]
        # The notifications (disable, enable, ..., delete) went to the eIM with the results,
        # were acknowledged, and the eUICC forgot them and the results.
        notes = [(n["operation"], n["iccid"]) for n in service.store.events(
            LINK_EID, "notification")]
        assert ("delete", iccid) in notes and ("enable", iccid) in notes
        assert client.list_notifications() == []
        assert ipa_card.package_results(client) == []
        assert iccid not in [p.iccid for p in client.list_profiles()]
    assert card_link.link.read_iccid() == LINK_ICCID_A

"""Indirect profile download (SGP.32 v1.2 3.2.3; ESipa 6.3 initiateAuthentication,
authenticateClient, getBoundProfilePackage, handleNotification, cancelSession): the eUICC's
eIM configuration carries indirectProfileDownload, so the IPA runs the SGP.22 download
against the eIM, which relays ES9+ to the SM-DP+ on the device's behalf. Real HTTPS for
both servers, the software eUICC in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lpa_emulator import pki
from lpa_emulator.eim.http import EimHttpServer
from lpa_emulator.eim.relay import Es9Relay
from lpa_emulator.eim.service import Eim
from lpa_emulator.eim.store import EimStore
from lpa_emulator.euicc import CardState, EuiccCard
from lpa_emulator.smdp.http import tls_context
from lpa_emulator.smdp.orders import OrderState
from mps_esim.ipa import card as ipa_card
from mps_esim.ipa.esipa import EsipaClient
from mps_esim.ipa.poll import downloader_for, indirect, poll
from mps_esim.lpa.es9 import Es9FunctionError
from mps_esim.lpa.es10 import Es10Client
from mps_wire.identifiers import make_eid
from tests.fixtures.eim import ServedEim
from tests.rsp_support import IsdrChannel, Served, new_subscription

EID = make_eid("890490320000000000000000007373")


@pytest.fixture
def relaying_eim(eim_pki: Path, eim_smdp: Served, tmp_path: Path) -> Iterator[ServedEim]:
    """An eIM that relays ES9+ to the test SM-DP+ only."""
    store = EimStore(tmp_path / "relay-eim.db")
    eim = Eim.create(store, "eim.relay.test", "localhost")
    eim.relay = Es9Relay([eim_smdp.address], ca_file=eim_smdp.ca)
    server = EimHttpServer(eim, ssl_context=tls_context(eim_pki / pki.TLS_CERT,
                                                        eim_pki / pki.TLS_KEY))
    port = server.start()
    eim.fqdn = eim.address = f"localhost:{port}"
    try:
        yield ServedEim(eim, server, tmp_path / "relay-eim.db")
    finally:
        server.stop()
        store.close()


def test_the_eim_downloads_on_the_devices_behalf(
        tmp_path: Path, eim_smdp: Served, relaying_eim: ServedEim) -> None:
    served, eim = eim_smdp, relaying_eim.eim
    path = tmp_path / "card.json"
    CardState.new(eid=EID, profiles=[]).save(path)
    client = Es10Client(IsdrChannel(EuiccCard.open(path)))
    config = eim.config()
    assert config.indirect_download
    ipa_card.add_initial_eim(client, [config])
    eim.associate(EID)
    address = str(eim.fqdn)  # as the eUICC names it
    assert indirect(client, address)
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi, eid=EID)
    eim.order_download(EID, f"LPA:1${served.address}${order.matching_id}")

    def no_direct_route(address: str) -> EsipaClient:
        raise AssertionError(f"the IPA went to {address} itself")

    with EsipaClient(address, ca_file=served.ca) as esipa:
        rounds = poll(client, esipa, EID, downloader=downloader_for(
            client, esipa, no_direct_route, via_eim=True))
    assert [r.kind for r in rounds] == ["ipaEuiccDataRequest", "profileDownloadTriggerRequest"]
    assert rounds[1].detail["iccid"] == iccid
    assert [p.iccid for p in CardState.load(path).profiles] == [iccid]
    # Every ES9+ call went through the eIM, the installation result included: the SM-DP+
    # holds it (and reports it to the registry) as for a direct download.
    assert eim.relay is not None
    assert dict(eim.relay.forwarded) == {"initiateAuthentication": 1, "authenticateClient": 1,
                                         "getBoundProfilePackage": 1,
                                         "handleNotification": 1}
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED and found.eid == EID
    assert [r.iccid for r in served.reports.items] == [iccid]
    (download,) = eim.store.events(EID, "download")
    assert download["installed"] and download["iccid"] == iccid


def test_the_relay_goes_only_where_it_is_configured(
        eim_smdp: Served, relaying_eim: ServedEim, eim_server: ServedEim) -> None:
    with EsipaClient(relaying_eim.address, ca_file=eim_smdp.ca) as esipa:
        with pytest.raises(Es9FunctionError, match=r"8\.8\.1/3\.8") as refused:
            esipa.initiate_authentication("elsewhere.example:443", b"\x01" * 16, b"\x30\x00")
        assert "does not relay" in refused.value.message
        with pytest.raises(Es9FunctionError, match=r"8\.10\.1/3\.9"):
            esipa.authenticate_client(b"\x01\x02", b"\x30\x00")
        # The SM-DP+'s own refusal comes back as it gave it (a malformed euiccInfo1).
        with pytest.raises(Es9FunctionError) as smdp_refused:
            esipa.initiate_authentication(eim_smdp.address, b"\x01" * 16, b"\x30\x00")
        assert smdp_refused.value.subject.startswith("8.") or smdp_refused.value.subject == "1.2"
    # An eIM without a relay offers no indirect download, and says so.
    assert not eim_server.eim.config().indirect_download
    with EsipaClient(eim_server.address, ca_file=eim_smdp.ca) as esipa, pytest.raises(
            Es9FunctionError, match="no indirect profile download"):
        esipa.initiate_authentication(eim_smdp.address, b"\x01" * 16, b"\x30\x00")

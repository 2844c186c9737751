"""Where profile orders come from and how devices find them: the operator's data file,
orders made for an EID and downloaded from the eUICC's default SM-DP+, and the SM-DP+ a
rig starts for its devices (:func:`mps_testbed.smdp.start_smdp`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpa_emulator import pki
from lpa_emulator.euicc import CardState, EuiccCard
from lpa_emulator.smdp.errors import OrderError
from lpa_emulator.smdp.operator import read_subscriptions
from lpa_emulator.smdp.orders import OrderState, OrderStore
from mps_esim.lpa.activation import parse_activation_code
from mps_esim.lpa.download import ProfileDownloader, ServerRefusedError
from mps_esim.lpa.es9 import Es9Client
from mps_esim.lpa.es10 import Es10Client
from mps_testbed.smdp import SmdpProfiles, start_smdp
from mps_testbed.stack.procs import ProcessGroup
from mps_wire.identifiers import make_eid, make_iccid
from tests.rsp_support import IsdrChannel, Served, card_for, es10b, new_subscription, served_smdp

EID = make_eid("890490320000000000000000008001")
OTHER_EID = make_eid("890490320000000000000000008002")

OPERATOR_TOML = """
[[contracts]]
id = "C-1"
holder = "Paul"
msisdns = ["+4915112345001"]
  [[contracts.subscriptions]]
  iccid = "{iccid1}"
  imsi = "262010000008001"
  msisdn = "+4915112345001"

  [[contracts.subscriptions]]
  iccid = "{iccid2}"
  imsi = "262010000008002"
  eid = "{eid}"

[[apps]]
id = "health"
name = "Health"
trust = "verified"
purposes = ["health"]
"""


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=[EID, OTHER_EID])
    return root


@pytest.fixture
def served(pki_dir: Path, tmp_path: Path) -> Iterator[Served]:
    with served_smdp(pki_dir, tmp_path / "smdp") as s:
        yield s


def emu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lpa_emulator.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_orders_from_the_operator_data(tmp_path: Path) -> None:
    iccid1, iccid2 = make_iccid("894901000000008001"), make_iccid("894901000000008002")
    data = tmp_path / "operator.toml"
    data.write_text(OPERATOR_TOML.format(iccid1=iccid1, iccid2=iccid2, eid=EID))
    assert [(s.iccid, s.msisdn, s.eid, s.contract) for s in read_subscriptions(data)] == [
        (iccid1, "+4915112345001", None, "C-1"), (iccid2, None, EID, "C-1")]
    args = ("smdp", "order", "--from-operator", str(data), "--data", str(tmp_path / "d"),
            "--address", "smdp.example.com", "--json")
    first = emu(*args)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert [(r["iccid"], r["new"], r["eid"]) for r in rows] == [
        (iccid1, True, None), (iccid2, True, EID)]
    codes = [parse_activation_code(r["activation_code"]) for r in rows]
    assert {c.address for c in codes} == {"smdp.example.com"}
    # The same file again orders nothing new and gives the same codes.
    again = json.loads(emu(*args).stdout)
    assert [r["new"] for r in again] == [False, False]
    assert [r["activation_code"] for r in again] == [r["activation_code"] for r in rows]
    # A bad entry is named, and nothing is ordered from that file.
    data.write_text(OPERATOR_TOML.format(iccid1="1234", iccid2=iccid2, eid=EID))
    bad = emu(*args)
    assert bad.returncode == 1 and "contracts[0].subscriptions[0]" in bad.stderr
    usage = emu("smdp", "order", "--data", str(tmp_path / "d"), "--address", "x.example")
    assert usage.returncode == 2


def test_operator_data_must_agree_with_existing_orders(tmp_path: Path) -> None:
    iccid1, iccid2 = make_iccid("894901000000008011"), make_iccid("894901000000008012")
    data = tmp_path / "operator.json"
    data.write_text(json.dumps({"contracts": [{"id": "C", "subscriptions": [
        {"iccid": iccid1, "imsi": "262010000008011"}]}]}))
    store = OrderStore.in_dir(tmp_path)
    try:
        store.add(iccid=iccid1, imsi="262010000009999")
        from lpa_emulator.smdp.operator import order_subscriptions

        with pytest.raises(OrderError, match="IMSI"):
            order_subscriptions(store, read_subscriptions(data))
        data.write_text(json.dumps({"contracts": [{"subscriptions": [
            {"iccid": iccid2, "imsi": "262010000008012"},
            {"iccid": iccid2, "imsi": "262010000008013"}]}]}))
        with pytest.raises(OrderError, match="two subscriptions"):
            read_subscriptions(data)
    finally:
        store.close()


def test_download_from_the_default_smdp(served: Served, pki_dir: Path) -> None:
    iccid, imsi = new_subscription()
    served.store.add(iccid=iccid, imsi=imsi, eid=EID)
    card = card_for(pki_dir, EID)
    Es10Client(IsdrChannel(card)).set_default_dp_address(served.address)
    # No activation code: the card's default SM-DP+ and no matching id.
    result = ProfileDownloader(es10b(card), served.client).download(served.address, None)
    assert result.iccid == iccid
    found = served.store.by_iccid(iccid)
    assert found is not None and found.state is OrderState.INSTALLED
    # Another eUICC at the same SM-DP+ finds nothing waiting for it.
    other = card_for(pki_dir, OTHER_EID)
    Es10Client(IsdrChannel(other)).set_default_dp_address(served.address)
    with pytest.raises(ServerRefusedError) as info:
        ProfileDownloader(es10b(other), served.client).download(served.address, None)
    assert (info.value.subject, info.value.reason) == ("8.2.6", "3.8")


@pytest.mark.parametrize("identity", ["builtin", "pki"])
def test_started_smdp_serves_cards_made_with_or_without_a_pki(tmp_path: Path,
                                                              identity: str) -> None:
    with ProcessGroup(tmp_path / "logs") as procs:
        smdp = start_smdp(tmp_path, procs)
        try:
            if identity == "builtin":
                card = EuiccCard.from_state(CardState.new(profiles=[]))
            else:
                # A card issued from the SM-DP+'s own PKI directory (its EUM key is there).
                pki.issue_euicc(smdp.pki_dir, EID)
                card = card_for(smdp.pki_dir, EID)
            iccid, imsi = new_subscription()
            code = parse_activation_code(smdp.order(iccid, imsi, "+4915100008001"))
            assert code.address == smdp.address and code.address.startswith("localhost:")
            downloader = ProfileDownloader(
                es10b(card), lambda a: Es9Client(a, ca_file=smdp.agent_env()["MPS_SMDP_CA"]))
            assert downloader.download(code.address, code.matching_id).iccid == iccid
            assert card.state.find_profile(iccid=iccid) is not None
        finally:
            smdp.close()


class _Device:
    def __init__(self, workdir: Path, n: int) -> None:
        self.iccid = make_iccid(f"8949010000000081{n:02d}")
        self.imsi = f"2620100000081{n:02d}"
        self.msisdn = f"+49151000081{n:02d}"
        self.card_state = workdir / f"dev{n}" / "euicc.json"


def test_rig_profile_source(tmp_path: Path) -> None:
    source = SmdpProfiles()
    with ProcessGroup(tmp_path / "logs") as procs:
        source.start(procs, tmp_path)
        try:
            device = _Device(tmp_path, 1)
            eid = source.make_card(device)
            state = CardState.load(device.card_state)
            assert state.eid == eid and state.profiles == []
            activation = source.activation(device)
            assert activation is not None
            code = parse_activation_code(activation["code"])
            ca = source.agent_env()["MPS_SMDP_CA"]
            card = EuiccCard.open(device.card_state)
            result = ProfileDownloader(es10b(card), lambda a: Es9Client(a, ca_file=ca)).download(
                code.address, code.matching_id)
            assert result.iccid == device.iccid
        finally:
            source.close()

"""The SM-DS (SGP.22 3.6): an SM-DP+ registers an event for an EID over ES12, the LPA
retrieves it over ES11 after mutual authentication with CERT.DSauth and no matching id
(SGP.22 3.6.3, 5.7.13), and downloads the profile the event points to (SGP.22 3.1.2: the
event id is the matching id). Real HTTPS, real crypto, the software eUICC through STORE
DATA.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent import lpa_cli
from agent.activation import ActivationError, ActivationPlan, ensure_operational_profile
from agent.card.emu import EmuCardLink
from lpa_emulator import pki
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.events import EventDeleter, register_event
from lpa_emulator.smdp.orders import OrderState
from mps_esim.lpa.activation import parse_activation_code
from mps_esim.lpa.download import ServerRefusedError
from mps_esim.lpa.es9 import Es9FunctionError
from mps_esim.lpa.es11 import Es11Client, EventEntry
from mps_esim.sgp22 import rsp
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire.identifiers import make_eid
from tests.fixtures.cards import LINK_EID, write_link_card
from tests.rsp_support import (
    Served,
    ServedSmds,
    card_for,
    new_subscription,
    served_smdp,
    served_smds,
)

EID = make_eid("890490320000000000000000088001")
OTHER_EID = make_eid("890490320000000000000000088002")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=[EID, OTHER_EID])
    return root


@pytest.fixture
def servers(pki_dir: Path, tmp_path: Path) -> Iterator[tuple[Served, ServedSmds]]:
    with served_smdp(pki_dir, tmp_path / "smdp") as smdp, served_smds(pki_dir) as smds:
        yield smdp, smds


def test_event_registered_found_and_downloaded(pki_dir: Path,
                                               servers: tuple[Served, ServedSmds]) -> None:
    smdp, smds = servers
    iccid, imsi = new_subscription()
    order = smdp.store.add(iccid=iccid, imsi=imsi, eid=EID)
    smds.es12().register_event(EID, order.matching_id, smdp.address)
    card = card_for(pki_dir, EID)
    downloader = smdp.downloader(card)
    events = downloader.discover(smds.es11(), smds.address)
    assert events == (EventEntry(order.matching_id, smdp.address),)
    # Another eUICC has no events; the events stay until the SM-DP+ deletes them.
    assert smdp.downloader(card_for(pki_dir, OTHER_EID)).discover(
        smds.es11(), smds.address) == ()
    result = downloader.download(events[0].rsp_server_address, events[0].event_id)
    assert result.iccid == iccid and result.notification_sent
    found = smdp.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED
    smds.es12().delete_event(EID, order.matching_id)
    assert downloader.discover(smds.es11(), smds.address) == ()


def test_register_event_checks_its_fields(servers: tuple[Served, ServedSmds]) -> None:
    _, smds = servers
    with pytest.raises(Es9FunctionError) as exc:
        smds.es12().register_event("8904903200000000000000000000000", "X", "a.example")
    assert (exc.value.subject, exc.value.reason) == ("1.2", "2.1")
    assert smds.smds.events_for(EID) == []


def test_smds_refuses_another_address_and_a_replayed_transaction(
        pki_dir: Path, servers: tuple[Served, ServedSmds]) -> None:
    """ES11.InitiateAuthentication names the SM-DS's own address (SGP.22 5.8.1); a
    transaction serves one AuthenticateClient."""
    smdp, smds = servers
    downloader = smdp.downloader(card_for(pki_dir, EID))
    with pytest.raises(ServerRefusedError) as exc:
        downloader.discover(smds.es11(), "smds.example.com")
    assert (exc.value.subject, exc.value.reason) == ("8.8.1", "3.8")
    with pytest.raises(Es9FunctionError) as replay:
        smds.es11().events(b"\x01" * 16, b"\xbf\x38\x00")
    assert replay.value.subject in ("8.10.1", "1.2")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mps_emu_smds_and_order_registration(pki_dir: Path, tmp_path: Path,
                                             servers: tuple[Served, ServedSmds]) -> None:
    """``mps-emu smds`` serves ES11/ES12; ``mps-emu smdp order --eid --smds`` registers the
    order as an event there, which the eUICC then finds."""
    smdp, _ = servers
    port = _free_port()
    address = f"localhost:{port}"
    iccid, imsi = new_subscription()
    with ProcessGroup(tmp_path / "logs") as procs:
        procs.start("smds", [*console_script("mps-emu"), "smds", "--pki", str(pki_dir),
                             "--listen", f"127.0.0.1:{port}", "--address", address]
                    ).wait_for_line("serving ES11", 15)
        done = subprocess.run(
            [*console_script("mps-emu"), "smdp", "order", "--data", str(tmp_path / "smdp"),
             "--address", smdp.address, "--iccid", iccid, "--imsi", imsi, "--eid", EID,
             "--smds", address, "--smds-ca", str(pki_dir / pki.CI_CERT), "--json"],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        matching_id = json.loads(done.stdout)["matching_id"]
        events = smdp.downloader(card_for(pki_dir, EID)).discover(
            Es11Client(address, ca_file=pki_dir / pki.CI_CERT), address)
        assert events == (EventEntry(matching_id, smdp.address),)
        # Kept by the SM-DP+ for ES12.DeleteEvent once the download is over.
        assert smdp.store.event_of(matching_id) == (address, False)
        done = subprocess.run(
            [*console_script("mps-emu"), "smdp", "order", "--data", str(tmp_path / "smdp"),
             "--address", smdp.address, "--iccid", iccid, "--imsi", imsi, "--smds", address],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and "--smds needs --eid" in done.stderr


# --- mps-lpa and first boot against the root SM-DS (ES10a rootDsAddress) -------------------

@pytest.fixture(scope="module")
def builtin_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("builtin-pki")
    pki.init_pki(root, builtin_ci=True, euicc_count=0)
    return root


@pytest.fixture
def link_servers(builtin_pki: Path, tmp_path: Path) -> Iterator[tuple[Served, ServedSmds]]:
    with served_smdp(builtin_pki, tmp_path / "smdp") as smdp, \
            served_smds(builtin_pki) as smds:
        yield smdp, smds


def _card_under_smds(path: Path, smds: ServedSmds, *, profiles: bool = True) -> Path:
    """The link card (or an empty one) whose root SM-DS is ``smds``."""
    write_link_card(path)
    state = CardState.load(path)
    if not profiles:
        state.profiles = []
    state.root_ds_address = smds.address
    state.save(path)
    return path


def test_mps_lpa_profile_discovery_then_download(tmp_path: Path,
                                                 link_servers: tuple[Served, ServedSmds],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    smdp, smds = link_servers
    card = _card_under_smds(tmp_path / "card.json", smds)
    base = ["--apdu", "emu", "--state", str(card)]
    ca = ["--ca", str(smds.ca)]
    assert lpa_cli.main([*base, "profile", "discovery", *ca]) == 0
    assert f"no events at {smds.address}" in capsys.readouterr().out
    iccid, imsi = new_subscription()
    order = smdp.store.add(iccid=iccid, imsi=imsi, eid=LINK_EID)
    smds.es12().register_event(LINK_EID, order.matching_id, smdp.address)
    assert lpa_cli.main([*base, "--json", "profile", "discovery", *ca]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "smds": smds.address, "events": [{"event_id": order.matching_id,
                                          "smdp": smdp.address}]}
    # Without -a/-s and without a default SM-DP+: the first event of the root SM-DS.
    assert lpa_cli.main([*base, "--json", "profile", "download", *ca]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["iccid"], out["smdp"]) == (iccid, smdp.address)
    # Another SM-DS named on the command line; a bad address is a usage error.
    assert lpa_cli.main([*base, "profile", "discovery", "--smds", "bad address", *ca]) == 2
    assert "bad address" in capsys.readouterr().err


def test_first_boot_downloads_through_the_root_smds(tmp_path: Path,
                                                    link_servers: tuple[Served, ServedSmds]
                                                    ) -> None:
    smdp, smds = link_servers
    card = _card_under_smds(tmp_path / "card.json", smds, profiles=False)
    link = EmuCardLink(card)
    link.connect()
    plan = ActivationPlan(ca_file=smds.ca)
    with pytest.raises(ActivationError, match="holds no event"):
        ensure_operational_profile(link, plan)
    iccid, imsi = new_subscription()
    order = smdp.store.add(iccid=iccid, imsi=imsi, eid=LINK_EID)
    smds.es12().register_event(LINK_EID, order.matching_id, smdp.address)
    started: list[bool] = []
    outcome = ensure_operational_profile(link, plan, on_download=lambda: started.append(True))
    link.close()
    assert (outcome.iccid, outcome.action, started) == (iccid, "downloaded", [True])
    enabled = CardState.load(card).enabled_profile()
    assert enabled is not None and enabled.iccid == iccid


def test_first_boot_sends_the_devices_own_device_info(
        tmp_path: Path, link_servers: tuple[Served, ServedSmds]) -> None:
    """The eUICC signs the DeviceInfo the LPA gives it (SGP.22 5.7.13 ctxParams1): the TAC
    of the modem's IMEI and the firmware profile's radio capabilities reach the SM-DP+."""
    smdp, smds = link_servers
    card = _card_under_smds(tmp_path / "card.json", smds, profiles=False)
    iccid, imsi = new_subscription()
    order = smdp.store.add(iccid=iccid, imsi=imsi)
    seen: list[rsp.DeviceInfo] = []
    original = smdp.smdp.authenticate_client

    def recording(body: Mapping[str, Any]) -> dict[str, Any]:
        answer = rsp.decode_authenticate_server_response(
            base64.b64decode(body["authenticateServerResponse"]))
        assert isinstance(answer, rsp.AuthenticateResponseOk)
        seen.append(rsp.EuiccSigned1.decode(answer.euicc_signed1).ctx_params1.device_info)
        return original(body)

    smdp.smdp.authenticate_client = recording  # type: ignore[method-assign]
    plan = ActivationPlan(code=parse_activation_code(f"LPA:1${smdp.address}${order.matching_id}"),
                          ca_file=smds.ca, imei="356938035643809",
                          capabilities=("lte-m", "nb-iot", "gps"))
    link = EmuCardLink(card)
    link.connect()
    try:
        assert ensure_operational_profile(link, plan).iccid == iccid
    finally:
        link.close()
    assert seen == [rsp.DeviceInfo(bytes.fromhex("35693803"), bytes.fromhex("85030D0000"))]


# --- ES12.DeleteEvent once the download is over (SGP.22 3.1.2, 5.9.2) ----------------------

def test_smdp_deletes_the_event_once_the_profile_is_installed(
        tmp_path: Path, builtin_pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The SM-DP+ deletes the event it registered (ES12.DeleteEvent) when the eUICC's
    installation result arrives; another order's event for the same eUICC stays."""
    with served_smds(builtin_pki) as smds, served_smdp(builtin_pki, tmp_path / "smdp") as smdp:
        deleter = EventDeleter(smdp.store, ca_file=smds.ca)
        smdp.smdp.on_finished = deleter.wake
        deleter.start()
        try:
            card = _card_under_smds(tmp_path / "card.json", smds, profiles=False)
            orders = [smdp.store.add(iccid=i, imsi=m, eid=LINK_EID)
                      for i, m in (new_subscription(), new_subscription())]
            for order in orders:
                register_event(smdp.store, matching_id=order.matching_id, eid=LINK_EID,
                               smdp=smdp.address, smds=smds.address, ca_file=smds.ca)
            assert [e.event_id for e in smds.smds.events_for(LINK_EID)] == [
                o.matching_id for o in orders]
            # The first event of the root SM-DS names the SM-DP+ and the matching id.
            assert lpa_cli.main(["--apdu", "emu", "--state", str(card), "--json", "profile",
                                 "download", "--ca", str(smds.ca)]) == 0
            assert json.loads(capsys.readouterr().out)["iccid"] == orders[0].iccid
            deadline = time.monotonic() + 10
            while smdp.store.event_of(orders[0].matching_id) != (smds.address, True):
                assert time.monotonic() < deadline, "the event was not deleted"
                time.sleep(0.02)
        finally:
            deleter.stop()
        assert [e.event_id for e in smds.smds.events_for(LINK_EID)] == [orders[1].matching_id]
        assert smdp.store.event_of(orders[1].matching_id) == (smds.address, False)
        assert deleter.deleted == 1


def test_an_event_stays_marked_until_its_smds_is_back(tmp_path: Path, builtin_pki: Path
                                                      ) -> None:
    """An SM-DS that cannot be reached keeps the event on the SM-DP+'s list (retried,
    also after a restart); nothing is marked deleted that the SM-DS did not confirm."""
    with served_smdp(builtin_pki, tmp_path / "smdp") as smdp:
        iccid, imsi = new_subscription()
        order = smdp.store.add(iccid=iccid, imsi=imsi, eid=LINK_EID)
        with served_smds(builtin_pki) as smds:
            register_event(smdp.store, matching_id=order.matching_id, eid=LINK_EID,
                           smdp=smdp.address, smds=smds.address, ca_file=smds.ca)
            gone = smds.address
        # The order is installed while its SM-DS is away.
        with smdp.store._tx() as db:
            db.execute("UPDATE orders SET state = ? WHERE matching_id = ?",
                       (OrderState.INSTALLED.value, order.matching_id))
        deleter = EventDeleter(smdp.store, ca_file=builtin_pki / pki.CI_CERT)
        assert deleter.delete_finished() == 1
        assert smdp.store.event_of(order.matching_id) == (gone, False)
        assert smdp.store.events_to_delete() == [(order.matching_id, LINK_EID, gone)]

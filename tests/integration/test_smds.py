"""The SM-DS (SGP.22 3.6): an SM-DP+ registers an event for an EID over ES12, the LPA
retrieves it over ES11 after mutual authentication with CERT.DSauth and no matching id
(SGP.22 3.6.3, 5.7.13), and downloads the profile the event points to (SGP.22 3.1.2: the
event id is the matching id). Real HTTPS, real crypto, the software eUICC through STORE
DATA.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpa_emulator import pki
from lpa_emulator.smdp.orders import OrderState
from mps_esim.lpa.download import ServerRefusedError
from mps_esim.lpa.es9 import Es9FunctionError
from mps_esim.lpa.es11 import Es11Client, EventEntry
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire.identifiers import make_eid
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
        done = subprocess.run(
            [*console_script("mps-emu"), "smdp", "order", "--data", str(tmp_path / "smdp"),
             "--address", smdp.address, "--iccid", iccid, "--imsi", imsi, "--smds", address],
            capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and "--smds needs --eid" in done.stderr

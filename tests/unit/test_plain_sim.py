"""Devices with a plain SIM: a UICC with EF.ICCID and ADF.USIM/EF.IMSI but no ISD-R
(ETSI TS 102 221, 3GPP TS 31.102). The card answers a SELECT of the ISD-R's AID with
6A82 as a real UICC does (ISO 7816-4 5.1.1, SGP.22 2.2.1 puts the ISD-R on eUICCs only);
the agent reads ICCID and IMSI from the files and no EID; the registry files it under
that ICCID on the operator's word (the SIM it issued) and says its record has no EID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.card.emu import EmuCardLink
from agent.identity import read_eid
from broker_bridge.cli import main as bridge_main
from broker_bridge.model import App, TrustLevel
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from lpa_emulator.cards import card_kind, open_card
from lpa_emulator.euicc.errors import StateError
from lpa_emulator.uicc import UiccCard, UiccState
from mps_esim.simfiles import ISDR_AID
from mps_wire.messages import DevicesRequest, PairRequest
from mps_wire.registration import encode_registration
from tests.helpers import PAUL, PAUL_MSISDN, add_contract, iccid_for, imsi_for, make_device

SUB = 7  # the test subscription the plain SIM carries


@pytest.fixture
def sim(tmp_path: Path) -> Path:
    path = tmp_path / "sim.json"
    UiccState(iccid=iccid_for(SUB), imsi=imsi_for(SUB), msisdn="+4915112345670").save(path)
    return path


def test_the_isdr_is_not_there_and_the_files_are(sim: Path) -> None:
    card = UiccCard.open(sim)
    card.reset()
    select_isdr = bytes([0x00, 0xA4, 0x04, 0x00, len(ISDR_AID)]) + ISDR_AID
    assert card.transmit(select_isdr) == b"\x6a\x82"
    # STORE DATA (the ES10 carrier) is no instruction of a plain UICC.
    assert card.transmit(bytes.fromhex("80E29100 03 BF2E00")) == b"\x6d\x00"
    with EmuCardLink(sim) as link:
        assert read_eid(link) is None
        assert link.read_iccid() == iccid_for(SUB)
        assert link.read_imsi() == imsi_for(SUB)


def test_state_files_tell_the_card_kinds_apart(sim: Path, tmp_path: Path) -> None:
    assert card_kind(sim) == "uicc" and isinstance(open_card(sim), UiccCard)
    assert card_kind(tmp_path / "missing.json") == "euicc"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "kind": "uicc", "iccid": "8949", "imsi": "1"}))
    with pytest.raises(StateError, match="iccid"):
        UiccCard.open(bad)


def test_mps_emu_uicc_creates_and_checks_the_card(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from lpa_emulator.cli import main

    path = tmp_path / "card.json"
    assert main(["uicc", "--state", str(path), "--iccid", iccid_for(SUB),
                 "--imsi", imsi_for(SUB)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["kind"], shown["eid"], shown["iccid"]) == ("uicc", None, iccid_for(SUB))
    assert main(["uicc", "--state", str(path), "--iccid", iccid_for(SUB + 1)]) == 1
    assert "not " + iccid_for(SUB + 1) in capsys.readouterr().err


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with SqliteStore(tmp_path / "registry.db") as store:
        add_contract(store, PAUL, subs=[SUB], msisdns=[PAUL_MSISDN], bind=False)
        yield Registry(store)


def register(registry: Registry) -> dict[str, object]:
    info = make_device(SUB, eid=None)
    return registry.handle_registration(info.device_id, encode_registration(info)
                                        ).reply.to_wire()


def test_a_plain_sim_registers_on_the_operators_word_and_is_listed(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # No installation result can exist for a SIM the operator made: without its binding
    # the registration is unproven (the rule of every registration).
    refused = register(registry)
    assert (refused["status"], refused["code"]) == ("denied", "denied")
    assert "--plain-sim" in refused["message"]
    assert bridge_main(["operator", "bind", "--iccid", iccid_for(SUB), "--plain-sim",
                        "--db", str(tmp_path / "registry.db")]) == 0
    assert "bound to its plain SIM" in capsys.readouterr().out
    done = register(registry)
    assert (done["status"], done["result"], done["device_id"]) == ("ok", "registered",
                                                                  iccid_for(SUB))
    stored = registry.store.device(iccid_for(SUB))
    assert stored is not None and not stored.has_eid and stored.imsi == imsi_for(SUB)
    assert stored.as_info().eid is None


def test_the_record_says_it_has_no_eid_and_apps_list_it(registry: Registry) -> None:
    registry.store.upsert_app(App("care", "Care", TrustLevel.PARTNER, ("support",),
                                  standing_consent=True))
    registry.bind_subscription(iccid_for(SUB), None)
    assert register(registry)["status"] == "ok"
    paired = registry.app_request("care", PairRequest(PAUL_MSISDN, "support")).reply
    assert paired.to_wire()["state"] == "active"
    listed = registry.app_request("care", DevicesRequest(PAUL_MSISDN)).reply.to_wire()
    (record,) = listed["devices"]
    assert record.get("eid") is None and record["card"] == "uicc"
    assert (record["iccid"], record["imsi"]) == (iccid_for(SUB), imsi_for(SUB))


def test_an_eid_on_the_plain_sims_topic_is_refused(registry: Registry) -> None:
    registry.bind_subscription(iccid_for(SUB), None)
    info = make_device(SUB)  # says it has an EID, on the topic of the ICCID
    reply = registry.handle_registration(iccid_for(SUB), encode_registration(info)).reply
    assert reply.to_wire()["code"] == "bad-request"


def test_a_plain_sim_device_gets_credentials_and_a_signing_key_under_its_iccid(
        registry: Registry) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from broker_bridge.credentials import username_for
    from broker_bridge.model import Role
    from mps_wire.registration import encode_registration as encode

    assert username_for(Role.DEVICE, iccid_for(SUB)) == iccid_for(SUB)
    with pytest.raises(ValueError):
        username_for(Role.DEVICE, "8949")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record, _ = registry.enroll_device_key(iccid_for(SUB), public)
    assert record.eid == iccid_for(SUB)
    registry.bind_subscription(iccid_for(SUB), None)
    # Enrolled: an unsigned registration of the plain SIM device is refused like any other.
    refused = register(registry)
    assert refused["code"] == "signature-required"
    info = make_device(SUB, eid=None)
    signed = registry.handle_registration(info.device_id, encode(info, key)).reply
    assert signed.is_ok, signed


def test_mps_bridge_devices_show_takes_a_plain_sims_iccid(
        registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry.bind_subscription(iccid_for(SUB), None)
    assert register(registry)["status"] == "ok"
    assert bridge_main(["devices", "show", iccid_for(SUB), "--db",
                        str(tmp_path / "registry.db")]) == 0
    assert capsys.readouterr().out.startswith(f"plain SIM {iccid_for(SUB)}: device of contract")


def test_the_card_opener_names_the_plain_uicc_kind_as_its_module_does() -> None:
    from lpa_emulator import cards
    from lpa_emulator.uicc.card import UICC_KIND

    assert cards.UICC_KIND == UICC_KIND

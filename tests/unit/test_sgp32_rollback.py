"""The eUICC's configureImmediateEnable PSMO, the rollback of an enable, and the eCOs'
edge results, reached through STORE DATA as an IPA reaches them.

References: SGP.32 v1.2 section 2.11.1.1 (Psmo: enable with rollbackFlag,
configureImmediateEnable; eCO), 2.11.2.1 (EuiccResultData: enableResult
rollbackNotAvailable(20), configureImmediateEnableResult, rollbackResult [12],
deleteEimResult lastEimDeleted(2), updateEimResult counterValueOutOfRange(6)), 3.4.1
(Enable Profile: rollback granted only with a profile enabled), 5.9.16
(ES10b.ProfileRollback).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.euicc import CardState
from mps_esim import tlv
from mps_esim.ipa import card as ipa_card
from mps_esim.lpa.es10 import Es10ResultError
from mps_esim.sgp32 import EimConfig, Operation
from mps_esim.sgp32.immediate import (
    ImmediateEnable,
    decode_rollback_request,
    decode_rollback_response,
    rollback_request,
)
from mps_esim.sgp32.result import EuiccPackageResult
from tests.unit.test_sgp32_euicc import (
    EIM_ID,
    ICCID_A,
    ICCID_B,
    associated,
    client_for,
    config,
    euicc_key,
    key,
    package,
    path,
)

__all__ = ["key", "path"]  # the fixtures of the eUICC tests


def enabled(path: Path) -> str | None:
    profile = CardState.load(path).enabled_profile()
    return None if profile is None else profile.iccid


def test_enable_with_rollback_then_profile_rollback(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("enable", iccid=ICCID_B, rollback=True)))
    assert [(r.kind, r.name) for r in result.results] == [("enable", "ok")]
    assert enabled(path) == ICCID_B
    grant = CardState.load(path).iot.rollback
    assert grant is not None and (grant.enabled, grant.previous, grant.counter) == (
        ICCID_B, ICCID_A, 1)
    # The IPA finds no way to the eIM through B and goes back to A (5.9.16).
    raw = ipa_card.profile_rollback(client)
    assert enabled(path) == ICCID_A
    rolled = EuiccPackageResult.decode(raw)
    assert [(r.kind, r.name) for r in rolled.results] == [("rollback", "ok")]
    assert rolled.results[0].element == bytes.fromhex("8C0100")
    assert (rolled.eim_id, rolled.counter, rolled.transaction_id) == (
        EIM_ID, 1, bytes.fromhex("00000001"))
    rolled.verify(euicc_key(path), None)
    # It waits for the eIM with the other results, and the grant is used up.
    assert raw in ipa_card.package_results(client)
    assert CardState.load(path).iot.rollback is None
    with pytest.raises(Es10ResultError, match="rollbackNotAllowed"):
        ipa_card.profile_rollback(client)
    assert [n.operation for n in client.list_notifications()][-2:] == ["disable", "enable"]


def test_rollback_is_not_granted_without_an_enabled_profile_nor_after_the_next_package(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("disable", iccid=ICCID_A)))
    assert result.results[0].name == "ok"
    before = CardState.load(path).profiles
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 2, Operation("enable", iccid=ICCID_B, rollback=True)))
    assert [(r.kind, r.code, r.name) for r in result.results] == [
        ("enable", 20, "rollbackNotAvailable")]
    assert CardState.load(path).profiles == before
    # A grant ends with the next package the eIM gets through (it reached the device).
    ipa_card.load_euicc_package(client, package(key, 3, Operation("enable", iccid=ICCID_A)))
    ipa_card.load_euicc_package(client, package(
        key, 4, Operation("enable", iccid=ICCID_B, rollback=True)))
    assert CardState.load(path).iot.rollback is not None
    ipa_card.load_euicc_package(client, package(key, 5, Operation("listEim")))
    assert CardState.load(path).iot.rollback is None
    with pytest.raises(Es10ResultError, match="rollbackNotAllowed"):
        ipa_card.profile_rollback(client)
    assert enabled(path) == ICCID_B


def test_rollback_request_and_response_encoding() -> None:
    assert rollback_request(True).hex().upper() == "BF58038001FF"  # DER TRUE
    assert decode_rollback_request(tlv.decode_one(rollback_request(False))) is False
    for bad in ("BF5800", "BF580480020000", "BF58068001FF810100", "BF5803800101"):
        with pytest.raises(tlv.TlvError):
            decode_rollback_request(tlv.decode_one(bytes.fromhex(bad)))
    assert decode_rollback_response(bytes.fromhex("BF5803800101")) == (1, None)


def test_configure_immediate_enable_is_kept_with_the_default_address(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    on = ImmediateEnable(True, "2.999.10", "smdp.fleet.example:8443")
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("configureImmediateEnable", immediate=on)))
    assert [(r.kind, r.name) for r in result.results] == [("configureImmediateEnable", "ok")]
    assert result.results[0].element == bytes.fromhex("870100")
    state = CardState.load(path)
    assert state.iot.immediate == on
    assert state.default_dp_address == "smdp.fleet.example:8443"
    assert client.get_configured_addresses().default_dp_address == "smdp.fleet.example:8443"
    assert json.loads(path.read_text())["iot"]["immediate_enable"]["smdp_oid"] == "2.999.10"
    # Turned off again: the address stays.
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 2, Operation("configureImmediateEnable", immediate=ImmediateEnable())))
    state = CardState.load(path)
    assert state.iot.immediate == ImmediateEnable()
    assert state.default_dp_address == "smdp.fleet.example:8443"
    assert on.applies_to("2.999.10") and not on.applies_to("2.999.11")
    assert ImmediateEnable(True).applies_to("2.999.11")
    assert not ImmediateEnable().applies_to("2.999.10")


def test_configure_immediate_enable_encoding() -> None:
    config_ = ImmediateEnable(True, "2.999.10", "a.example")
    der = config_.encode()
    assert der.hex().upper().startswith("A7")
    assert ImmediateEnable.decode(tlv.decode_one(der)) == config_
    assert ImmediateEnable().encode() == bytes.fromhex("A700")
    for bad in ("A7028001", "A7028000" + "8300", "A702810100", "A70483020000"):
        with pytest.raises(tlv.TlvError):
            ImmediateEnable.decode(tlv.decode_one(bytes.fromhex(bad)))
    with pytest.raises(ValueError, match="255 bytes"):
        ImmediateEnable(True, None, "x" * 256).encode()


def test_eco_edge_results(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("updateEim", eim=EimConfig(EIM_ID, counter=2**31))))
    assert [(r.kind, r.name) for r in result.results] == [
        ("updateEim", "counterValueOutOfRange")]
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 2, Operation("updateEim", eim=EimConfig("nobody"))))
    assert [r.name for r in result.results] == ["eimNotFound"]
    # Deleting the last eIM is done, and said (the card then has no eIM to obey).
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 3, Operation("deleteEim", eim_id=EIM_ID)))
    assert [(r.kind, r.code, r.name) for r in result.results] == [
        ("deleteEim", 2, "lastEimDeleted")]
    assert ipa_card.get_eim_configuration(client) == []
    # With no eIM associated, AddInitialEim works again.
    assert ipa_card.add_initial_eim(client_for(path)[1], [config(key)]) == [None]


def test_ipa_rollback_command(path: Path, key: ec.EllipticCurvePrivateKey,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from agent import lpa_cli

    client = associated(path, key)
    ipa_card.load_euicc_package(client, package(
        key, 1, Operation("enable", iccid=ICCID_B, rollback=True)))
    argv = ["--apdu", "emu", "--state", str(path), "--json", "ipa", "rollback"]
    capsys.readouterr()
    assert lpa_cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["enabled"], out["eim"]) == (ICCID_A, EIM_ID)
    assert lpa_cli.main(argv) == 1  # the grant is used up
    assert "rollbackNotAllowed" in capsys.readouterr().err

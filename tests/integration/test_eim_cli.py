"""The operator's ``mps-emu eim`` and the device's ``mps-lpa ipa`` commands end to end:
a new eIM database, the eIM serving ESipa on HTTPS, an eUICC given the eIM with
AddInitialEim, a download ordered by the eIM and PSMOs queued by the operator, each
picked up with ``mps-lpa ipa poll`` (SGP.32 3.2 profile download initiated by the eIM,
3.3 PSMO execution; 5.9 ES10b.AddInitialEim)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import lpa_cli
from lpa_emulator import cli as emu_cli
from lpa_emulator import pki
from lpa_emulator.eim.http import EimHttpServer
from lpa_emulator.eim.service import Eim
from lpa_emulator.eim.store import EimStore
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.http import tls_context
from mps_wire.identifiers import make_eid, make_iccid
from tests.rsp_support import Served, new_subscription

EID = make_eid("890490320000000000000000004141")


def run_json(main: object, argv: list[str], capsys: pytest.CaptureFixture[str],
             code: int = 0) -> object:
    assert callable(main)
    assert main(argv) == code, capsys.readouterr()
    out = capsys.readouterr().out
    return json.loads(out) if out.strip() else None


def test_operator_and_device_commands(tmp_path: Path, eim_pki: Path, eim_smdp: Served,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    builtin_pki, served = eim_pki, eim_smdp
    db, card = str(tmp_path / "eim.db"), tmp_path / "card.json"
    CardState.new(eid=EID, profiles=[]).save(card)
    eim_args = ["eim", "--json"]
    run_json(emu_cli.main, ["eim", "init", "--db", db, "--eim-id", "eim.cli.test",
                            "--fqdn", "localhost:1", "--json"], capsys)
    store = EimStore(db)
    server = EimHttpServer(Eim(store), ssl_context=tls_context(
        builtin_pki / pki.TLS_CERT, builtin_pki / pki.TLS_KEY))
    port = server.start()
    lpa = ["--apdu", "emu", "--state", str(card), "--json", "ipa"]
    try:
        config = tmp_path / "eim.der"
        run_json(emu_cli.main, [*eim_args[:1], "config", "--db", db, "--der", str(config),
                                "--json"], capsys)
        assert run_json(lpa_cli.main, [*lpa, "add-eim", str(config)], capsys) == {
            "ok": True, "eim_id": "eim.cli.test", "association_token": None}
        assert run_json(emu_cli.main, ["eim", "associate", "--db", db, EID, "--json"],
                        capsys) == {"associated": [EID]}
        iccid, imsi = new_subscription()
        order = served.store.add(iccid=iccid, imsi=imsi)
        run_json(emu_cli.main, ["eim", "download", "--db", db, EID,
                                f"LPA:1${served.address}${order.matching_id}", "--json"],
                 capsys)
        poll = [*lpa, "poll", "--eim", f"localhost:{port}", "--ca", str(served.ca), "--all"]
        out = run_json(lpa_cli.main, poll, capsys)
        assert isinstance(out, dict)
        assert [r["package"] for r in out["rounds"]] == ["ipaEuiccDataRequest",
                                                         "profileDownloadTriggerRequest"]
        assert out["rounds"][1]["iccid"] == iccid
        run_json(emu_cli.main, ["eim", "psmo", "--db", db, EID, f"enable:{iccid}", "--json"],
                 capsys)
        run_json(emu_cli.main, ["eim", "psmo", "--db", db, EID, f"disable:{iccid}",
                                f"delete:{iccid}", "--json"], capsys)
        out = run_json(lpa_cli.main, poll, capsys)
        assert isinstance(out, dict)
        assert [r["operations"] for r in out["rounds"]] == [
            [["enable", "ok"]], [["disable", "ok"], ["delete", "ok"]]]
        assert CardState.load(card).profiles == []
        status = run_json(emu_cli.main, ["eim", "status", "--db", db, EID, "--json"], capsys)
        assert isinstance(status, dict)
        assert [p["state"] for p in status["packages"]] == ["done"] * 4
        # Nothing left: one more round finds nothing to do.
        out = run_json(lpa_cli.main, poll, capsys)
        assert out == {"ok": True, "eim": f"localhost:{port}", "eid": EID, "rounds": []}
        # A bad operation is refused, and nothing is queued.
        run_json(emu_cli.main, ["eim", "psmo", "--db", db, EID, "enable:123"], capsys, code=2)
        assert len(store.packages(EID)) == 4
    finally:
        server.stop()
        store.close()


def test_operator_queues_rollback_immediate_enable_and_eim_ecos(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's spelling of SGP.32 2.11.1.1's enable rollbackFlag,
    configureImmediateEnable and the addEim/updateEim eCOs, checked before anything is
    queued."""
    db = str(tmp_path / "eim.db")
    run_json(emu_cli.main, ["eim", "init", "--db", db, "--eim-id", "eim.ops.test",
                            "--fqdn", "localhost:1", "--json"], capsys)
    config = tmp_path / "other.der"
    run_json(emu_cli.main, ["eim", "config", "--db", db, "--der", str(config), "--json"],
             capsys)
    hex_config = tmp_path / "other.hex"
    hex_config.write_text(config.read_bytes().hex())
    run_json(emu_cli.main, ["eim", "associate", "--db", db, EID, "--json"], capsys)
    iccid = make_iccid("894900000000000081")
    run_json(emu_cli.main, ["eim", "psmo", "--db", db, EID, f"enable:{iccid}:rollback",
                            "configureImmediateEnable:on:smdp.example:8443", "--json"], capsys)
    run_json(emu_cli.main, ["eim", "eco", "--db", db, EID, f"addEim:{config}",
                            f"updateEim:{hex_config}", "--json"], capsys)
    for bad in (f"disable:{iccid}:rollback", "configureImmediateEnable:maybe",
                f"enable:{iccid}:later"):
        run_json(emu_cli.main, ["eim", "psmo", "--db", db, EID, bad], capsys, code=2)
    run_json(emu_cli.main, ["eim", "eco", "--db", db, EID, f"addEim:{tmp_path / 'none'}"],
             capsys, code=1)
    store = EimStore(db)
    try:
        queued = [p.request["operations"] for p in store.packages(EID)
                  if p.kind == "euiccPackage"]
    finally:
        store.close()
    assert queued[0] == [
        {"kind": "enable", "iccid": iccid, "rollback": True},
        {"kind": "configureImmediateEnable", "enable": True,
         "smdp_address": "smdp.example:8443"}]
    assert [op["kind"] for op in queued[1]] == ["addEim", "updateEim"]
    assert queued[1][0]["config"] == queued[1][1]["config"] == config.read_bytes().hex().upper()

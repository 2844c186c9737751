"""``mps-lpa`` against the software eUICC: in-process for every command, its output and exit
codes; as a process through the real pcscd + vpcd (a card served by ``mps-emu euicc
--vpcd``) and through the emulated modem (``mps-emu modem``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import lpa_cli
from firmware_profiles import find_profile, load_profile
from lpa_emulator import pki
from lpa_emulator.euicc import CardState
from lpa_emulator.euicc.state import isdp_aid_for
from lpa_emulator.modem.state import ModemState
from lpa_emulator.smdp.http import SmdpHttpServer, tls_context
from mps_esim.lpa.device_info import capabilities_of
from mps_esim.lpa.download import default_device_info
from mps_esim.sgp22 import rsp
from mps_testbed.stack.pcsc import PcscSandbox
from mps_testbed.stack.procs import ProcessGroup, console_script
from tests.fixtures.cards import (
    LINK_EID,
    LINK_ICCID_A,
    LINK_ICCID_B,
    LINK_SMDP,
    write_link_card,
)
from tests.rsp_support import Served, new_subscription, served_smdp

OTHER_ISDR = "A0000005591010000000008900000300"


@pytest.fixture
def card(tmp_path: Path) -> Path:
    return write_link_card(tmp_path / "card.json")


def lpa(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = lpa_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_chip_info_table_and_json(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = lpa(capsys, "--apdu", "emu", "--state", str(card), "chip", "info")
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()]
    assert ["EID", LINK_EID] in rows
    assert ["SGP.22", "version", "2.2.2"] in rows
    code, out, _ = lpa(capsys, "chip", "info", "--apdu", "emu", "--state", str(card), "--json")
    data = json.loads(out)
    assert code == 0 and data["eid"] == LINK_EID
    assert data["euicc_info2"]["svn"] == "2.2.2"
    assert data["euicc_info2"]["ci_pkids_verification"] == [
        k.hex().upper() for k in CardState.load(card).identity.ci_pkids]
    assert data["root_ds_address"] == "lpa.ds.gsma.com"


def test_profile_commands(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    code, out, _ = lpa(capsys, *base, "profile", "list")
    assert code == 0
    header, first, second = out.splitlines()
    assert header.split()[:3] == ["ICCID", "STATE", "CLASS"]
    assert first.split()[:2] == [LINK_ICCID_A, "enabled"]
    assert second.split()[:2] == [LINK_ICCID_B, "disabled"]
    assert lpa(capsys, *base, "profile", "enable", LINK_ICCID_B)[:2] == (
        0, f"enabled {LINK_ICCID_B}\n")
    # By ISD-P AID, and a nickname with spaces.
    aid_a = CardState.load(card).profiles[0].isdp_aid.hex().upper()
    assert lpa(capsys, *base, "profile", "nickname", aid_a, "at home")[0] == 0
    code, out, _ = lpa(capsys, *base, "profile", "list", "--json")
    listed = json.loads(out)
    assert [(p["iccid"], p["state"], p["nickname"]) for p in listed] == [
        (LINK_ICCID_A, "disabled", "at home"), (LINK_ICCID_B, "enabled", None)]
    assert listed[0]["notifications"][0]["address"] == LINK_SMDP
    assert lpa(capsys, *base, "profile", "nickname", LINK_ICCID_A)[0] == 0
    assert lpa(capsys, *base, "profile", "delete", LINK_ICCID_A)[0] == 0
    code, out, _ = lpa(capsys, *base, "--json", "profile", "list", "--class", "test")
    assert (code, json.loads(out)) == (0, [])


def test_refusals_exit_1_with_the_reason(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    code, out, err = lpa(capsys, *base, "profile", "delete", LINK_ICCID_A)
    assert code == 1 and out == ""
    assert "profileNotInDisabledState (2)" in err
    code, out, err = lpa(capsys, *base, "--json", "profile", "disable", LINK_ICCID_B)
    assert code == 1
    assert json.loads(out) == {"ok": False, "reason": "profileNotInEnabledState", "code": 2,
                               "error": "DisableProfile refused: profileNotInEnabledState (2)"}
    code, _, err = lpa(capsys, *base, "--isdr-aid", OTHER_ISDR, "chip", "info")
    assert code == 1 and "--isdr-aid" in err


def test_notifications(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    assert lpa(capsys, *base, "profile", "disable", LINK_ICCID_A, "--no-refresh")[0] == 0
    assert lpa(capsys, *base, "profile", "enable", LINK_ICCID_B)[0] == 0
    code, out, _ = lpa(capsys, *base, "notification", "list")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows == [["SEQ", "OPERATION", "ICCID", "ADDRESS"],
                    ["1", "disable", LINK_ICCID_A, LINK_SMDP],
                    ["2", "enable", LINK_ICCID_B, LINK_SMDP]]
    assert lpa(capsys, *base, "notification", "remove", "1")[:2] == (
        0, "removed notification 1\n")
    assert lpa(capsys, *base, "notification", "remove", "1")[0] == 1  # nothingToDelete
    code, out, _ = lpa(capsys, *base, "--json", "notification", "remove", "--all")
    assert (code, json.loads(out)) == (0, {"ok": True, "removed": [2]})
    assert lpa(capsys, *base, "notification", "list")[1] == "no pending notifications\n"


def test_default_dp_address(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    assert lpa(capsys, *base, "chip", "default-dp", "dp.example.com")[0] == 0
    assert json.loads(lpa(capsys, *base, "--json", "chip", "info")[1])[
        "default_dp_address"] == "dp.example.com"
    assert lpa(capsys, *base, "chip", "default-dp", "")[0] == 0
    assert CardState.load(card).default_dp_address is None


@pytest.mark.parametrize(("args", "code", "message"), [
    (["chip", "info"], 2, "--apdu"),
    (["--apdu", "emu", "chip", "info"], 2, "--state"),
    (["--apdu", "at", "chip", "info"], 2, "--device"),
    (["--apdu", "pcsc", "--reader", "(", "chip", "info"], 2, "regular expression"),
    (["--card", "nfc://x", "chip", "info"], 2, "scheme"),
    (["--apdu", "emu", "--state", "/nonexistent/card.json", "chip", "info"], 3, "no emulated"),
    (["--apdu", "at", "--device", "/nonexistent/tty", "chip", "info"], 3, "modem"),
    (["--apdu", "emu", "--state", "{card}", "--isdr-aid", "zz", "chip", "info"], 2, "hex"),
    (["--apdu", "emu", "--state", "{card}", "profile", "enable", "12"], 2, "neither"),
    (["--apdu", "emu", "--state", "{card}", "notification", "remove"], 2, "--all"),
])
def test_usage_and_missing_card_exit_codes(card: Path, capsys: pytest.CaptureFixture[str],
                                           args: list[str], code: int, message: str) -> None:
    got, _, err = lpa(capsys, *(a.format(card=card) for a in args))
    assert got == code
    assert message in err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert lpa_cli.main(["profile", "frobnicate"]) == 2
    assert lpa_cli.main(["--block-size", "300", "chip", "info"]) == 2
    assert lpa_cli.main(["profile", "list", "--apdu", "emu", "--stat", "x"]) == 2


def test_environment_chooses_the_card(card: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPS_LPA_APDU", "emu")
    monkeypatch.setenv("MPS_LPA_STATE", str(card))
    code, out, _ = lpa(capsys, "--json", "chip", "info")
    assert code == 0 and json.loads(out)["eid"] == LINK_EID


# --- profile download and notification process ---------------------------------------------

@pytest.fixture(scope="module")
def builtin_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SM-DP+ PKI under the built-in test CI, which the test cards trust."""
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, builtin_ci=True, euicc_count=0)
    return root


@pytest.fixture
def served(builtin_pki: Path, tmp_path: Path) -> Iterator[Served]:
    with served_smdp(builtin_pki, tmp_path / "smdp") as s:
        yield s


def test_profile_download(card: Path, served: Served, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    code = f"LPA:1${served.address}${order.matching_id}"
    rc, out, err = lpa(capsys, *base, "--json", "profile", "download", "-a", code,
                       "--ca", str(served.ca))
    assert rc == 0, err
    data = json.loads(out)
    assert (data["iccid"], data["notification_sent"], data["enabled"]) == (iccid, True, False)
    assert data["apdus"] > 20 and data["isdp_aid"] == isdp_aid_for(2).hex().upper()
    assert "\r" not in err  # no progress bar off a terminal
    # -s/-m with the CA from the environment, bigger STORE DATA blocks, enabled at once.
    iccid2, imsi2 = new_subscription()
    order2 = served.store.add(iccid=iccid2, imsi=imsi2)
    monkeypatch.setenv("MPS_SMDP_CA", str(served.ca))
    monkeypatch.setenv("MPS_PROGRESS", "1")  # as on a terminal
    rc, out, err = lpa(capsys, *base, "--block-size", "255", "profile", "download",
                       "-s", served.address, "-m", order2.matching_id, "--enable")
    assert rc == 0, err
    assert f"downloaded {iccid2}" in out and "enabled" in out
    assert "\r\x1b[Kdownload" in err and "load-bound-profile-package" in err
    state = CardState.load(card)
    enabled = state.enabled_profile()
    assert enabled is not None and enabled.iccid == iccid2
    # The enable notification went to the SM-DP+; the disabled profile's waits for its own.
    assert [(n.operation, n.iccid) for n in state.notifications] == [("disable", LINK_ICCID_A)]


def test_profile_download_failures(card: Path, served: Served,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    ca = ["--ca", str(served.ca)]
    rc, out, err = lpa(capsys, *base, "--json", "profile", "download", "-s", served.address,
                       "-m", "NO-SUCH-ORDER", *ca)
    assert rc == 1 and "authenticate-client" in err
    assert json.loads(out)["subject"] == "8.2.6" and json.loads(out)["reason"] == "3.8"
    assert served.smdp.session_count == 0  # cancelled
    # An SM-DP+ whose certificate the CA does not vouch for.
    rc, _, err = lpa(capsys, *base, "profile", "download", "-s", served.address, "-m", "X")
    assert rc == 1 and "does not verify" in err
    state = CardState.load(card)
    state.root_ds_address = ""  # no SM-DS to fall back on (the default is a public one)
    state.save(card)
    for args, message in [
            (["-a", "LPA:2$x$y"], "format"),
            (["-a", f"LPA:1${served.address}$M", "-s", served.address], "not both"),
            (["-m", "M"], "needs -s"),
            (["-a", f"LPA:1${served.address}$M$$1"], "confirmation code"),
            ([], "neither a default SM-DP+ nor a root SM-DS")]:
        rc, _, err = lpa(capsys, *base, "profile", "download", *args, *ca)
        assert (rc, message in err) == (2, True), err
    # Only the changes of a failed download: nothing was installed.
    assert len(CardState.load(card).profiles) == 2


def test_notification_process(card: Path, served: Served, builtin_pki: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--apdu", "emu", "--state", str(card)]
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    assert lpa(capsys, *base, "profile", "download", "-s", served.address, "-m",
               order.matching_id, "--ca", str(served.ca))[0] == 0
    # Delete it again: a notification for this SM-DP+, and with the test card's own SM-DP+
    # pointed here, its profile's notifications too.
    state = CardState.load(card)
    state.profiles[0].smdp_address = served.address
    state.save(card)
    assert lpa(capsys, *base, "profile", "disable", LINK_ICCID_A)[0] == 0
    assert lpa(capsys, *base, "profile", "delete", iccid)[0] == 0
    served.server.stop()
    rc, out, err = lpa(capsys, *base, "--json", "notification", "process", "--ca",
                       str(served.ca))
    assert rc == 1 and "stay on the eUICC" in err
    assert [(n["operation"], n["sent"]) for n in json.loads(out)] == [
        ("disable", False), ("delete", False)]
    assert len(CardState.load(card).notifications) == 2
    port = int(served.address.rsplit(":", 1)[1])
    restarted = SmdpHttpServer(served.smdp, host="127.0.0.1", port=port, ssl_context=tls_context(
        builtin_pki / pki.TLS_CERT, builtin_pki / pki.TLS_KEY))
    restarted.start()
    try:
        rc, out, err = lpa(capsys, *base, "notification", "process", "--ca", str(served.ca))
    finally:
        restarted.stop()
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["SEQ", "OPERATION", "ADDRESS", "SENT", "REMOVED", "ERROR"]
    assert [r[1:5] for r in rows[1:]] == [["disable", served.address, "yes", "yes"],
                                          ["delete", served.address, "yes", "yes"]]
    assert CardState.load(card).notifications == []
    assert lpa(capsys, *base, "notification", "process")[1] == "no pending notifications\n"


# --- as a process, through the real stacks ---------------------------------------------------

def run_lpa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script("mps-lpa"), *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


@pytest.fixture
def vpcd_card(pcsc_sandbox: PcscSandbox, tmp_path: Path) -> Iterator[Path]:
    """A card served with ``mps-emu euicc --vpcd`` into slot 0 of the sandbox."""
    path = write_link_card(tmp_path / "vpcd-card.json")
    log = (tmp_path / "euicc.log").open("wb")
    proc = pcsc_sandbox.spawn([*console_script("mps-emu"), "euicc", "--state", str(path),
                               "--vpcd", f"127.0.0.1:{pcsc_sandbox.vpcd_port(0)}"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        pcsc_sandbox.wait_card(0, 15)
        yield path
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        pcsc_sandbox.wait_no_card(0, 10)


@pytest.mark.pcsc
def test_lpa_over_pcsc_prints_the_eid(vpcd_card: Path, pcsc_sandbox: PcscSandbox,
                                      served: Served) -> None:
    env = pcsc_sandbox.env()
    done = run_lpa("--apdu", "pcsc", "chip", "info", env=env)
    assert done.returncode == 0, done.stderr
    assert LINK_EID in done.stdout
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    done = run_lpa("--apdu", "pcsc", "--json", "profile", "download", "-a",
                   f"LPA:1${served.address}${order.matching_id}", "--ca", str(served.ca),
                   env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["iccid"] == iccid
    assert CardState.load(vpcd_card).find_profile(iccid=iccid) is not None
    reader = ["--apdu", "pcsc", "--reader", "Virtual PCD 00 00"]
    done = run_lpa(*reader, "profile", "enable", LINK_ICCID_B, env=env)
    assert done.returncode == 0, done.stderr
    done = run_lpa(*reader, "--json", "profile", "list", env=env)
    assert [p["state"] for p in json.loads(done.stdout)] == ["disabled", "enabled", "disabled"]
    done = run_lpa("--apdu", "pcsc", "--reader", "no such reader", "chip", "info", env=env)
    assert done.returncode == 3 and "no PC/SC reader" in done.stderr


def test_lpa_over_the_emulated_modem(card: Path, tmp_path: Path, served: Served) -> None:
    link = tmp_path / "modem"
    with ProcessGroup(tmp_path / "logs") as procs:
        procs.start("modem", [*console_script("mps-emu"), "modem", "--link", str(link),
                              "--state", str(tmp_path / "modem.json"),
                              "--card-state", str(card)]).wait_for_path(link, 15)
        base = ["--apdu", "at", "--device", str(link)]
        done = run_lpa(*base, "--json", "chip", "info")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["eid"] == LINK_EID
        done = run_lpa(*base, "profile", "disable", LINK_ICCID_A)
        assert done.returncode == 0, done.stderr
        done = run_lpa(*base, "notification", "list")
        assert "disable" in done.stdout and LINK_ICCID_A in done.stdout
        iccid, imsi = new_subscription()
        order = served.store.add(iccid=iccid, imsi=imsi)
        seen = served.record_device_info()
        done = run_lpa(*base, "profile", "download", "-s", served.address, "-m",
                       order.matching_id, "--ca", str(served.ca), "--enable",
                       "--firmware-profile", "quectel-ec25")
        assert done.returncode == 0, done.stderr
        assert f"downloaded {iccid}" in done.stdout
        procs.stop_all()
    enabled = CardState.load(card).enabled_profile()
    assert enabled is not None and enabled.iccid == iccid
    # Behind a modem the TAC is the modem's own (AT+CGSN), the capabilities the firmware
    # profile's (SGP.22 5.7.13 DeviceInfo; TS 23.003 6.2 for the TAC).
    imei = ModemState.load(tmp_path / "modem.json").imei
    capabilities = load_profile(find_profile("quectel-ec25")).capabilities
    assert seen == [rsp.DeviceInfo(bytes.fromhex(imei[:8]), capabilities_of(capabilities))]


def test_download_sends_the_device_info_given(card: Path, served: Served,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """--imei and --capabilities (or $MPS_LPA_IMEI) make the DeviceInfo the eUICC signs and
    the SM-DP+ receives; without them a generic LTE device; a bad IMEI is a usage error."""
    base = ["--apdu", "emu", "--state", str(card)]
    seen = served.record_device_info()
    orders = [served.store.add(iccid=i, imsi=m) for i, m in
              (new_subscription(), new_subscription(), new_subscription())]

    def download(n: int, *extra: str) -> int:
        return lpa_cli.main([*base, "profile", "download", "-s", served.address, "-m",
                             orders[n].matching_id, "--ca", str(served.ca), *extra])

    assert download(0, "--imei", "356938035643809", "--capabilities", "nb-iot, NR") == 0
    monkeypatch.setenv("MPS_LPA_IMEI", "490154203237518")
    assert download(1) == 0
    monkeypatch.delenv("MPS_LPA_IMEI")
    assert download(2, "--imei", "356938035643808") == 2  # Luhn digit wrong
    assert "--imei" in capsys.readouterr().err
    assert download(2) == 0
    # DeviceCapabilities (SGP.22 2.2.x): eutranEpcSupportedRelease [5], nrEpc [8], nr5gc [9].
    assert seen == [
        rsp.DeviceInfo(bytes.fromhex("35693803"),
                       bytes.fromhex("85030D0000" "88030F0000" "89030F0000")),
        rsp.DeviceInfo(bytes.fromhex("49015420"), bytes.fromhex("85030D0000")),
        default_device_info(),
    ]

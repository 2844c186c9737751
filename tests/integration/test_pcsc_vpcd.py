"""The software eUICC behind the real PC/SC stack: pcscd + vpcd in a private namespace,
the card in its own process, clients through libpcsclite (pyscard, opensc-tool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lpa_emulator.euicc import ATR
from mps_esim import simfiles
from mps_testbed.errors import StackError
from mps_testbed.stack.pcsc import PcscSandbox
from mps_wire.identifiers import make_eid
from tests.fixtures.pcsc import (
    CARD_EID,
    CARD_ICCID,
    ServedCard,
    pcsc_transmit,
    write_card_state,
)

pytestmark = pytest.mark.pcsc

ISDR = simfiles.ISDR_AID.hex().upper()
OPEN_CHANNEL = "0070000001"
SELECT_ISDR_CH1 = "01A4040010" + ISDR
GET_EID_CH1 = "81E2910006BF3E035C015A"


def eid_answer(eid: str) -> str:
    return "BF3E125A10" + eid + "9000"


def read_eid(sandbox: PcscSandbox, slot: int = 0) -> str:
    result = pcsc_transmit(sandbox, [OPEN_CHANNEL, SELECT_ISDR_CH1, GET_EID_CH1], slot=slot)
    opened, selected, answer = result["responses"]
    assert opened == "019000"
    assert selected.endswith("9000") and selected.startswith("6F")
    assert answer.startswith("BF3E125A10") and answer.endswith("9000")
    return str(answer[10:-4])


def test_sandbox_lists_both_vpcd_readers(pcsc_sandbox: PcscSandbox) -> None:
    assert pcsc_sandbox.socket_path.is_socket()
    assert str(pcsc_sandbox.pid) in str(pcsc_sandbox.socket_path)
    assert pcsc_sandbox.env()["PCSCLITE_CSOCK_NAME"] == str(pcsc_sandbox.socket_path)
    assert pcsc_sandbox.reader_name(1) == "Virtual PCD 00 01"
    with pytest.raises(ValueError, match="slots"):
        pcsc_sandbox.reader_name(2)
    pcsc_sandbox.wait_ready(5)


def test_vpcd_is_not_reachable_outside_the_sandbox(pcsc_sandbox: PcscSandbox) -> None:
    probe = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("ss is not available")
    assert ":35963" not in probe.stdout
    inside = pcsc_sandbox.spawn(["ss", "-ltnH"], stdout=subprocess.PIPE, text=True)
    out, _ = inside.communicate(timeout=10)
    assert ":35963" in out and ":35964" in out


def test_eid_and_iccid_over_pcsc_with_pyscard(served_card: ServedCard) -> None:
    result = pcsc_transmit(served_card.sandbox, [
        OPEN_CHANNEL, SELECT_ISDR_CH1, GET_EID_CH1,
        "00A4000C023F00", "00A4000C022FE2", "00B000000A",
        "0070800100",
    ])
    assert result["atr"] == ATR.hex().upper()
    opened, selected, eid, mf, ef, iccid, closed = result["responses"]
    assert opened == "019000" and selected.startswith("6F")
    assert eid == eid_answer(CARD_EID)
    assert (mf, ef, closed) == ("9000", "9000", "9000")
    assert simfiles.decode_iccid(bytes.fromhex(iccid[:-4])) == CARD_ICCID
    assert iccid.endswith("9000")


def test_status_words_pass_through_pcscd(served_card: ServedCard) -> None:
    result = pcsc_transmit(served_card.sandbox, [
        "00A4040C05A000000000", "00CA000000", "FFA4000C023F00", "00B0000000",
        "00A4000C022FE2", "00B0000000",
    ])
    assert result["responses"] == ["6A82", "6D00", "6E00", "6986", "9000", "6C0A"]


@pytest.mark.skipif(shutil.which("opensc-tool") is None, reason="opensc-tool is not installed")
def test_opensc_tool_reads_get_euicc_data(served_card: ServedCard) -> None:
    # opensc-tool does the T=0 GET RESPONSE itself when the APDU carries an Le.
    done = subprocess.run(
        ["opensc-tool", "--reader", served_card.reader,
         "-s", "00A4040010" + ISDR, "-s", "80E2910006BF3E035C015A00"],
        env=served_card.sandbox.env(), capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    spaced = " ".join(f"{b:02X}" for b in bytes.fromhex("BF3E125A10" + CARD_EID))
    flat = " ".join(line[:48].strip() for line in done.stdout.splitlines()
                    if not line.startswith(("Sending", "Received")))
    assert spaced in " ".join(flat.split())
    assert "SW1=0x90, SW2=0x00" in done.stdout


def test_card_process_restart_is_seen_again(served_card: ServedCard) -> None:
    assert read_eid(served_card.sandbox) == CARD_EID
    served_card.stop(kill=True)  # waits until pcscd reports the slot empty
    with pytest.raises(AssertionError, match="failed"):
        pcsc_transmit(served_card.sandbox, ["00A4000C023F00"], timeout=10)
    served_card.start()
    assert read_eid(served_card.sandbox) == CARD_EID


def test_card_reconnects_when_pcscd_restarts(tmp_path: Path) -> None:
    ok, why = PcscSandbox.available()
    if not ok:
        pytest.skip(why)
    with PcscSandbox() as sandbox:
        card = ServedCard(sandbox, write_card_state(tmp_path / "card.json")).start()
        try:
            assert read_eid(sandbox) == CARD_EID
            socket_before = sandbox.socket_path
            pcscd_before = sandbox.pcscd_pid
            sandbox.restart_pcscd()
            assert sandbox.pcscd_pid != pcscd_before
            assert sandbox.socket_path == socket_before
            sandbox.wait_card(0, 15)
            assert read_eid(sandbox) == CARD_EID
            assert card.proc is not None and card.proc.poll() is None  # same card process
            assert card.stop() == 0  # SIGTERM ends the card cleanly
        finally:
            card.stop(wait_empty=False)


def test_two_sandboxes_and_both_slots_at_once(pcsc_sandbox: PcscSandbox,
                                              tmp_path: Path) -> None:
    eids = [make_eid(f"8904903200000000000000000{n:05d}") for n in range(3)]
    with PcscSandbox() as other:
        cards = [
            ServedCard(pcsc_sandbox, write_card_state(tmp_path / "a.json", eid=eids[0]), 1),
            ServedCard(other, write_card_state(tmp_path / "b.json", eid=eids[1]), 0),
            ServedCard(other, write_card_state(tmp_path / "c.json", eid=eids[2]), 1),
        ]
        try:
            for card in cards:
                card.start()
            assert other.socket_path != pcsc_sandbox.socket_path
            assert read_eid(pcsc_sandbox, 1) == eids[0]
            assert read_eid(other, 0) == eids[1]
            assert read_eid(other, 1) == eids[2]
        finally:
            for card in cards:
                card.stop(wait_empty=False)


def test_sandbox_cleans_up_its_processes(tmp_path: Path) -> None:
    ok, why = PcscSandbox.available()
    if not ok:
        pytest.skip(why)
    sandbox = PcscSandbox()
    with pytest.raises(StackError, match="not running"):
        _ = sandbox.pid
    sandbox.start()
    holder, pcscd = sandbox.pid, sandbox.pcscd_pid
    sleeper = sandbox.spawn(["sleep", "60"])
    workdir = sandbox.workdir
    assert workdir is not None and workdir.exists()
    sandbox.close()
    assert sleeper.poll() is not None
    for pid in (holder, pcscd):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()
    assert not workdir.exists()


@pytest.mark.skipif(shutil.which("scriptor") is None, reason="scriptor is not installed")
def test_scriptor_reads_the_eid_on_a_logical_channel(served_card: ServedCard) -> None:
    # scriptor (pcsc-tools) leaves T=0 to its user: 61xx is answered with GET RESPONSE here.
    script = "\n".join([OPEN_CHANNEL, SELECT_ISDR_CH1, GET_EID_CH1, "01C0000015", "0070800100"])
    done = subprocess.run(["scriptor", "-r", served_card.reader], input=script + "\n",
                          env=served_card.sandbox.env(), capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    # Each answer: "< 01 90 00 : Normal processing.", long ones wrapped over lines.
    chunks = done.stdout.replace("\n", " ").split("< ")[1:]
    flat = ["".join(c.split(":")[0].split()) for c in chunks]
    assert flat[0] == "019000" and flat[1].startswith("61") and flat[2] == "6115"
    assert flat[3] == "BF3E125A10" + CARD_EID + "9000"
    assert flat[4] == "9000"

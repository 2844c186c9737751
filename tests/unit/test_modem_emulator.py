"""The emulated modem's AT interpreter, without a pty: bytes in, bytes out, a fake clock."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from lpa_emulator.modem import ModemEmulator, ModemState, StateFileError
from lpa_emulator.modem.card import CardFault, CardPort, cla_for_channel
from lpa_emulator.modem.cli import default_card_state, load_manifest, main
from mps_common.errors import ConfigError
from mps_esim import simfiles
from mps_wire.identifiers import luhn_valid, validate_imei
from tests.fixtures.modem import FakeCard

STATE = ModemState(imei="356938035643809", ip_addresses=("10.20.30.40",),
                   registration_delay=2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(card: FakeCard | None = None, **kw: object) -> tuple[ModemEmulator, Clock]:
    clock = Clock()
    emu = ModemEmulator(STATE, card, clock=clock, **kw)  # type: ignore[arg-type]
    emu.boot()
    return emu, clock


def lines(out: bytes) -> list[str]:
    return [x for x in re.split(r"[\r\n]+", out.decode("latin-1")) if x]


def ask(emu: ModemEmulator, cmd: str) -> list[str]:
    """Answer lines of ``cmd`` with echo switched off."""
    emu.settings.echo = False
    return lines(emu.feed(cmd.encode() + b"\r"))


# --- framing, echo, errors -------------------------------------------------------------

def test_boot_urcs_with_and_without_card() -> None:
    emu = ModemEmulator(STATE, FakeCard())
    assert lines(emu.boot()) == ["RDY", "+CPIN: READY", "+QIND: SMS DONE", "+QIND: PB DONE"]
    emu = ModemEmulator(STATE, None)
    assert "+CPIN: NOT INSERTED" in lines(emu.boot())
    assert lines(ModemEmulator(STATE, None, dialect="generic").boot()) == []


def test_echo_and_framing() -> None:
    emu, _ = make()
    assert emu.feed(b"AT\r") == b"AT\r\r\nOK\r\n"
    assert emu.feed(b"ATE0\r") == b"ATE0\r\r\nOK\r\n"
    assert emu.feed(b"AT+CGMI\r") == b"\r\nQuectel\r\n\r\nOK\r\n"
    assert emu.feed(b"ATE1\r") == b"\r\nOK\r\n"
    # Echo is per character: the LF after the CR is echoed after the answer.
    assert emu.feed(b"AT\r\n") == b"AT\r\r\nOK\r\n\n"


def test_input_in_pieces_backspace_and_garbage() -> None:
    emu, _ = make()
    emu.settings.echo = False
    assert emu.feed(b"AT+CG") == b""
    assert emu.feed(b"MX\x08I\r") == b"\r\nQuectel\r\n\r\nOK\r\n"
    assert emu.feed(b"hello\r") == b""  # no AT prefix: ignored, as by a modem
    assert emu.feed(b"at+cgmm\r") == b"\r\nEC25\r\n\r\nOK\r\n"
    assert lines(emu.feed(b"AT" + b"X" * 5000 + b"\r")) == ["ERROR"]
    assert lines(emu.feed(b"AT\r")) == ["OK"]


def test_unknown_and_malformed_commands() -> None:
    emu, _ = make()
    for cmd in ("AT+FOO", "AT+CGMI=?x", 'AT+CSIM=4,"00', "ATE7", "AT+CEREG"):
        assert ask(emu, cmd) == ["ERROR"], cmd


@pytest.mark.parametrize(("cmee", "answer"), [
    (0, "ERROR"), (1, "+CME ERROR: 10"), (2, "+CME ERROR: SIM not inserted")])
def test_cme_formats(cmee: int, answer: str) -> None:
    emu, _ = make(None)
    assert ask(emu, f"AT+CMEE={cmee}") == ["OK"]
    assert ask(emu, "AT+CMEE?") == [f"+CMEE: {cmee}", "OK"]
    for cmd in ("AT+CIMI", "AT+QCCID", "AT+CPIN?", 'AT+CSIM=10,"00A4000000"',
                'AT+CCHO="A0000005591010FFFFFFFF8900000100"', "AT+CCHC=1"):
        assert ask(emu, cmd) == [answer], cmd


def test_quectel_reports_numeric_cme_after_boot_and_atz_restores() -> None:
    emu, _ = make(None)
    assert ask(emu, "AT+CIMI") == ["+CME ERROR: 10"]
    assert ask(emu, "AT+CMEE=0;+CIMI") == ["ERROR"]
    assert ask(emu, "ATZ") == ["OK"]
    assert emu.settings.echo
    assert ask(emu, "AT+CIMI") == ["+CME ERROR: 10"]
    assert ask(emu, "AT+CMEE=3") == ["+CME ERROR: 50"]


def test_concatenated_commands() -> None:
    emu, _ = make()
    assert ask(emu, "AT+CGMI;+CGMM") == ["Quectel", "EC25", "OK"]
    assert ask(emu, "AT+CGMI;+NOPE;+CGMM") == ["Quectel", "ERROR"]
    assert ask(emu, "AT+CGMI; +CGMM ;") == ["Quectel", "EC25", "OK"]
    assert lines(emu.feed(b"AT&FE1V1Q0+CMEE=2\r")) == ["OK"]
    assert (emu.settings.echo, emu.settings.cmee) == (True, 2)
    assert ask(emu, "ATE0I") == ["Quectel", "EC25", f"Revision: {STATE.revision}", "OK"]
    assert ask(emu, "ATE0X") == ["ERROR"]


# --- identity --------------------------------------------------------------------------

def test_identification() -> None:
    emu, _ = make()
    assert ask(emu, "AT+CGSN") == [STATE.imei, "OK"]
    assert ask(emu, "AT+GSN") == [STATE.imei, "OK"]
    assert ask(emu, "AT+CGSN=1") == [f'+CGSN: "{STATE.imei}"', "OK"]
    assert ask(emu, "AT+CGSN=?") == ["OK"]
    assert ask(emu, "ATI") == ["Quectel", "EC25", f"Revision: {STATE.revision}", "OK"]
    assert ask(emu, "AT+CGMR") == [STATE.revision, "OK"]


# --- SIM through APDUs -----------------------------------------------------------------

def test_imsi_and_iccid_are_read_from_the_card() -> None:
    card = FakeCard(imsi="262019876543210")
    emu, _ = make(card)
    assert ask(emu, "AT+CIMI") == ["262019876543210", "OK"]
    assert card.apdus[0][:5] == bytes.fromhex("00A4040407")
    assert card.apdus[0][5:] == simfiles.AID_USIM_PREFIX
    assert any(a[:2] == b"\x00\xc0" for a in card.apdus)  # fetched the 61xx data
    card.apdus.clear()
    assert ask(emu, "AT+QCCID") == [f"+QCCID: {card.iccid}", "OK"]
    assert [a.hex().upper() for a in card.apdus if a[1] == 0xA4] == [
        "00A40004023F00", "00A40004022FE2"]
    assert ask(emu, "AT+CPIN?") == ["+CPIN: READY", "OK"]


def test_19_digit_iccid_keeps_its_filler() -> None:
    card = FakeCard(iccid="8949000000000000016")
    emu, _ = make(card)
    assert ask(emu, "AT+QCCID") == ["+QCCID: 8949000000000000016F", "OK"]


def test_crsm_read_binary() -> None:
    card = FakeCard()
    emu, _ = make(card, dialect="generic")
    hex_ = simfiles.encode_iccid(card.iccid).hex().upper()
    assert ask(emu, "AT+CRSM=176,12258,0,0,10") == [f'+CRSM: 144,0,"{hex_}"', "OK"]
    assert ask(emu, "AT+CRSM=176,12259,0,0,10") == ["+CRSM: 106,130", "OK"]
    assert ask(emu, "AT+CRSM=242") == ["ERROR"]  # generic boots with AT+CMEE=0
    assert ask(emu, "AT+QCCID") == ["ERROR"]  # not a generic command


def test_csim_is_raw() -> None:
    card = FakeCard()
    emu, _ = make(card)
    assert ask(emu, 'AT+CSIM=14,"00A40004023F00"') == ['+CSIM: 4,"6105"', "OK"]
    assert ask(emu, 'AT+CSIM=10,"00C0000005"') == ['+CSIM: 14,"62038201219000"', "OK"]
    for bad in ('AT+CSIM=12,"00A40004023F00"', 'AT+CSIM=13,"00A40004023F0"',
                'AT+CSIM=6,"00A400"', 'AT+CSIM=14,"00A40004023FXX"', "AT+CSIM=14"):
        assert ask(emu, bad) == ["+CME ERROR: 50"], bad


def test_logical_channels() -> None:
    card = FakeCard()
    emu, _ = make(card)
    aid = simfiles.ISDR_AID.hex().upper()
    answer = ask(emu, f'AT+CCHO="{aid}"')
    assert answer[-1] == "OK"
    session = int(answer[0].removeprefix("+CCHO: "))
    channel = emu.sessions[session]
    assert channel == 1 and session != channel
    # GET DATA with CLA 80 goes out as 81 on channel 1; the response is passed raw.
    assert ask(emu, f'AT+CGLA={session},10,"80CA004200"') == ['+CGLA: 4,"6104"', "OK"]
    assert card.apdus[-1] == bytes.fromhex("81CA004200")
    assert ask(emu, f'AT+CGLA={session},10,"00C0000004"') == ['+CGLA: 12,"004201029000"', "OK"]
    assert card.apdus[-1][0] == 0x01
    assert ask(emu, f"AT+CCHC={session}") == ["OK"]
    assert card.channels == {0}
    assert ask(emu, f"AT+CCHC={session}") == ["+CME ERROR: 21"]
    assert ask(emu, f'AT+CGLA={session},10,"80CA004200"') == ["+CME ERROR: 21"]


def test_ccho_errors_and_bare_style() -> None:
    card = FakeCard()
    emu, _ = make(card)
    assert ask(emu, 'AT+CCHO="A000000000"') == ["+CME ERROR: 22"]
    assert card.channels == {0}  # the failed channel was closed again
    assert ask(emu, 'AT+CCHO="A0"') == ["+CME ERROR: 50"]
    emu, _ = make(card, dialect="generic")
    emu.settings.cmee = 1
    answer = ask(emu, f'AT+CCHO="{simfiles.ISDR_AID.hex()}"')
    assert answer[0].isdigit() and answer[1] == "OK"


def test_no_free_channel() -> None:
    card = FakeCard()
    card.channels = set(range(20))
    emu, _ = make(card)
    assert ask(emu, f'AT+CCHO="{simfiles.ISDR_AID.hex()}"') == ["+CME ERROR: 3"]


def test_broken_card_is_a_sim_failure() -> None:
    class Broken(FakeCard):
        def transmit(self, apdu: bytes) -> bytes:
            raise RuntimeError("card fell out")

    emu, _ = make(Broken())
    assert ask(emu, "AT+CIMI") == ["+CME ERROR: 13"]
    assert ask(emu, 'AT+CSIM=10,"00A4000000"') == ["+CME ERROR: 13"]


def test_t0_procedure_resends_on_6cxx() -> None:
    sent: list[bytes] = []

    class WrongLe:
        atr = b"\x3b\x00"

        def reset(self) -> bytes:
            return self.atr

        def transmit(self, apdu: bytes) -> bytes:
            sent.append(apdu)
            if apdu[4] != 3:
                return b"\x6c\x03"
            return b"abc\x90\x00"

    data, sw = CardPort(WrongLe()).exchange(bytes.fromhex("00B0000000"))
    assert (data, sw) == (b"abc", 0x9000)
    assert sent[-1] == bytes.fromhex("00B0000003")

    class Endless(WrongLe):
        def transmit(self, apdu: bytes) -> bytes:
            return b"\x61\x01"

    with pytest.raises(CardFault):
        CardPort(Endless()).exchange(bytes.fromhex("00B0000000"))


@pytest.mark.parametrize(("cla", "channel", "expected"), [
    (0x00, 0, 0x00), (0x00, 1, 0x01), (0x00, 3, 0x03), (0x00, 4, 0x40), (0x00, 19, 0x4F),
    (0x80, 2, 0x82), (0x80, 5, 0xC1), (0x84, 1, 0x85), (0x84, 4, 0xE0), (0x10, 1, 0x11),
])
def test_cla_for_channel(cla: int, channel: int, expected: int) -> None:
    assert cla_for_channel(cla, channel) == expected


# --- network ---------------------------------------------------------------------------

def test_registration_after_the_delay() -> None:
    emu, clock = make(FakeCard())
    assert ask(emu, "AT+CEREG?") == ["+CEREG: 1,2", "OK"]
    assert ask(emu, "AT+CGPADDR=1") == ["+CGPADDR: 1", "OK"]
    assert emu.poll() == b""
    assert emu.next_timer() == pytest.approx(2.0)
    clock.now += 2.0
    assert lines(emu.poll()) == ["+CEREG: 1"]
    assert emu.poll() == b""
    assert ask(emu, "AT+CEREG?") == ["+CEREG: 1,1", "OK"]
    assert ask(emu, "AT+CGPADDR=1") == ['+CGPADDR: 1,"10.20.30.40"', "OK"]
    assert ask(emu, "AT+CGPADDR") == ['+CGPADDR: 1,"10.20.30.40"', "OK"]
    assert ask(emu, "AT+CGPADDR=2") == ["+CME ERROR: 50"]


def test_cereg_modes() -> None:
    emu, clock = make()
    assert ask(emu, "AT+CEREG=0") == ["OK"]
    clock.now += 5
    assert emu.poll() == b""  # URCs off
    assert ask(emu, "AT+CEREG?") == ["+CEREG: 0,1", "OK"]
    assert ask(emu, "AT+CEREG=2") == ["OK"]
    assert ask(emu, "AT+CEREG?") == ['+CEREG: 2,1,"1A2B","01A2B3C4",7', "OK"]
    assert emu.cereg_line(solicited=False) == '+CEREG: 1,"1A2B","01A2B3C4",7'
    assert ask(emu, "AT+CEREG=?") == ["+CEREG: (0-2)", "OK"]


def test_random_urcs_are_seeded_and_some_wait_for_a_command() -> None:
    def run(seed: int) -> list[tuple[str, ...]]:
        emu, clock = make(urc_interval=1.0, urc_mid_command=0.5, seed=seed)
        emu.settings.echo = True
        out: list[tuple[str, ...]] = []
        for _ in range(40):
            clock.now += 0.5
            out.append(tuple(lines(emu.poll())))
            out.append(tuple(lines(emu.feed(b"AT+CGMM\r"))))
        return out

    a, b = run(1), run(1)
    assert a == b
    assert a != run(2)
    spontaneous = [x for x in a[0::2] if x]
    mid = [x for x in a[1::2] if x[1] != "EC25"]
    assert spontaneous and mid
    # A held URC comes after the echo and before the answer.
    assert all(x[0] == "AT+CGMM" and x[1].startswith("+CEREG: ") and x[-2:] == ("EC25", "OK")
               for x in mid)


def test_injected_urc_mid_command_shares_the_answers_prefix() -> None:
    emu, clock = make()
    clock.now += 5
    emu.poll()
    emu.inject_urc("+CEREG: 5", mid_command=True)
    assert emu.poll() == b""
    assert lines(emu.feed(b"AT+CEREG?\r")) == ["AT+CEREG?", "+CEREG: 5", "+CEREG: 1,1", "OK"]
    emu.inject_urc("+QIND: SMS DONE")
    assert lines(emu.poll()) == ["+QIND: SMS DONE"]
    with pytest.raises(ValueError):
        emu.inject_urc("A\r\nB")


# --- state -----------------------------------------------------------------------------

def test_state_is_created_valid_and_saved_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "modem.json"
    state = ModemState.load_or_create(path, rng=random.Random(5))
    assert validate_imei(state.imei) == state.imei and luhn_valid(state.imei)
    assert (state.manufacturer, state.model) == ("Quectel", "EC25")
    assert state.ip_addresses[0].startswith("10.")
    assert ModemState.load_or_create(path) == state
    assert sorted(p.name for p in path.parent.iterdir()) == ["modem.json"]
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and raw["imei"] == state.imei
    others = {ModemState.create(random.Random(s)).imei for s in range(20)}
    assert len(others) == 20


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(imei="356938035643808"),
    lambda d: d.update(imei=356938035643809),
    lambda d: d.update(ip_addresses=["10.0.0.256"]),
    lambda d: d.update(ip_addresses="10.0.0.1"),
    lambda d: d.update(registration_delay=-1),
    lambda d: d.update(registration_delay="2"),
    lambda d: d.update(model=""),
    lambda d: d.update(version=9),
    lambda d: d.pop("imei"),
])
def test_bad_state_files_are_rejected(tmp_path: Path,
                                      mutate: Callable[[dict[str, object]], object]) -> None:
    data = STATE.to_dict()
    mutate(data)
    path = tmp_path / "modem.json"
    path.write_text(json.dumps(data))
    with pytest.raises(StateFileError) as info:
        ModemState.load(path)
    assert str(path) in str(info.value)


def test_corrupt_state_file(tmp_path: Path) -> None:
    path = tmp_path / "modem.json"
    path.write_text("{not json")
    with pytest.raises(StateFileError):
        ModemState.load_or_create(path)


def test_default_card_state_sits_beside_the_modem_state() -> None:
    assert default_card_state(Path("/run/mps/modem1.json")) == Path("/run/mps/modem1-euicc.json")


def test_cli_reports_a_link_it_may_not_replace(tmp_path: Path) -> None:
    link = tmp_path / "modem"
    link.write_text("a regular file")
    code = main(["--link", str(link), "--state", str(tmp_path / "m.json"), "--no-card"])
    assert code == 1
    assert link.read_text() == "a regular file"


@pytest.mark.parametrize(("argv", "problem"), [
    (["--count", "3", "--link", "/tmp/x", "--state", "/tmp/s{i}.json"], "{i}"),
    (["--count", "0", "--link", "/tmp/x{i}", "--state", "/tmp/s{i}.json"], "--count"),
    (["--link", "/tmp/x"], "--state are required"),
    (["--manifest", "/nonexistent/m.toml"], "m.toml"),
])
def test_cli_many_modems_usage(argv: list[str], problem: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize(("text", "problem"), [
    ("", "[[modem]] tables"),
    ('[[modem]]\nlink = "/l"\n', "modem[0].state: is required"),
    ('[[modem]]\nlink = "/l"\nstate = "/s"\ndialect = "nokia"\n', "modem[0].dialect"),
    ('[[modem]]\nlink = "/l"\nstate = "/s"\ncolour = 1\n', "modem[0].colour: is not"),
    ('[[modem]]\nlink = "/l"\nstate = "/s"\nno_card = true\ncard_state = "/c"\n',
     "modem[0].card_state"),
    ('[[modem]]\nlink = "/l"\nstate = "/s"\nno_card = "yes"\n', "modem[0].no_card"),
    ('x = 1\n[[modem]]\nlink = "/l"\nstate = "/s"\n', "nothing else"),
])
def test_manifest_errors_name_the_entry(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert problem in str(err.value)


def test_manifest_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[[modem]]\nlink = "/l0"\nstate = "/d/s0.json"\n\n'
                    '[[modem]]\nlink = "/l1"\nstate = "/d/s1.json"\nno_card = true\n'
                    'dialect = "generic"\n')
    first, second = load_manifest(path)
    assert (first.card_state, first.dialect) == (Path("/d/s0-euicc.json"), "quectel")
    assert (second.card_state, second.dialect) == (None, "generic")

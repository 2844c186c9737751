"""Every vendor dialect: the emulated modem speaks it, the agent's driver understands it.

The agent's :class:`Modem` talks to the :class:`ModemEmulator` in memory here (no pty), so
each dialect's ICCID command, IP address command, ``+CCHO`` style or absence, power-on
URCs and ``+CME ERROR`` texts are checked in milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from agent.card.at import AtCardLink
from agent.errors import CmeError, ModemError
from agent.modem import DIALECTS as AGENT_DIALECTS
from agent.modem import Modem
from agent.modem.dialects import parse_cnact, parse_prefixed_iccid, parse_upsnd
from lpa_emulator.modem import DIALECTS as EMULATED_DIALECTS
from lpa_emulator.modem import ModemEmulator, ModemState
from lpa_emulator.modem.commands import AtCommand, CmeFailure, int_arg
from mps_esim import simfiles
from tests.fixtures.modem import EmulatorLink, FakeCard, emulator_modem

NAMES = sorted(EMULATED_DIALECTS)
STATE = ModemState(imei="356938035643809", ip_addresses=("10.20.30.40",),
                   registration_delay=0.0)
WITH_CCHO = {"quectel", "generic"}


def make(dialect: str, card: FakeCard | None = None, **kw: object) -> ModemEmulator:
    identity = EMULATED_DIALECTS[dialect].identity
    state = replace(STATE, manufacturer=identity[0], model=identity[1], revision=identity[2])
    return ModemEmulator(state, card, dialect=dialect, **kw)  # type: ignore[arg-type]


def ask(emu: ModemEmulator, cmd: str) -> list[str]:
    if not emu.booted:
        emu.boot()
    emu.settings.echo = False
    return [x for x in re.split(r"[\r\n]+", emu.feed(cmd.encode() + b"\r").decode()) if x]


def test_the_agent_and_the_emulator_know_the_same_dialects() -> None:
    assert set(AGENT_DIALECTS) == set(EMULATED_DIALECTS)


@pytest.mark.parametrize("name", NAMES)
def test_identity_in_every_dialect(name: str) -> None:
    card = FakeCard(imsi="262019876543210")
    emu = make(name, card)
    modem = emulator_modem(emu)
    assert modem.dialect.name == name
    assert modem.imei() == STATE.imei
    assert (modem.manufacturer(), modem.model(), modem.revision()) == emu.dialect.identity
    assert modem.iccid() == card.iccid
    assert modem.imsi() == "262019876543210"
    assert modem.sim_present()
    assert modem.registered()
    assert modem.ip_addresses() == ["10.20.30.40"]
    link = modem.link
    assert isinstance(link, EmulatorLink)
    assert AGENT_DIALECTS[name].iccid_command in link.written
    assert AGENT_DIALECTS[name].ip_command in link.written


@pytest.mark.parametrize("name", NAMES)
def test_no_address_before_registration(name: str) -> None:
    emu = make(name, FakeCard())
    emu.state = replace(emu.state, registration_delay=3600)
    modem = emulator_modem(emu)
    assert not modem.registered()
    assert modem.ip_addresses() == []


@pytest.mark.parametrize("name", NAMES)
def test_power_on_urcs_are_not_answers(name: str) -> None:
    """The vendor's boot lines (bare ones too: SIMCom's ``SMS DONE``) arriving in the
    middle of a bare answer are told apart from it and reach the URC handlers."""
    emu = make(name, FakeCard())
    modem = emulator_modem(emu)
    urcs: list[str] = []
    modem.on_urc(urcs.append)
    boot = [u for u in emu.dialect.boot_urcs(True)]
    for line in boot:
        emu.inject_urc(line, mid_command=True)
    assert modem.imei() == STATE.imei
    assert urcs == boot


@pytest.mark.parametrize("name", NAMES)
def test_card_through_the_modem(name: str) -> None:
    """The ISD-R is reached over AT+CCHO/CGLA where the modem has it, else over MANAGE
    CHANNEL in AT+CSIM after AT+CCHO is refused."""
    card = FakeCard()
    modem = emulator_modem(make(name, card))
    link = AtCardLink(modem)
    link.connect()
    assert link.read_iccid() == card.iccid
    with link.open_isdr() as isdr:
        assert isdr.send(bytes.fromhex("80CA004200"))[:2] == b"\x00\x42"
    written = modem.link.written  # type: ignore[attr-defined]
    used_cgla = any(c.startswith("AT+CGLA=") for c in written)
    assert used_cgla == (name in WITH_CCHO)
    if name not in WITH_CCHO:
        assert any(c.startswith('AT+CSIM=10,"0070000001"') for c in written)
    assert card.channels == {0}, "the channel is closed again"


@pytest.mark.parametrize("name", sorted(set(NAMES) - WITH_CCHO))
def test_forced_ccho_falls_back_on_a_modem_without_it(name: str) -> None:
    card = FakeCard()
    modem = emulator_modem(make(name, card))
    link = AtCardLink(modem, use_ccho=True)
    link.connect()
    if name == "sim7080":
        # Known by name, refused as "operation not supported": the link falls back.
        with link.open_isdr() as isdr:
            assert isdr.number == 1
    else:
        with pytest.raises(ModemError, match="CCHO"):
            link.open_isdr()


@pytest.mark.parametrize("name", NAMES)
def test_missing_sim(name: str) -> None:
    modem = emulator_modem(make(name, None))
    assert not modem.sim_present()
    with pytest.raises(CmeError) as err:
        modem.iccid()
    assert err.value.code == 10


@pytest.mark.parametrize("name", NAMES)
def test_every_verbose_cme_text_maps_back_to_its_code(name: str) -> None:
    """With AT+CMEE=2 the modem prints texts; the agent's dialect knows them all."""

    def fail(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
        raise CmeFailure(int_arg(cmd.arg, 0, 1000))

    dialect = EMULATED_DIALECTS[name]
    emu = ModemEmulator(STATE, None, dialect=replace(
        dialect, handlers={**dialect.handlers, "+XFAIL": fail}))
    modem = emulator_modem(emu)
    modem.link.command("AT+CMEE=2")
    for code, text in dialect.cme_texts.items():
        with pytest.raises(CmeError) as err:
            modem.link.command(f"AT+XFAIL={code}")
        assert (err.value.code, err.value.text) == (code, text)


# --- the emulator's side of each dialect --------------------------------------------------

def test_sim7080_refuses_the_channel_commands_as_unsupported() -> None:
    emu = make("sim7080", FakeCard())
    aid = simfiles.ISDR_AID.hex().upper()
    assert ask(emu, f'AT+CCHO="{aid}"') == ["ERROR"]  # boots with AT+CMEE=0
    emu.settings.cmee = 1
    for cmd in (f'AT+CCHO="{aid}"', "AT+CCHO=?", 'AT+CGLA=1,10,"80CA004200"', "AT+CCHC=1"):
        assert ask(emu, cmd) == ["+CME ERROR: 4"], cmd
    emu.settings.cmee = 2
    assert ask(emu, "AT+CCHO=?") == ["+CME ERROR: operation not supported"]


@pytest.mark.parametrize("name", ["sim7600", "ublox"])
def test_modems_without_channel_commands_do_not_know_them(name: str) -> None:
    emu = make(name, FakeCard())
    emu.settings.cmee = 1
    assert ask(emu, "AT+CCHO=?") == ["ERROR"]
    assert ask(emu, 'AT+CSIM=10,"0070000001"') == ['+CSIM: 6,"019000"', "OK"]


def test_iccid_forms() -> None:
    card = FakeCard(iccid="8949000000000000016")
    assert ask(make("quectel", card), "AT+QCCID") == ["+QCCID: 8949000000000000016F", "OK"]
    assert ask(make("sim7600", card), "AT+CICCID") == ["+ICCID: 8949000000000000016", "OK"]
    assert ask(make("sim7080", card), "AT+CCID") == ["8949000000000000016", "OK"]
    assert ask(make("ublox", card), "AT+CCID") == ["+CCID: 8949000000000000016", "OK"]
    for name, cmd in (("quectel", "AT+CCID"), ("sim7080", "AT+QCCID"),
                      ("ublox", "AT+CICCID")):
        assert ask(make(name, card), cmd) == ["ERROR"], (name, cmd)


def test_ip_address_forms() -> None:
    emu = make("sim7080", FakeCard())
    assert ask(emu, "AT+CNACT?") == ['+CNACT: 0,1,"10.20.30.40"', '+CNACT: 1,0,"0.0.0.0"',
                                     '+CNACT: 2,0,"0.0.0.0"', '+CNACT: 3,0,"0.0.0.0"', "OK"]
    assert ask(emu, "AT+CNACT=0,1") == ["OK"]
    emu.settings.cmee = 1
    assert ask(emu, "AT+CNACT=4,1") == ["+CME ERROR: 50"]
    emu = make("ublox", FakeCard())
    assert ask(emu, "AT+UPSND=0,0") == ['+UPSND: 0,0,"10.20.30.40"', "OK"]
    assert ask(emu, "AT+UPSND=0,8") == ["+UPSND: 0,8,1", "OK"]
    assert ask(emu, "AT+UPSND=1,0") == ['+UPSND: 1,0,""', "OK"]
    assert ask(emu, "AT+UPSDA=0,3") == ["OK"]
    emu.settings.cmee = 1
    assert ask(emu, "AT+UPSND=0,5") == ["+CME ERROR: 50"]


def test_identification_forms() -> None:
    assert ask(make("sim7600"), "AT+CGMR") == ["+CGMR: LE20B04SIM7600M22", "OK"]
    assert ask(make("sim7080"), "AT+CGMR") == ["Revision:1951B04SIM7080", "OK"]
    assert ask(make("ublox"), "AT+CGMI") == ["u-blox", "OK"]
    assert ask(make("sim7600"), "ATI")[:2] == ["Manufacturer: SIMCOM INCORPORATED",
                                               "Model: SIMCOM_SIM7600E-H"]


@pytest.mark.parametrize("name", NAMES)
def test_new_state_takes_the_dialects_identity(name: str, tmp_path: object) -> None:
    state = ModemState.create(identity=EMULATED_DIALECTS[name].identity)
    assert (state.manufacturer, state.model, state.revision) == \
        EMULATED_DIALECTS[name].identity


# --- the agent's parsers ---------------------------------------------------------------

def test_parse_cnact() -> None:
    assert parse_cnact(['+CNACT: 0,1,"10.1.2.3"', '+CNACT: 1,0,"0.0.0.0"']) == ["10.1.2.3"]
    assert parse_cnact(['+CNACT: 0,1,"10.1.2.3"', '+CNACT: 1,1,"10.9.9.9"']) == [
        "10.1.2.3", "10.9.9.9"]
    assert parse_cnact(['+CNACT: 0,2,"10.1.2.3"']) == []  # still activating
    assert parse_cnact(['+CNACT: 0,1,"0.0.0.0"']) == []
    for bad in (['+CNACT: x,1,"10.1.2.3"'], ["+CNACT: 0"], ['+CNACT: 0,1,"10.1.2"']):
        with pytest.raises(ValueError):
            parse_cnact(bad)


def test_parse_upsnd() -> None:
    assert parse_upsnd(['+UPSND: 0,0,"10.1.2.3"']) == ["10.1.2.3"]
    assert parse_upsnd(['+UPSND: 0,0,""']) == []
    assert parse_upsnd(['+UPSND: 0,0,"0.0.0.0"']) == []
    for bad in (["+UPSND: 0,8,1"], ['+UPSND: 0,0,"x"'], ["+UPSND: 0"]):
        with pytest.raises(ValueError):
            parse_upsnd(bad)


def test_parse_iccid_bare_or_prefixed() -> None:
    iccid = FakeCard().iccid
    for line in (iccid, f"+CCID: {iccid}", f'+ICCID: "{iccid}"', f"+QCCID: {iccid}F"):
        assert parse_prefixed_iccid([line]) == iccid
    with pytest.raises(ValueError):
        parse_prefixed_iccid(["+CCID: 1234"])


def test_sim7080_bare_ccid_is_read_among_urcs() -> None:
    """AT+CCID answers bare digits; a SIMCom URC in between is not taken for them."""
    card = FakeCard()
    emu = make("sim7080", card)
    modem = Modem(EmulatorLink(emu), "sim7080")
    modem.link.open()
    modem.sync()
    emu.inject_urc("SMS Ready", mid_command=True)
    assert modem.iccid() == card.iccid

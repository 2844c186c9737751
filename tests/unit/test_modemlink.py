"""ModemLink (framing, echo, URCs, finals, timeouts, resync), Modem's answer checks and the
URL registry, against a scripted transport."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import AgentConfigError, CmeError, ModemError, ModemTimeoutError
from agent.modem import (
    DIALECTS,
    TRANSPORTS,
    Modem,
    ModemLink,
    SerialLink,
    SocketLink,
    open_modem,
)
from agent.modem.dialects import parse_cgpaddr
from mps_esim import simfiles
from mps_wire.identifiers import make_iccid, make_imei

Chunk = bytes | float
Replies = dict[str, list[Chunk]] | Callable[[str], list[Chunk]]

IMEI = make_imei("35123456", "654321")
ICCID = make_iccid("89490000000000000" + "12")


def ok(*lines: str, echo: str | None = None) -> list[Chunk]:
    """A modem answer: optional echo, information lines, OK."""
    out = (echo + "\r") if echo is not None else ""
    out += "".join(f"\r\n{line}\r\n" for line in lines) + "\r\nOK\r\n"
    return [out.encode()]


class ScriptedLink(ModemLink):
    """A modem whose answers are scripted per command; floats in an answer are pauses."""

    def __init__(self, replies: Replies) -> None:
        super().__init__("scripted")
        self.replies = replies
        self.written: list[str] = []
        self._queue: deque[tuple[float, bytes]] = deque()

    def push(self, chunks: list[Chunk]) -> None:
        t = max(time.monotonic(), self._queue[-1][0] if self._queue else 0.0)
        for c in chunks:
            if isinstance(c, float):
                t += c
            else:
                self._queue.append((t, c))

    def _write(self, data: bytes) -> None:
        cmd = data.decode().removesuffix("\r")
        self.written.append(cmd)
        if callable(self.replies):
            self.push(self.replies(cmd))
        elif cmd in self.replies:
            self.push(self.replies[cmd])

    def _read(self, timeout: float) -> bytes:
        if not self._queue:
            time.sleep(timeout)
            return b""
        ready, chunk = self._queue[0]
        wait = ready - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return b""
        if wait > 0:
            time.sleep(wait)
        self._queue.popleft()
        return chunk

    def _close(self) -> None:
        self._queue.clear()


def scripted(replies: Replies) -> tuple[ScriptedLink, list[str]]:
    link = ScriptedLink(replies)
    link.open()
    urcs: list[str] = []
    link.on_urc(urcs.append)
    return link, urcs


# --- framing, echo, URCs ----------------------------------------------------------------

def test_echo_is_removed() -> None:
    link, urcs = scripted({"AT+CGMI": ok("Quectel", echo="AT+CGMI")})
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]
    assert urcs == []
    assert link.written == ["AT+CGMI"]


def test_urc_between_echo_and_answer_goes_to_handlers() -> None:
    link, urcs = scripted({"AT+QCCID": ok("+CEREG: 1", "RDY", f"+QCCID: {ICCID}",
                                          echo="AT+QCCID")})
    assert link.command("AT+QCCID", prefix="+QCCID:") == [f"+QCCID: {ICCID}"]
    assert urcs == ["+CEREG: 1", "RDY"]


def test_bare_answer_skips_prefixed_and_known_urcs() -> None:
    link, urcs = scripted({"AT+CGSN": ok("+QIND: SMS DONE", "RDY", IMEI, "+CEREG: 2",
                                         echo="AT+CGSN")})
    link.add_urc_prefixes(["RDY"])
    assert link.command("AT+CGSN", bare=True) == [IMEI]
    assert urcs == ["+QIND: SMS DONE", "RDY", "+CEREG: 2"]


def test_vendor_urcs_must_be_declared_for_bare_answers() -> None:
    link, _ = scripted({"AT+CGSN": ok("RDY", IMEI)})
    assert link.command("AT+CGSN", bare=True) == ["RDY", IMEI]


def test_lines_are_urcs_unless_asked_for() -> None:
    link, urcs = scripted({"AT+CMEE=1": ok("+CEREG: 1", "something")})
    assert link.command("AT+CMEE=1") == []
    assert urcs == ["+CEREG: 1", "something"]


@pytest.mark.parametrize(("urc", "answer"), [
    ("+CEREG: 1", "+CEREG: 0,1"),
    ("+CEREG: 5", "+CEREG: 1,5"),
    ('+CEREG: 1,"1A2B","01A2B3C4",7', '+CEREG: 2,1,"1A2B","01A2B3C4",7'),
    ("+CEREG: 2,,,", "+CEREG: 2,2"),
])
@pytest.mark.parametrize("urc_first", [True, False])
def test_urc_sharing_the_answers_prefix(urc: str, answer: str, urc_first: bool) -> None:
    lines = [urc, answer] if urc_first else [answer, urc]
    link, urcs = scripted({"AT+CEREG?": ok(*lines, echo="AT+CEREG?")})
    assert link.command("AT+CEREG?", prefix="+CEREG:") == [answer]
    assert urcs == [urc]


def test_explicit_accept_overrides_the_default_form() -> None:
    link, urcs = scripted({"AT+QFOO?": ok("+QFOO: urc", "+QFOO: 1,2")})
    got = link.command("AT+QFOO?", prefix="+QFOO:", accept=lambda s: "," in s)
    assert got == ["+QFOO: 1,2"]
    assert urcs == ["+QFOO: urc"]


@pytest.mark.parametrize("reply", [
    b"\r\nQuectel\r\n\r\nOK\r\n",
    b"Quectel\r\nOK\r\n",
    b"\nQuectel\n\nOK\n",
    b"\rQuectel\rOK\r",
    b"AT+CGMI\r\r\r\nQuectel\r\r\n\r\r\nOK\r\r\n",
    b"AT+CGMI\n\r\nQuectel\n\r\r\nOK\r",
])
def test_line_end_variations(reply: bytes) -> None:
    link, _ = scripted({"AT+CGMI": [reply]})
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]


def test_answer_split_across_reads() -> None:
    reply = b"AT+CSIM=10,\"00A4040000\"\r\r\n+CEREG: 1\r\n\r\n+CSIM: 4,\"6A82\"\r\n\r\nOK\r\n"
    chunks: list[Chunk] = [reply[i:i + 1] for i in range(len(reply))]
    link, urcs = scripted({'AT+CSIM=10,"00A4040000"': chunks})
    assert link.command('AT+CSIM=10,"00A4040000"', prefix="+CSIM:") == ['+CSIM: 4,"6A82"']
    assert urcs == ["+CEREG: 1"]


def test_answer_split_with_pauses() -> None:
    link, _ = scripted({"AT+CGMM": [b"\r\nEC", 0.02, b"25\r", 0.02, b"\n\r\nO", 0.02, b"K\r\n"]})
    assert link.command("AT+CGMM", bare=True, timeout=1.0) == ["EC25"]


# --- final result codes -------------------------------------------------------------------

def test_error_raises_modem_error() -> None:
    link, _ = scripted({"AT+FOO": [b"\r\nERROR\r\n"]})
    with pytest.raises(ModemError) as info:
        link.command("AT+FOO")
    assert not isinstance(info.value, CmeError)
    assert info.value.command == "AT+FOO"


def test_cme_error_numeric() -> None:
    link, _ = scripted({"AT+CIMI": [b"AT+CIMI\r\r\n+CME ERROR: 10\r\n"]})
    with pytest.raises(CmeError) as info:
        link.command("AT+CIMI", bare=True)
    assert info.value.code == 10
    assert info.value.text == "SIM not inserted"
    assert info.value.command == "AT+CIMI"


def test_cme_error_text() -> None:
    link, _ = scripted({"AT+CIMI": [b"\r\n+CME ERROR: SIM not inserted\r\n"]})
    with pytest.raises(CmeError) as info:
        link.command("AT+CIMI", bare=True)
    assert info.value.code == 10
    assert info.value.text == "SIM not inserted"


def test_cme_error_unknown_text_and_vendor_table() -> None:
    link, _ = scripted({"AT+X": [b"\r\n+CME ERROR: flux capacitor\r\n"],
                        "AT+Y": [b"\r\n+CME ERROR: 903\r\n"]})
    with pytest.raises(CmeError) as info:
        link.command("AT+X")
    assert (info.value.code, info.value.text) == (None, "flux capacitor")
    link.add_cme_texts({903: "vendor thing"})
    with pytest.raises(CmeError) as info:
        link.command("AT+Y")
    assert (info.value.code, info.value.text) == (903, "vendor thing")


def test_cms_error() -> None:
    link, _ = scripted({"AT+CMGS=1": [b"\r\n+CMS ERROR: 500\r\n"]})
    with pytest.raises(CmeError) as info:
        link.command("AT+CMGS=1")
    assert info.value.code == 500


# --- timeouts and resync ---------------------------------------------------------------

def test_timeout_then_resync_swallows_the_late_ok() -> None:
    # AT+SLOW answers after its timeout; the late OK lands just before the resync probe's
    # own OK, so a naive "first OK" resync would leave the probe's OK for AT+CGMI.
    link, _ = scripted({"AT+SLOW": [0.15, b"\r\n+SLOW: 1\r\n\r\nOK\r\n"],
                        "AT": [0.1, b"\r\nOK\r\n"],
                        "AT+CGMI": ok("Quectel")})
    started = time.monotonic()
    with pytest.raises(ModemTimeoutError) as info:
        link.command("AT+SLOW", prefix="+SLOW:", timeout=0.1)
    assert isinstance(info.value, TimeoutError)
    assert info.value.command == "AT+SLOW"
    assert 0.09 < time.monotonic() - started < 0.5
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]
    assert link.written.count("AT") == 2
    # And the link stays in step afterwards.
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]


def test_resync_with_echo_on_and_urcs() -> None:
    link, urcs = scripted({"AT+SLOW": [0.08, b"\r\nOK\r\n"],
                           "AT": ok("+CEREG: 1", echo="AT"),
                           "AT+CGMM": ok("EC25", echo="AT+CGMM")})
    with pytest.raises(ModemTimeoutError):
        link.command("AT+SLOW", timeout=0.05)
    time.sleep(0.05)
    assert link.command("AT+CGMM", bare=True) == ["EC25"]
    assert "+CEREG: 1" in urcs


def test_resync_gives_up_on_a_dead_modem() -> None:
    link, _ = scripted({})
    link.resync_timeout = 0.3
    with pytest.raises(ModemTimeoutError):
        link.command("AT+CGMI", timeout=0.05)
    with pytest.raises(ModemTimeoutError) as info:
        link.command("AT+CGMI", timeout=0.05)
    assert info.value.command == "AT"


def test_stale_final_before_a_command_forces_a_resync() -> None:
    link, urcs = scripted({"AT": ok(), "AT+CGMI": ok("Quectel")})
    link.resync_settle = 0.02
    link.push([b"\r\nOK\r\n\r\n+CEREG: 1\r\n"])
    link.poll(0.05)
    assert urcs == ["+CEREG: 1"]
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]
    assert link.written == ["AT", "AT+CGMI"]


def test_partial_leftover_line_is_not_merged_into_the_answer() -> None:
    link, _ = scripted({"AT": ok(), "AT+CGMI": ok("Quectel")})
    link.resync_settle = 0.02
    link.push([b"\r\nOK\r\nOK"])  # a doubled, cut-off final
    link.poll(0.05)
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]


def test_partial_urc_completing_before_the_command_is_kept() -> None:
    link, urcs = scripted({"AT+CGMI": ok("Quectel")})
    link.push([b"\r\n+CEREG:", 0.01, b" 1\r\n"])
    link.poll(0.005)
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]
    assert urcs == ["+CEREG: 1"]


def test_overlong_line_raises_and_next_command_works() -> None:
    link, _ = scripted({"AT+BIG": [b"\r\n" + b"A" * 5000], "AT": ok(), "AT+CGMI": ok("Quectel")})
    link.resync_settle = 0.01
    with pytest.raises(ModemError):
        link.command("AT+BIG", timeout=0.5)
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]


def test_overlong_idle_garbage_is_survived() -> None:
    link, urcs = scripted({"AT": ok(), "AT+CGMI": ok("Quectel")})
    link.resync_settle = 0.01
    link.push([b"\r\n" + b"Z" * 5000 + b"\r\n+CEREG: 1\r\n"])
    link.poll(0.05)
    assert link.command("AT+CGMI", bare=True) == ["Quectel"]
    assert "AT" in link.written
    assert urcs == ["+CEREG: 1"]


def test_sync_sends_probe_echo_off_and_numeric_errors() -> None:
    link, _ = scripted(lambda cmd: ok(echo=cmd))
    link.resync_settle = 0.01
    link.sync()
    assert link.written == ["AT", "ATE0", "AT+CMEE=1"]


# --- handlers, life cycle, arguments ------------------------------------------------------

def test_handler_errors_do_not_break_commands_and_unsubscribe() -> None:
    link, urcs = scripted({"AT": ok("+CEREG: 1")})

    def broken(line: str) -> None:
        raise RuntimeError("handler bug")

    remove = link.on_urc(broken)
    assert link.command("AT") == []
    remove()
    remove()
    assert link.command("AT") == []
    assert urcs == ["+CEREG: 1", "+CEREG: 1"]


def test_poll_delivers_idle_urcs() -> None:
    link, urcs = scripted({})
    link.push([b"\r\n+CEREG: 1\r\n\r\n+QIND: PB DONE\r\n"])
    assert link.poll(0.1) == 2
    assert urcs == ["+CEREG: 1", "+QIND: PB DONE"]
    assert link.poll(0.01) == 0


def test_closed_link_and_bad_commands() -> None:
    link = ScriptedLink({})
    with pytest.raises(ModemError):
        link.command("AT")
    link.open()
    for bad in ("AT\r", "ATE0\nAT", "+CGSN", "", "AT+\x00"):
        with pytest.raises(ValueError):
            link.command(bad)
    with pytest.raises(ValueError):
        link.command("AT", timeout=0)
    link.close()
    assert not link.is_open


class GarbageThenSane(ScriptedLink):
    def __init__(self, garbage: bytes) -> None:
        super().__init__(self._reply)
        self.garbage: bytes | None = garbage

    def _reply(self, cmd: str) -> list[Chunk]:
        if self.garbage is not None:
            garbage, self.garbage = self.garbage, None
            return [garbage]
        return ok("Quectel") if cmd == "AT+CGMI" else ok()


_CHUNKS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\r\n", b"OK", b"ERROR", b"+CME ERROR: ", b"+CMS ERROR:", b"+CSIM: ",
                     b"+CEREG: ", b"\r", b"\n", b"99999999999999999999", b"\xff\xfe", b"\x00",
                     b"\xb2", b'"', b","]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CHUNKS, max_size=12).map(b"".join),
       st.sampled_from([("AT+CGSN", None, True), ('AT+CSIM=4,"0000"', "+CSIM:", False),
                        ("AT+CEREG?", "+CEREG:", False)]))
def test_random_responses_only_raise_modem_errors(garbage: bytes,
                                                  call: tuple[str, str | None, bool]) -> None:
    cmd, prefix, bare = call
    link = GarbageThenSane(garbage)
    link.resync_settle = 0.002
    link.open()
    try:
        answer = link.command(cmd, prefix=prefix, bare=bare, timeout=0.005)
    except ModemError:
        pass
    else:
        assert all(isinstance(line, str) for line in answer)
    # Whatever came before, the link gets back in step.
    assert link.command("AT+CGMI", bare=True, timeout=1.0)[-1:] == ["Quectel"]


# --- Modem: answers are checked -----------------------------------------------------------

def modem(replies: Replies, dialect: str = "quectel") -> tuple[Modem, ScriptedLink]:
    link = ScriptedLink(replies)
    link.open()
    return Modem(link, dialect), link


def test_imei_bare_and_prefixed() -> None:
    m, _ = modem({"AT+CGSN": ok("+QIND: SMS DONE", IMEI)})
    assert m.imei() == IMEI
    m, _ = modem({"AT+CGSN": ok(f'+CGSN: "{IMEI}"')})
    assert m.imei() == IMEI


def test_imei_falls_back_to_gsn() -> None:
    m, link = modem({"AT+CGSN": [b"\r\nERROR\r\n"], "AT+GSN": ok(IMEI)})
    assert m.imei() == IMEI
    assert link.written == ["AT+CGSN", "AT+GSN"]


@pytest.mark.parametrize("bad", [IMEI[:-1] + str((int(IMEI[-1]) + 1) % 10), "12345", "ERRORX"])
def test_bad_imei_names_command_and_line(bad: str) -> None:
    m, _ = modem({"AT+CGSN": ok(bad)})
    with pytest.raises(ModemError) as info:
        m.imei()
    assert info.value.command == "AT+CGSN"
    assert bad in str(info.value)


def test_no_answer_line_is_an_error() -> None:
    m, _ = modem({"AT+CGSN": ok()})
    with pytest.raises(ModemError, match="no IMEI"):
        m.imei()


def test_model_information() -> None:
    m, _ = modem({"AT+CGMI": ok("Quectel"), "AT+CGMM": ok("EC25"),
                  "AT+CGMR": ok("Revision: EC25EFAR06A06M4G")})
    assert (m.manufacturer(), m.model(), m.revision()) == ("Quectel", "EC25",
                                                           "EC25EFAR06A06M4G")


def test_quectel_iccid_with_filler() -> None:
    iccid19 = make_iccid("894900000000000001")
    m, _ = modem({"AT+QCCID": ok(f"+QCCID: {iccid19}F")})
    assert m.iccid() == iccid19
    m, _ = modem({"AT+QCCID": ok("+QCCID: 8949000000000000001")})  # Luhn fails
    with pytest.raises(ModemError, match="QCCID"):
        m.iccid()


def test_generic_iccid_via_crsm() -> None:
    hex_ = simfiles.encode_iccid(ICCID).hex().upper()
    m, _ = modem({"AT+CRSM=176,12258,0,0,10": ok(f'+CRSM: 144,0,"{hex_}"')}, "generic")
    assert m.iccid() == ICCID
    m, _ = modem({"AT+CRSM=176,12258,0,0,10": ok("+CRSM: 106,130")}, "generic")
    with pytest.raises(ModemError, match="6A82"):
        m.iccid()


def test_imsi() -> None:
    m, _ = modem({"AT+CIMI": ok("001010123456789")})
    assert m.imsi() == "001010123456789"
    m, _ = modem({"AT+CIMI": ok("00101A")})
    with pytest.raises(ModemError, match="CIMI"):
        m.imsi()


def test_ip_addresses() -> None:
    m, _ = modem({"AT+CGPADDR=1": ok('+CGPADDR: 1,"10.0.0.7","2001:db8::1"')})
    assert m.ip_addresses() == ["10.0.0.7", "2001:db8::1"]
    m, _ = modem({"AT+CGPADDR=1": ok("+CGPADDR: 1")})
    assert m.ip_addresses() == []
    m, _ = modem({"AT+CGPADDR=1": ok('+CGPADDR: 1,"0.0.0.0"')})
    assert m.ip_addresses() == []
    m, _ = modem({"AT+CGPADDR=1": ok('+CGPADDR: 1,"10.0.0.300"')})
    with pytest.raises(ModemError, match="CGPADDR"):
        m.ip_addresses()


def test_ipv6_as_dotted_bytes() -> None:
    dotted = ".".join(["32", "1", "13", "184"] + ["0"] * 11 + ["1"])
    assert parse_cgpaddr([f'+CGPADDR: 1,"10.1.1.1","{dotted}"']) == ["10.1.1.1", "2001:db8::1"]


def test_registration() -> None:
    m, _ = modem({"AT+CEREG?": ok("+CEREG: 1", "+CEREG: 0,2")})
    assert not m.registered()
    m, _ = modem({"AT+CEREG?": ok("+CEREG: 2,5,\"1A2B\",\"01A2B3C4\",7")})
    assert m.registered()
    m, _ = modem({"AT+CEREG?": ok("+CEREG: 0,x")})
    with pytest.raises(ModemError, match="CEREG"):
        m.registered()


def test_wait_registered_times_out() -> None:
    m, _ = modem(lambda cmd: ok("+CEREG: 0,2"))
    with pytest.raises(ModemTimeoutError):
        m.wait_registered(0.1, interval=0.02)


def test_sim_present() -> None:
    m, _ = modem({"AT+CPIN?": ok("+CPIN: READY")})
    assert m.sim_present()
    m, _ = modem({"AT+CPIN?": [b"\r\n+CME ERROR: 10\r\n"]})
    assert not m.sim_present()
    m, _ = modem({"AT+CPIN?": [b"\r\n+CME ERROR: 13\r\n"]})
    with pytest.raises(CmeError):
        m.sim_present()


def test_csim_checks_length_and_hex() -> None:
    m, _ = modem({'AT+CSIM=10,"00A4040000"': ok('+CSIM: 4,"6A82"')})
    assert m.csim(bytes.fromhex("00A4040000")) == b"\x6a\x82"
    for bad in ('+CSIM: 6,"6A82"', '+CSIM: 4,"6G82"', '+CSIM: 2,"90"', "+CSIM: 4"):
        m, _ = modem({'AT+CSIM=10,"00A4040000"': ok(bad)})
        with pytest.raises(ModemError) as info:
            m.csim(bytes.fromhex("00A4040000"))
        assert info.value.command == 'AT+CSIM=10,"00A4040000"'
        assert bad in str(info.value)
    with pytest.raises(ValueError):
        m.csim(b"\x00\xa4")


@pytest.mark.parametrize("answer", ["+CCHO: 4711", "4711"])
def test_ccho_either_style(answer: str) -> None:
    aid = simfiles.ISDR_AID
    m, _ = modem({f'AT+CCHO="{aid.hex().upper()}"': ok(answer)})
    assert m.open_logical_channel(aid) == 4711


def test_cgla_and_cchc() -> None:
    m, link = modem({'AT+CGLA=4711,10,"80CA005A00"': ok('+CGLA: 6,"5A9000"'),
                     "AT+CCHC=4711": ok()})
    assert m.cgla(4711, bytes.fromhex("80CA005A00")) == bytes.fromhex("5A9000")
    m.close_logical_channel(4711)
    assert link.written[-1] == "AT+CCHC=4711"


def test_supports_ccho_is_probed_once() -> None:
    m, link = modem({"AT+CCHO=?": [b"\r\nERROR\r\n"]})
    assert not m.supports_ccho()
    assert not m.supports_ccho()
    assert link.written == ["AT+CCHO=?"]
    m, _ = modem({"AT+CCHO=?": ok()})
    assert m.supports_ccho()


def test_ccho_not_supported_is_remembered() -> None:
    aid = simfiles.ISDR_AID
    m, link = modem({f'AT+CCHO="{aid.hex().upper()}"': [b"\r\n+CME ERROR: 4\r\n"]})
    with pytest.raises(CmeError):
        m.open_logical_channel(aid)
    assert not m.supports_ccho()
    assert "AT+CCHO=?" not in link.written


def test_unknown_dialect() -> None:
    with pytest.raises(AgentConfigError):
        Modem(ScriptedLink({}), "nokia")
    assert {"quectel", "generic"} <= set(DIALECTS)


# --- URLs ---------------------------------------------------------------------------------

def test_urls_choose_transports() -> None:
    assert set(TRANSPORTS) == {"serial", "socket"}
    link = open_modem("/dev/ttyUSB2", do_not_open=True)
    assert isinstance(link, SerialLink)
    assert (link.device, link.baudrate, link.port) == ("/dev/ttyUSB2", 115200, "/dev/ttyUSB2")
    link = open_modem("serial:///dev/ttyUSB2?baud=9600&rtscts=1", do_not_open=True)
    assert isinstance(link, SerialLink)
    assert (link.device, link.baudrate, link.rtscts) == ("/dev/ttyUSB2", 9600, True)
    link = open_modem("socket://127.0.0.1:7000", do_not_open=True)
    assert isinstance(link, SocketLink)
    assert (link.host, link.tcp_port) == ("127.0.0.1", 7000)
    assert not link.is_open


@pytest.mark.parametrize("url", [
    "", "rfc2217://host:1", "serial:///dev/x?baud=fast", "serial:///dev/x?baud=10",
    "serial:///dev/x?parity=E", "serial:///dev/x?baud=1&baud=2", "serial://?baud=9600",
    "serial:///dev/x?rtscts=maybe", "socket://127.0.0.1", "socket://:80",
    "socket://127.0.0.1:99999", "socket://127.0.0.1:80?timeout=1", "socket://h:80/path",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(AgentConfigError):
        open_modem(url, do_not_open=True)


def test_opening_a_missing_device_is_a_modem_error() -> None:
    with pytest.raises(ModemError):
        open_modem("/nonexistent/ttyUSB9")

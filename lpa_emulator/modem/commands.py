"""AT command syntax (V.250 / 27.007) and the handlers of the emulated modem's commands.

Handlers take the emulator and one parsed command and return the information lines of
the answer; they raise :class:`AtError` for a plain ``ERROR`` and :class:`CmeFailure` for
a ``+CME ERROR`` (formatted per AT+CMEE by the emulator).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lpa_emulator.modem.card import SW_NOT_FOUND, CardFault, CardPort, cla_for_channel
from lpa_emulator.modem.errors import ModemEmulatorError
from mps_esim import simfiles
from mps_esim.ts27007 import CME_TEXTS

if TYPE_CHECKING:
    from lpa_emulator.modem.emulator import ModemEmulator

log = logging.getLogger(__name__)


CME_NOT_ALLOWED = 3
CME_NOT_SUPPORTED = 4
CME_NO_SIM = 10
CME_SIM_FAILURE = 13
CME_INVALID_INDEX = 21
CME_NOT_FOUND = 22
CME_BAD_PARAMS = 50

# Longest APDU AT+CSIM / AT+CGLA carry: a short case 4 command (5 + 255 + 1 bytes).
MAX_APDU = 261

Kind = Literal["action", "read", "test", "set"]


class AtError(ModemEmulatorError):
    """The command fails with a plain ``ERROR`` (syntax, unknown command)."""


class CmeFailure(ModemEmulatorError):
    """The command fails with ``+CME ERROR: <code>``."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or CME_TEXTS.get(code, str(code)))
        self.code = code


@dataclass(frozen=True, slots=True)
class AtCommand:
    """One command of a command line: ``name`` upper case (``+CGSN``, ``E``, ``""`` for
    a bare ``AT``), its form, and the raw text after ``=`` or the basic command's digits."""

    name: str
    kind: Kind
    arg: str = ""


Handler = Callable[["ModemEmulator", AtCommand], list[str]]

_EXTENDED_START = "+^$#*!%"
_EXTENDED = re.compile(r"([+^$#*!%][A-Za-z][A-Za-z0-9_]*)(.*)", re.DOTALL)
_BASIC = re.compile(r"(&?[A-Za-z])([0-9]*)")


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise AtError("unterminated string")
    parts.append("".join(current))
    return parts


def _strip_spaces(text: str) -> str:
    # V.250 5.2.1: spaces are ignored except inside strings.
    return '"'.join(part if i % 2 else part.replace(" ", "")
                    for i, part in enumerate(text.split('"')))


def _extended(text: str) -> AtCommand:
    m = _EXTENDED.fullmatch(text)
    if m is None:
        raise AtError(f"bad extended command {text!r}")
    name, rest = m.group(1).upper(), m.group(2)
    if rest == "":
        return AtCommand(name, "action")
    if rest == "?":
        return AtCommand(name, "read")
    if rest == "=?":
        return AtCommand(name, "test")
    if rest.startswith("="):
        return AtCommand(name, "set", rest[1:])
    raise AtError(f"bad extended command {text!r}")


def parse_command_line(line: str) -> list[AtCommand]:
    """The commands of a line that starts with ``AT``.

    V.250 5.4: basic commands follow each other directly (``ATE0V1``, ``AT&FE0``); an
    extended command runs to the next ``;`` (``AT+CGMI;+CGMM``, ``ATE0+CMEE=1``).
    """
    if line[:2].upper() != "AT":
        raise AtError("a command line starts with AT")
    body = _strip_spaces(line[2:])
    if not body:
        return [AtCommand("", "action")]
    commands: list[AtCommand] = []
    for part in _split_outside_quotes(body, ";"):
        pos = 0
        while pos < len(part):
            if part[pos] in _EXTENDED_START:
                commands.append(_extended(part[pos:]))
                break
            b = _BASIC.match(part, pos)
            if b is None:
                raise AtError(f"bad command {part[pos:]!r}")
            commands.append(AtCommand(b.group(1).upper(), "set" if b.group(2) else "action",
                                      b.group(2)))
            pos = b.end()
    return commands


# --- arguments -----------------------------------------------------------------------

def split_args(text: str) -> list[str]:
    """Comma-separated parameters, strings keeping their quotes."""
    return [a.strip() for a in _split_outside_quotes(text, ",")]


def int_arg(token: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"[0-9]{1,10}", token):
        raise CmeFailure(CME_BAD_PARAMS, f"not a number: {token!r}")
    value = int(token)
    if not lo <= value <= hi:
        raise CmeFailure(CME_BAD_PARAMS, f"{value} outside {lo}..{hi}")
    return value


def str_arg(token: str) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise CmeFailure(CME_BAD_PARAMS, f"not a string: {token!r}")
    return token[1:-1]


def hex_arg(token: str, *, declared: int | None = None) -> bytes:
    """A quoted hex string; ``declared`` is the count of hex characters the command stated."""
    text = str_arg(token)
    if declared is not None and declared != len(text):
        raise CmeFailure(CME_BAD_PARAMS, f"length {declared} but {len(text)} hex digits")
    if len(text) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", text):
        raise CmeFailure(CME_BAD_PARAMS, f"not hex: {text!r}")
    return bytes.fromhex(text)


def expect_args(cmd: AtCommand, lo: int, hi: int) -> list[str]:
    """The parameters of a set command, CME 50 unless there are ``lo`` to ``hi``."""
    args = split_args(cmd.arg)
    if not lo <= len(args) <= hi:
        raise CmeFailure(CME_BAD_PARAMS, f"{cmd.name} takes {lo}..{hi} parameters")
    return args


def only_forms(cmd: AtCommand, *kinds: Kind) -> None:
    """Plain ERROR for a form (action, read, test, set) the command does not have."""
    if cmd.kind not in kinds:
        raise AtError(f"{cmd.name} has no {cmd.kind} form")


def hosted_card(emu: ModemEmulator) -> CardPort:
    """The SIM in the slot; CME 10 (SIM not inserted) when the slot is empty."""
    port = emu.card_port
    if port is None:
        raise CmeFailure(CME_NO_SIM)
    return port


def sim_failure(exc: CardFault) -> CmeFailure:
    """CME 13 (SIM failure) for a card that answered something unusable."""
    log.info("card access failed: %s", exc)
    return CmeFailure(CME_SIM_FAILURE, str(exc))


# --- V.250 basics --------------------------------------------------------------------

def h_at(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    return []


def h_echo(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    if cmd.arg not in ("", "0", "1"):
        raise AtError("ATE takes 0 or 1")
    emu.settings.echo = cmd.arg == "1"
    return []


def h_reset(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    emu.reset_settings()
    return []


def h_ident(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    if cmd.arg not in ("", "0"):
        raise AtError("ATI takes 0")
    return emu.dialect.identification(emu)


def h_accept(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    """Settings the emulator does not model (ATV1, ATQ0) are accepted as a modem would."""
    return []


# --- identification ------------------------------------------------------------------

def _value_command(get: Callable[[ModemEmulator], str]) -> Handler:
    def handler(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
        only_forms(cmd, "action", "test")
        return [] if cmd.kind == "test" else [get(emu)]
    return handler


def _manufacturer(emu: ModemEmulator) -> str:
    return emu.state.manufacturer


def _model(emu: ModemEmulator) -> str:
    return emu.state.model


def _revision(emu: ModemEmulator) -> str:
    return emu.state.revision


h_manufacturer = _value_command(_manufacturer)
h_model = _value_command(_model)
h_revision = _value_command(_revision)


def h_imei(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "action", "test", "set")
    if cmd.kind == "test":
        return []
    if cmd.kind == "set":
        # 27.007 10.1.x: <snt> 0 is the bare serial number, 1 the quoted IMEI.
        snt = int_arg(cmd.arg, 0, 1)
        if snt == 1:
            return [f'+CGSN: "{emu.state.imei}"']
    return [emu.state.imei]


def h_cmee(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    if cmd.kind == "read":
        return [f"+CMEE: {emu.settings.cmee}"]
    if cmd.kind == "test":
        return ["+CMEE: (0-2)"]
    emu.settings.cmee = int_arg(cmd.arg or "0", 0, 2)
    return []


# --- SIM -----------------------------------------------------------------------------

def h_cimi(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "action", "test")
    if cmd.kind == "test":
        return []
    try:
        return [hosted_card(emu).read_imsi()]
    except CardFault as exc:
        raise sim_failure(exc) from exc


def h_qccid(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "action", "test")
    if cmd.kind == "test":
        return []
    try:
        iccid = hosted_card(emu).read_iccid()
    except CardFault as exc:
        raise sim_failure(exc) from exc
    # Quectel prints the EF.ICCID nibbles as they are, filler F included.
    return [f"+QCCID: {iccid.ljust(20, 'F')}"]


def h_cpin(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "read", "test", "set")
    if cmd.kind == "test":
        return []
    hosted_card(emu)
    if cmd.kind == "set":
        raise CmeFailure(CME_NOT_ALLOWED, "no PIN is required")
    return ["+CPIN: READY"]


def h_csim(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "set", "test")
    if cmd.kind == "test":
        return []
    length, command = expect_args(cmd, 2, 2)
    apdu = hex_arg(command, declared=int_arg(length, 8, 2 * MAX_APDU))
    try:
        resp = hosted_card(emu).raw(apdu)
    except CardFault as exc:
        raise sim_failure(exc) from exc
    return [f'+CSIM: {2 * len(resp)},"{resp.hex().upper()}"']


def h_crsm(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    """Restricted SIM access: READ BINARY (176) of a transparent EF by file id."""
    only_forms(cmd, "set", "test")
    if cmd.kind == "test":
        return []
    args = expect_args(cmd, 1, 7)
    command = int_arg(args[0], 0, 255)
    if command != 176:
        raise CmeFailure(CME_NOT_SUPPORTED, f"AT+CRSM command {command}")
    if len(args) < 5:
        raise CmeFailure(CME_BAD_PARAMS, "READ BINARY needs fileid,P1,P2,P3")
    fid = int_arg(args[1], 0, 0xFFFF)
    p1, p2, p3 = (int_arg(a, 0, 255) for a in args[2:5])
    port = hosted_card(emu)
    try:
        if fid >> 8 == 0x6F:
            port.select_usim()
        else:
            port.select_fid(simfiles.FID_MF)
        port.select_fid(fid)
        data = port.read_binary(p3, offset=(p1 << 8) | p2)
    except CardFault as exc:
        if exc.sw is None:
            raise sim_failure(exc) from exc
        # +CRSM reports the card's status word rather than failing.
        return [f"+CRSM: {exc.sw >> 8},{exc.sw & 0xFF}"]
    return [f'+CRSM: 144,0,"{data.hex().upper()}"']


def h_ccho(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "set", "test")
    if cmd.kind == "test":
        return []
    (token,) = expect_args(cmd, 1, 1)
    aid = hex_arg(token)
    if not 5 <= len(aid) <= 16:
        raise CmeFailure(CME_BAD_PARAMS, "an AID is 5 to 16 bytes")
    port = hosted_card(emu)
    try:
        channel = port.open_channel()
    except CardFault as exc:
        if exc.sw is None:
            raise sim_failure(exc) from exc
        raise CmeFailure(CME_NOT_ALLOWED, "no free logical channel") from exc
    try:
        port.select_aid(aid, channel=channel)
    except CardFault as exc:
        try:
            port.close_channel(channel)
        except CardFault:
            log.warning("could not close channel %d after a failed SELECT", channel)
        if exc.sw == SW_NOT_FOUND:
            raise CmeFailure(CME_NOT_FOUND, f"no application {aid.hex().upper()}") from exc
        if exc.sw is None:
            raise sim_failure(exc) from exc
        raise CmeFailure(CME_NOT_ALLOWED, str(exc)) from exc
    session = emu.new_session(channel)
    return [f"+CCHO: {session}" if emu.dialect.ccho_style == "prefixed" else str(session)]


def h_cgla(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "set", "test")
    if cmd.kind == "test":
        return []
    session_tok, length, command = expect_args(cmd, 3, 3)
    session = int_arg(session_tok, 0, 2**31 - 1)
    apdu = hex_arg(command, declared=int_arg(length, 8, 2 * MAX_APDU))
    port = hosted_card(emu)
    channel = emu.sessions.get(session)
    if channel is None:
        raise CmeFailure(CME_INVALID_INDEX, f"no session {session}")
    # The caller speaks channel 0; the modem owns the channel number.
    apdu = bytes((cla_for_channel(apdu[0], channel),)) + apdu[1:]
    try:
        resp = port.raw(apdu)
    except CardFault as exc:
        raise sim_failure(exc) from exc
    return [f'+CGLA: {2 * len(resp)},"{resp.hex().upper()}"']


def h_cchc(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "set", "test")
    if cmd.kind == "test":
        return []
    (token,) = expect_args(cmd, 1, 1)
    session = int_arg(token, 0, 2**31 - 1)
    port = hosted_card(emu)
    channel = emu.sessions.pop(session, None)
    if channel is None:
        raise CmeFailure(CME_INVALID_INDEX, f"no session {session}")
    try:
        port.close_channel(channel)
    except CardFault as exc:
        raise sim_failure(exc) from exc
    return []


# --- network -------------------------------------------------------------------------

def h_cereg(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    if cmd.kind == "read":
        return [emu.cereg_line(solicited=True)]
    if cmd.kind == "test":
        return ["+CEREG: (0-2)"]
    if cmd.kind == "action":
        raise AtError("AT+CEREG needs a form")
    emu.settings.cereg = int_arg(cmd.arg or "0", 0, 2)
    return []


def h_cgpaddr(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    if cmd.kind == "test":
        return ["+CGPADDR: (1)"]
    only_forms(cmd, "action", "set")
    if cmd.kind == "set":
        cids = [int_arg(a, 1, 16) for a in split_args(cmd.arg)]
        if any(c != 1 for c in cids):
            raise CmeFailure(CME_BAD_PARAMS, "only context 1 is defined")
    if emu.registration_stat() not in (1, 5) or not emu.state.ip_addresses:
        # 27.007 10.1.14: the address is omitted while the context has none.
        return ["+CGPADDR: 1"]
    return ["+CGPADDR: 1," + ",".join(f'"{a}"' for a in emu.state.ip_addresses)]


def h_cfun(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    if cmd.kind == "read":
        return ["+CFUN: 1"]
    if cmd.kind == "test":
        return ["+CFUN: (0,1,4),(0-1)"]
    raise CmeFailure(CME_NOT_SUPPORTED, "the emulated modem stays at full functionality")


def h_csq(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    only_forms(cmd, "action", "test")
    if cmd.kind == "test":
        return ["+CSQ: (0-31,99),(0-7,99)"]
    return ["+CSQ: 24,99" if emu.registration_stat() in (1, 5) else "+CSQ: 99,99"]


STANDARD_HANDLERS: Mapping[str, Handler] = {
    "": h_at,
    "E": h_echo,
    "Z": h_reset,
    "&F": h_reset,
    "I": h_ident,
    "V": h_accept,
    "Q": h_accept,
    "+CMEE": h_cmee,
    "+CGSN": h_imei,
    "+GSN": h_imei,
    "+CGMI": h_manufacturer,
    "+GMI": h_manufacturer,
    "+CGMM": h_model,
    "+GMM": h_model,
    "+CGMR": h_revision,
    "+GMR": h_revision,
    "+CIMI": h_cimi,
    "+CPIN": h_cpin,
    "+CSIM": h_csim,
    "+CRSM": h_crsm,
    "+CCHO": h_ccho,
    "+CGLA": h_cgla,
    "+CCHC": h_cchc,
    "+CEREG": h_cereg,
    "+CGPADDR": h_cgpaddr,
    "+CFUN": h_cfun,
    "+CSQ": h_csq,
}
"""27.007 / V.250 commands every emulated dialect starts from."""

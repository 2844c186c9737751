"""Vendor dialects: what differs between modems, as data plus small parser functions.

A :class:`Dialect` names the command that reads the ICCID and how to parse its answer,
the same for the PDP context's IP addresses, how AT+CCHO prints the session id, and the
vendor's URCs and error texts. Add a dialect by adding an entry to :data:`DIALECTS`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from agent.modem.results import fields, small_int, unquote
from lpa_emulator import simfiles
from mps_wire.identifiers import IdentifierError, validate_iccid

Parser = Callable[[list[str]], str]
ListParser = Callable[[list[str]], list[str]]

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def _first(lines: list[str]) -> str:
    if not lines:
        raise ValueError("no answer line")
    return lines[0]


def parse_prefixed_iccid(lines: list[str]) -> str:
    """``+QCCID: 8949...`` / ``+ICCID: ...`` / ``+CCID: ...`` / bare digits, filler F allowed."""
    line = _first(lines)
    value = unquote(line.split(":", 1)[1] if ":" in line else line)
    try:
        return validate_iccid(value)
    except IdentifierError as exc:
        raise ValueError(str(exc)) from exc


def parse_crsm_iccid(lines: list[str]) -> str:
    """``+CRSM: 144,0,"98..."``: EF.ICCID read with AT+CRSM=176,12258,0,0,10."""
    values = fields(_first(lines))
    sw1 = small_int(values[0])
    sw2 = small_int(values[1]) if len(values) > 1 else None
    if sw1 is None or sw2 is None or sw1 > 0xFF or sw2 > 0xFF:
        raise ValueError("AT+CRSM status words are not bytes")
    if sw1 not in (0x90, 0x91) or (sw1 == 0x90 and sw2 != 0):
        raise ValueError(f"the SIM answered {sw1:02X}{sw2:02X}")
    if len(values) < 3:
        raise ValueError("AT+CRSM answered no data")
    data = unquote(values[2])
    if not _HEX.fullmatch(data):
        raise ValueError("AT+CRSM data is not hex")
    try:
        return validate_iccid(simfiles.decode_iccid(bytes.fromhex(data)))
    except (IdentifierError, ValueError) as exc:
        raise ValueError(str(exc)) from exc


def _address(text: str) -> str | None:
    text = unquote(text)
    if not text:
        return None
    parts = text.split(".")
    try:
        if len(parts) == 16:
            # Some firmware prints IPv6 as 16 dotted decimal bytes.
            addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(
                bytes(int(p) for p in parts if p.isdigit() and len(p) <= 3))
        else:
            addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValueError(f"not an IP address: {text!r}") from exc
    return None if addr.is_unspecified else str(addr)


def parse_cgpaddr(lines: list[str]) -> list[str]:
    """``+CGPADDR: <cid>[,<addr1>[,<addr2>]]`` lines: the addresses, unset ones left out."""
    out: list[str] = []
    for line in lines:
        values = fields(line)
        if small_int(values[0]) is None:
            raise ValueError("the context id is not a number")
        for value in values[1:]:
            for part in unquote(value).split():
                addr = _address(part)
                if addr is not None and addr not in out:
                    out.append(addr)
    return out


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one family of modems differs from the 27.007 baseline."""

    name: str
    iccid_command: str
    iccid_prefix: str | None
    parse_iccid: Parser
    ccho_style: Literal["prefixed", "bare"]
    ip_command: str = "AT+CGPADDR=1"
    ip_prefix: str = "+CGPADDR:"
    parse_ip: ListParser = parse_cgpaddr
    urc_prefixes: tuple[str, ...] = ()
    cme_texts: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))


GENERIC = Dialect(
    name="generic",
    iccid_command="AT+CRSM=176,12258,0,0,10",
    iccid_prefix="+CRSM:",
    parse_iccid=parse_crsm_iccid,
    ccho_style="bare",
)

QUECTEL = Dialect(
    name="quectel",
    iccid_command="AT+QCCID",
    iccid_prefix="+QCCID:",
    parse_iccid=parse_prefixed_iccid,
    ccho_style="prefixed",
    urc_prefixes=("RDY", "POWERED DOWN", "+QIND:", "+QUSIM:", "+QIURC:", "+QNITZ:",
                  "+QSTAT:"),
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (GENERIC, QUECTEL)}
"""Dialects by the name firmware profiles use."""

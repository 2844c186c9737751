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
from mps_esim import simfiles
from mps_esim.ts27007 import PACKET_DOMAIN_CME_TEXTS
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


def _status_addresses(lines: list[str], *, active_field: int, first_address: int,
                      what: str) -> list[str]:
    """Addresses from lines ``<id>,...,<status>,...,"<addr>"[,"<addr>"]`` whose status is 1."""
    out: list[str] = []
    for line in lines:
        values = fields(line)
        if len(values) <= active_field or small_int(values[0]) is None:
            raise ValueError(f"not a {what} line")
        status = small_int(values[active_field])
        if status is None:
            raise ValueError(f"the {what} status is not a number")
        if status != 1:
            continue
        for value in values[first_address:]:
            addr = _address(value)
            if addr is not None and addr not in out:
                out.append(addr)
    return out


def parse_cnact(lines: list[str]) -> list[str]:
    """SIMCom LPWA ``AT+CNACT?``: ``+CNACT: <pdpidx>,<status>,"<address>"`` per context;
    the addresses of the active ones (status 1)."""
    return _status_addresses(lines, active_field=1, first_address=2, what="+CNACT")


def parse_upsnd(lines: list[str]) -> list[str]:
    """u-blox ``AT+UPSND=0,0``: ``+UPSND: <profile>,0,"<address>"`` (empty or 0.0.0.0
    while the PSD profile is not active)."""
    out: list[str] = []
    for line in lines:
        values = fields(line)
        if len(values) < 3 or small_int(values[0]) is None or small_int(values[1]) != 0:
            raise ValueError("not an IP address answer of AT+UPSND=<profile>,0")
        for value in values[2:]:
            addr = _address(value)
            if addr is not None and addr not in out:
                out.append(addr)
    return out


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one family of modems differs from the 27.007 baseline.

    ``iccid_command`` reads the ICCID; its answer lines start with ``iccid_prefix`` and,
    with ``iccid_bare``, may also be bare digits. ``ip_command`` / ``ip_prefix`` /
    ``parse_ip`` do the same for the addresses of the data context. ``ccho_style`` says how
    the vendor prints the AT+CCHO session id (the driver accepts both styles anyway);
    ``logical_channels`` is False where the manual lists no AT+CCHO/CGLA, so the driver
    goes straight to MANAGE CHANNEL over AT+CSIM. ``urc_prefixes`` are the vendor's
    unsolicited lines (needed to tell them from bare answers), ``cme_texts`` the vendor's
    ``+CME ERROR`` texts beyond 27.007's.
    """

    name: str
    description: str
    iccid_command: str
    iccid_prefix: str | None
    parse_iccid: Parser
    ccho_style: Literal["prefixed", "bare"]
    iccid_bare: bool = False
    ip_command: str = "AT+CGPADDR=1"
    ip_prefix: str = "+CGPADDR:"
    parse_ip: ListParser = parse_cgpaddr
    urc_prefixes: tuple[str, ...] = ()
    cme_texts: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))




GENERIC = Dialect(
    name="generic",
    description="3GPP TS 27.007 only: ICCID via AT+CRSM, bare AT+CCHO session id",
    iccid_command="AT+CRSM=176,12258,0,0,10",
    iccid_prefix="+CRSM:",
    parse_iccid=parse_crsm_iccid,
    ccho_style="bare",
)

QUECTEL = Dialect(
    name="quectel",
    description="Quectel EC25 / EG25-G / BG96",
    iccid_command="AT+QCCID",
    iccid_prefix="+QCCID:",
    parse_iccid=parse_prefixed_iccid,
    ccho_style="prefixed",
    urc_prefixes=("RDY", "POWERED DOWN", "+QIND:", "+QUSIM:", "+QIURC:", "+QNITZ:",
                  "+QSTAT:"),
    cme_texts=PACKET_DOMAIN_CME_TEXTS,
)

SIM7600 = Dialect(
    name="sim7600",
    description="SIMCom SIM7500 / SIM7600: AT+CICCID",
    iccid_command="AT+CICCID",
    iccid_prefix="+ICCID:",
    parse_iccid=parse_prefixed_iccid,
    ccho_style="bare",
    # Bare power-on lines: without them a bare answer (AT+CGSN) could be "SMS DONE".
    urc_prefixes=("RDY", "SMS DONE", "PB DONE"),
    cme_texts=PACKET_DOMAIN_CME_TEXTS,
)

SIM7080 = Dialect(
    name="sim7080",
    description="SIMCom SIM7080 / SIM7070 (LTE-M, NB-IoT): bare AT+CCID, AT+CNACT?, "
                "AT+CSIM only",
    iccid_command="AT+CCID",
    iccid_prefix="+CCID:",
    iccid_bare=True,
    parse_iccid=parse_prefixed_iccid,
    ccho_style="bare",
    ip_command="AT+CNACT?",
    ip_prefix="+CNACT:",
    parse_ip=parse_cnact,
    urc_prefixes=("RDY", "SMS Ready", "+CFUN:", "+APP PDP:"),
    cme_texts=PACKET_DOMAIN_CME_TEXTS,
)

UBLOX = Dialect(
    name="ublox",
    description="u-blox SARA-R5: AT+CCID, AT+UPSND, AT+CSIM only",
    iccid_command="AT+CCID",
    iccid_prefix="+CCID:",
    iccid_bare=True,
    parse_iccid=parse_prefixed_iccid,
    ccho_style="bare",
    ip_command="AT+UPSND=0,0",
    ip_prefix="+UPSND:",
    parse_ip=parse_upsnd,
    urc_prefixes=("+UUPSDA:", "+UUPSDD:", "+UUSORD:", "+UUSOCL:", "+UUPING:", "+UMWI:"),
    cme_texts=PACKET_DOMAIN_CME_TEXTS,
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (QUECTEL, SIM7600, SIM7080, UBLOX,
                                                    GENERIC)}
"""Dialects by the name firmware profiles use."""

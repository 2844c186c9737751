"""Result codes: the final ones that end a command and the unsolicited ones that never
answer one (3GPP TS 27.007, ITU-T V.250)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

STANDARD_URC_PREFIXES: tuple[str, ...] = (
    "RING", "NO CARRIER", "+CRING:", "+CLIP:", "+CCWA:", "+CMTI:", "+CMT:", "+CDS:",
    "+CBM:", "+CUSD:", "+CIEV:", "+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:", "+CGEV:",
    "+CPIN:", "+CTZV:", "+CTZE:", "+CTZEU:", "+CSQN:",
)
"""Lines a modem may send at any time; dialects add their vendor's own."""

# A prefixed information or result line: "+NAME:" (27.007), "^NAME:", "$NAME:", "!NAME:" ...
PREFIXED = re.compile(r"[+^$#*!%][A-Za-z0-9_ ]{1,20}:")

_DIGITS = re.compile(r"[0-9]{1,9}")


def fields(line: str) -> list[str]:
    """The comma-separated values after ``+NAME:``, strings keeping their quotes."""
    body = line.split(":", 1)[1] if ":" in line else line
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    out.append("".join(current).strip())
    return out


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def small_int(value: str) -> int | None:
    """``value`` as a non-negative int when it is 1 to 9 ASCII digits, else ``None``."""
    return int(value) if _DIGITS.fullmatch(value.strip()) else None


def registration_read_form(line: str) -> bool:
    """Whether a ``+CEREG:``-style line is the AT+CEREG? answer, not the URC.

    27.007 10.1.22: the read answer is ``<n>,<stat>[,...]``, the URC ``<stat>[,<tac>,...]``
    with a string (or nothing) second, so a number in second place marks the answer.
    """
    values = fields(line)
    return len(values) >= 2 and small_int(values[0]) is not None and \
        small_int(values[1]) is not None


SOLICITED_FORMS: Mapping[str, Callable[[str], bool]] = MappingProxyType({
    "+CREG:": registration_read_form,
    "+CGREG:": registration_read_form,
    "+CEREG:": registration_read_form,
    "+C5GREG:": registration_read_form,
})
"""For read commands whose answer shares its prefix with a URC: which lines answer."""

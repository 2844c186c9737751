"""Activation codes (SGP.22 4.1): ``LPA:1$<SM-DP+ address>$<matching id>[$<OID>$<flag>]``.

The ``LPA:`` prefix is what a QR code carries; it is optional here. Fields are separated
by ``$``: the format (``1``), the SM-DP+ address (an FQDN, optionally with ``:port``), the
matching id (the AC token), optionally the SM-DP+ OID and the "confirmation code required"
flag (``1``). Each malformed part raises :class:`ActivationCodeError` naming that part.
"""

from __future__ import annotations

import ipaddress
import re

from mps_common.record import record
from mps_esim.errors import EsimError

MAX_LENGTH = 512
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_TOKEN = re.compile(r"[\x21-\x23\x25-\x7E]*")  # printable ASCII without '$' and space


class ActivationCodeError(EsimError, ValueError):
    """An activation code does not parse; ``part`` names the offending field."""

    def __init__(self, message: str, *, part: str) -> None:
        super().__init__(f"activation code: {message}")
        self.part = part


def check_address(address: str, *, part: str = "address") -> str:
    """An SM-DP+ address: host name or IP address, optionally ``:port``."""
    if not address:
        raise ActivationCodeError("the SM-DP+ address is empty", part=part)
    if len(address) > 255:
        raise ActivationCodeError("the SM-DP+ address is longer than 255 characters", part=part)
    host, sep, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    if sep:
        if not port.isdigit() or not 1 <= int(port) <= 65535 or port != str(int(port)):
            raise ActivationCodeError(f"port {port!r} of the SM-DP+ address is not 1..65535",
                                      part=part)
    else:
        host = address
    try:
        ipaddress.IPv4Address(host)
        return address
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ActivationCodeError(f"{host!r} is not a valid host name", part=part)
    return address


@record
class ActivationCode:
    """The parts of an activation code."""

    address: str
    matching_id: str
    smdp_oid: str | None = None
    cc_required: bool = False

    def __str__(self) -> str:
        text = f"LPA:1${self.address}${self.matching_id}"
        if self.smdp_oid is not None or self.cc_required:
            text += f"${self.smdp_oid or ''}"
        if self.cc_required:
            text += "$1"
        return text

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0] if self.address.count(":") == 1 else self.address


def parse_activation_code(text: str) -> ActivationCode:
    """Parse ``[LPA:]1$address$matchingId[$oid[$ccRequired]]``."""
    if not isinstance(text, str):
        raise ActivationCodeError("must be text", part="code")
    code = text.strip()
    if len(code) > MAX_LENGTH:
        raise ActivationCodeError(f"longer than {MAX_LENGTH} characters", part="code")
    if code[:4].upper() == "LPA:":
        code = code[4:]
    parts = code.split("$")
    if parts[0] != "1":
        raise ActivationCodeError(f"format {parts[0]!r} is not supported (only 1)",
                                  part="format")
    if len(parts) < 3:
        raise ActivationCodeError("needs a format, an SM-DP+ address and a matching id "
                                  "separated by '$'", part="code")
    if len(parts) > 5:
        raise ActivationCodeError(f"has {len(parts)} fields, at most 5", part="code")
    address = check_address(parts[1])
    matching_id = parts[2]
    if not _TOKEN.fullmatch(matching_id) or len(matching_id) > 255:
        raise ActivationCodeError("the matching id holds characters outside printable ASCII "
                                  "or is too long", part="matching_id")
    oid = parts[3] if len(parts) > 3 and parts[3] else None
    if oid is not None and not _OID.fullmatch(oid):
        raise ActivationCodeError(f"SM-DP+ OID {oid!r} is not dotted decimal", part="oid")
    flag = parts[4] if len(parts) > 4 else ""
    if flag not in ("", "0", "1"):
        raise ActivationCodeError(f"confirmation code flag {flag!r} must be 1 (or 0)",
                                  part="cc_required")
    return ActivationCode(address, matching_id, oid, flag == "1")

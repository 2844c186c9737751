"""Identifiers for emulated cards: ISD-P AIDs by slot, and random EIDs, ICCIDs, IMSIs and
MSISDNs for new cards and profiles."""

from __future__ import annotations

import secrets

from mps_wire.identifiers import make_eid, make_iccid

ISDP_AID_BASE = bytes.fromhex("A0000005591010FFFFFFFF8900001000")
"""The first ISD-P AID; further profiles step the second-to-last byte (``..1100``, ``..1200``)."""


_EID_PREFIX = "8904903200"


def isdp_aid_for(index: int) -> bytes:
    """The ISD-P AID of the ``index``-th profile slot (0-based)."""
    if not 0 <= index < 0xEF:
        raise ValueError(f"no ISD-P AID for slot {index}")
    aid = bytearray(ISDP_AID_BASE)
    aid[-2] += index
    return bytes(aid)


def _digits(n: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


def random_eid() -> str:
    """A valid 32-digit EID under a test issuer prefix."""
    return make_eid(_EID_PREFIX + _digits(30 - len(_EID_PREFIX)))


def random_iccid() -> str:
    """A valid 20-digit ICCID (telecom prefix 89, country 49)."""
    return make_iccid("894900" + _digits(13))


def random_imsi() -> str:
    """A 15-digit IMSI in the test network 001-01."""
    return "00101" + _digits(10)


def random_msisdn() -> str:
    """A German-looking mobile number in E.164."""
    return "+49151" + _digits(8)

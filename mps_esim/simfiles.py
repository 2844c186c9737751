"""Encodings of the SIM files the system reads: EF.ICCID, EF.IMSI (3GPP TS 31.102).

Shared by the card emulator (which writes them), the modem emulator and the agent (which
read them), so all three agree byte for byte.
"""

from __future__ import annotations

import re

FID_MF = 0x3F00
FID_EF_ICCID = 0x2FE2
FID_EF_DIR = 0x2F00
FID_EF_IMSI = 0x6F07
FID_EF_MSISDN = 0x6F40

AID_USIM_PREFIX = bytes.fromhex("A0000000871002")
"""RID + application code of a 3GPP USIM; the remaining AID bytes vary per profile."""

ISDR_AID = bytes.fromhex("A0000005591010FFFFFFFF8900000100")
"""The ISD-R AID SGP.22 defines; some cards use another one (keep it configurable)."""


def swap_nibbles_encode(digits: str, length: int) -> bytes:
    """Digits as BCD with the nibbles of each byte swapped, padded with F to ``length``."""
    if not re.fullmatch(r"[0-9]*", digits) or len(digits) > 2 * length:
        raise ValueError(f"cannot encode {digits!r} in {length} swapped-BCD bytes")
    padded = digits.ljust(2 * length, "F")
    return bytes(int(padded[i + 1] + padded[i], 16) for i in range(0, 2 * length, 2))


def swap_nibbles_decode(data: bytes) -> str:
    """Inverse of :func:`swap_nibbles_encode`: digits up to the first F filler."""
    out: list[str] = []
    for b in data:
        for nibble in (b & 0x0F, b >> 4):
            if nibble == 0xF:
                return "".join(out)
            if nibble > 9:
                raise ValueError(f"swapped BCD holds a non-digit nibble {nibble:X}")
            out.append(str(nibble))
    return "".join(out)


def plain_bcd_encode(digits: str, length: int) -> bytes:
    """Digits as BCD in plain order (ITU-T E.118 "non-swapped"), padded with F to ``length``."""
    if not re.fullmatch(r"[0-9]*", digits) or len(digits) > 2 * length:
        raise ValueError(f"cannot encode {digits!r} in {length} BCD bytes")
    return bytes.fromhex(digits.ljust(2 * length, "F"))


def plain_bcd_decode(data: bytes) -> str:
    """Inverse of :func:`plain_bcd_encode`: digits up to the first F filler."""
    digits = data.hex().upper().split("F", 1)[0]
    if not digits.isdigit() and digits:
        raise ValueError(f"BCD {data.hex().upper()} holds a non-digit nibble")
    return digits


def encode_iccid(iccid: str) -> bytes:
    """EF.ICCID content: 10 bytes of swapped BCD (``98 94 ..`` for ``8949..``)."""
    return swap_nibbles_encode(iccid, 10)


def decode_iccid(data: bytes) -> str:
    """The ICCID held in EF.ICCID content."""
    if len(data) != 10:
        raise ValueError(f"EF.ICCID holds 10 bytes, got {len(data)}")
    return swap_nibbles_decode(data)


def encode_imsi(imsi: str) -> bytes:
    """EF.IMSI content (TS 31.102 4.2.2): a length byte, then parity nibble + digits."""
    if not re.fullmatch(r"[0-9]{6,15}", imsi):
        raise ValueError(f"an IMSI is 6 to 15 digits, got {imsi!r}")
    # The first nibble is 9 for an odd number of digits, 1 for even ("parity").
    parity = "9" if len(imsi) % 2 else "1"
    body = swap_nibbles_encode(parity + imsi, 8)
    return bytes([(len(imsi) + 2) // 2]) + body


def decode_imsi(data: bytes) -> str:
    """The IMSI held in EF.IMSI content."""
    if len(data) != 9 or not 1 <= data[0] <= 8:
        raise ValueError("EF.IMSI holds a length byte 1..8 and 8 bytes")
    digits = swap_nibbles_decode(data[1:1 + data[0]])
    if not digits:
        raise ValueError("EF.IMSI is empty")
    # Drop the parity nibble; an even-length IMSI also ends in filler, already cut.
    return digits[1:]

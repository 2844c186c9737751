"""Command APDUs as the card receives them (ISO 7816-4 short form) and the status words."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lpa_emulator.euicc.errors import CardStatus

MAX_CHANNELS = 20
"""Logical channels 0-19, reachable through both class byte encodings of ISO 7816-4."""


class SW(enum.IntEnum):
    """The status words this card answers with."""

    OK = 0x9000
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    CHANNEL_NOT_SUPPORTED = 0x6881
    SM_NOT_SUPPORTED = 0x6882
    CHAINING_NOT_SUPPORTED = 0x6884
    INCOMPATIBLE_FILE_STRUCTURE = 0x6981
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    WRONG_P1P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1P2 = 0x6A87
    WRONG_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    TECHNICAL_PROBLEM = 0x6F00


def sw_bytes(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command APDU.

    ``le`` is None when absent, else the expected length 1-256 (an encoded ``00`` is 256).
    ``has_lc`` tells a command carrying an (even empty) data field from one without.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None
    has_lc: bool
    channel: int
    proprietary: bool

    @property
    def ne(self) -> int:
        """The expected response length; a missing Le asks for the T=0 default of 256."""
        return 256 if self.le is None else self.le

    @property
    def p1p2(self) -> int:
        return (self.p1 << 8) | self.p2


def _class(cla: int) -> tuple[int, bool]:
    """Logical channel and proprietary flag of a class byte, or :class:`CardStatus`."""
    if cla == 0xFF:
        raise CardStatus(SW.CLA_NOT_SUPPORTED, "CLA FF is invalid")
    proprietary = bool(cla & 0x80)
    base = cla & 0x7F
    if base & 0x40:  # further interindustry class: channels 4-19
        channel = 4 + (base & 0x0F)
        secure = bool(base & 0x20)
    elif base & 0x60 == 0:  # first interindustry class: channels 0-3
        channel = base & 0x03
        secure = bool(base & 0x0C)
    else:
        raise CardStatus(SW.CLA_NOT_SUPPORTED, f"CLA {cla:02X} is reserved")
    if secure:
        raise CardStatus(SW.SM_NOT_SUPPORTED, "secure messaging is not supported")
    if base & 0x10:
        raise CardStatus(SW.CHAINING_NOT_SUPPORTED, "command chaining is not supported")
    return channel, proprietary


def parse(apdu: bytes) -> Command:
    """Parse a short command APDU; malformed ones raise :class:`CardStatus`."""
    if len(apdu) < 4:
        raise CardStatus(SW.WRONG_LENGTH, f"APDU of {len(apdu)} bytes is too short")
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    channel, proprietary = _class(cla)
    if ins & 0xF0 in (0x60, 0x90):
        raise CardStatus(SW.INS_NOT_SUPPORTED, f"INS {ins:02X} is invalid")
    body = apdu[4:]
    data = b""
    le: int | None = None
    has_lc = False
    if len(body) == 1:
        le = body[0] or 256
    elif len(body) > 1:
        lc = body[0]
        if lc == 0:
            # Extended lengths cannot travel over T=0; refuse them as a length error.
            raise CardStatus(SW.WRONG_LENGTH, "extended length APDUs are not supported")
        if len(body) == 1 + lc:
            data = bytes(body[1:])
        elif len(body) == 2 + lc:
            data = bytes(body[1:-1])
            le = body[-1] or 256
        else:
            raise CardStatus(SW.WRONG_LENGTH,
                             f"Lc {lc} does not match {len(body) - 1} bytes of data")
        has_lc = True
    return Command(cla, ins, p1, p2, data, le, has_lc, channel, proprietary)

"""The modem's own side of the SIM interface: the card it hosts and the APDUs it sends itself
(reading EF.ICCID and EF.IMSI, opening logical channels for AT+CCHO)."""

from __future__ import annotations

import logging
from typing import Protocol

from lpa_emulator.modem.errors import ModemEmulatorError
from mps_esim import simfiles

log = logging.getLogger(__name__)

SW_OK = 0x9000
SW_NOT_FOUND = 0x6A82

_MAX_T0_ROUNDS = 32


class HostedCard(Protocol):
    """A card in the modem's SIM slot, speaking T=0 semantics (61xx / 6Cxx)."""

    @property
    def atr(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU; answer response data + SW. Never raises for card errors."""
        ...

    def reset(self) -> bytes:
        """Reset the card (closing its logical channels); answer the ATR."""
        ...


class CardFault(ModemEmulatorError):
    """The card answered something the modem cannot use; ``sw`` when a status word was wrong."""

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


def cla_for_channel(cla: int, channel: int) -> int:
    """``cla`` recoded for logical ``channel`` (ISO 7816-4 5.4.1), keeping the class family."""
    if not 0 <= channel <= 19:
        raise ValueError(f"logical channel {channel} is outside 0..19")
    proprietary = cla & 0x80
    further = bool(cla & 0x40)
    # Secure messaging indication, carried over between the two interindustry codings.
    sm = bool(cla & 0x20) if further else bool(cla & 0x0C)
    chaining = cla & 0x10
    if channel <= 3:
        sm_bits = (0x08 if sm else 0) if further else cla & 0x0C
        return proprietary | chaining | sm_bits | channel
    return proprietary | 0x40 | (0x20 if sm else 0) | chaining | (channel - 4)


def channel_of(cla: int) -> int:
    """The logical channel a CLA byte addresses."""
    return 4 + (cla & 0x0F) if cla & 0x40 else cla & 0x03


class CardPort:
    """The modem's APDU access to its hosted card, with the T=0 response procedure."""

    def __init__(self, card: HostedCard) -> None:
        self.card = card

    def raw(self, apdu: bytes) -> bytes:
        """One APDU as is, no response procedure: what AT+CSIM and AT+CGLA pass through."""
        try:
            resp = self.card.transmit(apdu)
        except Exception as exc:
            # A card model that raises is a broken card to the modem: report SIM failure.
            raise CardFault(f"card failed on {apdu.hex().upper()}: {exc}") from exc
        if not isinstance(resp, bytes | bytearray) or len(resp) < 2:
            raise CardFault(f"card gave no status word for {apdu.hex().upper()}")
        return bytes(resp)

    def exchange(self, apdu: bytes) -> tuple[bytes, int]:
        """Send ``apdu`` and complete T=0: resend on 6Cxx, fetch 61xx with GET RESPONSE."""
        resp = self.raw(apdu)
        data = bytearray()
        for _ in range(_MAX_T0_ROUNDS):
            sw1, sw2 = resp[-2], resp[-1]
            data += resp[:-2]
            if sw1 == 0x6C:
                # Wrong Le: resend with the length the card asked for, replacing any Le.
                body = apdu[:4] if len(apdu) <= 5 else apdu[:5 + apdu[4]]
                resp = self.raw(body + bytes((sw2,)))
            elif sw1 == 0x61:
                cla = apdu[0]
                get_cla = (cla & 0x4F) if cla & 0x40 else (cla & 0x03)
                resp = self.raw(bytes((get_cla, 0xC0, 0x00, 0x00, sw2)))
            else:
                return bytes(data), (sw1 << 8) | sw2
        raise CardFault(f"card kept answering 61xx/6Cxx to {apdu.hex().upper()}")

    def _expect_ok(self, apdu: bytes, what: str) -> bytes:
        data, sw = self.exchange(apdu)
        if sw != SW_OK:
            raise CardFault(f"{what}: card answered {sw:04X}", sw=sw)
        return data

    def select_fid(self, fid: int, *, channel: int = 0) -> None:
        cla = cla_for_channel(0x00, channel)
        self._expect_ok(bytes((cla, 0xA4, 0x00, 0x04, 0x02)) + fid.to_bytes(2, "big"),
                        f"SELECT {fid:04X}")

    def select_usim(self, *, channel: int = 0) -> None:
        # The full USIM AID is profile specific; cards accept the RID + app code prefix.
        aid = simfiles.AID_USIM_PREFIX
        cla = cla_for_channel(0x00, channel)
        self._expect_ok(bytes((cla, 0xA4, 0x04, 0x04, len(aid))) + aid, "SELECT USIM")

    def read_binary(self, length: int, *, offset: int = 0, channel: int = 0) -> bytes:
        cla = cla_for_channel(0x00, channel)
        return self._expect_ok(bytes((cla, 0xB0, offset >> 8, offset & 0xFF, length & 0xFF)),
                               "READ BINARY")

    def read_iccid(self) -> str:
        """The ICCID from EF.ICCID (MF/2FE2)."""
        self.select_fid(simfiles.FID_MF)
        self.select_fid(simfiles.FID_EF_ICCID)
        try:
            return simfiles.decode_iccid(self.read_binary(10))
        except ValueError as exc:
            raise CardFault(f"EF.ICCID: {exc}") from exc

    def read_imsi(self) -> str:
        """The IMSI from EF.IMSI (ADF.USIM/6F07)."""
        self.select_usim()
        self.select_fid(simfiles.FID_EF_IMSI)
        try:
            return simfiles.decode_imsi(self.read_binary(9))
        except ValueError as exc:
            raise CardFault(f"EF.IMSI: {exc}") from exc

    def open_channel(self) -> int:
        """MANAGE CHANNEL open; the card picks the number."""
        data = self._expect_ok(bytes((0x00, 0x70, 0x00, 0x00, 0x01)), "MANAGE CHANNEL open")
        if len(data) != 1 or not 1 <= data[0] <= 19:
            raise CardFault(f"MANAGE CHANNEL open returned {data.hex().upper()!r}")
        return data[0]

    def close_channel(self, channel: int) -> None:
        self._expect_ok(bytes((0x00, 0x70, 0x80, channel)), f"MANAGE CHANNEL close {channel}")

    def select_aid(self, aid: bytes, *, channel: int) -> None:
        cla = cla_for_channel(0x00, channel)
        self._expect_ok(bytes((cla, 0xA4, 0x04, 0x00, len(aid))) + aid + b"\x00",
                        f"SELECT {aid.hex().upper()}")

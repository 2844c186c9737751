"""ES10 commands to the ISD-R, carried in STORE DATA (SGP.22 5.7)."""

from __future__ import annotations

from lpa_emulator import tlv
from lpa_emulator.iso7816 import SW_OK, ApduChannel, build_apdu, sw_text

DEFAULT_BLOCK_SIZE = 120
"""Bytes per STORE DATA block; independent LPAs use 120 and allow up to 255."""

TAG_GET_EUICC_DATA = 0xBF3E
TAG_EID = 0x5A


class Es10Error(Exception):
    """The eUICC refused an ES10 command or answered something malformed."""

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class Es10Client:
    """Sends ES10 commands over a channel on which the ISD-R is selected."""

    def __init__(self, channel: ApduChannel, *, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if not 1 <= block_size <= 255:
            raise ValueError(f"STORE DATA block size must be 1..255, got {block_size}")
        self.channel = channel
        self.block_size = block_size

    def command(self, data: bytes) -> bytes:
        """Send one ES10 command (a complete TLV) and return the eUICC's response data."""
        blocks = [data[i:i + self.block_size] for i in range(0, len(data), self.block_size)]
        if len(blocks) > 256:
            raise Es10Error(f"ES10 command of {len(data)} bytes needs more than 256 blocks")
        response = b""
        for number, block in enumerate(blocks):
            last = number == len(blocks) - 1
            apdu = build_apdu(0x80, 0xE2, 0x91 if last else 0x11, number, block)
            resp = self.channel.transmit(apdu)
            if resp.sw != SW_OK:
                raise Es10Error(
                    f"STORE DATA block {number} refused: {resp.sw:04X} ({sw_text(resp.sw)})",
                    sw=resp.sw)
            if not last and resp.data:
                raise Es10Error(f"eUICC answered data to the non-final block {number}")
            response = resp.data
        return response

    def get_eid(self) -> str:
        """GetEuiccData asking for the EID (tag 5A): the 32-digit EID."""
        request = tlv.encode(TAG_GET_EUICC_DATA, tlv.encode(0x5C, bytes([TAG_EID])))
        answer = self._single(self.command(request), TAG_GET_EUICC_DATA)
        eid = next((c.value for c in answer.children() if c.tag == TAG_EID), None)
        if eid is None or len(eid) != 16:
            raise Es10Error("GetEuiccData answer holds no 16-byte EID")
        return eid.hex().upper()

    @staticmethod
    def _single(data: bytes, tag: int) -> tlv.Tlv:
        try:
            items = tlv.decode(data)
        except tlv.TlvError as exc:
            raise Es10Error(f"malformed ES10 response: {exc}") from exc
        if len(items) != 1 or items[0].tag != tag:
            raise Es10Error(f"expected one {tag:X} object in the ES10 response")
        return items[0]

"""ISO/IEC 7816-4 primitives shared by the card emulator, the LPA and the agent's card links:
command APDU building, response splitting, status words and the T=0 response procedure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from mps_common.record import record
from mps_esim.errors import EsimError

SW_OK = 0x9000

_SW_TEXT = {
    0x6281: "part of returned data may be corrupted",
    0x6700: "wrong length",
    0x6881: "logical channel not supported",
    0x6982: "security status not satisfied",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6A80: "incorrect parameters in the data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A84: "not enough memory space",
    0x6A86: "incorrect parameters P1-P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong parameters P1-P2 (offset outside the EF)",
    0x6D00: "instruction code not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
    0x9000: "success",
}


def sw_text(sw: int) -> str:
    """A readable description of a status word."""
    if sw >> 8 == 0x61:
        return f"{sw & 0xFF} response bytes available"
    if sw >> 8 == 0x6C:
        return f"wrong Le, {sw & 0xFF} bytes available"
    return _SW_TEXT.get(sw, "unknown status")


class ApduError(EsimError, ValueError):
    """A command or response APDU is malformed."""


def build_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"",
               le: int | None = None) -> bytes:
    """A short command APDU (cases 1-4). ``le`` 256 is encoded as 00."""
    for name, value in (("CLA", cla), ("INS", ins), ("P1", p1), ("P2", p2)):
        if not 0 <= value <= 0xFF:
            raise ApduError(f"{name} {value} is not a byte")
    if len(data) > 255:
        raise ApduError(f"command data of {len(data)} bytes needs an extended APDU")
    out = bytes((cla, ins, p1, p2))
    if data:
        out += bytes((len(data),)) + data
    if le is not None:
        if not 0 <= le <= 256:
            raise ApduError(f"Le {le} is outside 0..256")
        out += bytes((le & 0xFF,))
    return out


@record
class Response:
    """A response APDU: data and the status word."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> Response:
        if len(raw) < 2:
            raise ApduError(f"a response APDU has at least 2 bytes, got {raw.hex()!r}")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def __bytes__(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


class ApduChannel(Protocol):
    """Anything that carries command APDUs to one logical channel of a card.

    ``transmit`` returns the complete response: the T=0 procedure (61xx, 6Cxx) is already
    done. Channel bits in CLA are the channel's business, callers send CLA for channel 0.
    """

    def transmit(self, apdu: bytes) -> Response: ...


def with_channel(apdu: bytes, channel: int) -> bytes:
    """``apdu`` with the logical channel number coded into its CLA byte."""
    if channel == 0:
        return apdu
    cla = apdu[0]
    if cla == 0xFF:
        raise ApduError("CLA FF is reserved for PPS")
    if 1 <= channel <= 3:
        # First interindustry class: channel in b2-b1; keep secure-messaging and chaining bits.
        new = (cla & 0xBC) | channel
    elif 4 <= channel <= 19:
        # Further interindustry class: b7 set, channel-4 in b4-b1; keep the chaining bit b5.
        new = 0x40 | (cla & 0x80) | (cla & 0x10) | (channel - 4)
    else:
        raise ApduError(f"logical channel {channel} is outside 0..19")
    return bytes((new,)) + apdu[1:]


def t0_transceive(exchange: Callable[[bytes], bytes], apdu: bytes, *,
                  max_rounds: int = 64) -> Response:
    """Send ``apdu`` through ``exchange`` (raw bytes in, raw R-APDU out) and complete the
    T=0 response procedure: resend on ``6Cxx`` with the right Le, collect ``61xx`` data with
    GET RESPONSE (same CLA channel bits) until a final status word."""
    if len(apdu) < 4:
        raise ApduError(f"a command APDU has at least 4 bytes, got {apdu.hex()!r}")
    resp = Response.parse(exchange(apdu))
    if resp.sw >> 8 == 0x6C:
        # Case 2 with a wrong Le: the card tells the right one; resend once with it.
        # Case 2 or 4 carries an Le to replace; case 1 or 3 gets one appended.
        has_le = len(apdu) == 5 or (len(apdu) > 5 and len(apdu) == 6 + apdu[4])
        body = apdu[:-1] if has_le else apdu
        resp = Response.parse(exchange(body + bytes((resp.sw & 0xFF,))))
    data = bytearray(resp.data)
    cla = apdu[0]
    rounds = 0
    while resp.sw >> 8 == 0x61:
        rounds += 1
        if rounds > max_rounds:
            raise ApduError(f"card kept answering 61xx after {max_rounds} GET RESPONSE")
        # GET RESPONSE keeps the channel bits of the command's CLA, in the interindustry form.
        get_cla = cla & 0x43 if not cla & 0x40 else cla & 0x4F
        resp = Response.parse(exchange(build_apdu(get_cla, 0xC0, 0, 0, le=resp.sw & 0xFF or 256)))
        if resp.sw >> 8 == 0x6C:
            resp = Response.parse(exchange(build_apdu(get_cla, 0xC0, 0, 0, le=resp.sw & 0xFF)))
        data += resp.data
    return Response(bytes(data), resp.sw)

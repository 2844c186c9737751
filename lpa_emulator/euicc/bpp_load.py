"""The state of loading a bound profile package segment by segment, and its headers."""

from __future__ import annotations

from dataclasses import dataclass, field

from lpa_emulator.euicc.errors import EuiccError
from mps_esim.crypto.scp03t import Scp03t
from mps_esim.sgp22 import rsp


class BppFailure(EuiccError):
    """Ends the BPP processing with a failed ProfileInstallationResult."""

    def __init__(self, command: rsp.BppCommandId, reason: rsp.ErrorReason, message: str
                 ) -> None:
        super().__init__(message)
        self.command = command
        self.reason = reason


class BppPhase:
    """Where the LoadBoundProfilePackage segments have got to."""

    START = "start"
    CONFIGURE = "configure-isdp"
    METADATA_HEADER = "metadata-header"
    METADATA = "metadata"
    AFTER_METADATA = "after-metadata"
    PROFILE = "profile"
    DONE = "done"


@dataclass
class BppLoad:
    """How far the loading of one bound profile package has got, and what it gathered."""

    phase: str = BppPhase.START
    remaining_total: int = 0  # bytes of BF36's value still to come
    channel: Scp03t | None = None
    left_in_group: int = 0  # bytes of the current A1/A3 value still to come
    metadata: bytearray = field(default_factory=bytearray)
    profile: bytearray = field(default_factory=bytearray)
    store_metadata: rsp.StoreMetadata | None = None


def outer_header(segment: bytes) -> tuple[int, int]:
    """Length of the BF36 header at the start of ``segment`` and the BF36 value length."""
    cmd = rsp.BppCommandId.INITIALISE_SECURE_CHANNEL
    if segment[:2] != b"\xbf\x36" or len(segment) < 3:
        raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES,
                         "the first segment must start with BF36")
    first = segment[2]
    if first < 0x80:
        return 3, first
    n = first & 0x7F
    if not 1 <= n <= 3 or len(segment) < 3 + n:
        raise BppFailure(cmd, rsp.ErrorReason.INCORRECT_INPUT_VALUES, "malformed BF36 length")
    return 3 + n, int.from_bytes(segment[3:3 + n], "big")


def group_length(segment: bytes, tag: int, cmd: rsp.BppCommandId) -> int:
    """The value length announced by a group header (A1 / A3) sent on its own."""
    if len(segment) < 2 or segment[0] != tag:
        raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR,
                         f"expected the {tag:X} header, got {segment[:1].hex().upper()}")
    first = segment[1]
    if first < 0x80:
        length, size = first, 2
    else:
        n = first & 0x7F
        if not 1 <= n <= 3:
            raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR, "malformed length")
        length, size = int.from_bytes(segment[2:2 + n], "big"), 2 + n
    if len(segment) != size:
        raise BppFailure(cmd, rsp.ErrorReason.SCP03T_STRUCTURE_ERROR,
                         f"the {tag:X} header segment carries extra bytes")
    return length

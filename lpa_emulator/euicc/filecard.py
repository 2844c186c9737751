"""What every card here shares: a UICC file system reached over logical channels with T=0
behaviour (ETSI TS 102 221, ISO 7816-4).

:meth:`FileCard.transmit` takes one command APDU and returns response data plus SW1 SW2:
a command that carries data and produces data answers ``61xx`` and hands the data out on
GET RESPONSE; a command without data whose Le does not fit answers ``6Cxx``. Every
malformed or refused command maps to a status word; nothing escapes
:meth:`~FileCard.transmit`. Subclasses add applications (the eUICC's ISD-R) through
:meth:`FileCard._select_aid` and their own instructions through :attr:`FileCard.COMMANDS`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from lpa_emulator.euicc import fs
from lpa_emulator.euicc.apdu import MAX_CHANNELS, SW, Command, parse, sw_bytes
from lpa_emulator.euicc.errors import CardStatus
from mps_esim import simfiles, tlv

log = logging.getLogger(__name__)

_P2_FCI, _P2_FCP, _P2_NONE = 0x00, 0x04, 0x0C


def make_atr(label: bytes) -> bytes:
    """An ATR offering T=0 (TD1), with T=15 global bytes announcing a UICC (TA3 = C7);
    ``label`` (7 bytes) ends the historical bytes and tells the card models apart."""
    historical = bytes.fromhex("80" "31E0" "73FE211F") + b"\x47" + label
    body = bytes([0x80 | len(historical), 0x80, 0x1F, 0xC7]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


class Channel:
    """What one logical channel has selected and what it still owes the terminal.

    ``isdr`` is set while an application without files (the eUICC's ISD-R) is selected.
    """

    __slots__ = ("blocks", "df", "ef", "isdr", "next_block", "pending")

    def __init__(self) -> None:
        self.isdr = False
        self.df = simfiles.FID_MF
        self.ef: int | None = None
        self.pending: bytes | None = None
        self.blocks = bytearray()
        self.next_block = 0

    def inherit(self, other: Channel) -> None:
        self.isdr, self.df, self.ef = other.isdr, other.df, other.ef

    def drop_store_data(self) -> None:
        self.blocks = bytearray()
        self.next_block = 0


_Channel = Channel
_Handler = Callable[[Channel, Command], bytes]


@dataclass(frozen=True)
class Ins:
    """One instruction: the name of its handler method, the class bytes it accepts ("iso":
    0X/4X, "gp": 8X/CX), and whether the handler builds the whole response itself (status
    word included)."""

    handler: str
    classes: frozenset[str]
    raw: bool = False


ISO = frozenset({"iso"})
GP = frozenset({"gp"})


class FileCard:
    """A card with a UICC file system and nothing else: what a plain SIM is.

    The constructor does no I/O; ``files`` is the tree the card shows.
    """

    COMMANDS: ClassVar[dict[int, Ins]] = {
        0x70: Ins("_manage_channel", ISO),
        0xA4: Ins("_select", ISO),
        0xB0: Ins("_read_binary", ISO),
        0xB2: Ins("_read_record", ISO),
        # Terminals differ in the class byte they use for GET RESPONSE; both are taken.
        0xC0: Ins("_get_response", ISO | GP, raw=True),
        0xAA: Ins("_terminal_capability", GP),
        0xF2: Ins("_status", GP),
    }
    """The instructions the card knows, by INS; the rest answer 6D00."""

    ATR: ClassVar[bytes] = make_atr(b"MPSUICC")

    def __init__(self, files: fs.FileSystem) -> None:
        self._lock = threading.RLock()
        self._fs = files
        self._channels: dict[int, Channel] = {0: Channel()}

    @property
    def atr(self) -> bytes:
        return self.ATR

    @property
    def name(self) -> str:
        """How logs name the card."""
        return "card"

    def _replace_files(self, files: fs.FileSystem) -> None:
        """Show ``files`` from now on: channels that stood in the old tree stand on the MF
        again, as after the REFRESH a profile change triggers."""
        self._fs = files
        for chan in self._channels.values():
            if not chan.isdr:
                chan.df, chan.ef = simfiles.FID_MF, None

    # --- the terminal's side -------------------------------------------------------

    def reset(self) -> bytes:
        """Warm reset: close logical channels, forget pending responses and partial
        STORE DATA, select the MF on the basic channel. Returns the ATR."""
        with self._lock:
            self._channels = {0: _Channel()}
            self._after_reset()
        return self.atr

    def _after_reset(self) -> None:
        """Hook: forget what a subclass keeps only until the next reset."""

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU; returns response data followed by SW1 SW2."""
        try:
            raw = bytes(apdu)
        except (TypeError, ValueError):
            return sw_bytes(SW.WRONG_LENGTH)
        with self._lock:
            try:
                response = self._process(raw)
            except CardStatus as status:
                response = sw_bytes(status.sw)
            except Exception:
                # A bug must not take the card off the bus: report it and answer 6F00.
                log.exception("internal error on APDU %s", raw.hex())
                response = sw_bytes(SW.TECHNICAL_PROBLEM)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("APDU %s -> %s", raw.hex(), response.hex())
        return response

    def _process(self, apdu: bytes) -> bytes:
        cmd = parse(apdu)
        chan = self._channels.get(cmd.channel)
        if chan is None:
            raise CardStatus(SW.CHANNEL_NOT_SUPPORTED, f"channel {cmd.channel} is not open")
        entry = self.COMMANDS.get(cmd.ins)
        if entry is None:
            raise CardStatus(SW.INS_NOT_SUPPORTED, f"INS {cmd.ins:02X} is not supported")
        if ("gp" if cmd.proprietary else "iso") not in entry.classes:
            raise CardStatus(SW.CLA_NOT_SUPPORTED,
                             f"CLA {cmd.cla:02X} is not supported with INS {cmd.ins:02X}")
        handler: _Handler = getattr(self, entry.handler)
        if entry.raw:
            return handler(chan, cmd)
        # A response not fetched at once is lost, as on a T=0 card.
        chan.pending = None
        try:
            data = handler(chan, cmd)
        finally:
            if cmd.ins != 0xE2:
                chan.drop_store_data()
        return self._deliver(chan, cmd, data)

    @staticmethod
    def _deliver(chan: _Channel, cmd: Command, data: bytes) -> bytes:
        if not data:
            return sw_bytes(SW.OK)
        if cmd.has_lc:
            # Case 4 under T=0: the data waits for GET RESPONSE.
            chan.pending = data
            return bytes([0x61, min(len(data), 256) & 0xFF])
        if len(data) != cmd.ne:
            return bytes([0x6C, min(len(data), 256) & 0xFF])
        return data + sw_bytes(SW.OK)

    def _get_response(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.has_lc:
            raise CardStatus(SW.WRONG_LENGTH, "GET RESPONSE carries no data")
        if cmd.p1p2 != 0:
            raise CardStatus(SW.WRONG_P1P2, "GET RESPONSE takes P1 P2 = 00 00")
        pending = chan.pending
        if pending is None:
            raise CardStatus(SW.CONDITIONS_NOT_SATISFIED, "no response data pending")
        if cmd.ne > len(pending):
            # Keep the data: the terminal is told the right Le and asks again.
            return bytes([0x6C, len(pending)])
        out, rest = pending[:cmd.ne], pending[cmd.ne:]
        chan.pending = rest or None
        if rest:
            return out + bytes([0x61, min(len(rest), 256) & 0xFF])
        return out + sw_bytes(SW.OK)

    # --- commands ------------------------------------------------------------------

    def _manage_channel(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.has_lc:
            raise CardStatus(SW.WRONG_LENGTH, "MANAGE CHANNEL carries no data")
        if cmd.p1 == 0x00:
            if cmd.p2 == 0:
                free = [n for n in range(1, MAX_CHANNELS) if n not in self._channels]
                if not free:
                    raise CardStatus(SW.FUNCTION_NOT_SUPPORTED, "no free logical channel")
                number = free[0]
            elif cmd.p2 < MAX_CHANNELS and cmd.p2 not in self._channels:
                number = cmd.p2
            else:
                raise CardStatus(SW.WRONG_P1P2, f"channel {cmd.p2} cannot be opened")
            new = _Channel()
            if cmd.channel != 0:
                # TS 102 221: a channel opened from a non-basic one starts where it stands.
                new.inherit(chan)
            self._channels[number] = new
            return bytes([number]) if cmd.p2 == 0 else b""
        if cmd.p1 == 0x80:
            number = cmd.p2 or cmd.channel
            if number == 0 or number not in self._channels:
                raise CardStatus(SW.WRONG_P1P2, f"channel {number} cannot be closed")
            del self._channels[number]
            return b""
        raise CardStatus(SW.WRONG_P1P2, "MANAGE CHANNEL P1 is 00 (open) or 80 (close)")

    def _select(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.p2 not in (_P2_FCI, _P2_FCP, _P2_NONE):
            raise CardStatus(SW.WRONG_P1P2, f"SELECT P2 {cmd.p2:02X} is not supported")
        if cmd.p1 == 0x04:
            fci = self._select_aid(chan, cmd.data)
        elif cmd.p1 == 0x00:
            if not cmd.data:
                path = [simfiles.FID_MF]
            elif len(cmd.data) == 2:
                path = [int.from_bytes(cmd.data, "big")]
            else:
                raise CardStatus(SW.LC_INCONSISTENT_WITH_P1P2, "a file id is 2 bytes")
            fci = self._select_path(chan, path, from_mf=False)
        elif cmd.p1 in (0x08, 0x09):
            if not cmd.data or len(cmd.data) % 2:
                raise CardStatus(SW.LC_INCONSISTENT_WITH_P1P2, "a path is a list of file ids")
            path = [int.from_bytes(cmd.data[i:i + 2], "big") for i in range(0, len(cmd.data), 2)]
            fci = self._select_path(chan, path, from_mf=cmd.p1 == 0x08)
        else:
            raise CardStatus(SW.WRONG_P1P2, f"SELECT P1 {cmd.p1:02X} is not supported")
        return b"" if cmd.p2 == _P2_NONE else fci

    def _select_aid(self, chan: _Channel, aid: bytes) -> bytes:
        usim = self._fs.usim
        if usim is not None and aid.startswith(simfiles.AID_USIM_PREFIX):
            chan.isdr, chan.df, chan.ef = False, fs.FID_ADF, None
            return usim.fcp()
        raise CardStatus(SW.FILE_NOT_FOUND, f"no application {aid.hex()}")

    def _select_path(self, chan: _Channel, path: list[int], *, from_mf: bool) -> bytes:
        # The ISD-R has no files: selecting a file there continues from the MF.
        df_fid = simfiles.FID_MF if from_mf or chan.isdr else chan.df
        df = self._fs.df(df_fid)
        if df is None:
            raise CardStatus(SW.FILE_NOT_FOUND, "the current DF is gone")
        ef: fs.ElementaryFile | None = None
        for i, fid in enumerate(path):
            df, ef = self._path_step(df, fid, first=i == 0, last=i == len(path) - 1)
        chan.isdr, chan.df, chan.ef = False, df.fid, ef.fid if ef else None
        return ef.fcp() if ef else df.fcp()

    def _path_step(self, df: fs.DedicatedFile, fid: int, *, first: bool, last: bool
                   ) -> tuple[fs.DedicatedFile, fs.ElementaryFile | None]:
        """Where one file id of a path leads from ``df``: a DF, or (last) an EF in it."""
        if fid == simfiles.FID_MF and first:
            return self._fs.mf, None
        if fid == fs.FID_ADF and self._fs.usim is not None and df is self._fs.mf:
            return self._fs.usim, None
        if fid == fs.FID_ADF and df is self._fs.usim:
            return df, None  # 7FFF inside the ADF names the ADF itself
        if last and fid in df.files:
            return df, df.files[fid]
        raise CardStatus(SW.FILE_NOT_FOUND, f"file {fid:04X} not found")

    def _current_ef(self, chan: _Channel, sfi: int | None) -> fs.ElementaryFile:
        df = None if chan.isdr else self._fs.df(chan.df)
        if sfi is not None:
            ef = df.by_sfi(sfi) if df is not None else None
            if ef is None:
                raise CardStatus(SW.FILE_NOT_FOUND, f"no file with SFI {sfi:02X}")
            chan.ef = ef.fid  # a read by SFI makes the file current (ISO 7816-4)
            return ef
        ef = df.files.get(chan.ef) if df is not None and chan.ef is not None else None
        if ef is None:
            raise CardStatus(SW.NO_CURRENT_EF, "no EF selected")
        return ef

    def _read_binary(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.has_lc:
            raise CardStatus(SW.WRONG_LENGTH, "READ BINARY carries no data")
        if cmd.p1 & 0x80:
            if cmd.p1 & 0x60:
                raise CardStatus(SW.WRONG_P1P2, "bad SFI in P1")
            ef = self._current_ef(chan, cmd.p1 & 0x1F)
            offset = cmd.p2
        else:
            ef = self._current_ef(chan, None)
            offset = cmd.p1p2
        if not ef.is_transparent:
            raise CardStatus(SW.INCOMPATIBLE_FILE_STRUCTURE, "not a transparent EF")
        available = len(ef.content) - offset
        if available <= 0:
            raise CardStatus(SW.WRONG_OFFSET, f"offset {offset} is beyond the file")
        if cmd.ne > available:
            raise CardStatus(0x6C00 | available, "Le is longer than the data")
        return ef.content[offset:offset + cmd.ne]

    def _read_record(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.has_lc:
            raise CardStatus(SW.WRONG_LENGTH, "READ RECORD carries no data")
        if cmd.p2 & 0x07 != 0x04 or cmd.p1 == 0:
            raise CardStatus(SW.WRONG_P1P2, "only absolute record numbers are supported")
        ef = self._current_ef(chan, (cmd.p2 >> 3) or None)
        if ef.is_transparent:
            raise CardStatus(SW.INCOMPATIBLE_FILE_STRUCTURE, "not a record EF")
        records = ef.records
        if cmd.p1 > len(records):
            raise CardStatus(SW.RECORD_NOT_FOUND, f"no record {cmd.p1}")
        record = records[cmd.p1 - 1]
        if cmd.ne != len(record):
            raise CardStatus(0x6C00 | len(record), "Le differs from the record length")
        return record

    def _status(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.p2 == 0x0C:
            return b""
        if cmd.p1 > 0x02 or cmd.p2 not in (0x00, 0x01):
            raise CardStatus(SW.WRONG_P1P2, "STATUS P1 00-02, P2 00, 01 or 0C")
        df = self._fs.df(chan.df) or self._fs.mf
        if cmd.p2 == 0x01:
            return tlv.encode(0x84, df.aid) if df.aid is not None else b""
        return df.fcp()

    def _terminal_capability(self, chan: _Channel, cmd: Command) -> bytes:
        if cmd.p1p2 != 0:
            raise CardStatus(SW.WRONG_P1P2, "TERMINAL CAPABILITY takes P1 P2 = 00 00")
        try:
            tlv.decode(cmd.data)
        except tlv.TlvError as exc:
            raise CardStatus(SW.WRONG_DATA, "terminal capabilities are not BER-TLV") from exc
        return b""

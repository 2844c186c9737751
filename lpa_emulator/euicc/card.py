"""The software eUICC: one card model behind every way of reaching it.

:meth:`EuiccCard.transmit` takes one command APDU and returns response data plus SW1 SW2,
with T=0 behaviour: a command that carries data and produces data answers ``61xx`` and
hands the data out on GET RESPONSE; a command without data whose Le does not fit answers
``6Cxx``. Every malformed or refused command maps to an ISO 7816 status word; nothing
escapes :meth:`~EuiccCard.transmit`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lpa_emulator.euicc import es10, fs, iot
from lpa_emulator.euicc.apdu import MAX_CHANNELS, SW, Command, parse, sw_bytes
from lpa_emulator.euicc.download import DownloadSession
from lpa_emulator.euicc.errors import CardStatus
from lpa_emulator.euicc.state import CardState, ProfileRecord
from mps_esim import simfiles, tlv

log = logging.getLogger(__name__)

MAX_STORE_DATA = 16 * 1024
"""Upper bound on one reassembled ES10 command; more is refused with ``6A84``."""

_P1_STORE_MORE = 0x11
_P1_STORE_LAST = 0x91
_P2_FCI, _P2_FCP, _P2_NONE = 0x00, 0x04, 0x0C


def _atr() -> bytes:
    """An ATR offering T=0 (TD1), with T=15 global bytes announcing a UICC (TA3 = C7)."""
    historical = bytes.fromhex("80" "31E0" "73FE211F") + b"\x47" + b"MPSEUIC"
    body = bytes([0x80 | len(historical), 0x80, 0x1F, 0xC7]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


ATR = _atr()


class _Channel:
    """What one logical channel has selected and what it still owes the terminal."""

    __slots__ = ("blocks", "df", "ef", "isdr", "next_block", "pending")

    def __init__(self) -> None:
        self.isdr = False
        self.df = simfiles.FID_MF
        self.ef: int | None = None
        self.pending: bytes | None = None
        self.blocks = bytearray()
        self.next_block = 0

    def inherit(self, other: _Channel) -> None:
        self.isdr, self.df, self.ef = other.isdr, other.df, other.ef

    def drop_store_data(self) -> None:
        self.blocks = bytearray()
        self.next_block = 0


_Handler = Callable[["EuiccCard", _Channel, Command], bytes]


class EuiccCard:
    """A software eUICC holding a :class:`CardState`, optionally persisted to a file.

    The ISD-R answers to the AID the state names unless ``isdr_aid`` overrides it. Use
    :meth:`open` (state file) or :meth:`from_state`; the constructor does no I/O.
    """

    def __init__(self, state: CardState, state_path: Path | None = None, *,
                 isdr_aid: bytes | None = None) -> None:
        aid = state.isdr_aid if isdr_aid is None else bytes(isdr_aid)
        if not 5 <= len(aid) <= 16:
            raise ValueError(f"an ISD-R AID is 5 to 16 bytes, got {len(aid)}")
        self._state = state
        self._state_path = state_path
        self._isdr_aid = aid
        self._lock = threading.RLock()
        self._fs = fs.build(state.enabled_profile())
        self._channels: dict[int, _Channel] = {0: _Channel()}
        self._session = DownloadSession(state.identity, state.eid)

    @classmethod
    def open(cls, state_path: Path, *, isdr_aid: bytes | None = None) -> EuiccCard:
        """The card kept in ``state_path``; a missing file is created with a fresh card
        (random valid EID, one enabled profile, an identity under the built-in test
        issuer). A corrupt file raises :class:`~lpa_emulator.euicc.errors.StateError`."""
        path = Path(state_path)
        try:
            state = CardState.load(path)
        except FileNotFoundError:
            state = CardState.new(isdr_aid=isdr_aid or simfiles.ISDR_AID)
            state.save(path)
            log.info("created card %s in %s", state.eid, path)
        return cls(state, path, isdr_aid=isdr_aid)

    @classmethod
    def from_state(cls, state: CardState, state_path: Path | None = None, *,
                   isdr_aid: bytes | None = None) -> EuiccCard:
        """A card around ``state``; changes are saved to ``state_path`` when given."""
        return cls(state, state_path, isdr_aid=isdr_aid)

    # --- identity ------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def eid(self) -> str:
        return self._state.eid

    @property
    def isdr_aid(self) -> bytes:
        return self._isdr_aid

    @property
    def state(self) -> CardState:
        """The current state; read-only (copy it and :meth:`commit` to change it)."""
        return self._state

    @property
    def state_path(self) -> Path | None:
        return self._state_path

    @property
    def session(self) -> DownloadSession:
        """The volatile download session (challenge, transaction, a package being loaded);
        a reset starts a new one."""
        return self._session

    def enabled_profile(self) -> ProfileRecord | None:
        return self._state.enabled_profile()

    def commit(self, new_state: CardState) -> None:
        """Persist ``new_state`` atomically, then make it current.

        ES10 handlers copy :attr:`state`, change the copy and commit it, so a failure
        leaves the card as it was. A state that cannot be stored raises
        :class:`CardStatus` ``6581`` (memory failure).
        """
        with self._lock:
            new_state.check()
            if self._state_path is not None:
                try:
                    new_state.save(self._state_path)
                except OSError as exc:
                    log.error("cannot save card state to %s: %s", self._state_path, exc)
                    raise CardStatus(SW.MEMORY_FAILURE, "card state not stored") from exc
            before = self._state.enabled_profile()
            self._state = new_state
            after = new_state.enabled_profile()
            if before != after:
                self._fs = fs.build(after)
                # The files of the old profile are gone: channels that had one selected
                # stand on the MF again, as after the REFRESH a profile change triggers.
                for chan in self._channels.values():
                    if not chan.isdr:
                        chan.df, chan.ef = simfiles.FID_MF, None

    # --- the terminal's side -------------------------------------------------------

    def reset(self) -> bytes:
        """Warm reset: close logical channels, forget pending responses and partial
        STORE DATA, select the MF on the basic channel. Returns the ATR."""
        with self._lock:
            self._channels = {0: _Channel()}
            self._session = DownloadSession(self._state.identity, self._state.eid)
        return ATR

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
        entry = _COMMANDS.get(cmd.ins)
        if entry is None:
            raise CardStatus(SW.INS_NOT_SUPPORTED, f"INS {cmd.ins:02X} is not supported")
        if ("gp" if cmd.proprietary else "iso") not in entry.classes:
            raise CardStatus(SW.CLA_NOT_SUPPORTED,
                             f"CLA {cmd.cla:02X} is not supported with INS {cmd.ins:02X}")
        if entry.raw:
            return entry.handler(self, chan, cmd)
        # A response not fetched at once is lost, as on a T=0 card.
        chan.pending = None
        try:
            data = entry.handler(self, chan, cmd)
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
        if aid == self._isdr_aid:
            chan.isdr, chan.df, chan.ef = True, simfiles.FID_MF, None
            # GlobalPlatform FCI: the AID and, in proprietary data, the largest command
            # data field the ISD-R takes.
            proprietary = tlv.encode(0x9F65, b"\xff")
            return tlv.encode(0x6F, tlv.encode(0x84, aid) + tlv.encode(0xA5, proprietary))
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
        if chan.isdr:
            return tlv.encode(0x84, self._isdr_aid) if cmd.p2 == 0x01 else b""
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

    def _store_data(self, chan: _Channel, cmd: Command) -> bytes:
        if not chan.isdr:
            raise CardStatus(SW.CONDITIONS_NOT_SATISFIED, "STORE DATA needs the ISD-R selected")
        if cmd.p1 not in (_P1_STORE_MORE, _P1_STORE_LAST):
            chan.drop_store_data()
            raise CardStatus(SW.WRONG_P1P2, "STORE DATA P1 is 11 (more) or 91 (last)")
        if not cmd.data:
            # Every block carries part of an ES10 command (SGP.22 5.7.2): no Lc is a
            # wrong length, and the command being assembled cannot be trusted either.
            chan.drop_store_data()
            raise CardStatus(SW.WRONG_LENGTH, "STORE DATA carries no data")
        if cmd.p2 == 0:
            # Block 0 always starts a new command; an abandoned one is dropped.
            chan.drop_store_data()
        elif cmd.p2 != chan.next_block:
            expected = chan.next_block
            chan.drop_store_data()
            raise CardStatus(SW.WRONG_P1P2, f"STORE DATA block {cmd.p2}, expected {expected}")
        if len(chan.blocks) + len(cmd.data) > MAX_STORE_DATA:
            chan.drop_store_data()
            raise CardStatus(SW.NOT_ENOUGH_MEMORY, "ES10 command too long")
        chan.blocks += cmd.data
        if cmd.p1 == _P1_STORE_MORE:
            if chan.next_block == 0xFF:
                chan.drop_store_data()
                raise CardStatus(SW.WRONG_P1P2, "too many STORE DATA blocks")
            chan.next_block += 1
            return b""
        data = bytes(chan.blocks)
        chan.drop_store_data()
        return es10.dispatch(self, data, iot.ISDR_HANDLERS)


@dataclass(frozen=True)
class _Ins:
    """One instruction: its handler, the class bytes it accepts ("iso": 0X/4X, "gp": 8X/CX),
    and whether the handler builds the whole response itself (status word included)."""

    handler: _Handler
    classes: frozenset[str]
    raw: bool = False


_ISO = frozenset({"iso"})
_GP = frozenset({"gp"})

_COMMANDS: dict[int, _Ins] = {
    0x70: _Ins(EuiccCard._manage_channel, _ISO),
    0xA4: _Ins(EuiccCard._select, _ISO),
    0xB0: _Ins(EuiccCard._read_binary, _ISO),
    0xB2: _Ins(EuiccCard._read_record, _ISO),
    # LPAs differ in the class byte they use for GET RESPONSE; both are taken.
    0xC0: _Ins(EuiccCard._get_response, _ISO | _GP, raw=True),
    0xAA: _Ins(EuiccCard._terminal_capability, _GP),
    0xE2: _Ins(EuiccCard._store_data, _GP),
    0xF2: _Ins(EuiccCard._status, _GP),
}

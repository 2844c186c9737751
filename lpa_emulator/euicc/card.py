"""The software eUICC: the UICC file system of :mod:`~lpa_emulator.euicc.filecard` plus
the ISD-R, whose ES10 commands arrive in STORE DATA (SGP.22 5.7.2), with state that
survives restarts. One card model behind every way of reaching it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from lpa_emulator.euicc import es10, fs, isdr
from lpa_emulator.euicc.apdu import SW, Command
from lpa_emulator.euicc.download import DownloadSession
from lpa_emulator.euicc.errors import CardStatus
from lpa_emulator.euicc.filecard import GP, Channel, FileCard, Ins, make_atr
from lpa_emulator.euicc.state import CardState, ProfileRecord
from mps_esim import simfiles, tlv

log = logging.getLogger(__name__)

MAX_STORE_DATA = 16 * 1024
"""Upper bound on one reassembled ES10 command; more is refused with ``6A84``."""

_P1_STORE_MORE = 0x11
_P1_STORE_LAST = 0x91

ATR = make_atr(b"MPSEUIC")

_Channel = Channel


class EuiccCard(FileCard):
    """A software eUICC holding a :class:`CardState`, optionally persisted to a file.

    The ISD-R answers to the AID the state names unless ``isdr_aid`` overrides it. Use
    :meth:`open` (state file) or :meth:`from_state`; the constructor does no I/O.
    """

    COMMANDS: ClassVar[dict[int, Ins]] = {**FileCard.COMMANDS, 0xE2: Ins("_store_data", GP)}
    ATR: ClassVar[bytes] = ATR

    def __init__(self, state: CardState, state_path: Path | None = None, *,
                 isdr_aid: bytes | None = None) -> None:
        aid = state.isdr_aid if isdr_aid is None else bytes(isdr_aid)
        if not 5 <= len(aid) <= 16:
            raise ValueError(f"an ISD-R AID is 5 to 16 bytes, got {len(aid)}")
        super().__init__(fs.build(state.enabled_profile()))
        self._state = state
        self._state_path = state_path
        self._isdr_aid = aid
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
    def eid(self) -> str:
        return self._state.eid

    @property
    def name(self) -> str:
        return f"eUICC {self._state.eid}"

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
                self._replace_files(fs.build(after))

    # --- the ISD-R -----------------------------------------------------------------

    def _after_reset(self) -> None:
        self._session = DownloadSession(self._state.identity, self._state.eid)

    def _select_aid(self, chan: _Channel, aid: bytes) -> bytes:
        if aid == self._isdr_aid:
            chan.isdr, chan.df, chan.ef = True, simfiles.FID_MF, None
            # GlobalPlatform FCI: the AID and, in proprietary data, the largest command
            # data field the ISD-R takes.
            proprietary = tlv.encode(0x9F65, b"\xff")
            return tlv.encode(0x6F, tlv.encode(0x84, aid) + tlv.encode(0xA5, proprietary))
        return super()._select_aid(chan, aid)

    def _status(self, chan: _Channel, cmd: Command) -> bytes:
        if chan.isdr and cmd.p2 != 0x0C:
            if cmd.p1 > 0x02 or cmd.p2 not in (0x00, 0x01):
                raise CardStatus(SW.WRONG_P1P2, "STATUS P1 00-02, P2 00, 01 or 0C")
            return tlv.encode(0x84, self._isdr_aid) if cmd.p2 == 0x01 else b""
        return super()._status(chan, cmd)

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
        return es10.dispatch(self, data, isdr.HANDLERS)

"""``emu://<state file>``: the software eUICC or plain UICC, in this process."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import SplitResult

from agent.card.link import CardLink
from agent.errors import AgentConfigError, CardRemovedError, NoCardError
from lpa_emulator.cards import open_card
from lpa_emulator.euicc.filecard import FileCard
from mps_esim.simfiles import ISDR_AID


class EmuCardLink(CardLink):
    """Drives an in-process emulated card (eUICC or plain UICC) whose state lives in a file.

    :meth:`eject` and :meth:`insert` pull the card and put it back, for exercising what a
    card that goes away does to a session.
    """

    scheme = "emu"

    def __init__(self, state_path: Path, *, isdr_aid: bytes = ISDR_AID,
                 auto_reconnect: bool = True) -> None:
        super().__init__(isdr_aid=isdr_aid, auto_reconnect=auto_reconnect)
        self.state_path = state_path
        self._card: FileCard | None = None
        self._present = True

    def eject(self) -> None:
        """Pull the card: the next APDU fails as with a card removed mid-session."""
        self._present = False

    def insert(self) -> None:
        """Put the card back (its state file is read again on reconnection)."""
        self._present = True

    @classmethod
    def from_url(cls, url: SplitResult, *, isdr_aid: bytes = ISDR_AID) -> EmuCardLink:
        path = (url.netloc + url.path) if url.netloc else url.path
        if not path:
            raise AgentConfigError("emu:// needs the card's state file, e.g. emu:///var/lib/mps/card.json")
        if url.query:
            raise AgentConfigError(f"emu:// takes no options, got {url.query!r}")
        return cls(Path(path), isdr_aid=isdr_aid)

    def _connect(self) -> bytes:
        if not self._present:
            raise NoCardError("the emulated card is ejected")
        if not self.state_path.parent.is_dir():
            raise NoCardError(f"no emulated card: directory {self.state_path.parent} is missing")
        # The card answers on the ISD-R AID it was made with; the link's AID is what it asks
        # for, so a mismatch shows up as on a real card (6A82).
        self._card = open_card(self.state_path)
        return self._card.reset()

    def _exchange(self, apdu: bytes) -> bytes:
        if not self._present:
            raise CardRemovedError("the emulated card went away (ejected)")
        if self._card is None:
            raise NoCardError("the emulated card is not open")
        return self._card.transmit(apdu)

    def _close(self) -> None:
        self._card = None

"""``pcsc://?reader=<regex>``: a card in a PC/SC reader, through pcscd and pyscard."""

from __future__ import annotations

import importlib
import importlib.machinery
import re
import sys
import types
from typing import Any
from urllib.parse import SplitResult, parse_qs

from agent.card.link import CardLink
from agent.errors import AgentConfigError, CardError, CardRemovedError, NoCardError
from mps_common import logs
from mps_esim.simfiles import ISDR_AID

log = logs.get(__name__)


def _pcsc() -> Any:
    """pyscard's PC/SC layer, ``smartcard.scard``, imported on first use: it loads
    libpcsclite, which a device without a reader lacks.

    ``import smartcard.scard`` first runs the package's ``__init__``, which loads pyscard's
    object layer (sessions, reader factories, observers) this link never uses, a good part
    of an LPA command's start-up. When nothing has imported the package yet, it is entered
    in ``sys.modules`` as a bare package (its ``__path__`` only) so that only the PC/SC
    layer loads; importing any of its modules later works as usual.
    """
    found = sys.modules.get("smartcard.scard")
    if found is not None:
        return found
    if "smartcard" not in sys.modules:
        spec = importlib.machinery.PathFinder.find_spec("smartcard")
        if spec is not None and spec.submodule_search_locations is not None:
            package = types.ModuleType("smartcard")
            package.__spec__ = spec
            package.__path__ = list(spec.submodule_search_locations)
            package.__file__ = spec.origin
            sys.modules["smartcard"] = package
    return importlib.import_module("smartcard.scard")


def _reason(scard: Any, hresult: int) -> str:
    """The PC/SC error name and number (``SCARD_W_REMOVED_CARD (0x80100069)``)."""
    code = hresult & 0xFFFFFFFF
    names = [n for n in dir(scard) if n.startswith("SCARD_") and n[6:8] in ("E_", "W_", "F_")
             and getattr(scard, n) & 0xFFFFFFFF == code]
    return f"{names[0] if names else 'PC/SC error'} (0x{code:08X})"


class PcscCardLink(CardLink):
    """The first PC/SC reader whose name matches ``reader`` (a regular expression)."""

    scheme = "pcsc"

    def __init__(self, reader: str = "", *, isdr_aid: bytes = ISDR_AID,
                 auto_reconnect: bool = True) -> None:
        super().__init__(isdr_aid=isdr_aid, auto_reconnect=auto_reconnect)
        try:
            self._pattern = re.compile(reader)
        except re.error as exc:
            raise AgentConfigError(f"pcsc:// reader pattern {reader!r} is invalid: {exc}") from exc
        self.reader_name: str | None = None
        self._context: Any = None
        self._card: Any = None

    @classmethod
    def from_url(cls, url: SplitResult, *, isdr_aid: bytes = ISDR_AID) -> PcscCardLink:
        query = parse_qs(url.query, keep_blank_values=True)
        unknown = set(query) - {"reader"}
        if unknown or url.netloc or url.path not in ("", "/"):
            raise AgentConfigError("pcsc:// takes only ?reader=<regex>, e.g. pcsc://?reader=Virtual")
        return cls(query.get("reader", [""])[-1], isdr_aid=isdr_aid)

    def _connect(self) -> bytes:
        scard = _pcsc()

        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise NoCardError(f"PC/SC is not available (is pcscd running?): "
                              f"{_reason(scard, hresult)}")
        try:
            self._card = self._connect_reader(scard, context)
        except BaseException:
            scard.SCardReleaseContext(context)
            raise
        self._context = context
        hresult, _name, _state, _protocol, atr = scard.SCardStatus(self._card)
        if hresult != scard.SCARD_S_SUCCESS:
            self._close()
            raise CardError(f"cannot read the card's status in {self.reader_name!r}: "
                            f"{_reason(scard, hresult)}")
        return bytes(atr)

    def _connect_reader(self, scard: Any, context: Any) -> Any:
        hresult, available = scard.SCardListReaders(context, [])
        if hresult not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_NO_READERS_AVAILABLE):
            raise NoCardError(f"PC/SC is not available (is pcscd running?): "
                              f"{_reason(scard, hresult)}")
        available = list(available or [])
        matching = [r for r in available if self._pattern.search(r)]
        if not matching:
            names = ", ".join(available) or "none"
            raise NoCardError(f"no PC/SC reader matches {self._pattern.pattern!r} "
                              f"(readers: {names})")
        self.reader_name = matching[0]
        # Independent LPAs and real eUICCs speak T=0; the base class does 61xx/6Cxx.
        hresult, card, _protocol = scard.SCardConnect(
            context, self.reader_name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0)
        if hresult in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD):
            raise NoCardError(f"no card in reader {self.reader_name!r}")
        if hresult != scard.SCARD_S_SUCCESS:
            raise CardError(f"cannot connect to the card in {self.reader_name!r}: "
                            f"{_reason(scard, hresult)}")
        return card

    def _exchange(self, apdu: bytes) -> bytes:
        scard = _pcsc()
        if self._card is None:
            raise CardError("pcsc:// link is not connected")
        hresult, response = scard.SCardTransmit(self._card, scard.SCARD_PCI_T0, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            # pcscd reports a card pulled mid-session as NOT_TRANSACTED, then REMOVED_CARD
            # (a reset by another client as RESET_CARD); either way this connection is dead
            # until reconnected.
            raise CardRemovedError(
                f"card in {self.reader_name!r} went away during a command: "
                f"{_reason(scard, hresult)}")
        return bytes(response)

    def _close(self) -> None:
        """Disconnect and give back the PC/SC context now (by the time the objects are
        collected pcscd may be gone); failures only logged."""
        if self._card is None and self._context is None:
            return
        scard = _pcsc()

        if self._card is not None:
            # Unpowered, as pyscard's object layer leaves a card: the next connect powers it
            # up again, so a card that is gone is found gone.
            hresult = scard.SCardDisconnect(self._card, scard.SCARD_UNPOWER_CARD)
            if hresult != scard.SCARD_S_SUCCESS:
                log.debug("disconnecting from the card failed: %s", _reason(scard, hresult))
            self._card = None
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

"""``at://<modem port>``: the card behind a cellular modem, over AT+CSIM / AT+CCHO/CGLA."""

from __future__ import annotations

import logging
from urllib.parse import SplitResult, parse_qs

from agent.card.link import CardLink, Channel
from agent.errors import (
    AgentConfigError,
    CardRemovedError,
    CmeError,
    ModemError,
    NoCardError,
    StatusWordError,
)
from agent.modem import Modem, open_modem
from mps_esim.iso7816 import Response
from mps_esim.lpa.es10 import DEFAULT_BLOCK_SIZE
from mps_esim.simfiles import ISDR_AID

log = logging.getLogger(__name__)

# +CME ERROR codes (27.007 9.2.1): no usable card, operation not supported, not found.
_NO_CARD = {10, 13}
_CME_NOT_SUPPORTED = 4
_CME_NOT_FOUND = 22
_SW_NOT_FOUND = 0x6A82


class ModemChannel(Channel):
    """A logical channel the modem opened with AT+CCHO; APDUs travel with AT+CGLA.

    The modem owns the channel number (it rewrites CLA), so APDUs go with channel-0 CLA.
    """

    def __init__(self, link: AtCardLink, session: int, aid: bytes) -> None:
        super().__init__(link, 0, aid)
        self.session = session
        self._at_link = link

    def transmit(self, apdu: bytes) -> Response:
        self._at_link._check_channel(self)
        return self._at_link._cgla(self.session, apdu)

    def close(self) -> None:
        if not self.closed:
            alive = self.alive
            self.closed = True
            # A session of a card that went away is gone from the modem too.
            if alive:
                self._at_link._cchc(self.session)


class AtCardLink(CardLink):
    """APDUs through a modem. Uses AT+CCHO/CGLA for logical channels when the modem has
    them, and falls back to MANAGE CHANNEL over AT+CSIM when it does not."""

    scheme = "at"
    # The LPA's customary block (SGP.22 leaves it to the LPA): AT+CSIM carries the APDU in
    # hex on one command line, and modem firmware limits that line's length.
    store_data_block = DEFAULT_BLOCK_SIZE

    def __init__(self, modem: Modem | None = None, *, port: str | None = None,
                 isdr_aid: bytes = ISDR_AID, use_ccho: bool | None = None,
                 auto_reconnect: bool = True) -> None:
        super().__init__(isdr_aid=isdr_aid, auto_reconnect=auto_reconnect)
        if modem is None and port is None:
            raise AgentConfigError("at:// needs a modem port, e.g. at:///dev/ttyUSB2")
        self._modem = modem
        self._own_modem = modem is None
        self._port = port
        self._use_ccho = use_ccho

    @classmethod
    def from_url(cls, url: SplitResult, *, isdr_aid: bytes = ISDR_AID,
                 modem: Modem | None = None) -> AtCardLink:
        query = parse_qs(url.query)
        unknown = set(query) - {"channels"}
        if unknown:
            raise AgentConfigError(f"at:// takes only ?channels=ccho|csim, got {sorted(unknown)}")
        mode = query.get("channels", [None])[-1]
        if mode not in (None, "ccho", "csim"):
            raise AgentConfigError(f"at:// channels must be ccho or csim, got {mode!r}")
        port = (url.netloc + url.path) or None
        if port is None and modem is None:
            raise AgentConfigError("at:// needs a modem port, e.g. at:///dev/ttyUSB2")
        use_ccho = None if mode is None else mode == "ccho"
        if modem is not None and (port is None or port == modem.port):
            return cls(modem, isdr_aid=isdr_aid, use_ccho=use_ccho)
        return cls(port=port, isdr_aid=isdr_aid, use_ccho=use_ccho)

    @property
    def modem(self) -> Modem:
        if self._modem is None:
            raise ModemError("at:// link is not connected")
        return self._modem

    def _connect(self) -> bytes:
        if self._modem is None:
            if self._port is None:
                raise AgentConfigError("at:// needs a modem port")
            self._modem = Modem(open_modem(self._port))
            self._modem.link.sync()
        try:
            present = self._modem.sim_present()
        except CmeError as exc:
            if exc.code in _NO_CARD:
                raise NoCardError(f"modem reports no SIM: {exc}") from exc
            raise
        if not present:
            raise NoCardError("modem reports no SIM card")
        if self._use_ccho is None:
            self._use_ccho = self._modem.supports_ccho()
        return b""  # a modem does not pass the ATR on

    def _reconnect(self) -> bytes:
        # The modem stays; only the card session starts again.
        return self._connect()

    @staticmethod
    def _removed(exc: CmeError) -> CardRemovedError:
        return CardRemovedError(f"the modem lost the SIM during a command: {exc}")

    def _exchange(self, apdu: bytes) -> bytes:
        try:
            return self.modem.csim(apdu)
        except CmeError as exc:
            if exc.code in _NO_CARD:
                raise self._removed(exc) from exc
            raise

    def _close(self) -> None:
        if self._own_modem and self._modem is not None:
            self._modem.link.close()
            self._modem = None

    def _open_logical(self, aid: bytes) -> Channel:
        if not self._use_ccho:
            return super()._open_logical(aid)
        try:
            session = self.modem.open_logical_channel(aid)
        except CmeError as exc:
            if exc.code == _CME_NOT_SUPPORTED:  # fall back for good
                log.info("modem refuses AT+CCHO; using MANAGE CHANNEL over AT+CSIM")
                self._use_ccho = False
                return super()._open_logical(aid)
            if exc.code in _NO_CARD:
                raise self._removed(exc) from exc
            if exc.code == _CME_NOT_FOUND:
                # What SELECT answered behind the modem's back: no such application.
                raise StatusWordError(f"no application {aid.hex().upper()} on the card "
                                      f"(AT+CCHO: {exc})", sw=_SW_NOT_FOUND) from exc
            raise
        return ModemChannel(self, session, aid)

    def _cgla(self, session: int, apdu: bytes) -> Response:
        def exchange(raw: bytes) -> bytes:
            try:
                return self.modem.cgla(session, raw)
            except CmeError as exc:
                if exc.code in _NO_CARD:
                    raise self._removed(exc) from exc
                raise

        with self._lock:
            return self._transceive(exchange, apdu)

    def _cchc(self, session: int) -> None:
        try:
            self.modem.close_logical_channel(session)
        except ModemError as exc:
            log.debug("AT+CCHC=%d failed: %s", session, exc)


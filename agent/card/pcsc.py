"""``pcsc://?reader=<regex>``: a card in a PC/SC reader, through pcscd and pyscard."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import SplitResult, parse_qs

from agent.card.link import CardLink
from agent.errors import AgentConfigError, CardError, CardRemovedError, NoCardError
from mps_esim.simfiles import ISDR_AID

log = logging.getLogger(__name__)


def _pcsc_reason(exc: Exception) -> str:
    """pyscard's message with the PC/SC error name (SCARD_W_REMOVED_CARD, ...) when known."""
    from smartcard import scard

    code = getattr(exc, "hresult", None)
    if isinstance(code, int) and code != -1:
        names = [n for n in dir(scard) if n.startswith("SCARD_") and
                 getattr(scard, n) == code & 0xFFFFFFFF and n[6:8] in ("E_", "W_", "F_")]
        if names:
            return f"{names[0]} (0x{code & 0xFFFFFFFF:08X})"
    return str(exc)


def _release(conn: Any) -> None:
    """Disconnect and give back the PC/SC context now, not whenever the object is collected
    (by then pcscd may be gone, and pyscard complains from a finaliser)."""
    try:
        conn.release()
    except Exception as exc:
        log.debug("releasing the PC/SC connection failed: %s", exc)


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
        self._conn: Any = None

    @classmethod
    def from_url(cls, url: SplitResult, *, isdr_aid: bytes = ISDR_AID) -> PcscCardLink:
        query = parse_qs(url.query, keep_blank_values=True)
        unknown = set(query) - {"reader"}
        if unknown or url.netloc or url.path not in ("", "/"):
            raise AgentConfigError("pcsc:// takes only ?reader=<regex>, e.g. pcsc://?reader=Virtual")
        return cls(query.get("reader", [""])[-1], isdr_aid=isdr_aid)

    def _connect(self) -> bytes:
        # Imported here: pyscard loads libpcsclite, which a device without a reader lacks.
        from smartcard.CardConnection import CardConnection
        from smartcard.Exceptions import CardConnectionException, NoCardException
        from smartcard.pcsc.PCSCExceptions import EstablishContextException, ListReadersException
        from smartcard.System import readers

        try:
            available = readers()
        except (EstablishContextException, ListReadersException) as exc:
            raise NoCardError(f"PC/SC is not available (is pcscd running?): {exc}") from exc
        matching = [r for r in available if self._pattern.search(str(r))]
        if not matching:
            names = ", ".join(str(r) for r in available) or "none"
            raise NoCardError(f"no PC/SC reader matches {self._pattern.pattern!r} "
                              f"(readers: {names})")
        reader = matching[0]
        self.reader_name = str(reader)
        conn = reader.createConnection()
        try:
            # Independent LPAs and real eUICCs speak T=0; the base class does 61xx/6Cxx.
            conn.connect(CardConnection.T0_protocol)
        except NoCardException as exc:
            _release(conn)
            raise NoCardError(f"no card in reader {self.reader_name!r}") from exc
        except CardConnectionException as exc:
            _release(conn)
            raise CardError(f"cannot connect to the card in {self.reader_name!r}: "
                            f"{_pcsc_reason(exc)}") from exc
        self._conn = conn
        return bytes(conn.getATR())

    def _exchange(self, apdu: bytes) -> bytes:
        from smartcard.Exceptions import CardConnectionException

        if self._conn is None:
            raise CardError("pcsc:// link is not connected")
        try:
            data, sw1, sw2 = self._conn.transmit(list(apdu))
        except CardConnectionException as exc:
            # pcscd reports a card pulled mid-session as NOT_TRANSACTED, then REMOVED_CARD
            # (a reset by another client as RESET_CARD); either way this connection is dead
            # until reconnected.
            raise CardRemovedError(
                f"card in {self.reader_name!r} went away during a command: "
                f"{_pcsc_reason(exc)}") from exc
        return bytes(data) + bytes((sw1, sw2))

    def _close(self) -> None:
        if self._conn is not None:
            _release(self._conn)
            self._conn = None

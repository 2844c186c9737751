"""The card link: one base class owning T=0, logical channels and status-word errors.

Backends only move raw APDUs (``_exchange``) and, where the path to the card has its own
notion of channels (a modem's AT+CCHO), override ``_open_logical``.
"""

from __future__ import annotations

import abc
import logging
import threading
from types import TracebackType

from agent.errors import CardError, StatusWordError
from lpa_emulator.iso7816 import (
    SW_OK,
    ApduError,
    Response,
    build_apdu,
    sw_text,
    t0_transceive,
    with_channel,
)
from lpa_emulator.simfiles import FID_EF_ICCID, FID_MF, ISDR_AID, decode_iccid

log = logging.getLogger(__name__)


def check(resp: Response, apdu: bytes, *, ok: tuple[int, ...] = (SW_OK,)) -> bytes:
    """Return the response data, or raise StatusWordError when the SW is not in ``ok``."""
    if resp.sw not in ok:
        raise StatusWordError(
            f"card answered {resp.sw:04X} ({sw_text(resp.sw)}) to {apdu[:4].hex().upper()}",
            sw=resp.sw, apdu=apdu,
        )
    return resp.data


class Channel:
    """A logical channel on the card, opened on an application.

    Callers send APDUs with the CLA of channel 0; the channel codes its number in.
    """

    def __init__(self, link: CardLink, number: int, aid: bytes | None) -> None:
        self.link = link
        self.number = number
        self.aid = aid
        self.closed = False

    def transmit(self, apdu: bytes) -> Response:
        if self.closed:
            raise CardError(f"logical channel {self.number} is closed")
        return self.link.transmit(with_channel(apdu, self.number))

    def send(self, apdu: bytes, *, ok: tuple[int, ...] = (SW_OK,)) -> bytes:
        """Transmit and return the data; StatusWordError unless the SW is in ``ok``."""
        return check(self.transmit(apdu), apdu, ok=ok)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.number != 0:
                self.link._close_logical(self)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CardLink(abc.ABC):
    """A path to one card. Subclasses implement ``_connect``, ``_exchange`` and ``_close``.

    All APDUs go through :meth:`transmit`, which runs the T=0 response procedure, so every
    backend and every caller gets complete responses whatever the card's protocol.
    """

    scheme: str = ""

    def __init__(self, *, isdr_aid: bytes = ISDR_AID) -> None:
        self.isdr_aid = isdr_aid
        self._lock = threading.RLock()
        self._connected = False

    # --- backend hooks ---------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> bytes:
        """Reach the card and return its ATR (or b"" where the path cannot tell it)."""

    @abc.abstractmethod
    def _exchange(self, apdu: bytes) -> bytes:
        """Send one raw command APDU and return the raw response (data + SW)."""

    def _close(self) -> None:  # noqa: B027 - optional hook; most paths hold nothing
        """Release the path to the card."""

    def _open_logical(self, aid: bytes) -> Channel:
        """Open a logical channel and select ``aid`` on it (MANAGE CHANNEL + SELECT)."""
        apdu = build_apdu(0x00, 0x70, 0x00, 0x00, le=1)
        data = check(self.transmit(apdu), apdu)
        if len(data) != 1 or not 1 <= data[0] <= 19:
            raise CardError(f"MANAGE CHANNEL returned no usable channel number: {data.hex()}")
        channel = Channel(self, data[0], aid)
        try:
            channel.send(build_apdu(0x00, 0xA4, 0x04, 0x00, aid, le=0))
        except Exception:
            channel.close()
            raise
        return channel

    def _close_logical(self, channel: Channel) -> None:
        apdu = build_apdu(0x00, 0x70, 0x80, channel.number)
        try:
            check(self.transmit(apdu), apdu)
        except CardError as exc:
            # The card may already be gone; the channel is unusable either way.
            log.debug("closing channel %d failed: %s", channel.number, exc)

    # --- public API ------------------------------------------------------------------
    def connect(self) -> bytes:
        """Connect to the card; returns the ATR. Raises NoCardError when there is none."""
        with self._lock:
            atr = self._connect()
            self._connected = True
            return atr

    def close(self) -> None:
        with self._lock:
            if self._connected:
                self._connected = False
                self._close()

    def transmit(self, apdu: bytes) -> Response:
        """Send a command APDU and return the complete response (T=0 procedure done)."""
        with self._lock:
            if not self._connected:
                raise CardError(f"{self.scheme}:// card link is not connected")
            try:
                return t0_transceive(self._exchange, apdu)
            except ApduError as exc:
                raise CardError(f"bad APDU exchange: {exc}") from exc

    def send(self, apdu: bytes, *, ok: tuple[int, ...] = (SW_OK,)) -> bytes:
        """Transmit on the basic channel and return the data; StatusWordError otherwise."""
        return check(self.transmit(apdu), apdu, ok=ok)

    def open_channel(self, aid: bytes) -> Channel:
        """Open a logical channel with ``aid`` selected on it."""
        with self._lock:
            return self._open_logical(aid)

    def open_isdr(self) -> Channel:
        """A logical channel to the eUICC's ISD-R (its AID is configurable)."""
        return self.open_channel(self.isdr_aid)

    def read_iccid(self) -> str:
        """The ICCID of the enabled profile, from EF.ICCID on the basic channel."""
        self.send(build_apdu(0x00, 0xA4, 0x00, 0x0C, FID_MF.to_bytes(2, "big")))
        self.send(build_apdu(0x00, 0xA4, 0x00, 0x0C, FID_EF_ICCID.to_bytes(2, "big")))
        data = self.send(build_apdu(0x00, 0xB0, 0x00, 0x00, le=10))
        try:
            return decode_iccid(data)
        except ValueError as exc:
            raise CardError(f"EF.ICCID content is malformed: {exc}") from exc

    def __enter__(self) -> CardLink:
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

"""The card link: one base class owning T=0, logical channels, status-word errors and what
happens when the card goes away.

Backends only move raw APDUs (``_exchange``) and, where the path to the card has its own
notion of channels (a modem's AT+CCHO), override ``_open_logical``. A backend that sees the
card vanish raises :class:`~agent.errors.CardRemovedError`; the base class then treats the
session as lost: logical channels opened before are dead for good, and the next use of the
link (or :meth:`CardLink.reconnect`) connects to the card again once it is back.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from types import TracebackType

from agent.errors import CardError, CardRemovedError, StatusWordError
from mps_common import logs
from mps_esim.iso7816 import (
    SW_OK,
    ApduError,
    Response,
    build_apdu,
    sw_text,
    t0_transceive,
    with_channel,
)
from mps_esim.simfiles import (
    AID_USIM_PREFIX,
    FID_EF_ICCID,
    FID_EF_IMSI,
    FID_MF,
    ISDR_AID,
    decode_iccid,
    decode_imsi,
)

log = logs.get(__name__)


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
        self.generation = link.generation

    def transmit(self, apdu: bytes) -> Response:
        self.link._check_channel(self)
        return self.link.transmit(with_channel(apdu, self.number))

    def send(self, apdu: bytes, *, ok: tuple[int, ...] = (SW_OK,)) -> bytes:
        """Transmit and return the data; StatusWordError unless the SW is in ``ok``."""
        return check(self.transmit(apdu), apdu, ok=ok)

    @property
    def alive(self) -> bool:
        """Open, and opened in the link's current session with the card."""
        return not self.closed and self.link._channel_alive(self)

    def close(self) -> None:
        if not self.closed:
            alive = self.link._channel_alive(self)
            self.closed = True
            # A channel of a card that went away closed with it; nothing to send.
            if alive and self.number != 0:
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

    With ``auto_reconnect`` (the default) the first use after the card went away tries to
    connect again; without it every use raises :class:`CardRemovedError` until
    :meth:`reconnect` succeeds.
    """

    scheme: str = ""
    store_data_block: int = 255
    """The STORE DATA block size (ES10 data per command) the path carries: a short APDU's
    whole 255 bytes unless the path is narrower. Fewer blocks, fewer round trips."""

    def __init__(self, *, isdr_aid: bytes = ISDR_AID, auto_reconnect: bool = True) -> None:
        self.isdr_aid = isdr_aid
        self.auto_reconnect = auto_reconnect
        self._lock = threading.RLock()
        self._connected = False
        self._generation = 0
        self._lost: str | None = None
        self.apdu_count = 0
        """Command APDUs exchanged with the card so far, GET RESPONSE and resends included."""

    # --- backend hooks ---------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> bytes:
        """Reach the card and return its ATR (or b"" where the path cannot tell it)."""

    @abc.abstractmethod
    def _exchange(self, apdu: bytes) -> bytes:
        """Send one raw command APDU and return the raw response (data + SW)."""

    def _close(self) -> None:  # noqa: B027 - optional hook; most paths hold nothing
        """Release the path to the card."""

    def _reconnect(self) -> bytes:
        """Reach the card again after it went away; by default close and connect anew."""
        try:
            self._close()
        except CardError as exc:
            log.debug("closing the dead %s:// session failed: %s", self.scheme, exc)
        return self._connect()

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

    # --- sessions and lost cards -----------------------------------------------------
    @property
    def generation(self) -> int:
        """Counts the sessions with the card: every (re)connection starts a new one, and
        channels opened in an older one are dead."""
        return self._generation

    @property
    def lost(self) -> bool:
        """Whether the card went away since the current session began."""
        return self._lost is not None

    def _channel_alive(self, channel: Channel) -> bool:
        return self._lost is None and channel.generation == self._generation

    def _check_channel(self, channel: Channel) -> None:
        if channel.closed:
            raise CardError(f"logical channel {channel.number} is closed")
        if not self._channel_alive(channel):
            raise CardRemovedError(
                f"logical channel {channel.number} was lost when the card went away "
                f"({self._lost or 'it has been reconnected since'}); open a new one")

    def _transceive(self, exchange: Callable[[bytes], bytes], apdu: bytes) -> Response:
        """T=0 over ``exchange``; a card that goes away marks the session lost."""
        def counted(raw: bytes) -> bytes:
            self.apdu_count += 1
            return exchange(raw)

        try:
            resp = t0_transceive(counted, apdu)
        except CardRemovedError as exc:
            if self._lost is None:
                log.warning("%s:// card went away: %s", self.scheme, exc)
            self._lost = str(exc)
            raise
        except ApduError as exc:
            raise CardError(f"bad APDU exchange: {exc}") from exc
        if log.isEnabledFor(logs.DEBUG):
            log.debug("%s:// %s -> %s %04X", self.scheme, apdu.hex().upper(),
                      resp.data.hex().upper(), resp.sw)
        return resp

    def _revive(self) -> None:
        """Reconnect a lost session, or :class:`CardRemovedError` saying the card is not back."""
        try:
            self.reconnect()
        except CardError as exc:
            raise CardRemovedError(f"the card went away ({self._lost}) and is not back: "
                                   f"{exc}") from exc

    # --- public API ------------------------------------------------------------------
    def connect(self) -> bytes:
        """Connect to the card; returns the ATR. Raises NoCardError when there is none."""
        with self._lock:
            atr = self._connect()
            self._connected = True
            self._generation += 1
            self._lost = None
            return atr

    def reconnect(self) -> bytes:
        """Start a new session with the card (after it went away and came back, or to reset
        it); returns the ATR. Channels of the old session are dead. NoCardError while the
        card is still missing."""
        with self._lock:
            if not self._connected:
                return self.connect()
            atr = self._reconnect()
            self._generation += 1
            self._lost = None
            log.info("%s:// card reconnected", self.scheme)
            return atr

    def close(self) -> None:
        with self._lock:
            if self._connected:
                self._connected = False
                self._close()

    def transmit(self, apdu: bytes) -> Response:
        """Send a command APDU and return the complete response (T=0 procedure done).

        Raises :class:`CardRemovedError` when the card goes away; after that, the next call
        first reconnects (with ``auto_reconnect``), or raises again until :meth:`reconnect`.
        """
        with self._lock:
            if not self._connected:
                raise CardError(f"{self.scheme}:// card link is not connected")
            if self._lost is not None:
                if not self.auto_reconnect:
                    raise CardRemovedError(f"the card went away ({self._lost}); reconnect")
                self._revive()
            return self._transceive(self._exchange, apdu)

    def send(self, apdu: bytes, *, ok: tuple[int, ...] = (SW_OK,)) -> bytes:
        """Transmit on the basic channel and return the data; StatusWordError otherwise."""
        return check(self.transmit(apdu), apdu, ok=ok)

    def open_channel(self, aid: bytes) -> Channel:
        """Open a logical channel with ``aid`` selected on it (after reconnecting a lost
        card, with ``auto_reconnect``)."""
        with self._lock:
            if self._lost is not None and self.auto_reconnect and self._connected:
                self._revive()
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

    def read_imsi(self) -> str:
        """The IMSI, from EF.IMSI (6F07) of ADF.USIM on the basic channel (TS 31.102
        4.2.2); the USIM is selected by the 3GPP prefix of its AID (ISO 7816-4 partial
        AID selection)."""
        self.send(build_apdu(0x00, 0xA4, 0x04, 0x0C, AID_USIM_PREFIX))
        self.send(build_apdu(0x00, 0xA4, 0x00, 0x0C, FID_EF_IMSI.to_bytes(2, "big")))
        data = self.send(build_apdu(0x00, 0xB0, 0x00, 0x00, le=9))
        try:
            return decode_imsi(data)
        except ValueError as exc:
            raise CardError(f"EF.IMSI content is malformed: {exc}") from exc

    def __enter__(self) -> CardLink:
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

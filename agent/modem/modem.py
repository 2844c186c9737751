"""``Modem``: what the agent asks a modem, over a :class:`ModemLink` in a vendor dialect.

Every answer is validated; a malformed one raises :class:`ModemError` naming the command
and the offending line.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from agent.errors import AgentConfigError, CmeError, ModemError, ModemTimeoutError
from agent.modem.dialects import DIALECTS, Dialect
from agent.modem.link import ModemLink
from agent.modem.results import fields, small_int, unquote
from mps_esim.ts27007 import CME_OPERATION_NOT_SUPPORTED, CME_SIM_NOT_INSERTED
from mps_wire.identifiers import IdentifierError, validate_imei, validate_imsi

log = logging.getLogger(__name__)

MAX_APDU = 261
"""Longest short-form command APDU (5 + 255 + 1 bytes) that AT+CSIM / AT+CGLA carry."""

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_SESSION = re.compile(r"[0-9]{1,10}")
_REGISTERED = (1, 5)  # home network, roaming
# AT+CPIN? answers meaning a card is in the slot (locked or not).
_CARD_PRESENT = ("READY", "SIM PIN", "SIM PUK", "PH-SIM PIN", "SIM PIN2", "SIM PUK2",
                 "PH-NET PIN")


class Modem:
    """A modem seen through ``link`` in ``dialect`` (a :class:`Dialect` or its name).

    ``timeout`` applies to ordinary commands, ``apdu_timeout`` to those that reach the card.
    """

    def __init__(self, link: ModemLink, dialect: Dialect | str = "generic", *,
                 timeout: float = 5.0, apdu_timeout: float = 10.0) -> None:
        if isinstance(dialect, str):
            try:
                dialect = DIALECTS[dialect]
            except KeyError:
                raise AgentConfigError(f"unknown modem dialect {dialect!r}; known: "
                                  f"{', '.join(sorted(DIALECTS))}") from None
        self.link = link
        self.dialect = dialect
        self.timeout = timeout
        self.apdu_timeout = apdu_timeout
        self._ccho: bool | None = None
        link.add_urc_prefixes(dialect.urc_prefixes)
        link.add_cme_texts(dialect.cme_texts)

    @property
    def port(self) -> str:
        """The device path or URL the link was opened from."""
        return self.link.port

    def sync(self, *, timeout: float | None = None) -> None:
        """See :meth:`ModemLink.sync`."""
        self.link.sync(timeout=timeout or self.timeout)

    def close(self) -> None:
        self.link.close()

    def on_urc(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """See :meth:`ModemLink.on_urc`."""
        return self.link.on_urc(callback)

    # --- helpers -----------------------------------------------------------------------

    def _ask(self, cmd: str, *, prefix: str | None = None, bare: bool = False,
             timeout: float | None = None) -> list[str]:
        return self.link.command(cmd, prefix=prefix, bare=bare,
                                 timeout=timeout or self.timeout)

    @staticmethod
    def _one(cmd: str, lines: list[str], what: str) -> str:
        if not lines:
            raise ModemError(f"{cmd}: no {what} in the answer", command=cmd)
        return lines[0]

    @staticmethod
    def _bad(cmd: str, line: str, why: object) -> ModemError:
        return ModemError(f"{cmd}: bad answer {line!r}: {why}", command=cmd)

    @staticmethod
    def _value(line: str, prefix: str) -> str:
        """A bare answer, or the same with the ``+NAME:`` some firmware puts before it."""
        if line[:len(prefix)].upper() == prefix.upper():
            line = line[len(prefix):]
        return unquote(line.strip())

    def _text(self, cmd: str, prefix: str, what: str) -> str:
        line = self._one(cmd, self._ask(cmd, prefix=prefix, bare=True), what)
        value = self._value(line, prefix)
        if value.lower().startswith("revision:"):
            value = value.split(":", 1)[1].strip()
        if not value or not value.isprintable() or len(value) > 64:
            raise self._bad(cmd, line, f"not a {what}")
        return value

    # --- identity ----------------------------------------------------------------------

    def imei(self) -> str:
        """The 15-digit IMEI (AT+CGSN, or AT+GSN where that is refused)."""
        cmd, prefix = "AT+CGSN", "+CGSN:"
        try:
            lines = self._ask(cmd, prefix=prefix, bare=True)
        except ModemTimeoutError:
            raise
        except ModemError as exc:
            # ModemManager's order too: some firmware only knows the V.250 form.
            log.debug("%s; trying AT+GSN", exc)
            cmd, prefix = "AT+GSN", "+GSN:"
            lines = self._ask(cmd, prefix=prefix, bare=True)
        line = self._one(cmd, lines, "IMEI")
        try:
            return validate_imei(self._value(line, prefix))
        except IdentifierError as exc:
            raise self._bad(cmd, line, exc) from exc

    def manufacturer(self) -> str:
        return self._text("AT+CGMI", "+CGMI:", "manufacturer")

    def model(self) -> str:
        return self._text("AT+CGMM", "+CGMM:", "model")

    def revision(self) -> str:
        """The firmware revision (AT+CGMR)."""
        return self._text("AT+CGMR", "+CGMR:", "revision")

    def imsi(self) -> str:
        """The IMSI of the SIM's enabled profile (AT+CIMI)."""
        cmd = "AT+CIMI"
        line = self._one(cmd, self._ask(cmd, prefix="+CIMI:", bare=True), "IMSI")
        try:
            return validate_imsi(self._value(line, "+CIMI:"))
        except IdentifierError as exc:
            raise self._bad(cmd, line, exc) from exc

    def iccid(self) -> str:
        """The ICCID of the SIM's enabled profile, read the dialect's way."""
        d = self.dialect
        lines = self._ask(d.iccid_command, prefix=d.iccid_prefix,
                          bare=d.iccid_bare or d.iccid_prefix is None)
        line = self._one(d.iccid_command, lines, "ICCID")
        try:
            return d.parse_iccid(lines)
        except ValueError as exc:
            raise self._bad(d.iccid_command, line, exc) from exc

    def ip_addresses(self) -> list[str]:
        """The addresses of the default PDP context (empty while it has none)."""
        d = self.dialect
        lines = self._ask(d.ip_command, prefix=d.ip_prefix)
        try:
            return d.parse_ip(lines)
        except ValueError as exc:
            raise self._bad(d.ip_command, lines[0] if lines else "", exc) from exc

    # --- network -----------------------------------------------------------------------

    def registration_status(self) -> int:
        """EPS registration ``<stat>`` (AT+CEREG?): 1 home, 5 roaming, 2 searching, ..."""
        cmd = "AT+CEREG?"
        line = self._one(cmd, self._ask(cmd, prefix="+CEREG:"), "registration status")
        values = fields(line)
        stat = small_int(values[1]) if len(values) >= 2 else None
        if stat is None or stat > 11:
            raise self._bad(cmd, line, "no <stat>")
        return stat

    def registered(self) -> bool:
        return self.registration_status() in _REGISTERED

    def wait_registered(self, timeout: float, *, interval: float = 0.5) -> None:
        """Poll until registered; :class:`ModemTimeoutError` when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            stat = self.registration_status()
            if stat in _REGISTERED:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModemTimeoutError(f"not registered after {timeout:g} s "
                                        f"(CEREG stat {stat})", command="AT+CEREG?")
            # Waiting through the link lets URCs reach their handlers meanwhile.
            self.link.poll(min(interval, remaining))

    # --- SIM -----------------------------------------------------------------------

    def sim_present(self) -> bool:
        """Whether a SIM is in the slot (AT+CPIN?); CME 10 means none."""
        cmd = "AT+CPIN?"
        try:
            lines = self._ask(cmd, prefix="+CPIN:")
        except CmeError as exc:
            if exc.code == CME_SIM_NOT_INSERTED:
                return False
            raise
        line = self._one(cmd, lines, "SIM state")
        value = self._value(line, "+CPIN:").upper()
        if value in _CARD_PRESENT:
            return True
        if value in ("NOT INSERTED", "NOT READY", "SIM REMOVED"):
            return False
        raise self._bad(cmd, line, "unknown SIM state")

    @staticmethod
    def _check_apdu(apdu: bytes) -> None:
        if not 4 <= len(apdu) <= MAX_APDU:
            raise ValueError(f"a command APDU is 4 to {MAX_APDU} bytes, got {len(apdu)}")

    def _hex_answer(self, cmd: str, lines: list[str]) -> bytes:
        line = self._one(cmd, lines, "response APDU")
        values = fields(line)
        if len(values) != 2:
            raise self._bad(cmd, line, "expected <length>,\"<hex>\"")
        length, data = small_int(values[0]), unquote(values[1])
        if length is None or length != len(data):
            raise self._bad(cmd, line, "length does not match the hex data")
        if not _HEX.fullmatch(data) or len(data) < 4:
            raise self._bad(cmd, line, "not a response APDU in hex")
        return bytes.fromhex(data)

    def csim(self, apdu: bytes) -> bytes:
        """Send a raw APDU with AT+CSIM; the raw response with SW (61xx is the caller's)."""
        self._check_apdu(apdu)
        cmd = f'AT+CSIM={2 * len(apdu)},"{apdu.hex().upper()}"'
        return self._hex_answer(cmd, self._ask(cmd, prefix="+CSIM:",
                                               timeout=self.apdu_timeout))

    def supports_ccho(self) -> bool:
        """Whether the modem has AT+CCHO/CGLA (probed with AT+CCHO=? once)."""
        if self._ccho is None:
            try:
                self._ask("AT+CCHO=?", prefix="+CCHO:")
            except ModemTimeoutError:
                raise
            except ModemError as exc:
                log.info("%s has no AT+CCHO: %s", self.port, exc)
                self._ccho = False
            else:
                self._ccho = True
        return self._ccho

    def open_logical_channel(self, aid: bytes) -> int:
        """AT+CCHO: the modem opens a channel and selects ``aid``; returns the session id
        (not the channel number) for :meth:`cgla`."""
        if not 5 <= len(aid) <= 16:
            raise ValueError(f"an AID is 5 to 16 bytes, got {len(aid)}")
        cmd = f'AT+CCHO="{aid.hex().upper()}"'
        try:
            # Answer styles differ (27.007: bare id; Quectel: "+CCHO: id"); take both.
            lines = self._ask(cmd, prefix="+CCHO:", bare=True, timeout=self.apdu_timeout)
        except CmeError as exc:
            if exc.code == CME_OPERATION_NOT_SUPPORTED:
                self._ccho = False
            raise
        line = self._one(cmd, lines, "session id")
        value = self._value(line, "+CCHO:")
        if not _SESSION.fullmatch(value) or int(value) > 0xFFFFFFFF:
            raise self._bad(cmd, line, "not a session id")
        self._ccho = True
        return int(value)

    def cgla(self, session: int, apdu: bytes) -> bytes:
        """Send an APDU (channel-0 CLA; the modem sets the channel) on ``session``."""
        self._check_apdu(apdu)
        cmd = f'AT+CGLA={session},{2 * len(apdu)},"{apdu.hex().upper()}"'
        return self._hex_answer(cmd, self._ask(cmd, prefix="+CGLA:",
                                               timeout=self.apdu_timeout))

    def close_logical_channel(self, session: int) -> None:
        """AT+CCHC: close the channel behind ``session``."""
        self._ask(f"AT+CCHC={session}", prefix="+CCHC:", timeout=self.apdu_timeout)

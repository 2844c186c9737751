"""``mps-agent doctor``: probe a board step by step and say what to fix.

Each check passes, fails (with a hint naming the likely cause and the fix) or is skipped
because one it depends on failed. The order follows the path first boot takes: the modem's
port, the modem itself, the card behind it (or in its reader), the ISD-R, the enabled
profile, the network, the data context's address and the broker.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import urlsplit

from agent.card import CardLink, open_card
from agent.checklist import (
    ADDRESS,
    BROKER,
    CHECKS,
    EUICC,
    ISDR,
    MODEM,
    NETWORK,
    PORT,
    PROFILE,
    SIM,
    Check,
    CheckStatus,
    DoctorReport,
    render,
    render_check,
)
from agent.errors import (
    AgentConfigError,
    AgentError,
    CardError,
    CmeError,
    ModemError,
    ModemTimeoutError,
    NoCardError,
    StatusWordError,
)
from agent.hardware import AgentSettings
from agent.modem import Modem
from agent.modem.transports import link_for_url
from mps_common.progress import Progress
from mps_esim.iso7816 import SW_OK, sw_text
from mps_esim.lpa import Es10Client, Es10Error
from mps_mqtt.client import BrokerURL, MqttError, connect, disconnect, new_client

log = logging.getLogger(__name__)


SW_NOT_FOUND = 0x6A82
_NO_CHANNEL = (0x6A81, 0x6881)

# What the manufacturer string of each dialect's modems contains.
_MAKERS = {"quectel": "quectel", "sim7600": "simcom", "sim7080": "simcom", "ublox": "u-blox"}

_STAT_HINTS = {
    0: "the modem is not searching for a network: it may be in flight mode (AT+CFUN=1) "
       "or have automatic operator selection off (AT+COPS=0)",
    2: "still searching: check the antenna and the coverage, or wait longer "
       "(--network-wait SECONDS); a first attach can take minutes",
    3: "registration denied: the subscription is not active, or roaming on this network "
       "is not allowed; ask the operator",
    4: "registration state unknown: the modem may be out of coverage",
}

_ACTIVATION = {
    "quectel": "AT+CGDCONT=1,\"IP\",\"<apn>\" sets the APN",
    "sim7600": "AT+CGDCONT=1,\"IP\",\"<apn>\" sets the APN",
    "generic": "AT+CGDCONT=1,\"IP\",\"<apn>\" sets the APN",
    "sim7080": "AT+CNACT=0,1 activates the app network (AT+CNCFG sets its APN)",
    "ublox": "AT+UPSDA=0,3 activates PSD profile 0 (AT+UPSD=0,1,\"<apn>\" sets its APN)",
}


class _Note(Protocol):
    def __call__(self, detail: str, hint: str = "") -> None: ...


class _Failed(Exception):
    """Ends a check as failed with a detail and a hint."""

    def __init__(self, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


def _errno(exc: BaseException) -> int | None:
    """The first errno in an exception's chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and isinstance(seen.errno, int):
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


class Doctor:
    """Runs the checks against the hardware and broker ``settings`` name.

    ``network_wait`` is how long to wait for network registration (0: look once);
    ``on_check`` is called with each check as soon as it is decided; ``show_progress``
    shows the wait for the network on stderr (``None``: when that is a terminal).
    """

    def __init__(self, settings: AgentSettings, *, network_wait: float = 0.0,
                 broker_timeout: float = 5.0,
                 on_check: Callable[[Check], None] | None = None,
                 show_progress: bool | None = None) -> None:
        if network_wait < 0 or broker_timeout <= 0:
            raise ValueError("network_wait must be >= 0 and broker_timeout > 0")
        self.settings = settings
        self.network_wait = network_wait
        self.broker_timeout = broker_timeout
        self.on_check = on_check or (lambda check: None)
        self.show_progress = show_progress
        self.report = DoctorReport(settings.profile.name)
        self.modem: Modem | None = None
        self.card: CardLink | None = None

    def run(self) -> DoctorReport:
        """Run every check once and return the report."""
        try:
            self._modem_checks()
            self._card_checks()
            self._network_checks()
            with self._check(BROKER) as note:
                note(self._broker())
        finally:
            if self.card is not None:
                self.card.close()
            if self.modem is not None:
                self.modem.close()
        return self.report

    # --- bookkeeping ---------------------------------------------------------------------

    def _passed(self, name: str) -> bool:
        return any(c.name == name and c.status is CheckStatus.PASS for c in self.report.checks)

    def _add(self, check: Check) -> None:
        self.report.checks.append(check)
        self.on_check(check)

    def _skip(self, name: str, because: str) -> None:
        self._add(Check(name, CheckStatus.SKIP, f"skipped: {because}"))

    @contextmanager
    def _check(self, name: str) -> Iterator[_Note]:
        """Run a check's body; it passes unless the body raises :class:`_Failed`. The
        yielded function sets the pass detail (and a hint, for a pass with a doubt)."""
        started = time.monotonic()
        outcome = {"detail": "", "hint": ""}

        def note(detail: str, hint: str = "") -> None:
            outcome.update(detail=detail, hint=hint)

        try:
            yield note
        except _Failed as exc:
            self._add(Check(name, CheckStatus.FAIL, exc.detail, exc.hint,
                            time.monotonic() - started))
        except (AgentError, OSError) as exc:
            # Unforeseen, but still this check's failure: the rest of the list goes on.
            log.debug("%s failed", name, exc_info=True)
            self._add(Check(name, CheckStatus.FAIL, str(exc) or type(exc).__name__,
                            "unexpected failure; run with --log-level debug for details",
                            time.monotonic() - started))
        else:
            self._add(Check(name, CheckStatus.PASS, outcome["detail"], outcome["hint"],
                            time.monotonic() - started))

    # --- the modem -----------------------------------------------------------------------

    def _modem_checks(self) -> None:
        s = self.settings
        port = s.modem_port
        with self._check(PORT) as note:
            try:
                link = link_for_url(port)
                link.open()
            except AgentConfigError as exc:
                raise _Failed(str(exc), "fix [modem] port in the profile or --modem: a "
                              "device path or a serial:// or socket:// URL") from exc
            except ModemError as exc:
                raise _Failed(str(exc), self._port_hint(port, exc)) from exc
            self.modem = Modem(link, s.profile.modem.dialect,
                               timeout=s.profile.modem.command_timeout)
            note(port)
        if self.modem is None:
            self._skip(MODEM, "the port does not open")
            return
        with self._check(MODEM) as note:
            try:
                self.modem.sync(timeout=s.profile.modem.command_timeout)
            except ModemTimeoutError as exc:
                self.modem.close()
                self.modem = None
                raise _Failed(f"no answer to AT on {port}", self._silent_hint(port)) from exc
            except ModemError as exc:
                self.modem.close()
                self.modem = None
                raise _Failed(f"{port}: {exc}", "the port answers but not like a modem: "
                              "is it the AT port (not NMEA or diagnostics)?") from exc
            note(*self._modem_identity(self.modem))

    def _port_hint(self, port: str, exc: ModemError) -> str:
        code = _errno(exc)
        if code == errno.ENOENT:
            hint = f"{port} does not exist: is the modem connected and powered?"
            if port == "/dev/mps-modem":
                hint += (" /dev/mps-modem is made by deploy/udev/99-mps-modem.rules for "
                         "the modules it knows; install it, or pass --modem /dev/ttyUSB2")
            else:
                hint += " Look at ls -l /dev/ttyUSB* /dev/ttyACM* /dev/serial*"
            return hint
        if code in (errno.EACCES, errno.EPERM):
            return (f"no permission for {port}: add the user to the dialout group (the "
                    f"systemd units run as mps-agent in dialout), or run as root")
        if code == errno.EBUSY or "lock" in str(exc).lower():
            return (f"{port} is in use: ModemManager or another program holds it "
                    f"(systemctl stop ModemManager, or install the udev rule)")
        if code == errno.ECONNREFUSED:
            return f"nothing listens at {port}"
        return "check the device path and that nothing else holds the port"

    def _silent_hint(self, port: str) -> str:
        hint = ("nothing answers AT: is this the AT port (Quectel and SIMCom USB modules: "
                "interface 2, /dev/ttyUSB2; ttyUSB1 is NMEA)? Is the modem still booting, "
                "or held by ModemManager?")
        if port.startswith("serial://") or "serial" in port or "ttyS" in port or \
                "ttyAMA" in port:
            hint += " On a UART check the baud rate (?baud=115200) and the wiring."
        return hint

    def _modem_identity(self, modem: Modem) -> tuple[str, str]:
        try:
            maker, model = modem.manufacturer(), modem.model()
            imei = modem.imei()
        except ModemError as exc:
            return (f"answers AT, but not AT+CGMI/CGMM/CGSN: {exc}",
                    "the modem answers but may not be fully up yet")
        hint = ""
        expected = _MAKERS.get(self.settings.profile.modem.dialect)
        if expected is not None and expected not in maker.lower():
            hint = (f"the profile's dialect is {self.settings.profile.modem.dialect!r} but "
                    f"the modem says {maker!r}: use a profile for this module")
        return f"{maker} {model}, IMEI {imei}", hint

    # --- the card ------------------------------------------------------------------------

    def _card_checks(self) -> None:
        url = self.settings.card_url
        scheme = urlsplit(url).scheme
        via_modem = scheme == "at" and self._shares_modem(url)
        if via_modem and self.modem is None:
            for name in (SIM, EUICC, ISDR, PROFILE):
                self._skip(name, "the card is reached through the modem, which does not "
                           "answer")
            return
        with self._check(SIM) as note:
            self.card = self._open_card(url, scheme, via_modem)
            note(url)
        if self.card is None:
            for name in (EUICC, ISDR, PROFILE):
                self._skip(name, "no card")
            return
        card = self.card
        with self._check(EUICC) as note:
            note(self._answers(card))
        if not self._passed(EUICC):
            for name in (ISDR, PROFILE):
                self._skip(name, "the card does not answer")
            return
        with self._check(ISDR) as note:
            note(self._eid(card))
        with self._check(PROFILE) as note:
            note(*self._iccid(card))

    def _open_card(self, url: str, scheme: str, via_modem: bool) -> CardLink:
        card: CardLink | None = None
        try:
            card = open_card(url, modem=self.modem if via_modem else None, **self._isdr())
            card.connect()
        except AgentError as exc:
            if card is not None:
                card.close()
            hint = self._no_card_hint(scheme, url) if isinstance(exc, NoCardError) \
                else "check [card] url in the profile or --card"
            raise _Failed(str(exc), hint) from exc
        return card

    @staticmethod
    def _answers(card: CardLink) -> str:
        try:
            resp = card.transmit(bytes.fromhex("00A4000C023F00"))  # SELECT MF
        except CardError as exc:
            raise _Failed(str(exc), "the card does not answer APDUs: reseat it, or "
                          "power-cycle the modem or reader") from exc
        if resp.sw != SW_OK:
            raise _Failed(f"SELECT MF answered {resp.sw:04X} ({sw_text(resp.sw)})",
                          "the card answers, but not like a UICC")
        return "answers APDUs"

    def _shares_modem(self, url: str) -> bool:
        parts = urlsplit(url)
        port = parts.netloc + parts.path
        return not port or port == self.settings.modem_port

    def _isdr(self) -> dict[str, bytes]:
        aid = self.settings.profile.card.isdr_aid
        return {"isdr_aid": aid} if aid else {}

    def _no_card_hint(self, scheme: str, url: str) -> str:
        if scheme == "at":
            return ("the modem reports no SIM (AT+CPIN? / CME 10): insert the eUICC in the "
                    "modem's SIM slot (contacts down, fully in), then power-cycle the modem; "
                    "some modules only look for a SIM at power-on")
        if scheme == "pcsc":
            return ("no card in a matching reader: is pcscd running (systemctl status "
                    "pcscd), is the reader plugged in (pcsc_scan lists it), is the card "
                    "inserted, and does ?reader= match the reader's name?")
        return f"the emulated card's state directory is missing: create it or fix {url}"

    def _eid(self, card: CardLink) -> str:
        try:
            with card.open_isdr() as isdr:
                eid = Es10Client(isdr).get_eid()
        except StatusWordError as exc:
            aid = card.isdr_aid.hex().upper()
            if exc.sw == SW_NOT_FOUND:
                raise _Failed(f"no application {aid} on the card",
                              "this card has no ISD-R: it is a plain SIM, not an eUICC "
                              "(or [card] isdr_aid is wrong)") from exc
            if exc.sw in _NO_CHANNEL:
                raise _Failed(str(exc), "no free logical channel: another program (an "
                              "LPA, ModemManager) keeps channels open; power-cycle") from exc
            raise _Failed(str(exc), "the ISD-R refused to be selected") from exc
        except CmeError as exc:
            if exc.code == 22:  # AT+CCHO: not found, the modem's word for 6A82
                raise _Failed(f"no application {card.isdr_aid.hex().upper()} on the card",
                              "this card has no ISD-R: it is a plain SIM, not an eUICC "
                              "(or [card] isdr_aid is wrong)") from exc
            raise _Failed(str(exc), "the modem could not open a logical channel to the "
                          "ISD-R") from exc
        except (Es10Error, CardError, ModemError) as exc:
            raise _Failed(str(exc), "the ISD-R could not be reached over a logical "
                          "channel") from exc
        return f"EID {eid}"

    def _iccid(self, card: CardLink) -> tuple[str, str]:
        """(detail, hint) of the profile check. No profile yet is fine when the firmware
        profile says how to download one: first boot does just that."""
        try:
            return f"ICCID {card.read_iccid()}", ""
        except StatusWordError as exc:
            if exc.sw != SW_NOT_FOUND:
                raise _Failed(str(exc), "EF.ICCID is not readable") from exc
            activation = self.settings.profile.activation
            if self.settings.activation_code is not None:
                source = "the SM-DP+ of --activation-code"
            elif activation is not None and activation.code is not None:
                source = activation.code.address
            elif activation is not None:
                source = "the eUICC's default SM-DP+"
            else:
                raise _Failed("no operational profile is enabled",
                              "no profile is enabled and the firmware profile has no "
                              "[activation] table: add code = \"LPA:1$...\" or "
                              "use_default_smdp = true") from exc
            return ("none enabled yet", f"first boot downloads the profile from {source}")
        except AgentError as exc:
            raise _Failed(str(exc), "EF.ICCID is not readable") from exc

    # --- network and broker --------------------------------------------------------------

    def _network_checks(self) -> None:
        modem = self.modem
        if modem is None:
            self._skip(NETWORK, "the modem does not answer")
            self._skip(ADDRESS, "the modem does not answer")
            return
        with self._check(NETWORK) as note:
            note(self._registration(modem))
        if not self._passed(NETWORK):
            self._skip(ADDRESS, "not registered")
            return
        with self._check(ADDRESS) as note:
            try:
                addresses = modem.ip_addresses()
            except ModemError as exc:
                raise _Failed(str(exc), self._address_hint()) from exc
            if not addresses:
                raise _Failed("the data context has no address", self._address_hint())
            note(", ".join(addresses))

    def _registration(self, modem: Modem) -> str:
        deadline = time.monotonic() + self.network_wait
        stat = -1
        # A wait of minutes shows itself on a terminal (and nowhere else).
        bar = Progress(None, label="waiting for the network", note=lambda: f"CEREG stat {stat}",
                       enabled=self.show_progress)
        try:
            while True:
                try:
                    stat = modem.registration_status()
                except CmeError as exc:
                    if exc.code == 10:
                        raise _Failed(str(exc), "no SIM: the modem cannot register") from exc
                    raise _Failed(str(exc), "AT+CEREG? failed") from exc
                except ModemError as exc:
                    raise _Failed(str(exc), "AT+CEREG? failed") from exc
                if stat in (1, 5):
                    return "home network" if stat == 1 else "roaming"
                if time.monotonic() >= deadline:
                    raise _Failed(f"not registered (CEREG stat {stat})",
                                  _STAT_HINTS.get(stat, "not registered on an EPS network"))
                bar.refresh()
                modem.link.poll(min(0.5, max(0.0, deadline - time.monotonic())))
        finally:
            bar.close()

    def _address_hint(self) -> str:
        dialect = self.settings.profile.modem.dialect
        return ("registered but without an IP address: " +
                _ACTIVATION.get(dialect, "check the APN"))

    def _broker(self) -> str:
        url = self.settings.broker_url
        try:
            broker = BrokerURL.parse(url)
        except ValueError as exc:
            raise _Failed(str(exc), "fix [broker] url in the profile or --broker") from exc
        for what, path in (("ca", broker.ca_file), ("cert", broker.cert_file),
                           ("key", broker.key_file)):
            if path is not None and not os.path.isfile(path):
                raise _Failed(f"TLS {what} file {path} does not exist",
                              f"install the operator's {what} file there, or fix "
                              f"?{what}= in the broker URL")
        client = new_client(f"mps-doctor-{uuid.uuid4().hex[:12]}")
        try:
            connect(client, broker, timeout=self.broker_timeout)
        except (MqttError, OSError) as exc:
            raise _Failed(str(exc), self._broker_hint(broker, exc)) from exc
        disconnect(client)
        return str(broker)

    @staticmethod
    def _broker_hint(broker: BrokerURL, exc: BaseException) -> str:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, socket.gaierror):
                return (f"the name {broker.host} does not resolve: check DNS (the modem's "
                        f"data connection must be the default route)")
            if isinstance(cause, ssl.SSLCertVerificationError):
                return ("the broker's certificate is not trusted: point ?ca= at the "
                        "operator's CA file")
            if isinstance(cause, ConnectionRefusedError):
                return (f"nothing listens on {broker.host}:{broker.port}: wrong port, or "
                        f"the broker is down")
            cause = cause.__cause__ or cause.__context__
        if "refused the connection" in str(exc):
            return "the broker refused us: check the credentials in the URL"
        return (f"no answer from {broker.host}:{broker.port}: a firewall, or no data "
                f"connection yet")


__all__ = [
    "ADDRESS",
    "BROKER",
    "CHECKS",
    "EUICC",
    "ISDR",
    "MODEM",
    "NETWORK",
    "PORT",
    "PROFILE",
    "SIM",
    "Check",
    "CheckStatus",
    "Doctor",
    "DoctorReport",
    "render",
    "render_check",
]

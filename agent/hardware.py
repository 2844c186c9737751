"""The device's hardware as the agent sees it (its modem and its card), the steps of first
boot, and the settings of one agent run: what ``mps-agent identity`` and ``doctor`` need,
without the outbox, MQTT and the wire messages of :mod:`agent.firstboot`."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from agent.activation import ActivationPlan, ProfileOutcome, ensure_operational_profile
from agent.card import CardLink, open_card
from agent.errors import AgentError, NoCardError, StepError
from agent.identity import Identity, read_identity
from agent.modem import Modem, open_modem
from firmware_profiles import FirmwareProfile
from mps_common.record import replace as replace_record

log = logging.getLogger(__name__)


class Step(enum.StrEnum):
    """The steps of first boot, in order."""

    PROBE = "probe hardware"
    PROFILE = "ensure an enabled profile"
    DOWNLOAD = "download a profile"
    NETWORK = "wait for network"
    IDENTITY = "read identity"
    PERSIST = "persist to outbox"
    PUBLISH = "publish"
    ACKNOWLEDGE = "wait for the registry"
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The effective settings of one agent run (profile values after overrides)."""

    profile: FirmwareProfile
    modem_port: str
    card_url: str
    broker_url: str
    state_dir: Path
    network_timeout: float
    register_timeout: float
    credentials: Path | None = None  # the credential bundle; default <state_dir>/credentials
    retry_for: float = 0.0  # seconds to keep retrying delivery (0: one attempt)
    activation_code: str | None = None  # overrides the profile's [activation] code
    smdp_ca: Path | None = None  # CA file verifying the SM-DP+ (default: the system store)

    @classmethod
    def from_profile(cls, profile: FirmwareProfile, *, modem_port: str | None = None,
                     card_url: str | None = None, broker_url: str | None = None,
                     state_dir: str | Path | None = None,
                     credentials: str | Path | None = None,
                     retry_for: float = 0.0, activation_code: str | None = None,
                     smdp_ca: str | Path | None = None) -> AgentSettings:
        return cls(
            profile=profile,
            modem_port=modem_port or profile.modem.port,
            card_url=card_url or profile.card.url,
            broker_url=broker_url or profile.broker.url,
            state_dir=Path(state_dir or profile.state_dir),
            network_timeout=profile.network_timeout,
            register_timeout=profile.broker.register_timeout,
            credentials=Path(credentials) if credentials else None,
            retry_for=retry_for,
            activation_code=activation_code or None,
            # Layered: argument or environment first, then the profile's [activation] ca.
            smdp_ca=Path(smdp_ca) if smdp_ca else (
                profile.activation.ca if profile.activation else None),
        )


class DeviceHardware:
    """The device's hardware as the agent sees it: its modem and its card."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.modem: Modem | None = None
        self.card: CardLink | None = None

    def open(self) -> DeviceHardware:
        s = self.settings
        try:
            self.modem = Modem(open_modem(s.modem_port), dialect=s.profile.modem.dialect)
            self.modem.sync()
        except AgentError as exc:
            self.close()
            raise StepError(Step.PROBE, f"modem at {s.modem_port}: {exc}") from exc
        try:
            self.card = open_card(s.card_url, modem=self.modem,
                                  **({"isdr_aid": s.profile.card.isdr_aid}
                                     if s.profile.card.isdr_aid else {}))
            self.card.connect()
        except NoCardError as exc:
            self.close()
            raise StepError(Step.PROBE, f"no card at {s.card_url}: {exc}") from exc
        except AgentError as exc:
            self.close()
            raise StepError(Step.PROBE, f"card at {s.card_url}: {exc}") from exc
        return self

    def close(self) -> None:
        if self.card is not None:
            self.card.close()
            self.card = None
        if self.modem is not None:
            self.modem.close()
            self.modem = None

    def ensure_profile(self, *, on_download: Callable[[], None] | None = None
                       ) -> ProfileOutcome:
        """Make sure an operational profile is enabled: when the eUICC has none, download
        one (the settings' activation code, the firmware profile's ``[activation]``, or the
        eUICC's default SM-DP+) and enable it. ``on_download`` is called when a download
        starts; a failed download raises :class:`StepError` naming ``download a profile``
        and the download's own step."""
        if self.card is None:
            raise StepError(Step.PROFILE, "the card is not open")
        s = self.settings
        downloading = False

        def starting() -> None:
            nonlocal downloading
            downloading = True
            if on_download is not None:
                on_download()

        try:
            plan = replace_record(
                ActivationPlan.from_config(s.profile.activation, code=s.activation_code,
                                           ca_file=s.smdp_ca),
                imei=self.modem.imei() if self.modem is not None else None,
                capabilities=s.profile.capabilities)
            outcome = ensure_operational_profile(self.card, plan, on_download=starting)
        except AgentError as exc:
            raise StepError(Step.DOWNLOAD if downloading else Step.PROFILE, str(exc)) from exc
        if outcome.action == "downloaded":
            log.info("first boot: profile %s downloaded and enabled", outcome.iccid)
        return outcome

    def wait_network(self) -> None:
        if self.modem is None:
            raise StepError(Step.NETWORK, "the modem is not open")
        try:
            self.modem.wait_registered(self.settings.network_timeout)
        except AgentError as exc:
            raise StepError(Step.NETWORK, str(exc)) from exc

    def identity(self) -> Identity:
        if self.modem is None or self.card is None:
            raise StepError(Step.IDENTITY, "hardware is not open")
        return read_identity(self.modem, self.card)

    def __enter__(self) -> DeviceHardware:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

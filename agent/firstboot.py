"""First boot as an explicit state machine.

probe hardware -> ensure an enabled profile [-> download a profile] -> wait for network ->
read identity -> persist to the outbox -> publish -> wait for the registry's
acknowledgement -> delivered. The download happens only when the eUICC has no operational
profile enabled (see :mod:`agent.activation`).
Each step is named; a failure raises StepError with that name. The outbox makes a crash at
any step resume with the same message rather than register twice.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from agent.activation import (
    ActivationPlan,
    ProfileOutcome,
    ensure_operational_profile,
)
from agent.card import CardLink, open_card
from agent.credentials import DeviceCredentials, find_credentials
from agent.errors import AgentError, NoCardError, StepError
from agent.identity import Identity, read_identity
from agent.modem import Modem, open_modem
from agent.outbox import Outbox
from agent.publisher import Delivery, Publisher
from firmware_profiles import FirmwareProfile
from mps_common.record import replace as replace_record
from mps_mqtt.client import MqttError
from mps_wire.errors import ErrorCode
from mps_wire.messages import DeviceInfo, Reply

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


@dataclass
class Outcome:
    """What a first boot achieved."""

    identity: Identity
    info: DeviceInfo
    reply: Reply
    timings: dict[str, float] = field(default_factory=dict)


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


def now_ms() -> int:
    return int(time.time() * 1000)


class FirstBoot:
    """Runs first boot once; ``on_step`` is told each step as it starts."""

    def __init__(self, settings: AgentSettings, *,
                 on_step: Callable[[Step], None] | None = None) -> None:
        self.settings = settings
        self.outbox = Outbox(settings.state_dir / "outbox.json")
        self.delivered: DeviceInfo | None = None
        self.on_step = on_step or (lambda step: log.info("first boot: %s", step))

    def run(self) -> Outcome:
        timings: dict[str, float] = {}
        t0 = time.monotonic()

        def enter(step: Step) -> None:
            timings[step.value] = time.monotonic() - t0
            self.on_step(step)

        enter(Step.PROBE)
        with DeviceHardware(self.settings) as device:
            enter(Step.PROFILE)
            device.ensure_profile(on_download=lambda: enter(Step.DOWNLOAD))
            enter(Step.NETWORK)
            device.wait_network()
            enter(Step.IDENTITY)
            identity = device.identity()
        enter(Step.PERSIST)
        info = self.stage(identity)
        enter(Step.PUBLISH)
        reply = self.publish(info)
        enter(Step.DELIVERED)
        timings["total"] = time.monotonic() - t0
        return Outcome(identity=identity, info=info, reply=reply, timings=timings)

    def _info(self, identity: Identity, seq: int) -> DeviceInfo:
        return identity.device_info(capabilities=self.settings.profile.capabilities,
                                    profile=self.settings.profile.name, seq=seq, ts=now_ms())

    def stage(self, identity: Identity) -> DeviceInfo:
        try:
            self.outbox.load()
            return self.outbox.stage(lambda seq: self._info(identity, seq))
        except (AgentError, OSError) as exc:
            raise StepError(Step.PERSIST, str(exc)) from exc

    def is_delivered(self, identity: Identity) -> bool:
        """True when the registry acknowledged this identity and nothing is pending
        (then there is nothing to stage or publish)."""
        try:
            self.outbox.load()
        except (AgentError, OSError) as exc:
            raise StepError(Step.PERSIST, str(exc)) from exc
        probe = self._info(identity, 0)
        return self.outbox.pending is None and self.outbox.is_delivered(probe)

    def credentials(self) -> DeviceCredentials | None:
        """The device's credential bundle, if it holds one (see :mod:`agent.credentials`)."""
        return find_credentials(self.settings.state_dir, self.settings.credentials)

    def publisher(self, eid: str, *, presence: bool = False) -> Publisher:
        """A publisher for the card ``eid`` with the device's credentials, if any."""
        s = self.settings
        credentials = self.credentials()
        if credentials is None:
            return Publisher(s.broker_url, eid, prefix=s.profile.broker.prefix,
                             presence=presence)
        credentials.check_device(eid)
        return Publisher(credentials.broker_url(s.broker_url), eid,
                         prefix=s.profile.broker.prefix, presence=presence,
                         signer=credentials.signer)

    def publish(self, info: DeviceInfo) -> Reply:
        s = self.settings
        try:
            pub = self.publisher(info.device_id)
        except AgentError as exc:
            raise StepError(Step.PUBLISH, str(exc)) from exc
        delivery = Delivery(pub, retry_for=s.retry_for)
        self.on_step(Step.ACKNOWLEDGE)
        try:
            reply = delivery.deliver(info, timeout=s.register_timeout)
            last_seq = reply.body.get("last_seq")
            if reply.code is ErrorCode.REPLAY and isinstance(last_seq, int) and last_seq >= 0:
                # The registry holds a newer number than this outbox (restored from an old
                # copy, or wiped): continue above it, once.
                log.warning("the registry last accepted seq %d; continuing above it",
                            last_seq)
                self.outbox.resume_after(last_seq)
                stale = info
                info = self.outbox.stage(lambda seq: replace(stale, seq=seq, ts=now_ms()))
                reply = delivery.deliver(info, timeout=s.register_timeout)
        except MqttError as exc:
            raise StepError(Step.PUBLISH, str(exc)) from exc
        except OSError as exc:
            raise StepError(Step.PERSIST, str(exc)) from exc
        finally:
            pub.close()
        if not reply.is_ok:
            raise StepError(Step.ACKNOWLEDGE, f"registry refused the registration: "
                            f"{reply.code} - {reply.message}")
        self.outbox.mark_delivered(info)
        self.delivered = info
        return reply

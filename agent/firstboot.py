"""First boot as an explicit state machine.

probe hardware -> ensure an enabled profile [-> download a profile] -> wait for network ->
read identity -> persist to the outbox -> publish -> wait for the registry's
acknowledgement -> delivered. The download happens only when the eUICC has no operational
profile enabled (see :mod:`agent.activation`).
Each step is named; a failure raises StepError with that name. The outbox makes a crash at
any step resume with the same message rather than register twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agent.credentials import DeviceCredentials, find_credentials
from agent.errors import AgentError, StepError
from agent.hardware import AgentSettings, DeviceHardware, Step
from agent.identity import Identity
from agent.outbox import Outbox
from agent.publisher import Delivery, Publisher
from mps_mqtt.client import MqttError
from mps_wire.errors import ErrorCode
from mps_wire.messages import DeviceInfo, Reply

__all__ = ["AgentSettings", "DeviceHardware", "FirstBoot", "Outcome", "Step", "now_ms"]
# AgentSettings, DeviceHardware and Step live in agent.hardware; re-exported here.

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a first boot achieved."""

    identity: Identity
    info: DeviceInfo
    reply: Reply
    timings: dict[str, float] = field(default_factory=dict)


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

"""The agent as a service: stays connected with its online/offline state and republishes
its device info whenever its identity changes (new IP, new profile, swapped SIM)."""

from __future__ import annotations

import logging
import threading

from agent.errors import AgentError
from agent.firstboot import Device, FirstBoot, Settings, Step
from agent.identity import StepError
from agent.publisher import Publisher
from mps_wire.mqtt import MqttError

log = logging.getLogger(__name__)


class AgentDaemon:
    """Watches the hardware every ``interval`` seconds until ``stop`` is set."""

    def __init__(self, settings: Settings, *, interval: float = 30.0,
                 stop: threading.Event | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.settings = settings
        self.interval = interval
        self.stop = stop or threading.Event()
        self.boot = FirstBoot(settings)
        self.published = 0

    def run(self, device_id: str) -> None:
        """Serve until stopped. ``device_id`` is the EID found by first boot."""
        s = self.settings
        with Device(s) as device, Publisher(s.broker_url, device_id,
                                            prefix=s.profile.broker.prefix,
                                            presence=True) as pub:
            while not self.stop.wait(self.interval):
                try:
                    identity = device.identity()
                except StepError as exc:
                    log.warning("identity not readable this round: %s", exc)
                    continue
                info = self.boot.stage(identity)
                if self.boot.outbox.is_delivered(info):
                    continue
                log.info("identity changed; republishing as seq %d", info.seq)
                try:
                    reply = pub.register(info, timeout=s.register_timeout)
                except (MqttError, AgentError) as exc:
                    # The outbox keeps the message; the next round publishes it again.
                    log.warning("%s failed: %s", Step.PUBLISH, exc)
                    continue
                if reply.is_ok:
                    self.boot.outbox.mark_delivered(info)
                    self.published += 1
                else:
                    log.error("registry refused the update: %s - %s", reply.code, reply.message)

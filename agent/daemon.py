"""The agent as a service: stays connected with its online/offline state and republishes
its device info whenever its identity changes (new IP, new profile, swapped SIM). On an
eUICC associated with an eIM (SGP.32) each round also asks the eIM for work and runs it
(eUICC packages, downloads), so a PSMO's profile change is published in the same round.

While the broker is unreachable or the registry does not answer, the undelivered message
stays in the outbox and is published again with exponential backoff and jitter (sooner
than the next identity check) until the registry acknowledges it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator

from agent.errors import AgentError
from agent.firstboot import AgentSettings, DeviceHardware, FirstBoot, Step
from agent.orders import OrderRunner
from agent.publisher import Backoff, Publisher
from agent.watch import DEFAULT_HARDWARE_TIMEOUT, HardwareWatch
from mps_esim.errors import EsimError
from mps_mqtt.client import MqttError
from mps_wire.errors import ErrorCode
from mps_wire.messages import DeviceInfo

log = logging.getLogger(__name__)


class AgentDaemon:
    """Watches the hardware every ``interval`` seconds until ``stop`` is set."""

    def __init__(self, settings: AgentSettings, *, interval: float = 30.0,
                 stop: threading.Event | None = None, backoff: Backoff | None = None,
                 hardware_timeout: float = DEFAULT_HARDWARE_TIMEOUT,
                 orders: OrderRunner | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if not hardware_timeout > 0:
            raise ValueError("hardware_timeout must be positive")
        self.hardware_timeout = hardware_timeout
        self.orders = orders
        self.settings = settings
        self.interval = interval
        self.stop = stop or threading.Event()
        self.boot = FirstBoot(settings)
        self.backoff = backoff or Backoff(maximum=max(interval, 1.0))
        self.published = 0
        self.failures = 0

    def run(self, device_id: str) -> None:
        """Serve until stopped. ``device_id`` is the EID found by first boot. Raises
        HardwareUnavailableError after ``hardware_timeout`` seconds without a modem."""
        with DeviceHardware(self.settings) as device:
            pub = self.boot.publisher(device_id, presence=True)
            if self.orders is not None:
                self.orders.attach(pub, device)
            try:
                self._serve(device, pub)
            finally:
                pub.close()

    def _serve(self, device: DeviceHardware, pub: Publisher) -> None:
        watch = HardwareWatch(device, timeout=self.hardware_timeout)
        delays = self.backoff.delays(random.Random())
        wait = 0.0  # the first round opens the connection at once
        while not self.stop.wait(wait):
            wait = self.interval
            if not pub.is_open:
                try:
                    pub.open()
                except MqttError as exc:
                    wait = self._failed(f"broker unreachable: {exc}", delays)
                    continue
            identity = watch.identity()
            if identity is None:
                continue
            self._eim_round(device)
            if self.orders is not None:
                self.orders.run_pending()
            if self.boot.is_delivered(identity):
                continue
            info = self.boot.stage(identity)
            log.info("identity changed or undelivered; publishing seq %d", info.seq)
            try:
                delivered = self._publish(pub, info)
            except (MqttError, AgentError, OSError) as exc:
                # The outbox keeps the message; it goes out again after a backoff.
                wait = self._failed(f"{Step.PUBLISH} failed: {exc}", delays)
                continue
            if delivered:
                self.published += 1
                self.failures = 0
                delays = self.backoff.delays(random.Random())

    def _eim_round(self, device: DeviceHardware) -> None:
        """The eIM's work for this eUICC; a failure is logged, the next round retries."""
        if device.card is None:
            return
        from agent.activation import ActivationPlan
        from agent.ipa import daemon_round

        s = self.settings
        plan = ActivationPlan.from_config(s.profile.activation, ca_file=s.smdp_ca)
        try:
            for outcome in daemon_round(device.card, plan):
                log.info("eIM round: %s %s", outcome.kind, outcome.detail)
        except (AgentError, EsimError, OSError) as exc:
            log.warning("eIM round failed: %s", exc)

    def _failed(self, why: str, delays: Iterator[float]) -> float:
        self.failures += 1
        delay = min(self.interval, next(delays))
        log.warning("%s; trying again in %.1f s", why, delay)
        return delay

    def _publish(self, pub: Publisher, info: DeviceInfo) -> bool:
        reply = pub.register(info, timeout=self.settings.register_timeout)
        last_seq = reply.body.get("last_seq")
        if reply.code is ErrorCode.REPLAY and isinstance(last_seq, int) and last_seq >= 0:
            self.boot.outbox.resume_after(last_seq)
            log.warning("the registry last accepted seq %d; continuing above it", last_seq)
            return False
        if reply.code is ErrorCode.INTERNAL:
            raise AgentError(f"the registry failed: {reply.message}")
        if reply.is_ok:
            self.boot.outbox.mark_delivered(info)
            return True
        log.error("registry refused the update: %s - %s", reply.code, reply.message)
        return False

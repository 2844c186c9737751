"""The daemon's watch over its hardware: a modem port that disappears (a USB modem reset,
an unplugged cable: reads fail with an I/O error) is closed and opened again each round;
after ``timeout`` seconds without a working modem the daemon gives up, so that its
service manager (systemd's ``Restart=on-failure``) starts it afresh. Each condition is
logged once when it begins and once when it ends, not every round."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agent.errors import AgentError, StepError
from agent.hardware import DeviceHardware
from agent.identity import Identity

log = logging.getLogger(__name__)

DEFAULT_HARDWARE_TIMEOUT = 300.0
"""Seconds the daemon goes on without a working modem before it exits (exit 3)."""


class HardwareUnavailableError(AgentError):
    """The modem (or the card behind it) stayed unreadable for the whole timeout."""


class HardwareWatch:
    """Reads the identity each round, reopening the hardware after a failure."""

    def __init__(self, device: DeviceHardware, *, timeout: float = DEFAULT_HARDWARE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not timeout > 0:
            raise ValueError(f"the hardware timeout must be positive, not {timeout!r}")
        self.device = device
        self.timeout = timeout
        self.clock = clock
        self.down_since: float | None = None  # when the current outage began
        self.reopened = 0

    def identity(self) -> Identity | None:
        """This round's identity, None while the hardware is unavailable; raises
        HardwareUnavailableError once it has been for longer than the timeout."""
        try:
            if self.device.modem is None:
                self.device.open()
                self.reopened += 1
            identity = self.device.identity()
        except StepError as exc:
            self._failed(exc)
            return None
        if self.down_since is not None:
            log.warning("the modem is back after %.1f s (reopened)",
                        self.clock() - self.down_since)
            self.down_since = None
        return identity

    def _failed(self, exc: StepError) -> None:
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            log.warning("hardware not readable: %s; reopening the modem each round, giving "
                        "up after %g s", exc, self.timeout)
        else:
            log.debug("hardware still not readable: %s", exc)
        # Whatever was open is stale (a vanished tty stays broken): open afresh next round.
        self.device.close()
        if now - self.down_since >= self.timeout:
            raise HardwareUnavailableError(
                f"no working modem for {now - self.down_since:.0f} s (last error: {exc})")

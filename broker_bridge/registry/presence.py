"""Presence: each device's retained online/offline state (and its Last Will), recorded
per device; the apps whose view shows presence get a ``device-updated`` event with the
change ``presence`` (see :mod:`.sight`)."""

from __future__ import annotations

import logging

from broker_bridge.choices import Presence
from broker_bridge.registry import events
from broker_bridge.registry.core import RegistryCore
from broker_bridge.registry.work import Effects
from mps_wire.codec import decode
from mps_wire.errors import WireError
from mps_wire.messages import ChangeKind, EventKind

log = logging.getLogger(__name__)

_STATES = {"online": True, "offline": False}


def parse_state(payload: bytes) -> bool:
    """Whether a ``device-state`` payload says online; WireError when it is malformed."""
    body = decode(payload)
    state = body.get("state") if isinstance(body, dict) else None
    if state not in _STATES:
        raise WireError("a device state must be a map with state online or offline")
    return _STATES[str(state)]


class PresenceRules(RegistryCore):
    """The devices' online/offline states."""

    def handle_state(self, eid: str, payload: bytes) -> Effects:
        """Record the state a device published on its state topic (an empty payload is a
        retained state being cleared: nothing to record)."""
        if not payload:
            return Effects()
        try:
            online = parse_state(payload)
        except WireError as exc:
            log.info("device %s: ignoring a malformed state: %s", eid, exc)
            return Effects()
        return self.record_presence(eid, online)

    def record_presence(self, eid: str, online: bool) -> Effects:
        """Record that device ``eid`` is online (or not) as of now; the apps shown its
        presence are told of a change. Unknown devices are ignored (a device's state may
        arrive before its first registration: its next state counts)."""
        with self._work() as work:
            device = self.store.device(eid)
            if device is None:
                return work.effects
            if self.store.put_presence(Presence(eid, device.contract_id, online, work.now)):
                events.announce(work, device.contract_id, EventKind.DEVICE_UPDATED, device,
                                changes=(ChangeKind.PRESENCE,))
        return work.effects

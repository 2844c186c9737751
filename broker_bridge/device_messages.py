"""What devices send besides registrations: their online/offline state, the results of
eSIM orders, and their own requests for profile operations (see :mod:`mps_wire.orders`).

Each becomes an :class:`~broker_bridge.registry.Outcome` like any request (devices send
them without a Response Topic, so nothing is answered); what they change commits with
the bridge's group, and the events they cause are published after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from broker_bridge.registry import Outcome, Registry, refusal
from broker_bridge.registry.portal_views import PortalError
from mps_wire.codec import decode
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import Reply, Status
from mps_wire.orders import EsimDeviceAsk, EsimOrderResult

log = logging.getLogger(__name__)

#: Topic leaves under a device's namespace the bridge serves besides ``register``.
DEVICE_LEAVES = ("state", "order-results", "esim-requests")


class DeviceMessages:
    """Handlers of the device topics of :data:`DEVICE_LEAVES` over ``registry``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.handlers: dict[str, Callable[[str, bytes], Outcome]] = {
            "state": self.state, "order-results": self.order_result,
            "esim-requests": self.esim_request}

    def state(self, eid: str, payload: bytes) -> Outcome:
        """A device's retained online/offline state (or its Last Will)."""
        return Outcome(Reply.ok(), self.registry.handle_state(eid, payload))

    def order_result(self, eid: str, payload: bytes) -> Outcome:
        """A device's report of an eSIM order."""
        try:
            result = EsimOrderResult.from_wire(decode(payload))
        except (WireError, AttributeError) as exc:
            return self._malformed(eid, "esim-result", exc)
        if not self.registry.order_result(eid, result):
            return Outcome(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                   f"no order {result.op} was sent to {eid}"))
        log.info("device %s: order %s %s%s", eid, result.op, result.outcome.value,
                 f" ({result.reason})" if result.reason else "")
        return Outcome(Reply.ok(op=result.op))

    def esim_request(self, eid: str, payload: bytes) -> Outcome:
        """A device's own LPA asking for a profile operation: it waits for the user."""
        try:
            ask = EsimDeviceAsk.from_wire(decode(payload))
        except (WireError, AttributeError) as exc:
            return self._malformed(eid, "esim-request", exc)
        try:
            request = self.registry.request_esim(eid, ask.action.value, ask.iccid,
                                                 actor=f"device:{eid}")
        except PortalError as exc:
            return Outcome(refusal(Status.ERROR, ErrorCode.NOT_FOUND, str(exc), exc.reason))
        return Outcome(Reply.ok(request=request.id, state=request.state.value))

    def _malformed(self, eid: str, action: str, exc: Exception) -> Outcome:
        message = exc.message if isinstance(exc, WireError) else "not a map"
        code = exc.code if isinstance(exc, WireError) else ErrorCode.BAD_REQUEST
        return self.registry.refuse(f"device:{eid}", action,
                                    refusal(Status.ERROR, code, message), subject=eid)

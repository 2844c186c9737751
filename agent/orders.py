"""eSIM orders from the registry: profile operations the user approved, run on the card.

An order arrives on the device's orders topic as a COSE_Sign1 signed by the registry's
order key (:mod:`mps_wire.orders`). It is run only when all of these hold, and refused
with one log line naming why otherwise (nothing is done on the card then):

* the signature verifies with the registry's public key from the agent's settings;
* it names this device's EID;
* it has not expired (``exp``, ms since the epoch);
* its counter is above the last one this device ran, which is kept in the state
  directory (written before the card is touched, so a crash cannot run it twice).

The result (done, failed with the card's reason, refused) goes back on the device's
order-results topic; a repeat of the order last run is ignored quietly.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from agent.card import CardLink
from agent.errors import AgentConfigError, AgentError
from agent.publisher import Publisher
from mps_common.durable import atomic_write
from mps_esim.errors import EsimError
from mps_esim.lpa import Es10Client
from mps_wire import codec
from mps_wire.cose import CoseError, load_public_key
from mps_wire.errors import WireError
from mps_wire.orders import EsimOrder, EsimOrderResult, OrderAction, OrderOutcome, open_order
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

STATE_FILE = "orders.json"
KEY_FILE = "registry-key.pem"
#: Orders kept waiting for the next round at most (more are dropped, and logged).
MAX_QUEUED = 16


class OrderRefused(AgentError):
    """An order the agent will not run; ``order`` when its signature verified."""

    def __init__(self, message: str, order: EsimOrder | None = None) -> None:
        super().__init__(message)
        self.order = order


class OrderRepeat(OrderRefused):
    """The order this device ran last, again (a retained message, a redelivery)."""


def load_registry_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    """The registry's order key (PEM or DER); AgentConfigError when it is not one."""
    try:
        return load_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise AgentConfigError(f"registry key {path}: {exc}") from exc


class CardHolder(Protocol):
    """What holds the device's card (the daemon's hardware): ``card`` while it is open."""

    card: CardLink | None


@dataclass(frozen=True, slots=True)
class _Ran:
    counter: int
    op: str


class OrderRunner:
    """Checks and runs the orders for one device (EID ``eid``)."""

    def __init__(self, key: ec.EllipticCurvePublicKey, eid: str, state_dir: str | Path, *,
                 clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.key = key
        self.eid = eid
        self.state_file = Path(state_dir) / STATE_FILE
        self.clock = clock
        self.ran = 0
        self.refused = 0
        self._queue: list[bytes] = []
        self._lock = threading.Lock()
        self._pub: Publisher | None = None
        self._device: CardHolder | None = None

    def attach(self, pub: Publisher, device: CardHolder) -> None:
        """Receive the device's orders through ``pub``; run them on ``device``'s card."""
        self._pub, self._device = pub, device
        pub.listen(pub.topics.device_orders(self.eid), self.received)

    def received(self, payload: bytes) -> None:
        """Queue an order (MQTT thread); it is run in the daemon's next round."""
        if not payload:
            return  # a retained order being cleared
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                log.warning("eSIM order dropped: %d orders wait already", MAX_QUEUED)
                return
            self._queue.append(payload)

    def _last(self) -> _Ran:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return _Ran(int(data["counter"]), str(data["op"]))
        except FileNotFoundError:
            return _Ran(0, "")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged counter must not reopen old orders: refuse until repaired.
            raise OrderRefused(f"the order counter in {self.state_file} is unreadable "
                               f"({exc}); remove it only after checking") from exc

    def check(self, payload: bytes) -> EsimOrder:
        """The order in ``payload`` if this device may run it now; raises OrderRefused."""
        try:
            order = open_order(payload, self.key)
        except CoseError as exc:
            raise OrderRefused(f"bad signature or not a signed order ({exc})") from exc
        except WireError as exc:
            raise OrderRefused(f"malformed order ({exc})") from exc
        if order.eid != self.eid:
            raise OrderRefused(f"order {order.op} is for EID {order.eid}, not this device "
                               f"({self.eid})", order)
        last = self._last()
        if order.op == last.op and order.counter == last.counter:
            raise OrderRepeat(f"order {order.op} was run already", order)
        if order.counter <= last.counter:
            raise OrderRefused(f"order {order.op} replayed: counter {order.counter} is not "
                               f"above {last.counter}", order)
        if order.exp <= self.clock():
            raise OrderRefused(f"order {order.op} expired", order)
        return order

    def run_pending(self) -> int:
        """Check and run every queued order; how many were run on the card."""
        with self._lock:
            queued, self._queue = self._queue, []
        ran = 0
        for payload in queued:
            try:
                order = self.check(payload)
            except OrderRepeat as exc:
                log.info("eSIM order ignored: %s", exc)
                continue
            except OrderRefused as exc:
                self.refused += 1
                log.warning("eSIM order refused, nothing done: %s", exc)
                if exc.order is not None:
                    self._report(exc.order, OrderOutcome.REFUSED, str(exc))
                continue
            # The counter first: an order is never run twice, whatever happens next.
            atomic_write(self.state_file, json.dumps(
                {"counter": order.counter, "op": order.op}).encode())
            outcome, reason = self._carry_out(order)
            ran += outcome is OrderOutcome.DONE
            self._report(order, outcome, reason)
        self.ran += ran
        return ran

    def _carry_out(self, order: EsimOrder) -> tuple[OrderOutcome, str | None]:
        card = self._device.card if self._device is not None else None
        if card is None:
            return OrderOutcome.FAILED, "the card is not open"
        try:
            with card.open_isdr() as isdr:
                client = Es10Client(isdr)
                if order.action is OrderAction.DISABLE:
                    client.disable_profile(iccid=order.iccid)
                elif order.action is OrderAction.ENABLE:
                    client.enable_profile(iccid=order.iccid)
                else:
                    client.delete_profile(iccid=order.iccid)
        except (EsimError, AgentError, OSError) as exc:
            log.warning("eSIM order %s (%s %s) failed on the card: %s", order.op,
                        order.action.value, order.iccid, exc)
            return OrderOutcome.FAILED, str(exc)[:200]
        log.info("eSIM order %s: %s %s done", order.op, order.action.value, order.iccid)
        return OrderOutcome.DONE, None

    def _report(self, order: EsimOrder, outcome: OrderOutcome, reason: str | None) -> None:
        if self._pub is None:
            return
        result = EsimOrderResult(order.op, self.eid, outcome,
                                 None if reason is None else reason[:200])
        topic = Topics(self._pub.topics.prefix).device_order_results(self.eid)
        if not self._pub.send(topic, codec.encode(result.to_wire())):
            log.warning("the result of order %s could not be sent", order.op)

"""eSIM profile operations carried out with the user's word: what a device asks for, the
order the registry signs once the user approved, and the device's report of the result.

An order is a COSE_Sign1 (:mod:`mps_wire.cose`, ES256, external AAD :data:`ORDER_AAD`)
by the registry's order key over an ``esim-order`` map: bound to one EID, numbered by a
per-device ``counter`` the device keeps (a number not above the last one run is a replay)
and valid until ``exp``; ``op`` names the request, unique per order.

    {prefix}/devices/{eid}/orders          registry -> device (QoS 1): signed esim-order
    {prefix}/devices/{eid}/order-results   device -> registry (QoS 1): esim-order-result
    {prefix}/devices/{eid}/esim-requests   device -> registry (QoS 1): esim-device-ask
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from mps_wire.codec import decode, encode
from mps_wire.cose import decode_sign1, sign1, verify1
from mps_wire.errors import ValidationError
from mps_wire.fields import Choice, Text, UInt, Version, WireField, WireMessage, WireTable, optional
from mps_wire.messages import EID, ICCID
from mps_wire.requests import REF_ID, OrderAction

__all__ = ["ORDER_AAD", "EsimDeviceAsk", "EsimOrder", "EsimOrderResult", "OrderAction",
           "OrderOutcome", "open_order", "sign_order"]

ORDER_VERSION = 1
ORDER_AAD = b"mps/v1 esim-order"
"""External additional data of a signed order: the order key signs orders and nothing
else that could be passed off as one."""


class OrderOutcome(enum.StrEnum):
    """What became of an order on the device."""

    DONE = "done"  # the card carried it out
    FAILED = "failed"  # the card refused it (``reason`` names its error)
    REFUSED = "refused"  # the agent refused the order itself (signature, replay, ...)


@dataclass(frozen=True, slots=True)
class EsimOrder(WireMessage):
    """An approved profile operation for the eUICC ``eid`` (``esim-order``)."""

    op: str
    eid: str
    action: OrderAction
    iccid: str
    counter: int
    exp: int  # ms since the epoch

    wire = WireTable(
        WireField("v", Version(ORDER_VERSION, "esim order"), stored=False),
        WireField("op", REF_ID),
        WireField("eid", EID), WireField("action", Choice(OrderAction)),
        WireField("iccid", ICCID), WireField("counter", UInt()), WireField("exp", UInt()),
        rule="esim-order", consts={"v": ORDER_VERSION}, closed=True)


@dataclass(frozen=True, slots=True)
class EsimOrderResult(WireMessage):
    """The device's report of an order (``esim-order-result``)."""

    op: str
    eid: str
    outcome: OrderOutcome
    reason: str | None = None

    wire = WireTable(
        WireField("v", Version(ORDER_VERSION, "esim order result"), stored=False),
        WireField("op", REF_ID),
        WireField("eid", EID), WireField("outcome", Choice(OrderOutcome)),
        optional("reason", Text(max_len=200)),
        rule="esim-order-result", consts={"v": ORDER_VERSION})


@dataclass(frozen=True, slots=True)
class EsimDeviceAsk(WireMessage):
    """A device asking for a profile operation on its own eUICC; carried out only after
    the user approved it (``esim-device-ask``)."""

    action: OrderAction
    iccid: str

    wire = WireTable(
        WireField("v", Version(ORDER_VERSION, "esim request"), stored=False),
        WireField("action", Choice(OrderAction)), WireField("iccid", ICCID),
        rule="esim-device-ask", consts={"v": ORDER_VERSION})


def sign_order(order: EsimOrder, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The order as sent: a COSE_Sign1 over its CBOR by the registry's order key."""
    return sign1(encode(order.to_wire()), key, external_aad=ORDER_AAD)


def open_order(data: bytes, key: ec.EllipticCurvePublicKey) -> EsimOrder:
    """The order in a signed message, once its signature verifies with ``key``; raises
    CoseError for a bad signature, a WireError for a malformed order."""
    message = decode_sign1(data)
    payload = verify1(message, key, external_aad=ORDER_AAD)
    body = decode(payload)
    if not isinstance(body, dict):
        raise ValidationError("an esim order must be a map")
    return EsimOrder.from_wire(body)

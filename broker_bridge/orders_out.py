"""Sending approved eSIM orders to their devices (see :mod:`broker_bridge.registry.esim`):
each signed order goes out with QoS 1, retained, on the device's orders topic (a device
offline now gets it when it subscribes again), and is noted as sent once the broker
confirmed it; an order the broker did not confirm is sent again next round. A device runs
an order at most once (its counter), so a repeat changes nothing."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from broker_bridge.registry import Registry
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to confirm one order.
CONFIRM_SECONDS = 2.0


def send_orders(client: mqtt.Client, topics: Topics, registry: Registry) -> int:
    """Expire unanswered requests, then publish every approved order not yet sent; how
    many went out."""
    registry.expire_esim_requests()
    sent = 0
    for request, signed in registry.orders_to_send():
        info = client.publish(topics.device_orders(request.eid), signed, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("order %s for %s not sent: %s", request.id, request.eid,
                        mqtt.error_string(info.rc))
            continue
        try:
            info.wait_for_publish(CONFIRM_SECONDS)
        except RuntimeError as exc:
            log.warning("order %s for %s not confirmed: %s", request.id, request.eid, exc)
            continue
        if info.is_published() and registry.order_sent(request):
            log.info("sent %s order %s to %s", request.action.value, request.id, request.eid)
            sent += 1
    _clear_finished(client, topics, registry)
    return sent


def _clear_finished(client: mqtt.Client, topics: Topics, registry: Registry) -> None:
    """Take finished orders off the broker (an empty retained message), so that a device
    subscribing again is not handed an order it ran already."""
    for request in registry.orders_to_clear():
        info = client.publish(topics.device_orders(request.eid), b"", qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            continue
        try:
            info.wait_for_publish(CONFIRM_SECONDS)
        except RuntimeError:
            continue
        if info.is_published():
            registry.order_cleared(request)

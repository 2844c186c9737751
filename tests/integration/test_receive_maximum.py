"""A client that acknowledges late (the bridge: once the audit entry is committed) tells
the broker how many messages it takes unacknowledged: MQTT v5 section 3.1.2.11.3, Receive
Maximum. Without it Mosquitto sends 20, and one wait for the disk holds up the rest."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from broker_bridge.service import RECEIVE_MAXIMUM
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client, subscribe
from mps_testbed.stack import Mosquitto


def _unacknowledged(url: BrokerURL, receive_maximum: int | None, sent: int) -> int:
    """How many of ``sent`` QoS 1 messages a client that acknowledges none receives."""
    topic = f"test/rm/{uuid.uuid4().hex[:8]}"
    got: list[int] = []
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            got.append(msg.mid)

    slow = new_client(manual_ack=True)
    slow.on_message = on_message
    connect(slow, url, receive_maximum=receive_maximum)
    sender = new_client()
    connect(sender, url)
    try:
        subscribe(slow, topic, timeout=5)
        for _ in range(sent):
            sender.publish(topic, b"x", qos=1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with lock:
                if len(got) >= min(sent, receive_maximum or 20) + 1:
                    break
            time.sleep(0.05)
        time.sleep(0.3)  # and nothing more arrives
        with lock:
            return len(got)
    finally:
        disconnect(sender)
        disconnect(slow)


def test_the_broker_sends_up_to_the_receive_maximum_unacknowledged(
        mosquitto: Mosquitto) -> None:
    url = BrokerURL.parse(mosquitto.url)
    assert _unacknowledged(url, None, 60) == 20  # the broker's own limit
    assert _unacknowledged(url, 50, 60) == 50
    assert RECEIVE_MAXIMUM > 20


def test_a_receive_maximum_outside_the_protocol_is_refused(mosquitto: Mosquitto) -> None:
    for bad in (0, 65536):
        with pytest.raises(ValueError, match="receive_maximum must be 1 to 65535"):
            connect(new_client(), BrokerURL.parse(mosquitto.url), receive_maximum=bad)

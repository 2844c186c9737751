"""The operator's text message with a sign-in code, emulated on the user's MQTT topic.

The code is published retained on ``users/{contract}/sign-in`` with an MQTT v5 Message
Expiry Interval equal to the code's lifetime (MQTT 5.0 section 3.3.2.3.3), so a user agent
that connects later still reads it, and the broker drops it when the code expires.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mps_mqtt.client import BrokerURL, connect, disconnect, new_client, new_properties
from mps_wire.codec import decode, encode
from mps_wire.errors import WireError
from mps_wire.signin import SignInCode
from mps_wire.topics import Topics

log = logging.getLogger(__name__)


def code_message(contract: str, msisdn: str, code: str, expires_at: int, now: int
                 ) -> SignInCode:
    """The text message (``sign-in-code`` in the CDDL)."""
    minutes = max(1, (expires_at - now) // 60000)
    return SignInCode(contract, msisdn, code, expires_at, now,
                      f"Your consent page code is {code}. It expires in {minutes} min. "
                      "Never share it.")


def _on_publish(_c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode,
                _p: Properties | None) -> None:
    # Sending does not wait for the broker (the page answers every number alike and at
    # once); a refusal (MQTT v5 PUBACK reason, e.g. 0x87 by an ACL) is logged here.
    if reason.is_failure:
        log.error("the broker refused a sign-in code's message (%s): check the page's "
                  "broker identity may publish on users/+/sign-in", reason)


class MqttTexts:
    """Sends sign-in codes as messages on the user's topic over one MQTT connection."""

    def __init__(self, broker: BrokerURL, *, topics: Topics | None = None,
                 timeout: float = 10.0) -> None:
        self.broker = broker
        self.topics = topics or Topics()
        self.timeout = timeout
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Connect to the broker; BrokerUnreachableError if it cannot be reached."""
        client = new_client(f"mps-consent-web-{int(time.time() * 1000) % 10**9}")
        client.on_publish = _on_publish
        connect(client, self.broker, timeout=self.timeout)
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            disconnect(self._client)
            self._client = None

    def send(self, contract: str, msisdn: str, code: str, expires_at: int) -> None:
        """Queue the code's message (QoS 1, retained until the code expires)."""
        client = self._client
        if client is None:
            raise RuntimeError("MqttTexts.start() was not called")
        now = int(time.time() * 1000)
        props = new_properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = max(1, (expires_at - now) // 1000)
        with self._lock:
            client.publish(self.topics.user_sign_in(contract),
                           encode(code_message(contract, msisdn, code, expires_at, now).to_wire()),
                           qos=1, retain=True, properties=props)
        log.info("sign-in code sent to %s (contract %s)", msisdn, contract)


def read_code(broker: BrokerURL, contract: str, *, topics: Topics | None = None,
              timeout: float = 5.0) -> SignInCode | None:
    """The code message waiting on the user's topic, or None after ``timeout`` seconds."""
    topic = (topics or Topics()).user_sign_in(contract)
    got: list[SignInCode] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            try:
                got.append(SignInCode.from_wire(decode(bytes(msg.payload), max_size=4096)))
            except WireError:
                return
            arrived.set()

    client = new_client()
    client.on_message = on_message
    connect(client, broker, timeout=timeout)
    try:
        client.subscribe(topic, qos=1)
        arrived.wait(timeout)
    finally:
        disconnect(client)
    return got[-1] if got else None

"""Publishing the device's registration and presence over MQTT v5."""

from __future__ import annotations

import time
from types import TracebackType

from mps_wire import codec
from mps_wire.errors import WireError
from mps_wire.messages import DeviceInfo, Reply
from mps_wire.mqtt import BrokerURL, MqttError, Requester, connect, disconnect, new_client
from mps_wire.topics import Topics


class RegistryReplyError(MqttError):
    """The registry's reply could not be decoded."""


class Publisher:
    """One device's MQTT connection: registration request/response and online state.

    With ``presence`` the retained state topic says ``online`` while connected and the Last
    Will says ``offline`` when the connection drops.
    """

    def __init__(self, broker: str, device_id: str, *, prefix: str = "mps/v1",
                 presence: bool = False) -> None:
        self.broker = BrokerURL.parse(broker)
        self.device_id = device_id
        self.topics = Topics(prefix)
        self.presence = presence
        self._client = new_client(f"mps-dev-{device_id}")
        self._requester: Requester | None = None

    def _state_payload(self, state: str) -> bytes:
        return codec.encode({"state": state, "ts": int(time.time() * 1000)})

    def open(self) -> Publisher:
        state_topic = self.topics.device_state(self.device_id)
        will = (state_topic, self._state_payload("offline"), 1, True) if self.presence else None
        connect(self._client, self.broker, will=will)
        self._requester = Requester(self._client, self.topics.device_reply(self.device_id))
        self._requester.start()
        if self.presence:
            self._client.publish(state_topic, self._state_payload("online"), qos=1, retain=True)
        return self

    def register(self, info: DeviceInfo, *, timeout: float) -> Reply:
        """Publish ``info`` as a registration request and return the registry's reply."""
        if self._requester is None:
            raise MqttError("publisher is not open")
        raw = self._requester.request(self.topics.device_register(self.device_id),
                                      codec.encode(info.to_wire()), timeout=timeout)
        try:
            return Reply.from_wire(codec.decode(raw))
        except WireError as exc:
            raise RegistryReplyError(f"registry reply is malformed: {exc}") from exc

    def close(self) -> None:
        if self.presence:
            info = self._client.publish(self.topics.device_state(self.device_id),
                                        self._state_payload("offline"), qos=1, retain=True)
            info.wait_for_publish(5)
        disconnect(self._client)

    def __enter__(self) -> Publisher:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

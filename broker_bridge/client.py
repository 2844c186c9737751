"""The app SDK: ask the registry for the devices on a user's contract.

    with PairingClient("mqtt://broker:1883", "demo-app") as client:
        for device in client.devices("+4915112345678"):
            print(device.device_id, device.ip)

Requests go to the app's requests topic with MQTT v5 request/response; replies come back
on the app's own replies topic. Refusals raise :class:`RequestError` subclasses carrying
the registry's stable error code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType

import paho.mqtt.client as mqtt

from broker_bridge._mqtt import set_nodelay
from broker_bridge.errors import (
    BadReplyError,
    DeniedError,
    NotFoundError,
    PairingConnectionError,
    PairingError,
    PairingTimeoutError,
    RequestError,
)
from broker_bridge.records import DeviceRecord
from mps_wire.codec import decode, encode
from mps_wire.errors import ErrorCode, WireError
from mps_wire.identifiers import IdentifierError, validate_msisdn
from mps_wire.messages import DevicesRequest, Reply, Status
from mps_wire.mqtt import (
    BrokerUnreachableError,
    BrokerURL,
    MqttError,
    Requester,
    RequestTimeoutError,
    connect,
    disconnect,
    new_client,
)
from mps_wire.topics import Topics, check_level

__all__ = [
    "ContractDevices",
    "DeniedError",
    "DeviceRecord",
    "NotFoundError",
    "PairingClient",
    "PairingError",
    "RequestError",
]


@dataclass(frozen=True, slots=True)
class ContractDevices:
    """The devices of one contract, as the registry disclosed them to this app."""

    contract: str
    devices: tuple[DeviceRecord, ...]


class PairingClient:
    """A connection of one app to the registry.

    ``broker`` is a URL (``mqtt://host:port``, ``mqtts://...``) or a parsed BrokerURL;
    ``timeout`` (seconds) bounds connecting and every request. Use as a context manager,
    or call :meth:`connect` and :meth:`close`. Safe to share between threads.
    """

    def __init__(self, broker: str | BrokerURL, app_id: str, *, topics: Topics | None = None,
                 timeout: float = 10.0) -> None:
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.app_id = check_level(app_id, "app id")
        if topics is not None and not isinstance(topics, Topics):
            raise TypeError(f"topics must be a Topics, not {type(topics).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.topics = topics or Topics()
        self.timeout = float(timeout)
        self._client: mqtt.Client | None = None
        self._requester: Requester | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PairingClient({str(self.broker)!r}, {self.app_id!r})"

    def connect(self) -> None:
        """Connect to the broker and listen on the app's replies topic; idempotent."""
        with self._lock:
            if self._client is not None:
                return
            client = new_client()
            try:
                connect(client, self.broker, timeout=self.timeout)
            except BrokerUnreachableError as exc:
                raise PairingConnectionError(str(exc)) from exc
            set_nodelay(client)
            requester = Requester(client, self.topics.app_replies(self.app_id))
            try:
                requester.start(self.timeout)
            except MqttError as exc:
                disconnect(client)
                raise PairingConnectionError(f"cannot listen for replies: {exc}") from exc
            self._client, self._requester = client, requester

    def close(self) -> None:
        """Disconnect; idempotent."""
        with self._lock:
            client, self._client, self._requester = self._client, None, None
        if client is not None:
            disconnect(client)

    def __enter__(self) -> PairingClient:
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- requests ----------------------------------------------------------------------

    def devices(self, msisdn: str) -> list[DeviceRecord]:
        """All devices on the contract behind the phone number ``msisdn`` (E.164).

        Raises NotFoundError for a number the registry knows no contract for, DeniedError
        when this app may not ask, RequestError for other refusals (an invalid number is
        refused before anything is sent), PairingTimeoutError without an answer.
        """
        return list(self.contract_devices(msisdn).devices)

    def contract_devices(self, msisdn: str) -> ContractDevices:
        """Like :meth:`devices`, with the id of the contract the devices belong to."""
        try:
            number = validate_msisdn(msisdn)
        except IdentifierError as exc:
            raise RequestError(ErrorCode.INVALID_IDENTIFIER, exc.message) from exc
        reply = self._request(encode(DevicesRequest(number).to_wire()))
        contract = reply.body.get("contract")
        devices = reply.body.get("devices")
        if not isinstance(contract, str) or not isinstance(devices, list):
            raise BadReplyError("the registry's devices reply lacks contract or devices")
        try:
            records = tuple(DeviceRecord.from_wire(d) for d in devices if isinstance(d, dict))
        except WireError as exc:
            raise BadReplyError(f"the registry sent a bad device record: {exc}") from exc
        if len(records) != len(devices):
            raise BadReplyError("the registry sent a device record that is not a map")
        return ContractDevices(contract, records)

    def _request(self, payload: bytes) -> Reply:
        requester = self._requester
        if requester is None:
            raise PairingConnectionError("the client is not connected; use connect() or with")
        try:
            raw = requester.request(self.topics.app_requests(self.app_id), payload,
                                    timeout=self.timeout)
        except RequestTimeoutError as exc:
            raise PairingTimeoutError(str(exc)) from exc
        except MqttError as exc:
            raise PairingConnectionError(str(exc)) from exc
        try:
            reply = Reply.from_wire(decode(raw))
        except WireError as exc:
            raise BadReplyError(f"the registry's reply cannot be read: {exc}") from exc
        if reply.is_ok:
            return reply
        code = reply.code or ErrorCode.INTERNAL
        message = reply.message or f"request refused ({reply.status})"
        if code is ErrorCode.NOT_FOUND:
            raise NotFoundError(code, message, status=reply.status)
        if code is ErrorCode.DENIED or reply.status is Status.DENIED:
            raise DeniedError(code, message, status=reply.status)
        raise RequestError(code, message, status=reply.status)

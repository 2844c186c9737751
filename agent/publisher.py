"""Publishing the device's registration and presence over MQTT v5, and delivering it
through an unreachable broker with exponential backoff and jitter."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import paho.mqtt.client as mqtt

from agent.errors import AgentError
from agent.signing import DeviceSigner
from mps_mqtt.client import (
    DEFAULT_RETRY,
    BrokerUnreachableError,
    BrokerURL,
    MqttError,
    Requester,
    RequestTimeoutError,
    Retry,
    connect,
    disconnect,
    new_client,
    subscribe,
)
from mps_wire import codec
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import DeviceInfo, Reply, Status
from mps_wire.topics import Topics

log = logging.getLogger(__name__)


class RegistryReplyError(AgentError, MqttError):
    """The registry's reply could not be decoded."""


class Publisher:
    """One device's MQTT connection: registration request/response and online state.

    With ``presence`` the retained state topic says ``online`` while connected and the Last
    Will says ``offline`` when the connection drops. ``signer`` signs registrations
    (COSE_Sign1); without one they go out unsigned. ``persistent`` keeps the device's
    MQTT session on the broker (fixed client id), so a reply published while the device
    was briefly away still reaches it. After a dropped connection paho reconnects by
    itself (at most :data:`~mps_mqtt.client.RECONNECT_MAX_S` apart); the reply
    subscription and the online state are restored then. :meth:`register` sends the same
    message again until the registry answers (``retry``), which the registry answers as
    one registration (same sequence number and content).
    """

    def __init__(self, broker: str | BrokerURL, device_id: str, *, prefix: str = "mps/v1",
                 presence: bool = False, signer: DeviceSigner | None = None,
                 persistent: bool = True, retry: Retry | None = DEFAULT_RETRY) -> None:
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.device_id = device_id
        self.topics = Topics(prefix)
        self.presence = presence
        self.signer = signer
        self.persistent = persistent
        self.retry = retry
        self._client = self._new_client()
        self._requester: Requester | None = None
        self._listened: dict[str, Callable[[bytes], None]] = {}
        self.reconnects = 0

    def _new_client(self) -> mqtt.Client:
        return new_client(f"mps-dev-{self.device_id}", persistent=self.persistent)

    def _state_payload(self, state: str) -> bytes:
        return codec.encode({"state": state, "ts": int(time.time() * 1000)})

    @property
    def resent(self) -> int:
        """How many registrations went out again for want of a reply."""
        return self._requester.resent if self._requester is not None else 0

    @property
    def is_open(self) -> bool:
        return self._requester is not None

    def open(self) -> Publisher:
        """Connect, listen for replies and (with presence) say online.

        Raises BrokerUnreachableError when the broker cannot be reached or refuses us.
        """
        state_topic = self.topics.device_state(self.device_id)
        will = (state_topic, self._state_payload("offline"), 1, True) if self.presence else None
        # A client whose connect failed keeps half its settings (TLS cannot be set twice):
        # every attempt starts from a fresh one.
        self._client = self._new_client()
        connect(self._client, self.broker, will=will, persistent=self.persistent)
        requester = Requester(self._client, self.topics.device_reply(self.device_id))
        try:
            requester.start()
        except MqttError:
            disconnect(self._client)
            raise
        self._requester = requester
        requester.on_reconnect = self._on_reconnect
        requester.also_subscribe = lambda: list(self._listened)
        for topic, handler in self._listened.items():
            self._subscribe(topic, handler)
        if self.presence:
            self._client.publish(state_topic, self._state_payload("online"), qos=1, retain=True)
        return self

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Call ``handler`` (on the MQTT thread) with each message on ``topic``, from now
        on and after every reconnection."""
        self._listened[topic] = handler
        if self._requester is not None:
            self._subscribe(topic, handler)

    def _subscribe(self, topic: str, handler: Callable[[bytes], None]) -> None:
        self._client.message_callback_add(
            topic, lambda _c, _u, msg: handler(bytes(msg.payload)))
        subscribe(self._client, topic, timeout=10.0)

    def send(self, topic: str, payload: bytes, *, timeout: float = 5.0) -> bool:
        """Publish ``payload`` on ``topic`` with QoS 1; True once the broker confirmed."""
        if self._requester is None:
            return False
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(timeout)
        except RuntimeError:
            return False
        return info.is_published()

    def _on_reconnect(self, session_present: bool) -> None:
        # The requester has subscribed to the replies again.
        self.reconnects += 1
        log.info("reconnected to %s (session %s)", self.broker,
                 "kept" if session_present else "new")
        if self.presence:
            # The Last Will may have said offline meanwhile.
            self._client.publish(self.topics.device_state(self.device_id),
                           self._state_payload("online"), qos=1, retain=True)

    def payload(self, info: DeviceInfo) -> bytes:
        """The register payload of ``info``: signed when the publisher has a signer."""
        if self.signer is not None:
            return self.signer.encode(info)
        return codec.encode(info.to_wire())

    def register(self, info: DeviceInfo, *, timeout: float) -> Reply:
        """Publish ``info`` as a registration request and return the registry's reply."""
        if self._requester is None:
            raise MqttError("publisher is not open")
        raw = self._requester.request(self.topics.device_register(self.device_id),
                                      self.payload(info), timeout=timeout, retry=self.retry)
        try:
            return Reply.from_wire(codec.decode(raw))
        except WireError as exc:
            raise RegistryReplyError(f"registry reply is malformed: {exc}") from exc

    def close(self) -> None:
        if self._requester is None:
            return
        self._requester = None
        try:
            if self.presence:
                info = self._client.publish(self.topics.device_state(self.device_id),
                                            self._state_payload("offline"), qos=1, retain=True)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    info.wait_for_publish(5)
        finally:
            disconnect(self._client)

    def __enter__(self) -> Publisher:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` waits between half and all of
    ``min(maximum, initial * factor**n)`` seconds, so many devices that lost the same
    broker do not come back in lockstep (and none waits less than half its step)."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 4.0

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.factor >= 1 and self.maximum >= self.initial):
            raise ValueError("backoff needs initial > 0, factor >= 1, maximum >= initial")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        rng = rng or random.Random()
        step = self.initial
        while True:
            yield step / 2 + rng.uniform(0, step / 2)
            step = min(self.maximum, step * self.factor)


# Replies that mean "try the same message again later", not "refused".
_TRANSIENT = frozenset({ErrorCode.INTERNAL})


class DeliveryError(AgentError, MqttError):
    """A registration could not be delivered before the retry window closed."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class Delivery:
    """Delivers registrations through ``publisher``, retrying while the broker is
    unreachable, the registry does not answer, or answers that it failed internally.

    Each attempt publishes the same message (same sequence number), which the registry
    treats as one registration however often it arrives. ``retry_for`` bounds the time
    spent retrying (0: one attempt; ``math.inf``: until ``stop`` is set). Replies other
    than ``internal`` errors (``ok`` or a refusal) end the delivery and are returned.
    """

    def __init__(self, publisher: Publisher, *, retry_for: float = 0.0,
                 backoff: Backoff | None = None, stop: threading.Event | None = None,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if math.isnan(retry_for) or retry_for < 0:
            raise ValueError("retry_for must be 0 or more seconds")
        self.publisher = publisher
        self.retry_for = retry_for
        self.backoff = backoff or Backoff()
        self.stop = stop or threading.Event()
        self._rng = rng
        self._clock = clock
        self.attempts = 0

    def deliver(self, info: DeviceInfo, *, timeout: float) -> Reply:
        """Publish ``info`` until the registry answers; DeliveryError when time is up."""
        deadline = self._clock() + self.retry_for
        delays = self.backoff.delays(self._rng)
        while True:
            self.attempts += 1
            problem: str
            try:
                if not self.publisher.is_open:
                    self.publisher.open()
                reply = self.publisher.register(info, timeout=timeout)
            except BrokerUnreachableError as exc:
                problem = str(exc)
            except RequestTimeoutError as exc:
                problem = str(exc)
            else:
                if reply.status is Status.ERROR and reply.code in _TRANSIENT:
                    problem = f"the registry failed: {reply.message}"
                else:
                    return reply
            delay = next(delays)
            if self.stop.is_set() or self._clock() + delay > deadline:
                raise DeliveryError(f"registration seq {info.seq} not delivered after "
                                    f"{self.attempts} attempt(s): {problem}",
                                    attempts=self.attempts)
            log.warning("attempt %d to register failed (%s); trying again in %.1f s",
                        self.attempts, problem, delay)
            if self.stop.wait(delay):
                raise DeliveryError(f"stopped before seq {info.seq} was delivered: {problem}",
                                    attempts=self.attempts)

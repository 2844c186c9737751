"""MQTT v5 plumbing shared by agent, registry and app SDK: broker URLs, connecting, and
request/response with Correlation Data."""

from __future__ import annotations

import logging
import os
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from mps_mqtt.url import BrokerURL

# BrokerURL lives in mps_mqtt.url (loadable without paho) and is re-exported here.
__all__ = [
    "DEFAULT_RETRY", "EARLY_REFUSALS", "NOT_AUTHORIZED", "RECONNECT_MAX_S", "SESSION_EXPIRY_S",
    "BrokerURL", "BrokerUnreachableError", "MqttError", "ProxyAwareClient",
    "PublishRefusedError", "RequestTimeoutError", "Requester", "Retry",
    "SubscriptionRefusedError", "connect", "disconnect", "new_client", "new_properties",
    "reply_properties", "subscribe",
]

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 3600
RECONNECT_MAX_S = 2
"""Longest wait between paho's reconnect attempts (its own default is 120 s): a broker
back after a restart is found within a couple of seconds."""


def new_properties(packet_type: int = PacketTypes.PUBLISH) -> Properties:
    """Empty MQTT v5 properties for ``packet_type`` (a typed wrapper around paho's)."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


class MqttError(Exception):
    """Root of the MQTT helpers' errors."""


class BrokerUnreachableError(MqttError, ConnectionError):
    """The broker could not be reached or refused the connection."""


class RequestTimeoutError(MqttError, TimeoutError):
    """No reply arrived in time for a request."""


class SubscriptionRefusedError(MqttError, PermissionError):
    """The broker refused a subscription (MQTT v5 SUBACK reason code 0x80 or above)."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"the broker refused the subscription to {topic}: {reason}")
        self.topic = topic
        self.reason = reason


class PublishRefusedError(MqttError, PermissionError):
    """The broker refused a QoS 1 publication (MQTT v5 PUBACK reason code 0x80 or above,
    MQTT v5 section 3.4.2.1); 0x87 "Not authorized" is its ACL keeping the client out."""

    def __init__(self, topic: str, code: int, reason: str) -> None:
        if code == NOT_AUTHORIZED:
            text = (f"not authorized to publish to {topic} (the broker's ACL refused it, "
                    f"PUBACK 0x{code:02X})")
        else:
            text = f"the broker refused the publication to {topic}: {reason} (PUBACK 0x{code:02X})"
        super().__init__(text)
        self.topic = topic
        self.code = code
        self.reason = reason


NOT_AUTHORIZED = 0x87
"""MQTT v5 reason code "Not authorized" (section 2.4)."""


_PROXY_KEYS = ("proxy_type", "proxy_addr", "proxy_port", "proxy_rdns", "proxy_username",
               "proxy_password")


class ProxyAwareClient(mqtt.Client):
    """paho's client, asking for its proxy as paho does without needing urllib.request.

    paho looks for a proxy on the client, then in an ``mqtt_proxy`` variable (read through
    urllib.request, which pulls in http.client, email and tempfile), then in PySocks'
    default. On Linux that variable is all urllib.request would read, so without one
    only the other two places are asked, in paho's order; otherwise paho asks.
    """

    def _get_proxy(self) -> dict[str, Any] | None:
        socks = getattr(mqtt, "socks", None)
        if (socks is None or not sys.platform.startswith("linux")
                or any(name.lower() == "mqtt_proxy" for name in os.environ)):
            return super()._get_proxy()
        valid = self._proxy_is_valid
        explicit: dict[str, Any] | None = self._proxy
        if valid(explicit):
            return explicit
        default = socks.get_default_proxy()
        if valid(default):
            return dict(zip(_PROXY_KEYS, default, strict=False))
        return None


def new_client(client_id: str | None = None, *, persistent: bool = False,
               manual_ack: bool = False, lean: bool = False) -> mqtt.Client:
    """A paho MQTT v5 client with the callback API version 2.

    ``persistent`` keeps the session on the broker (fixed id, session expiry) so QoS 1
    messages published while the client is away are delivered when it returns.
    ``lean`` makes fewer system calls per message (:mod:`mps_mqtt.lean`), for a process
    that handles many.
    """
    if persistent and not client_id:
        raise ValueError("a persistent session needs a fixed client id")
    cid = client_id or f"mps-{uuid.uuid4().hex[:12]}"
    kind: type[ProxyAwareClient] = ProxyAwareClient
    if lean:
        from mps_mqtt import lean as lean_io

        if lean_io.AVAILABLE:
            kind = lean_io.LeanClient
    client = kind(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5,
                  manual_ack=manual_ack)
    client.user_data_set({"persistent": persistent})
    client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
    return client


def connect(client: mqtt.Client, broker: BrokerURL, *, timeout: float = 10.0,
            keepalive: int = 30, persistent: bool = False,
            will: tuple[str, bytes, int, bool] | None = None,
            receive_maximum: int | None = None) -> None:
    """Connect ``client`` to ``broker``, start its network loop and wait for CONNACK.

    ``receive_maximum`` is how many QoS 1 messages the broker may send unacknowledged
    (MQTT v5 section 3.1.2.11.3; paho repeats it on reconnecting). Without it, Mosquitto
    sends at most its ``max_inflight_messages`` (20), which bounds a client that
    acknowledges only once what a message changed is stored.

    Raises BrokerUnreachableError when the broker cannot be reached or refuses us.
    """
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        ctx = ssl.create_default_context(cafile=broker.ca_file)
        if broker.cert_file:
            ctx.load_cert_chain(broker.cert_file, broker.key_file)
        client.tls_set_context(ctx)
    if will is not None:
        topic, payload, qos, retain = will
        client.will_set(topic, payload, qos=qos, retain=retain)
    done = threading.Event()
    outcome: list[ReasonCode | str] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode,
                   _p: Properties | None) -> None:
        outcome.append(reason)
        done.set()

    client.on_connect = on_connect
    props = new_properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
    if receive_maximum is not None:
        if not 1 <= receive_maximum <= 65535:
            raise ValueError(f"receive_maximum must be 1 to 65535, not {receive_maximum}")
        props.ReceiveMaximum = receive_maximum
    try:
        client.connect(broker.host, broker.port, keepalive=keepalive,
                       clean_start=not persistent, properties=props)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerUnreachableError(f"cannot reach broker {broker}: {exc}") from exc
    client.loop_start()
    if not done.wait(timeout):
        client.loop_stop()
        raise BrokerUnreachableError(f"broker {broker} did not answer within {timeout:g} s")
    reason = outcome[0]
    if isinstance(reason, ReasonCode) and reason.is_failure:
        client.loop_stop()
        raise BrokerUnreachableError(f"broker {broker} refused the connection: {reason}")


def disconnect(client: mqtt.Client) -> None:
    """Disconnect cleanly and stop the network loop."""
    try:
        client.disconnect()
    finally:
        client.loop_stop()


def reply_properties(request_props: Properties | None) -> Properties | None:
    """Properties for a reply: the request's Correlation Data echoed, if it had any."""
    if request_props is None:
        return None
    corr = getattr(request_props, "CorrelationData", None)
    if corr is None:
        return None
    props = new_properties()
    props.CorrelationData = corr
    return props


def subscribe(client: mqtt.Client, filters: str | Sequence[str], *, timeout: float,
              qos: int = 1) -> None:
    """Subscribe to ``filters`` in one SUBSCRIBE and wait for its SUBACK.

    Raises :class:`RequestTimeoutError` when no SUBACK arrives within ``timeout`` seconds
    and :class:`SubscriptionRefusedError` when the broker refused a filter (its ACL keeps
    the client out). Replaces the client's ``on_subscribe`` callback.
    """
    topics = [filters] if isinstance(filters, str) else list(filters)
    shown = topics[0] if len(topics) == 1 else ", ".join(topics)
    done = threading.Event()
    lock = threading.Lock()
    mids: list[int | None] = []
    refused: list[str] = []

    def on_subscribe(_c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode],
                     _p: Properties | None) -> None:
        # The SUBACK can arrive before subscribe() has returned its mid; the lock makes
        # this callback wait for it.
        with lock:
            ours = mid in mids
        if ours:
            refused.extend(str(c) for c in codes if c.is_failure)
            done.set()

    client.on_subscribe = on_subscribe
    with lock:
        _rc, mid = client.subscribe([(t, SubscribeOptions(qos=qos)) for t in topics])
        mids.append(mid)
    if not done.wait(timeout):
        raise RequestTimeoutError(f"no SUBACK for {shown} within {timeout:g} s")
    if refused:
        raise SubscriptionRefusedError(shown, refused[0])


@dataclass(slots=True)
class _Pending:
    """One request in flight: its reply, or the broker's refusal of its publication."""

    done: threading.Event = field(default_factory=threading.Event)
    replies: list[bytes] = field(default_factory=list)
    refused: ReasonCode | None = None


EARLY_REFUSALS = 256
"""Refusals kept for publications whose mid the requester has not learnt yet."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How :meth:`Requester.request` sends a request again until it is answered: after
    ``first`` seconds without a reply, then after each wait times ``factor``, at most
    ``cap`` seconds apart, and at once when the connection comes back."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 4.0

    def __post_init__(self) -> None:
        if not (self.first > 0 and self.factor >= 1 and self.cap >= self.first):
            raise ValueError("retry needs first > 0, factor >= 1 and cap >= first")


DEFAULT_RETRY = Retry()


class Requester:
    """MQTT v5 request/response over one connected client.

    Replies arrive on ``response_topic`` (which must lie in the requester's own namespace)
    and are matched to requests by Correlation Data; any number of requests may be in
    flight. A request the broker refuses (PUBACK reason code 0x80 or above) fails at once
    with :class:`PublishRefusedError` instead of waiting for a reply that cannot come.
    After paho reconnects by itself, the response topic (and the topics
    ``also_subscribe`` names) are subscribed again. The requester takes the client's
    ``on_publish`` and calls the one set before it.
    """

    def __init__(self, client: mqtt.Client, response_topic: str) -> None:
        self._client = client
        self._topic = response_topic
        self._pending: dict[bytes, _Pending] = {}
        self._by_mid: dict[int, _Pending] = {}
        # A PUBACK may be handled before publish() has told us its mid: refusals of mids
        # not yet known wait here with the time they came.
        self._early: dict[int, tuple[float, ReasonCode]] = {}
        self._lock = threading.Lock()
        self._connected = threading.Condition(self._lock)
        self._connects = 0
        self.unsolicited: Callable[[bytes], None] | None = None
        self._chained: Callable[..., None] | None = client.on_publish
        client.on_publish = self._on_publish
        self.also_subscribe: Callable[[], Sequence[str]] | None = None
        self.on_reconnect: Callable[[bool], None] | None = None
        self.resent = 0
        self._attempts = threading.local()
        client.message_callback_add(response_topic, self._on_reply)

    def start(self, timeout: float = 10.0) -> None:
        """Subscribe to the response topic and wait for the broker's SUBACK; from now on
        follow reconnections."""
        subscribe(self._client, self._topic, timeout=timeout)
        self._client.on_connect = self._on_connect

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            log.warning("reconnecting failed: %s", reason)
            return
        # Even a kept session may lack a subscription: a broker killed and restarted
        # restores the session as last saved, from before a recent SUBSCRIBE.
        topics = [self._topic, *(self.also_subscribe() if self.also_subscribe else ())]
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        with self._connected:
            self._connects += 1
            self._connected.notify_all()
        if self.on_reconnect is not None:
            self.on_reconnect(bool(flags.session_present))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    props: Properties | None) -> None:
        # Called by paho holding its own lock: never call into paho while holding ours.
        with self._lock:
            slot = self._by_mid.pop(mid, None)
            if reason.is_failure:
                if slot is not None:
                    slot.refused = reason
                    slot.done.set()
                else:
                    if len(self._early) >= EARLY_REFUSALS:
                        self._early.pop(next(iter(self._early)))
                    self._early[mid] = (time.monotonic(), reason)
        if self._chained is not None:
            self._chained(client, userdata, mid, reason, props)

    def _on_reply(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        with self._lock:
            slot = self._pending.get(bytes(corr)) if corr is not None else None
        if slot is None:
            if self.unsolicited is not None:
                self.unsolicited(bytes(msg.payload))
            else:
                log.debug("reply on %s matches no pending request", msg.topic)
            return
        slot.replies.append(bytes(msg.payload))
        slot.done.set()

    def _track(self, mid: int, slot: _Pending, since: float) -> None:
        """Match the PUBACK of ``mid`` to ``slot``, also when it came before the mid."""
        with self._lock:
            early = self._early.pop(mid, None)
            if early is not None and early[0] >= since:
                slot.refused = early[1]
                slot.done.set()
            elif not slot.done.is_set():
                self._by_mid[mid] = slot

    def request(self, topic: str, payload: bytes, *, timeout: float = 10.0, qos: int = 1,
                retry: Retry | None = None) -> bytes:
        """Publish ``payload`` to ``topic`` as a request and return the reply's payload.

        With ``retry`` the same message (same Correlation Data, so the registry can tell a
        repeat) goes out again until a reply arrives or ``timeout`` seconds have passed,
        through lost connections and broker restarts; without, one attempt.
        Raises :class:`PublishRefusedError` when the broker refuses the publication (QoS 1),
        :class:`RequestTimeoutError` when no reply comes within ``timeout`` seconds.
        """
        if retry is not None:
            return self._request_until_answered(topic, payload, timeout, qos, retry)
        self._attempts.count = 0
        if not self._client.is_connected():
            # paho would queue the message and send it after reconnecting, on top of
            # whatever the caller sends again meanwhile.
            raise BrokerUnreachableError(f"not connected: the request to {topic} was not "
                                         "sent")
        corr, slot, props = self._open_slot()
        mid: int | None = None
        try:
            since = time.monotonic()
            info = self._client.publish(topic, payload, qos=qos, properties=props)
            self._attempts.count = 1
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerUnreachableError(f"publish to {topic} failed: "
                                             f"{mqtt.error_string(info.rc)}")
            if qos > 0:
                mid = info.mid
                self._track(mid, slot, since)
            if not slot.done.wait(timeout):
                raise RequestTimeoutError(f"no reply to the request on {topic} "
                                          f"within {timeout:g} s")
            if slot.refused is not None and not slot.replies:
                raise PublishRefusedError(topic, slot.refused.value, slot.refused.getName())
            return slot.replies[0]
        finally:
            with self._lock:
                self._pending.pop(corr, None)
                if mid is not None and self._by_mid.get(mid) is slot:
                    del self._by_mid[mid]

    @property
    def last_attempts(self) -> int:
        """How many times the calling thread's last request went out (0: none yet); more
        than one means a reply may have been lost, and the request's effect may be the
        first attempt's, answered to the repeat as "already done"."""
        return int(getattr(self._attempts, "count", 0))

    def _open_slot(self) -> tuple[bytes, _Pending, Properties]:
        """A fresh Correlation Data, the slot its reply lands in, and the request's
        properties; the caller pops the slot from ``_pending`` when done."""
        corr = os.urandom(16)
        slot = _Pending()
        props = new_properties()
        props.ResponseTopic = self._topic
        props.CorrelationData = corr
        with self._lock:
            self._pending[corr] = slot
        return corr, slot, props

    def _request_until_answered(self, topic: str, payload: bytes, timeout: float, qos: int,
                                retry: Retry) -> bytes:
        deadline = time.monotonic() + timeout
        corr, slot, props = self._open_slot()
        wait, attempts = retry.first, 0
        self._attempts.count = 0
        mids: list[int] = []
        try:
            while True:
                with self._lock:
                    connects = self._connects
                if self._client.is_connected():
                    since = time.monotonic()
                    info = self._client.publish(topic, payload, qos=qos, properties=props)
                    attempts += 1
                    self._attempts.count = attempts
                    if info.rc == mqtt.MQTT_ERR_SUCCESS:
                        if attempts > 1:
                            with self._lock:
                                self.resent += 1
                        if qos > 0:
                            mids.append(info.mid)
                            self._track(info.mid, slot, since)
                left = deadline - time.monotonic()
                if slot.done.wait(min(wait, max(left, 0))):
                    if slot.refused is not None and not slot.replies:
                        # A refusal is the broker's answer: sending again cannot change it.
                        raise PublishRefusedError(topic, slot.refused.value,
                                                  slot.refused.getName())
                    return slot.replies[0]
                if time.monotonic() >= deadline:
                    raise RequestTimeoutError(f"no reply to the request on {topic} within "
                                              f"{timeout:g} s ({attempts} attempt(s))")
                self._await_connection(connects, deadline)
                wait = min(retry.cap, wait * retry.factor)
        finally:
            with self._lock:
                self._pending.pop(corr, None)
                for mid in mids:
                    if self._by_mid.get(mid) is slot:
                        del self._by_mid[mid]

    def _await_connection(self, connects: int, deadline: float) -> None:
        """Wait while the client is disconnected (paho is reconnecting); back at once
        when a new connection was made since ``connects``."""
        with self._connected:
            while self._connects == connects and not self._client.is_connected():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._connected.wait(min(left, 0.5))

"""The app SDK: pair with a user's contract, list its devices, follow its events.

    with PairingClient("mqtt://broker:1883", "health-app") as client:
        answer = client.pair("+4915112345678", "health-monitoring")
        for event in client.events(since=0):        # pairing-granted, device-added, ...
            print(event.seq, event.kind, event.device or event.devices)

Requests go to the app's requests topic with MQTT v5 request/response; replies come back
on the app's own replies topic, events on its events topic. A request without a reply goes
out again, the same message, until answered or ``timeout`` ends (``retry``, default
:data:`~mps_mqtt.client.DEFAULT_RETRY`; None sends once), through broker restarts. Refusals raise
:class:`RequestError` subclasses carrying the registry's stable error code (and, for
denials, a ``reason``); a number served by another operator raises
:class:`RedirectError` naming that operator's registry.

Events carry per-app sequence numbers. :meth:`PairingClient.events` resumes from a cursor
(the last sequence number the app handled): it fetches what it missed with
``events-since``, then follows the live stream, dropping duplicates and fetching gaps, so
the app sees every event exactly once and in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt

from mps_mqtt.client import (
    DEFAULT_RETRY,
    BrokerUnreachableError,
    BrokerURL,
    MqttError,
    PublishRefusedError,
    Requester,
    RequestTimeoutError,
    Retry,
    SubscriptionRefusedError,
    connect,
    disconnect,
    new_client,
    subscribe,
)
from mps_mqtt.props import set_nodelay
from mps_sdk.errors import (
    BadReplyError,
    DeniedError,
    NotFoundError,
    PairingConnectionError,
    PairingError,
    PairingTimeoutError,
    RedirectError,
    RequestError,
    refusal_error,
)
from mps_sdk.events import EventCursor, EventPage, EventWatch, IdleTimer, received
from mps_sdk.references import number as _number
from mps_sdk.references import who as _who
from mps_sdk.settle import unpaired
from mps_wire.codec import decode, encode
from mps_wire.errors import ErrorCode, WireError
from mps_wire.messages import (
    DevicesRequest,
    EventKind,
    EventsSinceRequest,
    PairRequest,
    Reply,
    Status,
    UnpairRequest,
)
from mps_wire.records import DeviceRecord, Event
from mps_wire.topics import Topics, check_level

__all__ = [
    "ContractDevices",
    "DeniedError",
    "DeviceRecord",
    "Event",
    "EventPage",
    "EventWatch",
    "NotFoundError",
    "PairingAnswer",
    "PairingClient",
    "PairingError",
    "RedirectError",
    "RequestError",
]

log = logging.getLogger(__name__)

REPLY_LIMIT = 1024 * 1024
BUSY_PAUSE = 1.0  # seconds before a request answered busy (over the app's share) goes again
"""Largest reply or event the SDK accepts: a contract's device list can outgrow the 16 KiB
that requests are held to."""


@dataclass(frozen=True, slots=True)
class ContractDevices:
    """The devices of one contract, as the registry disclosed them to this app."""

    contract: str
    devices: tuple[DeviceRecord, ...]


@dataclass(frozen=True, slots=True)
class PairingAnswer:
    """The registry's answer to :meth:`PairingClient.pair`.

    ``state`` is ``active`` (``devices`` lists every device of the contract) or ``pending``
    (the user is asked until ``expires_at``; the decision comes as a ``pairing-granted``
    or ``pairing-denied`` event). ``contract`` is the app's reference to the contract;
    ``operator`` the registry's holding the pairing after a redirect (None: the app's own).
    """

    pairing: str
    state: str
    contract: str
    purpose: str
    consent: str | None = None
    devices: tuple[DeviceRecord, ...] = ()
    expires_at: int | None = None
    operator: str | None = None

    @property
    def active(self) -> bool:
        return self.state == "active"


class RegistryClient:
    """What the app SDK and the user agent share: one connection, requests with replies,
    and subscriptions. Subclasses name their requests and replies topics."""

    def __init__(self, broker: str | BrokerURL, *, topics: Topics | None = None,
                 timeout: float = 10.0, client_id: str | None = None,
                 retry: Retry | None = DEFAULT_RETRY) -> None:
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        if client_id is not None and not client_id:
            raise ValueError("client_id must not be empty")
        # A fixed id keeps the session on the broker: replies and events published while
        # the client is briefly away are delivered when it comes back.
        self.client_id = client_id
        if topics is not None and not isinstance(topics, Topics):
            raise TypeError(f"topics must be a Topics, not {type(topics).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.topics = topics or Topics()
        self.timeout = float(timeout)
        # Requests go out again until answered (same Correlation Data) within timeout.
        self.retry = retry
        self._client: mqtt.Client | None = None
        self._requester: Requester | None = None
        self._lock = threading.Lock()
        self._subscribed: dict[str, list[queue.Queue[bytes]]] = {}

    def _requests_topic(self) -> str:
        raise NotImplementedError

    def _replies_topic(self) -> str:
        raise NotImplementedError

    def connect(self) -> None:
        """Connect to the broker and listen on the replies topic; idempotent."""
        with self._lock:
            if self._client is not None:
                return
            persistent = self.client_id is not None
            client = new_client(self.client_id, persistent=persistent)
            try:
                connect(client, self.broker, timeout=self.timeout, persistent=persistent)
            except BrokerUnreachableError as exc:
                raise PairingConnectionError(str(exc)) from exc
            set_nodelay(client)
            requester = Requester(client, self._replies_topic())
            requester.also_subscribe = self._listened_topics
            try:
                requester.start(self.timeout)
            except MqttError as exc:
                disconnect(client)
                raise PairingConnectionError(f"cannot listen for replies: {exc}") from exc
            self._client, self._requester = client, requester
            self._subscribed = {}

    def _listened_topics(self) -> list[str]:
        with self._lock:
            return [t for t, inboxes in self._subscribed.items() if inboxes]

    @property
    def resent(self) -> int:
        """How many requests went out again for want of a reply."""
        return self._requester.resent if self._requester is not None else 0

    def close(self) -> None:
        """Disconnect; idempotent."""
        with self._lock:
            client, self._client, self._requester = self._client, None, None
        if client is not None:
            disconnect(client)

    def __enter__(self) -> RegistryClient:
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _request(self, payload: bytes, *, accept: tuple[Status, ...] = (Status.OK,),
                 settle: Callable[[Reply], Reply | None] | None = None) -> Reply:
        """The registry's reply, refusals raised; ``settle`` may turn the refusal of a
        request sent more than once into success (see :mod:`mps_sdk.settle`)."""
        requester = self._requester
        if requester is None:
            raise PairingConnectionError("the client is not connected; use connect() or with")
        deadline = time.monotonic() + self.timeout
        reply = self._exchange(requester, payload, self.timeout)
        while (reply.code is ErrorCode.BUSY and self.retry is not None
               and time.monotonic() + BUSY_PAUSE < deadline):
            time.sleep(BUSY_PAUSE)
            reply = self._exchange(requester, payload, deadline - time.monotonic())
        if reply.status in accept:
            return reply
        settled = settle(reply) if settle and requester.last_attempts > 1 else None
        if settled is None:
            raise refusal_error(reply)
        return settled

    def _exchange(self, requester: Requester, payload: bytes, timeout: float) -> Reply:
        try:
            raw = requester.request(self._requests_topic(), payload, timeout=timeout,
                                    retry=self.retry)
        except RequestTimeoutError as exc:
            raise PairingTimeoutError(str(exc)) from exc
        except PublishRefusedError as exc:
            # The broker's ACL keeps this client off the requests topic: no reply can come.
            raise DeniedError(ErrorCode.DENIED, str(exc), reason="not-authorized") from exc
        except MqttError as exc:
            raise PairingConnectionError(str(exc)) from exc
        try:
            return Reply.from_wire(decode(raw, max_size=REPLY_LIMIT))
        except WireError as exc:
            raise BadReplyError(f"the registry's reply cannot be read: {exc}") from exc

    def _listen(self, topic: str) -> queue.Queue[bytes]:
        """A queue receiving every message on ``topic`` from now on (SUBACK awaited)."""
        client = self._client
        if client is None:
            raise PairingConnectionError("the client is not connected; use connect() or with")
        inbox: queue.Queue[bytes] = queue.Queue()
        with self._lock:
            known = topic in self._subscribed
            self._subscribed.setdefault(topic, []).append(inbox)
        if not known:
            client.message_callback_add(topic, self._on_message)
        # Subscribing again when already subscribed makes the broker send the retained
        # message anew, which a new listener of a retained topic wants.
        try:
            _subscribe(client, topic, self.timeout)
        except PairingError:
            self._unlisten(topic, inbox)
            raise
        return inbox

    def _unlisten(self, topic: str, inbox: queue.Queue[bytes]) -> None:
        with self._lock:
            listeners = self._subscribed.get(topic, [])
            if inbox in listeners:
                listeners.remove(inbox)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            listeners = list(self._subscribed.get(msg.topic, []))
        for inbox in listeners:
            inbox.put(bytes(msg.payload))


def _subscribe(client: mqtt.Client, topic: str, timeout: float) -> None:
    try:
        subscribe(client, topic, timeout=timeout)
    except RequestTimeoutError as exc:
        raise PairingTimeoutError(str(exc)) from exc
    except SubscriptionRefusedError as exc:
        # The broker's ACL keeps this client out of the topic.
        raise DeniedError(ErrorCode.DENIED, str(exc)) from exc




def _records(value: Any) -> tuple[DeviceRecord, ...]:
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise BadReplyError("the registry sent a device list that is not a list of maps")
    try:
        return tuple(DeviceRecord.from_wire(d) for d in value)
    except WireError as exc:
        raise BadReplyError(f"the registry sent a bad device record: {exc}") from exc


class PairingClient(RegistryClient):
    """A connection of one app to the registry.

    ``broker`` is a URL (``mqtt://host:port``, ``mqtts://...``) or a parsed BrokerURL;
    ``timeout`` (seconds) bounds connecting and every request. ``client_id`` makes the
    MQTT session persistent (one id per running client: a second connection with the same
    id takes the session over). Use as a context manager, or call :meth:`connect` and
    :meth:`close`. Safe to share between threads.
    """

    def __init__(self, broker: str | BrokerURL, app_id: str, *, topics: Topics | None = None,
                 timeout: float = 10.0, client_id: str | None = None,
                 retry: Retry | None = DEFAULT_RETRY) -> None:
        super().__init__(broker, topics=topics, timeout=timeout, client_id=client_id,
                         retry=retry)
        self.app_id = check_level(app_id, "app id")

    def __repr__(self) -> str:
        return f"PairingClient({str(self.broker)!r}, {self.app_id!r})"

    def __enter__(self) -> PairingClient:
        self.connect()
        return self

    def _requests_topic(self) -> str:
        return self.topics.app_requests(self.app_id)

    def _replies_topic(self) -> str:
        return self.topics.app_replies(self.app_id)

    # --- requests ----------------------------------------------------------------------

    def pair(self, msisdn: str | None, purpose: str, *, user: str | None = None
             ) -> PairingAnswer:
        """Ask to be paired with the contract behind ``msisdn`` for ``purpose``.

        Instead of the number (E.164), ``user`` names the user by any reference: a
        number (``+...``), the contract reference the user gave the app, or the
        pseudonymous id of an earlier pairing (its :attr:`PairingAnswer.contract`), so
        the app need not keep the number; all three answer alike.

        Returns an active pairing with every device of the contract (standing consent, or
        already paired), or a pending one while the user is asked. Raises DeniedError
        (``reason``: ``untrusted``, ``purpose-not-allowed``, ...), NotFoundError,
        RedirectError, RequestError for an invalid number, PairingTimeoutError.
        """
        try:
            # Checked as the registry will check it, so a bad purpose is never sent.
            number, user = _who(msisdn, user)
            request = PairRequest.from_wire(PairRequest(number, purpose, user).to_wire())
            payload = encode(request.to_wire())
        except WireError as exc:
            raise RequestError(exc.code, exc.message) from exc
        reply = self._request(payload, accept=(Status.OK, Status.PENDING))
        body = reply.body
        pairing, state, contract = body.get("pairing"), body.get("state"), body.get("contract")
        if not all(isinstance(v, str) for v in (pairing, state, contract)):
            raise BadReplyError("the registry's pairing reply lacks pairing, state or contract")
        expires = body.get("expires_at")
        consent = body.get("consent")
        return PairingAnswer(
            pairing=str(pairing), state=str(state), contract=str(contract), purpose=purpose,
            consent=consent if isinstance(consent, str) else None,
            devices=_records(body.get("devices", [])) if reply.is_ok else (),
            expires_at=expires if isinstance(expires, int) else None)

    def devices(self, msisdn: str | None = None, *, user: str | None = None
                ) -> list[DeviceRecord]:
        """All devices on the contract behind the phone number ``msisdn`` (E.164), or
        behind the reference ``user`` (see :meth:`pair`).

        The app must be paired with the contract (or hold standing consent). Raises
        NotFoundError for a number the registry knows no contract for, DeniedError when
        this app may not ask (``reason`` ``not-paired``, ``consent-pending``, ...),
        RedirectError, RequestError for other refusals (an invalid number is refused
        before anything is sent), PairingTimeoutError without an answer.
        """
        return list(self.contract_devices(msisdn, user=user).devices)

    def contract_devices(self, msisdn: str | None = None, *, user: str | None = None
                         ) -> ContractDevices:
        """Like :meth:`devices`, with the reference of the contract the devices belong to."""
        number, user = _who(msisdn, user)
        try:
            request = DevicesRequest.from_wire(DevicesRequest(number, user).to_wire())
        except WireError as exc:
            raise RequestError(exc.code, exc.message) from exc
        reply = self._request(encode(request.to_wire()))
        contract = reply.body.get("contract")
        if not isinstance(contract, str) or "devices" not in reply.body:
            raise BadReplyError("the registry's devices reply lacks contract or devices")
        return ContractDevices(contract, _records(reply.body["devices"]))

    def unpair(self, msisdn: str | None = None, *, pairing: str | None = None) -> str:
        """End this app's pairing, named by the number it was made with or by its id.

        Returns the pairing's id. The app's stream gets ``pairing-ended`` and nothing more
        about that pairing. Raises NotFoundError when there is no such pairing (idempotent
        across a lost reply: :func:`mps_sdk.settle.unpaired`).
        """
        try:
            request = UnpairRequest(msisdn=_number(msisdn) if msisdn is not None else None,
                                    pairing=pairing)
        except WireError as exc:
            raise RequestError(exc.code, exc.message) from exc
        settle = partial(unpaired, self) if request.msisdn else None
        reply = self._request(encode(request.to_wire()), settle=settle)
        ended = reply.body.get("pairing")
        if not isinstance(ended, str):
            raise BadReplyError("the registry's unpair reply names no pairing")
        return ended

    def fetch_events(self, since: int = 0, *, limit: int = 100) -> EventPage:
        """One page of this app's events with a sequence number above ``since``."""
        try:
            request = EventsSinceRequest(since, limit)
        except WireError as exc:
            raise RequestError(exc.code, exc.message) from exc
        reply = self._request(encode(request.to_wire()))
        events, last, more = (reply.body.get(k) for k in ("events", "last", "more"))
        if not isinstance(events, list) or not isinstance(last, int) \
                or not isinstance(more, bool):
            raise BadReplyError("the registry's events reply lacks events, last or more")
        try:
            parsed = tuple(Event.from_wire(e) for e in events if isinstance(e, dict))
        except WireError as exc:
            raise BadReplyError(f"the registry sent a bad event: {exc}") from exc
        if len(parsed) != len(events):
            raise BadReplyError("the registry sent an event that is not a map")
        return EventPage(parsed, last, more)

    def newest_seq(self) -> int:
        """The sequence number of this app's newest event (0: none yet).

        As the ``since`` of :meth:`events` it follows only what happens from now on,
        leaving out the events of earlier pairings the registry keeps for the app.
        """
        return self.fetch_events(0, limit=1).last

    def events(self, since: int = 0, *, timeout: float | None = None,
               stop: threading.Event | None = None,
               pairing: str | None = None) -> Iterator[Event]:
        """Every event after the cursor ``since``, in order, once each: first those the app
        missed, then live ones; with ``pairing``, only that pairing's.

        ``since`` 0 starts with the oldest event the registry keeps for this app, of
        every pairing it ever had; :meth:`newest_seq` starts from now. Ends when
        ``timeout`` seconds pass without a new event (None: never) or ``stop`` is set.
        The app keeps the ``seq`` of the last event it handled as its cursor and resumes
        from it after a restart.
        """
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise ValueError(f"since must be a sequence number (0 or more), not {since!r}")
        for event in self._all_events(since, timeout, stop):
            if pairing is None or event.pairing == pairing:
                yield event

    def _all_events(self, since: int, timeout: float | None,
                    stop: threading.Event | None) -> Iterator[Event]:
        topic = self.topics.app_events(self.app_id)
        inbox = self._listen(topic)  # before fetching, so nothing falls in between
        cursor = EventCursor(self.fetch_events, since)
        try:
            yield from cursor.catch_up()
            idle = IdleTimer(timeout)
            for raw in received(inbox, idle, stop):
                try:
                    event = Event.from_wire(decode(raw, max_size=REPLY_LIMIT))
                except WireError as exc:
                    log.warning("ignoring an unreadable event on %s: %s", topic, exc)
                    continue
                if (yield from cursor.live(event)):
                    idle.restart()
        finally:
            self._unlisten(topic, inbox)

    def wait_for_decision(self, pairing: str, *, since: int = 0,
                          timeout: float | None = None) -> Event:
        """The event that decides a pending pairing: ``pairing-granted``, ``-denied`` or
        ``-ended``. Raises PairingTimeoutError after ``timeout`` seconds without it."""
        deciding = (EventKind.PAIRING_GRANTED, EventKind.PAIRING_DENIED,
                    EventKind.PAIRING_ENDED)
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.events(since, timeout=timeout, pairing=pairing):
            if event.kind in deciding:
                return event
            if deadline is not None and time.monotonic() > deadline:
                break
        raise PairingTimeoutError(f"no decision on pairing {pairing} within {timeout:g} s"
                                  if timeout is not None else f"no decision on {pairing}")

    def watch(self, handler: Callable[[Event], None], *, since: int = 0) -> EventWatch:
        """Call ``handler`` with every event after ``since`` on a thread of its own.

        Returns an :class:`EventWatch`; its ``cursor`` is the last event handled.
        """
        return EventWatch(self, handler, since)

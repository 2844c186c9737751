"""The project's clients send a request again, with the same Correlation Data, until the
registry answers (MQTT v5 section 4.10: request/response matched by Correlation Data),
and come back to a restarted broker within a few seconds; the registry answers a repeat
as one request (a registration with the same sequence number and content is answered as
before), so nothing is lost and nothing doubles."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.publisher import Publisher
from broker_bridge.storage import SqliteStore
from mps_mqtt.client import (
    RECONNECT_MAX_S,
    BrokerURL,
    Requester,
    Retry,
    connect,
    disconnect,
    new_client,
    reply_properties,
    subscribe,
)
from mps_sdk.client import PairingClient
from mps_testbed.stack import Mosquitto
from tests.helpers import PAUL_MSISDN, make_device, paul_and_apps, random_topics, running_bridge


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=2)
        yield s


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(workdir=tmp_path / "broker", persistence=True) as b:
        yield b


def registered(store: SqliteStore, eid: str) -> int:
    return sum(1 for e in store.audit() if e.action == "register" and e.subject == eid
               and e.outcome == "registered")


def test_retry_rejects_a_nonsensical_schedule() -> None:
    with pytest.raises(ValueError):
        Retry(first=0)
    with pytest.raises(ValueError):
        Retry(first=2, cap=1)
    assert RECONNECT_MAX_S <= 5


def test_a_request_sent_before_the_registry_listens_is_answered(
        store: SqliteStore, broker: Mosquitto) -> None:
    """Nobody is subscribed when the app asks (the broker drops the message); the SDK
    asks again and gets its answer once the registry is there."""
    topics = random_topics()
    started, done = threading.Event(), threading.Event()

    def late_bridge() -> None:
        time.sleep(1.5)
        with running_bridge(store, broker.url, topics, client_id="bridge-late"):
            started.set()
            done.wait(10)

    thread = threading.Thread(target=late_bridge, daemon=True)
    thread.start()
    with PairingClient(broker.url, "care", topics=topics, timeout=8,
                       retry=Retry(first=0.5, cap=1.0)) as app:
        answer = app.pair(PAUL_MSISDN, "support")
        assert answer.active and len(answer.devices) == 2
        assert started.is_set() and app.resent >= 1
    done.set()
    thread.join()


def test_without_retry_the_same_request_is_lost(store: SqliteStore, broker: Mosquitto
                                                ) -> None:
    topics = random_topics()
    with PairingClient(broker.url, "care", topics=topics, timeout=1.0, retry=None) as app, \
            pytest.raises(TimeoutError):
        app.pair(PAUL_MSISDN, "support")


def test_a_registration_survives_a_broker_restart_once(store: SqliteStore,
                                                        broker: Mosquitto) -> None:
    """The broker restarts between the device's connection and its registration: paho
    reconnects (at most RECONNECT_MAX_S apart), the request goes out again, and the
    registry stores the device once."""
    topics = random_topics()
    info = make_device(3)
    with running_bridge(store, broker.url, topics, client_id="bridge-restart"), \
            Publisher(broker.url, info.eid, prefix=topics.prefix,
                      retry=Retry(first=0.5, cap=1.0)) as device:
        broker.restart()
        reply = device.register(info, timeout=15)
        assert reply.is_ok, reply
        again = device.register(info, timeout=5)  # the same message once more
        assert again.is_ok
    assert registered(store, info.eid) == 1
    stored = store.device(info.eid)
    assert stored is not None and stored.iccid == info.iccid


def test_the_replies_subscription_comes_back_after_a_lost_session(
        broker: Mosquitto) -> None:
    """A client with a clean session loses its subscriptions when the broker restarts;
    the requester subscribes again and a reply reaches it."""
    topics = random_topics()
    url = BrokerURL.parse(broker.url)
    asker, answerer = new_client(), new_client()
    connect(asker, url)
    requester = Requester(asker, topics.app_replies("x"))
    requester.start()
    broker.restart()
    connect(answerer, url)

    def echo(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        answerer.publish(msg.properties.ResponseTopic, msg.payload, qos=1,
                         properties=reply_properties(msg.properties))

    answerer.on_message = echo
    subscribe(answerer, topics.app_requests("x"), timeout=5)
    try:
        assert requester.request(topics.app_requests("x"), b"ping", timeout=10,
                                 retry=Retry(first=0.5, cap=1.0)) == b"ping"
    finally:
        disconnect(asker)
        disconnect(answerer)

"""The SDK's requests are idempotent across a lost reply, and made again after a second
when the registry answers ``busy`` (over the app's share). When the first attempt took
effect and only its reply was lost, the repeat (same Correlation Data, MQTT v5 section
4.10) finds the work done, refused as ``not-paired`` or ``answered``; the SDK confirms
that from the registry's state and answers what the first reply would have said. A
refusal the state does not confirm stays a refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from broker_bridge.storage import SqliteStore
from mps_sdk.client import BUSY_PAUSE, PairingClient, RegistryClient
from mps_sdk.consent import ConsentClient
from mps_sdk.errors import NotFoundError, RequestError
from mps_testbed.stack import Mosquitto
from mps_wire.errors import ErrorCode
from mps_wire.topics import Topics
from tests.helpers import PAUL, PAUL_MSISDN, paul_and_apps, running_bridge


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=1)
        yield s


def drop_next_reply(client: RegistryClient) -> list[bytes]:
    """Lose the client's next reply on the way in (as a broker restart or a dropped
    connection would); the lost payloads are collected in the list returned."""
    requester, paho = client._requester, client._client
    assert requester is not None and paho is not None
    lost: list[bytes] = []

    def lossy(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if not lost:
            lost.append(bytes(msg.payload))
            return
        requester._on_reply(c, u, msg)

    paho.message_callback_add(client._replies_topic(), lossy)
    return lost


def test_an_unpairing_whose_reply_was_lost_is_answered_by_its_repeat(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics) -> None:
    with running_bridge(store, mosquitto.url, topics), \
            PairingClient(mosquitto.url, "care", topics=topics, timeout=10) as care:
        paired = care.pair(PAUL_MSISDN, "support").pairing
        lost = drop_next_reply(care)
        assert care.unpair(PAUL_MSISDN) == paired
        assert lost and care.resent >= 1  # the first answer was lost; the repeat counted
        # One unpairing, one event.
        ended = [e for e in store.events_since("care", 0) if e.kind.value == "pairing-ended"]
        assert [e.payload["pairing"] for e in ended] == [paired]


def test_a_lost_reply_does_not_make_a_refusal_a_success(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics) -> None:
    with running_bridge(store, mosquitto.url, topics), \
            PairingClient(mosquitto.url, "coach", topics=topics, timeout=10) as coach:
        lost = drop_next_reply(coach)
        with pytest.raises(NotFoundError):
            coach.unpair(PAUL_MSISDN)  # never paired: nothing ended, by either attempt
        assert lost


@pytest.mark.parametrize("approve", [True, False])
def test_a_consent_answer_whose_reply_was_lost_is_answered_by_its_repeat(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics, approve: bool) -> None:
    with running_bridge(store, mosquitto.url, topics), \
            PairingClient(mosquitto.url, "health", topics=topics, timeout=10) as health, \
            ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=10) as user:
        pending = health.pair(PAUL_MSISDN, "health-monitoring")
        prompt = user.wait_for_prompt(app="health", timeout=5)
        lost = drop_next_reply(user)
        answer = user.approve if approve else user.deny
        assert answer(prompt.prompt) == pending.pairing
        assert lost and user.resent >= 1
        decision = health.wait_for_decision(pending.pairing, timeout=5)
        assert decision.kind.value == ("pairing-granted" if approve else "pairing-denied")
        # The other answer, repeated, is the refusal it is: the prompt was answered.
        lost = drop_next_reply(user)
        with pytest.raises(NotFoundError):
            (user.deny if approve else user.approve)(prompt.prompt)


def test_a_request_over_the_apps_share_is_made_again_after_a_second(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics) -> None:
    with running_bridge(store, mosquitto.url, topics, app_rate=0.5, app_burst=1), \
            PairingClient(mosquitto.url, "care", topics=topics, timeout=10) as care:
        assert care.devices(PAUL_MSISDN)  # the burst
        started = time.monotonic()
        assert care.devices(PAUL_MSISDN)  # refused busy at first, answered after pauses
        assert time.monotonic() - started >= BUSY_PAUSE
    # The refusals are on record (in sum).
    assert any(e.actor == "app:care" and e.outcome == "busy" for e in store.audit())
    with running_bridge(store, mosquitto.url, topics, app_rate=0.5, app_burst=1), \
            PairingClient(mosquitto.url, "care", topics=topics, timeout=10,
                          retry=None) as once:
        once.devices(PAUL_MSISDN)
        with pytest.raises(RequestError) as refused:
            once.devices(PAUL_MSISDN)  # without retry: the refusal as it came
        assert refused.value.code is ErrorCode.BUSY

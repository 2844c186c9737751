"""The bridge's client without paho's per-message garbage (mps_mqtt.lean.spare_matching)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from mps_mqtt.client import new_client
from mps_mqtt.lean import spare_matching


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _deliver(client: mqtt.Client, count: int) -> None:
    for mid in range(1, count + 1):
        client._handle_on_message(mqtt.MQTTMessage(mid, b"mps/v1/apps/care/requests"))


def _garbage_cycles(client: mqtt.Client, count: int) -> int:
    got: list[int] = []
    client.on_message = lambda _c, _u, msg: got.append(msg.mid)
    _deliver(client, count)
    assert got == list(range(1, count + 1))
    return gc.collect()


def test_messages_leave_no_cycles_to_collect(collector_off: None) -> None:
    assert _garbage_cycles(new_client(), 50) >= 50  # paho's own matcher: one per message
    client = new_client()
    spare_matching(client)
    assert _garbage_cycles(client, 50) == 0


def test_callbacks_per_filter_are_still_called() -> None:
    client = new_client()
    spare_matching(client)
    seen: list[tuple[str, Any]] = []
    client.message_callback_add("mps/v1/apps/+/requests", lambda _c, _u, m: seen.append(
        ("filtered", m.mid)))
    client.on_message = lambda _c, _u, m: seen.append(("any", m.mid))
    _deliver(client, 1)
    client._handle_on_message(mqtt.MQTTMessage(2, b"mps/v1/users/x"))
    assert seen == [("filtered", 1), ("any", 2)]

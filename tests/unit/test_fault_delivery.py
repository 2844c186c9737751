"""Delivery through an unreachable broker: exponential backoff with jitter, retries of
the very same message, and when to give up; the outbox's recovery after a replay
refusal."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.outbox import Outbox
from agent.publisher import Backoff, Delivery, DeliveryError
from mps_mqtt.client import BrokerUnreachableError, RequestTimeoutError
from mps_wire.errors import ErrorCode
from mps_wire.messages import DeviceInfo, Reply, Status
from tests.wire_samples import sample_device


class FlakyPublisher:
    """Fails ``failures`` times (unreachable, then silent), then answers ``reply``."""

    def __init__(self, failures: int, reply: Reply | None = None) -> None:
        self.failures = failures
        self.reply = reply or Reply.ok(result="registered")
        self.opened = 0
        self.sent: list[DeviceInfo] = []
        self.is_open = False

    def open(self) -> Any:
        self.opened += 1
        if self.failures > 0 and self.opened % 2:
            self.failures -= 1
            raise BrokerUnreachableError("connection refused")
        self.is_open = True
        return self

    def register(self, info: DeviceInfo, *, timeout: float) -> Reply:
        self.sent.append(info)
        if self.failures > 0:
            self.failures -= 1
            raise RequestTimeoutError("no reply")
        return self.reply


FAST = Backoff(initial=0.01, factor=2.0, maximum=0.04)


def test_backoff_grows_to_its_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, maximum=8.0)
    delays = backoff.delays(random.Random(1))
    got = [next(delays) for _ in range(8)]
    steps = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(step / 2 <= d <= step for d, step in zip(got, steps, strict=True)), got
    other = backoff.delays(random.Random(2))
    assert got != [next(other) for _ in range(8)]  # two devices do not retry in lockstep
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)


def test_retries_until_delivered_with_the_same_message() -> None:
    pub = FlakyPublisher(failures=4)
    info = sample_device(seq=7)
    delivery = Delivery(pub, retry_for=5.0, backoff=FAST)  # type: ignore[arg-type]
    reply = delivery.deliver(info, timeout=1)
    assert reply.is_ok and delivery.attempts == 5
    assert pub.sent and all(sent == info for sent in pub.sent)


def test_one_attempt_without_a_retry_window() -> None:
    delivery = Delivery(FlakyPublisher(failures=1), backoff=FAST)  # type: ignore[arg-type]
    with pytest.raises(DeliveryError, match="1 attempt") as caught:
        delivery.deliver(sample_device(), timeout=1)
    assert caught.value.attempts == 1


def test_the_window_closes_and_stop_interrupts() -> None:
    pub = FlakyPublisher(failures=10_000)
    with pytest.raises(DeliveryError) as caught:
        Delivery(pub, retry_for=0.2, backoff=FAST).deliver(  # type: ignore[arg-type]
            sample_device(), timeout=1)
    assert 2 <= caught.value.attempts < 40
    stop = threading.Event()
    stop.set()
    with pytest.raises(DeliveryError, match=r"not delivered|stopped"):
        Delivery(FlakyPublisher(failures=5), retry_for=float("inf"),  # type: ignore[arg-type]
                 backoff=FAST, stop=stop).deliver(sample_device(), timeout=1)


def test_internal_errors_are_retried_refusals_are_not() -> None:
    internal = Reply.error(ErrorCode.INTERNAL, "store failed")
    pub = FlakyPublisher(failures=0, reply=internal)
    with pytest.raises(DeliveryError, match="registry failed"):
        Delivery(pub, retry_for=0.1, backoff=FAST).deliver(  # type: ignore[arg-type]
            sample_device(), timeout=1)
    assert len(pub.sent) >= 2
    denied = Reply(Status.DENIED, code=ErrorCode.BAD_SIGNATURE, message="forged")
    pub = FlakyPublisher(failures=0, reply=denied)
    reply = Delivery(pub, retry_for=5, backoff=FAST).deliver(  # type: ignore[arg-type]
        sample_device(), timeout=1)
    assert reply.code is ErrorCode.BAD_SIGNATURE and len(pub.sent) == 1


def test_outbox_resumes_above_the_registry_s_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.json").load()
    first = box.stage(lambda seq: sample_device(seq=seq))
    assert first.seq == 1
    box.resume_after(41)
    assert box.pending is None
    again = Outbox(tmp_path / "outbox.json").load()  # durable
    assert again.stage(lambda seq: sample_device(seq=seq)).seq == 42
    again.resume_after(3)  # never backwards
    assert Outbox(tmp_path / "outbox.json").load().seq == 42
    with pytest.raises(ValueError):
        again.resume_after(-1)

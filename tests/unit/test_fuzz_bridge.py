"""CBOR from anywhere into the registry, in-process: every payload on every topic gets a
reply with a status and a stable code, nothing is stored for a refused registration,
and every refused registration is audited (``mps-bench fuzz`` runs 10,000)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from broker_bridge.service import Bridge
from mps_bench.fuzz import (
    BridgeChecker,
    bridge_inputs,
    fuzz_bridge,
    fuzz_device,
    fuzz_key,
)
from mps_wire.messages import Status
from mps_wire.registration import encode_registration
from mps_wire.topics import Topics

SEEN: dict[str, int] = {}


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeChecker]:
    with fuzz_bridge(tmp_path_factory.mktemp("fuzz")) as bridge:
        yield BridgeChecker(bridge)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=bridge_inputs())
def test_fuzzed_payloads_get_a_stable_answer_and_change_nothing_when_refused(
        checker: BridgeChecker, case: tuple[str, bytes]) -> None:
    outcome = checker(case)
    assert outcome is not None
    SEEN[outcome.reply.status.value] = SEEN.get(outcome.reply.status.value, 0) + 1


def test_the_fuzz_reached_acceptance_and_refusal(checker: BridgeChecker) -> None:
    if not SEEN:
        pytest.skip("the fuzz test did not run first")
    # Not all noise: some fuzzed messages were good enough to be accepted or parked.
    assert SEEN.get("error", 0) > 0 and SEEN.get("denied", 0) > 0
    assert SEEN.get("ok", 0) + SEEN.get("pending", 0) > 0, SEEN


def test_the_bridge_still_registers_after_the_fuzz(checker: BridgeChecker) -> None:
    bridge: Bridge = checker.bridge
    last = bridge.store.last_registration(fuzz_device(0).eid)
    good = fuzz_device(0, seq=(last[0] if last else 0) + 1)
    outcome = bridge.dispatch(Topics().device_register(good.eid),
                              encode_registration(good, fuzz_key(0)))
    assert outcome is not None and outcome.reply.status is Status.OK
    problems = bridge.store._read("PRAGMA integrity_check")  # type: ignore[attr-defined]
    assert problems == [("ok",)]

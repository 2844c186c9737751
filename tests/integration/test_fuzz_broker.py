"""Fuzzed CBOR over a real Mosquitto into a running bridge: every request is answered
without an internal error and the bridge keeps serving (``mps-bench fuzz`` sends
more)."""

from __future__ import annotations

from pathlib import Path

from mps_bench.fuzz import fuzz_broker_edge


def test_a_few_hundred_fuzzed_requests_over_the_broker(tmp_path: Path) -> None:
    assert fuzz_broker_edge(tmp_path, 300, seed_value=1234) == 300

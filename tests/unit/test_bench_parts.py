"""Pieces of ``mps-bench``: the bulk registry's identifiers are valid and its shape as
documented; percentiles; the profile summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mps_bench import dataset
from mps_bench.profiling import summarize
from mps_bench.stats import Summary, percentile, ratio
from mps_wire.identifiers import (
    make_eid,
    make_iccid,
    validate_eid,
    validate_iccid,
    validate_imei,
    validate_msisdn,
)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 99, 999, 1000, 123_456, 999_999, 1_000_000,
                               1_999_999])
def test_identifiers_are_valid(n: int) -> None:
    assert validate_eid(dataset.eid(n)) == dataset.eid(n) == make_eid(f"89049032{n:022d}")
    assert validate_iccid(dataset.iccid(n)) == dataset.iccid(n) == make_iccid(
        f"8949262{n:012d}")
    assert validate_imei(dataset.imei(n)) == dataset.imei(n)
    assert validate_msisdn(dataset.msisdn(n % 300_000)) == dataset.msisdn(n % 300_000)


def test_identifiers_are_distinct_across_a_range() -> None:
    numbers = range(0, 2_000_000, 1_237)
    for make in (dataset.eid, dataset.iccid, dataset.imei):
        assert len({make(n) for n in numbers}) == len(numbers)


def test_dataset_rows() -> None:
    data = dataset.Dataset(devices=10, contracts=3, spare=2)
    devices = list(data.device_rows())
    subs = list(data.subscription_rows())
    assert len(devices) == 10 and len(subs) == 12 and len(list(data.contract_rows())) == 3
    assert [s[2] for s in subs[:4]] == [dataset.msisdn(0), dataset.msisdn(1),
                                        dataset.msisdn(2), None]
    assert {d[1] for d in devices} == {dataset.contract_id(c) for c in range(3)}
    with pytest.raises(ValueError):
        dataset.Dataset(devices=2, contracts=3)


def test_percentiles_and_summaries() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0, 99.0, 100.0)
    assert math.isnan(percentile([], 50))
    s = Summary.of([0.002, 0.001, 0.003], elapsed=0.5)
    assert (s.p50, s.max, s.per_s) == (0.002, 0.003, 6.0)
    assert ratio(2.0, 1.0) == 2.0 and math.isnan(ratio(1.0, 0.0))


def test_profile_summary(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "thread (0x1);run (a/loop.py:10);handle (b/service.py:20);commit (c/sql.py:5) 6\n"
        "thread (0x1);run (a/loop.py:10);handle (b/service.py:21) 4\n")
    text, tops = summarize(raw)
    assert tops["self"][0].function == "commit (c/sql.py)" and tops["self"][0].share == 0.6
    assert {h.function: h.share for h in tops["total"]}["handle (b/service.py)"] == 1.0
    assert "10 samples" in text

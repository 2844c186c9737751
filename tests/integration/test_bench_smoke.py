"""``mps-bench`` end to end with tiny counts: every part runs and reports its figures in
the documented places. Structure only: speed is the benchmark's business, not a test's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mps_bench.cli import main
from tests.postgres_support import fresh_schema


def run_bench(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "out"
    report = tmp_path / "bench.json"
    code = main(["--smoke", "--sections", "query,ingest,scale", "--out", str(out),
                 "--json", str(report), *extra])
    assert code == 0
    result: dict[str, Any] = json.loads(report.read_text())
    assert not (out / "work").exists()  # work files go unless --keep
    return result


def check(result: dict[str, Any]) -> None:
    query, ingest, scale = result["query"], result["ingest"], result["scale"]
    for key in ("p50_ratio", "p99_ratio", "throughput_ratio"):
        assert query[key] > 0
    for mode in ("sequential", "pipelined"):
        assert query[mode]["lost"] == {"echo": 0, "bridge": 0}
        assert query[mode]["errors"] == 0  # the bridge answered ok, with devices
        assert query[mode]["bridge"]["n"] == query[mode]["echo"]["n"] > 0
    assert ingest["per_s"] > 0 and ingest["decode_per_s"] > 0
    assert ingest["errors"] == 0 and ingest["lost"] == {"decode": 0, "bridge": 0}
    assert ingest["signed"] and ingest["durable"]
    assert set(ingest["registry_alone_per_s"]) == {"commit_each", "batched_500"}
    assert scale["1"]["lost"] == scale["2"]["lost"] == 0
    assert set(result["targets"]) >= {
        "query.p50_ratio", "query.p99_ratio", "query.throughput_ratio", "ingest.per_s",
        "firstboot.median_s", "download.emu_ms", "download.pcsc_ms", "agent.rss_mb"}
    assert result["targets"]["query.p50_ratio"]["value"] == query["p50_ratio"]


def test_bench_on_sqlite(tmp_path: Path) -> None:
    result = run_bench(tmp_path)
    check(result)
    assert result["registry"]["store"] == "sqlite"
    pytest.importorskip("matplotlib")
    assert Path(result["run"]["png"]).stat().st_size > 0


def test_bench_on_postgresql(tmp_path: Path) -> None:
    with fresh_schema("bench") as url:
        result = run_bench(tmp_path, "--store", url)
    check(result)
    assert result["registry"]["store"] == "postgresql"

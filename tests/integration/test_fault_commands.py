"""``mps-bench faults`` and ``mps-bench fuzz`` as scripts use them: a table on stdout,
the JSON summary in the agreed shape, an exit status that says whether anything broke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mps_bench.cli import main


def test_faults_command_writes_the_summary(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "faults.json"
    details = tmp_path / "details.json"
    status = main(["faults", "--only", "card-removed", "--skip-attacks", "--json", str(out),
                   "--details", str(details)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "card-removed" in printed and "total: 1 sent, 1 stored, 0 lost" in printed
    summary = json.loads(out.read_text())
    assert summary == {"faults": {"sent": 1, "stored": 1, "lost": 0, "duplicated": 0}}
    runs = json.loads(details.read_text())["runs"]
    assert [r["name"] for r in runs] == ["card-removed"]
    assert main(["faults", "--registrations", "0"]) == 2


def test_fuzz_command_counts_cases_per_edge(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fuzz.json"
    status = main(["fuzz", "--cases", "40", "--edge", "der-lpa", "--edge", "cbor-bridge",
                   "--seed", "3", "--json", str(out)])
    assert status == 0, capsys.readouterr().out
    edges = json.loads(out.read_text())["edges"]
    assert [(e["edge"], e["cases"], e["status"]) for e in edges] == [
        ("der-lpa", 40, "ok"), ("cbor-bridge", 40, "ok")]
    assert main(["fuzz", "--edge", "nonsense"]) == 2

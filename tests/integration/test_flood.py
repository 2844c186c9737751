"""One app floods the registry: the flood is refused ``busy`` beyond the app's share
(and audited in sum) while another app's every query is answered. The latency figures
themselves are measured by ``mps-bench faults`` only."""

from __future__ import annotations

from pathlib import Path

from broker_bridge.storage import SqliteStore
from mps_bench.flood import FLOODER, run_flood


def test_a_flood_beyond_its_share_is_refused_and_the_other_app_is_answered(
        tmp_path: Path) -> None:
    report = run_flood(tmp_path, flood=500, probes=20, timeout=60, pace=0.05,
                       bridge_args=("--app-rate", "50", "--app-burst", "30"))
    assert report["flood.sent"] == 500
    assert report["flood.probes"] == 20
    # A steady query refused busy, or not answered within 10 s, would count 10,000 ms.
    assert report["flood.max_ms"] is not None and report["flood.max_ms"] < 10_000
    assert {"flood.p50_ratio", "flood.max_ms"} <= set(report)
    with SqliteStore(tmp_path / "registry.db") as store:
        busy = [e for e in store.audit() if e.actor == f"app:{FLOODER}"
                and e.outcome == "busy"]
        answered = [e for e in store.audit() if e.actor == f"app:{FLOODER}"
                    and e.action == "devices"]
    refused = sum(int(e.detail["refused"]) for e in busy)
    assert refused > 0
    # Nothing of the flood is lost: what was not refused was answered (and audited).
    assert refused + len(answered) == 500

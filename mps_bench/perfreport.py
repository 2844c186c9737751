"""The performance run's plans (full, quick, smoke), what it measured, the targets it
checks, and the report as text."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mps_bench import device, download
from mps_common.cli import table

SECTIONS = ("query", "ingest", "scale", "firstboot", "download", "lpa")


@dataclass(frozen=True)
class Plan:
    """How much of everything one run does."""

    name: str
    devices: int
    contracts: int
    seq_rounds: int
    seq_per_round: int
    pipe_rounds: int
    pipe_per_round: int
    ingest_rounds: int
    ingest_per_round: int
    direct: int  # registrations through the registry alone, per variant
    scale_members: tuple[int, ...]
    scale_requests: int
    boots: int
    downloads: int = 1  # per card link
    lpa_runs: int = 10  # timed mps-lpa runs of each command (process start to exit)
    in_flight: int = 64
    ingest_in_flight: int = 200
    timeout: float = 60.0
    warm_up: int = 50
    profile_seconds: float = 4.0

    @property
    def spare(self) -> int:
        """Free subscriptions: new devices for ingest (one and two bridges), direct runs
        and profiling."""
        return 2 * self.ingest_rounds * self.ingest_per_round + 2 * self.direct + 4000


FULL = Plan("full", devices=1_000_000, contracts=300_000, seq_rounds=10, seq_per_round=200,
            pipe_rounds=4, pipe_per_round=2500, ingest_rounds=4, ingest_per_round=2500,
            direct=2000, scale_members=(1, 2, 4), scale_requests=3000, boots=20,
            downloads=3)
QUICK = Plan("quick", devices=30_000, contracts=9_000, seq_rounds=4, seq_per_round=100,
             pipe_rounds=2, pipe_per_round=600, ingest_rounds=2, ingest_per_round=600,
             direct=300, scale_members=(1, 2, 4), scale_requests=400, boots=4,
             timeout=30.0, profile_seconds=3.0)
SMOKE = Plan("smoke", devices=300, contracts=90, seq_rounds=2, seq_per_round=10,
             pipe_rounds=2, pipe_per_round=40, ingest_rounds=2, ingest_per_round=30,
             direct=10, scale_members=(1, 2), scale_requests=40, boots=1, timeout=20.0,
             warm_up=5, ingest_in_flight=20, profile_seconds=1.0, lpa_runs=2)


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets: ``value`` compared with ``limit``."""

    name: str
    value: float | None
    op: str  # "<=" or ">="
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return None
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "target": f"{self.op} {self.limit:g}{self.unit}",
                "met": self.met}


@dataclass
class PerfReport:
    """Everything one run measured, for the table, the JSON and the PNG."""

    results: dict[str, Any] = field(default_factory=dict)
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.results.setdefault(name, {})
        return found


def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def targets(report: PerfReport) -> list[Target]:
    r = report.results
    return [
        Target("query.p50_ratio", _get(r, "query.p50_ratio"), "<=", 1.15, "x"),
        Target("query.p99_ratio", _get(r, "query.p99_ratio"), "<=", 1.3, "x"),
        Target("query.throughput_ratio", _get(r, "query.throughput_ratio"), ">=", 0.9, "x"),
        Target("ingest.per_s", _get(r, "ingest.per_s"), ">=", 8000, "/s"),
        Target("ingest.floor_ratio", _get(r, "ingest.floor_ratio"), ">=", 0.8, "x"),
        Target("firstboot.median_s", _get(r, "firstboot.median_s"), "<=", 1.0, " s"),
        Target("firstboot.eim_median_s", _get(r, "firstboot.eim_median_s"), "<=", 1.0, " s"),
        Target("download.emu_ms", _get(r, "download.emu_ms"), "<=", 150, " ms"),
        Target("download.pcsc_ms", _get(r, "download.pcsc_ms"), "<=", 400, " ms"),
        Target("agent.rss_mb", _get(r, "agent.rss_mb"), "<=", 40, " MB"),
        Target("lpa.chip_info_wall_ms", _get(r, "lpa.chip_info_wall_ms"), "<=", 80, " ms"),
        Target("lpa.download_wall_ms", _get(r, "lpa.download_wall_ms"), "<=", 120, " ms"),
    ]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(report: PerfReport, targets: list[Target]) -> str:
    """The human-readable report."""
    r = report.results
    run = r["run"]
    parts = [f"mps-bench perf ({run['plan']}; store {run['store']}; {run['cpus']} CPUs; "
             f"{run.get('seconds', '?')} s)"]
    reg = r.get("registry")
    if reg:
        parts.append(f"registry: {reg['devices']:,} devices on {reg['contracts']:,} contracts "
                     f"({reg['store']}), loaded in {reg['load_s']} s")
    parts += [show(r[name]) for name, show in _SECTIONS if r.get(name)]
    rows = [[t.name, _fmt(t.value, 3), f"{t.op} {t.limit:g}{t.unit}",
             {True: "met", False: "MISSED", None: "not measured"}[t.met]] for t in targets]
    parts.append("targets\n" + table(["", "value", "target", ""], rows))
    if report.notes:
        parts.append("notes\n" + "\n".join(f"- {n}" for n in report.notes))
    return "\n\n".join(parts)


_RATIO_OF = {"p50_ms": "p50_ratio", "p99_ms": "p99_ratio", "per_s": "throughput_ratio"}


def _query(q: dict[str, Any]) -> str:
    rows = []
    for mode in ("sequential", "pipelined"):
        m = q[mode]
        label = "sequential" if mode == "sequential" else f"{m['in_flight']} in flight"
        for metric, key in (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("per s", "per_s")):
            rows.append([f"{label} {metric}", _fmt(m["echo"][key]), _fmt(m["bridge"][key]),
                         _fmt(m[_RATIO_OF[key]], 3)])
    alone = q.get("registry_alone", {})
    rows.append(["registry alone, ms per request", "", _fmt(alone.get("durable_ms"), 3), ""])
    rows.append(["  ...not waiting for the disk", "", _fmt(alone.get("no_disk_wait_ms"), 3),
                 ""])
    return ("a. pairing query (devices request) vs bare MQTT v5 echo\n"
            + table(["", "echo", "bridge", "ratio"], rows))


def _ingest(ing: dict[str, Any]) -> str:
    direct = ing.get("registry_alone_per_s", {})
    rows = [["registrations per s", _fmt(ing["decode_per_s"], 0), _fmt(ing["per_s"], 0),
             _fmt(ing["ratio"], 3)],
            ["p50 ms", _fmt(ing["decode"]["p50_ms"]), _fmt(ing["bridge"]["p50_ms"]), ""],
            ["registry alone, commit each /s", "", _fmt(direct.get("commit_each"), 0), ""],
            ["registry alone, 500 per commit /s", "", _fmt(direct.get("batched_500"), 0), ""]]
    two = ing.get("bridges_2")
    if two:
        rows.append(["2 bridges in one group /s", _fmt(two["decode_per_s"], 0),
                     _fmt(two["per_s"], 0), _fmt(two["ratio"], 3)])
    how = "signed, verified" if ing["signed"] else "unsigned"
    return (f"b. registration ingest ({how}, durable) vs decode-only\n"
            + table(["", "decode-only", "bridge", "ratio"], rows))


def _firstboot(fb: dict[str, Any]) -> str:
    rows = [[device.KINDS[k], _fmt(fb[k]["n"]), _fmt(fb[k]["median_s"], 3),
             _fmt(fb[k]["in_agent_median_s"], 3), _fmt(fb[k]["download_median_s"], 3),
             _fmt(fb[k]["rss_mb_max"], 1)]
            for k in ("emu", "pcsc", "eim") if k in fb]
    return ("c/e. first boot to registered (median: agent process, inside the agent, "
            "its download step)" + ("" if fb["download_included"] else ", without download")
            + "\n" + table(["card", "boots", "median s", "in agent s", "download s",
                            "peak RSS MB"], rows))


def _download(dl: dict[str, Any]) -> str:
    if not dl["available"]:
        return f"d. profile download: {dl['why']}"
    rows = [[k, _fmt(dl[k]["n"]), _fmt(dl[k]["median_ms"], 1), _fmt(dl[k]["apdus"])]
            for k in download.KINDS]
    return ("d. one profile download (median; the LPA's own time)\n"
            + table(["card link", "downloads", "ms", "APDUs"], rows))


def _scale(sc: dict[str, Any]) -> str:
    rows = [[k, _fmt(v["per_s"], 0), _fmt(v["speedup"], 2), _fmt(v["echo_per_s"], 0),
             _fmt(v["throughput_ratio"], 3)]
            for k, v in sc.items() if isinstance(v, dict)]
    return (f"f. bridge processes in one shared-subscription group "
            f"({sc['in_flight']} in flight)\n"
            + table(["bridges", "per s", "speedup", "echo per s", "ratio"], rows))


def _lpa(lp: dict[str, Any]) -> str:
    if lp.get("chip_info_wall_ms") is None:
        return f"g. mps-lpa wall time: {lp.get('why', 'not measured')}"
    return (f"g. mps-lpa wall time through pcscd + vpcd (median of {lp['runs']}, process "
            f"start to exit): chip info {_fmt(lp['chip_info_wall_ms'], 1)} ms, profile "
            f"download {_fmt(lp['download_wall_ms'], 1)} ms; the interpreter alone "
            f"{_fmt(lp['python_start_wall_ms'], 1)} ms; load average "
            f"{' -> '.join(str(x) for x in lp.get('load', [])) or '-'}")


_SECTIONS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("query", _query), ("ingest", _ingest), ("firstboot", _firstboot),
    ("download", _download), ("scale", _scale), ("lpa", _lpa))

"""``mps-bench perf`` (also plain ``mps-bench``): how fast the system is, as ratios against
a baseline measured in the same run on the same broker.

a. pairing queries through the bridge against a bare MQTT v5 echo, interleaved:
   p50/p99/throughput, sequential and 64 in flight, on a registry of 1,000,000 devices
   on 300,000 contracts (``--quick``: 30,000 on 9,000);
b. registration ingest through the bridge (durable, signatures verified) against
   decode-only ingestion, with one bridge process and with two in one group; and the
   registry alone, a commit per registration and batched;
c. first boot of an emulated device to "registered", card in-process and behind
   pcscd + vpcd;
d. one profile download over emu, pcsc and at (when this build can);
e. the agent's peak memory during first boot;
f. 1, 2 and 4 bridge processes in one shared-subscription group.

Prints a table; ``--json FILE`` writes every figure, ``--png FILE`` the latency
distributions, ``--profile`` py-spy profiles of the bridge under load (in the output
directory). Targets are checked and reported; the exit code is 0 whether or not they are
met (1 when something could not be measured at all).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_bridge.errors import BridgeError
from mps_bench import dataset, device, download, ingest, plot, profiling, query
from mps_bench.mqttload import LoadClient, LoadError, Request
from mps_bench.stack import Stack, StoreTarget, running_stack, topics
from mps_bench.stats import ratio
from mps_mqtt.client import BrokerURL
from mps_testbed.stack.mosquitto import StackError

SECTIONS = ("query", "ingest", "scale", "firstboot", "download")


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
             warm_up=5, ingest_in_flight=20, profile_seconds=1.0)


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
class Report:
    """Everything one run measured, for the table, the JSON and the PNG."""

    results: dict[str, Any] = field(default_factory=dict)
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.results.setdefault(name, {})
        return found


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``perf`` to ``mps-bench``."""
    p = subparsers.add_parser("perf", help="performance figures with ratios against "
                              "baselines of the same run (the default command)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smaller registry and counts: done in under a minute")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON to FILE")
    p.add_argument("--png", metavar="FILE",
                   help="draw the latency distributions (default: OUT/latency.png)")
    p.add_argument("--store", default="sqlite", metavar="sqlite|postgresql://...",
                   help="the bridges' store: an SQLite file (default) or a PostgreSQL "
                        "database (a fresh schema, dropped afterwards)")
    p.add_argument("--out", default="out/bench", metavar="DIR",
                   help="output directory: work files, logs, profiles (default out/bench)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated parts to run (default all: {','.join(SECTIONS)})")
    p.add_argument("--profile", action="store_true",
                   help="also record py-spy profiles of the bridge under load in OUT/profiles")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (and a PostgreSQL schema) afterwards")
    p.add_argument("--seed", type=int, default=7, help="seed of the random phone numbers")
    # Even smaller counts, for the test suite's smoke test: structure, not speed.
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        print(f"mps-bench: unknown sections {unknown}; choose from {', '.join(SECTIONS)}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        target = StoreTarget.choose(args.store, out / "work", keep=args.keep)
    except ValueError as exc:
        print(f"mps-bench: {exc}", file=sys.stderr)
        return 2
    say = _sayer()
    report = Report()
    report.results["run"] = {
        "plan": plan.name, "store": target.label, "sections": wanted,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
    }
    started = time.monotonic()
    failed = False
    try:
        if {"query", "ingest", "scale"} & set(wanted):
            try:
                _transport_sections(plan, args, target, out, wanted, report, say)
            except (BridgeError, StackError, LoadError, OSError) as exc:
                # Reported with what was measured before it; the exit code says so.
                failed = True
                report.notes.append(f"the transport sections stopped: {exc}")
                say(f"stopped: {exc}")
        if "firstboot" in wanted:
            _firstboot(plan, report, say)
        if "download" in wanted:
            _download(plan, out, report, say)
    finally:
        if not args.keep:
            shutil.rmtree(out / "work", ignore_errors=True)
    report.results["run"]["seconds"] = round(time.monotonic() - started, 1)
    targets = _targets(report)
    report.results["targets"] = {t.name: t.to_json() for t in targets}
    report.results["notes"] = report.notes
    print(render(report, targets))
    png = Path(args.png) if args.png else out / "latency.png"
    why = plot.available()
    if why is None and report.latencies:
        plot.draw(png, list(report.latencies.items()),
                  title=f"mps-bench ({plan.name}, store {target.label})")
        report.results["run"]["png"] = str(png)
        print(f"latency distributions: {png}")
    elif why is not None:
        report.notes.append(f"no PNG: {why}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.results, indent=2, default=_jsonable)
                                   + "\n")
    return 1 if failed else 0


def _jsonable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _sayer() -> Callable[[str], None]:
    """Progress lines on stderr (stdout keeps the table)."""
    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {line}", file=sys.stderr, flush=True)

    return say


# --- a, b, f: through the broker -------------------------------------------------------

def _transport_sections(plan: Plan, args: argparse.Namespace, target: StoreTarget, out: Path,
                        wanted: list[str], report: Report, say: Callable[[str], None]
                        ) -> None:
    rng = random.Random(args.seed)
    data = dataset.Dataset(plan.devices, plan.contracts, spare=plan.spare)
    spare = iter(range(plan.devices, plan.devices + plan.spare))
    bridge_topics, base_topics = topics()
    sign = ingest.signing()
    with running_stack(out / "work", target) as stack:
        try:
            say(f"loading a registry of {data.devices:,} devices on {data.contracts:,} "
                f"contracts into {target.label}")
            store = target.open()
            try:
                load_s = dataset.load(store, data)
                ingest.enroll(store, range(plan.devices, plan.devices + plan.spare), sign)
            finally:
                store.close()
            report.section("registry").update(
                devices=data.devices, contracts=data.contracts, store=target.label,
                load_s=round(load_s, 1), rows_per_s=round(
                    (2 * data.contracts + 2 * data.devices + data.spare) / load_s))
            signatures = "required" if sign.signed else "enrolled"
            stack.start_bridges(1, signatures=signatures)
            stack.start_responder("echo")
            stack.start_responder("decode")
            reply_filters = [bridge_topics.app_replies(dataset.APP_ID),
                             base_topics.app_replies(dataset.APP_ID),
                             f"{bridge_topics.prefix}/devices/+/reply",
                             f"{base_topics.prefix}/devices/+/reply"]
            with LoadClient(BrokerURL.parse(stack.url), reply_filters) as client:
                def devices_requests(which: str, n: int) -> list[Request]:
                    t = bridge_topics if which == "bridge" else base_topics
                    return query.devices_requests(t, data, n, rng)

                if "query" in wanted:
                    _query(plan, client, devices_requests, target, data, report, say)
                if "ingest" in wanted:
                    _ingest(plan, client, target, spare, sign, report, say)
                    _ingest_scaled(plan, stack, client, spare, sign, signatures, report,
                                   say)
                if args.profile:
                    _profile(plan, stack, client, devices_requests, spare, sign, out,
                             report, say)
                if "scale" in wanted:
                    _scale(plan, stack, client, devices_requests, signatures, report, say)
        finally:
            stack.stop_bridges()
            target.drop()


def _query(plan: Plan, client: LoadClient,
           requests: Callable[[str, int], list[Request]], target: StoreTarget,
           data: dataset.Dataset, report: Report, say: Callable[[str], None]) -> None:
    query.warm_up(client, requests, plan.warm_up, plan.timeout)
    say(f"query: {plan.seq_rounds} x {plan.seq_per_round} sequential requests per target, "
        "interleaved")
    seq = query.compare(client, requests, mode="sequential", in_flight=1,
                        per_round=plan.seq_per_round, rounds=plan.seq_rounds,
                        timeout=plan.timeout)
    say(f"query: {plan.pipe_rounds} x {plan.pipe_per_round} requests per target, "
        f"{plan.in_flight} in flight")
    pipe = query.compare(client, requests, mode="pipelined", in_flight=plan.in_flight,
                         per_round=plan.pipe_per_round, rounds=plan.pipe_rounds,
                         timeout=plan.timeout)
    s, p = seq.to_json(), pipe.to_json()
    report.section("query").update(
        request="devices (partner app with standing consent, random number of the "
                "registry): the full app request path of the bridge",
        p50_ratio=s["p50_ratio"], p99_ratio=s["p99_ratio"],
        throughput_ratio=p["throughput_ratio"], sequential=s, pipelined=p)
    report.latencies["pairing query, sequential"] = {
        "bare echo": seq.latencies["echo"], "bridge": seq.latencies["bridge"]}
    report.latencies[f"pairing query, {plan.in_flight} in flight"] = {
        "bare echo": pipe.latencies["echo"], "bridge": pipe.latencies["bridge"]}
    if seq.errors or pipe.errors:
        report.notes.append(f"query: {seq.errors + pipe.errors} bridge replies were not ok")
    # The registry's own share, without MQTT, with and without waiting for the disk.
    alone: dict[str, float] = {}
    for label, wait in (("durable_ms", True), ("no_disk_wait_ms", False)):
        store = target.open(wait_for_disk=wait)
        try:
            alone[label] = round(1000 * query.registry_alone(
                store, data, plan.seq_per_round, random.Random(label)), 3)
        finally:
            store.close()
    report.section("query")["registry_alone"] = alone
    say(f"query: bridge p50 {s['bridge']['p50_ms']} ms vs echo {s['echo']['p50_ms']} ms; "
        f"the registry alone {alone['durable_ms']} ms per request "
        f"({alone['no_disk_wait_ms']} ms without waiting for the disk)")


def _take(numbers: Any, count: int) -> range:
    first = next(numbers)
    for _ in range(count - 1):
        next(numbers)
    return range(first, first + count)


def _ingest(plan: Plan, client: LoadClient, target: StoreTarget, spare: Any,
            sign: ingest.Signing, report: Report, say: Callable[[str], None]) -> None:
    blocks = [_take(spare, plan.ingest_per_round) for _ in range(plan.ingest_rounds)]
    payloads = {n: ingest.payload(n, sign) for block in blocks for n in block}
    bridge_topics, base_topics = topics()
    say(f"ingest: {plan.ingest_rounds} x {plan.ingest_per_round} new devices per target, "
        f"{plan.ingest_in_flight} in flight ({'signed' if sign.signed else 'unsigned'})")
    result = ingest.compare(client, bridge_topics, base_topics, blocks, payloads,
                            in_flight=plan.ingest_in_flight, signed=sign.signed,
                            timeout=plan.timeout)
    section = report.section("ingest")
    section.update(result.to_json())
    # The transport floor: the same messages decoded and answered by a bare responder.
    section["floor_ratio"] = section["ratio"]
    if not sign.signed:
        section["signatures"] = sign.why_not
        report.notes.append(f"ingest: durable only, {sign.why_not}")
    report.latencies[f"registration, {plan.ingest_in_flight} in flight"] = {
        "decode only": [x for r in result.runs["decode"] for x in r.latencies],
        "bridge": [x for r in result.runs["bridge"] for x in r.latencies]}
    # The registry alone, in this process, on its own connection to the same store.
    store = target.open()
    try:
        direct: dict[str, float] = {}
        for label, batch in (("commit_each", 1), ("batched_500", 500)):
            numbers = _take(spare, plan.direct)
            pay = {n: ingest.payload(n, sign) for n in numbers}
            direct[label] = round(ingest.registry_rate(store, numbers, pay, batch=batch,
                                                       signed=sign.signed), 1)
    finally:
        store.close()
    section["registry_alone_per_s"] = direct
    say(f"ingest: bridge {section['per_s']:.0f}/s, decode-only {section['decode_per_s']:.0f}/s;"
        f" registry alone {direct['commit_each']:.0f}/s (commit each), "
        f"{direct['batched_500']:.0f}/s (500 per commit)")


def _ingest_scaled(plan: Plan, stack: Stack, client: LoadClient, spare: Any,
                   sign: ingest.Signing, signatures: str, report: Report,
                   say: Callable[[str], None], members: int = 2) -> None:
    """The same ingest through ``members`` bridge processes in one shared-subscription
    group (on one store): what scaling out adds to one process's rate."""
    blocks = [_take(spare, plan.ingest_per_round) for _ in range(plan.ingest_rounds)]
    payloads = {n: ingest.payload(n, sign) for block in blocks for n in block}
    bridge_topics, base_topics = topics()
    say(f"ingest: the same through {members} bridge processes in one group")
    stack.start_bridges(members, signatures=signatures)
    try:
        result = ingest.compare(client, bridge_topics, base_topics, blocks, payloads,
                                in_flight=plan.ingest_in_flight, signed=sign.signed,
                                timeout=plan.timeout)
    finally:
        stack.start_bridges(1, signatures=signatures)
    found = result.to_json()
    section = report.section("ingest")
    section[f"bridges_{members}"] = {"members": members, "per_s": found["per_s"],
                                     "decode_per_s": found["decode_per_s"],
                                     "ratio": found["ratio"], "lost": found["lost"],
                                     "errors": found["errors"],
                                     "p50_ms": found["bridge"]["p50_ms"]}
    section[f"per_s_{members}_bridges"] = found["per_s"]
    if result.errors:
        report.notes.append(f"ingest with {members} bridges: {result.errors} replies were "
                            "not a fresh registration")
    say(f"ingest: {members} bridges {found['per_s']:.0f}/s "
        f"(decode-only {found['decode_per_s']:.0f}/s)")


def _scale(plan: Plan, stack: Stack, client: LoadClient,
           requests: Callable[[str, int], list[Request]], signatures: str, report: Report,
           say: Callable[[str], None]) -> None:
    section = report.section("scale")
    section["in_flight"] = plan.in_flight
    base: float | None = None
    for members in plan.scale_members:
        say(f"scale: {members} bridge process(es) in one shared-subscription group")
        stack.start_bridges(members, signatures=signatures)
        client.run(requests("bridge", plan.warm_up * members), in_flight=plan.in_flight,
                   timeout=plan.timeout)
        echo = client.run(requests("echo", plan.scale_requests), in_flight=plan.in_flight,
                          timeout=plan.timeout).summary()
        run = client.run(requests("bridge", plan.scale_requests), in_flight=plan.in_flight,
                         timeout=plan.timeout)
        summary = run.summary()
        base = base or summary.per_s
        section[str(members)] = {"per_s": round(summary.per_s, 1),
                                 "speedup": ratio(summary.per_s, base),
                                 "echo_per_s": round(echo.per_s, 1),
                                 "throughput_ratio": ratio(summary.per_s, echo.per_s),
                                 "p50_ms": summary.to_json()["p50_ms"],
                                 "p99_ms": summary.to_json()["p99_ms"], "lost": run.lost}
    stack.start_bridges(1, signatures=signatures)


def _profile(plan: Plan, stack: Stack, client: LoadClient,
             requests: Callable[[str, int], list[Request]], spare: Any,
             sign: ingest.Signing, out: Path, report: Report,
             say: Callable[[str], None]) -> None:
    """py-spy on the bridge during a sequential and a pipelined query load and an ingest
    load, each about ``plan.profile_seconds`` long (sized from the rates just measured)."""
    if profiling.py_spy() is None:
        report.notes.append("no profiles: py-spy is not installed (pip install py-spy)")
        return
    pid = stack.bridges[0].proc.pid
    q = report.results.get("query", {})
    ing = report.results.get("ingest", {})
    seconds = plan.profile_seconds
    bridge_topics, _ = topics()
    loads: list[tuple[str, Callable[[], object]]] = []
    seq_rate = q.get("sequential", {}).get("bridge", {}).get("per_s") or 200
    pipe_rate = q.get("pipelined", {}).get("bridge", {}).get("per_s") or 400
    ingest_rate = ing.get("per_s") or 300
    n_seq, n_pipe = int(seq_rate * seconds), int(pipe_rate * seconds)
    loads.append(("query-sequential", lambda: client.run(
        requests("bridge", n_seq), in_flight=1, timeout=plan.timeout)))
    loads.append(("query-pipelined", lambda: client.run(
        requests("bridge", n_pipe), in_flight=plan.in_flight, timeout=plan.timeout)))
    block = _take(spare, max(10, min(3000, int(ingest_rate * seconds))))
    payloads = {n: ingest.payload(n, sign) for n in block}
    loads.append(("ingest", lambda: client.run(
        ingest.requests(bridge_topics, block, payloads), in_flight=plan.ingest_in_flight,
        timeout=plan.timeout)))
    folder = out / "profiles"
    found: dict[str, Any] = {}
    for name, load in loads:
        say(f"profile: py-spy on the bridge during {name}")
        raw = folder / f"bridge-{name}.txt"
        rec = profiling.Recording(pid, raw, seconds + 0.5)
        time.sleep(0.3)  # py-spy attaches
        load()
        if not rec.wait():
            report.notes.append(f"profile {name}: py-spy failed; see {rec.log}")
            continue
        text, tops = profiling.summarize(raw)
        summary = folder / f"bridge-{name}-summary.txt"
        summary.write_text(text)
        found[name] = {"raw": str(raw), "summary": str(summary),
                       "top_self": tops["self"][:10], "top_total": tops["total"][:15]}
    # The registry alone, in this process, under cProfile: its own costs, call by call.
    store_target = stack.store
    store = store_target.open()
    try:
        data = dataset.Dataset(plan.devices, plan.contracts, spare=plan.spare)
        out_q = folder / "registry-devices-cprofile.txt"
        profiling.profile_call(lambda: query.registry_alone(
            store, data, max(50, plan.seq_per_round), random.Random(3)), out_q)
        numbers = _take(spare, max(10, plan.direct))
        pay = {n: ingest.payload(n, sign) for n in numbers}
        out_i = folder / "registry-ingest-batched-cprofile.txt"
        profiling.profile_call(lambda: ingest.registry_rate(
            store, numbers, pay, batch=500, signed=sign.signed), out_i)
        found["registry-devices"] = {"cprofile": str(out_q)}
        found["registry-ingest-batched"] = {"cprofile": str(out_i)}
    finally:
        store.close()
    report.section("profiles").update(found)


# --- c, d, e: the device side ----------------------------------------------------------

def _firstboot(plan: Plan, report: Report, say: Callable[[str], None]) -> None:
    section = report.section("firstboot")
    why = device.first_boot_download()
    section["download_included"] = why is None
    if why is not None:
        section["download"] = f"not included: {why}"
        report.notes.append(f"first boot without a download: {why}")
    runs = {}
    for kind in ("emu", "pcsc"):
        say(f"first boot: {plan.boots} emulated devices, card {device.KINDS[kind]}, "
            f"one at a time{', profile downloaded' if why is None else ''}")
        runs[kind] = device.boot(kind, plan.boots, download=why is None, say=say)
        section[kind] = runs[kind].to_json()
        if runs[kind].why:
            report.notes.append(f"first boot ({kind}): {runs[kind].why}")
    section["median_s"] = section["emu"]["median_s"]
    section["pcsc_median_s"] = section["pcsc"]["median_s"]
    rss = [x for r in runs.values() for x in r.rss_mb]
    report.section("agent").update(
        rss_mb=max(rss) if rss else None,
        rss_mb_median=round(sorted(rss)[len(rss) // 2], 1) if rss else None,
        boots_watched=len(rss),
        how="peak resident memory (VmHWM) of each mps-agent process during its first boot")


def _download(plan: Plan, out: Path, report: Report, say: Callable[[str], None]) -> None:
    section = report.section("download")
    why = device.first_boot_download()
    if why is not None:
        section.update(available=False, emu_ms=None, pcsc_ms=None, at_ms=None,
                       why=f"not available in this build: {why}")
        report.notes.append(f"download: {section['why']}")
        return
    found = download.measure(out / "work" / "download", plan.downloads, say)
    section["available"] = True
    for kind, result in found.items():
        section[kind] = result.to_json()
        section[f"{kind}_ms"] = section[kind]["median_ms"]
        if result.why:
            report.notes.append(f"download over {kind}: {result.why}")


# --- output ------------------------------------------------------------------------------

def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _targets(report: Report) -> list[Target]:
    r = report.results
    return [
        Target("query.p50_ratio", _get(r, "query.p50_ratio"), "<=", 1.15, "x"),
        Target("query.p99_ratio", _get(r, "query.p99_ratio"), "<=", 1.3, "x"),
        Target("query.throughput_ratio", _get(r, "query.throughput_ratio"), ">=", 0.9, "x"),
        Target("ingest.per_s", _get(r, "ingest.per_s"), ">=", 8000, "/s"),
        Target("ingest.floor_ratio", _get(r, "ingest.floor_ratio"), ">=", 0.8, "x"),
        Target("firstboot.median_s", _get(r, "firstboot.median_s"), "<=", 1.0, " s"),
        Target("download.emu_ms", _get(r, "download.emu_ms"), "<=", 150, " ms"),
        Target("download.pcsc_ms", _get(r, "download.pcsc_ms"), "<=", 400, " ms"),
        Target("agent.rss_mb", _get(r, "agent.rss_mb"), "<=", 40, " MB"),
    ]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                      enumerate(zip(r, widths, strict=True))) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def render(report: Report, targets: list[Target]) -> str:
    """The human-readable report."""
    r = report.results
    run = r["run"]
    parts = [f"mps-bench perf ({run['plan']}; store {run['store']}; {run['cpus']} CPUs; "
             f"{run.get('seconds', '?')} s)"]
    reg = r.get("registry")
    if reg:
        parts.append(f"registry: {reg['devices']:,} devices on {reg['contracts']:,} contracts "
                     f"({reg['store']}), loaded in {reg['load_s']} s")
    q = r.get("query")
    if q:
        rows = []
        for mode in ("sequential", "pipelined"):
            m = q[mode]
            label = "sequential" if mode == "sequential" else f"{m['in_flight']} in flight"
            for metric, key in (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
                                ("per s", "per_s")):
                rkey = {"p50_ms": "p50_ratio", "p99_ms": "p99_ratio",
                        "per_s": "throughput_ratio"}[key]
                rows.append([f"{label} {metric}", _fmt(m["echo"][key]),
                             _fmt(m["bridge"][key]), _fmt(m[rkey], 3)])
        alone = q.get("registry_alone", {})
        rows.append(["registry alone, ms per request", "", _fmt(alone.get("durable_ms"), 3),
                     ""])
        rows.append(["  ...not waiting for the disk", "",
                     _fmt(alone.get("no_disk_wait_ms"), 3), ""])
        parts.append("a. pairing query (devices request) vs bare MQTT v5 echo\n"
                     + _table(["", "echo", "bridge", "ratio"], rows))
    ing = r.get("ingest")
    if ing:
        direct = ing.get("registry_alone_per_s", {})
        rows = [["registrations per s", _fmt(ing["decode_per_s"], 0), _fmt(ing["per_s"], 0),
                 _fmt(ing["ratio"], 3)],
                ["p50 ms", _fmt(ing["decode"]["p50_ms"]), _fmt(ing["bridge"]["p50_ms"]), ""],
                ["registry alone, commit each /s", "", _fmt(direct.get("commit_each"), 0), ""],
                ["registry alone, 500 per commit /s", "", _fmt(direct.get("batched_500"), 0),
                 ""]]
        two = ing.get("bridges_2")
        if two:
            rows.append(["2 bridges in one group /s", _fmt(two["decode_per_s"], 0),
                         _fmt(two["per_s"], 0), _fmt(two["ratio"], 3)])
        how = "signed, verified" if ing["signed"] else "unsigned"
        parts.append(f"b. registration ingest ({how}, durable) vs decode-only\n"
                     + _table(["", "decode-only", "bridge", "ratio"], rows))
    fb = r.get("firstboot")
    if fb:
        rows = [[device.KINDS[k], _fmt(fb[k]["n"]), _fmt(fb[k]["median_s"], 3),
                 _fmt(fb[k]["in_agent_median_s"], 3), _fmt(fb[k]["download_median_s"], 3),
                 _fmt(fb[k]["rss_mb_max"], 1)]
                for k in ("emu", "pcsc")]
        parts.append("c/e. first boot to registered (median: agent process, inside the agent, "
                     "its download step)"
                     + ("" if fb["download_included"] else ", without download") + "\n"
                     + _table(["card", "boots", "median s", "in agent s", "download s",
                               "peak RSS MB"], rows))
    dl = r.get("download")
    if dl:
        if dl["available"]:
            rows = [[k, _fmt(dl[k]["n"]), _fmt(dl[k]["median_ms"], 1), _fmt(dl[k]["apdus"])]
                    for k in download.KINDS]
            parts.append("d. one profile download (median; the LPA's own time)\n"
                         + _table(["card link", "downloads", "ms", "APDUs"], rows))
        else:
            parts.append(f"d. profile download: {dl['why']}")
    sc = r.get("scale")
    if sc:
        rows = [[k, _fmt(v["per_s"], 0), _fmt(v["speedup"], 2), _fmt(v["echo_per_s"], 0),
                 _fmt(v["throughput_ratio"], 3)]
                for k, v in sc.items() if isinstance(v, dict)]
        parts.append(f"f. bridge processes in one shared-subscription group "
                     f"({sc['in_flight']} in flight)\n"
                     + _table(["bridges", "per s", "speedup", "echo per s", "ratio"], rows))
    rows = [[t.name, _fmt(t.value, 3), f"{t.op} {t.limit:g}{t.unit}",
             {True: "met", False: "MISSED", None: "not measured"}[t.met]] for t in targets]
    parts.append("targets\n" + _table(["", "value", "target", ""], rows))
    if report.notes:
        parts.append("notes\n" + "\n".join(f"- {n}" for n in report.notes))
    return "\n\n".join(parts)

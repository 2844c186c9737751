"""mps-bench perf (also plain mps-bench): how fast the system is, as ratios against
a baseline measured in the same run on the same broker.

a. pairing queries through the bridge against a bare MQTT v5 echo, interleaved:
   p50/p99/throughput, sequential and 64 in flight, on a registry of 1,000,000 devices
   on 300,000 contracts (--quick: 30,000 on 9,000);
b. registration ingest through the bridge (durable, signatures verified) against
   decode-only ingestion, with one bridge process and with two in one group; and the
   registry alone, a commit per registration and batched;
c. first boot of an emulated device to "registered", card in-process and behind
   pcscd + vpcd;
d. one profile download over emu, pcsc and at (when this build can);
e. the agent's peak memory during first boot;
f. 1, 2 and 4 bridge processes in one shared-subscription group.

Prints a table; --json FILE writes every figure, --png FILE the latency
distributions, --profile py-spy profiles of the bridge under load (in the output
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
from pathlib import Path
from typing import Any

from broker_bridge.errors import BridgeError
from broker_bridge.registry.reads import DEFAULT_LIMIT as READ_LIMIT
from mps_bench import dataset, device, download, ingest, lpa_wall, plot, profiling, query
from mps_bench.mqttload import LoadClient, LoadError, Request
from mps_bench.perfreport import FULL, QUICK, SECTIONS, SMOKE, PerfReport, Plan, render, targets
from mps_bench.stack import Stack, StoreTarget, running_stack, topics
from mps_bench.stats import ratio
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from mps_mqtt.client import BrokerURL
from mps_testbed.errors import StackError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``perf`` to ``mps-bench``."""
    p = subparsers.add_parser("perf", help="performance figures with ratios against "
                              "baselines of the same run (the default command)",
                              description=__doc__)
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
        return fail("mps-bench", f"unknown sections {unknown}; choose from "
                    f"{', '.join(SECTIONS)}", EXIT_USAGE)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        target = StoreTarget.choose(args.store, out / "work", keep=args.keep)
    except ValueError as exc:
        return fail("mps-bench", str(exc), EXIT_USAGE)
    say = _sayer()
    report = PerfReport()
    report.results["run"] = {
        "plan": plan.name, "store": target.label, "sections": wanted,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
    }
    started = time.monotonic()
    failed = _measure(plan, args, target, out, wanted, report, say)
    report.results["run"]["seconds"] = round(time.monotonic() - started, 1)
    checked = targets(report)
    report.results["targets"] = {t.name: t.to_json() for t in checked}
    report.results["notes"] = report.notes
    print(render(report, checked))
    _plot(Path(args.png) if args.png else out / "latency.png", plan, target, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.results, indent=2, default=_jsonable)
                                   + "\n")
    return EXIT_FAILURE if failed else EXIT_OK


def _measure(plan: Plan, args: argparse.Namespace, target: StoreTarget, out: Path,
             wanted: list[str], report: PerfReport, say: Callable[[str], None]) -> bool:
    """Run the ``wanted`` sections; whether one of them stopped early."""
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
        if "lpa" in wanted:
            _lpa_walls(plan, out, report, say)
    finally:
        if not args.keep:
            shutil.rmtree(out / "work", ignore_errors=True)
    return failed


def _plot(png: Path, plan: Plan, target: StoreTarget, report: PerfReport) -> None:
    why = plot.available()
    if why is None and report.latencies:
        plot.draw(png, list(report.latencies.items()),
                  title=f"mps-bench ({plan.name}, store {target.label})")
        report.results["run"]["png"] = str(png)
        print(f"latency distributions: {png}")
    elif why is not None:
        report.notes.append(f"no PNG: {why}")


def _jsonable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    for fields in ("__dataclass_fields__", "__record_fields__"):  # dataclasses, records
        if hasattr(value, fields):
            return {k: getattr(value, k) for k in getattr(value, fields)}
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _sayer() -> Callable[[str], None]:
    """Progress lines on stderr (stdout keeps the table)."""
    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {line}", file=sys.stderr, flush=True)

    return say


# --- a, b, f: through the broker -------------------------------------------------------

def _transport_sections(plan: Plan, args: argparse.Namespace, target: StoreTarget, out: Path,
                        wanted: list[str], report: PerfReport, say: Callable[[str], None]
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
            # Room for every answer of the registry's apps (one per app and contract).
            stack.read_model_size = max(READ_LIMIT, 2 * data.contracts)
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
           data: dataset.Dataset, report: PerfReport, say: Callable[[str], None]) -> None:
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
            sign: ingest.Signing, report: PerfReport, say: Callable[[str], None]) -> None:
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
                   sign: ingest.Signing, signatures: str, report: PerfReport,
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
           requests: Callable[[str, int], list[Request]], signatures: str, report: PerfReport,
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
             sign: ingest.Signing, out: Path, report: PerfReport,
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
    found = _spy(pid, loads, seconds, folder, report, say)
    found.update(_registry_alone(plan, stack, spare, sign, folder))
    report.section("profiles").update(found)


def _spy(pid: int, loads: list[tuple[str, Callable[[], object]]], seconds: float,
         folder: Path, report: PerfReport, say: Callable[[str], None]) -> dict[str, Any]:
    """py-spy on the bridge process ``pid`` during each load."""
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
    return found


def _registry_alone(plan: Plan, stack: Stack, spare: Any, sign: ingest.Signing,
                    folder: Path) -> dict[str, Any]:
    """The registry alone, in this process, under cProfile: its own costs, call by call."""
    found: dict[str, Any] = {}
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
    return found


# --- c, d, e: the device side ----------------------------------------------------------

def _firstboot(plan: Plan, report: PerfReport, say: Callable[[str], None]) -> None:
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
    if why is None:
        say(f"first boot through the eIM: {plan.boots} emulated devices with empty cards "
            "and no activation code, one at a time")
        runs["eim"] = device.boot("emu", plan.boots, download=True, say=say, eim=True)
        section["eim"] = runs["eim"].to_json()
        section["eim_median_s"] = section["eim"]["median_s"]
        if runs["eim"].why:
            report.notes.append(f"first boot (eIM): {runs['eim'].why}")
    rss = [x for r in runs.values() for x in r.rss_mb]
    report.section("agent").update(
        rss_mb=max(rss) if rss else None,
        rss_mb_median=round(sorted(rss)[len(rss) // 2], 1) if rss else None,
        boots_watched=len(rss),
        how="peak resident memory (VmHWM) of each mps-agent process during its first boot")


def _download(plan: Plan, out: Path, report: PerfReport, say: Callable[[str], None]) -> None:
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


def _lpa_walls(plan: Plan, out: Path, report: PerfReport, say: Callable[[str], None]) -> None:
    found = lpa_wall.measure(out / "work" / "lpa", plan.lpa_runs, say)
    report.section("lpa").update(
        found.to_json(), how="median wall time of mps-lpa through pcscd + vpcd, process "
        "start to exit; python_start_wall_ms: the interpreter alone, same run")
    if found.why:
        report.notes.append(f"mps-lpa wall time: {found.why}")

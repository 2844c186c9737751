"""mps-bench portability: the number portability list at operator scale. Writes a CSV of N
numbers (default 1,000,000) spread over a few operators, imports it with
``mps-bridge portability import`` semantics into a fresh SQLite registry, then times
lookups of listed and unlisted numbers through the registry's routing (one index probe
each). Bounded in count and time: N at most 2,000,000, lookups at most 100,000."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from broker_bridge.model import Contract, OtherOperator
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail

MAX_NUMBERS = 2_000_000
MAX_LOOKUPS = 100_000
OPERATORS = ("alpha", "beta", "gamma")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``portability`` to ``mps-bench``."""
    p = subparsers.add_parser("portability", help="import and lookups of a large "
                              "portability list", description=__doc__)
    p.add_argument("--numbers", type=int, default=1_000_000,
                   help=f"numbers in the list (default 1,000,000; at most {MAX_NUMBERS:,})")
    p.add_argument("--lookups", type=int, default=20_000,
                   help=f"timed lookups (default 20,000; at most {MAX_LOOKUPS:,})")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON to FILE")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=main)


def _number(i: int) -> str:
    return f"+4915{i:09d}"


def write_list(path: Path, count: int) -> None:
    """A portability CSV of ``count`` numbers, ported to the operators in turn."""
    with path.open("w", encoding="ascii") as out:
        out.write("msisdn,operator,valid_from,valid_until,contract\n")
        for i in range(count):
            out.write(f"{_number(i)},{OPERATORS[i % len(OPERATORS)]},0,,\n")


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
            "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
            "mean_us": round(statistics.fmean(ordered) * 1e6, 1)}


def run(count: int, lookups: int, seed: int, workdir: Path) -> dict[str, Any]:
    """Import ``count`` numbers and time ``lookups`` routings; the figures."""
    csv_path = workdir / "portability.csv"
    started = time.perf_counter()
    write_list(csv_path, count)
    written = time.perf_counter() - started
    with SqliteStore(workdir / "registry.db") as store:
        store.upsert_contract(Contract("C-1", "Bench"))
        for op in OPERATORS:
            store.upsert_operator(OtherOperator(op, op.title(), f"mqtts://{op}.example:8883"))
        registry = Registry(store)
        started = time.perf_counter()
        report, _ = registry.import_portability(csv_path)
        imported = time.perf_counter() - started
        rng = random.Random(seed)
        samples: dict[str, list[float]] = {"listed": [], "unlisted": []}
        for n in range(lookups):
            kind = "listed" if n % 2 == 0 else "unlisted"
            msisdn = _number(rng.randrange(count) if kind == "listed"
                             else count + rng.randrange(count))
            t0 = time.perf_counter()
            answer = registry.route(msisdn)
            samples[kind].append(time.perf_counter() - t0)
            if kind == "listed" and getattr(answer, "status", None) is None:
                raise AssertionError(f"{msisdn} is listed but was not redirected")
    return {"numbers": report.entries, "write_s": round(written, 2),
            "import_s": round(imported, 2),
            "import_rows_per_s": round(report.entries / imported) if imported else None,
            "route_listed": _percentiles(samples["listed"]),
            "route_unlisted": _percentiles(samples["unlisted"])}


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.numbers <= MAX_NUMBERS or not 2 <= args.lookups <= MAX_LOOKUPS:
        return fail("mps-bench portability", f"--numbers must be 1..{MAX_NUMBERS} and "
                    f"--lookups 2..{MAX_LOOKUPS}", EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="mps-bench-ports-") as tmp:
        figures = run(args.numbers, args.lookups, args.seed, Path(tmp))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return EXIT_OK

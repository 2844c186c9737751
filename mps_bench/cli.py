"""``mps-bench``: performance figures with ratios against a baseline taken in the same run
(``mps-bench [--quick] [--json FILE]``), fault and attack runs (``faults``), long fuzzing
(``fuzz``). Each part registers its own subcommand module here."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

# Subcommand modules; each provides ``register(subparsers)`` setting ``func`` on its parser.
# A module that is not there yet is reported when its command is asked for, not before.
SUBCOMMANDS = {
    "perf": "mps_bench.perf",
    "faults": "mps_bench.faults",
    "fuzz": "mps_bench.fuzz",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mps-bench", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("MPS_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command")
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            missing = sub.add_parser(name, help=f"(not available: {module} is missing)")
            missing.set_defaults(func=None, missing=module)
            continue
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Plain ``mps-bench [--quick] [--json FILE]`` runs the performance benchmarks.
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list = ["perf", *args_list]
    args = build_parser().parse_args(args_list)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if getattr(args, "func", None) is None:
        print(f"mps-bench: {args.command} is not implemented in this build "
              f"({getattr(args, 'missing', '?')} is missing)", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

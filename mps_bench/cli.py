"""mps-bench: performance figures with ratios against a baseline taken in the same run
(mps-bench [--quick] [--json FILE]), fault and attack runs (faults), long fuzzing (fuzz).
Each part registers its own subcommand module here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mps_common.cli import EXIT_USAGE, fail, log_level_option, new_parser, parse, setup_logging

# Subcommand modules; each provides ``register(subparsers)`` setting ``func`` on its parser.
# A module that is not there yet is reported when its command is asked for, not before.
SUBCOMMANDS = {
    "perf": "mps_bench.perf",
    "faults": "mps_bench.faults",
    "fuzz": "mps_bench.fuzz",
    "portability": "mps_bench.portability",
}


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("mps-bench", __doc__ or "")
    log_level_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    args = parse(build_parser(), args_list)
    if isinstance(args, int):
        return args
    setup_logging(args.log_level)
    if getattr(args, "func", None) is None:
        return fail("mps-bench", f"{args.command} is not implemented in this build "
                    f"({getattr(args, 'missing', '?')} is missing)", EXIT_USAGE)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

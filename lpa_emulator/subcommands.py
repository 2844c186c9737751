"""How each ``mps-emu`` command adds itself to the parser, and runs on its own."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TypeAlias

from mps_common.cli import new_parser, parse

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers`` returns, which each command's ``register`` takes."""


def add_command(subparsers: Subparsers, name: str, *, help: str, description: str | None = None
                ) -> argparse.ArgumentParser:
    """A command's parser: like the top-level one, options are never abbreviated and the
    description is shown as written."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description or help, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def parse_standalone(name: str, register: Callable[[Subparsers], None],
                     argv: Sequence[str]) -> argparse.Namespace | int:
    """The arguments of one command run on its own (``python -m ...``); a leading
    ``name`` is optional. An exit status instead where argparse would exit."""
    args = list(argv)
    if args[:1] != [name]:
        args.insert(0, name)
    parser = new_parser("mps-emu", f"mps-emu {name}")
    register(parser.add_subparsers(dest="command", required=True))
    return parse(parser, args)


def wait_for_stop() -> None:
    """Block until SIGTERM or SIGINT (handlers are installed on the main thread only; from
    another thread this waits forever, as a server's thread should)."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    stop.wait()

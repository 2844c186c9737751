"""What every command line of the project shares: exit codes, the parser, common options,
logging, tables and ``--json`` output, and the error handling of a ``main()``.

Every console script (``mps-agent``, ``mps-lpa``, ``mps-emu``, ``mps-bridge``, ``mps-app``,
``mps-user``, ``mps-bench``, ``mps-demo``) builds its parser with :func:`new_parser`, so
options are never abbreviated, help text is shown as written, and exit codes mean the same
everywhere:

==  ==========================================================================
0   success
1   the command ran and failed (refused, not found, no answer)
2   usage: a bad option, argument, environment variable or configuration file
3   the hardware or service the command needs is not there (no card, no modem)
==  ==========================================================================
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from mps_common import logs
from mps_common.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

LOG_LEVELS = ("debug", "info", "warning", "error")


def terminal_columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` tells it ($COLUMNS, then
    the terminal of stdout, else 80), without importing shutil (and the compression
    modules it loads) into every command line's start-up."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help shown as written, as wide as the terminal."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """A parser with no abbreviated options and help shown as written.

    ``add_subparsers`` makes its subcommands' parsers of the parser's own class, so every
    subcommand of a :func:`new_parser` parser inherits both.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def new_parser(prog: str, description: str, *, epilog: str | None = None
               ) -> argparse.ArgumentParser:
    """A top-level parser: no abbreviated options, help shown as written; its subcommands
    too."""
    return _Parser(prog=prog, description=description, epilog=epilog)


class _LazyParsers(dict[str, Any]):
    """A subcommand table whose parsers are built when argparse looks one up: a command
    line builds the parser of the command it runs, not those of every other one."""

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        if isinstance(value, argparse.ArgumentParser):
            return value
        parser = value()
        self[name] = parser
        return parser


def add_lazy_parser(subparsers: Any, name: str, help_text: str,
                    build: Callable[[argparse.ArgumentParser], object]) -> None:
    """Add subcommand ``name`` to ``subparsers`` (an ``add_subparsers`` result), its parser
    made and filled by ``build`` only when the command line names it.

    argparse checks a subcommand name against ``choices`` and looks its parser up by name
    (``_name_parser_map``, the same mapping); the help listing comes from the pseudo
    actions ``add_parser`` would add.
    """
    table = subparsers._name_parser_map
    if not isinstance(table, _LazyParsers):
        table = _LazyParsers(table)
        subparsers._name_parser_map = subparsers.choices = table
    subparsers._choices_actions.append(subparsers._ChoicesPseudoAction(name, (), help_text))

    def make() -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers._parser_class(
            prog=f"{subparsers._prog_prefix} {name}", description=help_text)
        build(parser)
        return parser

    table[name] = make


def common_options(*, json_option: bool = False) -> argparse.ArgumentParser:
    """A parent parser with the options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: $MPS_CONFIG)")
    common.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                        help="log to stderr from this level on (default: warning, "
                             "$MPS_LOG_LEVEL)")
    if json_option:
        json_flag(common)
    return common


def log_level_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` (any case) for a command without ``--config``: its default is
    ``$MPS_LOG_LEVEL``, else warning."""
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS,
                        default=os.environ.get("MPS_LOG_LEVEL", "warning").lower(),
                        help="log to stderr from this level on (default: warning, "
                             "$MPS_LOG_LEVEL)")


def json_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--json``: machine-readable output instead of text."""
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of text, for scripts")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None
          ) -> argparse.Namespace | int:
    """Parse ``argv``; an exit status instead where argparse would exit (usage, --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def setup_logging(level: str, *, lazy: bool = False) -> None:
    """Log to stderr from ``level`` on, one line per record with the logger's name.

    With ``lazy``, :mod:`logging` is loaded only once a :mod:`mps_common.logs` logger has a
    record at that level to show (a command whose modules all log through those).
    """
    if level not in LOG_LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if lazy:
        logs.configure(level)
        return
    import logging

    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=logs.FORMAT)


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else
               0 if unicodedata.combining(ch) else 1 for ch in text)


def utc_time(ms: float) -> str:
    """A time in milliseconds since the epoch as a person reads it, in UTC (tables say
    so in their header, sentences add " UTC")."""
    import datetime  # only the commands that show times load it

    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns under a header line, whatever the width of a cell."""
    widths = [width(h) for h in headers]
    for row in rows:
        widths = [max(w, width(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(cell + " " * (w - width(cell))
                       for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in (headers, *rows)]
    return "\n".join(lines)


def emit(data: Any, *, as_json: bool, text: Callable[[Any], str],
         stream: TextIO | None = None) -> None:
    """Print ``data`` as JSON for scripts or through ``text`` for a person."""
    out = stream or sys.stdout
    try:
        print(json.dumps(data, indent=2, default=str) if as_json else text(data), file=out,
              flush=True)
    except BrokenPipeError:
        # The reader went away (``| head``): what it wanted it has. Point the stream at
        # /dev/null so the flush at exit does not fail again with a traceback.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, out.fileno())
        os.close(null)


def fail(prog: str, message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``prog: message`` to stderr and return ``status``."""
    print(f"{prog}: {message}", file=sys.stderr)
    return status


def trace_crashes() -> None:
    """For a long-running service: a crash in native code (SIGSEGV, SIGBUS, a signal, not
    an exception) leaves every thread's stack on stderr, not only an exit status nobody
    may be watching. Nothing where stderr is no file (closed, or captured)."""
    import contextlib
    import faulthandler  # here, not at the top: a device's first boot needs neither

    with contextlib.suppress(OSError, ValueError, AttributeError):
        faulthandler.enable()

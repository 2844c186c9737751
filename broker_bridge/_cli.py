"""What the registry's command-line tools share: options, logging, tables, exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from broker_bridge.config import Settings
from broker_bridge.errors import ConfigError
from mps_wire.bundle import BundleError, CredentialBundle
from mps_wire.mqtt import BrokerURL

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

LOG_LEVELS = ("debug", "info", "warning", "error")


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: $MPS_CONFIG)")
    common.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                        help="log to stderr from this level on (default: warning, "
                             "$MPS_LOG_LEVEL)")
    return common


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None
          ) -> argparse.Namespace | int:
    """Parse ``argv``; an exit status instead where argparse would exit (usage, --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def setup_logging(level: str) -> None:
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns under a header line."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in (headers, *rows)]
    return "\n".join(lines)


def credentials_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--credentials DIR``: the identity's credential bundle from the operator."""
    parser.add_argument("--credentials", metavar="DIR",
                        help="credential bundle from the operator (mps-bridge operator "
                             "issue): broker login, CA, client certificate "
                             "($MPS_CREDENTIALS)")


def broker_url(settings: Settings) -> BrokerURL:
    """The ``broker`` option, with the ``credentials`` bundle applied when one is named."""
    broker = BrokerURL.parse(settings.require("broker"))
    credentials = settings.text("credentials")
    if not credentials:
        return broker
    try:
        return CredentialBundle.load(credentials).broker_url(broker)
    except BundleError as exc:
        raise ConfigError(f"--credentials: {exc}") from exc


def fail(prog: str, message: str, status: int = EXIT_FAILURE) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return status

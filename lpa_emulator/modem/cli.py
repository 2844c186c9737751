"""``mps-emu modem``: serve emulated modems on pseudo-terminals until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from lpa_emulator.cards import open_card
from lpa_emulator.modem.card import HostedCard
from lpa_emulator.modem.dialects import DIALECTS
from lpa_emulator.modem.emulator import ModemEmulator
from lpa_emulator.modem.server import PtyServer
from lpa_emulator.modem.state import ModemState
from lpa_emulator.subcommands import Subparsers, add_command, parse_standalone
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from mps_common.errors import ConfigError

PROG = "mps-emu modem"
DESCRIPTION = """\
Serve emulated LTE modems on pseudo-terminals until SIGTERM or SIGINT.

One modem: --link PATH --state FILE. Many from one process (a test rig): --count N with {i}
in --link, --state and --card-state (0 .. N-1), or --manifest FILE, a TOML file of [[modem]]
tables with link, state and optionally card_state, no_card and dialect.

Exit codes: 0 stopped by a signal, 1 serving failed, 2 bad options or manifest."""

MAX_COUNT = 10_000
_MANIFEST_KEYS = frozenset({"link", "state", "card_state", "no_card", "dialect"})


@dataclass(frozen=True, slots=True)
class ModemSpec:
    """One modem to serve: its link, its state file, its card (``None``: empty slot)."""

    link: Path
    state: Path
    card_state: Path | None
    dialect: str = "quectel"


def register(subparsers: Subparsers) -> None:
    """Add the ``modem`` subcommand to ``mps-emu``."""
    p = add_command(subparsers, "modem", help="emulated LTE modems on pseudo-terminals",
                    description=DESCRIPTION)
    p.add_argument("--link", type=str,
                   help="symlink to publish for the pty, e.g. /run/mps/modem1")
    p.add_argument("--state", type=str,
                   help="modem state file (IMEI, model, addresses); created if missing")
    card = p.add_mutually_exclusive_group()
    card.add_argument("--card-state", type=str,
                      help="eUICC state file of the hosted card "
                           "(default: <state stem>-euicc.json beside --state)")
    card.add_argument("--no-card", action="store_true", help="an empty SIM slot")
    p.add_argument("--dialect", choices=sorted(DIALECTS), default="quectel",
                   help="vendor dialect (default: quectel)")
    many = p.add_mutually_exclusive_group()
    many.add_argument("--count", type=int, metavar="N",
                      help="serve N modems; {i} in the paths is replaced by 0 .. N-1")
    many.add_argument("--manifest", type=Path, metavar="FILE",
                      help="serve the modems a TOML file lists ([[modem]] tables)")
    p.add_argument("--urc-interval", type=float, metavar="SECONDS",
                   help="send +CEREG URCs at random intervals around this mean")
    p.add_argument("--seed", type=int, help="seed for the random URC timing")
    p.set_defaults(func=run)


def default_card_state(state: Path) -> Path:
    """Where the hosted card's state lives when ``--card-state`` is not given."""
    return state.with_name(f"{state.stem}-euicc.json")


def _open_card(path: Path) -> HostedCard:
    return open_card(path)


def _check_count(args: argparse.Namespace) -> int:
    """How many modems the options ask for; with ``--count`` every path needs ``{i}``."""
    if args.count is None:
        return 1
    if not 1 <= args.count <= MAX_COUNT:
        raise ConfigError(f"--count must be 1..{MAX_COUNT}", source="--count")
    for name, value in (("--link", args.link), ("--state", args.state),
                        ("--card-state", args.card_state)):
        if value is not None and "{i}" not in value:
            raise ConfigError(f"with --count, {name} needs {{i}} for the modem's "
                              f"number, e.g. /run/mps/modem{{i}}", source=name)
    return int(args.count)


def _spec_from_args(args: argparse.Namespace, i: int) -> ModemSpec:
    state = Path(args.state.replace("{i}", str(i)))
    card: Path | None = None
    if not args.no_card:
        card = (Path(args.card_state.replace("{i}", str(i))) if args.card_state
                else default_card_state(state))
    return ModemSpec(Path(args.link.replace("{i}", str(i))), state, card, args.dialect)


def _specs_from_args(args: argparse.Namespace) -> list[ModemSpec]:
    if args.manifest is not None:
        if args.link or args.state or args.card_state or args.no_card:
            raise ConfigError("--manifest lists the modems; leave out --link, --state "
                              "and the card options", source="--manifest")
        return load_manifest(args.manifest)
    if not args.link or not args.state:
        raise ConfigError("--link and --state are required (or --manifest)")
    return [_spec_from_args(args, i) for i in range(_check_count(args))]


def load_manifest(path: Path) -> list[ModemSpec]:
    """The modems a manifest lists; errors name the entry and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    entries = raw.get("modem")
    if not isinstance(entries, list) or not entries or set(raw) - {"modem"}:
        raise ConfigError(f"{path}: expected one or more [[modem]] tables and nothing else")
    if len(entries) > MAX_COUNT:
        raise ConfigError(f"{path}: at most {MAX_COUNT} modems")
    return [_manifest_entry(path, i, e) for i, e in enumerate(entries)]


def _manifest_entry(path: Path, i: int, entry: Any) -> ModemSpec:
    where = f"{path}: modem[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(entry) - _MANIFEST_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: is not a known setting")
    for key in ("link", "state"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError(f"{where}.{key}: is required (a path)")
    no_card = entry.get("no_card", False)
    if not isinstance(no_card, bool):
        raise ConfigError(f"{where}.no_card: must be true or false")
    card_state = entry.get("card_state")
    if card_state is not None and (no_card or not isinstance(card_state, str)):
        raise ConfigError(f"{where}.card_state: a path, and not with no_card")
    dialect = entry.get("dialect", "quectel")
    if dialect not in DIALECTS:
        raise ConfigError(f"{where}.dialect: must be one of {', '.join(sorted(DIALECTS))}")
    state = Path(entry["state"])
    card = None if no_card else Path(card_state) if card_state else default_card_state(state)
    return ModemSpec(Path(entry["link"]), state, card, dialect)


def build_emulator(spec: ModemSpec, *, urc_interval: float | None = None,
                   seed: int | None = None) -> ModemEmulator:
    """The emulator a spec describes; a missing state file gets the dialect's identity."""
    dialect = DIALECTS[spec.dialect]
    state = ModemState.load_or_create(spec.state, identity=dialect.identity)
    card = None if spec.card_state is None else _open_card(spec.card_state)
    return ModemEmulator(state, card, dialect=dialect, urc_interval=urc_interval, seed=seed)


def _set_up(args: argparse.Namespace) -> tuple[PtyServer, list[tuple[ModemSpec, ModemEmulator]]]:
    """The server with every modem the options ask for added to it."""
    if args.urc_interval is not None and args.urc_interval <= 0:
        raise ConfigError("--urc-interval must be positive", source="--urc-interval")
    server = PtyServer()
    emulators = []
    for n, spec in enumerate(_specs_from_args(args)):
        seed = None if args.seed is None else args.seed + n
        emulator = build_emulator(spec, urc_interval=args.urc_interval, seed=seed)
        server.add(emulator, spec.link)
        emulators.append((spec, emulator))
    return server, emulators


def _announce(emulators: list[tuple[ModemSpec, ModemEmulator]]) -> None:
    for spec, emulator in emulators:
        state = emulator.state
        card_text = "no SIM" if emulator.card is None else "hosting an eUICC"
        print(f"{PROG}: {state.manufacturer} {state.model} IMEI {state.imei} "
              f"({spec.dialect}, {card_text}) serving on {spec.link} -> "
              f"{emulator.pty_name}", flush=True)
    if len(emulators) > 1:
        print(f"{PROG}: {len(emulators)} modems ready", flush=True)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal; exit 0 on SIGTERM/SIGINT."""
    try:
        server, emulators = _set_up(args)
    except (ValueError, OSError) as exc:
        # ConfigError and the state files' errors are ValueErrors; a pty that cannot be
        # made is an OSError: either way the options name something unusable.
        return fail(PROG, str(exc), EXIT_USAGE)

    stop = threading.Event()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve(stop, ready=ready)
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=serve, name="modem-pty", daemon=True)
    try:
        thread.start()
        # Waiting in short slices keeps the main thread free to run the signal handler.
        while not ready.wait(0.1) and thread.is_alive():
            pass
        if not failure:
            _announce(emulators)
        while thread.is_alive():
            thread.join(0.1)
    finally:
        stop.set()
        thread.join(5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        return fail(PROG, str(failure[0]), EXIT_FAILURE)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m lpa_emulator.modem.cli [modem] --link ... --state ...``."""
    args = parse_standalone("modem", register, sys.argv[1:] if argv is None else argv)
    return args if isinstance(args, int) else int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

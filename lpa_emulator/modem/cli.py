"""``mps-emu modem``: serve an emulated modem on a pseudo-terminal until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from lpa_emulator.euicc import EuiccCard
from lpa_emulator.modem.card import HostedCard
from lpa_emulator.modem.dialects import DIALECTS
from lpa_emulator.modem.emulator import ModemEmulator
from lpa_emulator.modem.errors import EmulatorError
from lpa_emulator.modem.state import ModemState

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``modem`` subcommand to ``mps-emu``."""
    p = subparsers.add_parser(
        "modem", help="an emulated LTE modem on a pseudo-terminal",
        description="Serve an emulated LTE modem (AT commands) on a new pseudo-terminal, "
                    "reachable through a stable symlink, until SIGTERM or SIGINT.")
    p.add_argument("--link", type=Path, required=True,
                   help="symlink to publish for the pty, e.g. /run/mps/modem1")
    p.add_argument("--state", type=Path, required=True,
                   help="modem state file (IMEI, model, addresses); created if missing")
    card = p.add_mutually_exclusive_group()
    card.add_argument("--card-state", type=Path,
                      help="eUICC state file of the hosted card "
                           "(default: <state stem>-euicc.json beside --state)")
    card.add_argument("--no-card", action="store_true", help="an empty SIM slot")
    p.add_argument("--dialect", choices=sorted(DIALECTS), default="quectel",
                   help="vendor dialect (default: quectel)")
    p.add_argument("--urc-interval", type=float, metavar="SECONDS",
                   help="send +CEREG URCs at random intervals around this mean")
    p.add_argument("--seed", type=int, help="seed for the random URC timing")
    p.set_defaults(func=run)


def default_card_state(state: Path) -> Path:
    """Where the hosted card's state lives when ``--card-state`` is not given."""
    return state.with_name(f"{state.stem}-euicc.json")


def _open_card(path: Path) -> HostedCard:
    return EuiccCard.open(path)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal; exit 0 on SIGTERM/SIGINT."""
    try:
        if args.urc_interval is not None and args.urc_interval <= 0:
            raise EmulatorError("--urc-interval must be positive")
        state = ModemState.load_or_create(args.state)
        card = None if args.no_card else _open_card(
            args.card_state or default_card_state(args.state))
        emulator = ModemEmulator(state, card, dialect=args.dialect,
                                 urc_interval=args.urc_interval, seed=args.seed)
    except (EmulatorError, ValueError, OSError) as exc:
        print(f"mps-emu modem: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    stop = threading.Event()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            emulator.serve_pty(args.link, stop, ready=ready)
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
            card_text = "no SIM" if card is None else "hosting an eUICC"
            print(f"mps-emu modem: {state.manufacturer} {state.model} IMEI {state.imei} "
                  f"({args.dialect}, {card_text}) serving on {args.link} -> "
                  f"{emulator.pty_name}", flush=True)
        while thread.is_alive():
            thread.join(0.1)
    finally:
        stop.set()
        thread.join(2.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        print(f"mps-emu modem: {failure[0]}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m lpa_emulator.modem.cli [modem] --link ... --state ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["modem"]:
        argv.insert(0, "modem")
    parser = argparse.ArgumentParser(prog="mps-emu")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

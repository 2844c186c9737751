"""``mps-emu``: emulated hardware and the operator side (modem, eUICC, demo, rig)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lpa_emulator.euicc import cli as euicc_cli
from lpa_emulator.modem import cli as modem_cli
from lpa_emulator.rig import CARD_KINDS, Rig, RigError, RigResult, verify
from lpa_emulator.smdp import cli as smdp_cli
from lpa_emulator.stack.mosquitto import StackError


def _print_result(result: RigResult, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "registered": result.registered,
            "failed": result.failed,
            "seconds": round(result.seconds, 3),
            "devices": [{"name": d.name, "card": d.kind, "eid": d.eid, "iccid": d.iccid,
                         "error": d.error, "seconds": round(d.seconds, 3)}
                        for d in result.devices],
            "app_devices": result.app_devices,
            "notes": result.notes,
        }, indent=2))
        return
    for note in result.notes:
        print(f"note        {note}")
    print()
    print(result.app_table.rstrip())
    print()
    per_device = sum(d.seconds for d in result.devices) / max(1, len(result.devices))
    print(f"registered: {result.registered}, failed: {result.failed} "
          f"({result.seconds:.1f} s in all, {per_device:.2f} s per device boot)")


def _run_rig(rig: Rig, as_json: bool) -> int:
    try:
        result = rig.run()
    except (RigError, StackError) as exc:
        print(f"mps-emu: {exc}", file=sys.stderr)
        return 1
    _print_result(result, as_json=as_json)
    problems = verify(result)
    for p in problems:
        print(f"mps-emu: {p}", file=sys.stderr)
    return 1 if problems else 0


def _sayer(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say


def cmd_demo(args: argparse.Namespace) -> int:
    say = _sayer(args.json)
    say("Paul's four devices boot, register with the operator's registry, and a health app "
        "finds all of them by his phone number.\n")
    rig = Rig(4, workdir=args.workdir, say=say,
              use_pcsc=False if args.no_pcsc else None)
    return _run_rig(rig, args.json)


def cmd_rig(args: argparse.Namespace) -> int:
    say = _sayer(args.json)
    kinds = args.cards.split(",") if args.cards else None
    try:
        rig = Rig(args.devices, workdir=args.workdir, kinds=kinds, say=say,
                  use_pcsc=False if args.no_pcsc else None)
    except RigError as exc:
        print(f"mps-emu: {exc}", file=sys.stderr)
        return 2
    return _run_rig(rig, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mps-emu", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("MPS_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)
    euicc_cli.register(sub)
    modem_cli.register(sub)
    smdp_cli.register(sub)

    demo = sub.add_parser("demo", help="Paul's four devices and an app finding them")
    demo.add_argument("--workdir", type=Path, help="keep files and logs here")
    demo.add_argument("--no-pcsc", action="store_true", help="never use pcscd + vpcd")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    rig = sub.add_parser("rig", help="N emulated devices through first boot")
    rig.add_argument("--devices", type=int, default=10)
    rig.add_argument("--cards", help=f"comma-separated card kinds to cycle: {','.join(CARD_KINDS)}")
    rig.add_argument("--workdir", type=Path, help="keep files and logs here")
    rig.add_argument("--no-pcsc", action="store_true", help="never use pcscd + vpcd")
    rig.add_argument("--json", action="store_true")
    rig.set_defaults(func=cmd_rig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""``mps-emu``: emulated hardware and the operator side (modem, eUICC, SM-DP+, PKI, rig)."""

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
from lpa_emulator.smdp import cli as smdp_cli
from mps_testbed.rig import (
    CARD_KINDS,
    DIALECTS,
    Rig,
    RigError,
    RigResult,
    operator_data,
    summary,
    verify,
)
from mps_testbed.stack.mosquitto import StackError


def _print_result(result: RigResult, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "registered": result.registered,
            "failed": result.failed,
            "seconds": round(result.seconds, 3),
            "per_device_s": {k: round(v, 3) for k, v in result.per_device().items()},
            "phases_s": result.phases,
            "devices": [{"name": d.name, "card": d.kind, "dialect": d.dialect, "eid": d.eid,
                         "iccid": d.iccid, "error": d.error, "seconds": round(d.seconds, 3),
                         "boot_s": d.boot_seconds, "downloaded": d.downloaded}
                        for d in result.devices],
            "app_checked": result.app_checked,
            "app_devices": result.app_devices,
            "notes": result.notes,
        }, indent=2))
        return
    for note in result.notes:
        print(f"note        {note}")
    if result.app_table:
        print()
        print(result.app_table.rstrip())
    print()
    print(summary(result))


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


def _names(text: str | None, known: Sequence[str], what: str) -> list[str] | None:
    if text is None:
        return None
    names = list(known) if text == "all" else [n.strip() for n in text.split(",") if n]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise RigError(f"--{what}: unknown {', '.join(unknown) or 'empty list'}; "
                       f"use {', '.join(known)} or all")
    return names


def cmd_rig(args: argparse.Namespace) -> int:
    say = _sayer(args.json)
    try:
        rig = Rig(args.devices, workdir=args.workdir,
                  kinds=_names(args.cards, CARD_KINDS, "cards"),
                  dialects=_names(args.dialects, DIALECTS, "dialects"), say=say,
                  use_pcsc=False if args.no_pcsc else None, broker=args.broker, db=args.db,
                  operator_data=args.operator_data, first=args.first,
                  parallel=args.parallel, app_check=not args.no_app_check,
                  download=not args.preloaded)
    except RigError as exc:
        print(f"mps-emu: {exc}", file=sys.stderr)
        return 2
    if args.export_operator_data is not None:
        text = operator_data(rig.story, rig.plan())
        if args.export_operator_data == "-":
            sys.stdout.write(text)
        else:
            Path(args.export_operator_data).write_text(text)
        return 0
    return _run_rig(rig, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mps-emu", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("MPS_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)
    euicc_cli.register(sub)
    modem_cli.register(sub)
    smdp_cli.register(sub)


    rig = sub.add_parser(
        "rig", help="N emulated devices through first boot",
        description="Run N emulated devices (modem on a pty + eUICC each) through first "
                    "boot against the embedded stack, or against an existing deployment "
                    "with --broker, and end with 'registered: N, failed: M' and the time "
                    "per device. Exit 0 when every device registered (and the app saw "
                    "them all), 1 otherwise, 2 for bad options.")
    rig.add_argument("--devices", type=int, default=10, help="how many (default 10)")
    rig.add_argument("--cards", help=f"card kinds to cycle, comma-separated or all: "
                                     f"{','.join(CARD_KINDS)} (default emu,at,pcsc,at)")
    rig.add_argument("--dialects", help=f"modem dialects to cycle, comma-separated or all: "
                                        f"{','.join(DIALECTS)} (default quectel)")
    rig.add_argument("--broker", help="use an existing deployment's broker (mqtt[s]://...) "
                                      "instead of starting the embedded stack")
    rig.add_argument("--db", help="with --broker: the registry's database, to import the "
                                  "operator data into (mps-bridge operator import)")
    rig.add_argument("--operator-data", choices=("auto", "import", "topic", "none"),
                     default="auto",
                     help="with --broker, how the registry learns the subscriptions: "
                          "'topic' sends them on its operator topic, 'import' uses --db, "
                          "'none' expects them imported already (--export-operator-data); "
                          "auto: import with --db, else topic")
    rig.add_argument("--export-operator-data", metavar="FILE",
                     help="write the operator data of these devices (TOML for mps-bridge "
                          "operator import; - for stdout) and exit")
    rig.add_argument("--first", type=int, default=0, metavar="K",
                     help="number devices from K (keeps several rigs on one registry apart)")
    rig.add_argument("--parallel", type=int, metavar="P",
                     help="agents booting at once (default: two per core)")
    rig.add_argument("--no-app-check", action="store_true",
                     help="skip asking the registry, as an app, for the devices")
    rig.add_argument("--workdir", type=Path, help="keep files and logs here")
    rig.add_argument("--no-pcsc", action="store_true", help="never use pcscd + vpcd")
    rig.add_argument("--preloaded", action="store_true",
                     help="cards hold their profile from the start (no SM-DP+ download)")
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

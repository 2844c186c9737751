"""``mps-emu``: emulated hardware and the operator side (modem, eUICC, SM-DP+, PKI, rig)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lpa_emulator.eim import cli as eim_cli
from lpa_emulator.euicc import cli as euicc_cli
from lpa_emulator.modem import cli as modem_cli
from lpa_emulator.smdp import cli as smdp_cli
from lpa_emulator.smds import cli as smds_cli
from lpa_emulator.subcommands import add_command
from lpa_emulator.uicc import cli as uicc_cli
from mps_common.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    LOG_LEVELS,
    emit,
    fail,
    json_flag,
    new_parser,
    parse,
    setup_logging,
)

if TYPE_CHECKING:
    from mps_testbed.rig import Rig, RigResult

PROG = "mps-emu"
DESCRIPTION = """\
Emulated hardware and the operator side: LTE modems on pseudo-terminals, software eUICCs,
the SM-DP+, the test PKI and the N-device rig."""
RIG_DESCRIPTION = """\
Run N emulated devices (modem on a pty + eUICC each) through first boot against the
embedded stack, or against an existing deployment with --broker, and end with
'registered: N, failed: M' and the time per device.

Exit codes: 0 every device registered (and the app saw them all), 1 otherwise,
2 bad options."""


def _result_data(result: RigResult) -> dict[str, Any]:
    return {
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
    }


def _result_text(result: RigResult) -> str:
    from mps_testbed.rig import summary

    lines = [f"note        {note}" for note in result.notes]
    if result.app_table:
        lines += ["", result.app_table.rstrip()]
    return "\n".join([*lines, "", summary(result)])


def _run_rig(rig: Rig, as_json: bool) -> int:
    from mps_testbed.rig import RigError, verify
    from mps_testbed.stack.mosquitto import StackError

    try:
        result = rig.run()
    except (RigError, StackError) as exc:
        return fail(PROG, str(exc))
    if as_json:
        emit(_result_data(result), as_json=True, text=str)
    else:
        print(_result_text(result))
    problems = verify(result)
    for p in problems:
        fail(PROG, p)
    return EXIT_FAILURE if problems else EXIT_OK


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
        raise ValueError(f"--{what}: unknown {', '.join(unknown) or 'empty list'}; "
                         f"use {', '.join(known)} or all")
    return names


def cmd_rig(args: argparse.Namespace) -> int:
    """``mps-emu rig``: the test bed's rig is imported only when it runs."""
    from mps_testbed.rig import CARD_KINDS, DIALECTS, Rig, RigError, operator_data

    try:
        rig = Rig(args.devices, workdir=args.workdir,
                  kinds=_names(args.cards, CARD_KINDS, "cards"),
                  dialects=_names(args.dialects, DIALECTS, "dialects"), say=_sayer(args.json),
                  use_pcsc=False if args.no_pcsc else None, broker=args.broker, db=args.db,
                  operator_data=args.operator_data, first=args.first,
                  parallel=args.parallel, app_check=not args.no_app_check,
                  download=not args.preloaded, profiles=_profiles(args))
    except (RigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    if args.export_operator_data is not None:
        text = operator_data(rig.story, rig.plan())
        if args.export_operator_data == "-":
            sys.stdout.write(text)
        else:
            Path(args.export_operator_data).write_text(text)
        return EXIT_OK
    return _run_rig(rig, args.json)


def _profiles(args: argparse.Namespace) -> Any:
    """``--eim``: the devices' profiles ordered by an eIM (SGP.32); ``--smds``: found
    through the root SM-DS (SGP.22 3.6); else the default."""
    if not (args.eim or args.smds):
        return None
    if args.eim and args.smds:
        raise ValueError("--eim and --smds are two ways to the profile: choose one")
    if args.preloaded:
        raise ValueError(f"--{'eim' if args.eim else 'smds'} downloads every profile: it "
                         "does not go with --preloaded")
    if args.smds:
        from mps_testbed.smds import SmdsProfiles

        return SmdsProfiles()
    from mps_testbed.eim import EimProfiles

    return EimProfiles()


def _register_rig(sub: Any) -> None:
    rig = add_command(sub, "rig", help="N emulated devices through first boot",
                      description=RIG_DESCRIPTION)
    rig.add_argument("--devices", type=int, default=10, help="how many (default 10)")
    rig.add_argument("--cards", help="card kinds to cycle, comma-separated or all: emu, at, "
                                     "pcsc (default emu,at,pcsc,at)")
    rig.add_argument("--dialects", help="modem dialects to cycle, comma-separated or all "
                                        "(default quectel)")
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
    rig.add_argument("--eim", action="store_true",
                     help="cards leave the factory empty with an eIM associated; the eIM "
                          "orders each profile and the agents boot headless (SGP.32)")
    rig.add_argument("--smds", action="store_true",
                     help="cards leave the factory empty with a root SM-DS, where each "
                          "order is an event; first boot finds its profile there (ES11)")
    rig.add_argument("--preloaded", action="store_true",
                     help="cards hold their profile from the start (no SM-DP+ download)")
    json_flag(rig)
    rig.set_defaults(func=cmd_rig)


def build_parser() -> argparse.ArgumentParser:
    """The ``mps-emu`` parser with every command."""
    parser = new_parser(PROG, DESCRIPTION)
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS,
                        default=os.environ.get("MPS_LOG_LEVEL", "warning").lower(),
                        help="log to stderr from this level on (default: warning, "
                             "$MPS_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    euicc_cli.register(sub)
    uicc_cli.register(sub)
    modem_cli.register(sub)
    smdp_cli.register(sub)
    smds_cli.register(sub)
    eim_cli.register(sub)
    _register_rig(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    setup_logging(args.log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""``mps-emu uicc``: create or open a plain UICC (a SIM without an ISD-R) and show it or
serve it through vpcd."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lpa_emulator.euicc.cli import host_port, identifier, serve
from lpa_emulator.euicc.errors import StateError
from lpa_emulator.subcommands import Subparsers, add_command
from lpa_emulator.uicc.card import UiccCard, UiccState
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, emit, fail
from mps_wire.identifiers import validate_iccid, validate_imsi, validate_msisdn

log = logging.getLogger(__name__)

PROG = "mps-emu uicc"
DESCRIPTION = """\
Create or open a plain UICC: a SIM card with one subscription in its files (EF.ICCID
under the MF, EF.IMSI and EF.MSISDN in ADF.USIM) and no ISD-R, so it has no EID and
takes no profile download. A device with such a card registers with its ICCID and
IMSI (mps-agent); the operator files the subscription (mps-bridge operator bind).

Without --vpcd it prints the card as JSON; with it, it serves the card into a PC/SC
reader until SIGTERM or SIGINT. The same state file works as emu://FILE for the agent
and as the card of mps-emu modem (--card-state FILE).

Exit codes: 0 done, 1 the card cannot be used (corrupt state, identities that differ from
the existing file), 2 bad arguments."""


def register(subparsers: Subparsers) -> None:
    """Add the ``uicc`` subcommand (its handler is set as ``func``)."""
    p = add_command(subparsers, "uicc",
                    help="a plain UICC (SIM without ISD-R): show it, or serve it through vpcd",
                    description=DESCRIPTION)
    p.add_argument("--state", type=Path, required=True, metavar="FILE",
                   help="the card's state file (created when missing)")
    p.add_argument("--iccid", type=identifier(validate_iccid),
                   help="ICCID of a new card (default: random; must match an existing one)")
    p.add_argument("--imsi", type=identifier(validate_imsi),
                   help="IMSI of a new card (default: random; must match an existing one)")
    p.add_argument("--msisdn", type=identifier(validate_msisdn),
                   help="MSISDN a new card keeps in EF.MSISDN, E.164")
    p.add_argument("--vpcd", type=host_port, metavar="HOST:PORT",
                   help="serve the card to vpcd there (e.g. 127.0.0.1:35963) until stopped")
    p.set_defaults(func=run)


class _Refused(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def open_card(args: argparse.Namespace) -> UiccCard:
    """The card for ``args``: created with the asked identities, or opened and checked."""
    path: Path = args.state
    if path.exists():
        try:
            card = UiccCard.open(path)
        except (StateError, OSError) as exc:
            raise _Refused(f"cannot use the card state: {exc}") from exc
        for field in ("iccid", "imsi", "msisdn"):
            wanted = getattr(args, field)
            if wanted is not None and getattr(card.state, field) != wanted:
                raise _Refused(f"{path} holds the card with {field.upper()} "
                               f"{getattr(card.state, field)}, not {wanted}")
        return card
    if not path.parent.is_dir():
        raise _Refused(f"directory {path.parent} does not exist")
    state = UiccState.new(iccid=args.iccid, imsi=args.imsi, msisdn=args.msisdn)
    try:
        state.save(path)
    except OSError as exc:
        raise _Refused(f"cannot write {path}: {exc}") from exc
    log.info("created UICC %s in %s", state.iccid, path)
    return UiccCard(state, path)


def describe(card: UiccCard) -> dict[str, Any]:
    """What ``mps-emu uicc`` prints."""
    state = card.state
    return {"kind": "uicc", "eid": None, "iccid": state.iccid, "imsi": state.imsi,
            "msisdn": state.msisdn, "spn": state.spn,
            "state": str(card.state_path) if card.state_path else None}


def run(args: argparse.Namespace) -> int:
    """The ``uicc`` subcommand."""
    try:
        card = open_card(args)
    except _Refused as exc:
        return fail(PROG, str(exc), exc.code)
    except StateError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    if args.vpcd is None:
        emit(describe(card), as_json=True, text=str)
        return EXIT_OK
    serve(card, *args.vpcd)
    return EXIT_OK

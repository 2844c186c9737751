"""``mps-emu euicc``: create or open a software eUICC and show it or serve it through vpcd."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from lpa_emulator.errors import EmulatorError
from lpa_emulator.euicc import identity as ident
from lpa_emulator.euicc.card import EuiccCard
from lpa_emulator.euicc.errors import StateError
from lpa_emulator.euicc.filecard import FileCard
from lpa_emulator.euicc.state import CardState, ProfileRecord
from lpa_emulator.subcommands import Subparsers, add_command, parse_standalone
from lpa_emulator.vpcd import serve_vpcd
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, emit, fail, setup_logging
from mps_esim.simfiles import ISDR_AID
from mps_wire.identifiers import (
    IdentifierError,
    validate_eid,
    validate_iccid,
    validate_imsi,
    validate_msisdn,
)

log = logging.getLogger(__name__)

PROG = "mps-emu euicc"
DESCRIPTION = """\
Create or open a software eUICC, then show it or serve it into PC/SC through vpcd.

The card's identity (CERT.EUICC, its key, CERT.EUM, CERT.CI) comes from a PKI directory
(ci.pem, eum.pem, euicc-<EID>.pem + .key, or eum.key to issue one), from single files
(PEM or DER), or, with neither, from the built-in test issuer. Files are referred to by the
state, not copied; giving them for an existing card rebinds it to them.

A new card holds one enabled test profile with a random ICCID and IMSI that no operator
knows: enough for `mps-agent identity`, not for registering with an operator's registry.
--empty makes a card without profiles, to try a profile download (`mps-lpa profile
download`, or the agent's first boot); --iccid/--imsi give the profile of a subscription
the operator filed.

Without --vpcd it prints the card's identity as JSON; with it, it serves the card into a
PC/SC reader until SIGTERM or SIGINT.

Exit codes: 0 done, 1 the card cannot be used (corrupt state, identities that differ from
the existing file, unusable identity files, ...), 2 bad arguments."""


class _Refused(EmulatorError):
    """The command cannot go on; carries its message and exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def identifier(check: Any) -> Any:
    def parse(text: str) -> str:
        try:
            return str(check(text))
        except IdentifierError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _aid(text: str) -> bytes:
    try:
        aid = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    if not 5 <= len(aid) <= 16:
        raise argparse.ArgumentTypeError(f"an AID is 5 to 16 bytes, got {len(aid)}")
    return aid


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:35963, got {text!r}")
    return host.strip("[]"), int(port)


def register(subparsers: Subparsers) -> None:
    """Add the ``euicc`` subcommand (its handler is set as ``func``)."""
    p = add_command(subparsers, "euicc",
                    help="a software eUICC: show it, or serve it into PC/SC through vpcd",
                    description=DESCRIPTION)
    p.add_argument("--state", type=Path, required=True, metavar="FILE",
                   help="the card's state file (created when missing)")
    p.add_argument("--eid", type=identifier(validate_eid),
                   help="EID for a new card (must match an existing one)")
    p.add_argument("--empty", action="store_true",
                   help="a new card without profiles (default: one random test profile)")
    p.add_argument("--iccid", type=identifier(validate_iccid),
                   help="ICCID of the profile of a new card (with --imsi)")
    p.add_argument("--imsi", type=identifier(validate_imsi),
                   help="IMSI of that profile (with --iccid)")
    p.add_argument("--msisdn", type=identifier(validate_msisdn),
                   help="MSISDN of that profile, E.164 (with --iccid and --imsi)")
    p.add_argument("--smdp-address", metavar="FQDN",
                   help="SM-DP+ of that profile: its notifications go there")
    p.add_argument("--isdr-aid", type=_aid, metavar="HEX",
                   help=f"the ISD-R's AID of a new card (default {ISDR_AID.hex().upper()})")
    p.add_argument("--pki", type=Path, metavar="DIR",
                   help="identity from a PKI directory (ci.pem, eum.pem, euicc-<EID>.pem/.key)")
    p.add_argument("--cert", type=Path, metavar="FILE", help="CERT.EUICC (PEM or DER)")
    p.add_argument("--key", type=Path, metavar="FILE", help="SK.EUICC (PEM or DER)")
    p.add_argument("--eum-cert", type=Path, metavar="FILE", help="CERT.EUM (PEM or DER)")
    p.add_argument("--ci-cert", type=Path, metavar="FILE", action="append", default=[],
                   help="CERT.CI (PEM or DER); repeat for several CIs")
    p.add_argument("--vpcd", type=host_port, metavar="HOST:PORT",
                   help="serve the card to vpcd there (e.g. 127.0.0.1:35963) until stopped")
    p.set_defaults(func=run)


def _wanted_profile(args: argparse.Namespace) -> ProfileRecord | None:
    if args.empty and args.iccid is not None:
        raise _Refused("--empty and --iccid exclude each other", EXIT_USAGE)
    if (args.iccid is None) != (args.imsi is None):
        raise _Refused("--iccid and --imsi go together", EXIT_USAGE)
    if args.msisdn is not None and args.iccid is None:
        raise _Refused("--msisdn needs --iccid and --imsi", EXIT_USAGE)
    if args.smdp_address is not None and args.iccid is None:
        raise _Refused("--smdp-address needs --iccid and --imsi", EXIT_USAGE)
    if args.iccid is None:
        return None
    try:
        return ProfileRecord.generate(iccid=args.iccid, imsi=args.imsi, msisdn=args.msisdn,
                                      smdp_address=args.smdp_address)
    except ValueError as exc:
        raise _Refused(str(exc), EXIT_USAGE) from None


def _wanted_identity(args: argparse.Namespace, eid: str | None) -> ident.EuiccIdentity | None:
    files = (args.cert, args.key, args.eum_cert)
    if args.pki is not None and (any(files) or args.ci_cert):
        raise _Refused("--pki and --cert/--key/--eum-cert/--ci-cert exclude each other",
                       EXIT_USAGE)
    if any(files) and not all(files):
        raise _Refused("--cert, --key and --eum-cert go together", EXIT_USAGE)
    if args.ci_cert and not all(files):
        raise _Refused("--ci-cert needs --cert, --key and --eum-cert", EXIT_USAGE)
    try:
        if args.pki is not None:
            return ident.load_pki_dir(args.pki, eid)
        if all(files):
            return ident.load_files(certificate=args.cert, private_key=args.key,
                                    eum_certificate=args.eum_cert,
                                    ci_certificates=args.ci_cert)
    except ident.IdentityError as exc:
        raise _Refused(f"cannot use the identity files: {exc}") from exc
    return None


def _check_matches(state: CardState, args: argparse.Namespace, path: Path) -> None:
    if args.eid is not None and args.eid != state.eid:
        raise _Refused(f"{path} holds the card with EID {state.eid}, not {args.eid}")
    if args.empty and state.profiles:
        raise _Refused(f"{path} holds a card with {len(state.profiles)} profile(s), not an "
                       "empty one (mps-lpa profile disable/delete remove them)")
    if args.iccid is None:
        return
    profile = state.find_profile(iccid=args.iccid)
    if profile is None:
        raise _Refused(f"{path} holds no profile with ICCID {args.iccid}")
    for field in ("imsi", "msisdn"):
        wanted = getattr(args, field)
        if wanted is not None and getattr(profile, field) != wanted:
            raise _Refused(f"{path}: profile {args.iccid} has {field.upper()} "
                           f"{getattr(profile, field)}, not {wanted}")


def _save(state: CardState, path: Path) -> None:
    try:
        state.save(path)
    except OSError as exc:
        raise _Refused(f"cannot write {path}: {exc}") from exc


def open_card(args: argparse.Namespace) -> EuiccCard:
    """The card for ``args``: created with the asked identities, or opened and checked."""
    path: Path = args.state
    wanted = _wanted_profile(args)
    if path.exists():
        try:
            card = EuiccCard.open(path)
        except (StateError, OSError) as exc:
            raise _Refused(f"cannot use the card state: {exc}") from exc
        _check_matches(card.state, args, path)
        if args.isdr_aid is not None and args.isdr_aid != card.isdr_aid:
            raise _Refused(f"{path} holds a card whose ISD-R is {card.isdr_aid.hex().upper()}, "
                           f"not {args.isdr_aid.hex().upper()}")
        identity = _wanted_identity(args, card.eid)
        if identity is not None and identity != card.state.identity:
            state = card.state.copy()
            state.identity = identity
            try:
                state.check()
            except ValueError as exc:
                raise _Refused(f"the identity files do not fit the card: {exc}") from exc
            _save(state, path)
            card = EuiccCard.from_state(state, path)
        return card
    if not path.parent.is_dir():
        raise _Refused(f"directory {path.parent} does not exist")
    identity = _wanted_identity(args, args.eid)
    try:
        profiles = [] if args.empty else None if wanted is None else [wanted]
        state = CardState.new(eid=args.eid, profiles=profiles,
                              identity=identity, isdr_aid=args.isdr_aid or ISDR_AID)
    except ValueError as exc:
        raise _Refused(f"the identity files do not fit the card: {exc}") from exc
    _save(state, path)
    log.info("created card %s in %s", state.eid, path)
    if not args.empty and wanted is None:
        test = state.profiles[0]
        print(f"{PROG}: note: the new card holds a test profile (ICCID {test.iccid}, IMSI "
              f"{test.imsi}) that no operator knows; --empty makes a card to download a "
              "profile into", file=sys.stderr)
    return EuiccCard.from_state(state, path)


def identity(card: EuiccCard) -> dict[str, Any]:
    """What ``mps-emu euicc`` prints: the EID, ISD-R AID, identity, profiles and
    pending notifications."""
    state = card.state
    identity = state.identity
    return {
        "eid": state.eid,
        "isdr_aid": card.isdr_aid.hex().upper(),
        "state": str(card.state_path) if card.state_path else None,
        "default_dp_address": state.default_dp_address,
        "identity": {
            "certificate": identity.certificate.subject.rfc4514_string(),
            "eum": identity.eum_certificate.subject.rfc4514_string(),
            "ci_pkids": [k.hex().upper() for k in identity.ci_pkids],
            "files": {name: [str(p) for p in paths]
                      for name, paths in sorted(identity.sources.items())},
        },
        "profiles": [
            {"iccid": p.iccid, "imsi": p.imsi, "msisdn": p.msisdn, "enabled": p.enabled,
             "isdp_aid": p.isdp_aid.hex().upper(), "name": p.name, "nickname": p.nickname,
             "spn": p.spn, "profile_class": p.profile_class, "smdp_address": p.smdp_address}
            for p in state.profiles
        ],
        "notifications": [
            {"seq": n.seq, "operation": n.operation, "address": n.address, "iccid": n.iccid}
            for n in state.notifications
        ],
    }


def serve(card: FileCard, host: str, port: int) -> None:
    """Serve ``card`` into PC/SC through vpcd at host:port until SIGTERM or SIGINT (or,
    off the main thread, for ever)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Signal handlers can only be set from the main thread; elsewhere the caller stops us.
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal)
                for sig in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        print(f"{card.name} serving vpcd at {host}:{port}", flush=True)
        serve_vpcd(card, host, port, stop=stop, reconnect=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    """The ``euicc`` subcommand."""
    try:
        card = open_card(args)
    except _Refused as exc:
        return fail(PROG, str(exc), exc.code)
    if args.vpcd is None:
        emit(identity(card), as_json=True, text=str)
        return EXIT_OK
    serve(card, *args.vpcd)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m lpa_emulator.euicc.cli``), same options as the
    ``euicc`` subcommand; a leading ``euicc`` is optional."""
    args = parse_standalone("euicc", register, sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        return args
    setup_logging(os.environ.get("MPS_LOG_LEVEL", "warning").lower())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

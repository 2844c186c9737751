"""``mps-lpa``: a command-line LPA for any eUICC the agent can reach.

::

    mps-lpa [--apdu emu|pcsc|at] [--state FILE | --reader REGEX | --device PATH]
            [--card URL] [--isdr-aid HEX] [--block-size N] [--json] COMMAND

    chip info                          EID, configured addresses, EUICCInfo2
    chip default-dp ADDRESS            set (or with "" clear) the default SM-DP+ address
    profile list [--class CLASS]       the installed profiles
    profile enable ID [--no-refresh]   ID: an ICCID or an ISD-P AID (hex)
    profile disable ID [--no-refresh]
    profile delete ID
    profile nickname ID [NAME]         without NAME the nickname is removed
    profile download [-a CODE | -s ADDRESS [-m MATCHING_ID]] [-c CONFIRMATION]
                     [--ca FILE] [--enable]
                                       download a profile from an SM-DP+ (SGP.22 ES9+ over
                                       HTTPS); without -a or -s from the eUICC's default
                                       SM-DP+ (SM-DS discovery is not supported)
    notification list
    notification process [--ca FILE]   send every pending notification to its SM-DP+;
                                       each is removed only once the SM-DP+ acknowledged it
    notification remove SEQ... | --all

The card is reached in-process (``emu``, its state file), through PC/SC (``pcsc``, the
first reader matching the pattern) or behind a modem (``at``, its serial port); ``--card``
takes a card URL as the agent does. The SM-DP+'s TLS certificate is verified against
``--ca FILE`` (``MPS_SMDP_CA``) or the system's trust store; a download shows a progress
bar on a terminal, and a failed one is cancelled on the eUICC and the SM-DP+. Options may
also come from the environment (``MPS_LPA_APDU``, ``MPS_LPA_STATE``, ``MPS_LPA_READER``,
``MPS_LPA_DEVICE``, ``MPS_LPA_ISDR_AID``, ``MPS_SMDP_CA``); arguments win.

Output is a readable table, or JSON with ``--json``. Exit codes: 0 done; 1 the card or the
SM-DP+ refused the command or failed (the ES10 result, status word, or the download step
and SGP.22 status is printed); 2 usage error; 3 no card, reader or modem to talk to (or
the card went away).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agent.card import CardLink, open_card
from agent.download import Es9Clients
from agent.errors import (
    AgentConfigError,
    AgentError,
    CardError,
    CardRemovedError,
    ModemError,
    NoCardError,
    StatusWordError,
)
from mps_common.progress import Progress
from mps_esim import sgp22
from mps_esim.lpa import Es10Client, Es10Error, Es10ResultError
from mps_esim.lpa.activation import ActivationCodeError, check_address, parse_activation_code
from mps_esim.lpa.download import (
    CardUnavailableError,
    DownloadError,
    Es10bOverStoreData,
    ProfileDownloader,
    Stage,
    process_notifications,
)
from mps_esim.lpa.download import Progress as DownloadProgress
from mps_esim.lpa.es10 import DEFAULT_BLOCK_SIZE
from mps_esim.simfiles import ISDR_AID

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_CARD = 0, 1, 2, 3

BACKENDS = ("emu", "pcsc", "at")
_ENV = {"apdu": "MPS_LPA_APDU", "state": "MPS_LPA_STATE", "reader": "MPS_LPA_READER",
        "device": "MPS_LPA_DEVICE", "isdr_aid": "MPS_LPA_ISDR_AID", "ca": "MPS_SMDP_CA"}


class UsageError(Exception):
    """The options do not make a command."""


@dataclass(frozen=True)
class Output:
    """What a command shows: JSON for scripts, lines of text for people."""

    data: Any
    text: list[str]


# --- choosing the card ------------------------------------------------------------------------

def _hex_aid(text: str) -> bytes:
    try:
        aid = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a hex AID") from None
    if not 5 <= len(aid) <= 16:
        raise UsageError(f"an AID is 5 to 16 bytes, got {len(aid)}")
    return aid


def card_url(args: argparse.Namespace) -> str:
    """The card URL the options name (``--card`` as given, else built from ``--apdu``)."""
    if args.card:
        return str(args.card)
    backend = args.apdu or os.environ.get(_ENV["apdu"])
    if backend is None:
        raise UsageError("say how to reach the card: --apdu emu|pcsc|at (or --card URL)")
    if backend not in BACKENDS:
        raise UsageError(f"--apdu must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "emu":
        state = args.state or os.environ.get(_ENV["state"])
        if not state:
            raise UsageError("--apdu emu needs --state FILE")
        path = Path(state).resolve()
        if not path.is_file():
            # An LPA must not conjure a card up: emu:// would create a fresh one here.
            raise NoCardError(f"no emulated card: {path} does not exist")
        return f"emu://{path}"
    if backend == "pcsc":
        reader = args.reader or os.environ.get(_ENV["reader"]) or ""
        try:
            re.compile(reader)
        except re.error as exc:
            raise UsageError(f"--reader {reader!r} is not a regular expression: {exc}") from None
        return "pcsc://" + (f"?reader={quote(reader, safe='')}" if reader else "")
    device = args.device or os.environ.get(_ENV["device"])
    if not device:
        raise UsageError("--apdu at needs --device PATH (the modem's AT port)")
    return f"at://{Path(device).absolute()}"


# --- presenting ---------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return lines


def pairs(items: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _v in items)
    return [f"{k.ljust(width)}  {v}" for k, v in items]


def _names(values: frozenset[str] | None) -> list[str]:
    return sorted(values or ())


def profile_json(p: sgp22.ProfileInfo) -> dict[str, Any]:
    return {
        "iccid": p.iccid, "isdp_aid": p.isdp_aid.hex().upper() if p.isdp_aid else None,
        "state": p.state, "class": p.profile_class, "name": p.profile_name,
        "nickname": p.nickname, "provider": p.provider_name,
        "owner": p.owner.plmn if p.owner else None, "ppr": _names(p.ppr),
        "notifications": [{"operations": _names(c.operations), "address": c.address}
                          for c in p.notification_config or ()],
    }


# --- commands -------------------------------------------------------------------------------------

def cmd_chip_info(client: Es10Client, args: argparse.Namespace) -> Output:
    eid = client.get_eid()
    addresses = client.get_configured_addresses()
    info = client.get_euicc_info2()
    pkids = [k.hex().upper() for k in info.ci_pkids_verification]
    data = {
        "eid": eid,
        "isdr_aid": args.isdr_aid.hex().upper(),
        "default_dp_address": addresses.default_dp_address,
        "root_ds_address": addresses.root_ds_address,
        "euicc_info2": {
            "profile_version": info.profile_version, "svn": info.svn,
            "firmware_version": info.firmware_version,
            "installed_applications": info.resources.installed_applications,
            "free_nvm": info.resources.free_nvm, "free_ram": info.resources.free_ram,
            "uicc_capabilities": _names(info.uicc_capabilities),
            "rsp_capabilities": _names(info.rsp_capabilities),
            "ci_pkids_verification": pkids,
            "ci_pkids_signing": [k.hex().upper() for k in info.ci_pkids_signing],
            "ts102241_version": info.ts102241_version,
            "globalplatform_version": info.globalplatform_version,
            "category": info.category, "pp_version": info.pp_version,
            "sas_accreditation_number": info.sas_accreditation_number,
            "forbidden_ppr": _names(info.forbidden_ppr),
        },
    }
    text = pairs([
        ("EID", eid),
        ("ISD-R AID", data["isdr_aid"]),
        ("default SM-DP+", addresses.default_dp_address or "-"),
        ("root SM-DS", addresses.root_ds_address or "-"),
        ("SGP.22 version", info.svn),
        ("profile version", info.profile_version),
        ("firmware", info.firmware_version),
        ("installed apps", str(info.resources.installed_applications)),
        ("free memory", f"{info.resources.free_nvm} bytes"),
        ("free RAM", f"{info.resources.free_ram} bytes"),
        ("UICC capability", ", ".join(_names(info.uicc_capabilities))),
        ("RSP capability", ", ".join(_names(info.rsp_capabilities))),
        ("CI key ids", ", ".join(pkids) or "-"),
        ("category", info.category or "-"),
        ("PP version", info.pp_version),
        ("SAS number", info.sas_accreditation_number),
    ])
    return Output(data, text)


def cmd_chip_default_dp(client: Es10Client, args: argparse.Namespace) -> Output:
    client.set_default_dp_address(args.address)
    shown = args.address or "(none)"
    return Output({"ok": True, "default_dp_address": args.address or None},
                  [f"default SM-DP+ address: {shown}"])


def cmd_profile_list(client: Es10Client, args: argparse.Namespace) -> Output:
    profiles = client.list_profiles(profile_class=args.profile_class)
    rows = [[p.iccid or "-", p.state or "-", p.profile_class, p.profile_name or "-",
             p.nickname or "-", p.provider_name or "-",
             p.isdp_aid.hex().upper() if p.isdp_aid else "-"] for p in profiles]
    text = (table(["ICCID", "STATE", "CLASS", "NAME", "NICKNAME", "PROVIDER", "ISD-P AID"],
                  rows) if profiles else ["no profiles"])
    return Output([profile_json(p) for p in profiles], text)


def profile_id(text: str) -> dict[str, Any]:
    """An ICCID (18-20 digits) or an ISD-P AID (hex) as keyword arguments of the client."""
    if re.fullmatch(r"[0-9]{18,20}", text):
        return {"iccid": text}
    if re.fullmatch(r"(?:[0-9A-Fa-f]{2}){5,16}", text):
        return {"isdp_aid": bytes.fromhex(text)}
    raise UsageError(f"{text!r} is neither an ICCID (18-20 digits) nor an ISD-P AID (hex)")


def _done(action: str, ident: str) -> Output:
    return Output({"ok": True, "action": action, "profile": ident}, [f"{action} {ident}"])


def cmd_profile_enable(client: Es10Client, args: argparse.Namespace) -> Output:
    client.enable_profile(**profile_id(args.id), refresh=args.refresh)
    return _done("enabled", args.id)


def cmd_profile_disable(client: Es10Client, args: argparse.Namespace) -> Output:
    client.disable_profile(**profile_id(args.id), refresh=args.refresh)
    return _done("disabled", args.id)


def cmd_profile_delete(client: Es10Client, args: argparse.Namespace) -> Output:
    client.delete_profile(**profile_id(args.id))
    return _done("deleted", args.id)


def cmd_profile_nickname(client: Es10Client, args: argparse.Namespace) -> Output:
    ident = profile_id(args.id)
    iccid = ident.get("iccid")
    if iccid is None:
        # SetNickname names the profile by ICCID only: look the AID up.
        found = client.list_profiles(isdp_aid=ident["isdp_aid"], tags=[sgp22.TAG_ICCID])
        if not found or found[0].iccid is None:
            raise Es10ResultError("SetNickname", 1, sgp22.SET_NICKNAME_RESULTS)
        iccid = found[0].iccid
    if len(args.name) > sgp22.MAX_NICKNAME:
        raise UsageError(f"a nickname is at most {sgp22.MAX_NICKNAME} characters")
    client.set_nickname(iccid, args.name)
    return Output({"ok": True, "profile": iccid, "nickname": args.name or None},
                  [f"nickname of {iccid}: {args.name or '(none)'}"])


class _DownloadBar:
    """The download's progress on a terminal: the step, then the package's segments."""

    def __init__(self) -> None:
        self.stage = Stage.CHALLENGE.value
        self.bar = Progress(None, label="download", note=lambda: self.stage)

    def __call__(self, event: DownloadProgress) -> None:
        self.stage = event.stage.value
        if event.total:
            self.bar.total, self.bar.done = event.total, event.done
        self.bar.refresh()


def _download_target(client: Es10Client, args: argparse.Namespace
                     ) -> tuple[str, str | None, str | None]:
    """(SM-DP+ address, matching id, confirmation code) from the options or the eUICC."""
    if args.activation_code is not None:
        if args.smdp is not None or args.matching_id is not None:
            raise UsageError("give -a CODE or -s ADDRESS -m MATCHING_ID, not both")
        try:
            code = parse_activation_code(args.activation_code)
        except ActivationCodeError as exc:
            raise UsageError(str(exc)) from None
        if code.cc_required and not args.confirmation_code:
            raise UsageError("the activation code asks for a confirmation code (-c)")
        return code.address, code.matching_id, args.confirmation_code
    if args.matching_id is not None and args.smdp is None:
        raise UsageError("-m MATCHING_ID needs -s ADDRESS")
    if args.smdp is not None:
        try:
            return check_address(args.smdp), args.matching_id, args.confirmation_code
        except ActivationCodeError as exc:
            raise UsageError(str(exc)) from None
    default = client.get_configured_addresses().default_dp_address
    if not default:
        raise UsageError("no activation code (-a) or SM-DP+ (-s), and the eUICC has no "
                         "default SM-DP+ address (SM-DS discovery is not supported)")
    return default, None, args.confirmation_code


def cmd_profile_download(client: Es10Client, args: argparse.Namespace) -> Output:
    address, matching_id, confirmation = _download_target(client, args)
    link: CardLink = args.link
    apdus_before = link.apdu_count
    shown = _DownloadBar()
    with Es9Clients(args.ca) as es9, shown.bar:
        downloader = ProfileDownloader(Es10bOverStoreData(client), es9.client,
                                       progress=shown)
        result = downloader.download(address, matching_id, confirmation_code=confirmation)
        if args.enable:
            client.enable_profile(iccid=result.iccid)
            # The enable notification goes to the SM-DP+ that installed the profile; others
            # (the profile that was disabled) wait for 'notification process'.
            process_notifications(Es10bOverStoreData(client), es9.client, addresses={address})
    apdus = link.apdu_count - apdus_before
    data = {"ok": True, "iccid": result.iccid, "isdp_aid": result.aid.hex().upper(),
            "provider": result.service_provider, "name": result.profile_name,
            "smdp": address, "transaction_id": result.transaction_id,
            "notification_sent": result.notification_sent, "enabled": bool(args.enable),
            "seconds": round(result.seconds, 3), "apdus": apdus}
    text = pairs([
        ("ICCID", result.iccid),
        ("ISD-P AID", result.aid.hex().upper()),
        ("provider", result.service_provider or "-"),
        ("name", result.profile_name or "-"),
        ("SM-DP+", address),
        ("state", "enabled" if args.enable else "disabled"),
        ("notification", "delivered" if result.notification_sent
         else "kept on the eUICC (run 'notification process')"),
        ("took", f"{result.seconds:.2f} s, {apdus} APDUs"),
    ])
    return Output(data, [f"downloaded {result.iccid}", *text])


def cmd_notification_process(client: Es10Client, args: argparse.Namespace) -> Output:
    with Es9Clients(args.ca) as es9:
        outcomes = process_notifications(Es10bOverStoreData(client), es9.client)
    rows = [[str(o.seq_number), o.operation, o.address, "yes" if o.sent else "no",
             "yes" if o.removed else "no", o.error or "-"] for o in outcomes]
    text = (table(["SEQ", "OPERATION", "ADDRESS", "SENT", "REMOVED", "ERROR"], rows)
            if outcomes else ["no pending notifications"])
    data = [{"seq": o.seq_number, "operation": o.operation, "address": o.address,
             "sent": o.sent, "removed": o.removed, "error": o.error} for o in outcomes]
    failed = [o for o in outcomes if not o.sent]
    if failed:
        raise _NotificationsKept(data, text, len(failed))
    return Output(data, text)


class _NotificationsKept(Exception):
    """Some notifications could not be delivered (they stay on the eUICC)."""

    def __init__(self, data: Any, text: list[str], failed: int) -> None:
        super().__init__(f"{failed} notification(s) not delivered; they stay on the eUICC")
        self.output = Output(data, text)


def cmd_notification_list(client: Es10Client, args: argparse.Namespace) -> Output:
    items = client.list_notifications()
    rows = [[str(n.seq), n.operation, n.iccid or "-", n.address] for n in items]
    text = table(["SEQ", "OPERATION", "ICCID", "ADDRESS"], rows) if items else [
        "no pending notifications"]
    return Output([{"seq": n.seq, "operation": n.operation, "iccid": n.iccid,
                    "address": n.address} for n in items], text)


def cmd_notification_remove(client: Es10Client, args: argparse.Namespace) -> Output:
    if args.all == bool(args.seq):
        raise UsageError("give sequence numbers or --all")
    seqs = [n.seq for n in client.list_notifications()] if args.all else args.seq
    for seq in seqs:
        client.notification_sent(seq)
    return Output({"ok": True, "removed": seqs},
                  [f"removed notification {s}" for s in seqs] or ["nothing to remove"])


# --- the parser -----------------------------------------------------------------------------------

def _nonneg(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a sequence number")
    return int(text)


def _block_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 255:
        raise argparse.ArgumentTypeError("the STORE DATA block size is 1 to 255")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The ``mps-lpa`` parser. Common options are taken before or after the command."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a leaf's unset option from hiding the one given before the command.
    sup = argparse.SUPPRESS
    common.add_argument("--apdu", choices=BACKENDS, default=sup,
                        help="how to reach the card (env MPS_LPA_APDU)")
    common.add_argument("--state", metavar="FILE", default=sup,
                        help="emu: the card's state file")
    common.add_argument("--reader", metavar="REGEX", default=sup,
                        help="pcsc: the first reader whose name matches")
    common.add_argument("--device", metavar="PATH", default=sup,
                        help="at: the modem's AT port")
    common.add_argument("--card", metavar="URL", default=sup,
                        help="a card URL instead (emu://FILE, pcsc://?reader=RE, at://PORT)")
    common.add_argument("--isdr-aid", metavar="HEX", default=sup,
                        help=f"the ISD-R's AID (default {ISDR_AID.hex().upper()})")
    common.add_argument("--block-size", type=_block_size, metavar="N", default=sup,
                        help=f"STORE DATA block size (default {DEFAULT_BLOCK_SIZE})")
    common.add_argument("--json", action="store_true", default=sup, help="print JSON")
    common.add_argument("-v", "--verbose", action="count", default=sup,
                        help="log more (-vv: every APDU)")

    parser = argparse.ArgumentParser(
        prog="mps-lpa", parents=[common], description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def leaf(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
             func: Callable[[Es10Client, argparse.Namespace], Output], help_text: str
             ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    chip = groups.add_parser("chip", help="the eUICC itself").add_subparsers(
        dest="command", required=True, metavar="ACTION")
    leaf(chip, "info", cmd_chip_info, "EID, configured addresses and EUICCInfo2")
    leaf(chip, "default-dp", cmd_chip_default_dp,
         "set the default SM-DP+ address").add_argument("address", help='"" removes it')

    profile = groups.add_parser("profile", help="installed profiles").add_subparsers(
        dest="command", required=True, metavar="ACTION")
    leaf(profile, "list", cmd_profile_list, "list the profiles").add_argument(
        "--class", dest="profile_class", choices=sgp22.PROFILE_CLASSES,
        help="only profiles of this class")
    for name, func in (("enable", cmd_profile_enable), ("disable", cmd_profile_disable)):
        p = leaf(profile, name, func, f"{name} a profile")
        p.add_argument("id", help="ICCID or ISD-P AID")
        p.add_argument("--no-refresh", dest="refresh", action="store_false",
                       help="do not ask the eUICC to refresh the device")
    leaf(profile, "delete", cmd_profile_delete, "delete a disabled profile").add_argument(
        "id", help="ICCID or ISD-P AID")
    p = leaf(profile, "nickname", cmd_profile_nickname, "set or remove a nickname")
    p.add_argument("id", help="ICCID or ISD-P AID")
    p.add_argument("name", nargs="?", default="", help="the nickname (none: remove it)")
    p = leaf(profile, "download", cmd_profile_download,
             "download a profile from an SM-DP+ (default: the eUICC's default SM-DP+)")
    p.add_argument("-a", "--activation-code", metavar="CODE",
                   help="LPA:1$<SM-DP+ address>$<matching id>")
    p.add_argument("-s", "--smdp", metavar="ADDRESS", help="the SM-DP+ address, HOST[:PORT]")
    p.add_argument("-m", "--matching-id", metavar="ID", help="the matching id (with -s)")
    p.add_argument("-c", "--confirmation-code", metavar="CODE",
                   help="the confirmation code, when the order asks for one")
    p.add_argument("--ca", metavar="FILE", help="CA certificates (PEM) that verify the "
                   "SM-DP+'s TLS certificate (env MPS_SMDP_CA; default the system store)")
    p.add_argument("--enable", action="store_true",
                   help="enable the profile once installed")

    notification = groups.add_parser("notification", help="pending notifications"
                                     ).add_subparsers(dest="command", required=True,
                                                      metavar="ACTION")
    leaf(notification, "list", cmd_notification_list, "list the pending notifications")
    leaf(notification, "process", cmd_notification_process,
         "send the pending notifications; remove each one the SM-DP+ acknowledged"
         ).add_argument("--ca", metavar="FILE", help="CA certificates (PEM) that verify the "
                        "SM-DP+'s TLS certificate (env MPS_SMDP_CA)")
    p = leaf(notification, "remove", cmd_notification_remove,
             "remove notifications (as delivered)")
    p.add_argument("seq", nargs="*", type=_nonneg, help="sequence numbers")
    p.add_argument("--all", action="store_true", help="every pending notification")
    return parser


def _finish(args: argparse.Namespace) -> None:
    """Defaults for common options nobody gave, and the environment's ISD-R AID."""
    for name in ("apdu", "state", "reader", "device", "card"):
        if not hasattr(args, name):
            setattr(args, name, None)
    args.json = getattr(args, "json", False)
    args.verbose = getattr(args, "verbose", 0)
    args.block_size = getattr(args, "block_size", DEFAULT_BLOCK_SIZE)
    if hasattr(args, "ca"):
        args.ca = args.ca or os.environ.get(_ENV["ca"]) or None
    aid = getattr(args, "isdr_aid", None) or os.environ.get(_ENV["isdr_aid"])
    args.isdr_aid = ISDR_AID if aid is None else _hex_aid(aid)


# --- running --------------------------------------------------------------------------------------

def _emit(args: argparse.Namespace, output: Output) -> None:
    if args.json:
        print(json.dumps(output.data, indent=2))
    else:
        print("\n".join(output.text))


def _fail(args: argparse.Namespace, exit_code: int, message: str, **fields: Any) -> int:
    print(f"mps-lpa: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message, **fields}, indent=2))
    return exit_code


def run(args: argparse.Namespace) -> int:
    """Run the parsed command against the card; returns the exit code."""
    link: CardLink | None = None
    try:
        _finish(args)
        link = open_card(card_url(args), isdr_aid=args.isdr_aid)
        link.connect()
        args.link = link
        with link.open_isdr() as isdr:
            output = args.func(Es10Client(isdr, block_size=args.block_size), args)
    except UsageError as exc:
        return _fail(args, EXIT_USAGE, str(exc))
    except CardUnavailableError as exc:
        return _fail(args, EXIT_NO_CARD, f"download failed at {exc.stage.value}: {exc}",
                     stage=exc.stage.value)
    except DownloadError as exc:
        fields = {key: getattr(exc, key) for key in ("subject", "reason", "code", "command")
                  if getattr(exc, key, None) is not None}
        return _fail(args, EXIT_FAILED, f"download failed at {exc.stage.value}: {exc}",
                     stage=exc.stage.value, **fields)
    except _NotificationsKept as exc:
        _emit(args, exc.output)
        print(f"mps-lpa: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AgentConfigError as exc:
        return _fail(args, EXIT_USAGE, str(exc))
    except Es10ResultError as exc:
        return _fail(args, EXIT_FAILED, str(exc), reason=exc.reason, code=exc.code)
    except (NoCardError, CardRemovedError) as exc:
        return _fail(args, EXIT_NO_CARD, str(exc))
    except StatusWordError as exc:
        if exc.sw == 0x6A82 and exc.apdu is not None and exc.apdu[1] == 0xA4:
            return _fail(args, EXIT_FAILED, f"the card has no ISD-R {args.isdr_aid.hex().upper()}"
                         " (give the card's AID with --isdr-aid)", sw=f"{exc.sw:04X}")
        return _fail(args, EXIT_FAILED, str(exc), sw=f"{exc.sw:04X}")
    except Es10Error as exc:
        fields = {} if exc.sw is None else {"sw": f"{exc.sw:04X}"}
        return _fail(args, EXIT_FAILED, str(exc), **fields)
    except ModemError as exc:
        # The modem's port cannot be opened or does not answer: nothing to talk to.
        return _fail(args, EXIT_NO_CARD, f"modem: {exc}")
    except (CardError, AgentError) as exc:
        return _fail(args, EXIT_FAILED, str(exc))
    finally:
        if link is not None:
            try:
                link.close()
            except AgentError as exc:
                log.debug("closing the card link failed: %s", exc)
    _emit(args, output)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mps-lpa``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

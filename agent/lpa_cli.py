"""mps-lpa: a command-line LPA for any eUICC the agent can reach.

    mps-lpa [--apdu emu|pcsc|at] [--state FILE | --reader REGEX | --device PATH]
            [--card URL] [--isdr-aid HEX] [--block-size N] [--json] COMMAND

    chip info                          EID, configured addresses, EUICCInfo2
    chip default-dp ADDRESS            set (or with "" clear) the default SM-DP+ address
    profile list [--class CLASS]       the installed profiles
    profile enable ID [--no-refresh]   ID: an ICCID or an ISD-P AID (hex)
    profile disable ID [--no-refresh]
    profile delete ID
    profile nickname ID [NAME]         without NAME the nickname is removed
    profile ask disable|enable|delete ICCID --broker URL [--credentials DIR]
                                       ask the operator's registry: the user approves, then
                                       the agent's daemon runs the signed order
    profile download [-a CODE | -s ADDRESS [-m MATCHING_ID]] [-c CONFIRMATION]
                     [--ca FILE] [--enable] [DEVICE]
                                       download a profile from an SM-DP+ (SGP.22 ES9+ over
                                       HTTPS); without -a or -s from the eUICC's default
                                       SM-DP+, else the first event at its root SM-DS
    profile discovery [--smds ADDRESS] [--ca FILE] [DEVICE]
                                       the events an SM-DS (default: the eUICC's root
                                       SM-DS) holds for this eUICC (ES11)
    notification list
    notification process [--ca FILE]   send every pending notification to its SM-DP+;
                                       each is removed only once the SM-DP+ acknowledged it
    notification remove SEQ... | --all
    ipa eims | add-eim FILE | poll [--eim HOST:PORT] [--all] [--ca FILE] [DEVICE]
                                       the IoT Profile Assistant (SGP.32): the eUICC's eIMs,
                                       and rounds with the eIM (see agent.ipa_commands)

DEVICE: [--imei IMEI] [--capabilities LIST | --firmware-profile NAME] make the DeviceInfo
the eUICC signs for the server (SGP.22 5.7.13): the TAC of the IMEI (behind a modem, the
modem's own, AT+CGSN) and the radio capabilities; without them a generic LTE device.

The card is reached in-process (emu, its state file), through PC/SC (pcsc, the first
reader matching the pattern) or behind a modem (at, its serial port); --card takes a card
URL as the agent does. The SM-DP+'s TLS certificate is verified against --ca FILE
($MPS_SMDP_CA) or the system's trust store; a download shows a progress bar on a
terminal, and a failed one is cancelled on the eUICC and the SM-DP+. Options may also
come from the environment ($MPS_LPA_APDU, $MPS_LPA_STATE, $MPS_LPA_READER,
$MPS_LPA_DEVICE, $MPS_LPA_ISDR_AID, $MPS_SMDP_CA, $MPS_LPA_IMEI); arguments win.

Output is a readable table, or JSON with --json. Exit codes: 0 done; 1 the card or the
SM-DP+ refused the command or failed (the ES10 result, status word, or the download step
and SGP.22 status is printed); 2 usage error; 3 no card, reader or modem to talk to (or
the card went away).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agent import ipa_commands
from agent.card import CardLink, open_card
from agent.errors import (
    AgentConfigError,
    AgentError,
    CardError,
    CardRemovedError,
    ModemError,
    NoCardError,
    StatusWordError,
)
from agent.lpa_commands import (
    NotificationsKept,
    Output,
    UsageError,
    cmd_chip_default_dp,
    cmd_chip_info,
    cmd_notification_list,
    cmd_notification_remove,
    cmd_profile_delete,
    cmd_profile_disable,
    cmd_profile_enable,
    cmd_profile_list,
    cmd_profile_nickname,
)
from mps_common import logs
from mps_common.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    add_lazy_parser,
    emit,
    fail,
    json_flag,
    new_parser,
    parse,
    setup_logging,
)
from mps_esim import sgp22
from mps_esim.lpa import Es10Client, Es10Error, Es10ResultError
from mps_esim.lpa.es10 import DEFAULT_BLOCK_SIZE
from mps_esim.simfiles import ISDR_AID

log = logs.get(__name__)

PROG = "mps-lpa"
BACKENDS = ("emu", "pcsc", "at")
_ENV = {"apdu": "MPS_LPA_APDU", "state": "MPS_LPA_STATE", "reader": "MPS_LPA_READER",
        "device": "MPS_LPA_DEVICE", "isdr_aid": "MPS_LPA_ISDR_AID", "ca": "MPS_SMDP_CA",
        "imei": "MPS_LPA_IMEI"}


# --- choosing the card ------------------------------------------------------------------------

def _hex_aid(text: str) -> bytes:
    try:
        aid = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a hex AID") from None
    if not 5 <= len(aid) <= 16:
        raise UsageError(f"an AID is 5 to 16 bytes, got {len(aid)}")
    return aid


def _option(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name, None) or os.environ.get(_ENV[name])
    return str(value) if value else None


def _emu_url(args: argparse.Namespace) -> str:
    state = _option(args, "state")
    if not state:
        raise UsageError("--apdu emu needs --state FILE")
    path = Path(state).resolve()
    if not path.is_file():
        # An LPA must not conjure a card up: emu:// would create a fresh one here.
        raise NoCardError(f"no emulated card: {path} does not exist")
    return f"emu://{path}"


def _pcsc_url(args: argparse.Namespace) -> str:
    reader = _option(args, "reader") or ""
    try:
        re.compile(reader)
    except re.error as exc:
        raise UsageError(f"--reader {reader!r} is not a regular expression: {exc}") from None
    return "pcsc://" + (f"?reader={quote(reader, safe='')}" if reader else "")


def _at_url(args: argparse.Namespace) -> str:
    device = _option(args, "device")
    if not device:
        raise UsageError("--apdu at needs --device PATH (the modem's AT port)")
    return f"at://{Path(device).absolute()}"


_CARD_URLS: dict[str, Callable[[argparse.Namespace], str]] = {
    "emu": _emu_url, "pcsc": _pcsc_url, "at": _at_url}


def card_url(args: argparse.Namespace) -> str:
    """The card URL the options name (``--card`` as given, else built from ``--apdu``)."""
    if args.card:
        return str(args.card)
    backend = _option(args, "apdu")
    if backend is None:
        raise UsageError("say how to reach the card: --apdu emu|pcsc|at (or --card URL)")
    if backend not in _CARD_URLS:
        raise UsageError(f"--apdu must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return _CARD_URLS[backend](args)


# --- the parser -----------------------------------------------------------------------------------

def _nonneg(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a sequence number")
    return int(text)


def _block_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 255:
        raise argparse.ArgumentTypeError("the STORE DATA block size is 1 to 255")
    return int(text)


def _common_options(parser: argparse.ArgumentParser) -> None:
    """The options taken before or after the command."""
    parser.add_argument("--apdu", choices=BACKENDS, help="how to reach the card (env MPS_LPA_APDU)")
    parser.add_argument("--state", metavar="FILE", help="emu: the card's state file")
    parser.add_argument("--reader", metavar="REGEX",
                        help="pcsc: the first reader whose name matches")
    parser.add_argument("--device", metavar="PATH", help="at: the modem's AT port")
    parser.add_argument("--card", metavar="URL",
                        help="a card URL instead (emu://FILE, pcsc://?reader=RE, at://PORT)")
    parser.add_argument("--isdr-aid", metavar="HEX",
                        help=f"the ISD-R's AID (default {ISDR_AID.hex().upper()})")
    parser.add_argument("--block-size", type=_block_size, metavar="N",
                        help="STORE DATA block size (default: 255, behind a modem "
                        f"{DEFAULT_BLOCK_SIZE})")
    json_flag(parser)
    parser.add_argument("-v", "--verbose", action="count", help="log more (-vv: every APDU)")
    # No default: a leaf's unset option must not hide the one given before the command.
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            action.default = argparse.SUPPRESS


def _remote(name: str) -> Callable[[Es10Client, argparse.Namespace], Output]:
    """A command of :mod:`agent.lpa_remote`, imported when it runs (not at start-up)."""
    def run(client: Es10Client, args: argparse.Namespace) -> Output:
        from agent import lpa_remote

        command: Callable[[Es10Client, argparse.Namespace], Output] = getattr(lpa_remote, name)
        return command(client, args)

    return run


Leaf = Callable[[argparse.ArgumentParser], object]


def _leaf(func: Callable[[Es10Client, argparse.Namespace], Output], extra: Leaf | None = None
          ) -> Leaf:
    """The builder of one command's parser: the common options, ``func``, then ``extra``."""
    def build(p: argparse.ArgumentParser) -> None:
        _common_options(p)
        p.set_defaults(func=func)
        if extra is not None:
            extra(p)

    return build


def _group(leaves: Sequence[tuple[str, str, Leaf]]) -> Leaf:
    """The builder of a command group's parser, its commands built lazily too."""
    def build(p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="command", required=True, metavar="ACTION")
        for name, help_text, leaf in leaves:
            add_lazy_parser(sub, name, help_text, leaf)

    return build


def _class_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class", dest="profile_class", choices=sgp22.PROFILE_CLASSES,
                   help="only profiles of this class")


def _id_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="ICCID or ISD-P AID")


def _state_options(p: argparse.ArgumentParser) -> None:
    _id_option(p)
    p.add_argument("--no-refresh", dest="refresh", action="store_false",
                   help="do not ask the eUICC to refresh the device")


def _nickname_options(p: argparse.ArgumentParser) -> None:
    _id_option(p)
    p.add_argument("name", nargs="?", default="", help="the nickname (none: remove it)")


def _discovery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smds", metavar="ADDRESS",
                   help="the SM-DS, HOST[:PORT] (default: the eUICC's root SM-DS)")
    p.add_argument("--ca", metavar="FILE", help="CA certificates (PEM) that verify the "
                   "SM-DS's TLS certificate (env MPS_SMDP_CA)")
    _device_options(p)


def _ask(client: Es10Client, args: argparse.Namespace) -> Output:
    """``profile ask`` (:mod:`agent.lpa_ask`, with MQTT and the credentials, loaded when it
    runs)."""
    from agent.lpa_ask import cmd_profile_ask

    return cmd_profile_ask(client, args)


def _ask_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("disable", "enable", "delete"))
    p.add_argument("id", metavar="ICCID", help="the profile's ICCID")
    p.add_argument("--broker", help="the operator's broker, mqtt(s)://host:port ($MPS_BROKER)")
    p.add_argument("--credentials", metavar="DIR",
                   help="the device's credential bundle ($MPS_CREDENTIALS)")
    p.add_argument("--prefix", default="mps/v1", help="topic prefix (default mps/v1)")


def _device_options(p: argparse.ArgumentParser) -> None:
    """Where the DeviceInfo the eUICC signs for the server comes from (SGP.22 5.7.13)."""
    p.add_argument("--imei", metavar="IMEI", help="the device's IMEI, whose TAC goes into "
                   "DeviceInfo (env MPS_LPA_IMEI; default: the modem's with --apdu at)")
    p.add_argument("--capabilities", metavar="LIST", help="comma-separated radio "
                   "capabilities for DeviceCapabilities, e.g. lte-m,nb-iot")
    p.add_argument("--firmware-profile", metavar="NAME|FILE",
                   help="take the capabilities from this firmware profile")


def _ca_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ca", metavar="FILE", help="CA certificates (PEM) that verify the "
                   "SM-DP+'s TLS certificate (env MPS_SMDP_CA)")


def _remove_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("seq", nargs="*", type=_nonneg, help="sequence numbers")
    p.add_argument("--all", action="store_true", help="every pending notification")


def _download_options(p: argparse.ArgumentParser) -> None:
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
    _device_options(p)


_GROUPS: tuple[tuple[str, str, Sequence[tuple[str, str, Leaf]]], ...] = (
    ("chip", "the eUICC itself", (
        ("info", "EID, configured addresses and EUICCInfo2", _leaf(cmd_chip_info)),
        ("default-dp", "set the default SM-DP+ address", _leaf(
            cmd_chip_default_dp, lambda p: p.add_argument("address", help='"" removes it'))),
    )),
    ("profile", "installed profiles", (
        ("list", "list the profiles", _leaf(cmd_profile_list, _class_option)),
        ("enable", "enable a profile", _leaf(cmd_profile_enable, _state_options)),
        ("disable", "disable a profile", _leaf(cmd_profile_disable, _state_options)),
        ("delete", "delete a disabled profile", _leaf(cmd_profile_delete, _id_option)),
        ("nickname", "set or remove a nickname", _leaf(cmd_profile_nickname,
                                                         _nickname_options)),
        ("ask", "ask the registry; the user decides", _leaf(_ask, _ask_options)),
        ("download", "download a profile from an SM-DP+ (default: the eUICC's default "
         "SM-DP+, else the first event at its root SM-DS)",
         _leaf(_remote("cmd_profile_download"), _download_options)),
        ("discovery", "the events an SM-DS holds for this eUICC (ES11)",
         _leaf(_remote("cmd_profile_discovery"), _discovery_options)),
    )),
    ("notification", "pending notifications", (
        ("list", "list the pending notifications", _leaf(cmd_notification_list)),
        ("process", "send the pending notifications; remove each one the SM-DP+ "
         "acknowledged", _leaf(_remote("cmd_notification_process"), _ca_option)),
        ("remove", "remove notifications (as delivered)",
         _leaf(cmd_notification_remove, _remove_options)),
    )),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``mps-lpa`` parser. Common options are taken before or after the command; each
    command's parser is built only when the command line names it."""
    parser = new_parser(PROG, __doc__ or "")
    _common_options(parser)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for name, help_text, leaves in _GROUPS:
        add_lazy_parser(groups, name, help_text, _group(leaves))
    add_lazy_parser(groups, "ipa", ipa_commands.HELP,
                    _group(ipa_commands.leaves(_leaf, _device_options)))
    return parser


def _finish(args: argparse.Namespace) -> None:
    """Defaults for common options nobody gave, and the environment's ISD-R AID."""
    for name in ("apdu", "state", "reader", "device", "card"):
        if not hasattr(args, name):
            setattr(args, name, None)
    args.json = getattr(args, "json", False)
    args.verbose = getattr(args, "verbose", 0)
    args.block_size = getattr(args, "block_size", None)
    if hasattr(args, "ca"):
        args.ca = args.ca or os.environ.get(_ENV["ca"]) or None
    if hasattr(args, "imei"):
        args.imei = args.imei or os.environ.get(_ENV["imei"]) or None
    aid = getattr(args, "isdr_aid", None) or os.environ.get(_ENV["isdr_aid"])
    args.isdr_aid = ISDR_AID if aid is None else _hex_aid(aid)


# --- running --------------------------------------------------------------------------------------

Failure = tuple[int, str, dict[str, Any]]


def _download_failed(exc: Any, args: argparse.Namespace) -> Failure:
    fields = {key: getattr(exc, key) for key in ("subject", "reason", "code", "command")
              if getattr(exc, key, None) is not None}
    unavailable = sys.modules["mps_esim.lpa.download"].CardUnavailableError
    code = EXIT_UNAVAILABLE if isinstance(exc, unavailable) else EXIT_FAILURE
    return code, f"download failed at {exc.stage.value}: {exc}", \
        {"stage": exc.stage.value, **({} if code == EXIT_UNAVAILABLE else fields)}


def _status_word(exc: Any, args: argparse.Namespace) -> Failure:
    sw = {"sw": f"{exc.sw:04X}"}
    if exc.sw == 0x6A82 and exc.apdu is not None and exc.apdu[1] == 0xA4:
        return EXIT_FAILURE, (f"the card has no ISD-R {args.isdr_aid.hex().upper()}"
                              " (give the card's AID with --isdr-aid)"), sw
    return EXIT_FAILURE, str(exc), sw


def _plain(code: int, prefix: str = "") -> Callable[[Any, argparse.Namespace], Failure]:
    return lambda exc, _args: (code, f"{prefix}{exc}", {})


_FAILURES: list[tuple[type[BaseException] | tuple[type[BaseException], ...],
                      Callable[[Any, argparse.Namespace], Failure]]] = [
    # Checked in order: a subclass before its base. (A DownloadError is seen first, in
    # _failure: its module is loaded only with the commands that download.)
    (AgentConfigError, _plain(EXIT_USAGE)),
    (Es10ResultError, lambda exc, _args: (EXIT_FAILURE, str(exc),
                                          {"reason": exc.reason, "code": exc.code})),
    ((NoCardError, CardRemovedError), _plain(EXIT_UNAVAILABLE)),
    (StatusWordError, _status_word),
    (Es10Error, lambda exc, _args: (EXIT_FAILURE, str(exc),
                                    {} if exc.sw is None else {"sw": f"{exc.sw:04X}"})),
    # The modem's port cannot be opened or does not answer: nothing to talk to.
    (ModemError, _plain(EXIT_UNAVAILABLE, "modem: ")),
    ((CardError, AgentError), _plain(EXIT_FAILURE)),
]


def _failure(exc: BaseException, args: argparse.Namespace) -> Failure | None:
    download = sys.modules.get("mps_esim.lpa.download")
    if download is not None and isinstance(exc, download.DownloadError):
        return _download_failed(exc, args)
    for kinds, describe in _FAILURES:
        if isinstance(exc, kinds):
            return describe(exc, args)
    return None


def _show(args: argparse.Namespace, output: Output) -> None:
    emit(output.data, as_json=args.json, text=lambda _data: "\n".join(output.text))


def _run_command(args: argparse.Namespace) -> Output:
    link: CardLink | None = None
    try:
        _finish(args)
        link = open_card(card_url(args), isdr_aid=args.isdr_aid)
        link.connect()
        args.link = link
        with link.open_isdr() as isdr:
            block = args.block_size or link.store_data_block
            output: Output = args.func(Es10Client(isdr, block_size=block), args)
            return output
    finally:
        if link is not None:
            try:
                link.close()
            except AgentError as exc:
                log.debug("closing the card link failed: %s", exc)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command against the card; returns the exit code."""
    try:
        output = _run_command(args)
    except NotificationsKept as exc:
        _show(args, exc.output)
        return fail(PROG, str(exc))
    except Exception as exc:
        failure = _failure(exc, args)
        if failure is None:
            raise
        status, message, fields = failure
        if getattr(args, "json", False):
            emit({"ok": False, "error": message, **fields}, as_json=True, text=str)
        return fail(PROG, message, status)
    _show(args, output)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mps-lpa``."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    verbose = getattr(args, "verbose", 0) or 0
    # At the default level the card commands load no logging unless something is said.
    setup_logging(("warning", "info", "debug")[min(verbose, 2)], lazy=not verbose)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

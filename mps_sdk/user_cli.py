"""mps-user: the user's answers to consent prompts.

    mps-user consent list     --contract C-1001 [--json]
    mps-user consent approve  PROMPT --contract C-1001 [--devices EID,..] [--fields F,..]
    mps-user consent deny     PROMPT --contract C-1001
    mps-user consent withdraw (--app APP | --pairing ID) --contract C-1001
    mps-user consent code     --contract C-1001     (the consent page's sign-in code)

The command is the user agent over MQTT (--broker, --prefix, --timeout), using the
consent topics exactly as any other client would; the operator acting on the user's
behalf uses mps-bridge consent on the registry's database instead. Options may also come
from the environment ($MPS_BROKER, $MPS_CONTRACT) or a TOML file's [user] table
(--config, $MPS_CONFIG). Exit status: 0 success,
1 failure (unknown or expired prompt, nothing to withdraw, no answer), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from mps_common.cli import (
    EXIT_OK,
    EXIT_USAGE,
    common_options,
    emit,
    fail,
    new_parser,
    parse,
    setup_logging,
    table,
    utc_time,
)
from mps_common.config import Settings, positive_float
from mps_common.errors import ConfigError
from mps_mqtt.options import broker_url, client_options
from mps_sdk.consent import ConsentClient, ConsentState
from mps_sdk.errors import PairingError, RequestError
from mps_wire.topics import DEFAULT_PREFIX, Topics, check_level

#: The keys a configuration file's table may set for this command.
FILE_OPTIONS = ("broker", "credentials", "prefix", "timeout", "contract", "log_level")

PROG = "mps-user"


def build_parser() -> argparse.ArgumentParser:
    common = common_options(json_option=True)
    common.add_argument("--contract", help="the user's contract ($MPS_CONTRACT)")
    client_options(common)
    parser = new_parser(PROG, __doc__ or "")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    consent = commands.add_parser("consent", help="consent prompts and granted consents")
    actions = consent.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="open prompts and granted consents")
    for name, what in (("approve", "approve a prompt: the app is paired"),
                       ("deny", "deny a prompt")):
        answer = actions.add_parser(name, parents=[common], help=what)
        answer.add_argument("prompt", metavar="PROMPT", help="the prompt's id")
        if name == "approve":
            answer.add_argument("--devices", type=_names, metavar="EID,...",
                                help="only these devices (default: all, future ones too)")
            answer.add_argument("--fields", type=_names, metavar="FIELD,...",
                                help="only these fields (default: all the prompt lists)")
    actions.add_parser("code", parents=[common],
                       help="the consent page's one-time code sent to the user's number")
    withdraw = actions.add_parser("withdraw", parents=[common],
                                  help="withdraw consent: the pairing ends")
    which = withdraw.add_mutually_exclusive_group(required=True)
    which.add_argument("--app", help="every pairing of this app")
    which.add_argument("--pairing", help="this pairing")
    return parser


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-user`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = Settings(vars(args), section="user", config_file=args.config,
                        file_options=FILE_OPTIONS)
    try:
        setup_logging(settings.text("log_level", "warning") or "warning")
        contract = check_level(settings.require("contract"), "contract id")
        if args.action in ("approve", "deny"):
            check_level(args.prompt, "prompt id")
        client = ConsentClient(broker_url(settings), contract,
                               topics=Topics(settings.text("prefix") or DEFAULT_PREFIX),
                               timeout=settings.get("timeout", 10.0, positive_float))
    except (ConfigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    try:
        with client:
            return _over_mqtt(client, args)
    except PairingError as exc:
        if args.json and isinstance(exc, RequestError):
            emit({"status": exc.status.value, "code": exc.code.value,
                  "message": exc.message}, as_json=True, text=str)
        return fail(PROG, str(exc))


def _over_mqtt(client: ConsentClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        _print_state(client.consent(), as_json=args.json)
    elif args.action in ("approve", "deny"):
        pairing = client.approve(args.prompt, devices=args.devices, fields=args.fields) \
            if args.action == "approve" else client.deny(args.prompt)
        _print_answer(args, pairing)
    elif args.action == "code":
        message = client.sign_in_code(timeout=client.timeout)
        emit(message.to_wire(), as_json=args.json, text=lambda _data: message.text)
    else:
        _print_withdrawn(args, client.withdraw(app=args.app, pairing=args.pairing))
    return EXIT_OK


def _print_state(state: ConsentState, *, as_json: bool) -> None:
    emit(_state_json(state), as_json=as_json, text=lambda _data: _state_text(state))


def _state_text(state: ConsentState) -> str:
    lines = [f"contract {state.contract}: {len(state.prompts)} open prompt"
             f"{'s' if len(state.prompts) != 1 else ''}"]
    if state.prompts:
        lines.append(table(["PROMPT", "PAIRING", "APP", "TRUST", "PURPOSE", "WOULD SEE",
                            "ASKED (UTC)", "EXPIRES (UTC)"],
                           [[p.prompt, p.pairing, f"{p.app_name} ({p.app})", p.trust,
                             p.purpose, ", ".join(p.fields), utc_time(p.created_at),
                             utc_time(p.expires_at)]
                            for p in state.prompts]))
    lines.append(f"{len(state.granted)} granted consent{'s' if len(state.granted) != 1 else ''}")
    if state.granted:
        lines.append(table(["PAIRING", "APP", "TRUST", "PURPOSE", "CONSENT", "SINCE (UTC)"],
                           [[g.pairing, f"{g.app_name} ({g.app})", g.trust, g.purpose,
                             g.consent, utc_time(g.since)] for g in state.granted]))
    return "\n".join(lines)


def _state_json(state: ConsentState) -> dict[str, Any]:
    return {
        "contract": state.contract,
        "prompts": [{"prompt": p.prompt, "pairing": p.pairing, "app": p.app,
                     "app_name": p.app_name, "trust": p.trust, "purpose": p.purpose,
                     "fields": list(p.fields), "created_at": p.created_at,
                     "expires_at": p.expires_at} for p in state.prompts],
        "granted": [{"pairing": g.pairing, "app": g.app, "app_name": g.app_name,
                     "trust": g.trust, "purpose": g.purpose, "consent": g.consent,
                     "since": g.since} for g in state.granted],
    }


def _print_answer(args: argparse.Namespace, pairing: str) -> None:
    verb = "approved" if args.action == "approve" else "denied"
    emit({"prompt": args.prompt, "decision": args.action, "pairing": pairing},
         as_json=args.json, text=lambda _data: f"{verb} prompt {args.prompt} (pairing {pairing})")


def _print_withdrawn(args: argparse.Namespace, ended: list[str]) -> None:
    emit({"ended": ended}, as_json=args.json,
         text=lambda _data: f"consent withdrawn: {', '.join(ended)} ended")




if __name__ == "__main__":
    sys.exit(main())

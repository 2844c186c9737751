"""``mps-bridge consent``: the operator answering consent prompts on the user's behalf.

    mps-bridge consent list     --contract C-1001 --db registry.db [--json]
    mps-bridge consent approve  PROMPT --contract C-1001 --db registry.db
                                [--devices EID,EID] [--fields ip,model,presence]
    mps-bridge consent view     PAIRING --contract C-1001 [--devices ...] [--fields ...]
    mps-bridge consent deny     PROMPT --contract C-1001 --db registry.db
    mps-bridge consent withdraw (--app APP | --pairing ID) --contract C-1001 --db registry.db

Works on the registry's database (the user answers over MQTT with ``mps-user``); the audit
log records the operator as the actor, and a running bridge tells the apps.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.registry import Registry
from broker_bridge.registry.portal_views import PortalError
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, table, utc_time
from mps_wire.errors import WireError
from mps_wire.messages import ConsentWithdrawRequest, Decision, Reply
from mps_wire.topics import check_level

PROG = "mps-bridge"
ACTOR = "operator:mps-bridge"


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``consent list|approve|deny|withdraw`` to ``mps-bridge``'s subcommands."""
    consent = commands.add_parser("consent", help="answer consent prompts for a user")
    actions = consent.add_subparsers(dest="consent_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=parents,
                                 help="a contract's open prompts and granted consents")
    listing.add_argument("--contract", required=True, help="contract id")
    for name, what in (("approve", "approve a prompt: the app is paired"),
                       ("deny", "deny a prompt")):
        answer = actions.add_parser(name, parents=parents, help=what)
        answer.add_argument("prompt", metavar="PROMPT", help="the prompt's id")
        answer.add_argument("--contract", required=True, help="contract id")
        if name == "approve":
            _choice_options(answer)
    view = actions.add_parser("view", parents=parents,
                              help="narrow or widen what a paired app sees")
    view.add_argument("pairing", metavar="PAIRING", help="the pairing's id")
    view.add_argument("--contract", required=True, help="contract id")
    _choice_options(view)
    withdraw = actions.add_parser("withdraw", parents=parents,
                                  help="withdraw consent: the pairing ends")
    withdraw.add_argument("--contract", required=True, help="contract id")
    which = withdraw.add_mutually_exclusive_group(required=True)
    which.add_argument("--app", help="every pairing of this app")
    which.add_argument("--pairing", help="this pairing")


def _choice_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=_names, metavar="EID,...",
                        help="only these devices (default: every device, future ones too)")
    parser.add_argument("--fields", type=_names, metavar="FIELD,...",
                        help="only these fields (default: all the app's trust level "
                             "allows; presence and, for partner apps, history count too)")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one")
    return names


def _choose(registry: Registry, contract: str, args: argparse.Namespace,
            as_json: bool) -> int:
    """``approve`` and ``view``: the user's choice of devices and fields."""
    try:
        if args.consent_command == "approve":
            check_level(args.prompt, "prompt id")
            registry.approve_choice(contract, args.prompt, devices=args.devices,
                                    fields=args.fields, actor=ACTOR)
            found = registry.store.pairing_by_prompt(args.prompt)
            pairing = found.id if found is not None else ""
            done = {"prompt": args.prompt, "decision": "approve", "pairing": pairing}
            text = f"approved prompt {args.prompt} (pairing {pairing})"
        else:
            pairing = check_level(args.pairing, "pairing id")
            registry.set_view(contract, pairing, devices=args.devices, fields=args.fields,
                              actor=ACTOR)
            done = {"pairing": pairing}
            text = f"pairing {pairing}: view changed"
    except PortalError as exc:
        if as_json:
            print(json.dumps({"error": str(exc), "reason": exc.reason}))
        return fail(PROG, str(exc), EXIT_FAILURE)
    choice = registry.store.pairing_choice(str(done["pairing"]))
    if choice is not None:
        done["devices"] = list(choice.devices) if choice.devices is not None else None
        done["fields"] = sorted(choice.fields)
        text += (f": {len(choice.devices) if choice.devices is not None else 'every'} "
                 f"device(s); {', '.join(sorted(choice.fields))}")
    print(json.dumps(done) if as_json else text)
    return EXIT_OK


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Carry out one ``consent`` subcommand on ``registry``."""
    contract = check_level(args.contract, "contract id")
    action = args.consent_command
    if action in ("approve", "view"):
        return _choose(registry, contract, args, as_json)
    if action == "list":
        if registry.store.contract(contract) is None:
            return fail(PROG, f"no contract {contract}: check the id with "
                              "`mps-bridge operator show --contract ID`")
        _print_state(registry.consent_view(contract), as_json)
        return EXIT_OK
    if action in ("approve", "deny"):
        check_level(args.prompt, "prompt id")
        reply = registry.answer(contract, args.prompt, Decision(action), actor=ACTOR).reply
        if not reply.is_ok:
            return _refused(reply, as_json)
        pairing = str(reply.body["pairing"])
        if as_json:
            print(json.dumps({"prompt": args.prompt, "decision": action, "pairing": pairing}))
        else:
            verb = "approved" if action == "approve" else "denied"
            print(f"{verb} prompt {args.prompt} (pairing {pairing})")
        return EXIT_OK
    try:
        request = ConsentWithdrawRequest(pairing=args.pairing, app=args.app)
    except WireError as exc:
        return fail(PROG, exc.message, EXIT_USAGE)
    reply = registry.withdraw(contract, request, actor=ACTOR).reply
    if not reply.is_ok:
        return _refused(reply, as_json)
    ended = [str(p) for p in reply.body["ended"]]
    print(json.dumps({"ended": ended}) if as_json
          else f"consent withdrawn: {', '.join(ended)} ended")
    return EXIT_OK


def _refused(reply: Reply, as_json: bool) -> int:
    if as_json:
        print(json.dumps(reply.to_wire()))
    return fail(PROG, reply.message or reply.status.value, EXIT_FAILURE)


def _print_state(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(state, indent=2))
        return
    prompts, granted = state["prompts"], state["granted"]
    lines = [f"contract {state['contract']}: {len(prompts)} open prompt"
             f"{'s' if len(prompts) != 1 else ''}"]
    if prompts:
        lines.append(table(["PROMPT", "PAIRING", "APP", "TRUST", "PURPOSE", "WOULD SEE",
                            "ASKED (UTC)", "EXPIRES (UTC)"],
                           [[p["prompt"], p["pairing"], f"{p['app_name']} ({p['app']})",
                             p["trust"], p["purpose"], ", ".join(p["fields"]),
                             utc_time(p["created_at"]), utc_time(p["expires_at"])]
                            for p in prompts]))
    lines.append(f"{len(granted)} granted consent{'s' if len(granted) != 1 else ''}")
    if granted:
        lines.append(table(["PAIRING", "APP", "TRUST", "PURPOSE", "CONSENT", "SINCE (UTC)"],
                           [[g["pairing"], f"{g['app_name']} ({g['app']})", g["trust"],
                             g["purpose"], g["consent"], utc_time(g["since"])] for g in granted]))
    print("\n".join(lines))



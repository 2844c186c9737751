"""mps-demo: the story of the system, from first boot to a paired app hearing of a new
device. make demo runs it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from broker_bridge.credentials import issue
from broker_bridge.model import Role
from broker_bridge.registry import Registry
from broker_bridge.storage import store_for
from mps_common.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    emit,
    fail,
    json_flag,
    log_level_option,
    new_parser,
    parse,
    setup_logging,
)
from mps_demo.esim_act import EsimTarget
from mps_demo.page_act import PageActError, PageActResult, PageCast, run_page_act, verify_page_act
from mps_sdk.errors import PairingError
from mps_testbed.federation import run_federation_act
from mps_testbed.rig import (
    DeviceSetup,
    Rig,
    RigError,
    RigResult,
    RigSession,
    StackError,
    summary,
    verify,
)
from mps_testbed.smds import EimSmdsProfiles
from mps_testbed.story import StoryApps, StoryError, StoryResult, run_story, verify_story

PROG = "mps-demo"
DEVICES = 4


def enroll(devices: list[DeviceSetup], db: str) -> None:
    """The operator issues every device its credentials: a signing key whose public part
    the registry now knows, which the agent finds in its state directory and signs its
    registrations with (COSE_Sign1, ES256)."""
    store = store_for(db)
    store.open()
    try:
        registry = Registry(store)
        for d in devices:
            issue(registry, Role.DEVICE, d.eid, d.workdir / "agent" / "credentials",
                  actor="operator:demo")
    finally:
        store.close()


def _across_operators(session: RigSession, say: Callable[[str], None],
                      federated: list[str], failures: list[str]) -> None:
    """Lena's number moved to another operator: the partner app follows the redirect."""
    say("\nLena moved her number to another operator, which runs its own registry:\n")
    try:
        act = run_federation_act(session.broker_url,
                                 str(session.rig.workdir / "registry.sqlite"),
                                 session.rig.workdir / "other-operator",
                                 app="operator-care", say=say)
    except (PairingError, StackError, OSError, ValueError) as exc:
        failures.append(f"the act across operators stopped: {exc}")
        return
    federated.extend(act.lines)
    if act.answer is None or not act.answer.active or len(act.answer.devices) != 1:
        failures.append("the partner app did not pair at the other operator")


def _paul_story(session: RigSession, say: Callable[[str], None], told: list[StoryResult],
                failures: list[str]) -> None:
    """Paul's story: the app finds his devices, pairs with consent, hears of the racket."""
    rig = session.rig
    racket = session.held[0]
    say(f"\napp         {rig.story.app_id} asks for the devices of {rig.story.msisdn}:\n")
    say(session.app_table.rstrip())
    say("")
    try:
        told.append(run_story(
            session.broker_url, msisdn=rig.story.msisdn, contract=rig.story.contract_id,
            new_device=lambda: session.boot(racket), say=say,
            apps=StoryApps(health="health-app", lower="fitness-tracker",
                           partner="operator-care")))
    except StoryError as exc:
        told.append(exc.result)
        failures.append(f"the story stopped: {exc}")
    except PairingError as exc:
        failures.append(f"the story stopped: {exc}")


def tell(args: argparse.Namespace) -> int:
    quiet = args.json

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    say("Paul's four devices boot, download their eSIM profiles from the operator's SM-DP+, "
        "register with its registry,\nand an app finds them all by his phone number (two of "
        "them know no activation code:\none finds its profile through the SM-DS, one boots "
        "headless and its eIM orders it, SGP.32). Then "
        "a health app pairs with his consent,\nand hears of his new tennis racket without "
        "asking again.\n")
    told: list[StoryResult] = []
    federated: list[str] = []
    acted: list[PageActResult] = []
    failures: list[str] = []

    def story(session: RigSession) -> None:
        _paul_story(session, say, told, failures)
        _across_operators(session, say, federated, failures)
        if not failures:
            page_act(session, args, say, acted, failures)

    def enroll_all(devices: list[DeviceSetup], db: str) -> None:
        enroll(devices, db)
        say(f"operator    {len(devices)} devices issued signing keys; the registry accepts "
            "signed registrations only")

    # Signed registrations only: every device holds an operator-issued key.
    rig = Rig(DEVICES, workdir=args.workdir, say=say, held_back=1, after_boot=story,
              use_pcsc=False if args.no_pcsc else None, enroll=enroll_all,
              bridge_args=["--signatures", "required"],
              profiles=EimSmdsProfiles(through_smds=1, headless=1))
    try:
        result = rig.run()
    except (RigError, StackError) as exc:
        return fail(PROG, str(exc))
    problems = verify(result) + failures
    if told:
        problems += verify_story(told[0], devices=DEVICES)
    if acted:
        problems += verify_page_act(acted[0])
    emit(_as_json(result, told[0] if told else None, problems,
                  acted[0] if acted else None) | {"federation": federated},
         as_json=args.json,
         text=lambda _data: _text(result, problems))
    for p in problems:
        fail(PROG, p)
    return EXIT_FAILURE if problems else EXIT_OK


def page_act(session: RigSession, args: argparse.Namespace, say: Callable[[str], None],
             acted: list[PageActResult], failures: list[str]) -> None:
    """The consent page act, after the story: Paul's choice in the browser."""
    rig = session.rig
    say("")
    try:
        acted.append(run_page_act(
            session.broker_url, str(rig.workdir / "registry.sqlite"),
            PageCast(contract=rig.story.contract_id, msisdn=rig.story.msisdn),
            workdir=rig.workdir, say=say, shots=args.screenshots,
            esim=_esim_target(session)))
    except (PageActError, PairingError) as exc:
        failures.append(f"the consent page act stopped: {exc}")


def _esim_target(session: RigSession) -> EsimTarget | None:
    """The tennis racket (booted during the story, its card in-process): its profile goes."""
    racket = session.held[0] if session.held else None
    if racket is None or racket.error is not None or not racket.eid:
        return None
    return EsimTarget(name=racket.name, eid=racket.eid,
                      profile=racket.profile, state_dir=racket.workdir / "agent",
                      card_state=racket.card_state,
                      env=dict(racket.env if racket.env is not None else session.rig.env))


def _text(result: RigResult, problems: list[str]) -> str:
    lines = [f"note        {note}" for note in result.notes]
    lines += ["", summary(result)]
    if not problems:
        lines.append("The story went as told.")
    return "\n".join(lines)


def _as_json(result: RigResult, story: StoryResult | None, problems: list[str],
             act: PageActResult | None) -> dict[str, Any]:
    return {
        "registered": result.registered,
        "failed": result.failed,
        "seconds": round(result.seconds, 3),
        "devices": [{"name": d.name, "card": d.kind, "eid": d.eid, "iccid": d.iccid,
                     "error": d.error, "seconds": round(d.seconds, 3),
                     "downloaded": d.downloaded}
                    for d in result.devices],
        "app_devices": result.app_devices,
        "story": story.lines if story else [],
        "page": None if act is None else {"url": act.url, "skipped": act.skipped,
                                          "lines": act.lines, "devices": act.devices,
                                          "fields": act.fields, "esim": act.esim},
        "problems": problems,
        "notes": result.notes,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("mps-demo", __doc__ or "")
    parser.add_argument("--workdir", type=Path, help="keep files and logs here")
    parser.add_argument("--no-pcsc", action="store_true", help="never use pcscd + vpcd")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save the consent page act's screenshots here")
    json_flag(parser)
    log_level_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-demo`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    setup_logging(args.log_level)
    return tell(args)


if __name__ == "__main__":
    sys.exit(main())

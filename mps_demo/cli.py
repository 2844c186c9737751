"""mps-demo: the story of the system, from first boot to a paired app hearing of a new
device. make demo runs it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker_bridge.credentials import issue
from broker_bridge.model import Role
from broker_bridge.registry import Registry
from broker_bridge.storage import store_for
from mps_sdk.errors import PairingError
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
from mps_testbed.story import StoryApps, StoryError, StoryResult, run_story, verify_story

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


def tell(args: argparse.Namespace) -> int:
    quiet = args.json

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    say("Paul's four devices boot, download their eSIM profiles from the operator's SM-DP+, "
        "register with its registry,\nand an app finds them all by his phone number. Then a "
        "health app pairs with his consent,\nand hears of his new tennis racket without "
        "asking again.\n")
    told: list[StoryResult] = []
    failures: list[str] = []

    def story(session: RigSession) -> None:
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

    def enroll_all(devices: list[DeviceSetup], db: str) -> None:
        enroll(devices, db)
        say(f"operator    {len(devices)} devices issued signing keys; the registry accepts "
            "signed registrations only")

    # Signed registrations only: every device holds an operator-issued key.
    rig = Rig(DEVICES, workdir=args.workdir, say=say, held_back=1, after_boot=story,
              use_pcsc=False if args.no_pcsc else None, enroll=enroll_all,
              bridge_args=["--signatures", "required"])
    try:
        result = rig.run()
    except (RigError, StackError) as exc:
        print(f"mps-demo: {exc}", file=sys.stderr)
        return 1
    problems = verify(result) + failures
    if told:
        problems += verify_story(told[0], devices=DEVICES)
    if args.json:
        print(json.dumps(_as_json(result, told[0] if told else None, problems), indent=2))
    else:
        _print(result, problems)
    for p in problems:
        print(f"mps-demo: {p}", file=sys.stderr)
    return 1 if problems else 0


def _print(result: RigResult, problems: list[str]) -> None:
    for note in result.notes:
        print(f"note        {note}")
    print()
    print(summary(result))
    if not problems:
        print("The story went as told.")


def _as_json(result: RigResult, story: StoryResult | None, problems: list[str]
             ) -> dict[str, Any]:
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
        "problems": problems,
        "notes": result.notes,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mps-demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep files and logs here")
    parser.add_argument("--no-pcsc", action="store_true", help="never use pcscd + vpcd")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument("--log-level", default=os.environ.get("MPS_LOG_LEVEL", "WARNING"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return tell(args)


if __name__ == "__main__":
    sys.exit(main())

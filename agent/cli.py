"""mps-agent: the device agent's command line (run, identity, doctor, profiles)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from agent.errors import AgentConfigError, AgentError, StepError
from mps_common.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    emit,
    fail,
    json_flag,
    log_level_option,
    new_parser,
    parse,
    setup_logging,
    table,
)
from mps_common.errors import ConfigError

# Each command imports the machinery it runs (first boot, MQTT, the daemon, the doctor)
# when it runs: 'mps-agent profiles list' never loads them, '--help' not even the firmware
# profiles (tests/unit/test_architecture.py holds each command to its imports).
if TYPE_CHECKING:
    from agent.doctor import Check
    from agent.hardware import AgentSettings, Step
    from agent.orders import OrderRunner
    from firmware_profiles import FirmwareProfile

PROG = "mps-agent"


def _settings(args: argparse.Namespace) -> AgentSettings:
    from agent.hardware import AgentSettings
    from firmware_profiles import load_profile

    profile = load_profile(args.profile)
    # Layered configuration: arguments > environment > the profile's TOML.
    return AgentSettings.from_profile(
        profile,
        modem_port=args.modem or os.environ.get("MPS_MODEM"),
        card_url=args.card or os.environ.get("MPS_CARD"),
        broker_url=getattr(args, "broker", None) or os.environ.get("MPS_BROKER"),
        state_dir=getattr(args, "state_dir", None) or os.environ.get("MPS_STATE_DIR"),
        credentials=getattr(args, "credentials", None) or os.environ.get("MPS_CREDENTIALS"),
        retry_for=_retry_for(args),
        activation_code=getattr(args, "activation_code", None)
        or os.environ.get("MPS_ACTIVATION_CODE"),
        smdp_ca=getattr(args, "smdp_ca", None) or os.environ.get("MPS_SMDP_CA"),
    )


def _retry_for(args: argparse.Namespace) -> float:
    """Seconds first boot keeps retrying delivery: --retry-for, $MPS_RETRY_FOR, or for a
    daemon until it is stopped (a device that boots while the broker is away)."""
    value = getattr(args, "retry_for", None) or os.environ.get("MPS_RETRY_FOR")
    if value is None:
        return math.inf if getattr(args, "daemon", False) else 0.0
    seconds = float(value)
    if not seconds >= 0:
        raise AgentConfigError(f"retry-for must be 0 or more seconds, not {value!r}")
    return seconds


def _print(obj: Any) -> None:
    emit(obj, as_json=True, text=str)


def cmd_identity(args: argparse.Namespace) -> int:
    from agent.hardware import DeviceHardware

    settings = _settings(args)
    with DeviceHardware(settings) as device:
        device.ensure_profile()
        if not args.no_network:
            # The IP address exists only once the modem is attached.
            device.wait_network()
        identity = device.identity()
    data = identity.to_json()
    data["capabilities"] = list(settings.profile.capabilities)
    data["profile"] = settings.profile.name
    _print(data)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from agent.firstboot import FirstBoot

    settings = _settings(args)
    quiet = args.json

    def on_step(step: Step) -> None:
        if not quiet:
            print(f"[{settings.profile.name}] {step.value}", file=sys.stderr, flush=True)

    boot = FirstBoot(settings, on_step=on_step)
    outcome = boot.run()
    result = outcome.reply.body.get("result", "ok")
    if args.json:
        _print({"device_id": outcome.info.device_id, "result": result, "seq": outcome.info.seq,
                "contract": outcome.reply.body.get("contract"),
                "identity": outcome.identity.to_json(),
                "timings_s": {k: round(v, 4) for k, v in outcome.timings.items()}})
    else:
        print(f"registered {outcome.info.device_id} ({result}) in "
              f"{outcome.timings['total']:.2f} s")
    if not args.daemon:
        return EXIT_OK
    if not args.hardware_timeout > 0:
        return fail(PROG, "--hardware-timeout must be a positive number of seconds",
                    EXIT_USAGE)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A first boot alone (no --daemon) never loads the daemon, its watch or eSIM orders.
    from agent.daemon import AgentDaemon
    from agent.watch import HardwareUnavailableError

    daemon = AgentDaemon(settings, interval=args.interval, stop=stop,
                         hardware_timeout=args.hardware_timeout,
                         orders=_order_runner(args, settings, outcome.info.device_id))
    try:
        daemon.run(outcome.info.device_id)
    except HardwareUnavailableError as exc:
        return fail(PROG, str(exc), EXIT_UNAVAILABLE)
    return EXIT_OK


def _order_runner(args: argparse.Namespace, settings: AgentSettings, eid: str
                  ) -> OrderRunner | None:
    """The runner of the registry's signed eSIM orders, when the registry's order key is
    known: --registry-key, $MPS_REGISTRY_KEY, or registry-key.pem in the state directory
    or the credential bundle."""
    from agent.orders import KEY_FILE, OrderRunner, load_registry_key

    named = args.registry_key or os.environ.get("MPS_REGISTRY_KEY")
    candidates = [Path(named)] if named else [
        settings.state_dir / KEY_FILE,
        *([settings.credentials / KEY_FILE] if settings.credentials else []),
        settings.state_dir / "credentials" / KEY_FILE]
    for path in candidates:
        if named or path.is_file():
            return OrderRunner(load_registry_key(path), eid, settings.state_dir)
    print(f"{PROG}: no registry key ({KEY_FILE}): eSIM orders are not accepted",
          file=sys.stderr)
    return None


def _profile_row(profile: FirmwareProfile) -> dict[str, Any]:
    activation = profile.activation
    if activation is None:
        how = "none"
    elif activation.code is not None:
        how = f"code ({activation.code.address})"
    else:
        how = "default SM-DP+"
    return {"name": profile.name, "path": str(profile.path), "dialect": profile.modem.dialect,
            "port": profile.modem.port, "card": profile.card.url,
            "capabilities": list(profile.capabilities), "broker": profile.broker.url,
            "activation": how, "description": profile.description}


def cmd_profiles_list(args: argparse.Namespace) -> int:
    from firmware_profiles import ProfileError, bundled_profiles, load_profile

    rows: list[dict[str, Any]] = []
    for path in bundled_profiles():
        try:
            rows.append(_profile_row(load_profile(path)))
        except ProfileError as exc:
            rows.append({"name": path.stem, "path": str(path), "error": str(exc)})
    emit(rows, as_json=args.json, text=_profiles_table)
    return EXIT_OK


def _profiles_table(rows: list[dict[str, Any]]) -> str:
    grid = table(["NAME", "DIALECT", "PORT", "CARD", "CAPABILITIES", "ACTIVATION", "BROKER"],
                 [[r["name"], "-", "-", "-", "-", "-", "-"] if "error" in r else
                  [r["name"], r["dialect"], r["port"], r["card"],
                   ", ".join(r["capabilities"]) or "-", r["activation"], r["broker"] or "-"]
                  for r in rows])
    # Descriptions and paths are long: one line each under the table.
    notes = table(["PROFILE", "DESCRIPTION"],
                  [[r["name"], f"{r['error']}" if "error" in r else
                    f"{r['description']} ({r['path']})"] for r in rows])
    return f"{grid}\n\n{notes}"


def cmd_profiles_check(args: argparse.Namespace) -> int:
    from firmware_profiles import ProfileError, find_profile, load_profile

    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            p = load_profile(find_profile(name))
            results.append({"file": str(p.path), "ok": True, "profile": _profile_row(p)})
        except ProfileError as exc:
            results.append({"file": exc.path, "ok": False, "key": exc.key,
                            "problem": exc.problem, "error": str(exc),
                            "problems": [{"key": p.where, "problem": p.what}
                                         for p in exc.problems]})
    if args.json:
        _print(results)
    else:
        for r in results:
            if r["ok"]:
                print(f"{r['file']}: ok ({r['profile']['name']})")
            else:
                print(r["error"], file=sys.stderr)
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_FAILURE


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.doctor import CheckStatus, Doctor, render_check
    from firmware_profiles import find_profile

    args.profile = find_profile(args.profile)
    settings = _settings(args)
    as_json = args.json

    def on_check(check: Check) -> None:
        if not as_json:
            print("\n".join(render_check(check)), flush=True)

    if not as_json:
        print(f"mps-agent doctor: {settings.profile.name} ({settings.profile.path})")
    doctor = Doctor(settings, network_wait=args.network_wait,
                    broker_timeout=args.broker_timeout, on_check=on_check)
    report = doctor.run()
    if as_json:
        _print(report.to_json())
    else:
        failed = sum(1 for c in report.checks if c.status is CheckStatus.FAIL)
        print("all checks passed" if report.ok else
              f"{failed} check(s) failed; fix the first one first")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _hardware_options(p: argparse.ArgumentParser, *, broker: bool) -> None:
    p.add_argument("--profile", required=True, type=Path, help="firmware profile (TOML)")
    p.add_argument("--modem", help="modem port or URL (overrides the profile; env MPS_MODEM)")
    p.add_argument("--card", help="card link URL (overrides the profile; env MPS_CARD)")
    p.add_argument("--activation-code", metavar="CODE",
                   help="download the profile with this activation code when the eUICC has "
                        "no operational profile (overrides the profile's [activation]; env "
                        "MPS_ACTIVATION_CODE)")
    p.add_argument("--smdp-ca", metavar="FILE",
                   help="CA certificates (PEM) that verify the SM-DP+'s TLS certificate "
                        "(default: the system's trust store; env MPS_SMDP_CA)")
    if broker:
        p.add_argument("--broker", help="broker URL (overrides the profile; env MPS_BROKER)")
        p.add_argument("--state-dir", help="where the outbox lives (env MPS_STATE_DIR)")
        p.add_argument("--credentials", metavar="DIR",
                       help="the device's credential bundle from the operator: broker "
                            "login and signing key (default <state-dir>/credentials if "
                            "present; env MPS_CREDENTIALS)")
        p.add_argument("--retry-for", type=float, metavar="SECONDS",
                       help="keep retrying delivery with backoff this long (default: one "
                            "attempt, with --daemon until stopped; env MPS_RETRY_FOR)")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, __doc__ or "")
    log_level_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="first boot: read identity, register, wait for the ack")
    _hardware_options(run, broker=True)
    run.add_argument("--daemon", action="store_true",
                     help="keep running: online/offline state, republish on change")
    run.add_argument("--interval", type=float, default=30.0,
                     help="seconds between identity checks with --daemon")
    run.add_argument("--hardware-timeout", type=float, default=300.0, metavar="SECONDS",
                     help="with --daemon: exit 3 after this long without a working modem "
                          "(the port is reopened each round meanwhile; default 300)")
    run.add_argument("--registry-key", metavar="FILE",
                     help="the registry's order key (PEM), verifying eSIM orders (default "
                          "registry-key.pem in the state directory or credentials; env "
                          "MPS_REGISTRY_KEY)")
    json_flag(run)
    run.set_defaults(func=cmd_run)

    ident = sub.add_parser("identity", help="print what the device reads about itself")
    _hardware_options(ident, broker=False)
    ident.add_argument("--no-network", action="store_true",
                       help="do not wait for network registration (no IP address then)")
    ident.set_defaults(func=cmd_identity)

    doctor = sub.add_parser(
        "doctor", help="check the board step by step and say what to fix",
        description="Probe the modem port, the modem, the SIM, the eUICC and its ISD-R, "
                    "the enabled profile, the network, the IP address and the broker; "
                    "print a checklist with a hint for each failure. Exit 0 when every "
                    "check passes, 1 otherwise, 2 for a bad profile.")
    _hardware_options(doctor, broker=False)
    doctor.add_argument("--broker", help="broker URL (overrides the profile; env MPS_BROKER)")
    doctor.add_argument("--network-wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for network registration (default: look once)")
    doctor.add_argument("--broker-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="time the broker has to answer (default 5)")
    json_flag(doctor)
    doctor.set_defaults(func=cmd_doctor)

    profiles = sub.add_parser("profiles", help="list or check firmware profiles")
    psub = profiles.add_subparsers(dest="profiles_command", required=True, metavar="ACTION")
    plist = psub.add_parser("list", help="the bundled profiles")
    json_flag(plist)
    plist.set_defaults(func=cmd_profiles_list)
    pcheck = psub.add_parser("check", help="validate profile files (or bundled names)")
    pcheck.add_argument("files", nargs="+", metavar="FILE")
    json_flag(pcheck)
    pcheck.set_defaults(func=cmd_profiles_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-agent`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    from firmware_profiles import ProfileError  # every command reads a profile

    try:
        setup_logging(args.log_level)
        return int(args.func(args))
    except ProfileError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except StepError as exc:
        return fail(PROG, f"failed at step '{exc.step}': {exc}")
    except AgentError as exc:
        return fail(PROG, str(exc))
    except ConfigError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())

"""mps-consent-web: the consent page, and the operator's view of its sign-in codes.

    mps-consent-web serve --db registry.db --broker mqtt://127.0.0.1:1883
                          --cert cert.pem --key key.pem [--bind 127.0.0.1] [--port 8443]
                          [--prefix mps/v1] [--credentials FILE]
                          [--code-ttl 300] [--session-ttl 1800]
    mps-consent-web codes +4915112345678 --db registry.db [--broker URL] [--json]

serve serves HTTPS only, on the loopback address unless --bind says otherwise; codes
go to the user as a message on their MQTT topic users/{contract}/sign-in (the
operator's text message, emulated). codes lists the codes asked for a number (the
store keeps hashes only) and, with --broker, shows the code waiting on the user's topic.
Options may also come from the environment ($MPS_DB, $MPS_BROKER, ...) or a TOML
file's [consent-web] table. Exit status: 0 success, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker_bridge.errors import BrokerError, StoreError
from broker_bridge.model import SignInCode, now_ms
from broker_bridge.registry import Registry
from broker_bridge.storage import store_for
from consent_web.server import DEFAULT_BIND, DEFAULT_PORT, Listen, serve
from consent_web.signin import SignIn, SignInPolicy
from consent_web.sms import MqttTexts, read_code
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
from mps_common.config import Settings
from mps_common.errors import ConfigError
from mps_mqtt.client import MqttError
from mps_mqtt.options import broker_url, credentials_option
from mps_wire.identifiers import validate_msisdn
from mps_wire.topics import DEFAULT_PREFIX, Topics

PROG = "mps-consent-web"
FILE_OPTIONS = ("db", "broker", "credentials", "prefix", "cert", "key", "bind", "port",
                "code_ttl", "session_ttl", "log_level")


def build_parser() -> argparse.ArgumentParser:
    common = common_options(json_option=False)
    common.add_argument("--db", help="the registry's database ($MPS_DB)")
    common.add_argument("--broker", help="broker URL, mqtt://host:port ($MPS_BROKER)")
    common.add_argument("--prefix", help=f"topic prefix (default {DEFAULT_PREFIX})")
    credentials_option(common)
    parser = new_parser(PROG, __doc__ or "")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cmd = commands.add_parser("serve", parents=[common],
                                    help="serve the consent page until SIGTERM/SIGINT")
    serve_cmd.add_argument("--cert", help="TLS certificate chain (PEM)")
    serve_cmd.add_argument("--key", help="TLS private key (PEM)")
    serve_cmd.add_argument("--bind", help=f"address to listen on (default {DEFAULT_BIND})")
    serve_cmd.add_argument("--port", help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    serve_cmd.add_argument("--code-ttl", help="seconds a sign-in code is valid (default 300)")
    serve_cmd.add_argument("--session-ttl", help="seconds a session lasts (default 1800)")
    codes = commands.add_parser("codes", parents=[common],
                                help="the sign-in codes asked for a number")
    codes.add_argument("number", metavar="NUMBER", help="the user's number, E.164")
    codes.add_argument("--json", action="store_true", help="print JSON, for scripts")
    return parser


def _int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"{value!r} is not a positive whole number")
    return number


def _serve(settings: Settings) -> int:
    listen = Listen(cert=Path(settings.require("cert")), key=Path(settings.require("key")),
                    bind=settings.text("bind") or DEFAULT_BIND,
                    port=settings.get("port", DEFAULT_PORT, _int))
    for option, path in (("--cert", listen.cert), ("--key", listen.key)):
        if not path.is_file():
            raise ConfigError(f"{option} {path}: no such file")
    policy = SignInPolicy(code_ttl=settings.get("code_ttl", 300, _int),
                          session_ttl=settings.get("session_ttl", 1800, _int))
    texts = MqttTexts(broker_url(settings),
                      topics=Topics(settings.text("prefix") or DEFAULT_PREFIX))
    store = store_for(settings.require("db"), create=False)
    store.open()
    try:
        texts.start()
        try:
            asyncio.run(serve(Registry(store), SignIn(store, texts.send, policy=policy),
                              listen))
        finally:
            texts.stop()
    finally:
        store.close()
    return EXIT_OK


def _state(code: SignInCode, now: int) -> str:
    if code.code_hash is None:
        return "not our number (nothing sent)"
    if code.used_at is not None:
        return f"used {utc_time(code.used_at)}"
    return "expired" if code.expires_at <= now else "waiting"


def _codes(settings: Settings, number: str, as_json: bool) -> int:
    msisdn = validate_msisdn(number, field="number")
    store = store_for(settings.require("db"), create=False)
    store.open()
    try:
        codes = store.signin_codes(msisdn)
        contract = store.contract_by_msisdn(msisdn)
    finally:
        store.close()
    waiting = None
    if contract is not None and settings.text("broker"):
        waiting = read_code(broker_url(settings), contract.id, timeout=2.0,
                            topics=Topics(settings.text("prefix") or DEFAULT_PREFIX))
    now = now_ms()
    data = {"number": msisdn, "contract": contract.id if contract else None,
            "message": None if waiting is None else waiting.to_wire(),
            "codes": [{"asked_at": c.created_at, "expires_at": c.expires_at,
                       "state": _state(c, now), "wrong_tries": c.attempts, "client": c.client}
                      for c in codes]}

    def text(_data: Any) -> str:
        lines = [f"{msisdn}: contract {data['contract'] or '- (not served here)'}"]
        if waiting is not None:
            lines.append(f"text message on the user's topic: {waiting.text}")
        lines.append(table(["ASKED (UTC)", "EXPIRES (UTC)", "STATE", "WRONG", "CLIENT"],
                           [[utc_time(c.created_at), utc_time(c.expires_at), _state(c, now),
                             str(c.attempts), c.client] for c in codes]))
        return "\n".join(lines)

    emit(data, as_json=as_json, text=text)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-consent-web`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = Settings(vars(args), section="consent-web", config_file=args.config,
                        file_options=FILE_OPTIONS)
    try:
        setup_logging(settings.text("log_level", "warning") or "warning")
        if args.command == "serve":
            return _serve(settings)
        return _codes(settings, args.number, bool(args.json))
    except (ConfigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except (StoreError, BrokerError, MqttError, OSError) as exc:
        return fail(PROG, str(exc))


if __name__ == "__main__":
    sys.exit(main())

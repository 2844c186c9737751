"""``mps-emu eim``: the eIM and its operator.

    mps-emu eim init --eim-id ID --fqdn HOST:PORT     a new eIM database (identity, key)
    mps-emu eim serve --pki DIR [--listen H:P]        ESipa over HTTPS until SIGTERM; with
            [--broker URL] [--prefix P]               --broker, profile state changes go
                                                      to the registry ({P}/operator/profiles)
            [--relay SMDP_HOST:PORT]... [--relay-ca F] indirect profile download: ES9+ relayed
                                                      to these SM-DP+s (SGP.32 3.2.3)
    mps-emu eim config [--der FILE]                   the EimConfigurationData for eUICCs
    mps-emu eim associate EID...                      add eUICCs to the fleet
    mps-emu eim download EID CODE                     order a download (activation code)
    mps-emu eim psmo EID OP[:ICCID]...                queue PSMOs (enable[:ICCID[:rollback]],
                                                      disable, delete, listProfileInfo,
                                                      getRAT, configureImmediateEnable:on
                                                      [:SMDP_ADDRESS] or :off)
    mps-emu eim eco EID OP[:ARG]...                   queue eCOs (addEim:FILE, updateEim:FILE
                                                      with EimConfigurationData DER or hex,
                                                      deleteEim:EIMID, listEim)
    mps-emu eim status [EID]                          the fleet, queued work, what came back

--db defaults to $MPS_EIM_DB or ./eim.db. Exit codes: 0 done, 1 failed (the message says
why; nothing was stored), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from lpa_emulator import pki
from lpa_emulator.eim import reports
from lpa_emulator.eim.relay import Es9Relay
from lpa_emulator.eim.service import ECO_KINDS, PSMO_KINDS, Eim
from lpa_emulator.eim.store import EimStore, EimStoreError
from lpa_emulator.smdp.report import MqttReportPublisher
from lpa_emulator.subcommands import Subparsers, add_command, wait_for_stop
from mps_common.cli import EXIT_OK, EXIT_USAGE, emit, fail, json_flag, table, trace_crashes
from mps_common.errors import ConfigError
from mps_esim.lpa.es9 import Es9Error
from mps_wire.identifiers import IdentifierError
from mps_wire.topics import DEFAULT_PREFIX, Topics

PROG = "mps-emu eim"


def _store(args: argparse.Namespace) -> EimStore:
    return EimStore(Path(args.db or os.environ.get("MPS_EIM_DB") or "eim.db"))


def _operations(args: argparse.Namespace, kinds: tuple[str, ...], key: str
                ) -> list[dict[str, Any]]:
    return [_operation(text, kinds, key) for text in args.operations]


def _operation(text: str, kinds: tuple[str, ...], key: str) -> dict[str, Any]:
    """``KIND[:ARG[:MORE]]`` as the eIM's operation data (see the module help)."""
    kind, _sep, rest = text.partition(":")
    arg, _sep, more = rest.partition(":")
    if kind not in kinds:
        raise EimStoreError(f"{kind!r} is not one of {', '.join(kinds)}")
    if kind == "configureImmediateEnable":
        if arg not in ("on", "off"):
            raise ValueError("configureImmediateEnable:on[:SMDP_ADDRESS] or :off")
        return {"kind": kind, "enable": arg == "on", **({"smdp_address": more} if more else {})}
    if kind in ("addEim", "updateEim"):
        try:
            data = Path(rest).read_bytes()
        except OSError as exc:
            raise EimStoreError(f"cannot read the eIM configuration: {exc}") from exc
        der = data if data[:1] == b"\xa8" or data[:1] == b"\x30" else bytes.fromhex(
            data.decode().strip())
        return {"kind": kind, "config": der.hex().upper()}
    if more and not (kind == "enable" and more == "rollback"):
        raise ValueError(f"{text!r}: only enable takes ':rollback' after its ICCID")
    return {"kind": kind, **({key: arg} if arg else {}), **({"rollback": True} if more else {})}


def _run(args: argparse.Namespace) -> Any:
    store = _store(args)
    try:
        if args.eim_command == "init":
            eim = Eim.create(store, args.eim_id, args.fqdn)
            return {"eim_id": eim.eim_id, "fqdn": eim.fqdn, "db": str(store.path)}
        eim = Eim(store)
        if args.eim_command == "config":
            der = eim.config().encode()
            if args.der:
                Path(args.der).write_bytes(der)
            return {"eim_id": eim.eim_id, "fqdn": eim.fqdn, "config": der.hex().upper()}
        if args.eim_command == "associate":
            return {"associated": [e for e in args.eid if eim.associate(e)]}
        if args.eim_command == "download":
            return {"queued": eim.order_download(args.eid, args.activation_code)}
        if args.eim_command in ("psmo", "eco"):
            kinds, key = (PSMO_KINDS, "iccid") if args.eim_command == "psmo" else (
                ECO_KINDS, "eim_id")
            return {"queued": eim.queue_operations(args.eid, _operations(args, kinds, key))}
        return _status(eim, args.eid)
    finally:
        store.close()


def _status(eim: Eim, eid: str | None) -> dict[str, Any]:
    euiccs = [e for e in eim.store.euiccs() if eid is None or e.eid == eid]
    return {"eim_id": eim.eim_id,
            "euiccs": [{"eid": e.eid, "counter": e.counter,
                        "certificate": e.euicc_certificate is not None} for e in euiccs],
            "packages": [{"id": p.id, "eid": p.eid, "kind": p.kind, "state": p.state,
                          "counter": p.counter, "request": p.request, "result": p.result}
                         for p in eim.store.packages(eid)],
            "events": eim.store.events(eid)}


def _text(data: Any) -> str:
    if "packages" not in data:
        return "\n".join(f"{k}: {v}" for k, v in data.items())
    rows = [[str(p["id"]), p["eid"], p["kind"], p["state"], str(p["counter"] or "-")]
            for p in data["packages"]]
    return (f"eIM {data['eim_id']}: {len(data['euiccs'])} eUICC(s), "
            f"{len(data['events'])} event(s)\n" + table(["ID", "EID", "KIND", "STATE",
                                                           "COUNTER"], rows))


def cmd_eim(args: argparse.Namespace) -> int:
    try:
        data = _run(args)
    except (IdentifierError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except EimStoreError as exc:
        return fail(PROG, str(exc))
    emit(data, as_json=args.json, text=_text)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    trace_crashes()
    pki_dir = args.pki or os.environ.get("MPS_SMDP_PKI")
    if not pki_dir:
        return fail(PROG, "--pki DIR (with tls.pem and tls.key) is required", EXIT_USAGE)
    from lpa_emulator.eim.http import EimHttpServer
    from lpa_emulator.smdp.http import tls_context

    host, _sep, port = args.listen.rpartition(":")
    store = _store(args)
    broker = args.broker or os.environ.get("MPS_BROKER")
    publisher = None
    try:
        if broker:
            publisher = MqttReportPublisher(store, broker, topics=Topics(args.prefix),
                                            kind=reports.REPORT_KIND)
        context = tls_context(Path(pki_dir) / pki.TLS_CERT, Path(pki_dir) / pki.TLS_KEY)
        relayed = None
        if args.relay:
            relayed = Es9Relay(args.relay,
                               ca_file=args.relay_ca or os.environ.get("MPS_SMDP_CA"))
        eim = Eim(store, es9_relay=relayed)
        eim.on_report = publisher.wake if publisher else None
        server = EimHttpServer(eim, host=host, port=int(port), ssl_context=context)
        bound = server.start()
    except (ConfigError, EimStoreError, Es9Error, OSError, ValueError) as exc:
        store.close()
        return fail(PROG, str(exc))
    if publisher is not None:
        publisher.start()
    print(f"eIM {server.eim.eim_id} serving ESipa on https://{host}:{bound}"
          + (f", reports to {broker} {publisher.topic}" if publisher else ""), flush=True)
    try:
        wait_for_stop()
    finally:
        server.stop()
        if publisher is not None:
            publisher.stop()
        store.close()
    return EXIT_OK


def register(subparsers: Subparsers) -> None:
    """Add ``eim`` to ``mps-emu``."""
    e = add_command(subparsers, "eim", help="the eIM (SGP.32 ESipa over HTTPS) and its fleet",
                    description=__doc__)
    esub = e.add_subparsers(dest="eim_command", required=True, metavar="COMMAND")

    def leaf(name: str, help_text: str) -> argparse.ArgumentParser:
        p = add_command(esub, name, help=help_text)
        p.add_argument("--db", help="the eIM database ($MPS_EIM_DB, default ./eim.db)")
        json_flag(p)
        p.set_defaults(func=cmd_eim)
        return p

    init = leaf("init", "make a new eIM database with its identity and key")
    init.add_argument("--eim-id", required=True)
    init.add_argument("--fqdn", required=True, help="HOST:PORT IPAs reach the eIM at")
    serve = leaf("serve", "serve ESipa over HTTPS until SIGTERM")
    serve.add_argument("--pki", help="directory with tls.pem and tls.key ($MPS_SMDP_PKI)")
    serve.add_argument("--listen", default="127.0.0.1:8444", help="HOST:PORT (0: any port)")
    serve.add_argument("--broker", help="report profile state changes to this broker "
                                        "($MPS_BROKER)")
    serve.add_argument("--prefix", default=DEFAULT_PREFIX, help="the registry's topic prefix")
    serve.add_argument("--relay", action="append", metavar="SMDP_HOST:PORT",
                       help="offer indirect profile download, relaying ES9+ to this SM-DP+ "
                            "(repeatable)")
    serve.add_argument("--relay-ca", metavar="FILE",
                       help="CA certificates (PEM) for the SM-DP+s' TLS ($MPS_SMDP_CA)")
    serve.set_defaults(func=cmd_serve)
    leaf("config", "print the EimConfigurationData eUICCs are given").add_argument(
        "--der", help="also write it (DER) to this file")
    leaf("associate", "add eUICCs to the fleet").add_argument("eid", nargs="+")
    download = leaf("download", "order a profile download with an activation code")
    download.add_argument("eid")
    download.add_argument("activation_code")
    for name, kinds in (("psmo", PSMO_KINDS), ("eco", ECO_KINDS)):
        p = leaf(name, f"queue one eUICC package of {name.upper()}s: {', '.join(kinds)}")
        p.add_argument("eid")
        p.add_argument("operations", nargs="+", metavar="OP[:ARG]")
    leaf("status", "the fleet, queued work and what came back").add_argument(
        "eid", nargs="?")

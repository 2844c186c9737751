"""``mps-emu smdp`` (the SM-DP+ and its operator side) and ``mps-emu pki`` (the test PKI).

::

    mps-emu pki init DIR [--eid EID ...] [--euicc-count N] [--eid-prefix 89049032]
                         [--tls-host HOST ...] [--smdp-oid OID] [--builtin-ci]
                         [--force] [--json]
    mps-emu pki euicc DIR --eid EID [--force] [--json]
    mps-emu smdp serve --pki DIR --listen 127.0.0.1:PORT --address HOST[:PORT]
                       [--data DIR] [--broker URL] [--ci FILE ...]
    mps-emu smdp order --iccid ICCID --imsi IMSI [--msisdn MSISDN]
                       [--confirmation-code CODE] [--eid EID] [--data DIR] [--json]
    mps-emu smdp order --from-operator FILE [--data DIR] [--json]
    mps-emu smdp orders [--data DIR] [--json]

``order --from-operator`` orders a profile for every subscription of the operator's data
file (the TOML or JSON ``mps-bridge operator import`` reads) that has none yet and prints
each ICCID with its activation code (see :mod:`lpa_emulator.smdp.operator`). An order made
for an ``--eid`` can also be downloaded from the eUICC's default SM-DP+, without a code.

``--data`` defaults to ``$MPS_SMDP_DATA`` or ``./smdp-data``, ``--pki`` to ``$MPS_SMDP_PKI``,
``--broker`` to ``$MPS_BROKER``. Exit codes: 0 done, 1 failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lpa_emulator import pki
from lpa_emulator.smdp.errors import OrderError, ServerStartError
from lpa_emulator.smdp.guard import Limits
from lpa_emulator.smdp.operator import order_subscriptions, read_subscriptions
from lpa_emulator.smdp.orders import Order, OrderStore
from lpa_emulator.smdp.report import MqttReportPublisher, OutboxReporter
from lpa_emulator.smdp.service import Smdp, SmdpCredentials
from lpa_emulator.subcommands import Subparsers, add_command, wait_for_stop
from mps_common.cli import (
    EXIT_OK,
    EXIT_USAGE,
    emit,
    fail,
    json_flag,
    table,
    trace_crashes,
    utc_time,
)
from mps_common.errors import ConfigError
from mps_esim.lpa.activation import ActivationCode, ActivationCodeError, check_address
from mps_wire.topics import DEFAULT_PREFIX, Topics

PROG = "mps-emu"
_ADDRESS_SETTING = "address"
ORDER_DESCRIPTION = """\
Prepare a profile order and print its activation code.

--from-operator orders a profile for every subscription of the operator's data file (the
TOML or JSON 'mps-bridge operator import' reads) that has none yet and prints each ICCID
with its activation code. An order made for an --eid can also be downloaded from the
eUICC's default SM-DP+, without a code.

--data defaults to $MPS_SMDP_DATA or ./smdp-data. Exit codes: 0 done, 1 failed,
2 bad arguments."""
SERVE_DESCRIPTION = """\
Serve ES9+ over HTTPS until SIGTERM or SIGINT.

--pki defaults to $MPS_SMDP_PKI, --data to $MPS_SMDP_DATA or ./smdp-data, --broker to
$MPS_BROKER. Exit codes: 0 stopped by a signal, 1 failed, 2 bad arguments."""


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data or os.environ.get("MPS_SMDP_DATA") or "smdp-data")


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def _address(text: str) -> str:
    try:
        return check_address(text)
    except ActivationCodeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- pki ----------------------------------------------------------------------------------

def cmd_pki_init(args: argparse.Namespace) -> int:
    try:
        summary = pki.init_pki(args.dir, eids=args.eid or (), euicc_count=args.euicc_count,
                               eid_prefix=args.eid_prefix, eum_org=args.eum_org,
                               smdp_oid=args.smdp_oid,
                               tls_hosts=args.tls_host or pki.DEFAULT_TLS_HOSTS,
                               overwrite=args.force, builtin_ci=args.builtin_ci,
                               curve=args.curve)
    except (pki.PkiError, OSError) as exc:
        return fail(PROG, str(exc))
    _print_summary(summary, args.json)
    return EXIT_OK


def cmd_pki_euicc(args: argparse.Namespace) -> int:
    try:
        summary = pki.issue_euicc(args.dir, args.eid, overwrite=args.force)
    except (pki.PkiError, OSError) as exc:
        return fail(PROG, str(exc))
    _print_summary(summary, args.json)
    return EXIT_OK


def _print_summary(summary: pki.PkiSummary, as_json: bool) -> None:
    def text(_data: object) -> str:
        return "\n".join([*(str(summary.directory / name) for name in summary.files),
                          *(f"eUICC certificate for EID {eid}" for eid in summary.eids)])

    emit({"directory": str(summary.directory), "eids": list(summary.eids),
          "files": list(summary.files)}, as_json=as_json, text=text)


# --- smdp ---------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    trace_crashes()
    pki_dir = args.pki or os.environ.get("MPS_SMDP_PKI")
    if not pki_dir:
        return fail(PROG, "--pki DIR (or $MPS_SMDP_PKI) is required", EXIT_USAGE)
    if min(args.session_ttl, args.pending_ttl, args.request_timeout, args.max_connections) <= 0:
        return fail(PROG, "--session-ttl, --pending-ttl, --request-timeout and "
                          "--max-connections must be positive", EXIT_USAGE)
    # aiohttp is needed only to serve; the other commands work without it.
    from lpa_emulator.smdp.events import EventDeleter
    from lpa_emulator.smdp.http import SmdpHttpServer, tls_context
    from mps_esim.lpa.es9 import Es9Error

    host, port = args.listen
    try:
        credentials = SmdpCredentials.from_dir(pki_dir, args.ci or ())
        context = tls_context(credentials.tls_cert, credentials.tls_key)
        store = OrderStore.in_dir(_data_dir(args))
    except (ConfigError, OrderError) as exc:
        return fail(PROG, str(exc))
    store.set_setting(_ADDRESS_SETTING, args.address)
    broker = args.broker or os.environ.get("MPS_BROKER")
    publisher = None
    if broker:
        try:
            publisher = MqttReportPublisher(store, broker, topics=Topics(args.prefix))
        except ValueError as exc:
            return fail(PROG, str(exc), EXIT_USAGE)
    reporter = OutboxReporter(store, publisher.wake if publisher else None)
    smdp = Smdp(address=args.address, credentials=credentials, orders=store,
                reporter=reporter, session_ttl=args.session_ttl,
                pending_ttl=args.pending_ttl)
    try:
        events = EventDeleter(store, ca_file=args.smds_ca)
    except Es9Error as exc:
        return fail(PROG, f"--smds-ca: {exc}", EXIT_USAGE)
    smdp.on_finished = events.wake
    server = SmdpHttpServer(smdp, host=host, port=port, ssl_context=context,
                            workers=args.workers,
                            limits=Limits(max_connections=args.max_connections,
                                          request_timeout=args.request_timeout))
    try:
        bound = server.start()
    except (ConfigError, ServerStartError) as exc:
        return fail(PROG, str(exc))
    if publisher is not None:
        publisher.start()
    events.start()
    print(f"SM-DP+ {args.address} serving ES9+ on https://{host}:{bound}"
          + (f", reports to {broker} {publisher.topic}" if publisher else ""), flush=True)
    try:
        wait_for_stop()
    finally:
        server.stop()
        if publisher is not None:
            publisher.stop()
        events.stop()
        store.close()
    return EXIT_OK


def cmd_order(args: argparse.Namespace) -> int:
    if (args.from_operator is None) == (args.iccid is None):
        return fail(PROG, "give --iccid and --imsi, or --from-operator FILE", EXIT_USAGE)
    if args.iccid is not None and args.imsi is None:
        return fail(PROG, "--iccid needs --imsi", EXIT_USAGE)
    if args.smds and not args.eid:
        return fail(PROG, "--smds needs --eid: an event is for one eUICC", EXIT_USAGE)
    try:
        store = OrderStore.in_dir(_data_dir(args))
    except OrderError as exc:
        return fail(PROG, str(exc))
    try:
        address = args.address or store.setting(_ADDRESS_SETTING)
        if not address:
            return fail(PROG, "no SM-DP+ address: pass --address or start 'smdp serve' "
                              "with this --data once", EXIT_USAGE)
        if args.from_operator is not None:
            return _order_from_operator(store, address, args)
        order = store.add(iccid=args.iccid, imsi=args.imsi, msisdn=args.msisdn,
                          confirmation_code=args.confirmation_code, eid=args.eid,
                          matching_id=args.matching_id, service_provider=args.spn,
                          profile_name=args.name, max_attempts=args.max_attempts,
                          ttl=args.ttl)
    except OrderError as exc:
        return fail(PROG, f"{exc} ('mps-emu smdp orders' lists the orders)")
    finally:
        store.close()
    code = ActivationCode(address, order.matching_id, cc_required=order.cc_required)
    out: dict[str, Any] = {"activation_code": str(code), **order.summary()}
    if args.smds:
        problem = _register_event(args, order.matching_id, address)
        if problem is not None:
            return fail(PROG, problem)
        out["smds"] = args.smds
    emit(out, as_json=args.json, text=lambda _: "\n".join(
        [str(code), _order_line(order)] + ([f"event registered at {args.smds}"]
                                           if args.smds else [])))
    return EXIT_OK


def _order_line(order: Order) -> str:
    """An order's summary as a sentence, under its activation code."""
    numbers = ", ".join(f"{name} {value}" for name, value in
                        (("IMSI", order.imsi), ("MSISDN", order.msisdn)) if value)
    return (f"order {order.matching_id} for ICCID {order.iccid} ({numbers}): "
            f"{order.state.value}, {order.attempts} attempts, for "
            f"{('EID ' + order.eid) if order.eid else 'any eUICC'}, "
            f"{'with' if order.cc_required else 'no'} confirmation code, made "
            f"{utc_time(order.created_at * 1000)} UTC")


def _order_from_operator(store: OrderStore, address: str, args: argparse.Namespace) -> int:
    subscriptions = read_subscriptions(args.from_operator)
    done = order_subscriptions(store, subscriptions, service_provider=args.spn,
                               profile_name=args.name)
    rows = [{"iccid": d.order.iccid, "imsi": d.order.imsi, "msisdn": d.order.msisdn,
             "contract": d.subscription.contract, "eid": d.order.eid,
             "state": d.order.state.value, "new": d.created,
             "activation_code": str(ActivationCode(address, d.order.matching_id,
                                                   cc_required=d.order.cc_required))}
            for d in done]
    if args.json:
        emit(rows, as_json=True, text=str)
        return EXIT_OK
    for r in rows:
        print(f"{r['iccid']}  {r['activation_code']}" + ("" if r["new"] else "  (ordered before)"))
    new = sum(1 for r in rows if r["new"])
    print(f"{new} new order(s), {len(rows) - new} ordered before", file=sys.stderr)
    return EXIT_OK


def _register_event(args: argparse.Namespace, matching_id: str, address: str) -> str | None:
    """ES12.RegisterEvent of the order at ``--smds`` (kept for ES12.DeleteEvent once the
    download is over); what went wrong, if anything."""
    from lpa_emulator.smdp.events import register_event
    from mps_esim.lpa.es9 import Es9Error

    try:
        store = OrderStore.in_dir(_data_dir(args))
    except OrderError as exc:
        return f"order {matching_id} made, but its event cannot be kept: {exc}"
    try:
        register_event(store, matching_id=matching_id, eid=args.eid, smdp=address,
                       smds=args.smds, ca_file=args.smds_ca)
    except Es9Error as exc:
        return f"order {matching_id} made, but the SM-DS refused the event: {exc}"
    finally:
        store.close()
    return None


def cmd_orders(args: argparse.Namespace) -> int:
    try:
        store = OrderStore.in_dir(_data_dir(args))
        orders = store.all()
        store.close()
    except OrderError as exc:
        return fail(PROG, str(exc))
    emit([o.summary() for o in orders], as_json=args.json,
         text=lambda _: table(("MATCHING ID", "ICCID", "IMSI", "MSISDN", "STATE", "ATTEMPTS",
                               "CONFIRMATION CODE", "EID", "CREATED (UTC)"),
                              [(o.matching_id, o.iccid, o.imsi, o.msisdn or "-", o.state.value,
                                str(o.attempts), "yes" if o.cc_required else "no",
                                o.eid or "-", utc_time(o.created_at * 1000))
                               for o in orders]) if orders else "no orders")
    return EXIT_OK


def register(subparsers: Subparsers) -> None:
    """Add the ``smdp`` and ``pki`` commands to ``mps-emu``."""
    _register_pki(subparsers)
    _register_smdp(subparsers)


def _register_pki(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "pki", help="make a test PKI (CI, EUM, eUICC, DPauth, DPpb, TLS)")
    psub = p.add_subparsers(dest="pki_command", required=True, metavar="COMMAND")
    init = add_command(psub, "init", help="make a complete test PKI in DIR")
    init.add_argument("dir", type=Path)
    init.add_argument("--eid", action="append", help="issue an eUICC certificate for EID "
                      "(repeatable; default: --euicc-count random EIDs)")
    init.add_argument("--euicc-count", type=int, default=1)
    init.add_argument("--eid-prefix", default=pki.DEFAULT_EID_PREFIX,
                      help="EID range the EUM may issue for (name constraint)")
    init.add_argument("--eum-org", default=pki.DEFAULT_EUM_ORG)
    init.add_argument("--smdp-oid", default=pki.DEFAULT_SMDP_OID)
    init.add_argument("--tls-host", action="append",
                      help="host name or IP in the SM-DP+ TLS certificate (repeatable; "
                      "default: localhost, 127.0.0.1)")
    init.add_argument("--builtin-ci", action="store_true",
                      help="use the built-in test CI and EUM, which emulated cards made "
                      "without a PKI directory trust (test keys, public knowledge)")
    init.add_argument("--curve", choices=("nist", "brainpool", "both"), default="nist",
                      help="NIST P-256, brainpoolP256r1, or a chain on each (default: nist)")
    init.add_argument("--force", action="store_true", help="replace existing files")
    json_flag(init)
    init.set_defaults(func=cmd_pki_init)
    euicc = add_command(psub, "euicc", help="issue one more eUICC certificate")
    euicc.add_argument("dir", type=Path)
    euicc.add_argument("--eid", required=True)
    euicc.add_argument("--force", action="store_true")
    json_flag(euicc)
    euicc.set_defaults(func=cmd_pki_euicc)


def _register_smdp(subparsers: Subparsers) -> None:
    s = add_command(subparsers, "smdp", help="the SM-DP+ (ES9+ over HTTPS) and its orders")
    ssub = s.add_subparsers(dest="smdp_command", required=True, metavar="COMMAND")
    serve = add_command(ssub, "serve", help="serve ES9+ over HTTPS until SIGTERM",
                        description=SERVE_DESCRIPTION)
    serve.add_argument("--pki", help="PKI directory ($MPS_SMDP_PKI)")
    serve.add_argument("--listen", type=_listen, default=("127.0.0.1", 8443),
                       help="HOST:PORT to listen on (default 127.0.0.1:8443; port 0 picks one)")
    serve.add_argument("--address", type=_address, required=True,
                       help="the SM-DP+ address in activation codes, HOST[:PORT]")
    serve.add_argument("--data", help="order database directory ($MPS_SMDP_DATA)")
    serve.add_argument("--broker", help="report installations to this broker ($MPS_BROKER)")
    serve.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix")
    serve.add_argument("--ci", action="append", help="another trusted CI certificate")
    serve.add_argument("--session-ttl", type=float, default=600.0,
                       help="seconds an authenticated download session lives")
    serve.add_argument("--pending-ttl", type=float, default=30.0,
                       help="seconds a session lives until authenticateClient")
    serve.add_argument("--max-connections", type=int, default=512)
    serve.add_argument("--request-timeout", type=float, default=10.0,
                       help="seconds a client has to send each request")
    serve.add_argument("--workers", type=int, default=4)
    serve.add_argument("--smds-ca", metavar="FILE", help="CA file for the TLS of the SM-DSs "
                       "holding events of orders (ES12.DeleteEvent once downloaded; "
                       "default: the system store)")
    serve.set_defaults(func=cmd_serve)
    _register_orders(ssub)


def _register_orders(ssub: Subparsers) -> None:
    order = add_command(ssub, "order", help="prepare a profile and print its activation code",
                        description=ORDER_DESCRIPTION)
    order.add_argument("--iccid")
    order.add_argument("--imsi")
    order.add_argument("--msisdn")
    order.add_argument("--confirmation-code")
    order.add_argument("--eid", help="only this eUICC may download the profile (also from its "
                       "default SM-DP+, without an activation code)")
    order.add_argument("--from-operator", type=Path, metavar="FILE",
                       help="order every subscription of the operator's data file (TOML or "
                       "JSON, as 'mps-bridge operator import' reads it) not ordered yet")
    order.add_argument("--matching-id", help="default: a random one")
    order.add_argument("--address", type=_address, help="default: the serving address")
    order.add_argument("--name", default="MPS operational", help="profile name")
    order.add_argument("--spn", default="MPS", help="service provider name")
    order.add_argument("--max-attempts", type=int, default=5)
    order.add_argument("--ttl", type=float, help="seconds until the order expires")
    order.add_argument("--smds", type=_address, metavar="HOST:PORT",
                       help="register the order as an event for --eid at this SM-DS (ES12)")
    order.add_argument("--smds-ca", metavar="FILE", help="CA file for the SM-DS's TLS")
    order.add_argument("--data", help="order database directory ($MPS_SMDP_DATA)")
    json_flag(order)
    order.set_defaults(func=cmd_order)
    orders = add_command(ssub, "orders", help="list the orders")
    orders.add_argument("--data", help="order database directory ($MPS_SMDP_DATA)")
    json_flag(orders)
    orders.set_defaults(func=cmd_orders)

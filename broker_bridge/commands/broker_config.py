"""``mps-bridge broker-config``: Mosquitto's configuration and the dynamic security
plugin's file for the issued identities."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from broker_bridge.brokerconf import (
    ACL_MODES,
    WITHDRAWN_MODES,
    MosquittoConfig,
    MosquittoConfigError,
    write_broker_config,
)
from broker_bridge.commands.common import PROG, open_store
from broker_bridge.credentials import CredentialError, OperatorCA
from broker_bridge.model import Role
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail
from mps_common.config import Settings
from mps_wire.topics import DEFAULT_PREFIX


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``broker-config``."""
    conf = commands.add_parser("broker-config", parents=[common],
                               help="write Mosquitto's configuration and its dynamic "
                                    "security file for the issued identities")
    conf.add_argument("--db", help="database file ($MPS_DB)")
    conf.add_argument("--out", required=True, metavar="DIR", help="where to write them")
    conf.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix")
    conf.add_argument("--bind", default="127.0.0.1", help="listen address (default "
                                                          "127.0.0.1)")
    conf.add_argument("--port", type=int, default=1883,
                      help="plain listener with password login (default 1883; 0: none)")
    conf.add_argument("--tls-port", type=int, help="TLS listener with the operator's CA")
    conf.add_argument("--tls", action="store_true", help="a TLS listener on 8883 (unless "
                                                         "--tls-port names another)")
    conf.add_argument("--ca", metavar="DIR", help="the operator CA (made if missing)")
    conf.add_argument("--client-certificates", action="store_true",
                      help="the TLS listener requires client certificates; their common "
                           "name is the username")
    conf.add_argument("--server-name", dest="server_names", action="append", default=[],
                      metavar="NAME", help="name or IP in the broker's certificate, "
                                           "repeatable (default 127.0.0.1, localhost)")
    conf.add_argument("--acl", choices=(*ACL_MODES, *WITHDRAWN_MODES), default="dynsec",
                      help="the dynamic security plugin (the only mode: Mosquitto's "
                           "acl_file does not check subscriptions, so it cannot keep "
                           "the registry's group to the registry)")
    conf.add_argument("--dynsec-plugin", metavar="PATH", help="the dynamic security plugin")
    conf.add_argument("--user", help="the account Mosquitto runs as when started by root "
                                     "(default: mosquitto); run as root, this command "
                                     "gives it the password, ACL and key files")
    conf.add_argument("--no-persistence", action="store_true",
                      help="do not keep sessions and queued messages across restarts")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Write the broker's files for the identities issued in the database."""
    try:
        config = _config(args)
        ca = OperatorCA.load_or_create(args.ca) if args.ca else None
    except (MosquittoConfigError, CredentialError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    store = open_store(settings.require("db"))
    try:
        identities = store.identities()
    finally:
        store.close()
    try:
        files = write_broker_config(args.out, config, identities, ca=ca)
    except MosquittoConfigError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except OSError as exc:
        return fail(PROG, f"cannot write to {args.out}: {exc.strerror or exc}")
    owner = f"; files readable by {files.handover.owner}" if files.handover.owner else ""
    print(f"wrote {files.conf} for {files.users} users; listeners {_listeners(config)}; "
          f"ACL by {config.acl}{owner}")
    for note in files.handover.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    if not any(i.role is Role.BRIDGE for i in identities):
        print(f"{PROG}: note: no bridge identity is issued; the registry cannot log in "
              "(mps-bridge operator issue bridge NAME --out DIR)", file=sys.stderr)
    return EXIT_OK


def _config(args: argparse.Namespace) -> MosquittoConfig:
    return MosquittoConfig(prefix=args.prefix, bind=args.bind, port=args.port or None,
                           tls_port=args.tls_port or (8883 if args.tls else None),
                           client_certificates=args.client_certificates,
                           server_names=tuple(args.server_names) or ("127.0.0.1",
                                                                     "localhost"),
                           persistence=not args.no_persistence, user=args.user,
                           acl=args.acl, dynsec_plugin=args.dynsec_plugin)


def _listeners(config: MosquittoConfig) -> str:
    listeners = []
    if config.port:
        listeners.append(f"{config.bind}:{config.port} (password)")
    if config.tls_port:
        login = ", client certificates" if config.client_certificates else ""
        listeners.append(f"{config.bind}:{config.tls_port} (TLS{login})")
    return ", ".join(listeners)

"""``mps-emu smds``: an SM-DS serving ES11 (event retrieval by LPAs) and ES12 (event
registration by SM-DP+s) over HTTPS until SIGTERM. Events are kept in memory; an SM-DP+
registers them with ``mps-emu smdp order --eid EID --smds HOST:PORT``."""

from __future__ import annotations

import argparse
import os

from lpa_emulator.smdp.cli import _address, _listen
from lpa_emulator.smdp.errors import ServerStartError
from lpa_emulator.smds import ROUTES, Smds, SmdsCredentials
from lpa_emulator.subcommands import Subparsers, add_command, wait_for_stop
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail
from mps_common.errors import ConfigError

PROG = "mps-emu smds"


def cmd_smds(args: argparse.Namespace) -> int:
    pki_dir = args.pki or os.environ.get("MPS_SMDP_PKI")
    if not pki_dir:
        return fail(PROG, "--pki DIR (or $MPS_SMDP_PKI) is required", EXIT_USAGE)
    from lpa_emulator.smdp.http import SmdpHttpServer, tls_context

    host, port = args.listen
    try:
        credentials = SmdsCredentials.from_dir(pki_dir)
        context = tls_context(credentials.tls_cert, credentials.tls_key)
        server = SmdpHttpServer(Smds(address=args.address, credentials=credentials),
                                host=host, port=port, ssl_context=context, routes=ROUTES)
        bound = server.start()
    except (ConfigError, ServerStartError) as exc:
        return fail(PROG, str(exc))
    print(f"SM-DS {args.address} serving ES11 and ES12 on https://{host}:{bound}", flush=True)
    try:
        wait_for_stop()
    finally:
        server.stop()
    return EXIT_OK


def register(subparsers: Subparsers) -> None:
    smds = add_command(subparsers, "smds", help="an SM-DS (ES11, ES12 over HTTPS) until SIGTERM",
                       description=__doc__)
    smds.add_argument("--pki", help="PKI directory with dsauth.pem and tls.pem ($MPS_SMDP_PKI)")
    smds.add_argument("--listen", type=_listen, default=("127.0.0.1", 8444),
                      help="HOST:PORT to listen on (default 127.0.0.1:8444; port 0 picks one)")
    smds.add_argument("--address", type=_address, required=True,
                      help="the SM-DS address eUICCs are configured with, HOST[:PORT]")
    smds.set_defaults(func=cmd_smds)

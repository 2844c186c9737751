"""Floods against the SM-DP+ on real HTTPS: unauthenticated ES9+ sessions and slow
connections from one address (127.0.0.2), then a real device's profile download from
another (127.0.0.1). An attack is refused when the real download completes and, for the
slow connections, every one of them is closed within the server's request timeout.

The SM-DP+ runs in this process (the server's counters are read directly); the card is
an empty emulated eUICC under the built-in test issuer, downloading through the agent's
own activation code path.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import resource
import selectors
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lpa_emulator import pki
from lpa_emulator.euicc import CardState
from lpa_emulator.euicc.es10 import SVN
from lpa_emulator.smdp.guard import Limits
from lpa_emulator.smdp.http import ADMIN_PROTOCOL, SmdpHttpServer, tls_context
from lpa_emulator.smdp.orders import OrderStore
from lpa_emulator.smdp.service import Smdp, SmdpCredentials
from mps_bench.attacks import AttackResult
from mps_esim import sgp22
from mps_esim.lpa.activation import ActivationCode
from mps_wire.identifiers import make_iccid

ATTACKER = "127.0.0.2"
INITIATE = "/gsma/rsp2/es9plus/initiateAuthentication"
HEADERS = {"Content-Type": "application/json", "X-Admin-Protocol": ADMIN_PROTOCOL}


@dataclass
class _Smdp:
    smdp: Smdp
    server: SmdpHttpServer
    orders: OrderStore
    ca_file: Path
    workdir: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def download(self, n: int) -> str:
        """A real download onto a fresh empty card; '' when it worked, else the error."""
        from agent.activation import ActivationPlan, ensure_operational_profile
        from agent.card.emu import EmuCardLink
        from agent.errors import AgentError

        iccid = make_iccid(f"894900000000771{n:04d}")
        order = self.orders.add(iccid=iccid, imsi=f"0010177{n:08d}")
        code = str(ActivationCode(self.smdp.address, order.matching_id))
        card_path = self.workdir / f"card-{n}.json"
        CardState.new(profiles=[]).save(card_path)
        plan = ActivationPlan.from_config(None, code=code, ca_file=self.ca_file)
        try:
            with EmuCardLink(card_path) as link:
                outcome = ensure_operational_profile(link, plan)
        except AgentError as exc:
            return str(exc)
        return "" if outcome.iccid == iccid else f"installed {outcome.iccid}"


@contextlib.contextmanager
def _served(workdir: Path, limits: Limits) -> Iterator[_Smdp]:
    pki_dir = workdir / "pki"
    pki.init_pki(pki_dir, euicc_count=0, builtin_ci=True,
                 tls_hosts=("localhost", "127.0.0.1"))
    orders = OrderStore.in_dir(workdir / "orders")
    smdp = Smdp(address="localhost", credentials=SmdpCredentials.from_dir(pki_dir),
                orders=orders)
    server = SmdpHttpServer(smdp, host="127.0.0.1", port=0, limits=limits,
                            ssl_context=tls_context(pki_dir / pki.TLS_CERT,
                                                    pki_dir / pki.TLS_KEY))
    port = server.start()
    smdp.address = f"localhost:{port}"
    try:
        yield _Smdp(smdp, server, orders, pki_dir / pki.CI_CERT, workdir)
    finally:
        server.stop()
        orders.close()


def _initiate_body(address: str) -> bytes:
    identity = CardState.new(profiles=[]).identity
    info1 = sgp22.EuiccInfo1(SVN, identity.ci_pkids, identity.signing_pkids).encode()
    return json.dumps({"smdpAddress": address,
                       "euiccChallenge": base64.b64encode(bytes(16)).decode(),
                       "euiccInfo1": base64.b64encode(info1).decode()}).encode()


def session_flood(served: _Smdp, count: int) -> AttackResult:
    """``count`` initiateAuthentication calls, never authenticated, then a download."""
    body = _initiate_body(served.smdp.address)
    conn = http.client.HTTPSConnection("localhost", served.server.port, timeout=10,
                                       context=served.context(), source_address=(ATTACKER, 0))
    opened = 0
    try:
        for _ in range(count):
            conn.request("POST", INITIATE, body, HEADERS)
            opened += "transactionId" in json.loads(conn.getresponse().read())
    finally:
        conn.close()
    problem = served.download(1)
    outcome = (f"{opened} sessions opened, {served.smdp.sessions.pending} kept, "
               f"{served.smdp.sessions.evicted} evicted; the real download "
               + ("completed" if not problem else f"failed: {problem}"))
    return AttackResult("smdp-session-exhaustion", f"{count} initiateAuthentication calls "
                        "that never authenticate, then a real download", not problem,
                        "SM-DP+", outcome, recorded=True, record="session table")


def _slow(served: _Smdp, tls: bool) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", served.server.port), timeout=10,
                                   source_address=(ATTACKER, 0))
    if not tls:
        return raw  # never says hello
    try:
        conn = served.context().wrap_socket(raw, server_hostname="localhost")
        conn.sendall(f"POST {INITIATE} HTTP/1.1\r\nHost: x\r\n".encode())
    except OSError:  # refused over the limit right after the handshake
        raw.close()
        return raw
    return conn


def _all_closed(sockets: list[socket.socket], deadline: float) -> int:
    """Wait until the server closed every socket or ``deadline``; how many are open."""
    with selectors.DefaultSelector() as selector:
        for s in sockets:
            if s.fileno() >= 0:
                selector.register(s, selectors.EVENT_READ, data=s)
        while selector.get_map() and time.monotonic() < deadline:
            for key, _events in selector.select(0.2):
                conn: socket.socket = key.data
                try:
                    closed = conn.recv(1) == b""
                except ssl.SSLWantReadError:
                    closed = False
                except (ssl.SSLError, OSError):
                    closed = True
                if closed:
                    selector.unregister(conn)
        return len(selector.get_map())


def slow_connections(served: _Smdp, count: int) -> AttackResult:
    """``count`` connections, half never starting TLS, half sending half a request
    head; a real download meanwhile; all must be closed within the request timeout."""
    timeout = served.server.limits.request_timeout
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2 * count + 256:
        # Both ends of every connection live in this process.
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * count + 256), hard))
    started = time.monotonic()
    held = [_slow(served, tls=n % 2 == 1) for n in range(count)]
    # Each must be gone within the timeout of its opening (the last just opened).
    deadline = time.monotonic() + timeout + 5
    try:
        problem = served.download(2)
        still_open = _all_closed(held, deadline)
    finally:
        for s in held:
            s.close()
    guard = served.server.guard
    refused = guard.refused if guard else 0
    outcome = (f"{count} held: {refused} refused at once, all closed after "
               f"{time.monotonic() - started:.1f} s" if not still_open
               else f"{still_open} still open after {timeout + 5:g} s")
    outcome += "; the real download " + ("completed" if not problem else f"failed: {problem}")
    return AttackResult("smdp-slow-connections", f"{count} connections that never finish "
                        "a request (no TLS hello, or half a header), and a real download",
                        not problem and not still_open, "SM-DP+", outcome, recorded=True,
                        record="server log")


def run_smdp_attacks(workdir: Path, *, sessions: int = 10_000, slow: int = 1000
                     ) -> list[AttackResult]:
    """Both floods against one SM-DP+ with its default limits."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _served(workdir, Limits()) as served:
        return [session_flood(served, sessions), slow_connections(served, slow)]

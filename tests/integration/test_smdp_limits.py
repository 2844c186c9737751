"""The SM-DP+ under floods, on real HTTPS: unauthenticated ES9+ sessions (SGP.22 5.6.1
initiateAuthentication needs no credential) never lock out a real download, slow senders
are cut off, and connections are bounded in all and per address.

Attackers connect from 127.0.0.2, the real device from 127.0.0.1 (both loopback).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpa_emulator import pki
from lpa_emulator.smdp.guard import Limits
from lpa_emulator.smdp.http import ADMIN_PROTOCOL
from lpa_emulator.smdp.orders import OrderState
from mps_wire.identifiers import make_eid
from tests.rsp_support import (
    Served,
    card_for,
    euicc_info1,
    identity,
    new_subscription,
    served_smdp,
)

EIDS = [make_eid(f"8904903200000000000000000{n:05d}") for n in range(3)]
ATTACKER = "127.0.0.2"
HEADERS = {"Content-Type": "application/json", "X-Admin-Protocol": ADMIN_PROTOCOL}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=EIDS)
    return root


def _context(served: Served) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(served.ca))


def _initiate_body(pki_dir: Path, served: Served) -> bytes:
    ident = identity(pki_dir, EIDS[2])
    return json.dumps({"smdpAddress": served.address,
                       "euiccChallenge": base64.b64encode(bytes(16)).decode(),
                       "euiccInfo1": base64.b64encode(euicc_info1(ident)).decode()}).encode()


def flood(served: Served, body: bytes, count: int) -> int:
    """``count`` initiateAuthentication calls from the attacker's address; how many
    opened a session."""
    conn = http.client.HTTPSConnection("localhost", served.server.port,
                                       context=_context(served), timeout=10,
                                       source_address=(ATTACKER, 0))
    opened = 0
    try:
        for _ in range(count):
            conn.request("POST", "/gsma/rsp2/es9plus/initiateAuthentication", body, HEADERS)
            answer = json.loads(conn.getresponse().read())
            opened += "transactionId" in answer
    finally:
        conn.close()
    return opened


def real_download(served: Served, pki_dir: Path, eid: str) -> None:
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    result = served.downloader(card_for(pki_dir, eid)).download(served.address,
                                                                order.matching_id)
    assert result.iccid == iccid
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED


def slow_connection(served: Served) -> ssl.SSLSocket:
    """A TLS connection from the attacker that sends half a request head, then waits."""
    raw = socket.create_connection(("127.0.0.1", served.server.port), timeout=5,
                                   source_address=(ATTACKER, 0))
    conn = _context(served).wrap_socket(raw, server_hostname="localhost")
    conn.sendall(b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: x\r\n")
    return conn


def closed_within(conn: ssl.SSLSocket, seconds: float) -> bool:
    conn.settimeout(seconds)
    try:
        return conn.recv(1) == b""
    except TimeoutError:
        return False
    except (ssl.SSLError, OSError):
        return True


@pytest.fixture
def limited(pki_dir: Path, tmp_path: Path) -> Iterator[Served]:
    def small(smdp: object) -> None:
        smdp.max_sessions = 50  # type: ignore[attr-defined]

    with served_smdp(pki_dir, tmp_path / "smdp", configure=small,
                     limits=Limits(max_per_address=8, request_timeout=1.0)) as s:
        yield s


def test_a_full_session_table_does_not_refuse_a_real_download(
        limited: Served, pki_dir: Path) -> None:
    assert flood(limited, _initiate_body(pki_dir, limited), 200) == 200
    assert limited.smdp.sessions.pending <= 50
    real_download(limited, pki_dir, EIDS[0])


def test_slow_senders_are_cut_off(limited: Served, pki_dir: Path) -> None:
    started = time.monotonic()
    slow = [slow_connection(limited) for _ in range(4)]
    silent = socket.create_connection(("127.0.0.1", limited.server.port), timeout=5,
                                      source_address=(ATTACKER, 0))  # never says hello
    try:
        silent.settimeout(5.0)
        assert silent.recv(1) == b""
        assert all(closed_within(c, 5.0) for c in slow)
        assert time.monotonic() - started < 4.0
        guard = limited.server.guard
        assert guard is not None and guard.timed_out >= 4
    finally:
        silent.close()
        for c in slow:
            c.close()
    real_download(limited, pki_dir, EIDS[0])


def test_connections_from_one_address_are_bounded(pki_dir: Path, tmp_path: Path) -> None:
    with served_smdp(pki_dir, tmp_path / "smdp",
                     limits=Limits(max_per_address=8, request_timeout=30.0)) as served:
        held = [slow_connection(served) for _ in range(12)]
        try:
            refused = sum(closed_within(c, 0.2) for c in held)
            assert refused == 4  # 8 per address
            real_download(served, pki_dir, EIDS[1])  # another address still gets in
        finally:
            for c in held:
                c.close()


@pytest.mark.slow
def test_ten_thousand_initiations_over_https_do_not_stop_a_download(
        pki_dir: Path, tmp_path: Path) -> None:
    with served_smdp(pki_dir, tmp_path / "smdp") as served:
        opened = flood(served, _initiate_body(pki_dir, served), 10_000)
        assert opened == 10_000
        assert served.smdp.sessions.pending <= served.smdp.sessions.max_pending_per_client
        real_download(served, pki_dir, EIDS[0])


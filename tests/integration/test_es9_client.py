"""The LPA's ES9+ client over HTTPS: TLS verification, status handling, hostile responses,
the LPA's own checks, and delivering pending notifications."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lpa_emulator import pki
from lpa_emulator.smdp.orders import OrderState
from mps_esim.lpa.download import (
    DownloadError,
    ProfileDownloader,
    Stage,
    process_notifications,
)
from mps_esim.lpa.es9 import (
    MAX_RESPONSE,
    AuthenticateClientResponse,
    Es9Client,
    Es9FunctionError,
    Es9ProtocolError,
    Es9TransportError,
    InitiateAuthenticationResponse,
    split_address,
)
from mps_esim.lpa.es10 import Es10Client
from mps_esim.sgp22 import rsp
from mps_wire.identifiers import make_eid
from tests.rsp_support import (
    IsdrChannel,
    Served,
    card_for,
    es10b,
    new_subscription,
    served_smdp,
)

EIDS = [make_eid(f"8904903200000000000000000{n:05d}") for n in range(100, 103)]


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=EIDS)
    return root


@pytest.fixture
def served(pki_dir: Path, tmp_path: Path) -> Iterator[Served]:
    with served_smdp(pki_dir, tmp_path / "smdp") as s:
        yield s


def challenge_and_info(pki_dir: Path) -> tuple[bytes, bytes]:
    card = es10b(card_for(pki_dir, EIDS[0]))
    return rsp.decode_euicc_challenge(card.get_euicc_challenge()), card.get_euicc_info1()


def test_initiate_authentication_over_https(served: Served, pki_dir: Path) -> None:
    challenge, info1 = challenge_and_info(pki_dir)
    with served.client() as client:
        answer = client.initiate_authentication(served.address, challenge, info1)
        first = client._conn
        assert len(answer.transaction_id) == 16
        assert answer.server_signature1[:3] == b"\x5f\x37\x40"
        assert answer.ci_pkid[:2] == b"\x04\x14"
        assert rsp.ServerSigned1.decode(answer.server_signed1).euicc_challenge == challenge
        client.initiate_authentication(served.address, challenge, info1)
        assert client._conn is first  # one kept-alive connection


def test_function_errors_carry_the_status(served: Served, pki_dir: Path) -> None:
    challenge, info1 = challenge_and_info(pki_dir)
    with served.client() as client, pytest.raises(Es9FunctionError) as info:
        client.initiate_authentication("elsewhere.example", challenge, info1)
    assert (info.value.subject, info.value.reason) == ("8.8.1", "3.8")
    assert info.value.function == "initiateAuthentication"


def test_unknown_ca_is_refused(served: Served, tmp_path: Path, pki_dir: Path) -> None:
    other = pki.init_pki(tmp_path / "other", eids=[EIDS[0]])
    challenge, info1 = challenge_and_info(pki_dir)
    client = Es9Client(served.address, ca_file=other.directory / pki.CI_CERT)
    with pytest.raises(Es9TransportError, match="does not verify"):
        client.initiate_authentication(served.address, challenge, info1)


def test_system_store_does_not_know_the_test_ci(served: Served, pki_dir: Path) -> None:
    challenge, info1 = challenge_and_info(pki_dir)
    with pytest.raises(Es9TransportError, match="does not verify"):
        Es9Client(served.address).initiate_authentication(served.address, challenge, info1)


def test_host_name_must_match_the_certificate(tmp_path: Path, pki_dir: Path) -> None:
    root = tmp_path / "named"
    pki.init_pki(root, eids=[EIDS[0]], tls_hosts=["smdp.other.example"])
    challenge, info1 = challenge_and_info(root)
    with (served_smdp(root, tmp_path / "d") as served,
          pytest.raises(Es9TransportError, match="does not verify")):
        served.client().initiate_authentication(served.address, challenge, info1)


def test_unreachable_server() -> None:
    with pytest.raises(Es9TransportError, match="cannot reach"):
        Es9Client("127.0.0.1:1", timeout=2).handle_notification(b"\x30\x00")


def test_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(Es9TransportError, match="CA file"):
        Es9Client("localhost", ca_file=tmp_path / "none.pem")


def test_split_address() -> None:
    assert split_address("smdp.io") == ("smdp.io", 443)
    assert split_address("smdp.io:8443") == ("smdp.io", 8443)


# --- hostile responses ------------------------------------------------------------------------

Responder = Callable[[http.server.BaseHTTPRequestHandler], tuple[int, bytes]]


@pytest.fixture
def stub(pki_dir: Path) -> Iterator[Callable[[Responder], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(respond: Responder) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, body = respond(self)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki_dir / pki.TLS_CERT, pki_dir / pki.TLS_KEY)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return f"localhost:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _ok(**fields: Any) -> bytes:
    return json.dumps({"header": {"functionExecutionStatus": {"status": "Executed-Success"}},
                       **fields}).encode()


@pytest.mark.parametrize(("status", "body", "match"), [
    (200, b"not json", "not JSON"),
    (200, b"[1, 2]", "JSON object"),
    (200, b"{}", "functionExecutionStatus"),
    (500, b"oops", "HTTP 500"),
    (502, b"{}", "HTTP 502"),
    (200, _ok(transactionId="00"), "boundProfilePackage"),
    (200, _ok(transactionId="zz", boundProfilePackage="AA=="), "transactionId"),
    (200, _ok(transactionId="11", boundProfilePackage="AA=="), "another transaction"),
    (200, _ok(transactionId="00", boundProfilePackage="###"), "base64"),
    (200, _ok(transactionId="00", boundProfilePackage=""), "boundProfilePackage"),
    (200, b" " * (MAX_RESPONSE + 5), "longer"),
])
def test_hostile_responses(stub: Callable[[Responder], str], pki_dir: Path, status: int,
                           body: bytes, match: str) -> None:
    address = stub(lambda _h: (status, body))
    client = Es9Client(address, ca_file=pki_dir / pki.CI_CERT)
    with pytest.raises(Es9ProtocolError, match=match):
        client.get_bound_profile_package(b"\x00", b"\xbf\x21\x00")


def test_failed_without_status_code_data(stub: Callable[[Responder], str], pki_dir: Path) -> None:
    address = stub(lambda _h: (200, json.dumps(
        {"header": {"functionExecutionStatus": {"status": "Failed"}}}).encode()))
    with pytest.raises(Es9FunctionError, match=r"\?/\?"):
        Es9Client(address, ca_file=pki_dir / pki.CI_CERT).cancel_session(b"\x01", b"\x30\x00")


def test_request_carries_the_admin_protocol(stub: Callable[[Responder], str],
                                            pki_dir: Path) -> None:
    seen: list[tuple[str, str, str]] = []

    def record(handler: http.server.BaseHTTPRequestHandler) -> tuple[int, bytes]:
        seen.append((handler.path, handler.headers["X-Admin-Protocol"],
                     handler.headers["Content-Type"]))
        return 204, b""

    address = stub(record)
    Es9Client(address, ca_file=pki_dir / pki.CI_CERT).handle_notification(b"\x30\x00")
    assert seen == [("/gsma/rsp2/es9plus/handleNotification", "gsma/rsp/v2.2.0",
                     "application/json;charset=UTF-8")]


# --- the LPA's checks and notifications ---------------------------------------------------------

class Redirect:
    """An Es9 that asks the real server under its own name whatever address the LPA used."""

    def __init__(self, inner: Es9Client, real: str) -> None:
        self.inner, self.real = inner, real

    def initiate_authentication(self, address: str, challenge: bytes, info1: bytes
                                ) -> InitiateAuthenticationResponse:
        return self.inner.initiate_authentication(self.real, challenge, info1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_lpa_refuses_a_server_signing_another_address(served: Served, pki_dir: Path) -> None:
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    card = card_for(pki_dir, EIDS[1])
    downloader = ProfileDownloader(es10b(card),
                                   lambda _a: Redirect(served.client(), served.address))
    with pytest.raises(DownloadError, match="signed address") as info:
        downloader.download("smdp.expected.example", order.matching_id)
    assert info.value.stage is Stage.INITIATE


class LosesNotifications:
    def __init__(self, inner: Es9Client) -> None:
        self.inner = inner

    def handle_notification(self, _der: bytes) -> None:
        raise Es9TransportError("network down")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def authenticate_client(self, txid: bytes, response: bytes) -> AuthenticateClientResponse:
        return self.inner.authenticate_client(txid, response)


def test_pending_notifications_are_kept_until_delivered(served: Served, pki_dir: Path) -> None:
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    card = card_for(pki_dir, EIDS[2])
    downloader = ProfileDownloader(es10b(card),
                                   lambda _a: LosesNotifications(served.client()))
    result = downloader.download(served.address, order.matching_id)
    assert not result.notification_sent
    assert len(card.state.notifications) == 1
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.DOWNLOADED
    # Enabling the profile adds its signed notification for the same SM-DP+.
    Es10Client(IsdrChannel(card)).enable_profile(iccid=iccid)

    # Delivery fails again: nothing is removed.
    failed = process_notifications(es10b(card), lambda _a: LosesNotifications(served.client()))
    assert [o.sent for o in failed] == [False, False] and len(card.state.notifications) == 2

    outcomes = process_notifications(es10b(card), served.client)
    assert [(o.operation, o.sent, o.removed) for o in outcomes] == [
        ("install", True, True), ("enable", True, True)]
    assert card.state.notifications == []
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED
    assert served.reports.items[-1].iccid == iccid


def test_base64_bodies_are_standard(served: Served, pki_dir: Path) -> None:
    challenge, info1 = challenge_and_info(pki_dir)
    answer = served.client().initiate_authentication(served.address, challenge, info1)
    # Round trip through the standard alphabet with padding, as other LPAs send it.
    assert base64.b64decode(base64.b64encode(answer.server_certificate)) == (
        answer.server_certificate)

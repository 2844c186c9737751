"""The eIM's JSON edge (ESipa, SGP.32 6.1/6.3 with the JSON binding of SGP.22 6.5) under
hostile bodies: every function answers a body of its own shape or a Failed status with a
status code, never an internal error, and nothing stored changes for a request it refuses.
Over real HTTPS, malformed requests (not JSON, not an object, too large, wrong content
type, unknown function, wrong method) get their HTTP status and a JSON body."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpa_emulator import pki
from lpa_emulator.eim.http import MAX_BODY, EimHttpServer
from lpa_emulator.eim.service import Eim
from lpa_emulator.eim.store import EimStore, EimStoreError
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.http import tls_context
from mps_esim.sgp32 import esipa
from mps_wire.identifiers import make_eid

EID = make_eid("890490320000000000000000003131")
KEYS = ("eidValue", "notifyStateChange", "notificationList", "pendingNotification",
        *esipa.RESULT_KINDS, *esipa.PACKAGE_KINDS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20)
    | st.sampled_from([EID, "", base64.b64encode(b"\xbf\x51\x00").decode(), "AAAA", "!!"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8)
bodies = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values,
                         max_size=5)


@pytest.fixture(scope="module")
def eim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Eim]:
    store = EimStore(tmp_path_factory.mktemp("eim") / "eim.db")
    service = Eim.create(store, "eim.fuzz", "localhost")
    service.associate(EID)
    yield service
    store.close()


def _snapshot(eim: Eim) -> Any:
    return [(p.id, p.state, p.counter) for p in eim.store.packages()], [
        (e.eid, e.counter) for e in eim.store.euiccs()]


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(function=st.sampled_from(("provideEimPackageResult", "handleNotification",
                                 "getEimPackage", "initiateAuthentication")), body=bodies)
def test_every_body_gets_an_answer_of_the_function(eim: Eim, function: str,
                                                   body: dict[str, Any]) -> None:
    before = _snapshot(eim)
    try:
        answer = eim.call(function, json.loads(json.dumps(body)))
    except (Es9StatusError, EimStoreError):
        assert _snapshot(eim) == before
        return
    assert answer is None or isinstance(answer, dict)
    if function == "provideEimPackageResult" and answer is not None:
        assert set(answer) <= {"eimAcknowledgements", "provideEimPackageResultError"}


@pytest.fixture(scope="module")
def served(eim: Eim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, euicc_count=0)
    server = EimHttpServer(eim, ssl_context=tls_context(root / pki.TLS_CERT,
                                                        root / pki.TLS_KEY))
    port = server.start()
    yield port, root / pki.CI_CERT
    server.stop()


@pytest.mark.parametrize(("method", "path", "ctype", "body", "status"), [
    ("POST", "getEimPackage", "application/json", b"{not json", 200),
    ("POST", "getEimPackage", "no protocol header", b"{}", 400),
    ("POST", "getEimPackage", "application/json", b"[1, 2]", 200),
    ("POST", "getEimPackage", "application/json", b"[" * 100_000, 413),
    ("POST", "getEimPackage", "text/plain", b"{}", 415),
    ("POST", "noSuchFunction", "application/json", b"{}", 404),
    ("GET", "getEimPackage", "application/json", b"", 405),
    ("POST", "getEimPackage", "application/json", b'{"eidValue": 7}', 200),
])
def test_malformed_requests_over_https(served: tuple[int, Path], method: str, path: str,
                                       ctype: str, body: bytes, status: int) -> None:
    port, ca = served
    conn = http.client.HTTPSConnection("localhost", port,
                                       context=ssl.create_default_context(cafile=str(ca)),
                                       timeout=10)
    try:
        headers = {"Content-Type": ctype}
        if ctype != "no protocol header":
            headers["X-Admin-Protocol"] = "gsma/rsp/v2.2.0"
        conn.request(method, esipa.BASE_PATH + path, body, headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == status
    assert len(body) <= MAX_BODY or status == 413
    header = answer.get("header", {}).get("functionExecutionStatus", {})
    if "eidValue" in body.decode(errors="replace"):
        assert answer["eimPackageError"] == 3  # invalidEid
    else:
        assert header["status"] == "Failed" and header["statusCodeData"]["subjectCode"]


RELAY_KEYS = ("smdpAddress", "transactionId", "euiccChallenge", "euiccInfo1",
              "authenticateServerResponse", "prepareDownloadResponse",
              "cancelSessionResponse", "pendingNotification")
NOWHERE = "127.0.0.1:1"  # the one SM-DP+ the relay may reach; nothing listens there
relay_bodies = st.dictionaries(st.sampled_from(RELAY_KEYS) | st.text(max_size=8),
                               json_values | st.just(NOWHERE), max_size=5)


@pytest.fixture(scope="module")
def relaying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Eim]:
    from lpa_emulator.eim.relay import Es9Relay

    store = EimStore(tmp_path_factory.mktemp("relay") / "eim.db")
    service = Eim.create(store, "eim.relay.fuzz", "localhost")
    service.relay = Es9Relay([NOWHERE], timeout=2)
    yield service
    store.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(function=st.sampled_from(("initiateAuthentication", "authenticateClient",
                                 "getBoundProfilePackage", "cancelSession",
                                 "handleNotification")), body=relay_bodies)
def test_relayed_functions_refuse_with_a_status(relaying: Eim, function: str,
                                                body: dict[str, Any]) -> None:
    """SGP.32 3.2.3 indirect download: whatever the body, the relay answers with an SGP.22
    status (an address it does not serve, an unknown session, an SM-DP+ out of reach) and
    never calls anywhere but its configured SM-DP+."""
    try:
        answer = relaying.call(function, json.loads(json.dumps(body)))
    except Es9StatusError as exc:
        assert exc.status.subject and exc.status.reason
        return
    # Only a notification not addressed to the relayed SM-DP+ is simply kept.
    assert function == "handleNotification" and answer is None
    assert relaying.relay is not None and not relaying.relay.forwarded

"""The ES9+ HTTPS layer: headers, methods, sizes, malformed bodies, and a fuzz of bodies.

Whatever arrives, the answer is JSON with an SGP.22 status (HTTP 200 Failed for function
errors, 4xx for HTTP-level ones), never a 500 or a traceback.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpa_emulator import pki
from lpa_emulator.smdp.http import ADMIN_PROTOCOL, MAX_BODY
from lpa_emulator.smdp.service import FUNCTIONS
from mps_wire.identifiers import make_eid
from tests.rsp_support import Served, served_smdp

EID = make_eid("890490320000000000000000007777")
HEADERS = {"Content-Type": "application/json", "X-Admin-Protocol": ADMIN_PROTOCOL}


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ERRORS = _Errors()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("http")
    pki.init_pki(root / "pki", eids=[EID])
    logger = logging.getLogger("lpa_emulator")
    logger.addHandler(ERRORS)
    try:
        with served_smdp(root / "pki", root / "data") as s:
            yield s
    finally:
        logger.removeHandler(ERRORS)


class Http:
    def __init__(self, served: Served) -> None:
        context = ssl.create_default_context(cafile=str(served.ca))
        self.conn = http.client.HTTPSConnection("localhost", served.server.port,
                                                context=context, timeout=10)

    def send(self, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        self.conn.request(method, path, body, headers if headers is not None else HEADERS)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def es9(self, function: str, body: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
        status, _headers, data = self.send("POST", f"/gsma/rsp2/es9plus/{function}",
                                          json.dumps(body).encode(), **kw)
        return status, (json.loads(data) if data else {})


@pytest.fixture
def client(served: Served) -> Iterator[Http]:
    h = Http(served)
    yield h
    h.conn.close()


def status_of(answer: dict[str, Any]) -> tuple[str, str, str]:
    fes = answer["header"]["functionExecutionStatus"]
    data = fes.get("statusCodeData", {})
    return fes["status"], data.get("subjectCode", ""), data.get("reasonCode", "")


def test_function_failure_is_http_200_failed(client: Http) -> None:
    status, answer = client.es9("initiateAuthentication", {"smdpAddress": "x"})
    assert status == 200
    assert status_of(answer) == ("Failed", "1.2", "2.2")


def test_response_headers(client: Http, served: Served) -> None:
    _status, headers, _ = client.send("POST", "/gsma/rsp2/es9plus/cancelSession", b"{}")
    assert headers["x-admin-protocol"] == ADMIN_PROTOCOL
    assert headers["content-type"].startswith("application/json")


def test_missing_admin_protocol(client: Http) -> None:
    status, _headers, data = client.send("POST", "/gsma/rsp2/es9plus/cancelSession", b"{}",
                                        {"Content-Type": "application/json"})
    assert status == 400
    assert status_of(json.loads(data))[1:] == ("1.2", "3.1")


def test_wrong_content_type(client: Http) -> None:
    status, _h, data = client.send("POST", "/gsma/rsp2/es9plus/cancelSession", b"{}",
                                   {"X-Admin-Protocol": ADMIN_PROTOCOL,
                                    "Content-Type": "text/plain"})
    assert status == 415 and status_of(json.loads(data))[0] == "Failed"


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/gsma/rsp2/es9plus/initiateAuthentication", 405),
    ("PUT", "/gsma/rsp2/es9plus/cancelSession", 405),
    ("POST", "/gsma/rsp2/es9plus/deleteEverything", 404),
    ("POST", "/", 404),
    ("GET", "/gsma/rsp2/es9plus/", 404),
])
def test_methods_and_paths(client: Http, method: str, path: str, expected: int) -> None:
    status, _h, data = client.send(method, path, b"{}")
    assert status == expected
    assert status_of(json.loads(data))[0] == "Failed"


def test_body_too_large(client: Http) -> None:
    body = json.dumps({"pendingNotification": "A" * (MAX_BODY + 10)}).encode()
    status, _h, data = client.send("POST", "/gsma/rsp2/es9plus/handleNotification", body)
    assert status == 413 and status_of(json.loads(data))[0] == "Failed"


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 5000,
                                  b'{"a": ' * 3000])
def test_not_a_json_object(client: Http, body: bytes) -> None:
    status, _h, data = client.send("POST", "/gsma/rsp2/es9plus/authenticateClient", body)
    assert status == 200
    assert status_of(json.loads(data))[1:] == ("1.2", "2.1")


@pytest.mark.parametrize(("function", "body", "code"), [
    ("authenticateClient", {"transactionId": "zz", "authenticateServerResponse": "AA=="},
     ("1.2", "2.1")),
    ("authenticateClient", {"transactionId": "00" * 17, "authenticateServerResponse": "AA=="},
     ("1.2", "2.1")),
    ("authenticateClient", {"transactionId": "0011", "authenticateServerResponse": "@@@"},
     ("1.2", "2.1")),
    ("authenticateClient", {"transactionId": "0011",
                            "authenticateServerResponse": base64.b64encode(b"\xbf\x38\x05")
                            .decode()}, ("1.2", "2.1")),
    ("getBoundProfilePackage", {"transactionId": "0011",
                                "prepareDownloadResponse": base64.b64encode(
                                    bytes.fromhex("bf2103a10100")).decode()}, ("1.2", "2.1")),
    ("getBoundProfilePackage", {"transactionId": "0011"}, ("1.2", "2.2")),
    ("handleNotification", {"pendingNotification": base64.b64encode(b"\x30\x00").decode()},
     ("1.2", "2.1")),
    ("cancelSession", {"transactionId": "0011", "cancelSessionResponse":
                       base64.b64encode(bytes.fromhex("bf4103810105")).decode()},
     ("8.10.1", "3.9")),
    ("initiateAuthentication", {"smdpAddress": ["x"], "euiccChallenge": "", "euiccInfo1": ""},
     ("1.2", "2.1")),
])
def test_malformed_fields(client: Http, function: str, body: dict[str, Any],
                          code: tuple[str, str]) -> None:
    status, answer = client.es9(function, body)
    assert status == 200
    assert status_of(answer) == ("Failed", *code)


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
_fields = st.sampled_from(["smdpAddress", "euiccChallenge", "euiccInfo1", "transactionId",
                           "authenticateServerResponse", "prepareDownloadResponse",
                           "pendingNotification", "cancelSessionResponse", "header"])
_der_like = st.binary(max_size=200).map(
    lambda b: base64.b64encode(bytes.fromhex("bf38") + bytes((len(b) & 0x7F,)) + b).decode())


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(function=st.sampled_from(FUNCTIONS),
       body=st.dictionaries(_fields, _json_value | _der_like, max_size=6))
def test_fuzzed_bodies_never_break_the_server(client: Http, function: str,
                                              body: dict[str, Any]) -> None:
    status, answer = client.es9(function, body)
    assert status in (200, 204), answer
    if status == 200:
        assert status_of(answer)[0] == "Failed"  # no fuzzed body is a valid request


def test_server_still_serves_after_the_fuzz(served: Served, client: Http) -> None:
    status, answer = client.es9("initiateAuthentication", {"smdpAddress": served.address})
    assert status == 200 and status_of(answer)[1:] == ("1.2", "2.2")
    assert [r.getMessage() for r in ERRORS.records] == []  # no request hit an internal error


def test_tls_only(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        conn.request("POST", "/gsma/rsp2/es9plus/cancelSession", b"{}", HEADERS)
        conn.getresponse().read()
    conn.close()


def test_bound_to_loopback(served: Served) -> None:
    assert served.server.host == "127.0.0.1"
    assert Path(served.ca).is_file()

"""Every server-side check of the SM-DP+, one refusal at a time, with its SGP.22 status.

The ES9+ functions are called directly (JSON bodies, no HTTP) with messages built here,
so each test changes exactly one thing a real eUICC would have got right.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lpa_emulator import pki
from lpa_emulator.euicc.download import DownloadSession
from lpa_emulator.euicc.identity import EuiccIdentity
from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.orders import OrderState, OrderStore
from lpa_emulator.smdp.service import Smdp, SmdpCredentials
from mps_esim import sgp22
from mps_esim.crypto import confirmation, ecka, signatures
from mps_esim.lpa.download import default_device_info
from mps_esim.sgp22 import rsp
from mps_wire.identifiers import make_eid
from tests.rsp_support import Reports, euicc_info1, euicc_info2, identity, new_subscription

ADDRESS = "smdp.test"
EID = make_eid("890490320000000000000000000001")
EID2 = make_eid("890490320000000000000000000002")
FOREIGN_RANGE_EID = make_eid("890440000000000000000000000003")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=[EID, EID2])
    return root


@dataclass
class Env:
    smdp: Smdp
    store: OrderStore
    reports: Reports
    pki_dir: Path
    now: list[float]


@pytest.fixture
def env(pki_dir: Path, tmp_path: Path) -> Iterator[Env]:
    store = OrderStore.in_dir(tmp_path)
    reports = Reports()
    now = [1_000_000.0]
    smdp = Smdp(address=ADDRESS, credentials=SmdpCredentials.from_dir(pki_dir), orders=store,
                reporter=reports, clock=lambda: now[0])
    yield Env(smdp, store, reports, pki_dir, now)
    store.close()


def refused(status: st.StatusCode) -> pytest.RaisesContext[Es9StatusError]:
    return pytest.raises(Es9StatusError, match=f"^{status.subject}/{status.reason}")


class Flow:
    """An LPA plus eUICC walking the ES9+ functions by hand."""

    def __init__(self, env: Env, ident: EuiccIdentity, matching_id: str | None) -> None:
        self.env = env
        self.euicc = DownloadSession(ident, ident.eid or EID)
        self.identity = ident
        self.matching_id = matching_id
        self.challenge = rsp.decode_euicc_challenge(self.euicc.get_challenge())
        self.txid = b""
        self.auth_response = b""

    def initiate(self, **override: Any) -> dict[str, Any]:
        body = {"smdpAddress": ADDRESS, "euiccChallenge": b64(self.challenge),
                "euiccInfo1": b64(euicc_info1(self.identity)), **override}
        answer = self.env.smdp.initiate_authentication(body)
        self.txid = bytes.fromhex(answer["transactionId"])
        return answer

    def authenticate_server(self, answer: dict[str, Any]) -> bytes:
        request = rsp.AuthenticateServerRequest(
            unb64(answer["serverSigned1"]),
            rsp.ServerSigned1 and _sig(unb64(answer["serverSignature1"])),
            unb64(answer["euiccCiPKIdToBeUsed"])[2:], unb64(answer["serverCertificate"]),
            rsp.CtxParams1(default_device_info(), self.matching_id)).encode()
        # The card has this SM-DP+ as its default (a download without a matching id).
        self.auth_response = self.euicc.authenticate_server(
            request, euicc_info2=euicc_info2(self.identity), default_smdp_address=ADDRESS)
        return self.auth_response

    def authenticate_client(self, response: bytes | None = None,
                            txid: bytes | None = None) -> dict[str, Any]:
        return self.env.smdp.authenticate_client({
            "transactionId": (txid or self.txid).hex(),
            "authenticateServerResponse": b64(response or self.auth_response)})

    def prepare(self, answer: dict[str, Any], hash_cc: bytes | None = None) -> bytes:
        request = rsp.PrepareDownloadRequest(
            unb64(answer["smdpSigned2"]), _sig(unb64(answer["smdpSignature2"])),
            unb64(answer["smdpCertificate"]), hash_cc).encode()
        return self.euicc.prepare_download(request)

    def get_bpp(self, prepare_response: bytes) -> dict[str, Any]:
        return self.env.smdp.get_bound_profile_package({
            "transactionId": self.txid.hex(), "prepareDownloadResponse": b64(prepare_response)})

    def through_authentication(self) -> dict[str, Any]:
        self.authenticate_server(self.initiate())
        return self.authenticate_client()


def _sig(tlv_bytes: bytes) -> bytes:
    """The raw signature of a 5F37 object."""
    assert tlv_bytes[:3] == b"\x5f\x37\x40"
    return tlv_bytes[3:]


def order(env: Env, **kwargs: Any) -> str:
    iccid, imsi = new_subscription()
    return env.store.add(iccid=iccid, imsi=imsi, **kwargs).matching_id


def euicc(env: Env, eid: str = EID) -> EuiccIdentity:
    return identity(env.pki_dir, eid)


def resign(ident: EuiccIdentity, signed1: rsp.EuiccSigned1) -> bytes:
    """An AuthenticateServerResponse for ``signed1``, signed with the real eUICC key."""
    body = signed1.encode()
    return rsp.AuthenticateResponseOk(body, ident.sign(body), ident.certificate_der,
                                      ident.eum_certificate_der).encode()


# --- initiateAuthentication -------------------------------------------------------------------

def test_happy_path_reference(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    answer = flow.through_authentication()
    bpp = flow.get_bpp(flow.prepare(answer))
    assert rsp.BoundProfilePackage.decode(unb64(bpp["boundProfilePackage"]))


def test_wrong_smdp_address(env: Env) -> None:
    with refused(st.INVALID_ADDRESS):
        Flow(env, euicc(env), "X").initiate(smdpAddress="other.example")


def test_address_compares_case_insensitively(env: Env) -> None:
    Flow(env, euicc(env), "X").initiate(smdpAddress=ADDRESS.upper())


def test_unsupported_svn(env: Env) -> None:
    ident = euicc(env)
    info1 = sgp22.EuiccInfo1("3.0.0", ident.ci_pkids, ident.signing_pkids)
    with refused(st.UNSUPPORTED_VERSION):
        Flow(env, ident, "X").initiate(euiccInfo1=b64(info1.encode()))


def test_unknown_ci_for_signing(env: Env) -> None:
    ident = euicc(env)
    info1 = sgp22.EuiccInfo1(rsp.SVN_2_2_0, ident.ci_pkids, (bytes(20),))
    with refused(st.UNSUPPORTED_SECURITY):
        Flow(env, ident, "X").initiate(euiccInfo1=b64(info1.encode()))


def test_eUICC_cannot_verify_dpauth(env: Env) -> None:
    ident = euicc(env)
    info1 = sgp22.EuiccInfo1(rsp.SVN_2_2_0, (bytes(20),), ident.signing_pkids)
    with refused(st.NO_DPAUTH_FOR_CI):
        Flow(env, ident, "X").initiate(euiccInfo1=b64(info1.encode()))


@pytest.mark.parametrize(("field", "value", "status"), [
    ("euiccChallenge", b64(bytes(15)), st.MALFORMED),
    ("euiccChallenge", "not base64!", st.MALFORMED),
    ("euiccInfo1", b64(b"\xbf\x20\x01"), st.MALFORMED),
    ("euiccInfo1", b64(bytes.fromhex("bf2000")), st.MALFORMED),
    ("smdpAddress", 42, st.MALFORMED),
    ("smdpAddress", "x" * 300, st.MALFORMED),
])
def test_malformed_initiate(env: Env, field: str, value: Any, status: st.StatusCode) -> None:
    with refused(status):
        Flow(env, euicc(env), "X").initiate(**{field: value})


def test_missing_field(env: Env) -> None:
    with refused(st.MISSING_ELEMENT):
        env.smdp.initiate_authentication({"smdpAddress": ADDRESS})


# --- authenticateClient -----------------------------------------------------------------------

def test_unknown_transaction(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    flow.authenticate_server(flow.initiate())
    with refused(st.UNKNOWN_TRANSACTION):
        flow.authenticate_client(txid=bytes(16))


def test_signed_transaction_must_be_the_outer_one(env: Env) -> None:
    first = Flow(env, euicc(env), order(env))
    first.authenticate_server(first.initiate())
    second = Flow(env, euicc(env), order(env))
    second.initiate()
    with refused(st.UNKNOWN_TRANSACTION):
        first.authenticate_client(txid=second.txid)


def test_replayed_authenticate_client(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    flow.through_authentication()
    with refused(st.UNKNOWN_TRANSACTION):
        flow.authenticate_client()


def test_bad_euicc_signature(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    flow.authenticate_server(flow.initiate())
    ok = rsp.decode_authenticate_server_response(flow.auth_response)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    forged = bytearray(ok.euicc_signature1)
    forged[5] ^= 1
    bad = rsp.AuthenticateResponseOk(ok.euicc_signed1, bytes(forged), ok.euicc_certificate,
                                     ok.eum_certificate).encode()
    with refused(st.EUICC_SIGNATURE):
        flow.authenticate_client(bad)


def test_wrong_server_challenge(env: Env) -> None:
    ident = euicc(env)
    flow = Flow(env, ident, order(env))
    flow.authenticate_server(flow.initiate())
    ok = rsp.decode_authenticate_server_response(flow.auth_response)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    signed = ok.signed
    other = rsp.EuiccSigned1(signed.transaction_id, signed.server_address, bytes(16),
                             signed.euicc_info2, signed.ctx_params1)
    with refused(st.EUICC_SIGNATURE):
        flow.authenticate_client(resign(ident, other))


def test_wrong_server_address_in_euicc_signed1(env: Env) -> None:
    ident = euicc(env)
    flow = Flow(env, ident, order(env))
    flow.authenticate_server(flow.initiate())
    ok = rsp.decode_authenticate_server_response(flow.auth_response)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    signed = ok.signed
    other = rsp.EuiccSigned1(signed.transaction_id, "evil.example", signed.server_challenge,
                             signed.euicc_info2, signed.ctx_params1)
    with refused(st.EUICC_SIGNATURE):
        flow.authenticate_client(resign(ident, other))


def test_eid_outside_the_eum_range(env: Env) -> None:
    eum = pki.Credential.load(env.pki_dir / pki.EUM_CERT, env.pki_dir / pki.EUM_KEY)
    stray = pki.make_euicc(eum, FOREIGN_RANGE_EID)
    ident = EuiccIdentity(stray.cert, stray.key, eum.cert, euicc(env).ci_certificates)
    flow = Flow(env, ident, order(env))
    with refused(st.EUICC_INVALID):
        flow.through_authentication()


def test_euicc_of_an_unknown_ci(env: Env, tmp_path: Path) -> None:
    other = pki.init_pki(tmp_path / "other", eids=[EID])
    foreign = identity(other.directory, EID)
    flow = Flow(env, euicc(env), order(env))
    flow.authenticate_server(flow.initiate())
    ok = rsp.decode_authenticate_server_response(flow.auth_response)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    # The same signed data, but from a card whose certificates chain to another CI.
    with refused(st.UNKNOWN_CI):
        flow.authenticate_client(resign(foreign, ok.signed))


def test_forged_eum_certificate(env: Env) -> None:
    ident = euicc(env)
    # CERT.DPauth in place of CERT.EUM: right CI, wrong role.
    dpauth = pki.load_certificate(env.pki_dir / pki.DPAUTH_CERT)
    fake = EuiccIdentity(ident.certificate, ident.private_key, dpauth, ident.ci_certificates)
    with refused(st.EUM_INVALID):
        Flow(env, fake, order(env)).through_authentication()


@pytest.mark.parametrize("matching_id", [None, "", "NO-SUCH-ORDER"])
def test_matching_id_refused(env: Env, matching_id: str | None) -> None:
    with refused(st.MATCHING_ID_REFUSED):
        Flow(env, euicc(env), matching_id).through_authentication()


def test_order_bound_to_another_eid(env: Env) -> None:
    mid = order(env, eid=EID2)
    with refused(st.EID_REFUSED):
        Flow(env, euicc(env, EID), mid).through_authentication()
    Flow(env, euicc(env, EID2), mid).through_authentication()


def test_order_held_by_another_euicc(env: Env) -> None:
    mid = order(env)
    Flow(env, euicc(env, EID), mid).through_authentication()
    with refused(st.MATCHING_ID_REFUSED):
        Flow(env, euicc(env, EID2), mid).through_authentication()
    # The same eUICC may start over (its first session died with the card's).
    Flow(env, euicc(env, EID), mid).through_authentication()


def test_expired_order(env: Env) -> None:
    mid = order(env, ttl=60)
    env.now[0] = 1e12
    with refused(st.ORDER_EXPIRED):
        Flow(env, euicc(env), mid).through_authentication()


def test_installed_order_is_not_released_again(env: Env) -> None:
    mid = order(env)
    env.store.claim(mid, EID, "AA")
    env.store.mark_downloaded(mid, "AA")
    env.store.installed(mid, "AA", EID)
    with refused(st.PROFILE_NOT_RELEASED):
        Flow(env, euicc(env), mid).through_authentication()


def test_attempts_are_limited(env: Env) -> None:
    mid = order(env, max_attempts=2)
    for _ in range(2):
        flow = Flow(env, euicc(env), mid)
        flow.get_bpp(flow.prepare(flow.through_authentication()))
    with refused(st.ORDER_RETRIES):
        Flow(env, euicc(env), mid).through_authentication()


def test_euicc_refusal_ends_the_session(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    flow.initiate()
    error = rsp.AuthenticateResponseError(flow.txid, 2).encode()
    with refused(st.EUICC_SIGNATURE):
        flow.authenticate_client(error)
    with refused(st.UNKNOWN_TRANSACTION):
        flow.authenticate_client(error)


# --- getBoundProfilePackage -------------------------------------------------------------------

def test_bad_euicc_signature2(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    answer = flow.through_authentication()
    ok = rsp.decode_prepare_download_response(flow.prepare(answer))
    assert isinstance(ok, rsp.PrepareDownloadResponseOk)
    forged = bytearray(ok.euicc_signature2)
    forged[0] ^= 0x40
    with refused(st.EUICC_SIGNATURE):
        flow.get_bpp(rsp.PrepareDownloadResponseOk(ok.euicc_signed2, bytes(forged)).encode())


def test_euicc_signed2_of_another_transaction(env: Env) -> None:
    ident = euicc(env)
    flow = Flow(env, ident, order(env))
    answer = flow.through_authentication()
    signed2 = rsp.EuiccSigned2(bytes(16), ecka.public_point(ecka.new_key())).encode()
    signature = signatures.sign(ident.private_key, signed2 + unb64(answer["smdpSignature2"]))
    with refused(st.UNKNOWN_TRANSACTION):
        flow.get_bpp(rsp.PrepareDownloadResponseOk(signed2, signature).encode())


def test_invalid_one_time_key(env: Env) -> None:
    ident = euicc(env)
    flow = Flow(env, ident, order(env))
    answer = flow.through_authentication()
    signed2 = rsp.EuiccSigned2(flow.txid, b"\x04" + bytes(64)).encode()
    signature = signatures.sign(ident.private_key, signed2 + unb64(answer["smdpSignature2"]))
    with refused(st.EUICC_SIGNATURE):
        flow.get_bpp(rsp.PrepareDownloadResponseOk(signed2, signature).encode())


def test_confirmation_code(env: Env) -> None:
    mid = order(env, confirmation_code="2468")
    flow = Flow(env, euicc(env), mid)
    answer = flow.through_authentication()
    assert rsp.SmdpSigned2.decode(unb64(answer["smdpSigned2"])).cc_required
    # The eUICC refuses to go on without a hashed code when one is required...
    refusal = rsp.decode_prepare_download_response(flow.prepare(answer))
    assert isinstance(refusal, rsp.PrepareDownloadResponseError)
    # ... and so does the server when the LPA leaves it out.
    flow = Flow(env, euicc(env), mid)
    answer = flow.through_authentication()
    fake = _without_hash(flow, answer)
    with refused(st.CC_MISSING):
        flow.get_bpp(fake)
    wrong = flow.prepare(answer, confirmation.confirmation_code_hash("1357", flow.txid))
    with refused(st.CC_REFUSED):
        flow.get_bpp(wrong)
    flow = Flow(env, euicc(env), mid)
    answer = flow.through_authentication()
    right = flow.prepare(answer, confirmation.confirmation_code_hash("2468", flow.txid))
    assert "boundProfilePackage" in flow.get_bpp(right)


def _without_hash(flow: Flow, answer: dict[str, Any]) -> bytes:
    """A PrepareDownload response without hashCc, signed by the real eUICC key."""
    signed2 = rsp.EuiccSigned2(flow.txid, ecka.public_point(ecka.new_key())).encode()
    signature = signatures.sign(flow.identity.private_key,
                                signed2 + unb64(answer["smdpSignature2"]))
    return rsp.PrepareDownloadResponseOk(signed2, signature).encode()


def test_confirmation_code_retries(env: Env) -> None:
    mid = order(env, confirmation_code="2468")
    for attempt in range(3):
        flow = Flow(env, euicc(env), mid)
        answer = flow.through_authentication()
        wrong = flow.prepare(answer, confirmation.confirmation_code_hash("0000", flow.txid))
        with refused(st.CC_RETRIES if attempt == 2 else st.CC_REFUSED):
            flow.get_bpp(wrong)
    found = env.store.get(mid)
    assert found is not None and found.state is OrderState.ERROR
    with refused(st.ORDER_RETRIES):
        Flow(env, euicc(env), mid).through_authentication()


def test_rebinding_with_another_key_is_refused(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    answer = flow.through_authentication()
    first = flow.prepare(answer)
    bpp = flow.get_bpp(first)
    assert flow.get_bpp(first) == bpp  # the same request gets the same package
    with refused(st.BPP_REBINDING):
        flow.get_bpp(_without_hash(flow, answer))


# --- handleNotification and cancelSession -----------------------------------------------------

def _installed(env: Env) -> tuple[Flow, str, bytes]:
    mid = order(env)
    flow = Flow(env, euicc(env), mid)
    bpp = unb64(flow.get_bpp(flow.prepare(flow.through_authentication()))["boundProfilePackage"])
    return flow, mid, bpp


class _Target:
    def __init__(self) -> None:
        self.results: list[bytes] = []

    def iccid_in_use(self, iccid: str) -> bool:
        return False

    def next_sequence_number(self) -> int:
        return 1

    def install(self, profile: Any, metadata: Any, result_for: Any) -> None:
        self.results.append(result_for(bytes.fromhex("A0000005591010FFFFFFFF8900001000")))

    def keep_notification(self, result: bytes) -> None:
        self.results.append(result)


def _load(flow: Flow, bpp: bytes) -> bytes:
    target = _Target()
    answer = b""
    for segment in rsp.BoundProfilePackage.decode(bpp).segments():
        answer = flow.euicc.load_segment(segment, target)
    return answer


def test_signed_installation_result_is_reported(env: Env) -> None:
    flow, mid, bpp = _installed(env)
    pir = _load(flow, bpp)
    assert env.smdp.handle_notification({"pendingNotification": b64(pir)}) is None
    found = env.store.get(mid)
    assert found is not None and found.state is OrderState.INSTALLED and found.eid == EID
    [report] = env.reports.items
    assert (report.eid, report.iccid, report.result) == (EID, found.iccid, "installed")
    assert report.pir == pir


def test_forged_installation_result_is_dropped(env: Env) -> None:
    flow, mid, bpp = _installed(env)
    pir = rsp.ProfileInstallationResult.decode(_load(flow, bpp))
    forged = rsp.ProfileInstallationResult(pir.data_der, bytes(64)).encode()
    env.smdp.handle_notification({"pendingNotification": b64(forged)})
    found = env.store.get(mid)
    assert found is not None and found.state is OrderState.DOWNLOADED
    assert env.reports.items == []
    # The genuine one still counts afterwards.
    env.smdp.handle_notification({"pendingNotification": b64(pir.encode())})
    assert env.reports.items[0].result == "installed"


def test_result_signed_by_another_euicc_is_dropped(env: Env) -> None:
    flow, _mid, bpp = _installed(env)
    pir = rsp.ProfileInstallationResult.decode(_load(flow, bpp))
    other = euicc(env, EID2)
    resigned = rsp.ProfileInstallationResult(
        pir.data_der, signatures.sign(other.private_key, pir.data_der)).encode()
    env.smdp.handle_notification({"pendingNotification": b64(resigned)})
    assert env.reports.items == []


def test_failed_installation_releases_the_order(env: Env) -> None:
    flow, mid, bpp = _installed(env)
    parts = rsp.BoundProfilePackage.decode(bpp)
    tampered = bytearray(parts.profile[0])
    tampered[10] ^= 0xFF
    bad = rsp.BoundProfilePackage(parts.initialise_secure_channel, parts.configure_isdp,
                                  parts.store_metadata, (bytes(tampered), *parts.profile[1:]),
                                  parts.replace_keys).encode()
    pir = _load(flow, bad)
    data = rsp.ProfileInstallationResult.decode(pir).data
    assert isinstance(data.result, rsp.InstallFailure)
    assert data.result.reason == rsp.ErrorReason.SCP03T_SECURITY_ERROR
    env.smdp.handle_notification({"pendingNotification": b64(pir)})
    found = env.store.get(mid)
    assert found is not None and found.state is OrderState.RELEASED and found.eid is None
    [report] = env.reports.items
    assert (report.result, report.reason) == ("failed", "scp03t_security_error")


def test_cancel_session(env: Env) -> None:
    mid = order(env)
    flow = Flow(env, euicc(env), mid)
    flow.through_authentication()
    response = flow.euicc.cancel_session(rsp.cancel_session_request(flow.txid, 1))
    assert env.smdp.cancel_session({"transactionId": flow.txid.hex(),
                                    "cancelSessionResponse": b64(response)}) == {}
    found = env.store.get(mid)
    assert found is not None and found.state is OrderState.RELEASED and found.txid is None
    with refused(st.UNKNOWN_TRANSACTION):
        env.smdp.cancel_session({"transactionId": flow.txid.hex(),
                                 "cancelSessionResponse": b64(response)})


def test_cancel_session_with_wrong_oid_or_signature(env: Env) -> None:
    ident = euicc(env)
    flow = Flow(env, ident, order(env))
    flow.through_authentication()
    signed = rsp.EuiccCancelSessionSigned(flow.txid, "2.999.99", 1).encode()
    wrong_oid = rsp.CancelSessionResponseOk(
        signed, signatures.sign(ident.private_key, signed)).encode()
    with refused(st.INVALID_OID):
        env.smdp.cancel_session({"transactionId": flow.txid.hex(),
                                 "cancelSessionResponse": b64(wrong_oid)})
    signed = rsp.EuiccCancelSessionSigned(flow.txid, pki.DEFAULT_SMDP_OID, 1).encode()
    forged = rsp.CancelSessionResponseOk(signed, bytes(64)).encode()
    with refused(st.EUICC_SIGNATURE):
        env.smdp.cancel_session({"transactionId": flow.txid.hex(),
                                 "cancelSessionResponse": b64(forged)})


def test_sessions_expire(env: Env) -> None:
    flow = Flow(env, euicc(env), order(env))
    flow.authenticate_server(flow.initiate())
    env.now[0] += env.smdp.session_ttl + 1
    with refused(st.UNKNOWN_TRANSACTION):
        flow.authenticate_client()


def test_a_full_table_evicts_the_oldest_unauthenticated_session(env: Env) -> None:
    """initiateAuthentication needs no credential (SGP.22 5.6.1): a table full of such
    sessions makes room rather than refusing the next caller."""
    env.smdp.max_sessions = 3
    first = Flow(env, euicc(env), "X")
    first.initiate()
    for _ in range(3):
        Flow(env, euicc(env), "X").initiate()
    assert env.smdp.session_count == 3 and env.smdp.sessions.evicted == 1
    with refused(st.UNKNOWN_TRANSACTION):
        env.smdp.sessions.get(first.txid)


def test_only_authenticated_sessions_fill_the_table(env: Env) -> None:
    env.smdp.max_sessions = 2
    for eid in (EID, EID2):
        Flow(env, euicc(env, eid), order(env)).through_authentication()
    with refused(st.BUSY):
        Flow(env, euicc(env), "X").initiate()


def test_unauthenticated_sessions_are_short_lived(env: Env) -> None:
    waiting = Flow(env, euicc(env), order(env))
    waiting.authenticate_server(waiting.initiate())
    proven = Flow(env, euicc(env, EID2), order(env))
    proven.through_authentication()
    env.now[0] += env.smdp.sessions.pending_ttl + 1
    with refused(st.UNKNOWN_TRANSACTION):
        waiting.authenticate_client()
    assert env.smdp.sessions.get(proven.txid).eid == EID2


def test_one_client_address_holds_few_unauthenticated_sessions(env: Env) -> None:
    env.smdp.sessions.max_pending_per_client = 2
    flow = Flow(env, euicc(env), "X")
    body = {"smdpAddress": ADDRESS, "euiccChallenge": b64(flow.challenge),
            "euiccInfo1": b64(euicc_info1(flow.identity))}
    other = env.smdp.call("initiateAuthentication", body, client="10.0.0.2")
    mine = [env.smdp.call("initiateAuthentication", body, client="10.0.0.1")
            for _ in range(5)]
    assert env.smdp.session_count == 3
    for answer in (other, *mine[-2:]):
        assert answer is not None
        env.smdp.sessions.get(bytes.fromhex(answer["transactionId"]))


def test_a_newer_session_of_the_same_euicc_ends_the_older(env: Env) -> None:
    matching_id = order(env)
    old = Flow(env, euicc(env), matching_id)
    old.through_authentication()
    new = Flow(env, euicc(env), matching_id)
    new.through_authentication()
    with refused(st.UNKNOWN_TRANSACTION):
        env.smdp.sessions.get(old.txid)
    assert env.smdp.session_count == 1


def test_ten_thousand_unauthenticated_sessions_do_not_stop_a_download(env: Env) -> None:
    flood = Flow(env, euicc(env), "X")
    body = {"smdpAddress": ADDRESS, "euiccChallenge": b64(flood.challenge),
            "euiccInfo1": b64(euicc_info1(flood.identity))}
    for n in range(10_000):  # from as many addresses, so no per-address bound helps
        env.smdp.call("initiateAuthentication", body, client=f"10.{n // 256}.{n % 256}.1")
    assert env.smdp.session_count == env.smdp.max_sessions
    real = Flow(env, euicc(env, EID2), order(env))
    assert real.through_authentication()["transactionId"] == real.txid.hex().upper()



"""The software eUICC's profile download, one check at a time, against the real card.

The card is driven through STORE DATA on a logical channel (an :class:`IsdrChannel`), the
SM-DP+ is called in-process (JSON bodies, no HTTPS), and every message between them can be
changed on the way, so each test breaks exactly one thing the card must notice: a server
certificate not chained to a CI the card knows, a wrong curve, a bad signature, a stale
challenge, a wrong address, a replayed transaction, a tampered segment. Each refusal is
answered with its SGP.22 error code, and none leaves a profile behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator import pki
from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
from lpa_emulator.euicc.es10 import NVM_CAPACITY, PROFILE_FOOTPRINT
from lpa_emulator.euicc.fs import decode_msisdn_record
from lpa_emulator.euicc.state import isdp_aid_for
from lpa_emulator.smdp.local import InProcessEs9
from lpa_emulator.smdp.orders import OrderStore
from lpa_emulator.smdp.service import Smdp, SmdpCredentials
from mps_esim import simfiles, tlv
from mps_esim.crypto import certs, signatures
from mps_esim.iso7816 import build_apdu
from mps_esim.lpa.download import Es10bOverStoreData, default_device_info
from mps_esim.lpa.es9 import InitiateAuthenticationResponse
from mps_esim.lpa.es10 import Es10Client
from mps_esim.sgp22 import rsp
from mps_wire.identifiers import make_eid
from tests.rsp_support import IsdrChannel, Reports, card_for, new_subscription

ADDRESS = "smdp.test"
EID = make_eid("890490320000000000000000007001")

AuthCode = rsp.AuthenticateErrorCode
DownloadCode = rsp.DownloadErrorCode
Reason = rsp.ErrorReason


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=[EID])
    return root


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CI with its own SM-DP+ certificates."""
    root = tmp_path_factory.mktemp("foreign")
    pki.init_pki(root, euicc_count=0)
    return root


@dataclass
class Env:
    card: EuiccCard
    smdp: Smdp
    store: OrderStore
    pki_dir: Path
    state_path: Path

    @property
    def es9(self) -> InProcessEs9:
        return InProcessEs9(self.smdp)

    def lpa(self) -> Es10bOverStoreData:
        """ES10b on a new logical channel (as after the card came back)."""
        return Es10bOverStoreData(Es10Client(IsdrChannel(self.card)))

    def es10(self) -> Es10Client:
        return Es10Client(IsdrChannel(self.card))

    def order(self, **kwargs: object) -> tuple[str, str]:
        iccid, imsi = new_subscription()
        found = self.store.add(iccid=iccid, imsi=imsi, **kwargs)  # type: ignore[arg-type]
        return found.matching_id, iccid

    def credential(self, name: str) -> pki.Credential:
        return pki.Credential.load(self.pki_dir / f"{name}.pem", self.pki_dir / f"{name}.key")


@pytest.fixture
def env(pki_dir: Path, tmp_path: Path) -> Iterator[Env]:
    store = OrderStore.in_dir(tmp_path / "smdp")
    smdp = Smdp(address=ADDRESS, credentials=SmdpCredentials.from_dir(pki_dir), orders=store,
                reporter=Reports())
    path = tmp_path / "card.json"
    yield Env(card_for(pki_dir, EID, state_path=path), smdp, store, pki_dir, path)
    store.close()


def raw_signature(der: bytes) -> bytes:
    assert der[:3] == b"\x5f\x37\x40"
    return der[3:]


class Flow:
    """One download walked by hand: the LPA's part, with every message open to change."""

    def __init__(self, env: Env, matching_id: str | None) -> None:
        self.env = env
        self.lpa = env.lpa()
        self.matching_id = matching_id
        self.init: InitiateAuthenticationResponse | None = None
        self.auth_der = b""
        self.client_der: dict[str, bytes] = {}
        self.prepare_der = b""

    @property
    def txid(self) -> bytes:
        assert self.init is not None
        return self.init.transaction_id

    def initiate(self) -> InitiateAuthenticationResponse:
        challenge = rsp.decode_euicc_challenge(self.lpa.get_euicc_challenge())
        self.init = self.env.es9.initiate_authentication(ADDRESS, challenge,
                                                          self.lpa.get_euicc_info1())
        return self.init

    def auth_request(self, *, signed1: bytes | None = None, signature: bytes | None = None,
                     pkid: bytes | None = None, cert: bytes | None = None) -> bytes:
        init = self.init or self.initiate()
        return rsp.AuthenticateServerRequest(
            signed1 or init.server_signed1,
            signature or raw_signature(init.server_signature1),
            pkid or init.ci_pkid[2:], cert or init.server_certificate,
            rsp.CtxParams1(default_device_info(), self.matching_id)).encode()

    def authenticate(self, request: bytes | None = None) -> rsp.AuthenticateServerResponse:
        self.auth_der = self.lpa.authenticate_server(request or self.auth_request())
        return rsp.decode_authenticate_server_response(self.auth_der)

    def authenticate_client(self) -> None:
        if not self.auth_der:
            assert isinstance(self.authenticate(), rsp.AuthenticateResponseOk)
        answer = self.env.es9.authenticate_client(self.txid, self.auth_der)
        self.client_der = {"signed2": answer.smdp_signed2,
                           "signature2": raw_signature(answer.smdp_signature2),
                           "certificate": answer.smdp_certificate}

    def prepare_request(self, *, signed2: bytes | None = None, signature2: bytes | None = None,
                        cert: bytes | None = None, hash_cc: bytes | None = None) -> bytes:
        if not self.client_der:
            self.authenticate_client()
        c = self.client_der
        return rsp.PrepareDownloadRequest(signed2 or c["signed2"],
                                          signature2 or c["signature2"],
                                          cert or c["certificate"], hash_cc).encode()

    def prepare(self, request: bytes | None = None) -> rsp.PrepareDownloadResponse:
        self.prepare_der = self.lpa.prepare_download(request or self.prepare_request())
        return rsp.decode_prepare_download_response(self.prepare_der)

    def package(self) -> rsp.BoundProfilePackage:
        if not self.prepare_der:
            assert isinstance(self.prepare(), rsp.PrepareDownloadResponseOk)
        der = self.env.es9.get_bound_profile_package(self.txid, self.prepare_der)
        return rsp.BoundProfilePackage.decode(der)

    def load(self, segments: list[bytes]) -> rsp.ProfileInstallationResultData | None:
        """Send the segments; the installation result, or None if the card wants more."""
        for segment in segments:
            answer = self.lpa.load_bound_profile_package(segment)
            if answer:
                pir = rsp.ProfileInstallationResult.decode(answer)
                cert = certs.load_der(self.env.card.state.identity.certificate_der, "euicc")
                signatures.verify(cert.public_key(), pir.data_der,  # type: ignore[arg-type]
                                  pir.signature)
                return pir.data
        return None


def auth_error(response: rsp.AuthenticateServerResponse) -> int:
    assert isinstance(response, rsp.AuthenticateResponseError), response
    return response.code


def download_error(response: rsp.PrepareDownloadResponse) -> int:
    assert isinstance(response, rsp.PrepareDownloadResponseError), response
    return response.code


def failure(data: rsp.ProfileInstallationResultData | None) -> tuple[int, int]:
    assert data is not None and isinstance(data.result, rsp.InstallFailure), data
    return data.result.command, data.result.reason


def assert_nothing_installed(env: Env) -> None:
    assert env.card.state.profiles == []
    assert CardState.load(env.state_path).profiles == []


# --- the whole download, and what the card then shows ------------------------------------------

def test_download_installs_the_profile_the_file_system_then_shows(env: Env) -> None:
    mid, iccid = env.order(msisdn="+4915123456789")
    order = env.store.get(mid)
    assert order is not None
    flow = Flow(env, mid)
    data = flow.load(flow.package().segments())
    assert data is not None and isinstance(data.result, rsp.InstallSuccess)
    assert data.transaction_id == flow.txid
    assert data.smdp_oid == pki.DEFAULT_SMDP_OID
    assert (data.notification.operation, data.notification.address,
            data.notification.iccid) == ("install", ADDRESS, iccid)
    # The profile is kept (on "disk") with every identity and key of the package.
    record = CardState.load(env.state_path).find_profile(iccid=iccid)
    assert record is not None and not record.enabled
    assert (record.imsi, record.msisdn, record.ki, record.opc) == (
        order.imsi, "+4915123456789", order.ki, order.opc)
    assert record.isdp_aid == data.result.aid == isdp_aid_for(0)
    # The signed result waits as the install notification until the LPA removes it.
    client = env.es10()
    [pending] = client.retrieve_notifications()
    assert (pending.metadata.operation, pending.metadata.seq) == ("install", data.notification.seq)
    assert rsp.ProfileInstallationResult.decode(pending.der).data == data
    # Enabled, its files appear: EF.ICCID under the MF, EF.IMSI and EF.MSISDN in the USIM.
    client.enable_profile(iccid=iccid)
    card = env.card

    def read(*path: int, record_length: int = 0) -> bytes:
        for fid in path:
            assert card.transmit(build_apdu(0x00, 0xA4, 0x00, 0x0C, fid.to_bytes(2, "big")))[
                -2:] == b"\x90\x00"
        apdu = (build_apdu(0x00, 0xB2, 1, 0x04, le=record_length) if record_length
                else build_apdu(0x00, 0xB0, 0, 0, le=0))
        answer = card.transmit(apdu)
        if answer[0] == 0x6C:
            answer = card.transmit(apdu[:4] + answer[1:2])
        assert answer[-2:] == b"\x90\x00", answer.hex()
        return answer[:-2]

    assert simfiles.decode_iccid(read(simfiles.FID_MF, simfiles.FID_EF_ICCID)) == iccid
    assert card.transmit(build_apdu(0x00, 0xA4, 0x04, 0x0C, record.usim_aid))[-2:] == (
        b"\x90\x00")
    assert simfiles.decode_imsi(read(simfiles.FID_EF_IMSI)) == order.imsi
    assert decode_msisdn_record(read(simfiles.FID_EF_MSISDN, record_length=14)) == (
        "+4915123456789")


def test_download_with_replaced_session_keys(env: Env) -> None:
    env.smdp.replace_session_keys = True
    mid, iccid = env.order()
    flow = Flow(env, mid)
    data = flow.load(flow.package().segments())
    assert data is not None and isinstance(data.result, rsp.InstallSuccess)
    assert env.card.state.find_profile(iccid=iccid) is not None


def test_cancel_session_gives_a_signed_receipt_and_ends_the_session(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    flow.authenticate_client()
    answer = flow.lpa.cancel_session(rsp.cancel_session_request(
        flow.txid, rsp.CancelSessionReason.POSTPONED))
    receipt = rsp.decode_cancel_session_response(answer)
    assert isinstance(receipt, rsp.CancelSessionResponseOk)
    # 30 { 80 transactionId, 81 smdpOid, 82 reason }, signed by the card.
    assert receipt.signed == rsp.EuiccCancelSessionSigned(
        flow.txid, pki.DEFAULT_SMDP_OID, rsp.CancelSessionReason.POSTPONED)
    assert receipt.signed_der[:4] == bytes.fromhex("301A8010")
    cert = certs.load_der(env.card.state.identity.certificate_der, "euicc")
    signatures.verify(cert.public_key(), receipt.signed_der,  # type: ignore[arg-type]
                      receipt.signature)
    env.es9.cancel_session(flow.txid, answer)
    # Nothing of the session is left: the next step finds no context.
    assert download_error(flow.prepare()) == DownloadCode.NO_SESSION_CONTEXT
    again = rsp.decode_cancel_session_response(flow.lpa.cancel_session(
        rsp.cancel_session_request(flow.txid, 1)))
    assert isinstance(again, rsp.CancelSessionResponseError) and again.code == 5


# --- AuthenticateServer ------------------------------------------------------------------------

def test_authenticate_server_without_a_challenge(env: Env) -> None:
    flow = Flow(env, "X")
    request = flow.auth_request()
    env.card.reset()
    assert auth_error(Flow(env, "X").authenticate(request)) == AuthCode.NO_SESSION_CONTEXT


def test_stale_challenge(env: Env) -> None:
    flow = Flow(env, "X")
    request = flow.auth_request()
    flow.lpa.get_euicc_challenge()  # a new challenge: the old serverSigned1 no longer fits
    assert auth_error(flow.authenticate(request)) == AuthCode.EUICC_CHALLENGE_MISMATCH


def test_replayed_authenticate_server(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    request = flow.auth_request()
    assert isinstance(flow.authenticate(request), rsp.AuthenticateResponseOk)
    # The challenge is used up: the same request again finds no session to join.
    assert auth_error(flow.authenticate(request)) == AuthCode.NO_SESSION_CONTEXT


def test_unknown_ci_to_be_used(env: Env) -> None:
    flow = Flow(env, "X")
    assert auth_error(flow.authenticate(flow.auth_request(pkid=bytes(20)))) == (
        AuthCode.CI_PK_UNKNOWN)


def test_dpauth_of_another_ci(env: Env, foreign_pki: Path) -> None:
    foreign = pki.Credential.load(foreign_pki / pki.DPAUTH_CERT, foreign_pki / pki.DPAUTH_KEY)
    flow = Flow(env, "X")
    init = flow.initiate()
    request = flow.auth_request(signature=signatures.sign(foreign.key, init.server_signed1),
                                cert=foreign.cert_der)
    assert auth_error(flow.authenticate(request)) == AuthCode.INVALID_CERTIFICATE
    assert env.card.session.transaction_id is None


def test_dppb_certificate_in_place_of_dpauth(env: Env) -> None:
    dppb = env.credential("dppb")
    flow = Flow(env, "X")
    init = flow.initiate()
    request = flow.auth_request(signature=signatures.sign(dppb.key, init.server_signed1),
                                cert=dppb.cert_der)
    assert auth_error(flow.authenticate(request)) == AuthCode.INVALID_CERTIFICATE


def test_dpauth_on_another_curve(env: Env) -> None:
    ci = env.credential("ci")
    p384 = pki.make_server(ci, certs.ROLE_DP_AUTH, key=ec.generate_private_key(ec.SECP384R1()))
    flow = Flow(env, "X")
    init = flow.initiate()
    request = flow.auth_request(signature=bytes(64), cert=p384.cert_der,
                                signed1=init.server_signed1)
    assert auth_error(flow.authenticate(request)) == AuthCode.UNSUPPORTED_CURVE


def test_forged_server_signature(env: Env) -> None:
    flow = Flow(env, "X")
    init = flow.initiate()
    forged = bytearray(raw_signature(init.server_signature1))
    forged[10] ^= 0x40
    assert auth_error(flow.authenticate(flow.auth_request(signature=bytes(forged)))) == (
        AuthCode.INVALID_SIGNATURE)


def test_server_signed1_changed_after_signing(env: Env) -> None:
    flow = Flow(env, "X")
    init = flow.initiate()
    signed = rsp.ServerSigned1.decode(init.server_signed1)
    other = rsp.ServerSigned1(signed.transaction_id, signed.euicc_challenge, "evil.example",
                              signed.server_challenge).encode()
    assert auth_error(flow.authenticate(flow.auth_request(signed1=other))) == (
        AuthCode.INVALID_SIGNATURE)


def test_without_matching_id_only_the_default_smdp(env: Env) -> None:
    flow = Flow(env, None)
    # No default SM-DP+ set: a download without a matching id has nowhere to go.
    assert auth_error(flow.authenticate()) == AuthCode.UNDEFINED
    env.es10().set_default_dp_address("other.example")
    flow = Flow(env, None)
    assert auth_error(flow.authenticate()) == AuthCode.UNDEFINED
    env.es10().set_default_dp_address(ADDRESS.upper())
    flow = Flow(env, None)
    assert isinstance(flow.authenticate(), rsp.AuthenticateResponseOk)


def test_malformed_authenticate_server_is_6a80(env: Env) -> None:
    channel = IsdrChannel(env.card)
    response = Es10Client(channel)
    with pytest.raises(Exception, match="6A80"):
        response.command(tlv.encode(0xBF38, tlv.encode(0x30, b"\x80\x01\x00")))


# --- PrepareDownload ---------------------------------------------------------------------------

def test_prepare_download_without_authentication(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    request = flow.prepare_request()
    env.card.reset()
    other = Flow(env, mid)
    other.lpa.get_euicc_challenge()
    assert download_error(other.prepare(request)) == DownloadCode.NO_SESSION_CONTEXT


def test_dppb_of_another_ci(env: Env, foreign_pki: Path) -> None:
    foreign = pki.Credential.load(foreign_pki / pki.DPPB_CERT, foreign_pki / pki.DPPB_KEY)
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    flow.authenticate_client()
    ok = rsp.decode_authenticate_server_response(flow.auth_der)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    signed2 = flow.client_der["signed2"]
    signature = signatures.sign(foreign.key, signed2 + signatures.signature_object(
        ok.euicc_signature1))
    request = flow.prepare_request(signature2=signature, cert=foreign.cert_der)
    assert download_error(flow.prepare(request)) == DownloadCode.INVALID_CERTIFICATE


def test_dppb_of_another_smdp(env: Env) -> None:
    other = pki.make_server(env.credential("ci"), certs.ROLE_DP_PB, oid="2.999.77")
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    flow.authenticate_client()
    ok = rsp.decode_authenticate_server_response(flow.auth_der)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    signature = signatures.sign(other.key, flow.client_der["signed2"]
                                + signatures.signature_object(ok.euicc_signature1))
    request = flow.prepare_request(signature2=signature, cert=other.cert_der)
    assert download_error(flow.prepare(request)) == DownloadCode.INVALID_CERTIFICATE


def test_forged_smdp_signature2(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    flow.authenticate_client()
    forged = bytearray(flow.client_der["signature2"])
    forged[3] ^= 1
    assert download_error(flow.prepare(flow.prepare_request(signature2=bytes(forged)))) == (
        DownloadCode.INVALID_SIGNATURE)


def test_smdp_signed2_of_another_transaction(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    flow.authenticate_client()
    ok = rsp.decode_authenticate_server_response(flow.auth_der)
    assert isinstance(ok, rsp.AuthenticateResponseOk)
    # Validly signed by the SM-DP+'s DPpb key, but for another transaction.
    other = rsp.SmdpSigned2(bytes(16), False).encode()
    signature = signatures.sign(env.credential("dppb").key, other + signatures.signature_object(
        ok.euicc_signature1))
    assert download_error(flow.prepare(flow.prepare_request(signed2=other,
                                                            signature2=signature))) == (
        DownloadCode.INVALID_TRANSACTION_ID)


def test_confirmation_code_required_but_missing(env: Env) -> None:
    mid, _iccid = env.order(confirmation_code="1234")
    flow = Flow(env, mid)
    assert download_error(flow.prepare()) == DownloadCode.UNDEFINED


# --- LoadBoundProfilePackage -------------------------------------------------------------------

def test_package_without_a_prepared_download(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    segments = flow.package().segments()
    env.card.reset()
    assert failure(Flow(env, mid).load(segments[:1])) == (
        rsp.BppCommandId.INITIALISE_SECURE_CHANNEL, Reason.INVALID_TRANSACTION_ID)
    # Without a session there is no SM-DP+ to tell: no notification is kept.
    assert env.card.state.notifications == []


def test_replayed_package_of_another_transaction(env: Env) -> None:
    first_mid, _ = env.order()
    old = Flow(env, first_mid).package().segments()
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    new = flow.package().segments()
    assert failure(flow.load([old[0], *new[1:]])) == (
        rsp.BppCommandId.INITIALISE_SECURE_CHANNEL, Reason.INVALID_TRANSACTION_ID)
    assert_nothing_installed(env)


def test_replayed_package_after_installation(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    segments = flow.package().segments()
    assert flow.load(segments) is not None
    # The one-time key is gone with the package: the same package again is refused.
    assert failure(flow.load(segments)) == (
        rsp.BppCommandId.INITIALISE_SECURE_CHANNEL, Reason.INVALID_TRANSACTION_ID)
    assert len(env.card.state.profiles) == 1


def _resigned_isc(env: Env, flow: Flow, bpp: rsp.BoundProfilePackage,
                  **changes: int) -> list[bytes]:
    """The package with InitialiseSecureChannel changed and signed again with SK.DPpb."""
    isc, _signed = rsp.InitialiseSecureChannel.decode(bpp.initialise_secure_channel)
    changed = rsp.InitialiseSecureChannel(isc.transaction_id, isc.host_id, isc.smdp_otpk,
                                          b"", **{"remote_op": isc.remote_op,
                                                  "key_type": isc.key_type,
                                                  "key_length": isc.key_length, **changes})
    ok = rsp.decode_prepare_download_response(flow.prepare_der)
    assert isinstance(ok, rsp.PrepareDownloadResponseOk)
    otpk = tlv.encode(0x5F49, ok.signed.euicc_otpk)
    signature = signatures.sign(env.credential("dppb").key, changed.signed_part() + otpk)
    resigned = rsp.InitialiseSecureChannel(changed.transaction_id, changed.host_id,
                                           changed.smdp_otpk, signature, changed.remote_op,
                                           changed.key_type, changed.key_length)
    return rsp.BoundProfilePackage(resigned.encode(), bpp.configure_isdp, bpp.store_metadata,
                                   bpp.profile, bpp.replace_keys).segments()


@pytest.mark.parametrize(("change", "reason"), [
    ({"remote_op": 2}, Reason.UNSUPPORTED_REMOTE_OPERATION_TYPE),
    ({"key_type": 0x80}, Reason.UNSUPPORTED_CRT_VALUES),
    ({"key_length": 0x20}, Reason.UNSUPPORTED_CRT_VALUES),
])
def test_initialise_secure_channel_values(env: Env, change: dict[str, int],
                                          reason: Reason) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    segments = _resigned_isc(env, flow, flow.package(), **change)
    assert failure(flow.load(segments)) == (rsp.BppCommandId.INITIALISE_SECURE_CHANNEL, reason)
    assert_nothing_installed(env)


def test_initialise_secure_channel_bad_signature(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    segments = flow.package().segments()
    first = bytearray(segments[0])
    first[-5] ^= 0x01  # inside smdpSign
    assert failure(flow.load([bytes(first), *segments[1:]])) == (
        rsp.BppCommandId.INITIALISE_SECURE_CHANNEL, Reason.INVALID_SIGNATURE)


@pytest.mark.parametrize(("tag", "command"), [
    (0xA0, rsp.BppCommandId.CONFIGURE_ISDP),
    (0x88, rsp.BppCommandId.STORE_METADATA),
    (0x86, rsp.BppCommandId.LOAD_PROFILE_ELEMENTS),
])
def test_tampered_segment(env: Env, tag: int, command: rsp.BppCommandId) -> None:
    mid, iccid = env.order()
    flow = Flow(env, mid)
    segments = flow.package().segments()
    index = next(i for i, s in enumerate(segments) if s[0] == tag and len(s) > 20)
    tampered = bytearray(segments[index])
    tampered[-12] ^= 0x01  # in the protected data, before the MAC
    segments[index] = bytes(tampered)
    data = flow.load(segments)
    assert failure(data) == (command, Reason.SCP03T_SECURITY_ERROR)
    assert_nothing_installed(env)
    # The failed result is kept for the SM-DP+ like a successful one.
    [note] = env.card.state.notifications
    assert (note.operation, note.address) == ("install", ADDRESS)
    if tag != 0xA0:  # the metadata (and so the ICCID) is known from A1 on
        assert data is not None and data.notification.iccid in (iccid, None)


def test_segments_out_of_order(env: Env) -> None:
    mid, _iccid = env.order()
    flow = Flow(env, mid)
    segments = flow.package().segments()
    # The A3 header where the A1 header belongs.
    a3 = next(s for s in segments if s[0] == 0xA3)
    assert failure(flow.load([segments[0], segments[1], a3])) == (
        rsp.BppCommandId.STORE_METADATA, Reason.SCP03T_STRUCTURE_ERROR)
    assert_nothing_installed(env)


def test_card_reset_mid_package_leaves_nothing_and_a_retry_works(env: Env) -> None:
    mid, iccid = env.order()
    flow = Flow(env, mid)
    segments = flow.package().segments()
    assert flow.load(segments[:-2]) is None  # half the profile is in
    env.card.reset()  # power lost
    assert_nothing_installed(env)
    assert env.card.state.notifications == []
    # The rest of the package lands nowhere: a segment outside a session is no command.
    with pytest.raises(Exception, match="6A80"):
        Flow(env, mid).load(segments[-2:])
    flow = Flow(env, mid)
    data = flow.load(flow.package().segments())
    assert data is not None and isinstance(data.result, rsp.InstallSuccess)
    assert [p.iccid for p in CardState.load(env.state_path).profiles] == [iccid]


def test_iccid_already_installed(env: Env, pki_dir: Path, tmp_path: Path) -> None:
    mid, iccid = env.order()
    state = env.card.state.copy()
    state.profiles = [ProfileRecord(iccid=iccid, imsi="001019999999999", isdp_aid=isdp_aid_for(0))]
    env.card.commit(state)
    flow = Flow(env, mid)
    assert failure(flow.load(flow.package().segments())) == (
        rsp.BppCommandId.LOAD_PROFILE_ELEMENTS, Reason.ICCID_ALREADY_EXISTS)
    assert [p.imsi for p in env.card.state.profiles] == ["001019999999999"]


def test_no_room_for_another_profile(env: Env) -> None:
    full = NVM_CAPACITY // PROFILE_FOOTPRINT
    state = env.card.state.copy()
    state.profiles = [ProfileRecord.generate(slot=i, enabled=False) for i in range(full)]
    env.card.commit(state)
    mid, iccid = env.order()
    flow = Flow(env, mid)
    assert failure(flow.load(flow.package().segments())) == (
        rsp.BppCommandId.LOAD_PROFILE_ELEMENTS, Reason.INSUFFICIENT_MEMORY)
    assert env.card.state.find_profile(iccid=iccid) is None

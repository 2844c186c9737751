"""Profile downloads end to end: LPA driver, STORE DATA, the software eUICC, SM-DP+ on HTTPS.

Also eUICC-side refusals seen through the LPA, an interrupted download followed by a clean
retry, several devices at once, installation reports over MQTT, and the ``mps-emu smdp``
commands. (Every check of the card on its own: tests/unit/test_euicc_download.py; over
every card link: tests/integration/test_download_links.py.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from lpa_emulator import pki
from lpa_emulator.euicc import EuiccCard
from lpa_emulator.smdp.orders import OrderState, OrderStore
from lpa_emulator.smdp.report import MqttReportPublisher, OutboxReporter
from mps_esim.crypto import certs, signatures
from mps_esim.lpa.activation import parse_activation_code
from mps_esim.lpa.download import (
    CardRefusedError,
    CardUnavailableError,
    ConfirmationCodeRequiredError,
    DownloadDeclinedError,
    Es10b,
    InstallationFailedError,
    Progress,
    ServerRefusedError,
    Stage,
)
from mps_esim.sgp22 import rsp
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client
from mps_wire import codec
from mps_wire.identifiers import make_eid
from mps_wire.topics import Topics
from tests.rsp_support import Served, card_for, es10b, new_subscription, served_smdp

EIDS = [make_eid(f"8904903200000000000000000{n:05d}") for n in range(10)]


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=EIDS)
    return root


@pytest.fixture
def served(pki_dir: Path, tmp_path: Path) -> Iterator[Served]:
    with served_smdp(pki_dir, tmp_path / "smdp") as s:
        yield s


def new_order(served: Served, **kwargs: object) -> tuple[str, str]:
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi, **kwargs)  # type: ignore[arg-type]
    return order.matching_id, iccid


@pytest.mark.parametrize("block_size", [120, 255, 37])
def test_download_installs_and_reports(served: Served, pki_dir: Path, block_size: int) -> None:
    card = card_for(pki_dir, EIDS[0])
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi, msisdn="+4915112345678")
    stages: list[Progress] = []
    result = served.downloader(card, block_size=block_size, progress=stages.append).download(
        served.address, order.matching_id)
    assert result.iccid == iccid and result.notification_sent
    installed = card.state.find_profile(iccid=iccid)
    assert installed is not None and not installed.enabled
    assert (installed.imsi, installed.msisdn) == (imsi, "+4915112345678")
    assert (installed.ki, installed.opc) == (order.ki, order.opc)
    assert installed.isdp_aid == result.aid
    assert card.state.notifications == []  # delivered, then removed
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED and found.eid == EIDS[0]
    [report] = served.reports.items
    assert (report.eid, report.iccid, report.result, report.imsi) == (
        EIDS[0], iccid, "installed", imsi)
    # The report carries what the registry needs to check the eUICC's signature itself.
    pir = rsp.ProfileInstallationResult.decode(report.pir)
    euicc = certs.load_der(report.euicc_certificate, "euicc")
    eum = certs.load_der(report.eum_certificate, "eum")
    ci = pki.load_certificate(pki_dir / pki.CI_CERT)
    assert certs.verify_euicc_chain(euicc, eum, [ci], at=certs.now()) == EIDS[0]
    signatures.verify(euicc.public_key(), pir.data_der, pir.signature)  # type: ignore[arg-type]
    seen = [p.stage for p in stages]
    assert seen[0] is Stage.CHALLENGE and seen[-1] is Stage.DONE
    loads = [p for p in stages if p.stage is Stage.LOAD]
    assert loads[-1].done == loads[-1].total > 3


def test_profile_metadata_reaches_the_card(served: Served, pki_dir: Path) -> None:
    card = card_for(pki_dir, EIDS[0])
    mid, iccid = new_order(served)
    served.downloader(card).download(served.address, mid)
    record = card.state.find_profile(iccid=iccid)
    assert record is not None
    assert (record.spn, record.name, record.profile_class) == (
        "MPS", "MPS operational", "operational")
    # Enabling, disabling and deleting are reported to the SM-DP+ that installed it.
    assert record.smdp_address == served.address
    assert set(record.notify) == {"enable", "disable", "delete"}


def test_confirmation_code(served: Served, pki_dir: Path) -> None:
    mid, iccid = new_order(served, confirmation_code="8642")
    card = card_for(pki_dir, EIDS[1])
    with pytest.raises(ConfirmationCodeRequiredError):
        served.downloader(card).download(served.address, mid)
    assert served.smdp.session_count == 0  # cancelled on both sides
    with pytest.raises(ServerRefusedError) as info:
        served.downloader(card).download(served.address, mid, confirmation_code="1111")
    assert (info.value.subject, info.value.reason) == ("8.2.7", "3.8")
    assert served.smdp.session_count == 0
    result = served.downloader(card).download(served.address, mid, confirmation_code="8642")
    assert result.iccid == iccid


def test_declined_download_is_cancelled_everywhere(served: Served, pki_dir: Path) -> None:
    mid, iccid = new_order(served)
    card = card_for(pki_dir, EIDS[2])
    seen: list[rsp.StoreMetadata] = []

    def decline(meta: rsp.StoreMetadata) -> bool:
        seen.append(meta)
        return False

    with pytest.raises(DownloadDeclinedError):
        served.downloader(card, confirm=decline).download(served.address, mid)
    assert seen[0].iccid == iccid
    assert served.smdp.session_count == 0
    assert card.session.transaction_id is None  # cancelled on the card too
    found = served.store.get(mid)
    assert found is not None and found.state is OrderState.RELEASED and found.eid is None


def test_another_euicc_waits_until_the_first_gives_up(served: Served, pki_dir: Path) -> None:
    mid, iccid = new_order(served)
    first, second = card_for(pki_dir, EIDS[3]), card_for(pki_dir, EIDS[4])
    refusals: list[ServerRefusedError] = []

    def meanwhile(_meta: rsp.StoreMetadata) -> bool:
        with pytest.raises(ServerRefusedError) as info:
            served.downloader(second).download(served.address, mid)
        refusals.append(info.value)
        return False

    with pytest.raises(DownloadDeclinedError):
        served.downloader(first, confirm=meanwhile).download(served.address, mid)
    assert (refusals[0].subject, refusals[0].reason) == ("8.2.6", "3.8")
    assert served.downloader(second).download(served.address, mid).iccid == iccid


def test_interrupted_download_then_clean_retry(served: Served, pki_dir: Path) -> None:
    mid, iccid = new_order(served)
    card = card_for(pki_dir, EIDS[5])
    wrapper, downloader = tampered(served, card)
    loaded: list[bytes] = []

    def vanish(segment: bytes) -> bytes:
        loaded.append(segment)
        if len(loaded) == 4:
            # The card loses power in the middle of the package.
            card.reset()
            raise ConnectionError("card removed")
        return segment

    wrapper.segment_hook = vanish
    with pytest.raises(CardUnavailableError) as info:
        downloader.download(served.address, mid)  # type: ignore[attr-defined]
    assert info.value.stage is Stage.LOAD
    assert card.state.profiles == [] and card.state.notifications == []
    # The LPA opens a new channel to the card that came back and starts over.
    result = served.downloader(card).download(served.address, mid)
    assert result.iccid == iccid and card.state.find_profile(iccid=iccid) is not None
    found = served.store.get(mid)
    assert found is not None and found.state is OrderState.INSTALLED and found.attempts == 2


def test_several_devices_at_once(served: Served, pki_dir: Path) -> None:
    jobs = [(card_for(pki_dir, eid), *new_order(served)) for eid in EIDS[:8]]

    def run(job: tuple[EuiccCard, str, str]) -> str:
        card, mid, _iccid = job
        return served.downloader(card).download(served.address, mid).iccid

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.monotonic() - started
    assert results == [iccid for _c, _m, iccid in jobs]
    assert sorted(r.eid for r in served.reports.items) == sorted(EIDS[:8])
    assert served.smdp.session_count == 0
    assert elapsed < 30


def test_replace_session_keys(pki_dir: Path, tmp_path: Path) -> None:
    def with_ppk(smdp: object) -> None:
        smdp.replace_session_keys = True  # type: ignore[attr-defined]

    with served_smdp(pki_dir, tmp_path / "ppk", configure=with_ppk) as served:
        mid, iccid = new_order(served)
        card = card_for(pki_dir, EIDS[6])
        assert served.downloader(card).download(served.address, mid).iccid == iccid


# --- what the eUICC refuses -----------------------------------------------------------------

class Tamper:
    """Passes ES10b calls to a card, changing one answer or segment on the way."""

    def __init__(self, inner: Es10b) -> None:
        self.inner = inner
        self.segment_hook: object = None
        self.auth_request_hook: object = None
        self.captured: list[bytes] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def authenticate_server(self, request: bytes) -> bytes:
        hook = self.auth_request_hook
        return self.inner.authenticate_server(hook(request) if callable(hook) else request)

    def load_bound_profile_package(self, segment: bytes) -> bytes:
        self.captured.append(segment)
        hook = self.segment_hook
        return self.inner.load_bound_profile_package(hook(segment) if callable(hook) else segment)


def tampered(served: Served, card: EuiccCard) -> tuple[Tamper, object]:
    from mps_esim.lpa.download import ProfileDownloader

    wrapper = Tamper(es10b(card))
    return wrapper, ProfileDownloader(wrapper, served.client)  # type: ignore[arg-type]


def test_tampered_segment_installs_nothing(served: Served, pki_dir: Path) -> None:
    mid, iccid = new_order(served)
    card = card_for(pki_dir, EIDS[7])
    wrapper, downloader = tampered(served, card)

    def flip(segment: bytes) -> bytes:
        if segment[:1] == b"\x86":
            data = bytearray(segment)
            data[-12] ^= 0x01
            return bytes(data)
        return segment

    wrapper.segment_hook = flip
    with pytest.raises(InstallationFailedError) as info:
        downloader.download(served.address, mid)  # type: ignore[attr-defined]
    assert info.value.reason == rsp.ErrorReason.SCP03T_SECURITY_ERROR
    assert card.state.profiles == []
    # The failure result reached the SM-DP+: the order is free again, the retry works.
    assert served.reports.items[-1].result == "failed"
    wrapper.segment_hook = None
    assert downloader.download(served.address, mid).iccid == iccid  # type: ignore[attr-defined]


def test_replayed_package_of_another_transaction(served: Served, pki_dir: Path) -> None:
    card = card_for(pki_dir, EIDS[8])
    wrapper, downloader = tampered(served, card)
    mid, _iccid = new_order(served)
    downloader.download(served.address, mid)  # type: ignore[attr-defined]
    old_first = wrapper.captured[0]
    mid2, _iccid2 = new_order(served)
    wrapper.segment_hook = lambda s: old_first if s[:2] == b"\xbf\x36" else s
    with pytest.raises(InstallationFailedError) as info:
        downloader.download(served.address, mid2)  # type: ignore[attr-defined]
    assert info.value.reason == rsp.ErrorReason.INVALID_TRANSACTION_ID


def test_wrong_challenge_is_refused(served: Served, pki_dir: Path) -> None:
    card = card_for(pki_dir, EIDS[9])
    wrapper, downloader = tampered(served, card)
    mid, _ = new_order(served)
    captured: list[bytes] = []
    wrapper.auth_request_hook = lambda r: captured.append(r) or r
    downloader.download(served.address, mid)  # type: ignore[attr-defined]
    # Replaying that (validly signed) request to the card's next session: stale challenge.
    mid2, _ = new_order(served)
    wrapper.auth_request_hook = lambda _r: captured[0]
    with pytest.raises(CardRefusedError) as info:
        downloader.download(served.address, mid2)  # type: ignore[attr-defined]
    assert info.value.code == rsp.AuthenticateErrorCode.EUICC_CHALLENGE_MISMATCH
    assert served.smdp.session_count == 0  # the refusal reached the SM-DP+


def test_server_of_an_unknown_ci_is_refused(served: Served, pki_dir: Path,
                                            tmp_path: Path) -> None:
    other = pki.init_pki(tmp_path / "other", eids=[EIDS[0]])
    card = card_for(pki_dir, EIDS[0])
    wrapper, downloader = tampered(served, card)
    foreign = pki.Credential.load(other.directory / pki.DPAUTH_CERT,
                                  other.directory / pki.DPAUTH_KEY)

    def swap_server(request: bytes) -> bytes:
        # Re-sign serverSigned1 with a DPauth of another CI and present that certificate.
        req = rsp.AuthenticateServerRequest.decode(request)
        return rsp.AuthenticateServerRequest(
            req.server_signed1, signatures.sign(foreign.key, req.server_signed1), req.ci_pkid,
            foreign.cert_der, req.ctx_params1).encode()

    wrapper.auth_request_hook = swap_server
    mid, _ = new_order(served)
    with pytest.raises(CardRefusedError) as info:
        downloader.download(served.address, mid)  # type: ignore[attr-defined]
    assert info.value.code == rsp.AuthenticateErrorCode.INVALID_CERTIFICATE


def test_forged_server_signature_is_refused(served: Served, pki_dir: Path) -> None:
    card = card_for(pki_dir, EIDS[1])
    wrapper, downloader = tampered(served, card)

    def forge(request: bytes) -> bytes:
        req = rsp.AuthenticateServerRequest.decode(request)
        sig = bytearray(req.server_signature1)
        sig[7] ^= 0x10
        return rsp.AuthenticateServerRequest(req.server_signed1, bytes(sig), req.ci_pkid,
                                             req.server_certificate, req.ctx_params1).encode()

    wrapper.auth_request_hook = forge
    mid, _ = new_order(served)
    with pytest.raises(CardRefusedError) as info:
        downloader.download(served.address, mid)  # type: ignore[attr-defined]
    assert info.value.code == rsp.AuthenticateErrorCode.INVALID_SIGNATURE


def test_wrong_address_is_refused_by_the_lpa(served: Served, pki_dir: Path) -> None:
    card = card_for(pki_dir, EIDS[2])
    mid, _ = new_order(served)
    # Same server reached under a name it does not sign: the SM-DP+ refuses it first.
    _host, port = served.address.split(":")
    with pytest.raises(ServerRefusedError) as info:
        served.downloader(card).download(f"127.0.0.1:{port}", mid)
    assert (info.value.subject, info.value.reason) == ("8.8.1", "3.8")


# --- installation reports over MQTT ---------------------------------------------------------

def test_reports_reach_the_operator_topic(pki_dir: Path, tmp_path: Path, broker_url: str,
                                          ) -> None:
    topic = Topics().operator("installations")
    received: list[bytes] = []
    got = threading.Event()
    sub = new_client()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        received.append(bytes(msg.payload))
        got.set()

    sub.on_message = on_message
    connect(sub, BrokerURL.parse(broker_url))
    sub.subscribe(topic, qos=1)
    time.sleep(0.3)
    store = OrderStore.in_dir(tmp_path / "reports")
    # A report queued while nothing publishes waits in the outbox.
    publisher = MqttReportPublisher(store, broker_url)
    try:
        with served_smdp(pki_dir, tmp_path / "reports") as served:
            served.smdp.reporter = OutboxReporter(served.store, publisher.wake)
            mid, iccid = new_order(served)
            served.downloader(card_for(pki_dir, EIDS[3])).download(served.address, mid)
            assert len(served.store.pending_reports()) == 1
            publisher.start()
            assert got.wait(10), "no installation report arrived"
        message = codec.decode(received[0])
        assert (message["eid"], message["iccid"], message["result"]) == (
            EIDS[3], iccid, "installed")
        assert message["v"] == 1 and message["seq"] == 1
        assert isinstance(message["pir"], bytes)
        deadline = time.monotonic() + 5
        while store.pending_reports() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.pending_reports() == []
    finally:
        publisher.stop()
        disconnect(sub)
        store.close()


# --- the commands ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emu(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lpa_emulator.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          **kwargs)  # type: ignore[call-overload]


def test_smdp_commands(pki_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    address = f"localhost:{port}"
    data = tmp_path / "data"
    env = {**os.environ, "MPS_SMDP_DATA": str(data)}
    server = subprocess.Popen(
        [sys.executable, "-m", "lpa_emulator.cli", "smdp", "serve", "--pki", str(pki_dir),
         "--listen", f"127.0.0.1:{port}", "--address", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert f"https://127.0.0.1:{port}" in line, line + server.stderr.read()
        iccid, imsi = new_subscription()
        ordered = emu("smdp", "order", "--iccid", iccid, "--imsi", imsi, "--msisdn",
                      "+4915199999999", env=env)
        assert ordered.returncode == 0, ordered.stderr
        code = parse_activation_code(ordered.stdout.splitlines()[0])
        assert code.address == address
        bad = emu("smdp", "order", "--iccid", "1234", "--imsi", imsi, env=env)
        assert bad.returncode == 1 and "iccid" in bad.stderr
        dup = emu("smdp", "order", "--iccid", iccid, "--imsi", imsi, env=env)
        assert dup.returncode == 1 and "ordered already" in dup.stderr

        from mps_esim.lpa.download import ProfileDownloader
        from mps_esim.lpa.es9 import Es9Client

        card = card_for(pki_dir, EIDS[4])
        downloader = ProfileDownloader(
            es10b(card), lambda a: Es9Client(a, ca_file=pki_dir / pki.CI_CERT))
        assert downloader.download(code.address, code.matching_id).iccid == iccid
        listed = emu("smdp", "orders", "--json", env=env)
        assert '"installed"' in listed.stdout and EIDS[4] in listed.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(15) == 0


def test_serve_refuses_a_missing_pki(tmp_path: Path) -> None:
    result = emu("smdp", "serve", "--pki", str(tmp_path / "none"), "--listen",
                 "127.0.0.1:0", "--address", "localhost", "--data", str(tmp_path / "d"))
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_order_needs_an_address(tmp_path: Path) -> None:
    iccid, imsi = new_subscription()
    result = emu("smdp", "order", "--iccid", iccid, "--imsi", imsi, "--data",
                 str(tmp_path / "d"))
    assert result.returncode == 2 and "address" in result.stderr

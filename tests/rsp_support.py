"""Shared pieces of the profile download tests: a PKI, software eUICCs reached in-process
through STORE DATA, an SM-DP+ on HTTPS, and a recording reporter."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpa_emulator import pki
from lpa_emulator.euicc import CardState, EuiccCard, EuiccIdentity
from lpa_emulator.euicc import identity as ident
from lpa_emulator.euicc.es10 import SVN
from lpa_emulator.smdp.guard import Limits
from lpa_emulator.smdp.http import SmdpHttpServer, tls_context
from lpa_emulator.smdp.orders import OrderStore
from lpa_emulator.smdp.report import InstallationReport
from lpa_emulator.smdp.service import Smdp, SmdpCredentials
from lpa_emulator.smds import ROUTES as SMDS_ROUTES
from lpa_emulator.smds import Smds, SmdsCredentials
from mps_esim import sgp22
from mps_esim.iso7816 import Response, build_apdu, t0_transceive, with_channel
from mps_esim.lpa.download import Es10bOverStoreData, ProfileDownloader
from mps_esim.lpa.es9 import Es9Client
from mps_esim.lpa.es10 import Es10Client
from mps_esim.lpa.es11 import Es11Client, Es12Client
from mps_esim.sgp22 import rsp
from mps_esim.simfiles import ISDR_AID
from mps_wire.identifiers import make_iccid


class IsdrChannel:
    """A logical channel with the ISD-R selected on an in-process card, T=0 handled: what
    an LPA gets from a card link, without one. ``apdus`` counts the APDUs exchanged
    (GET RESPONSE included)."""

    def __init__(self, card: EuiccCard) -> None:
        self.card = card
        self.apdus = 0
        opened = self._exchange(build_apdu(0x00, 0x70, 0x00, 0x00, le=1))
        self.number = opened.data[0]
        select = build_apdu(0x00, 0xA4, 0x04, 0x00, card.isdr_aid, le=0)
        if self.transmit(select).sw != 0x9000:
            raise AssertionError("the card has no ISD-R")

    def _exchange(self, apdu: bytes) -> Response:
        def raw(command: bytes) -> bytes:
            self.apdus += 1
            return self.card.transmit(command)

        return t0_transceive(raw, apdu)

    def transmit(self, apdu: bytes) -> Response:
        return self._exchange(with_channel(apdu, self.number))


def identity(pki_dir: Path, eid: str) -> EuiccIdentity:
    """The card identity of ``eid`` from a PKI directory (``euicc-<EID>.pem``)."""
    return ident.load_pki_dir(pki_dir, eid)


def euicc_info1(identity: EuiccIdentity) -> bytes:
    return sgp22.EuiccInfo1(SVN, identity.ci_pkids, identity.signing_pkids).encode()


def euicc_info2(identity: EuiccIdentity) -> bytes:
    """An EUICCInfo2 for ``identity`` (what a card puts into euiccSigned1)."""
    return sgp22.EuiccInfo2(
        profile_version="2.3.1", svn=SVN, firmware_version="1.0.0",
        resources=sgp22.CardResources(0, 1_000_000, 8_192),
        uicc_capabilities=frozenset({"usimSupport", "akaMilenage"}),
        rsp_capabilities=frozenset({"additionalProfile"}),
        ci_pkids_verification=identity.ci_pkids, ci_pkids_signing=identity.signing_pkids,
        pp_version="1.0.0", sas_accreditation_number="MPS-TEST").encode()


def card_for(pki_dir: Path, eid: str, *, state_path: Path | None = None) -> EuiccCard:
    """A software eUICC without profiles, its identity from the PKI directory; kept in
    memory, or in ``state_path``."""
    state = CardState.new(eid=eid, profiles=[], identity=identity(pki_dir, eid),
                          isdr_aid=ISDR_AID)
    if state_path is not None:
        state.save(state_path)
    return EuiccCard.from_state(state, state_path)


def es10b(card: EuiccCard, block_size: int = 120) -> Es10bOverStoreData:
    """The card behind real STORE DATA segmentation of ``block_size`` bytes."""
    return Es10bOverStoreData(Es10Client(IsdrChannel(card), block_size=block_size))


class Reports:
    """A reporter that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[InstallationReport] = []
        self._lock = threading.Lock()

    def report(self, report: InstallationReport) -> None:
        with self._lock:
            self.items.append(report)


@dataclass
class Served:
    smdp: Smdp
    server: SmdpHttpServer
    store: OrderStore
    reports: Reports
    address: str
    ca: Path

    def client(self, address: str | None = None) -> Es9Client:
        return Es9Client(address or self.address, ca_file=self.ca)

    def record_device_info(self) -> list[rsp.DeviceInfo]:
        """From now on, the DeviceInfo of each authenticateClient the SM-DP+ receives, as
        the eUICC signed it (euiccSigned1.ctxParams1, SGP.22 5.6.2 / 5.7.13)."""
        seen: list[rsp.DeviceInfo] = []
        original = self.smdp.authenticate_client

        def recording(body: Mapping[str, Any]) -> dict[str, Any]:
            answer = rsp.decode_authenticate_server_response(
                base64.b64decode(body["authenticateServerResponse"]))
            assert isinstance(answer, rsp.AuthenticateResponseOk)
            seen.append(rsp.EuiccSigned1.decode(answer.euicc_signed1).ctx_params1.device_info)
            return original(body)

        self.smdp.authenticate_client = recording  # type: ignore[method-assign]
        return seen

    def downloader(self, card: EuiccCard, *, block_size: int = 120,
                   **kwargs: Any) -> ProfileDownloader:
        return ProfileDownloader(es10b(card, block_size), self.client, **kwargs)


@contextlib.contextmanager
def served_smdp(pki_dir: Path, data_dir: Path, *, host: str = "localhost",
                configure: Callable[[Smdp], None] | None = None,
                limits: Limits | None = None) -> Iterator[Served]:
    """An SM-DP+ on HTTPS at ``localhost:<free port>`` (its address names that port)."""
    store = OrderStore.in_dir(data_dir)
    reports = Reports()
    smdp = Smdp(address="localhost", credentials=SmdpCredentials.from_dir(pki_dir),
                orders=store, reporter=reports)
    if configure is not None:
        configure(smdp)
    server = SmdpHttpServer(smdp, host="127.0.0.1", port=0,
                            ssl_context=tls_context(pki_dir / pki.TLS_CERT,
                                                    pki_dir / pki.TLS_KEY),
                            limits=limits)
    port = server.start()
    smdp.address = f"{host}:{port}"
    try:
        yield Served(smdp, server, store, reports, smdp.address, pki_dir / pki.CI_CERT)
    finally:
        server.stop()
        store.close()


_counter = iter(range(10_000, 100_000))
_lock = threading.Lock()


def new_subscription() -> tuple[str, str]:
    """A fresh valid (ICCID, IMSI) pair."""
    with _lock:
        n = next(_counter)
    return make_iccid(f"894900000000{n:06d}"), f"0010100000{n:05d}"


@dataclass
class ServedSmds:
    smds: Smds
    server: SmdpHttpServer
    address: str
    ca: Path

    def es11(self) -> Es11Client:
        return Es11Client(self.address, ca_file=self.ca)

    def es12(self) -> Es12Client:
        return Es12Client(self.address, ca_file=self.ca)


@contextlib.contextmanager
def served_smds(pki_dir: Path) -> Iterator[ServedSmds]:
    """An SM-DS (ES11 and ES12) on HTTPS at ``localhost:<free port>``."""
    smds = Smds(address="localhost", credentials=SmdsCredentials.from_dir(pki_dir))
    server = SmdpHttpServer(smds, host="127.0.0.1", port=0, routes=SMDS_ROUTES,
                            ssl_context=tls_context(pki_dir / pki.TLS_CERT,
                                                    pki_dir / pki.TLS_KEY))
    smds.address = f"localhost:{server.start()}"
    try:
        yield ServedSmds(smds, server, smds.address, pki_dir / pki.CI_CERT)
    finally:
        server.stop()

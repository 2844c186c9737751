"""Shared pieces of the profile download tests: a PKI, reference eUICCs behind STORE DATA,
an SM-DP+ on HTTPS, and a recording reporter."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpa_emulator import pki
from lpa_emulator.crypto.euicc_side import EuiccIdentity
from lpa_emulator.crypto.refcard import RefCardError, ReferenceEuicc
from lpa_emulator.iso7816 import Response
from lpa_emulator.lpa.download import Es10bOverStoreData, ProfileDownloader
from lpa_emulator.lpa.es9 import Es9Client
from lpa_emulator.lpa.es10 import Es10Client
from lpa_emulator.smdp.http import SmdpHttpServer, tls_context
from lpa_emulator.smdp.orders import OrderStore
from lpa_emulator.smdp.report import InstallationReport
from lpa_emulator.smdp.service import Smdp, SmdpCredentials
from mps_wire.identifiers import make_iccid


class StoreDataChannel:
    """An APDU channel in front of a reference eUICC: reassembles STORE DATA blocks as a
    card does (P1 11 more / 91 last, P2 counting from 0) and answers the last one."""

    def __init__(self, card: ReferenceEuicc) -> None:
        self.card = card
        self._buffer = b""
        self._next = 0
        self.blocks: list[int] = []

    def transmit(self, apdu: bytes) -> Response:
        cla, ins, p1, p2 = apdu[:4]
        if ins != 0xE2 or cla & 0xF0 != 0x80:
            return Response(b"", 0x6D00)
        data = apdu[5:5 + apdu[4]] if len(apdu) > 4 else b""
        if p2 != self._next:
            self._buffer, self._next = b"", 0
            return Response(b"", 0x6A86)
        self.blocks.append(len(data))
        self._buffer += data
        self._next += 1
        if p1 == 0x11:
            return Response(b"", 0x9000)
        command, self._buffer, self._next = self._buffer, b"", 0
        try:
            return Response(self.card.command(command), 0x9000)
        except RefCardError:
            return Response(b"", 0x6F00)


def identity(pki_dir: Path, eid: str) -> EuiccIdentity:
    return EuiccIdentity(eid, pki.load_euicc(pki_dir, eid),
                         pki.load_certificate(pki_dir / pki.EUM_CERT),
                         (pki.load_certificate(pki_dir / pki.CI_CERT),))


def card_for(pki_dir: Path, eid: str) -> ReferenceEuicc:
    return ReferenceEuicc(identity(pki_dir, eid))


def es10b(card: ReferenceEuicc, block_size: int = 120) -> Es10bOverStoreData:
    """The card behind real STORE DATA segmentation of ``block_size`` bytes."""
    return Es10bOverStoreData(Es10Client(StoreDataChannel(card), block_size=block_size))


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

    def downloader(self, card: ReferenceEuicc, *, block_size: int = 120,
                   **kwargs: Any) -> ProfileDownloader:
        return ProfileDownloader(es10b(card, block_size), self.client, **kwargs)


@contextlib.contextmanager
def served_smdp(pki_dir: Path, data_dir: Path, *, host: str = "localhost",
                configure: Callable[[Smdp], None] | None = None) -> Iterator[Served]:
    """An SM-DP+ on HTTPS at ``localhost:<free port>`` (its address names that port)."""
    store = OrderStore.in_dir(data_dir)
    reports = Reports()
    smdp = Smdp(address="localhost", credentials=SmdpCredentials.from_dir(pki_dir),
                orders=store, reporter=reports)
    if configure is not None:
        configure(smdp)
    server = SmdpHttpServer(smdp, host="127.0.0.1", port=0,
                            ssl_context=tls_context(pki_dir / pki.TLS_CERT,
                                                    pki_dir / pki.TLS_KEY))
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

"""A profile download over every card link: the software eUICC in-process (``emu``), through
the real pcscd + vpcd (``pcsc``), behind the emulated modem with AT+CCHO/CGLA in both answer
styles and with AT+CSIM alone; the SM-DP+ over HTTPS with real crypto.

Each link downloads, enables and shows the new profile; and each link loses its card in the
middle of the package (pcsc: the card process is killed; at: the modem loses its SIM; emu:
the card is pulled) and the retry starts clean, with nothing of the first attempt left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lpa_emulator import pki
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.orders import OrderState
from mps_esim.lpa.download import (
    CardUnavailableError,
    DownloadResult,
    Es10b,
    Es10bOverStoreData,
    ProfileDownloader,
    Stage,
)
from mps_esim.lpa.es10 import Es10Client
from tests.fixtures.cards import LINK_EID, LINK_ICCID_A, LinkUnderTest
from tests.integration.test_card_links import wait_for
from tests.rsp_support import Served, new_subscription, served_smdp


@pytest.fixture(scope="module")
def builtin_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SM-DP+ PKI under the built-in test CI, which the link cards are issued under."""
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, builtin_ci=True, euicc_count=0)
    return root


@pytest.fixture
def served(builtin_pki: Path, tmp_path: Path) -> Iterator[Served]:
    with served_smdp(builtin_pki, tmp_path / "smdp") as s:
        yield s


class CutsOff:
    """ES10b that takes the card away just before the ``at``-th package segment."""

    def __init__(self, inner: Es10b, at: int, remove: Callable[[], None]) -> None:
        self.inner = inner
        self.at = at
        self.remove = remove
        self.segments = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def load_bound_profile_package(self, segment: bytes) -> bytes:
        self.segments += 1
        if self.segments == self.at:
            self.remove()
        return self.inner.load_bound_profile_package(segment)


def download(served: Served, link: LinkUnderTest, matching_id: str) -> DownloadResult:
    with link.link.open_isdr() as isdr:
        card = Es10bOverStoreData(Es10Client(isdr))
        return ProfileDownloader(card, served.client).download(served.address, matching_id)


def test_download_and_enable(card_link: LinkUnderTest, served: Served) -> None:
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi, msisdn="+4915100005151")
    link = card_link.link
    before = link.apdu_count
    started = time.monotonic()
    result = download(served, card_link, order.matching_id)
    seconds, apdus = time.monotonic() - started, link.apdu_count - before
    assert result.iccid == iccid and result.notification_sent
    # Written to the card's state (by the card process, for pcsc) with its keys.
    record = card_link.state.find_profile(iccid=iccid)
    assert record is not None and (record.ki, record.opc) == (order.ki, order.opc)
    assert card_link.state.notifications == []
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED and found.eid == LINK_EID
    # Enabled, the new profile is what the card's file system shows.
    with link.open_isdr() as isdr:
        Es10Client(isdr).enable_profile(iccid=iccid)
    assert link.read_iccid() == iccid
    print(f"\ndownload over {card_link.name}: {seconds:.3f} s, {apdus} APDUs")


def test_card_removed_mid_package_then_clean_retry(card_link: LinkUnderTest,
                                                   served: Served) -> None:
    iccid, imsi = new_subscription()
    order = served.store.add(iccid=iccid, imsi=imsi)
    link = card_link.link
    with link.open_isdr() as isdr:
        # Gone before the last segment: all but the end of the package is loaded.
        card = CutsOff(Es10bOverStoreData(Es10Client(isdr)), 6, card_link.remove)
        with pytest.raises(CardUnavailableError) as info:
            ProfileDownloader(card, served.client).download(  # type: ignore[arg-type]
                served.address, order.matching_id)
    assert info.value.stage is Stage.LOAD
    card_link.restore()
    # The card comes back as it was: the first attempt left nothing behind.
    assert wait_for(link.read_iccid) == LINK_ICCID_A
    state = CardState.load(card_link.state_path)
    assert state.find_profile(iccid=iccid) is None and len(state.profiles) == 2
    assert [n.operation for n in state.notifications] == []
    result = download(served, card_link, order.matching_id)
    assert result.iccid == iccid
    found = served.store.get(order.matching_id)
    assert found is not None and found.state is OrderState.INSTALLED and found.attempts == 2

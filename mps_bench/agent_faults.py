"""Fault runs on the device side: a card that goes away during first boot, a modem that
answers garbage or never answers. The agent's own steps (probe, identity, outbox,
publish) run against an emulated modem on a pty, an in-process eUICC, a private
Mosquitto and a registry; each run counts what reached the registry.

The profile download step of first boot (SGP.22, with its own interruption tests in
``tests/integration/test_smdp_download.py``) is not driven here yet: once first boot
downloads, :func:`card_removed` gains a removal in the middle of the package
(``CARD_REMOVAL_POINTS``).
"""

from __future__ import annotations

import os
import pty
import random
import threading
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from agent.card import CardLink, open_card
from agent.card.emu import EmuCardLink
from agent.errors import AgentError
from agent.firstboot import FirstBoot, Settings
from agent.identity import Identity, read_identity
from agent.modem import Modem, open_modem
from broker_bridge.model import App, Contract, Subscription, TrustLevel
from broker_bridge.registry import Registry
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore, Store
from firmware_profiles import PROFILE_DIR, load_profile
from lpa_emulator.euicc import CardState, ProfileRecord
from lpa_emulator.euicc.state import isdp_aid_for
from lpa_emulator.modem import ModemEmulator, ModemState
from lpa_emulator.stack.mosquitto import Mosquitto
from mps_bench.faults import FaultResult
from mps_wire.identifiers import make_eid, make_iccid
from mps_wire.messages import PairRequest
from mps_wire.mqtt import BrokerURL

CONTRACT = "C-AGENT"
MSISDN = "+4915188000001"
ICCID = make_iccid("894926288000000001")
IMSI = "262880000000001"
EID = make_eid("890490320000000000000000008801")
MODEM_TIMEOUT = 1.0

#: Where a card goes away in :func:`card_removed`; a download step joins these once
#: first boot downloads profiles.
CARD_REMOVAL_POINTS = ("before-identity", "after-staging")


@dataclass
class _Rig:
    settings: Settings
    store: Store
    link: Path


@contextmanager
def _rig(workdir: Path) -> Iterator[_Rig]:
    """A registry knowing the card's subscription, a bridge, a broker, a modem on a pty
    and the agent's settings for them."""
    card = workdir / "euicc.json"
    CardState.new(eid=EID, profiles=[ProfileRecord(
        iccid=ICCID, imsi=IMSI, msisdn=MSISDN, isdp_aid=isdp_aid_for(0), enabled=True,
        name="Home", smdp_address="smdp.example.com")]).save(card)
    with ExitStack() as stack:
        store = stack.enter_context(SqliteStore(workdir / "registry.db"))
        with store.transaction():
            store.upsert_contract(Contract(CONTRACT, "Agent Faults"))
            store.upsert_number(MSISDN, CONTRACT)
            store.upsert_subscription(Subscription(ICCID, IMSI, MSISDN, CONTRACT))
            store.upsert_app(App("watcher", "Watcher", TrustLevel.PARTNER, ("support",),
                                 standing_consent=True))
        if not Registry(store).app_request("watcher", PairRequest(MSISDN, "support")).reply \
                .is_ok:
            raise RuntimeError("pairing the watcher failed")
        broker = stack.enter_context(Mosquitto(workdir=workdir / "broker"))
        stack.enter_context(Bridge(store, BrokerURL.parse(broker.url)))
        link = workdir / "modem"
        stack.enter_context(_emulated_modem(link, workdir))
        profile = load_profile(PROFILE_DIR / "emulated-emu.toml")
        settings = Settings.from_profile(profile, modem_port=str(link),
                                         card_url=f"emu://{card}", broker_url=broker.url,
                                         state_dir=workdir / "agent")
        yield _Rig(settings, store, link)


@contextmanager
def _emulated_modem(link: Path, workdir: Path) -> Iterator[None]:
    state = replace(ModemState.create(random.Random(11)), registration_delay=0.1)
    state.save(workdir / "modem.json")
    emulator = ModemEmulator(state, None, dialect="quectel", seed=11)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=emulator.serve_pty, args=(link, stop),
                              kwargs={"ready": ready}, name="fault-modem", daemon=True)
    thread.start()
    try:
        if not ready.wait(5):
            raise RuntimeError("the emulated modem did not come up")
        yield
    finally:
        stop.set()
        thread.join(5)


class _Hardware:
    """The agent's probe steps with a short modem timeout (first boot's own is 5 s)."""

    def __init__(self, settings: Settings, port: str, *, timeout: float) -> None:
        self.settings = settings
        self.modem = Modem(open_modem(port), dialect=settings.profile.modem.dialect,
                           timeout=timeout)
        self.card: CardLink | None = None

    def probe(self) -> None:
        self.modem.sync()
        self.card = open_card(self.settings.card_url, modem=self.modem)
        self.card.connect()
        self.modem.wait_registered(self.settings.network_timeout)

    def identity(self) -> Identity:
        if self.card is None:
            raise AgentError("the card is not open")
        return read_identity(self.modem, self.card)

    def close(self) -> None:
        if self.card is not None:
            self.card.close()
        self.modem.close()


def _counts(store: Store) -> tuple[int, int]:
    """(devices stored, registrations or device-added events stored more than once)."""
    stored = store.device_count()
    registered = sum(1 for e in store.audit()
                     if e.action == "register" and e.outcome == "registered")
    added = sum(1 for e in store.events_since("watcher", 0, limit=1000)
                if e.kind.value == "device-added")
    return stored, max(0, registered - 1, added - 1)


def card_removed(workdir: Path, _count: int = 0) -> FaultResult:
    """The card goes away before the identity is read (nothing is staged, nothing sent),
    comes back, and goes away again after the registration was staged (the outbox still
    delivers it); a reboot later registers the same identity again: one device, once."""
    started = time.monotonic()
    notes: list[str] = []
    with _rig(workdir) as rig:
        boot = FirstBoot(rig.settings)
        hw = _Hardware(rig.settings, str(rig.link), timeout=MODEM_TIMEOUT)
        try:
            hw.probe()
            card = hw.card
            if not isinstance(card, EmuCardLink):
                raise RuntimeError("the fault run needs the in-process card")
            card.eject()
            try:
                hw.identity()
                notes.append("identity read without a card!")
            except AgentError as exc:
                notes.append(f"card gone before identity: {type(exc).__name__}")
            if boot.outbox.load().pending is not None:
                notes.append("something was staged without an identity!")
            card.insert()
            info = boot.stage(hw.identity())
            card.eject()  # gone again: the staged message needs no card
            reply = boot.publish(info)
            notes.append(f"after staging: {reply.body.get('result')}")
            card.insert()
        finally:
            hw.close()
        # The next boot, card in place, the whole first boot: unchanged, not a second one.
        again = FirstBoot(rig.settings).run()
        notes.append(f"reboot: {again.reply.body.get('result')}")
        stored, duplicated = _counts(rig.store)
    return FaultResult("card-removed", sent=1, stored=stored, lost=1 - stored,
                       duplicated=duplicated, seconds=time.monotonic() - started, notes=notes)


@contextmanager
def _bad_modem(answer: Callable[[bytes], bytes | None]) -> Iterator[str]:
    """A pty whose far end answers every write with ``answer(data)`` (None: silence)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            reply = answer(data)
            if reply:
                os.write(master, reply)

    thread = threading.Thread(target=serve, name="bad-modem", daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
        thread.join(2)


def modem_faults(workdir: Path, _count: int = 0) -> FaultResult:
    """First a modem that answers every command with garbage, then one that never
    answers: first boot stops at the probe each time, staging and sending nothing; then
    the real modem: the device registers, once."""
    started = time.monotonic()
    notes: list[str] = []
    rng = random.Random(5)
    with _rig(workdir) as rig:
        boot = FirstBoot(rig.settings)
        for name, answer in (
                ("garbage", lambda _d: bytes(rng.randrange(256) for _ in range(64))),
                ("silent", lambda _d: None)):
            with _bad_modem(answer) as port:
                began = time.monotonic()
                try:
                    hw = _Hardware(rig.settings, port, timeout=MODEM_TIMEOUT)
                    try:
                        hw.probe()
                        notes.append(f"{name} modem passed the probe!")
                    finally:
                        hw.close()
                except AgentError as exc:
                    notes.append(f"{name}: {type(exc).__name__} after "
                                 f"{time.monotonic() - began:.1f} s")
            if boot.outbox.load().pending is not None:
                notes.append(f"{name}: something was staged!")
        hw = _Hardware(rig.settings, str(rig.link), timeout=MODEM_TIMEOUT)
        try:
            hw.probe()
            reply = boot.publish(boot.stage(hw.identity()))
            notes.append(f"real modem: {reply.body.get('result')}")
        finally:
            hw.close()
        stored, duplicated = _counts(rig.store)
    return FaultResult("modem-faults", sent=1, stored=stored, lost=1 - stored,
                       duplicated=duplicated, seconds=time.monotonic() - started, notes=notes)


FAULTS: dict[str, Callable[[Path, int], FaultResult]] = {
    "card-removed": card_removed,
    "modem-faults": modem_faults,
}

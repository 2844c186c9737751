"""Fault runs on the device side: a card that goes away during first boot (before its
identity is read, after its registration was staged, and in the middle of its profile
download), a modem that answers garbage or never answers. The agent's own steps (probe,
profile download, identity, outbox, publish) run against an emulated modem on a pty, an
in-process eUICC, an SM-DP+, a private Mosquitto and a registry; each run counts what
reached the registry.
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
from agent.firstboot import AgentSettings, FirstBoot
from agent.identity import Identity, read_identity
from agent.modem import Modem, open_modem
from broker_bridge.model import App, Contract, Installation, Subscription, TrustLevel
from broker_bridge.registry import BINDING_SOURCE, Registry
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore, Store
from firmware_profiles import PROFILE_DIR, load_profile
from lpa_emulator.euicc import CardState, ProfileRecord
from lpa_emulator.euicc.state import isdp_aid_for
from lpa_emulator.modem import ModemEmulator, ModemState
from mps_bench.faults import FaultResult
from mps_mqtt.client import BrokerURL
from mps_testbed.stack.mosquitto import Mosquitto
from mps_wire.identifiers import make_eid, make_iccid
from mps_wire.messages import PairRequest

CONTRACT = "C-AGENT"
MSISDN = "+4915188000001"
ICCID = make_iccid("894926288000000001")
IMSI = "262880000000001"
EID = make_eid("890490320000000000000000008801")
MODEM_TIMEOUT = 1.0

#: Where a card goes away: :func:`card_removed` (the first two) and
#: :func:`card_removed_mid_download`.
CARD_REMOVAL_POINTS = ("before-identity", "after-staging", "mid-download")
DOWNLOAD_ICCID = make_iccid("894926288000000002")
DOWNLOAD_IMSI = "262880000000002"
DOWNLOAD_MSISDN = "+4915188000002"


@dataclass
class _Rig:
    settings: AgentSettings
    store: Store
    link: Path
    broker: str


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
            # The card comes with its profile: the operator binds it to the eUICC.
            store.record_installation(Installation(ICCID, EID, "bind-home", BINDING_SOURCE, 0))
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
        settings = AgentSettings.from_profile(profile, modem_port=str(link),
                                         card_url=f"emu://{card}", broker_url=broker.url,
                                         state_dir=workdir / "agent")
        yield _Rig(settings, store, link, broker.url)


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

    def __init__(self, settings: AgentSettings, port: str, *, timeout: float,
                 card: CardLink | None = None) -> None:
        self.settings = settings
        self.modem = Modem(open_modem(port), dialect=settings.profile.modem.dialect,
                           timeout=timeout)
        self.card: CardLink | None = card

    def probe(self) -> None:
        self.modem.sync()
        if self.card is None:
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


class _PullableCard(EmuCardLink):
    """The in-process eUICC, pulled out once after ``pull_after`` APDUs of a download."""

    def __init__(self, state_path: Path, *, pull_after: int) -> None:
        super().__init__(state_path)
        self.pull_after = pull_after
        self.counting = False
        self.exchanged = 0
        self.pulled_at: int | None = None

    def _exchange(self, apdu: bytes) -> bytes:
        if self.counting and self.pulled_at is None:
            self.exchanged += 1
            if self.exchanged >= self.pull_after:
                self.pulled_at = self.exchanged
                self.eject()
        return super()._exchange(apdu)


def card_removed_mid_download(workdir: Path, _count: int = 0, *,
                              pull_after: int = 25) -> FaultResult:
    """An empty eUICC downloads its profile from the SM-DP+; ``pull_after`` APDUs into the
    download (the default lands in the middle of the bound profile package, whose segments
    are APDUs 22 to 28 of a download in 255-byte STORE DATA blocks here) the card is
    pulled. It comes back, the download starts over and completes, the device registers:
    one profile installed, one installation reported, one device."""
    from agent.activation import ActivationPlan, ensure_operational_profile
    from mps_testbed.smdp import start_smdp
    from mps_testbed.stack.procs import ProcessGroup

    started = time.monotonic()
    notes: list[str] = []
    with _rig(workdir) as rig, ProcessGroup(workdir / "logs") as procs:
        with rig.store.transaction():
            rig.store.upsert_subscription(Subscription(DOWNLOAD_ICCID, DOWNLOAD_IMSI,
                                                       DOWNLOAD_MSISDN, CONTRACT))
        smdp = start_smdp(workdir, procs, broker=rig.broker)
        try:
            code = smdp.order(DOWNLOAD_ICCID, DOWNLOAD_IMSI, DOWNLOAD_MSISDN)
            card_path = workdir / "empty-euicc.json"
            eid = CardState.new(profiles=[]).eid
            CardState.new(eid=eid, profiles=[]).save(card_path)
            card = _PullableCard(card_path, pull_after=pull_after)
            plan = ActivationPlan.from_config(None, code=code, ca_file=smdp.ca_file)
            settings = replace(rig.settings, card_url=f"emu://{card_path}")
            hw = _Hardware(settings, str(rig.link), timeout=MODEM_TIMEOUT, card=card)
            boot = FirstBoot(settings)
            try:
                hw.probe()
                card.counting = True
                try:
                    ensure_operational_profile(card, plan)
                    notes.append("the download survived a pulled card!")
                except AgentError as exc:
                    notes.append(f"card pulled {card.pulled_at} APDUs into the download: "
                                 f"{type(exc).__name__}")
                if CardState.load(card_path).profiles:
                    notes.append("a partial profile stayed on the card!")
                card.insert()
                outcome = ensure_operational_profile(card, plan)
                notes.append(f"again: {outcome.action} {outcome.iccid}")
                reply = boot.publish(boot.stage(hw.identity()))
                notes.append(f"registered: {reply.body.get('result')}")
            finally:
                hw.close()
        finally:
            smdp.close()
        installed = _wait_installations(rig.store, DOWNLOAD_ICCID)
        notes.append(f"installations reported: {installed}")
        stored, duplicated = _counts(rig.store)
        duplicated = max(duplicated, installed - 1)
        lost = 1 - stored + (1 if installed == 0 else 0)
    return FaultResult("card-removed-mid-download", sent=1, stored=stored, lost=lost,
                       duplicated=duplicated, seconds=time.monotonic() - started,
                       notes=notes)


def _wait_installations(store: Store, iccid: str, timeout: float = 10.0) -> int:
    """Installation results of ``iccid`` the registry recorded (the SM-DP+ reports them
    over MQTT, a moment after the download)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sum(1 for e in store.audit() if e.action == "installation"
                    and e.subject == iccid and e.outcome == "installed")
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


FAULTS: dict[str, Callable[[Path, int], FaultResult]] = {
    "card-removed": card_removed,
    "card-removed-mid-download": card_removed_mid_download,
    "modem-faults": modem_faults,
}

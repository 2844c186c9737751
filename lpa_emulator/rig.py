"""An emulated deployment: N devices (modem on a pty + eUICC each) booting against a
private broker and registry, then an app finding them by the owner's phone number.

``mps-emu demo`` runs it with Paul's four devices; ``mps-emu rig`` with N. Everything runs
as real processes speaking the real protocols: Mosquitto, the registry, one modem emulator
per device on its own pseudo-terminal, cards in-process, behind the modem, or behind the
real pcscd + vpcd in a private network namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpa_emulator.stack.mosquitto import Mosquitto, StackError
from lpa_emulator.stack.pcsc import PcscSandbox
from lpa_emulator.stack.procs import ProcessGroup, console_script, run
from mps_wire.identifiers import make_iccid

PROFILE_DIR = Path(__file__).resolve().parent.parent / "firmware_profiles"
CARD_KINDS = ("emu", "at", "pcsc")
VPCD_PORTS = (35963, 35964)  # the two slots of one vpcd reader driver


class RigError(Exception):
    """The emulated deployment could not be set up or did not do what it should."""


@dataclass
class DeviceSetup:
    """One emulated device: where its modem and card live and how the agent reaches them."""

    index: int
    kind: str
    workdir: Path
    iccid: str
    imsi: str
    msisdn: str
    eid: str = ""
    card_url: str = ""
    env: dict[str, str] | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"dev{self.index}"

    @property
    def modem_link(self) -> Path:
        return self.workdir / "modem"

    @property
    def card_state(self) -> Path:
        return self.workdir / "euicc.json"

    @property
    def profile(self) -> Path:
        return PROFILE_DIR / f"emulated-{self.kind}.toml"


@dataclass
class RigResult:
    """What a rig run produced."""

    devices: list[DeviceSetup]
    app_devices: list[dict[str, Any]]
    app_table: str
    seconds: float
    notes: list[str]

    @property
    def registered(self) -> int:
        return sum(1 for d in self.devices if d.error is None)

    @property
    def failed(self) -> int:
        return sum(1 for d in self.devices if d.error is not None)


@dataclass
class Story:
    """The people and numbers of an emulated deployment."""

    holder: str = "Paul"
    contract_id: str = "C-PAUL-0001"
    msisdn: str = "+4917612345678"
    app_id: str = "health-app"
    app_name: str = "Health companion"


def plan_devices(n: int, workdir: Path, kinds: list[str]) -> list[DeviceSetup]:
    """Identities for ``n`` devices; card kinds cycle through ``kinds``."""
    devices = []
    for i in range(n):
        devices.append(DeviceSetup(
            index=i,
            kind=kinds[i % len(kinds)],
            workdir=workdir / f"dev{i}",
            iccid=make_iccid(f"894901{i:012d}"),
            imsi=f"26201{i:010d}",
            msisdn=f"+49176{9000000 + i:07d}",
        ))
    return devices


def operator_data(story: Story, devices: list[DeviceSetup]) -> str:
    """The operator's data for the story as TOML (one contract, one trusted app)."""
    lines = ["[[contracts]]", f'id = "{story.contract_id}"', f'holder = "{story.holder}"',
             f'msisdns = ["{story.msisdn}"]', ""]
    for d in devices:
        lines += ["  [[contracts.subscriptions]]", f'  iccid = "{d.iccid}"',
                  f'  imsi = "{d.imsi}"', f'  msisdn = "{d.msisdn}"', ""]
    lines += ["[[apps]]", f'id = "{story.app_id}"', f'name = "{story.app_name}"',
              'trust = "partner"', ""]
    return "\n".join(lines)


class Rig:
    """Sets up and runs one emulated deployment; every process it starts it also stops."""

    def __init__(self, devices: int, *, workdir: Path | None = None,
                 kinds: list[str] | None = None, story: Story | None = None,
                 say: Callable[[str], None] = print, use_pcsc: bool | None = None,
                 keep: bool = False) -> None:
        if devices < 1:
            raise RigError("a rig needs at least one device")
        self.n = devices
        self.kinds = kinds or ["emu", "at", "pcsc", "at"]
        bad = set(self.kinds) - set(CARD_KINDS)
        if bad:
            raise RigError(f"unknown card kinds {sorted(bad)}; use {', '.join(CARD_KINDS)}")
        self.story = story or Story()
        self.say = say
        self.use_pcsc = use_pcsc
        self.keep = keep or workdir is not None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="mps-rig-"))
        self.notes: list[str] = []

    def run(self) -> RigResult:
        t0 = time.monotonic()
        try:
            with ProcessGroup(self.workdir / "logs") as procs:
                return self._run(procs, t0)
        finally:
            if not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _pcsc_possible(self) -> bool:
        if self.use_pcsc is False:
            return False
        ok, why = PcscSandbox.available()
        if not ok:
            if self.use_pcsc:
                raise RigError(f"PC/SC was asked for but cannot run here: {why}")
            self.notes.append(f"PC/SC devices use the in-process card instead: {why}")
        return ok

    def _run(self, procs: ProcessGroup, t0: float) -> RigResult:
        story = self.story
        devices = plan_devices(self.n, self.workdir, self.kinds)
        if any(d.kind == "pcsc" for d in devices) and not self._pcsc_possible():
            for d in devices:
                if d.kind == "pcsc":
                    d.kind = "emu"

        with Mosquitto(workdir=self.workdir / "mosquitto") as broker:
            self.say(f"broker      private Mosquitto at {broker.url}")
            self._make_cards(devices)
            db = self.workdir / "registry.sqlite"
            opfile = self.workdir / "operator.toml"
            opfile.write_text(operator_data(story, devices))
            self._check(run([*console_script("mps-bridge"), "operator", "import", str(opfile),
                             "--db", str(db)]), "operator import")
            self.say(f"operator    contract {story.contract_id} of {story.holder} "
                     f"({story.msisdn}) with {len(devices)} subscriptions; "
                     f"app {story.app_id} trusted")
            bridge = procs.start("bridge", [*console_script("mps-bridge"), "serve",
                                            "--db", str(db), "--broker", broker.url])
            bridge.wait_for_line("serving", 20)
            self.say("registry    mps-bridge serving")

            sandboxes = self._start_cards(devices, procs)
            try:
                self._start_modems(devices, procs)
                self._boot(devices, broker.url)
                table, listed = self._query(broker.url)
            finally:
                for sb in sandboxes:
                    sb.close()
        return RigResult(devices=devices, app_devices=listed, app_table=table,
                         seconds=time.monotonic() - t0, notes=self.notes)

    def _check(self, proc: Any, what: str) -> str:
        if proc.returncode != 0:
            raise RigError(f"{what} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
        return str(proc.stdout)

    def _make_cards(self, devices: list[DeviceSetup]) -> None:
        def make(d: DeviceSetup) -> None:
            d.workdir.mkdir(parents=True, exist_ok=True)
            out = self._check(run([*console_script("mps-emu"), "euicc", "--state",
                                   str(d.card_state), "--iccid", d.iccid, "--imsi", d.imsi,
                                   "--msisdn", d.msisdn]), f"card of {d.name}")
            d.eid = json.loads(out)["eid"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(make, devices))

    def _start_cards(self, devices: list[DeviceSetup], procs: ProcessGroup
                     ) -> list[PcscSandbox]:
        sandboxes: list[PcscSandbox] = []
        pcsc = [d for d in devices if d.kind == "pcsc"]
        for d in devices:
            if d.kind == "emu":
                d.card_url = f"emu://{d.card_state}"
            elif d.kind == "at":
                d.card_url = f"at://{d.modem_link}"
        # One pcscd per two cards: the vpcd driver has two slots per instance.
        for start in range(0, len(pcsc), len(VPCD_PORTS)):
            sandbox = PcscSandbox()
            sandbox.start()
            sandboxes.append(sandbox)
            for slot, d in enumerate(pcsc[start:start + len(VPCD_PORTS)]):
                argv = [*console_script("mps-emu"), "euicc", "--state", str(d.card_state),
                        "--vpcd", f"127.0.0.1:{VPCD_PORTS[slot]}"]
                procs.start(f"{d.name}-euicc", argv, prefix=sandbox.nsenter_prefix())
                reader = sandbox.reader_name(slot)
                d.card_url = f"pcsc://?reader={reader.replace(' ', '%20')}"
                d.env = sandbox.env()
                sandbox.wait_card(slot, timeout=15)
        if pcsc:
            self.say(f"pc/sc       {len(pcsc)} card(s) behind pcscd + vpcd in "
                     f"{len(sandboxes)} private network namespace(s)")
        return sandboxes

    def _start_modems(self, devices: list[DeviceSetup], procs: ProcessGroup) -> None:
        started = []
        for d in devices:
            argv = [*console_script("mps-emu"), "modem", "--link", str(d.modem_link),
                    "--state", str(d.workdir / "modem.json")]
            argv += ["--card-state", str(d.card_state)] if d.kind == "at" else ["--no-card"]
            started.append((d, procs.start(f"{d.name}-modem", argv)))
        for d, svc in started:
            svc.wait_for_path(d.modem_link, 15)
        self.say(f"modems      {len(devices)} emulated LTE modems on pseudo-terminals")

    def _boot(self, devices: list[DeviceSetup], broker_url: str) -> None:
        def boot(d: DeviceSetup) -> None:
            t = time.monotonic()
            env = dict(d.env if d.env is not None else os.environ)
            proc = run([*console_script("mps-agent"), "run", "--profile", str(d.profile),
                        "--modem", str(d.modem_link), "--card", d.card_url,
                        "--broker", broker_url, "--state-dir", str(d.workdir / "agent"),
                        "--json"], env=env, timeout=120)
            d.seconds = time.monotonic() - t
            if proc.returncode != 0:
                d.error = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                self.say(f"device      {d.name} ({d.kind:<4}) FAILED: {d.error}")
                return
            d.result = json.loads(proc.stdout)
            self.say(f"device      {d.name} ({d.kind:<4}) {d.result['result']:<10} "
                     f"EID {d.result['device_id']} in {d.seconds:.2f} s")

        with ThreadPoolExecutor(max_workers=min(8, len(devices))) as pool:
            list(pool.map(boot, devices))

    def _query(self, broker_url: str) -> tuple[str, list[dict[str, Any]]]:
        story = self.story
        base = [*console_script("mps-app"), "devices", "--msisdn", story.msisdn,
                "--broker", broker_url, "--app-id", story.app_id]
        listed = json.loads(self._check(run([*base, "--json"]), "app query"))
        table = self._check(run(base), "app query")
        return table, listed["devices"] if isinstance(listed, dict) else listed


def verify(result: RigResult) -> list[str]:
    """Problems with a rig run: devices that failed, or that the app did not see."""
    problems = [f"{d.name}: {d.error}" for d in result.devices if d.error]
    seen = {str(r.get("eid") or r.get("device_id")) for r in result.app_devices}
    for d in result.devices:
        if d.error is None and d.eid not in seen:
            problems.append(f"{d.name}: registered but not listed for the app")
    return problems


__all__ = ["Rig", "RigError", "RigResult", "StackError", "Story", "verify"]

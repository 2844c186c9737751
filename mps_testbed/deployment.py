"""The parts of an emulated deployment that start nothing: the devices' plan, the story's
people and apps, the rig's options, where cards get their profile, and the results."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from lpa_emulator.euicc import CardState, ProfileRecord
from lpa_emulator.modem.dialects import DIALECTS as MODEM_DIALECTS
from mps_mqtt.client import BrokerURL
from mps_testbed.errors import RigError
from mps_testbed.stack.procs import ProcessGroup
from mps_wire.identifiers import make_iccid

PROFILE_DIR = Path(__file__).resolve().parent.parent / "firmware_profiles"
CARD_KINDS = ("emu", "at", "pcsc")
DIALECTS = tuple(sorted(MODEM_DIALECTS))
VPCD_PORTS = (35963, 35964)  # the two slots of one vpcd reader driver
MODEMS_PER_PROCESS = 50
"""Modems one ``mps-emu modem`` process serves: one interpreter per 50 saves memory and
start-up time, while several processes spread the card traffic over the cores."""
SANDBOX_STARTS = 6
"""pcscd sandboxes coming up at once: each mostly waits (pcscd start, vpcd's ATR polling)."""
MAX_DEVICES = 100_000

OperatorData = Literal["auto", "import", "topic", "none"]


@dataclass
class DeviceSetup:
    """One emulated device: where its modem and card live and how the agent reaches them."""

    index: int
    kind: str
    workdir: Path
    iccid: str
    imsi: str
    msisdn: str
    dialect: str = "quectel"
    eid: str = ""
    card_url: str = ""
    env: dict[str, str] | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    held: bool = False  # held back from the boot phase, booted later by a session hook

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
    def template(self) -> Path:
        """The bundled profile this device's own profile starts from."""
        return PROFILE_DIR / f"emulated-{self.kind}.toml"

    @property
    def profile(self) -> Path:
        """The device's firmware profile, written by the rig."""
        return self.workdir / "profile.toml"

    @property
    def boot_seconds(self) -> float | None:
        """First boot inside the agent (without the interpreter's start-up)."""
        total = self.result.get("timings_s", {}).get("total")
        return float(total) if isinstance(total, int | float) else None

    @property
    def downloaded(self) -> bool:
        """Whether first boot downloaded the device's profile from the SM-DP+."""
        return "download a profile" in self.result.get("timings_s", {})


@dataclass
class RigResult:
    """What a rig run produced."""

    devices: list[DeviceSetup]
    app_devices: list[dict[str, Any]]
    app_table: str
    seconds: float
    notes: list[str]
    phases: dict[str, float] = field(default_factory=dict)
    app_checked: bool = True
    late: set[int] = field(default_factory=set)  # devices booted after the app check

    @property
    def registered(self) -> int:
        return sum(1 for d in self.devices if d.error is None and not d.held)

    @property
    def failed(self) -> int:
        return sum(1 for d in self.devices if d.error is not None)

    def per_device(self) -> dict[str, float]:
        """Seconds per device boot (agent process): mean, median, p95, max."""
        times = sorted(d.seconds for d in self.devices if not d.held)
        if not times:
            return {}
        p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
        return {"mean": statistics.fmean(times), "median": statistics.median(times),
                "p95": p95, "max": times[-1]}


@dataclass(frozen=True)
class StoryApp:
    """An app the operator registers for the story, with its trust level and purposes."""

    id: str
    name: str
    trust: str
    purposes: tuple[str, ...]


STORY_APPS = (
    StoryApp("operator-care", "Operator customer care", "partner", ("support",
                                                                   "device-discovery")),
    StoryApp("health-app", "Health companion", "verified", ("health-monitoring",)),
    StoryApp("fitness-tracker", "Fitness tracker", "unverified", ("fitness",)),
)


@dataclass
class Story:
    """The people, numbers and apps of an emulated deployment.

    ``app_id`` is the app the rig asks for the user's devices at the end of a run: a
    partner, which the operator lets see every device without asking the user.
    """

    holder: str = "Paul"
    contract_id: str = "C-PAUL-0001"
    msisdn: str = "+4917612345678"
    app_id: str = "operator-care"
    apps: tuple[StoryApp, ...] = STORY_APPS


class ProfileSource(Protocol):
    """Where the rig's devices get their operational profile.

    :meth:`start` brings up what the source needs (an SM-DP+) before cards are made;
    :meth:`make_card` writes a device's card state and returns its EID;
    :meth:`activation` is the ``[activation]`` table of the device's firmware profile
    (``None``: the card already has its profile).
    """

    def start(self, procs: ProcessGroup, workdir: Path, *, broker: str | None = None
              ) -> None: ...

    def make_card(self, device: DeviceSetup) -> str: ...

    def activation(self, device: DeviceSetup) -> dict[str, Any] | None: ...

    def agent_env(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class PreloadedProfiles:
    """Cards made with the device's operator profile already installed and enabled."""

    def start(self, procs: ProcessGroup, workdir: Path, *, broker: str | None = None
              ) -> None:
        """Nothing to start: no download happens."""

    def make_card(self, device: DeviceSetup) -> str:
        state = CardState.new(profiles=[ProfileRecord.generate(
            iccid=device.iccid, imsi=device.imsi, msisdn=device.msisdn)])
        device.workdir.mkdir(parents=True, exist_ok=True)
        state.save(device.card_state)
        return state.eid

    def activation(self, device: DeviceSetup) -> dict[str, Any] | None:
        return None

    def agent_env(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        """Nothing to stop."""


def plan_devices(n: int, workdir: Path, kinds: list[str], *, dialects: Iterable[str] = (
        "quectel",), first: int = 0) -> list[DeviceSetup]:
    """Identities for ``n`` devices numbered from ``first``; card kinds and modem dialects
    cycle through ``kinds`` and ``dialects``. The same numbers give the same identities,
    so operator data exported once fits every later run."""
    dialect_list = list(dialects)
    devices = []
    for i in range(first, first + n):
        devices.append(DeviceSetup(
            index=i,
            kind=kinds[(i - first) % len(kinds)],
            workdir=workdir / f"dev{i}",
            iccid=make_iccid(f"894901{i:012d}"),
            imsi=f"26201{i:010d}",
            msisdn=f"+49176{9000000 + i:07d}",
            dialect=dialect_list[(i - first) % len(dialect_list)],
        ))
    return devices


DEFAULT_KINDS = ("emu", "at", "pcsc", "at")


@dataclass(frozen=True, kw_only=True)
class RigOptions:
    """How a :class:`Rig` runs (see its documentation); every option has its default here.

    ``kinds`` and ``dialects`` cycle over the devices (None: :data:`DEFAULT_KINDS`, and
    quectel modems); ``workdir`` given keeps the rig's files (as ``keep`` does);
    ``parallel`` defaults to two agents per core.
    """

    workdir: Path | None = None
    kinds: Sequence[str] | None = None
    dialects: Sequence[str] | None = None
    story: Story | None = None
    say: Callable[[str], None] = print
    use_pcsc: bool | None = None
    keep: bool = False
    broker: str | None = None
    db: str | None = None
    operator_data: OperatorData = "auto"
    first: int = 0
    parallel: int | None = None
    progress: bool | None = None
    profiles: ProfileSource | None = None
    download: bool = True
    app_check: bool = True
    held_back: int = 0
    after_boot: Callable[[Any], None] | None = None
    enroll: Callable[[list[DeviceSetup], str], None] | None = None
    bridge_args: Sequence[str] = ()

    def check(self, devices: int) -> None:
        """Raise :class:`RigError` naming the first option that does not fit."""
        for failed, why in (*self._checks(devices), *self._deployment_checks()):
            if failed:
                raise RigError(why)

    def _checks(self, devices: int) -> list[tuple[bool, str]]:
        kinds = sorted(set(self.kinds or DEFAULT_KINDS) - set(CARD_KINDS))
        dialects = sorted(set(self.dialects or ("quectel",)) - set(DIALECTS))
        return [
            (not 1 <= devices <= MAX_DEVICES, f"a rig has 1 to {MAX_DEVICES} devices"),
            (bool(kinds), f"unknown card kinds {kinds}; use {', '.join(CARD_KINDS)}"),
            (bool(dialects), f"unknown dialects {dialects}; use {', '.join(DIALECTS)}"),
            (self.first < 0, "device numbers start at 0 or above"),
            (self.parallel is not None and self.parallel < 1, "parallel must be at least 1"),
            (self.held_back < 0 or (self.held_back > 0 and self.after_boot is None),
             "held-back devices need an after_boot hook to boot them"),
        ]

    def _deployment_checks(self) -> list[tuple[bool, str]]:
        if self.broker is None:
            return [(self.db is not None or self.operator_data not in ("auto", "import"),
                     "db and operator_data are for an existing deployment (broker)")]
        try:
            BrokerURL.parse(self.broker)
        except ValueError as exc:
            return [(True, str(exc))]
        return [
            (self.operator_data == "import" and self.db is None,
             "importing operator data into an existing registry needs its db"),
            (self.enroll is not None or bool(self.bridge_args),
             "enrolment and bridge options are for the embedded registry"),
        ]

    @property
    def operator_mode(self) -> OperatorData:
        """How the deployment learns the subscriptions, ``auto`` resolved."""
        if self.operator_data != "auto":
            return self.operator_data
        return "import" if self.broker is None or self.db is not None else "topic"


def verify(result: RigResult) -> list[str]:
    """Problems with a rig run: devices that failed, or that the app did not see."""
    problems = [f"{d.name}: {d.error}" for d in result.devices if d.error]
    if not result.app_checked:
        return problems
    seen = {str(r.get("eid") or r.get("device_id")) for r in result.app_devices}
    # Devices held back for a later hook were not there when the app asked.
    for d in result.devices:
        if d.error is None and d.index not in result.late and d.eid not in seen:
            problems.append(f"{d.name}: registered but not listed for the app")
    return problems


def summary(result: RigResult) -> str:
    """``registered: N, failed: M`` with the wall time and the time per device."""
    per = result.per_device()
    line = (f"registered: {result.registered}, failed: {result.failed} "
            f"({len(result.devices)} devices in {result.seconds:.1f} s")
    if per:
        line += (f"; per device boot: mean {per['mean']:.2f} s, median {per['median']:.2f} s, "
                 f"p95 {per['p95']:.2f} s, max {per['max']:.2f} s")
    return line + ")"

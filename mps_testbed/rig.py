"""An emulated deployment: N devices (modem on a pty + eUICC each) booting against a
broker and registry, then an app finding them by the owner's phone number.

``mps-emu demo`` runs it with Paul's four devices; ``mps-emu rig`` with N. Everything runs
as real processes speaking the real protocols: Mosquitto, the registry, the modem
emulators on their own pseudo-terminals (many per process), cards in-process, behind the
modem, or behind the real pcscd + vpcd in private network namespaces (two cards per
pcscd), and one ``mps-agent run`` process per device, a bounded number at a time.

Without a broker URL the rig starts the whole operator side itself (private Mosquitto, a
registry on a fresh SQLite file with operator data for the N devices). Given one, it uses
that deployment; the operator data for its devices goes in over the registry's operator
topic (as an operator system would send it), into a registry database named with ``db``,
or not at all (``operator_data="none"``: imported beforehand from
:func:`operator_data`'s output).

Where devices get their profile is a :class:`ProfileSource`: cards made with it enabled
(:class:`PreloadedProfiles`), or empty cards with an activation code or an eIM's order.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mps_common.progress import Progress
from mps_testbed.deployment import (
    CARD_KINDS,
    DEFAULT_KINDS,
    DIALECTS,
    MAX_DEVICES,
    MODEMS_PER_PROCESS,
    PROFILE_DIR,
    SANDBOX_STARTS,
    STORY_APPS,
    VPCD_PORTS,
    DeviceSetup,
    OperatorData,
    PreloadedProfiles,
    ProfileSource,
    RigOptions,
    RigResult,
    Story,
    StoryApp,
    plan_devices,
    summary,
    verify,
)
from mps_testbed.errors import RigError, StackError
from mps_testbed.operator import (
    OPERATOR_SOURCE,
    bind_profiles,
    operator_data,
    send_operator_data,
    toml_document,
    toml_value,
)
from mps_testbed.smdp import SmdpProfiles
from mps_testbed.stack.mosquitto import Mosquitto
from mps_testbed.stack.pcsc import PcscSandbox
from mps_testbed.stack.procs import ProcessGroup, console_script, fill_bytecode_cache, run


class Rig:
    """Sets up and runs one emulated deployment; every process it starts it also stops.

    ``broker``: an existing deployment's broker URL (default: start the embedded stack).
    ``db`` and ``operator_data`` say how that deployment learns the devices' subscriptions
    (see the module documentation). ``parallel`` bounds the agents booting at once;
    ``progress`` shows a live bar on a terminal (``None``: when stderr is one).
    ``download``: cards start empty and first boot downloads each device's profile from an
    SM-DP+ the rig starts (the default); else cards hold their profile from the start.
    """

    def __init__(self, devices: int, options: RigOptions | None = None,
                 **overrides: Any) -> None:
        # Options as keywords (Rig(4, kinds=["emu"])) or as one RigOptions, or both.
        opts = replace(options or RigOptions(), **overrides)
        opts.check(devices)
        self.n = devices
        self.options = opts
        self.kinds = list(opts.kinds or DEFAULT_KINDS)
        self.dialects = list(opts.dialects or ("quectel",))
        self.story = opts.story or Story()
        self.say = opts.say
        self.use_pcsc = opts.use_pcsc
        self.keep = opts.keep or opts.workdir is not None
        self.workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="mps-rig-"))
        self.broker = opts.broker
        self.db = opts.db
        self.operator_mode: OperatorData = opts.operator_mode
        self.first = opts.first
        # A boot is mostly its own CPU with short waits: two per core fill the waits.
        self.parallel = opts.parallel or 2 * (os.cpu_count() or 1)
        self.progress = opts.progress
        # By default every card starts empty and first boot downloads its profile from an
        # SM-DP+ over HTTPS; ``download=False`` makes cards with the profile installed.
        self.profiles = opts.profiles or (SmdpProfiles() if opts.download
                                          else PreloadedProfiles())
        self.app_check = opts.app_check
        self.held_back = opts.held_back
        self.after_boot = opts.after_boot
        # ``enroll(devices, db)`` runs once the cards exist (their EIDs known), before any
        # boot: the operator's chance to issue each device its credentials and keys.
        self.enroll = opts.enroll
        self.bridge_args = list(opts.bridge_args)
        self.notes: list[str] = []
        self.phases: dict[str, float] = {}
        self._bar: Progress | None = None
        self.env = self._child_env()

    @property
    def shares_bytecode(self) -> bool:
        """Whether the rig's processes share a bytecode cache (see :meth:`_child_env`)."""
        return self.n > self.parallel and "PYTHONDONTWRITEBYTECODE" in os.environ

    def _child_env(self) -> dict[str, str]:
        """The environment of every process the rig starts.

        Where bytecode is not written (PYTHONDONTWRITEBYTECODE) hundreds of short-lived
        Python processes would each compile the project's modules again: they share one
        bytecode cache in the rig's work directory instead, which goes with it. Filling
        it costs about one agent start, so a rig of one wave of agents goes without.
        """
        env = dict(os.environ)
        if self.shares_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        return env

    # --- output --------------------------------------------------------------------------

    def _emit(self, message: str) -> None:
        bar = self._bar
        if bar is not None:
            bar.message(message, write=self.say)
        else:
            self.say(message)

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(time.monotonic() - started, 3)

    # --- run -----------------------------------------------------------------------------

    def run(self) -> RigResult:
        t0 = time.monotonic()
        try:
            with ProcessGroup(self.workdir / "logs") as procs:
                return self._run(procs, t0)
        finally:
            self.profiles.close()
            if not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def plan(self) -> list[DeviceSetup]:
        """The devices this rig runs (identities only; nothing is started). Held-back
        devices come last, with their card in-process."""
        devices = plan_devices(self.n + self.held_back, self.workdir, self.kinds,
                               dialects=self.dialects, first=self.first)
        for d in devices[self.n:]:
            d.held, d.kind = True, "emu"
        return devices

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
        devices = self.plan()
        if any(d.kind == "pcsc" for d in devices) and not self._pcsc_possible():
            for d in devices:
                d.kind = "emu" if d.kind == "pcsc" else d.kind
        with ExitStack() as stack:
            broker_url = self._operator_side(devices, procs, stack)
            self._make_cards(devices, procs, broker_url)
            self._start_modems(devices, procs)
            if self.shares_bytecode:
                self._warm_up()
            booting = [d for d in devices if not d.held]
            self._boot(booting, broker_url, procs, stack)
            table, listed, checked = self._query(broker_url, booting)
            late = [d for d in devices if d.held]
            if self.after_boot is not None:
                self.after_boot(RigSession(self, broker_url, late, app_table=table))
        return RigResult(devices=devices, app_devices=listed, app_table=table,
                         seconds=time.monotonic() - t0, notes=self.notes,
                         phases=self.phases, app_checked=checked,
                         late={d.index for d in late})

    def _make_cards(self, devices: list[DeviceSetup], procs: ProcessGroup,
                    broker_url: str) -> None:
        with self._phase("cards"):
            self.profiles.start(procs, self.workdir, broker=broker_url)
            self.env.update(self.profiles.agent_env())
            for d in devices:
                d.eid = self.profiles.make_card(d)
        db = str(self.workdir / "registry.sqlite") if self.broker is None else self.db
        if isinstance(self.profiles, PreloadedProfiles) and db:
            bind_profiles(db, devices)  # no SM-DP+ reports these profiles installed
        if self.enroll is not None:
            with self._phase("enrolment"):
                self.enroll(devices, str(self.workdir / "registry.sqlite"))
        for line in getattr(self.profiles, "describe", lambda _cards: [])(len(devices)):
            self.say(line)

    # --- the operator side ---------------------------------------------------------------

    def _operator_side(self, devices: list[DeviceSetup], procs: ProcessGroup,
                       stack: ExitStack) -> str:
        story = self.story
        with self._phase("operator"):
            if self.broker is None:
                broker = stack.enter_context(Mosquitto(workdir=self.workdir / "mosquitto"))
                url = broker.url
                self.say(f"broker      private Mosquitto at {url}")
                db = str(self.workdir / "registry.sqlite")
            else:
                url, db = self.broker, self.db or ""
                self.say(f"broker      {url} (an existing deployment)")
            if self.operator_mode == "import":
                opfile = self.workdir / "operator.toml"
                self.workdir.mkdir(parents=True, exist_ok=True)
                opfile.write_text(operator_data(story, devices))
                self._check(run([*console_script("mps-bridge"), "operator", "import",
                                 str(opfile), "--db", db], env=self.env, timeout=120),
                            "operator import")
                how = "imported"
            elif self.operator_mode == "topic":
                send_operator_data(url, story, devices)
                how = f"sent on the operator topic as {OPERATOR_SOURCE!r}"
            else:
                how = "expected to be there already"
            self.say(f"operator    contract {story.contract_id} of {story.holder} "
                     f"({story.msisdn}) with {len(devices)} subscriptions {how}")
            if self.broker is None:
                self._check(run([*console_script("mps-bridge"), "db", "init", "--db", db],
                                env=self.env, timeout=60), "db init")
                bridge = procs.start("bridge", [*console_script("mps-bridge"), "serve",
                                                "--db", db, "--broker", url,
                                                *self.bridge_args], env=self.env)
                bridge.wait_for_line("serving", 20)
                self.say("registry    mps-bridge serving")
        return url

    def _check(self, proc: Any, what: str) -> str:
        if proc.returncode != 0:
            raise RigError(f"{what} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
        return str(proc.stdout)

    # --- hardware ------------------------------------------------------------------------

    def _card_urls(self, devices: list[DeviceSetup]) -> None:
        for d in devices:
            if d.kind == "emu":
                d.card_url = f"emu://{d.card_state}"
            elif d.kind == "at":
                d.card_url = "at://"  # through the device's own modem

    def _bring_up_pcsc(self, sandbox: PcscSandbox, group: list[DeviceSetup],
                       procs: ProcessGroup) -> list[DeviceSetup]:
        """Start one pcscd sandbox and serve ``group``'s cards (one per vpcd slot) in it."""
        sandbox.start()
        for slot, d in enumerate(group):
            argv = [*console_script("mps-emu"), "euicc", "--state", str(d.card_state),
                    "--vpcd", f"127.0.0.1:{VPCD_PORTS[slot]}"]
            procs.start(f"{d.name}-euicc", argv, prefix=sandbox.nsenter_prefix(),
                        env=self.env)
            reader = sandbox.reader_name(slot).replace(" ", "%20")
            d.card_url = f"pcsc://?reader={reader}"
            d.env = sandbox.env(self.env)
        for slot in range(len(group)):
            sandbox.wait_card(slot, timeout=30)
        return group

    def _start_modems(self, devices: list[DeviceSetup], procs: ProcessGroup) -> None:
        with self._phase("modems"):
            shards = [devices[i:i + MODEMS_PER_PROCESS]
                      for i in range(0, len(devices), MODEMS_PER_PROCESS)]
            started = []
            for k, shard in enumerate(shards):
                manifest = self.workdir / f"modems{k}.toml"
                lines: list[str] = []
                for d in shard:
                    lines += ["[[modem]]", f"link = {toml_value(str(d.modem_link))}",
                              f"state = {toml_value(str(d.workdir / 'modem.json'))}",
                              f"dialect = {toml_value(d.dialect)}"]
                    lines += [f"card_state = {toml_value(str(d.card_state))}"] \
                        if d.kind == "at" else ["no_card = true"]
                    lines.append("")
                manifest.write_text("\n".join(lines))
                started.append((shard, procs.start(
                    f"modems{k}", [*console_script("mps-emu"), "modem", "--manifest",
                                   str(manifest)], env=self.env)))
            for shard, svc in started:
                for d in shard:
                    svc.wait_for_path(d.modem_link, 30)
        dialects = ", ".join(sorted({d.dialect for d in devices}))
        self.say(f"modems      {len(devices)} emulated LTE modems ({dialects}) on "
                 f"pseudo-terminals, {len(shards)} process(es)")

    def _warm_up(self) -> None:
        """Agent starts before many: they fill the shared bytecode cache with what a boot
        loads, which the first agents would otherwise each compile again."""
        with self._phase("warm-up"):
            run([*console_script("mps-agent"), "profiles", "list"], env=self.env, timeout=60)
            fill_bytecode_cache(env=self.env)

    def _write_profiles(self, devices: list[DeviceSetup], broker_url: str) -> None:
        import tomllib

        templates: dict[Path, dict[str, Any]] = {}
        for d in devices:
            if d.template not in templates:
                templates[d.template] = tomllib.loads(d.template.read_text())
            base = templates[d.template]
            doc: dict[str, Any] = {
                "name": base["name"],
                "description": base.get("description", ""),
                "modem": {"port": str(d.modem_link), "dialect": d.dialect},
                "card": {"url": d.card_url},
                "broker": {"url": broker_url},
                "device": {**base.get("device", {}), "state_dir": str(d.workdir / "agent")},
            }
            activation = self.profiles.activation(d)
            if activation is not None:
                doc["activation"] = activation
            d.profile.write_text(toml_document(doc))

    # --- first boot ----------------------------------------------------------------------

    def _boot(self, devices: list[DeviceSetup], broker_url: str, procs: ProcessGroup,
              stack: ExitStack) -> None:
        """Boot every device, a bounded number at a time. Devices whose card is on PC/SC
        join as their pcscd sandbox comes up, so the others boot meanwhile."""
        self._card_urls(devices)
        pcsc = [d for d in devices if d.kind == "pcsc"]
        groups = [pcsc[i:i + len(VPCD_PORTS)] for i in range(0, len(pcsc), len(VPCD_PORTS))]
        counts = {"registered": 0, "failed": 0}

        def note() -> str:
            return f"registered {counts['registered']}, failed {counts['failed']}"

        bar = Progress(len(devices), label="first boot", note=note, enabled=self.progress)
        self._bar = bar
        started = time.monotonic()
        try:
            with self._phase("boot"), bar, \
                    ThreadPoolExecutor(max_workers=min(self.parallel, len(devices))) as boots, \
                    ThreadPoolExecutor(max_workers=SANDBOX_STARTS) as sandboxes:
                # A device's boot, or the bring-up of a sandbox for a group of devices.
                pending: dict[Future[Any], DeviceSetup | list[DeviceSetup]] = {}

                def submit(ready: list[DeviceSetup]) -> None:
                    self._write_profiles(ready, broker_url)
                    for d in ready:
                        pending[boots.submit(self._boot_one, d, self.env)] = d

                for group in groups:
                    # pcscd start-up is mostly waiting: overlap it with booting the rest.
                    sandbox = PcscSandbox()
                    stack.callback(sandbox.close)
                    pending[sandboxes.submit(self._bring_up_pcsc, sandbox, group, procs)] = group
                submit([d for d in devices if d.kind != "pcsc"])
                while pending:
                    # Short waits keep the elapsed time on the bar moving.
                    done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        d = pending.pop(future)
                        if isinstance(d, list):
                            try:
                                submit(future.result())
                            except (StackError, OSError) as exc:
                                for member in d:
                                    member.error = f"its pcscd sandbox failed: {exc}"
                                    counts["failed"] += 1
                                    bar.advance()
                                    self._report_device(member)
                            if not any(isinstance(v, list) for v in pending.values()):
                                self.phases["pc/sc"] = round(time.monotonic() - started, 3)
                                self._emit(f"pc/sc       {len(pcsc)} card(s) behind pcscd + "
                                           f"vpcd in {len(groups)} private network "
                                           f"namespace(s)")
                            continue
                        future.result()
                        counts["failed" if d.error else "registered"] += 1
                        bar.advance()
                        self._report_device(d)
                    bar.refresh()
        finally:
            self._bar = None

    @staticmethod
    def _boot_one(d: DeviceSetup, env: dict[str, str]) -> None:
        t = time.monotonic()
        proc = run([*console_script("mps-agent"), "run", "--profile", str(d.profile),
                    "--json"], env=d.env if d.env is not None else env, timeout=120)
        d.seconds = time.monotonic() - t
        if proc.returncode != 0:
            d.error = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return
        try:
            d.result = json.loads(proc.stdout)
        except json.JSONDecodeError:
            d.error = f"unreadable agent output: {proc.stdout[:80]!r}"

    def _report_device(self, d: DeviceSetup) -> None:
        if d.error is not None:
            self._emit(f"device      {d.name} ({d.kind:<4} {d.dialect}) FAILED: {d.error}")
        else:
            self._emit(f"device      {d.name} ({d.kind:<4} {d.dialect}) "
                       f"{'downloaded, ' if d.downloaded else ''}"
                       f"{d.result.get('result', '?'):<10} EID {d.result.get('device_id')} "
                       f"in {d.seconds:.2f} s")

    # --- what an app sees ----------------------------------------------------------------

    def _query(self, broker_url: str, devices: list[DeviceSetup]
               ) -> tuple[str, list[dict[str, Any]], bool]:
        if not self.app_check:
            return "", [], False
        story = self.story
        base = [*console_script("mps-app"), "devices", "--msisdn", story.msisdn,
                "--broker", broker_url, "--app-id", story.app_id]
        with self._phase("app"):
            proc = run([*base, "--json"], env=self.env, timeout=60)
            if proc.returncode != 0:
                if self.broker is None:
                    self._check(proc, "app query")
                # Someone else's registry may not know the story's app: not the devices'
                # failure, so a note instead.
                self.notes.append(f"the app check was refused ({proc.stderr.strip()}); "
                                  f"add app {story.app_id!r} to that registry to run it")
                return "", [], False
            listed = json.loads(proc.stdout)
            table = self._check(run(base, env=self.env, timeout=60), "app query") \
                if len(devices) <= 20 \
                else f"app {story.app_id} lists {len(self._devices_of(listed))} devices " \
                     f"for {story.msisdn}"
        return table, self._devices_of(listed), True

    @staticmethod
    def _devices_of(listed: Any) -> list[dict[str, Any]]:
        return list(listed["devices"] if isinstance(listed, dict) else listed)


class RigSession:
    """What an ``after_boot`` hook gets: the running deployment and its held-back devices."""

    def __init__(self, rig: Rig, broker_url: str, held: list[DeviceSetup], *,
                 app_table: str = "") -> None:
        self.rig = rig
        self.broker_url = broker_url
        self.held = held
        self.app_table = app_table  # what the rig's app check printed
        self.say = rig.say

    def boot(self, device: DeviceSetup) -> DeviceSetup:
        """First boot of a held-back device, now; its outcome is on the device."""
        if not device.held:
            raise RigError(f"{device.name} was booted with the others")
        self.rig._card_urls([device])
        self.rig._write_profiles([device], self.broker_url)
        self.rig._boot_one(device, self.rig.env)
        device.held = False
        self.rig._report_device(device)
        return device



__all__ = ["CARD_KINDS", "DEFAULT_KINDS", "DIALECTS", "MAX_DEVICES", "MODEMS_PER_PROCESS",
           "OPERATOR_SOURCE", "PROFILE_DIR", "SANDBOX_STARTS", "STORY_APPS", "VPCD_PORTS",
           "DeviceSetup", "OperatorData", "PreloadedProfiles", "ProfileSource", "Rig",
           "RigError", "RigOptions", "RigResult", "RigSession", "StackError", "Story",
           "StoryApp", "operator_data", "plan_devices", "send_operator_data", "summary",
           "toml_document", "verify"]

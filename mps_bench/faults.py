"""mps-bench faults: the attack suite and the fault runs, counted.

Fault runs, all on loopback and bounded in count and time:

- bridge-killed: N devices register (signed) while the registry process is killed
  with SIGKILL and started again;
- broker-restarted: N devices register while Mosquitto (with persistence) restarts;
- broker-killed: the same with Mosquitto killed by SIGKILL and started again;
- member-stopped: one of two registry members gets SIGTERM under the load and stays
  down (:mod:`mps_bench.member_faults`);
- store-full: the registry's database cannot grow for a while under the load, as on a
  full disk (:mod:`mps_bench.store_faults`);
- clients-broker-killed: the project's own clients (100 device agents, 4 apps on the
  SDK) while Mosquitto is killed, with their retry and, for comparison, without;
- card-removed: a device whose card goes away mid first boot (before its identity
  is read, and again after its registration was staged), then comes back;
- modem-faults: a modem that answers garbage, then one that never answers;
- flood: one app pipelines 10,000 queries while another's latency is measured
  (:mod:`mps_bench.flood`; targets: its p50 within 2x of quiet, none over a second).

Devices behave like agents with an outbox: a registration without an answer in time is
published again, the very same message. Each run counts what was sent, what the registry
stored, what was lost (sent, never stored) and what was stored twice (a second
registered for one EID, or a second device-added event for one device to the app
paired with the contract).

    mps-bench faults [--registrations 5000] [--json FILE] [--details FILE]
                     [--only FAULT]... [--skip-attacks] [--keep DIR]

Exit status 1 when an attack got in, a fault run lost or duplicated anything, or the
flood missed its targets.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.model import App, Contract, Installation, Subscription, TrustLevel
from broker_bridge.registry import BINDING_SOURCE, Registry
from broker_bridge.storage import SqliteStore
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, table
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client, new_properties, subscribe
from mps_testbed.stack.mosquitto import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, Service, console_script
from mps_wire import codec
from mps_wire.cose import public_key_der
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import DeviceInfo, ModelInfo, PairRequest
from mps_wire.registration import encode_registration
from mps_wire.topics import Topics

if TYPE_CHECKING:
    from mps_bench.attacks import AttackReport

log = logging.getLogger(__name__)

LOAD_CONTRACT = "C-LOAD"
LOAD_MSISDN = "+4915199000000"
WATCHER = "watcher"
DEFAULT_REGISTRATIONS = 5000
FLOOD = "flood"


@dataclass
class FaultResult:
    """What one fault run sent and what the registry holds afterwards."""

    name: str
    sent: int
    stored: int
    lost: int
    duplicated: int
    resent: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sent": self.sent, "stored": self.stored,
                "lost": self.lost, "duplicated": self.duplicated, "resent": self.resent,
                "seconds": round(self.seconds, 3), "notes": self.notes}


# --- the load: N devices at once -----------------------------------------------------------

def load_device(n: int) -> DeviceInfo:
    """Device ``n`` of the load, holding subscription ``n`` of :data:`LOAD_CONTRACT`."""
    return DeviceInfo(eid=make_eid(f"89049077{n:022d}"), imei=make_imei("35677700", f"{n:06d}"),
                      iccid=make_iccid(f"894926277{n:09d}"), imsi=f"26277{n:010d}",
                      ip=(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",),
                      capabilities=("lte",), model=ModelInfo("Load", "L1", "1"),
                      profile="fault-load", seq=1, ts=1_700_000_000_000)


def device_key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(1_000_003 + n, ec.SECP256R1())


def prepare_registry(db: Path, count: int) -> None:
    """A registry with one contract of ``count`` subscriptions, every device's key
    enrolled, and an app paired with the contract (so every registration is an event)."""
    with SqliteStore(db) as store:
        registry = Registry(store)
        with store.transaction():
            store.upsert_contract(Contract(LOAD_CONTRACT, "Load Test"))
            store.upsert_number(LOAD_MSISDN, LOAD_CONTRACT)
            for n in range(count):
                info = load_device(n)
                store.upsert_subscription(Subscription(info.iccid, info.imsi, None,
                                                       LOAD_CONTRACT))
                store.record_installation(Installation(info.iccid, info.device_id, f"bind-{n}",
                                                       BINDING_SOURCE, 0))
            store.upsert_app(App(WATCHER, "Watcher", TrustLevel.PARTNER, ("support",),
                                 standing_consent=True))
        with store.transaction():
            for n in range(count):
                registry.enroll_device_key(load_device(n).device_id,
                                           public_key_der(device_key(n).public_key()),
                                           actor="operator:bench")
        outcome = registry.app_request(WATCHER, PairRequest(LOAD_MSISDN, "support"))
        if not outcome.reply.is_ok:
            raise RuntimeError(f"pairing the watcher failed: {outcome.reply}")


@dataclass
class Tally:
    """What the registry stored for the load's devices."""

    stored: int
    duplicated: int
    events: int
    gaps: int


def tally(db: Path, count: int) -> Tally:
    """Count stored devices, second registrations and second device-added events."""
    eids = {load_device(n).eid for n in range(count)}
    with SqliteStore(db) as store:
        stored = sum(1 for d in store.devices_of_contract(LOAD_CONTRACT) if d.eid in eids)
        registered = Counter(e.subject for e in store.audit()
                             if e.action == "register" and e.outcome == "registered")
        events = store.events_since(WATCHER, 0, limit=10 * count + 10)
    added = Counter(str(e.payload.get("device", {}).get("eid")) for e in events
                    if e.kind.value == "device-added")
    duplicated = max(sum(c - 1 for c in registered.values() if c > 1),
                     sum(c - 1 for c in added.values() if c > 1))
    seqs = [e.seq for e in events]
    gaps = len(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    return Tally(stored, duplicated, len(events), gaps)


def load_result(name: str, db: Path, count: int, *, resent: int, started: float,
                notes: list[str]) -> FaultResult:
    """The result of a fault run under a :class:`FaultLoad` of ``count`` registrations:
    what the registry stored, counted from its database."""
    counted = tally(db, count)
    if counted.gaps:
        notes.append(f"{counted.gaps} gaps in the watcher's event stream")
    return FaultResult(name, sent=count, stored=counted.stored,
                       lost=count - counted.stored, duplicated=counted.duplicated,
                       resent=resent, seconds=time.monotonic() - started, notes=notes)


class FaultLoad:
    """Plays ``count`` devices: each publishes its signed registration (QoS 1, Response
    Topic under its own namespace) and publishes the same message again when no answer
    came within ``retry_after`` seconds, as the agent's outbox does. At most ``window``
    registrations wait for an answer at once."""

    def __init__(self, broker: BrokerURL, topics: Topics, count: int, *,
                 window: int = 200, retry_after: float = 5.0,
                 client_id: str = "mps-fault-load") -> None:
        self.topics = topics
        self.count = count
        self.window = window
        self.retry_after = retry_after
        self.payloads = [encode_registration(load_device(n), device_key(n))
                         for n in range(count)]
        self.answered: dict[int, str] = {}
        self.sent = 0
        self.resent = 0
        self._waiting: dict[int, float] = {}
        self._cond = threading.Condition()
        self._client = new_client(client_id, persistent=True)
        self._client.on_message = self._on_reply
        self._broker = broker

    def __enter__(self) -> FaultLoad:
        connect(self._client, self._broker, persistent=True)
        subscribe(self._client, self._replies, timeout=10)
        self._client.on_connect = self._on_reconnect
        return self

    @property
    def _replies(self) -> str:
        return f"{self.topics.prefix}/devices/+/reply"

    def _on_reconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any,
                      _p: Any) -> None:
        # A broker killed within a second of the SUBSCRIBE restores the session without
        # it (and says the session was kept): subscribe again, always.
        if not reason.is_failure:
            client.subscribe(self._replies, qos=1)

    def __exit__(self, *_exc: object) -> None:
        disconnect(self._client)

    def _on_reply(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        if corr is None:
            return
        n = int.from_bytes(corr, "big")
        try:
            status = str(codec.decode(bytes(msg.payload)).get("status"))
        except ValueError:
            status = "unreadable"
        with self._cond:
            if status == "error" and n in self._waiting:
                # An internal error: the device tries again after its backoff.
                self._waiting[n] = time.monotonic() - self.retry_after + 0.5
                return
            self.answered.setdefault(n, status)
            self._waiting.pop(n, None)
            self._cond.notify_all()

    def _send(self, n: int) -> None:
        eid = load_device(n).device_id
        props = new_properties()
        props.ResponseTopic = self.topics.device_reply(eid)
        props.CorrelationData = n.to_bytes(4, "big")
        # Disconnected: paho queues QoS 1 messages and sends them after reconnecting.
        self._client.publish(self.topics.device_register(eid), self.payloads[n], qos=1,
                             properties=props)

    def run(self, deadline: float, *, during: Callable[[FaultLoad], None] | None = None
            ) -> None:
        """Send every registration and wait for the answers until ``deadline``
        (monotonic); ``during`` is called now and then from this thread (to inject the
        fault)."""
        nxt = 0
        while time.monotonic() < deadline:
            with self._cond:
                if len(self.answered) >= self.count:
                    return
                now = time.monotonic()
                late = [n for n, at in self._waiting.items() if now - at > self.retry_after]
                for n in late:
                    self._waiting[n] = now
                free = self.window - len(self._waiting)
                fresh = list(range(nxt, min(self.count, nxt + max(0, free))))
                nxt += len(fresh)
                for n in fresh:
                    self._waiting[n] = now
            for n in late:
                self.resent += 1
                self._send(n)
            for n in fresh:
                self.sent += 1
                self._send(n)
            if during is not None:
                during(self)
            with self._cond:
                self._cond.wait(0.05)


# --- the runs ------------------------------------------------------------------------------

def _bridge(procs: ProcessGroup, name: str, db: Path, broker: str, topics: Topics) -> Service:
    service = procs.start(name, [*console_script("mps-bridge"), "serve", "--db", str(db),
                                 "--broker", broker, "--prefix", topics.prefix,
                                 "--client-id", "mps-fault-bridge"])
    service.wait_for_line("serving", 30)
    return service


def bridge_killed(workdir: Path, count: int = DEFAULT_REGISTRATIONS, *,
                  timeout: float = 300.0) -> FaultResult:
    """Kill the registry with SIGKILL when 30% of the registrations were answered, start
    it again half a second later, and count."""
    started = time.monotonic()
    db = workdir / "registry.db"
    prepare_registry(db, count)
    topics = Topics("faults/mps/v1")
    notes: list[str] = []
    with Mosquitto(workdir=workdir / "broker") as broker, ProcessGroup(workdir / "logs") as procs:
        bridge = _bridge(procs, "bridge", db, broker.url, topics)
        state = {"killed": False}

        def fault(load: FaultLoad) -> None:
            if not state["killed"] and len(load.answered) >= count * 0.3:
                state["killed"] = True
                bridge.proc.send_signal(signal.SIGKILL)
                bridge.proc.wait(10)
                notes.append(f"killed the bridge after {len(load.answered)} answers, "
                             f"{load.sent} sent")
                time.sleep(0.5)
                _bridge(procs, "bridge-restarted", db, broker.url, topics)

        with FaultLoad(BrokerURL.parse(broker.url), topics, count) as load:
            load.run(started + timeout, during=fault)
            answered = len(load.answered)
        notes.append(f"{answered} of {count} answered")
        procs.stop_all()
    return load_result("bridge-killed", db, count, resent=load.resent, started=started,
                       notes=notes)


def broker_restarted(workdir: Path, count: int = DEFAULT_REGISTRATIONS, *,
                     timeout: float = 300.0) -> FaultResult:
    """Restart Mosquitto (persistence on) when 30% of the registrations were answered."""
    return _broker_fault(workdir, count, timeout=timeout, kill=False)


def broker_killed(workdir: Path, count: int = DEFAULT_REGISTRATIONS, *,
                  timeout: float = 300.0) -> FaultResult:
    """Kill Mosquitto with SIGKILL (persistence on, saved every second) when 30% of the
    registrations were answered, and start it again."""
    return _broker_fault(workdir, count, timeout=timeout, kill=True)


def _broker_fault(workdir: Path, count: int, *, timeout: float, kill: bool) -> FaultResult:
    started = time.monotonic()
    db = workdir / "registry.db"
    prepare_registry(db, count)
    topics = Topics("faults/mps/v1")
    notes: list[str] = []
    broker = Mosquitto(workdir=workdir / "broker", persistence=True)
    with broker, ProcessGroup(workdir / "logs") as procs:
        _bridge(procs, "bridge", db, broker.url, topics)
        state = {"restarted": False}

        def fault(load: FaultLoad) -> None:
            if not state["restarted"] and len(load.answered) >= count * 0.3:
                state["restarted"] = True
                notes.append(f"{'killed' if kill else 'restarted'} the broker after "
                             f"{len(load.answered)} answers, {load.sent} sent")
                if kill:
                    broker.stop(kill=True)
                    broker.start()
                else:
                    broker.restart()

        with FaultLoad(BrokerURL.parse(broker.url), topics, count) as load:
            load.run(started + timeout, during=fault)
            answered = len(load.answered)
        notes.append(f"{answered} of {count} answered")
        procs.stop_all()
    return load_result("broker-killed" if kill else "broker-restarted", db, count,
                       resent=load.resent, started=started, notes=notes)


# --- the command ---------------------------------------------------------------------------

@contextmanager
def _workdir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="mps-faults-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


FAULTS: dict[str, Callable[[Path, int], FaultResult]] = {
    "bridge-killed": bridge_killed,
    "broker-restarted": broker_restarted,
    "broker-killed": broker_killed,
}


def run_faults(workdir: Path, count: int, names: Sequence[str] | None = None
               ) -> list[FaultResult]:
    """Run the fault runs named (default: all), each in its own directory."""
    from mps_bench import agent_faults, client_faults, member_faults, store_faults

    runs: dict[str, Callable[[Path, int], FaultResult]] = {
        **FAULTS, **member_faults.FAULTS, **store_faults.FAULTS, **client_faults.FAULTS,
        **agent_faults.FAULTS}
    results = []
    for name in names or list(runs):
        target = workdir / name
        target.mkdir(parents=True, exist_ok=True)
        log.info("fault run %s", name)
        results.append(runs[name](target, count))
    return results


def cmd_faults(args: argparse.Namespace) -> int:
    """``mps-bench faults``: the attack suite, then the fault runs; 1 when anything was let
    in, lost or duplicated."""
    if args.registrations < 1:
        return fail("mps-bench", "--registrations must be at least 1", EXIT_USAGE)
    summary: dict[str, Any] = {}
    names = [n for n in args.only or () if n != FLOOD]
    with _workdir(args.keep) as workdir:
        attacks = None if args.skip_attacks else _attack_suite(workdir, summary)
        results = run_faults(workdir, args.registrations, names) if names or not args.only \
            else []
        flooded = _flood(workdir, summary) if not args.only or FLOOD in args.only else True
    totals = _report(args, summary, results, attacks)
    bad = (totals["lost"] or totals["duplicated"] or (attacks is not None and attacks.let_in)
           or not flooded)
    return EXIT_FAILURE if bad else EXIT_OK


def _report(args: argparse.Namespace, summary: dict[str, Any], results: list[FaultResult],
            attacks: AttackReport | None) -> dict[str, int]:
    """Print the fault runs, write ``--json`` and ``--details``; the totals."""
    print(table(["FAULT", "SENT", "STORED", "LOST", "DUPLICATED", "RESENT", "SECONDS", "NOTES"],
                [[r.name, str(r.sent), str(r.stored), str(r.lost), str(r.duplicated),
                  str(r.resent), f"{r.seconds:.1f}", "; ".join(r.notes)] for r in results]))
    totals = {k: sum(getattr(r, k) for r in results)
              for k in ("sent", "stored", "lost", "duplicated")}
    print(f"\ntotal: {totals['sent']} sent, {totals['stored']} stored, {totals['lost']} lost, "
          f"{totals['duplicated']} duplicated")
    summary["faults"] = totals
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.details:
        detail = {**summary, "runs": [r.to_json() for r in results]}
        if attacks is not None:
            detail["attack_details"] = attacks.to_json()["attacks"]
        Path(args.details).write_text(json.dumps(detail, indent=2) + "\n", encoding="utf-8")
    return totals


def _flood(workdir: Path, summary: dict[str, Any]) -> bool:
    """The flood run, into ``summary["flood"]``; whether it met its targets."""
    from mps_bench.flood import MAX_MS_TARGET, P50_RATIO_TARGET, run_flood, within_targets

    log.info("fault run %s", FLOOD)
    report = run_flood(workdir / FLOOD)
    summary["flood"] = {key.removeprefix("flood."): value for key, value in report.items()}
    ok = within_targets(report)
    print(f"flood: steady app p50 x{report['flood.p50_ratio']} of quiet "
          f"(target <= {P50_RATIO_TARGET:g}), max {report['flood.max_ms']} ms (target <= "
          f"{MAX_MS_TARGET:g}); {report['flood.sent']} flood queries, bridge "
          f"{report['flood.bridge_rss_mb']} MB" + ("" if ok else "  MISSED"), flush=True)
    return ok


def _attack_suite(workdir: Path, summary: dict[str, Any]) -> AttackReport:
    from mps_bench.attacks import run_attacks

    attacks = run_attacks(workdir / "attacks")
    print(table(["ATTACK", "REFUSED", "BY", "OUTCOME", "RECORD"],
                [[r.name, "yes" if r.refused else "NO", r.by, r.outcome[:48],
                  r.record if r.recorded else f"{r.record} (missing)"]
                 for r in attacks.results]))
    print(f"\n{attacks.tried} attacks tried, {attacks.let_in} let in "
          f"({attacks.seconds:.1f} s)\n", flush=True)
    summary["attacks"] = {"tried": attacks.tried, "let_in": attacks.let_in}
    return attacks


def register(subparsers: Any) -> None:
    """Add ``faults`` to ``mps-bench``."""
    parser = subparsers.add_parser(
        "faults", help="the attack suite and the fault runs, with what was lost",
        description=__doc__)
    parser.add_argument("--registrations", type=int, default=DEFAULT_REGISTRATIONS,
                        help=f"devices in the load runs (default {DEFAULT_REGISTRATIONS})")
    parser.add_argument("--json", metavar="FILE",
                        help='write {"attacks": {"tried", "let_in"}, "faults": {"sent", '
                             '"stored", "lost", "duplicated"}, "flood": {"p50_ratio", '
                             '"max_ms", ...}}')
    parser.add_argument("--details", metavar="FILE",
                        help="write every attack and fault run, with notes, as JSON")
    parser.add_argument("--only", action="append", metavar="FAULT",
                        help=f"run only this fault run ('{FLOOD}' for the flood), "
                             "repeatable")
    parser.add_argument("--skip-attacks", action="store_true", help="no attack suite")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    parser.set_defaults(func=cmd_faults)


__all__ = ["FaultResult", "bridge_killed", "broker_restarted", "register", "run_faults"]

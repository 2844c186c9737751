"""The processes a benchmark measures: one private broker, bridges (``mps-bridge serve``)
and the baseline responders, each a process of its own, and the store they share."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from broker_bridge.storage import SqliteStore, store_for
from broker_bridge.storage.base import Store
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, Service, console_script
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "bench/mps/v1"
BASELINE_PREFIX = "base/mps/v1"  # the same topic shapes and lengths as the bridge's
BRIDGE_GROUP = "mps-bridge"
#: The bench app's share of the bridges (requests per second, and at once): above any load
#: the performance run offers, so that it measures the request path and not the share
#: (``mps_bench.flood`` measures the share; the bucket is still checked per request).
APP_SHARE = (1_000_000, 100_000)


@dataclass
class StoreTarget:
    """Where the bridges' registry lives: an SQLite file in the work directory, or a fresh
    schema of a PostgreSQL database (dropped afterwards unless kept)."""

    kind: str
    url: str
    schema: str | None = None
    keep: bool = False

    @classmethod
    def choose(cls, spec: str, workdir: Path, *, keep: bool = False) -> StoreTarget:
        if spec == "sqlite":
            return cls("sqlite", str(workdir / "registry.sqlite"), keep=keep)
        if spec.startswith(("postgresql://", "postgres://")):
            from broker_bridge.storage.postgres import split_url

            _conninfo, given = split_url(spec)
            if given is not None:
                return cls("postgresql", spec, given, keep=True)  # the user's own schema
            schema = f"mps_bench_{uuid.uuid4().hex[:8]}"
            sep = "&" if "?" in spec else "?"
            return cls("postgresql", f"{spec}{sep}schema={schema}", schema, keep=keep)
        raise ValueError(f"--store must be sqlite or a postgresql:// URL, not {spec!r}")

    def open(self, *, wait_for_disk: bool = True) -> Store:
        """A connection of the benchmark's own; ``wait_for_disk=False`` commits without
        waiting for the disk (SQLite synchronous NORMAL, PostgreSQL synchronous_commit
        off), to show what waiting for it costs."""
        store: Store
        if wait_for_disk:
            store = store_for(self.url)
        elif self.kind == "sqlite":
            store = SqliteStore(self.url, synchronous="NORMAL")
        else:
            from broker_bridge.storage.postgres import PostgresStore

            store = PostgresStore(self.url, synchronous_commit="off")
        store.open()
        return store

    def drop(self) -> None:
        """Remove what the benchmark made (the PostgreSQL schema; files go with the work
        directory)."""
        if self.kind != "postgresql" or self.keep or self.schema is None:
            return
        import psycopg

        from broker_bridge.storage.postgres import split_url

        conninfo, _ = split_url(self.url)
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        except psycopg.Error as exc:
            log.warning("could not drop the benchmark's schema %s: %s", self.schema, exc)

    @property
    def label(self) -> str:
        return "sqlite" if self.kind == "sqlite" else "postgresql"


#: Seconds a bridge may take to fill its read model (a million devices: minutes).
FILL_TIMEOUT = 900.0


@dataclass
class Stack:
    """A running broker and the processes started against it; everything stops on exit."""

    workdir: Path
    broker: Mosquitto
    procs: ProcessGroup
    store: StoreTarget
    bridges: list[Service] = field(default_factory=list)
    #: Answers each bridge keeps in memory (None: its default); see ``mps-bridge serve``.
    read_model_size: int | None = None

    @property
    def url(self) -> str:
        return self.broker.url

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("MPS_LOG_LEVEL", "warning")
        # The benchmark measures what the bridges answer, all of it from one app: no share.
        env.setdefault("MPS_APP_RATE", "1000000")
        env.setdefault("MPS_APP_BURST", "1000000")
        return env

    def start_bridges(self, count: int, *, signatures: str = "enrolled",
                      timeout: float = 30.0) -> list[Service]:
        """``count`` bridge processes in one shared-subscription group (replacing any)."""
        self.stop_bridges()
        for i in range(count):
            argv = [*console_script("mps-bridge"), "serve", "--db", self.store.url,
                    "--broker", self.url, "--prefix", BRIDGE_PREFIX, "--group", BRIDGE_GROUP,
                    "--signatures", signatures, "--app-rate", str(APP_SHARE[0]),
                    "--app-burst", str(APP_SHARE[1])]
            if self.read_model_size is not None:
                argv += ["--read-model-size", str(self.read_model_size)]
            self.bridges.append(self.procs.start(f"bridge{i}-{uuid.uuid4().hex[:4]}", argv,
                                                 env=self.env()))
        for svc in self.bridges:
            svc.wait_for_line("serving", timeout)
        # Measured warm, as a bridge serves after its start: a large registry's read
        # model is filled while the bridge already serves (see broker_bridge.warming).
        for svc in self.bridges:
            svc.wait_for_line("read model filled", FILL_TIMEOUT)
        return self.bridges

    def stop_bridges(self) -> None:
        bridges, self.bridges = self.bridges, []
        for svc in bridges:
            svc.stop()

    def start_responder(self, mode: str, timeout: float = 20.0) -> Service:
        """A baseline responder (see :mod:`mps_bench.responder`) on the baseline prefix."""
        argv = [sys.executable, "-m", "mps_bench.responder", "--mode", mode, "--broker",
                self.url, "--prefix", BASELINE_PREFIX]
        svc = self.procs.start(f"{mode}-{uuid.uuid4().hex[:4]}", argv, env=self.env())
        svc.wait_for_line("ready", timeout)
        return svc


@contextlib.contextmanager
def running_stack(workdir: Path, store: StoreTarget) -> Iterator[Stack]:
    """A private Mosquitto and a process group in ``workdir``; all stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Mosquitto(workdir=workdir / "mosquitto") as broker, \
            ProcessGroup(workdir / "logs") as procs:
        yield Stack(workdir=workdir, broker=broker, procs=procs, store=store)


def topics() -> tuple[Topics, Topics]:
    """The bridge's topics and the baseline's."""
    return Topics(BRIDGE_PREFIX), Topics(BASELINE_PREFIX)

"""Nothing acknowledged that was not stored: a bridge whose store is full answers and
acknowledges nothing, holds what arrives, and handles it once the store takes writes again;
a bridge stopped meanwhile leaves it to the broker, which delivers it again.

The disk fills for real: a small tmpfs of the test's own (root only; skipped otherwise),
filled up by a file and emptied by removing it. Redelivery
is MQTT v5 section 4.4: a client reconnecting with Clean Start 0 gets the unacknowledged
PUBLISH packets of its session again.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_testbed.stack import Mosquitto
from mps_wire import codec
from mps_wire.messages import DeviceInfo
from mps_wire.topics import Topics
from tests.helpers import MqttProbe, make_device, paul_and_apps, running_bridge, wait_until


class Disk:
    """A small tmpfs of the test's own, filled up and emptied on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self, bridge: Bridge) -> None:
        # An empty write-ahead log first: from now on every commit needs new space.
        bridge.store._execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (65536, 4096, 1):  # until not even one byte fits
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def empty(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk of its own needs root to mount a tmpfs")
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def store(disk: Disk) -> Iterator[SqliteStore]:
    with SqliteStore(disk.path / "registry.db") as s:
        paul_and_apps(s)
        yield s


def send(probe: MqttProbe, topics: Topics, info: DeviceInfo) -> bytes:
    probe.listen(topics.device_reply(info.eid))
    return probe.send(topics.device_register(info.eid), codec.encode(info.to_wire()),
                      response_topic=topics.device_reply(info.eid))


def test_a_full_store_holds_messages_unanswered_until_it_recovers(
        store: SqliteStore, disk: Disk, mosquitto: Mosquitto, topics: Topics,
        probe: MqttProbe, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broker_bridge")
    with running_bridge(store, mosquitto.url, topics) as bridge:
        disk.fill(bridge)
        infos = [make_device(n) for n in (5, 6)]
        sent = [send(probe, topics, info) for info in infos]
        with pytest.raises(queue.Empty):
            probe.next(timeout=1.5)  # nothing answered ...
        assert all(store.device(info.eid) is None for info in infos)  # ... nothing stored
        assert bridge.health.down
        disk.empty()
        got = [probe.next(timeout=5) for _ in infos]
        assert sorted(g.correlation or b"" for g in got) == sorted(sent)
        assert {g.decoded()["result"] for g in got} == {"registered"}
        assert all(store.device(info.eid) is not None for info in infos)
        assert bridge.health.failures == 1 and not bridge.health.down
    failures = [r for r in caplog.records if r.name == "broker_bridge.health"
                and r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "store failed" in failures[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per message


def test_a_bridge_stopped_while_the_store_is_full_leaves_its_messages_to_the_broker(
        store: SqliteStore, disk: Disk, mosquitto: Mosquitto, topics: Topics,
        probe: MqttProbe) -> None:
    client_id = f"full-{uuid.uuid4().hex[:8]}"  # a persistent session
    info = make_device(5)
    with running_bridge(store, mosquitto.url, topics, client_id=client_id) as bridge:
        disk.fill(bridge)
        send(probe, topics, info)
        assert wait_until(lambda: bridge.stats.received == 1)
        time.sleep(0.3)
    assert store.device(info.eid) is None
    disk.empty()
    # The same session again, the disk no longer full: the broker delivers it again.
    with running_bridge(store, mosquitto.url, topics, client_id=client_id):
        reply = probe.next(timeout=10).decoded()
    assert reply["result"] == "registered"
    assert store.device(info.eid) is not None


def test_serve_refuses_a_missing_or_empty_database(tmp_path: Path) -> None:
    from broker_bridge.cli import main

    empty = tmp_path / "empty.db"
    empty.touch()
    for db in (tmp_path / "missing.db", empty):
        assert main(["serve", "--db", str(db), "--broker", "mqtt://127.0.0.1:9"]) == 1
    assert not (tmp_path / "missing.db").exists() and empty.stat().st_size == 0
    assert main(["db", "init", "--db", str(empty)]) == 0
    with SqliteStore(empty) as s:
        assert s.schema_version() > 0

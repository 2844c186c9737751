"""Sequence numbers: a registration may not jump more than the window ahead of the last one
accepted (one at 2^63-1 would lock the device out for good), and the operator can reset a
device's number (``mps-bridge devices reset-seq``), audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.cli import main
from broker_bridge.registry import Registry
from broker_bridge.registry.registrations import SEQ_WINDOW
from broker_bridge.storage import SqliteStore
from mps_wire.registration import encode_registration
from tests.helpers import make_device, paul_and_apps


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=0)
        yield s


def register(registry: Registry, seq: int, **changes: Any) -> dict[str, Any]:
    info = make_device(5, seq=seq, **changes)
    return registry.handle_registration(info.eid, encode_registration(info)).reply.to_wire()


def test_a_first_number_beyond_the_window_is_refused(store: SqliteStore) -> None:
    registry = Registry(store)
    reply = register(registry, 2**63 - 1)
    assert (reply["status"], reply["code"], reply["last_seq"]) == ("denied", "replay", 0)
    assert store.device(make_device(5).eid) is None
    assert store.last_registration(make_device(5).eid) is None
    assert register(registry, SEQ_WINDOW)["result"] == "registered"


def test_a_jump_beyond_the_window_is_refused_and_the_device_resumes_above_the_last(
        store: SqliteStore) -> None:
    registry = Registry(store)
    assert register(registry, 10)["result"] == "registered"
    reply = register(registry, 10 + SEQ_WINDOW + 1, ip=("10.9.9.9",))
    assert (reply["code"], reply["last_seq"]) == ("replay", 10)
    assert "jumps more than" in reply["message"]
    entry = store.audit()[-1]
    assert (entry.action, entry.outcome, entry.detail["last_seq"]) == ("register", "denied", 10)
    # As the agent does on a replay: the next number above the last one accepted.
    assert register(registry, 11, ip=("10.9.9.9",))["result"] == "updated"
    assert register(registry, 11 + SEQ_WINDOW, ip=("10.9.9.8",))["result"] == "updated"


def test_the_operator_resets_a_devices_number_and_it_is_audited(
        store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(store)
    eid = make_device(5).eid
    assert register(registry, 5000)["result"] == "registered"
    assert register(registry, 1)["code"] == "replay"  # a device that lost its counter
    assert registry.reset_sequence(eid) == 5000
    assert register(registry, 1, ip=("10.1.1.1",))["result"] == "updated"
    entry = [e for e in store.audit() if e.action == "seq-reset"][-1]
    assert (entry.subject, entry.detail, entry.contract_id) == \
        (eid, {"from": 5000, "to": 0}, "C-PAUL")
    with pytest.raises(ValueError):
        registry.reset_sequence(eid, to=-1)
    with pytest.raises(ValueError):
        registry.reset_sequence("8904", to=1)


def test_reset_seq_command(store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    db = store.path
    eid = make_device(5).eid
    assert register(Registry(store), 77)["result"] == "registered"
    assert main(["devices", "reset-seq", eid, "--to", "3", "--db", db, "--json"]) == 0
    assert '"from": 77, "to": 3' in capsys.readouterr().out
    assert store.last_registration(eid) == (3, "")
    assert main(["devices", "reset-seq", "123", "--db", db]) == 2
    assert main(["devices", "reset-seq", make_device(8).eid, "--db", db]) == 0
    assert "sequence number none -> 0" in capsys.readouterr().out

"""Fault runs, scaled down for the test suite (``mps-bench faults`` runs 5,000): nothing
the devices sent is lost or stored twice when the registry is killed, the broker
restarts, the card goes away or the modem talks nonsense."""

from __future__ import annotations

from pathlib import Path

import pytest

from mps_bench.agent_faults import card_removed, card_removed_mid_download, modem_faults
from mps_bench.client_faults import clients_broker_killed
from mps_bench.faults import bridge_killed, broker_killed, broker_restarted
from mps_bench.member_faults import member_stopped
from mps_bench.store_faults import store_full

REGISTRATIONS = 500


def test_kill_9_of_the_registry_during_registrations_loses_nothing(tmp_path: Path) -> None:
    result = bridge_killed(tmp_path, REGISTRATIONS, timeout=120)
    assert any("killed the bridge" in n for n in result.notes)
    assert (result.sent, result.stored, result.lost, result.duplicated) == \
        (REGISTRATIONS, REGISTRATIONS, 0, 0), result.notes
    assert not any("gaps" in n for n in result.notes)


def test_a_broker_restart_during_registrations_loses_nothing(tmp_path: Path) -> None:
    result = broker_restarted(tmp_path, REGISTRATIONS, timeout=120)
    assert any("restarted the broker" in n for n in result.notes)
    assert (result.sent, result.stored, result.lost, result.duplicated) == \
        (REGISTRATIONS, REGISTRATIONS, 0, 0), result.notes
    assert not any("gaps" in n for n in result.notes)


def test_a_broker_killed_during_registrations_loses_nothing(tmp_path: Path) -> None:
    result = broker_killed(tmp_path, REGISTRATIONS, timeout=120)
    assert any("killed the broker" in n for n in result.notes)
    assert (result.sent, result.stored, result.lost, result.duplicated) == \
        (REGISTRATIONS, REGISTRATIONS, 0, 0), result.notes


def test_a_member_stopped_under_load_leaves_its_share_to_the_other(tmp_path: Path) -> None:
    # MQTT v5 3.10.4: once unsubscribed, nothing new is kept for it; it finishes the rest.
    result = member_stopped(tmp_path, REGISTRATIONS, timeout=120)
    assert any("exited (0)" in n for n in result.notes), result.notes
    assert (result.sent, result.stored, result.lost, result.duplicated) == \
        (REGISTRATIONS, REGISTRATIONS, 0, 0), result.notes


def test_a_store_that_cannot_grow_holds_the_messages_until_it_can(tmp_path: Path) -> None:
    result = store_full(tmp_path, REGISTRATIONS, timeout=120, full_at=128 * 1024)
    assert any("the store filled" in n for n in result.notes), result.notes
    assert any("space freed" in n for n in result.notes), result.notes
    assert (result.sent, result.stored, result.lost, result.duplicated) == \
        (REGISTRATIONS, REGISTRATIONS, 0, 0), result.notes
    # One line for the condition, no traceback.
    assert any(n.startswith("1 failure line(s), 0 traceback(s)") for n in result.notes), \
        result.notes


@pytest.mark.slow
def test_the_projects_clients_lose_nothing_through_a_broker_sigkill(tmp_path: Path) -> None:
    result = clients_broker_killed(tmp_path)
    assert (result.lost, result.duplicated) == (0, 0), result.notes
    assert result.sent == result.stored == 300


def test_a_card_that_goes_away_stages_nothing_and_registers_once(tmp_path: Path) -> None:
    result = card_removed(tmp_path)
    assert result.notes == ["card gone before identity: StepError",
                            "after staging: registered", "reboot: unchanged"]
    assert (result.stored, result.lost, result.duplicated) == (1, 0, 0)


def test_a_modem_answering_garbage_or_nothing_stops_the_probe(tmp_path: Path) -> None:
    result = modem_faults(tmp_path)
    assert [n.split(":")[0] for n in result.notes] == ["garbage", "silent", "real modem"]
    assert "ModemTimeoutError" in result.notes[0] and "ModemTimeoutError" in result.notes[1]
    assert result.notes[2] == "real modem: registered"
    assert (result.stored, result.lost, result.duplicated) == (1, 0, 0)


def test_a_card_pulled_mid_download_downloads_again_and_registers_once(
        tmp_path: Path) -> None:
    result = card_removed_mid_download(tmp_path)
    assert result.notes[0].startswith("card pulled 25 APDUs into the download")
    assert result.notes[1:] == ["again: downloaded 8949262880000000024",
                                "registered: registered", "installations reported: 1"]
    assert (result.stored, result.lost, result.duplicated) == (1, 0, 0)

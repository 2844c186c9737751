"""The daemon's hardware watch on a real pseudo-terminal: a modem port that vanishes (its
emulator stops, reads fail with an I/O error) is reopened each round, logged once when it
goes and once when it returns, and given up on after the timeout (the daemon then exits
3, so systemd's Restart=on-failure starts it afresh)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.firstboot import AgentSettings, DeviceHardware
from agent.watch import HardwareUnavailableError, HardwareWatch
from firmware_profiles import PROFILE_DIR, load_profile
from lpa_emulator.euicc.state import CardState, ProfileRecord
from tests.fixtures.modem import serve_emulator


def settings_for(tmp_path: Path, link: Path) -> AgentSettings:
    card = tmp_path / "card.json"
    if not card.exists():
        CardState.new(profiles=[ProfileRecord.generate()]).save(card)
    return AgentSettings.from_profile(load_profile(PROFILE_DIR / "emulated-emu.toml"),
                                      modem_port=str(link), card_url=f"emu://{card}",
                                      state_dir=tmp_path / "agent")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "agent.watch" and r.levelno >= logging.WARNING]


def test_a_vanished_modem_port_is_reopened_when_it_returns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.watch")
    workdir = tmp_path / "modem"
    workdir.mkdir()
    clock = Clock()
    with serve_emulator(workdir, None, registration_delay=0) as running:
        settings = settings_for(tmp_path, running.link)
        device = DeviceHardware(settings).open()
        watch = HardwareWatch(device, timeout=60, clock=clock)
        first = watch.identity()
        assert first is not None
    # The emulator is gone: the port's other side closed, as when a USB modem resets.
    for _ in range(5):
        clock.now += 1
        assert watch.identity() is None
    assert device.modem is None  # closed, to be opened afresh
    gone = warnings(caplog)
    assert len(gone) == 1 and "hardware not readable" in gone[0]  # once, not each round
    with serve_emulator(workdir, None, registration_delay=0):
        clock.now += 1
        again = watch.identity()
    assert again is not None and again.imei == first.imei and again.eid == first.eid
    assert watch.reopened >= 1 and watch.down_since is None
    assert len(warnings(caplog)) == 2 and "back after" in warnings(caplog)[1]
    device.close()


def test_without_a_modem_for_the_whole_timeout_the_watch_gives_up(tmp_path: Path) -> None:
    workdir = tmp_path / "modem"
    workdir.mkdir()
    clock = Clock()
    with serve_emulator(workdir, None, registration_delay=0) as running:
        device = DeviceHardware(settings_for(tmp_path, running.link)).open()
        watch = HardwareWatch(device, timeout=30, clock=clock)
        assert watch.identity() is not None
    assert watch.identity() is None
    clock.now += 29
    assert watch.identity() is None
    clock.now += 2
    with pytest.raises(HardwareUnavailableError, match="no working modem for 31 s"):
        watch.identity()


def test_the_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        HardwareWatch(DeviceHardware(settings_for(tmp_path, tmp_path / "none")), timeout=0)

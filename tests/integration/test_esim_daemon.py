"""End to end with real processes: the registry (``mps-bridge serve``), an emulated modem
on a pty and the agent's daemon with an in-process eUICC. The bridge records the device's
presence; an operator's profile delete waits for the user's word on the page's API, then
goes to the daemon signed, which deletes the profile on the card and reports it; the
daemon exits 3 once its modem has been gone for --hardware-timeout."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from broker_bridge.choices import EsimState
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from firmware_profiles import PROFILE_DIR
from lpa_emulator.euicc.state import CardState, ProfileRecord
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from tests.helpers import (
    PAUL,
    iccid_for,
    make_device,
    paul_and_apps,
    random_topics,
    running_bridge,
    wait_until,
)
from tests.integration.test_agent import ICCID, make_card, start_modem

CONTRACT = "C-1"


def bridge_cli(db: Path, *args: str) -> str:
    done = subprocess.run([*console_script("mps-bridge"), *args, "--db", str(db)],
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


def test_an_approved_delete_runs_on_the_device_and_a_lost_modem_ends_the_daemon(
        tmp_path: Path) -> None:
    card = tmp_path / "euicc.json"
    eid = make_card(card)
    state = CardState.load(card)
    spare = ProfileRecord.generate(slot=1, enabled=False)
    state.profiles.append(spare)
    state.save(card)
    opfile = tmp_path / "operator.toml"
    opfile.write_text(f'[[contracts]]\nid = "{CONTRACT}"\nholder = "P"\n'
                      f'msisdns = ["+4917600000001"]\n'
                      f'  [[contracts.subscriptions]]\n  iccid = "{ICCID}"\n'
                      f'  imsi = "262010000000001"\n  eid = "{eid}"\n')
    db = tmp_path / "reg.sqlite"
    subprocess.run([*console_script("mps-bridge"), "operator", "import", str(opfile),
                    "--db", str(db)], check=True, capture_output=True)
    key = tmp_path / "registry-key.pem"
    bridge_cli(db, "esim", "key", "--out", str(key))
    with Mosquitto() as broker, ProcessGroup(tmp_path / "logs") as procs, \
            SqliteStore(db) as store:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        link = start_modem(procs, tmp_path, card=None)
        daemon = procs.start("agent", [
            *console_script("mps-agent"), "run", "--profile",
            str(PROFILE_DIR / "emulated-emu.toml"), "--modem", str(link),
            "--card", f"emu://{card}", "--broker", broker.url,
            "--state-dir", str(tmp_path / "agent"), "--daemon", "--interval", "0.3",
            "--registry-key", str(key), "--hardware-timeout", "2"])
        daemon.wait_for_line("registered", 30)
        portal = Registry(store).portal(CONTRACT)
        assert wait_until(lambda: [d.online for d in portal.devices()] == [True], 15)

        bridge_cli(db, "esim", "request", eid, "delete", spare.iccid)
        (request,) = portal.esim_requests()
        assert (request.action, request.state) == ("delete", "awaiting-user")
        time.sleep(1.0)  # nothing happens without the user's word
        assert spare.iccid in [p.iccid for p in CardState.load(card).profiles]
        portal.approve_esim(request.request)
        assert wait_until(lambda: store.esim_request(request.request).state  # type: ignore[union-attr]
                          in (EsimState.DONE, EsimState.FAILED), 20), daemon.tail()
        assert store.esim_request(request.request).state is EsimState.DONE  # type: ignore[union-attr]
        assert spare.iccid not in [p.iccid for p in CardState.load(card).profiles]
        # The finished order is taken off the broker: a daemon starting again gets none.
        assert wait_until(lambda: store.esim_request(request.request).cleared_at  # type: ignore[union-attr]
                          is not None, 10)
        steps = [(e.action, e.outcome) for e in store.audit(contract_id=CONTRACT)
                 if e.action.startswith("esim")]
        assert steps == [("esim-request", "awaiting-user"), ("esim-consent", "approved"),
                         ("esim-order", "sent"), ("esim-result", "done")]
        history = bridge_cli(db, "devices", "history", eid)
        assert "registration" in history

        # The modem goes away for good: the daemon reopens it each round, then gives up.
        modem = next(s for s in procs.services if s.name.startswith("modem-"))
        modem.stop()
        assert daemon.proc.wait(30) == 3, daemon.tail()
        log = daemon.log_path.read_text()
        assert log.count("hardware not readable") == 1
        assert "no working modem for" in log


def test_the_devices_own_lpa_asks_and_the_user_decides(tmp_path: Path,
                                                       mosquitto: Mosquitto) -> None:
    topics = random_topics()
    card = tmp_path / "card.json"
    CardState.new(eid=make_device(1).eid, profiles=[ProfileRecord.generate()]).save(card)
    with SqliteStore(tmp_path / "registry.db") as store:
        paul_and_apps(store)
        with running_bridge(store, mosquitto.url, topics):
            done = subprocess.run(
                [*console_script("mps-lpa"), "--card", f"emu://{card}", "--json", "profile",
                 "ask", "delete", iccid_for(1), "--broker", mosquitto.url,
                 "--prefix", topics.prefix], check=False, capture_output=True, text=True,
                timeout=60)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["state"] == "awaiting-user"
            portal = Registry(store).portal(PAUL)
            assert wait_until(lambda: bool(portal.esim_requests()), 10)
            (request,) = portal.esim_requests()
            assert (request.action, request.iccid, request.requested_by) == (
                "delete", iccid_for(1), f"device:{make_device(1).eid}")

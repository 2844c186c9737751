"""The agent as a service: retained online state while it runs, offline when it stops
(cleanly or not, through the Last Will)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from firmware_profiles import PROFILE_DIR
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire import codec
from mps_wire.topics import Topics
from tests.integration.test_agent import ICCID, make_card, start_modem


def retained_state(broker: str, eid: str, timeout: float = 5.0) -> str | None:
    """The retained state of device ``eid`` as a fresh subscriber sees it."""
    got: list[str] = []
    seen = threading.Event()
    client = new_client()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(codec.decode(msg.payload)["state"])
        seen.set()

    client.on_message = on_message
    connect(client, BrokerURL.parse(broker))
    client.subscribe(Topics().device_state(eid), qos=1)
    seen.wait(timeout)
    disconnect(client)
    return got[-1] if got else None


def wait_state(broker: str, eid: str, want: str, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = retained_state(broker, eid, timeout=1.0)
        if last == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"device state stayed {last!r}, wanted {want!r}")


def test_daemon_publishes_online_then_offline(tmp_path: Path) -> None:
    card = tmp_path / "euicc.json"
    eid = make_card(card)
    opfile = tmp_path / "operator.toml"
    opfile.write_text(f'[[contracts]]\nid = "C-1"\nholder = "P"\nmsisdns = ["+4917600000001"]\n'
                      f'  [[contracts.subscriptions]]\n  iccid = "{ICCID}"\n'
                      f'  imsi = "262010000000001"\n  eid = "{eid}"\n')
    db = tmp_path / "reg.sqlite"
    subprocess.run([*console_script("mps-bridge"), "operator", "import", str(opfile),
                    "--db", str(db)], check=True, capture_output=True)
    with Mosquitto() as broker, ProcessGroup(tmp_path / "logs") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", broker.url]).wait_for_line("serving", 20)
        link = start_modem(procs, tmp_path, card=None)
        args = ["run", "--profile", str(PROFILE_DIR / "emulated-emu.toml"), "--modem", str(link),
                "--card", f"emu://{card}", "--broker", broker.url,
                "--state-dir", str(tmp_path / "agent"), "--daemon", "--interval", "0.5"]
        daemon = procs.start("agent", [*console_script("mps-agent"), *args])
        daemon.wait_for_line("registered", 30)
        wait_state(broker.url, eid, "online")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(15) == 0
        wait_state(broker.url, eid, "offline")

        # A daemon that dies without saying goodbye is declared offline by its Last Will.
        daemon = procs.start("agent2", [*console_script("mps-agent"), *args])
        daemon.wait_for_line("registered", 30)
        wait_state(broker.url, eid, "online")
        daemon.proc.kill()
        daemon.proc.wait(5)
        wait_state(broker.url, eid, "offline", timeout=60)
        outbox = json.loads((tmp_path / "agent" / "outbox.json").read_text())
        assert outbox["pending"] is None

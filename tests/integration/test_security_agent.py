"""The device agent with the credentials the operator issued: over TLS with its own
broker login, registrations signed with its key, against a registry that requires
signatures; and the same agent without credentials, refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from broker_bridge.brokerconf import MosquittoConfig, write_broker_config
from broker_bridge.credentials import OperatorCA, issue
from broker_bridge.model import Role
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from firmware_profiles import PROFILE_DIR
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.mosquitto import free_port
from mps_testbed.stack.procs import ProcessGroup, console_script
from tests.integration.test_agent import ICCID, make_card, start_modem

OPERATOR = f"""[[contracts]]
id = "C-1"
holder = "P"
msisdns = ["+4917600000001"]
  [[contracts.subscriptions]]
  iccid = "{ICCID}"
  imsi = "262010000000001"
  eid = "{{eid}}"
"""


def test_agent_registers_signed_over_tls_with_its_credentials(tmp_path: Path) -> None:
    card = tmp_path / "euicc.json"
    eid = make_card(card)
    db = tmp_path / "registry.db"
    (tmp_path / "operator.toml").write_text(OPERATOR.format(eid=eid))
    subprocess.run([*console_script("mps-bridge"), "operator", "import",
                    str(tmp_path / "operator.toml"), "--db", str(db)], check=True,
                   capture_output=True)
    ca = OperatorCA.create(tmp_path / "ca")
    with SqliteStore(db) as store:
        registry = Registry(store)
        device_dir = issue(registry, Role.DEVICE, eid, tmp_path / "agent" / "credentials",
                           ca=ca).directory
        bridge_dir = issue(registry, Role.BRIDGE, "one", tmp_path / "bridge", ca=ca).directory
        tls_port = free_port()
        files = write_broker_config(
            tmp_path / "broker", MosquittoConfig(port=None, tls_port=tls_port,
                                              user="root" if os.geteuid() == 0 else None),
            store.identities(), ca=ca)
    url = f"mqtts://127.0.0.1:{tls_port}?ca={ca.cert_file}"
    with Mosquitto(config_file=files.conf, tls_port=tls_port, workdir=tmp_path / "broker"), \
            ProcessGroup(tmp_path / "logs") as procs:
        procs.start("bridge", [*console_script("mps-bridge"), "serve", "--db", str(db),
                               "--broker", url, "--credentials", str(bridge_dir),
                               "--signatures", "required"]).wait_for_line("serving", 20)
        link = start_modem(procs, tmp_path, card=None)
        base = [*console_script("mps-agent"), "run", "--profile",
                str(PROFILE_DIR / "emulated-emu.toml"), "--modem", str(link),
                "--card", f"emu://{card}", "--broker", url, "--json"]
        # Without its credentials the agent cannot even log in.
        refused = subprocess.run([*base, "--state-dir", str(tmp_path / "bare")],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 1 and "publish" in refused.stderr
        # With them (found in <state-dir>/credentials): signed, over TLS, registered.
        done = subprocess.run([*base, "--state-dir", str(tmp_path / "agent")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == "registered"
        # A second boot: the same identity, the next number, still signed.
        again = subprocess.run([*base, "--state-dir", str(tmp_path / "agent"),
                                "--credentials", str(device_dir)],
                               capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["result"] == "unchanged"
    with SqliteStore(db) as store:
        registered = [e for e in store.audit() if e.action == "register"]
        assert [e.outcome for e in registered] == ["registered"]
        last = store.last_registration(eid)
        assert last is not None and last[0] == 2
        assert store.device_key(eid) is not None

"""What a new user meets first, through the real commands on the real stack: each error
says what happened and what to do, text shows what ``--json`` shows, help reads as text."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mps_testbed.stack.procs import console_script
from tests.helpers import PAUL_MSISDN
from tests.integration.test_broker_config import Deployment, deploy
from tests.rsp_support import new_subscription

ROOT = Path(__file__).parents[2]


def command(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``name`` run as a user runs it: the installed console script, a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    return subprocess.run([*console_script(name), *args], capture_output=True, text=True,
                          check=False, timeout=timeout, env=env)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Deployment]:
    yield from deploy(tmp_path)


def test_a_request_the_broker_refuses_says_not_authorized(secured: Deployment) -> None:
    # MQTT v5 section 3.4.2.1: the broker answers a QoS 1 PUBLISH its ACL refuses with
    # PUBACK reason code 0x87 (Not authorized); the app is told so instead of waiting.
    url = secured.broker.tls_url(secured.ca.cert_file)
    done = command("mps-app", "devices", "--msisdn", PAUL_MSISDN, "--broker", url,
                   "--credentials", str(secured.bundles["health"]), "--app-id", "care",
                   "--timeout", "3")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "mps-app: denied: not authorized to publish to mps/v1/apps/care/requests (the "
        "broker's ACL refused it, PUBACK 0x87)")


def test_ordering_an_iccid_twice_names_the_existing_order(tmp_path: Path) -> None:
    iccid, imsi = new_subscription()
    data = ["--data", str(tmp_path / "smdp"), "--address", "smdp.example"]
    first = command("mps-emu", "smdp", "order", "--iccid", iccid, "--imsi", imsi,
                    "--matching-id", "FIRST-ORDER", *data)
    assert first.returncode == 0, first.stderr
    code, line = first.stdout.splitlines()
    assert code == "LPA:1$smdp.example$FIRST-ORDER"
    assert re.fullmatch(rf"order FIRST-ORDER for ICCID {iccid} \(IMSI {imsi}\): released, "
                        r"0 attempts, for any eUICC, no confirmation code, made "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", line), line
    again = command("mps-emu", "smdp", "order", "--iccid", iccid, "--imsi", imsi, *data)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == (f"mps-emu: ICCID {iccid} is ordered already: order "
                            "FIRST-ORDER, released ('mps-emu smdp orders' lists the orders)\n")
    other, other_imsi = new_subscription()
    taken = command("mps-emu", "smdp", "order", "--iccid", other, "--imsi", other_imsi,
                    "--matching-id", "FIRST-ORDER", *data)
    assert taken.returncode == 1
    assert f"the matching id FIRST-ORDER is taken by the order for ICCID {iccid}" in \
        taken.stderr
    listed = command("mps-emu", "smdp", "orders", "--data", str(tmp_path / "smdp"))
    header, row = listed.stdout.splitlines()
    assert header.split("  ")[0] == "MATCHING ID" and "CREATED (UTC)" in header
    assert row.split()[:7] == ["FIRST-ORDER", iccid, imsi, "-", "released", "0", "no"]

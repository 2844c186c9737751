"""``mps-consent-web serve`` as its own process: HTTPS on the loopback address beside a
registry database, refusing to start without its certificate; ``codes`` for the operator."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from broker_bridge.storage import SqliteStore
from consent_web import cli
from consent_web.tlsfiles import self_signed
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.procs import ProcessGroup, console_script
from tests.consent_support import Client
from tests.helpers import PAUL_MSISDN, paul_and_apps


def test_serve_answers_over_https_and_stops_on_sigterm(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    db = tmp_path / "registry.db"
    with SqliteStore(db) as store:
        paul_and_apps(store, devices=1)
    cert, key = self_signed(tmp_path / "tls")
    with ProcessGroup(tmp_path / "logs") as procs:
        page = procs.start("page", [*console_script("mps-consent-web"), "serve", "--db",
                                    str(db), "--broker", mosquitto.url, "--cert", str(cert),
                                    "--key", str(key), "--port", "0"])
        page.wait_for_line("consent page at", 20)
        found = re.search(r"https://127\.0\.0\.1:\d+/", page.log_path.read_text())
        assert found, page.tail()
        client = Client(found.group(0), cert)
        answer = client.get("/sign-in")
        assert answer.status == 200 and 'id="number"' in answer.body
        assert client.post("/sign-in", {"number": PAUL_MSISDN}).status == 200
        page.proc.terminate()
        assert page.proc.wait(15) == 0


def test_serve_without_its_certificate_is_a_usage_error(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    with SqliteStore(db) as store:
        paul_and_apps(store, devices=0)
    done = subprocess.run([*console_script("mps-consent-web"), "serve", "--db", str(db),
                           "--broker", "mqtt://127.0.0.1:1", "--cert", str(tmp_path / "no.pem"),
                           "--key", str(tmp_path / "no.key")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--cert" in done.stderr and "no such file" in done.stderr


def test_options_are_never_abbreviated(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--ce", "cert.pem"]) == 2  # not --cert
    assert "unrecognized arguments: --ce" in capsys.readouterr().err

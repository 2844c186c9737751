"""What a new user meets first, through the real commands on the real stack: each error
says what happened and what to do, text shows what ``--json`` shows, help reads as text."""

from __future__ import annotations

import datetime
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_bridge.service import Bridge
from mps_common.cli import utc_time
from mps_mqtt.bundle import CredentialBundle
from mps_mqtt.client import connect, disconnect, new_client
from mps_testbed.stack import Mosquitto
from mps_testbed.stack.mosquitto import StackError, free_port
from mps_testbed.stack.procs import console_script
from mps_wire.topics import Topics
from tests.helpers import PAUL, PAUL_MSISDN
from tests.integration.test_broker_config import Deployment, deploy
from tests.rsp_support import new_subscription

ROOT = Path(__file__).parents[2]


def _has_account(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def command(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``name`` run as a user runs it: the installed console script, a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    return subprocess.run([*console_script(name), *args], capture_output=True, text=True,
                          check=False, timeout=timeout, env=env)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Deployment]:
    yield from deploy(tmp_path)


def test_a_request_the_broker_refuses_says_not_authorized(tmp_path: Path) -> None:
    # MQTT v5 section 3.4.2.1: the broker answers a QoS 1 PUBLISH its ACL refuses with
    # PUBACK reason code 0x87 (Not authorized); the app is told so instead of waiting.
    # An ACL that lets the app read its replies but not write its requests shows it.
    acl = tmp_path / "acl"
    acl.write_text("topic read mps/v1/apps/care/#\n")
    # Started by root, Mosquitto would drop to its own account, which cannot read the
    # test's private directory.
    user = "user root\n" if os.geteuid() == 0 else ""
    with Mosquitto(workdir=tmp_path / "broker", extra_config=f"acl_file {acl}\n{user}") as broker:
        done = command("mps-app", "devices", "--msisdn", PAUL_MSISDN, "--broker", broker.url,
                       "--app-id", "care", "--timeout", "3")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "mps-app: denied: not authorized to publish to mps/v1/apps/care/requests (the "
        "broker's ACL refused it, PUBACK 0x87)")


def test_a_running_test_broker_is_not_started_twice(tmp_path: Path) -> None:
    # A second start would find the port taken and exit, and the first, no longer held,
    # would outlive the test.
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        pid = broker.pid
        assert pid is not None
        with pytest.raises(StackError, match="running already"):
            broker.start()
        assert broker.pid == pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_app_outside_its_namespace_is_told_so(secured: Deployment) -> None:
    # With dynamic security (the only ACL mode the project configures) the broker refuses
    # the SUBSCRIBE to another app's replies (MQTT v5 section 3.9.3, reason code 0x87).
    url = secured.broker.tls_url(secured.ca.cert_file)
    done = command("mps-app", "devices", "--msisdn", PAUL_MSISDN, "--broker", url,
                   "--credentials", str(secured.bundles["health"]), "--app-id", "care",
                   "--timeout", "3")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "mps-app: cannot listen for replies: the broker refused the subscription to "
        "mps/v1/apps/care/replies: Not authorized")


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


def test_a_card_by_hand_starts_empty_and_takes_a_download(tmp_path: Path) -> None:
    # The README's "Running a device by hand", step by step: the default card holds a
    # test profile no operator knows (and says so); --empty makes one to download into.
    made = command("mps-emu", "euicc", "--state", str(tmp_path / "card0.json"))
    assert made.returncode == 0, made.stderr
    test_profile = json.loads(made.stdout)["profiles"][0]
    assert made.stderr == (
        f"mps-emu euicc: note: the new card holds a test profile (ICCID "
        f"{test_profile['iccid']}, IMSI {test_profile['imsi']}) that no operator knows; "
        "--empty makes a card to download a profile into\n")
    assert command("mps-emu", "pki", "init", str(tmp_path / "pki")).returncode == 0
    empty = command("mps-emu", "euicc", "--state", str(tmp_path / "card1.json"), "--empty",
                    "--pki", str(tmp_path / "pki"))
    assert (empty.returncode, empty.stderr) == (0, "")
    assert json.loads(empty.stdout)["profiles"] == []
    again = command("mps-emu", "euicc", "--state", str(tmp_path / "card0.json"), "--empty")
    assert again.returncode == 1 and "holds a card with 1 profile(s), not an empty one" in \
        again.stderr

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    server = subprocess.Popen(
        [*console_script("mps-emu"), "smdp", "serve", "--pki", str(tmp_path / "pki"),
         "--data", str(tmp_path / "smdp"), "--listen", f"127.0.0.1:{port}",
         "--address", f"localhost:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None and "serving ES9+" in server.stdout.readline()
        iccid, imsi = new_subscription()
        ordered = command("mps-emu", "smdp", "order", "--data", str(tmp_path / "smdp"),
                          "--iccid", iccid, "--imsi", imsi)
        code = ordered.stdout.splitlines()[0]
        done = command("mps-lpa", "--card", f"emu://{tmp_path / 'card1.json'}", "profile",
                       "download", "--enable", "--activation-code", code, "--ca",
                       str(tmp_path / "pki" / "ci.pem"))
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == f"downloaded {iccid}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=15)


RST_MARKUP = re.compile(r"``|:(?:func|class|meth|data|mod|attr):`|^\.\. |^==+\s+==+", re.M)


@pytest.mark.parametrize("argv", [
    ["mps-agent"], ["mps-emu"], ["mps-lpa"], ["mps-emu", "euicc"], ["mps-emu", "modem"],
    ["mps-bridge"], ["mps-app"], ["mps-user"], ["mps-bench"], ["mps-demo"], ["mps-consent-web"],
    ["mps-emu", "smdp", "order"], ["mps-app", "watch"], ["mps-bridge", "broker-config"]])
def test_help_reads_as_text(argv: list[str]) -> None:
    done = command(argv[0], *argv[1:], "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    assert RST_MARKUP.search(done.stdout) is None, done.stdout


def columns(line: str) -> list[int]:
    """Where each column of a table line starts: after two spaces or more."""
    return [0] + [m.end() for m in re.finditer(r"\s{2,}(?=\S)", line)]


def test_profiles_list_aligns_and_shows_what_json_shows() -> None:
    text = command("mps-agent", "profiles", "list")
    listed = json.loads(command("mps-agent", "profiles", "list", "--json").stdout)
    assert text.returncode == 0, text.stderr
    grid, notes = text.stdout.split("\n\n")
    header, *rows = grid.splitlines()
    assert header.split() == ["NAME", "DIALECT", "PORT", "CARD", "CAPABILITIES",
                              "ACTIVATION", "BROKER"]
    starts = columns(header)
    for row, profile in zip(rows, listed, strict=True):
        # Every column starts under its header, whatever the width of the cells before.
        cells = [row[a:b].rstrip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        assert cells == [profile["name"], profile["dialect"], profile["port"],
                         profile["card"], ", ".join(profile["capabilities"]),
                         profile["activation"], profile["broker"]]
        assert all(row[s - 1] == " " for s in starts[1:])
    for line, profile in zip(notes.splitlines()[1:], listed, strict=True):
        assert line.split(maxsplit=1) == [profile["name"],
                                          f"{profile['description']} ({profile['path']})"]


def test_output_cut_short_by_the_reader_is_no_error() -> None:
    # `mps-agent profiles list | head -1`: the reader is gone before the command writes.
    proc = subprocess.Popen([*console_script("mps-agent"), "profiles", "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")


@pytest.mark.parametrize("license_line, warned", [
    ('license = "Apache-2.0"', False), ('license = {text = "Apache-2.0"}', True)])
def test_installing_prints_no_deprecated_license_form(tmp_path: Path, license_line: str,
                                                      warned: bool) -> None:
    # What pip runs first when installing: the build backend's metadata step, on this
    # project's pyproject.toml (as is, and with the old table form it must not go back to).
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert text.count('license = "Apache-2.0"') == 1
    (tmp_path / "pyproject.toml").write_text(
        text.replace('license = "Apache-2.0"', license_line), encoding="utf-8")
    (tmp_path / "README.md").write_text("readme\n", encoding="utf-8")
    (tmp_path / "meta").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; "
         "build_meta.prepare_metadata_for_build_wheel(sys.argv[1])", "meta"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert ("`project.license` as a TOML table is deprecated" in done.stderr) is warned


def test_a_lookup_of_an_unknown_number_is_audited_as_not_found(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, db: Path) -> None:
    unknown = "+4930901820"  # valid E.164, in no operator's range, on no contract
    asked = command("mps-app", "devices", "--msisdn", unknown, "--broker", mosquitto.url,
                    "--prefix", topics.prefix, "--app-id", "care", "--timeout", "5")
    assert (asked.returncode, asked.stderr) == (
        1, f"mps-app: not-found: no contract for the number {unknown}\n")
    audit = command("mps-bridge", "audit", "--db", str(db), "--app", "care")
    header, *rows = audit.stdout.splitlines()
    starts = columns(header)
    last = rows[-1]
    cells = [last[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    assert re.split(r"\s{2,}", header)[3:5] == ["ACTION", "OUTCOME"]
    assert cells[3:5] == ["devices", "not-found"]
    entry = json.loads(command("mps-bridge", "audit", "--db", str(db), "--app", "care",
                               "--json").stdout)[-1]
    assert (entry["action"], entry["outcome"], entry["detail"]) == (
        "devices", "not-found", {"code": "not-found"})


@pytest.mark.skipif(os.geteuid() != 0 or not _has_account("mosquitto"),
                    reason="needs root and Mosquitto's own account")
def test_a_broker_configuration_written_by_root_starts_as_written(tmp_path: Path) -> None:
    # Started by root, Mosquitto switches to its account `mosquitto` before opening the
    # password file; the files written by root must be that account's to read.
    base = Path(tempfile.mkdtemp(prefix="mps-broker-", dir="/tmp"))
    try:
        base.chmod(0o755)
        db = str(base / "registry.db")
        for role, name in (("app", "health"), ("bridge", "one")):
            issued = command("mps-bridge", "operator", "issue", role, name, "--out",
                             str(base / name), "--db", db)
            assert issued.returncode == 0, issued.stderr
        port = free_port()
        done = command("mps-bridge", "broker-config", "--out", str(base / "broker"), "--db",
                       db, "--port", str(port))
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.rstrip().endswith("files readable by mosquitto")
        with Mosquitto(config_file=base / "broker" / "mosquitto.conf", port=port,
                       workdir=base / "broker") as broker:
            client = new_client()
            connect(client, CredentialBundle.load(base / "health").broker_url(broker.url))
            disconnect(client)
        log = (base / "broker" / "mosquitto.log").read_text(encoding="utf-8")
        assert "Unable to open" not in log and "should not be run as root" not in log
        # Where the account cannot reach the files, the command says so and how to fix it.
        hidden = command("mps-bridge", "broker-config", "--out", str(tmp_path / "broker"),
                         "--db", db, "--port", str(port))
    finally:
        shutil.rmtree(base)
    closed = next(d for d in [*reversed(tmp_path.parents), tmp_path]
                  if not d.stat().st_mode & 0o001)
    assert hidden.returncode == 0
    assert hidden.stderr == (
        f"mps-bridge: note: mosquitto cannot reach {closed} (mode "
        f"{closed.stat().st_mode & 0o7777:04o}), so Mosquitto cannot open its files: write "
        f"them elsewhere, or chmod o+x {closed}\n")


def test_a_redirect_names_the_other_registry_in_text_as_in_json(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, db: Path) -> None:
    added = command("mps-bridge", "operator", "add-operator", "--db", str(db), "--id", "other",
                    "--name", "Other Mobile", "--registry", "mqtts://registry.other.example",
                    "--prefix", "other/v1", "--number-prefix", "+4917")
    assert added.returncode == 0, added.stderr
    app = ["--broker", mosquitto.url, "--prefix", topics.prefix, "--app-id", "care",
           "--timeout", "5"]
    text = command("mps-app", "devices", "--msisdn", "+4917012345678", *app)
    as_json = command("mps-app", "devices", "--msisdn", "+4917012345678", *app, "--json")
    assert (text.returncode, as_json.returncode) == (1, 1)
    assert json.loads(as_json.stdout) == {
        "status": "redirect", "operator": "other", "registry": "mqtts://registry.other.example",
        "prefix": "other/v1", "message": "the number +4917012345678 is served by Other "
        "Mobile; ask its registry"}
    assert text.stderr == (
        "mps-app: redirect: the number +4917012345678 is served by Other Mobile; ask its "
        "registry at mqtts://registry.other.example (operator other, topic prefix other/v1)\n")


def test_the_devices_table_shows_what_json_shows(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> None:
    app = ["--broker", mosquitto.url, "--prefix", topics.prefix, "--app-id", "care",
           "--timeout", "5"]
    paired = command("mps-app", "pair", "--msisdn", PAUL_MSISDN, "--purpose", "support", *app)
    assert paired.returncode == 0, paired.stderr
    assert re.match(r"pairing pr-\S+ for support active \(standing consent\)\n",
                    paired.stdout)
    text = command("mps-app", "devices", "--msisdn", PAUL_MSISDN, *app)
    listed = json.loads(command("mps-app", "devices", "--msisdn", PAUL_MSISDN, *app,
                                "--json").stdout)
    title, header, *rows = text.stdout.splitlines()
    assert title == f"{PAUL_MSISDN}: contract {listed['contract']}, 4 devices"
    names = re.split(r"\s{2,}", header)
    starts = columns(header)
    for row, device in zip(rows, listed["devices"], strict=True):
        cells = dict(zip(names, (row[a:b].rstrip() for a, b in
                                 zip(starts, [*starts[1:], None], strict=True)), strict=True))
        model = device["model"]
        updated = datetime.datetime.fromtimestamp(device["updated_at"] / 1000, datetime.UTC)
        assert cells == {
            "DEVICE": device["device_id"], "EID": device["eid"], "IMEI": device["imei"],
            "ICCID": device["iccid"], "IMSI": device.get("imsi") or "-",
            "MSISDN": device.get("msisdn") or "-", "IP": ", ".join(device["ip"]),
            "CAPABILITIES": ", ".join(device["capabilities"]),
            "MODEL": f"{model['manufacturer']} {model['model']} {model['revision']}",
            "UPDATED (UTC)": updated.strftime("%Y-%m-%d %H:%M:%S")}


def test_the_lpa_shows_in_text_what_it_shows_in_json(tmp_path: Path) -> None:
    state = tmp_path / "card.json"
    assert command("mps-emu", "euicc", "--state", str(state)).returncode == 0
    card = ["--card", f"emu://{state}"]
    text = command("mps-lpa", *card, "profile", "list")
    listed = json.loads(command("mps-lpa", *card, "profile", "list", "--json").stdout)
    header, *rows = text.stdout.splitlines()
    starts = columns(header)
    for row, profile in zip(rows, listed, strict=True):
        cells = [row[a:b].rstrip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        notes = "; ".join(f"{','.join(n['operations'])} to {n['address']}"
                          for n in profile["notifications"])
        assert cells == [profile["iccid"], profile["state"], profile["class"],
                         profile["name"] or "-", profile["nickname"] or "-",
                         profile["provider"] or "-", profile["owner"] or "-",
                         ", ".join(profile["ppr"]) or "-", notes or "-", profile["isdp_aid"]]
    info = command("mps-lpa", *card, "chip", "info")
    shown = json.loads(command("mps-lpa", *card, "chip", "info", "--json").stdout)
    values = {k: v for k, v in shown["euicc_info2"].items() if v not in (None, [], "")}
    for key, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            assert str(item) in info.stdout, (key, item)


def test_consent_prompts_show_in_text_what_json_shows(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> None:
    app = ["--broker", mosquitto.url, "--prefix", topics.prefix, "--timeout", "5"]
    asked = command("mps-app", "pair", "--msisdn", PAUL_MSISDN, "--purpose",
                    "health-monitoring", "--app-id", "health", *app)
    assert re.fullmatch(r"pairing pr-\S+ for health-monitoring on contract \S+ pending: the "
                        r"user is asked \(until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); the "
                        r"answer arrives as an event \(mps-app watch --pairing pr-\S+\)\n",
                        asked.stdout), asked.stdout
    user = ["consent", "list", "--contract", PAUL, *app]
    text = command("mps-user", *user)
    shown = json.loads(command("mps-user", *user, "--json").stdout)
    title, header, row, granted = text.stdout.splitlines()
    assert (title, granted) == (f"contract {PAUL}: 1 open prompt", "0 granted consents")
    starts = columns(header)
    cells = [row[a:b].rstrip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    prompt = shown["prompts"][0]
    assert cells == [prompt["prompt"], prompt["pairing"],
                     f"{prompt['app_name']} ({prompt['app']})", prompt["trust"],
                     prompt["purpose"], ", ".join(prompt["fields"]),
                     utc_time(prompt["created_at"]), utc_time(prompt["expires_at"])]

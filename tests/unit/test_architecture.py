"""The package boundaries and size limits of the code base, checked on every run.

Each package has one job, and arrows point one way: device code never needs emulator or
server code, the SDK never needs the registry, the wire contract needs nothing. The
limits (module <= 500 lines, function <= 60 lines, cyclomatic complexity <= 15, measured
with radon) keep every piece small enough to read in one sitting.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> the project packages its modules may import at module level.
ALLOWED: dict[str, set[str]] = {
    "mps_common": set(),
    "mps_wire": {"mps_common"},
    "mps_mqtt": {"mps_common", "mps_wire"},
    "mps_esim": {"mps_common", "mps_wire"},
    "firmware_profiles": {"mps_common", "mps_wire", "mps_mqtt", "mps_esim"},
    "agent": {"mps_common", "mps_wire", "mps_mqtt", "mps_esim", "firmware_profiles"},
    "lpa_emulator": {"mps_common", "mps_wire", "mps_mqtt", "mps_esim"},
    "broker_bridge": {"mps_common", "mps_wire", "mps_mqtt"},
    "mps_sdk": {"mps_common", "mps_wire", "mps_mqtt"},
    "mps_testbed": {"mps_common", "mps_wire", "mps_mqtt", "mps_esim", "lpa_emulator",
                    "mps_sdk", "broker_bridge", "firmware_profiles", "agent"},
    "mps_bench": {"mps_common", "mps_wire", "mps_mqtt", "mps_esim", "lpa_emulator",
                  "mps_sdk", "broker_bridge", "firmware_profiles", "agent", "mps_testbed"},
    "consent_web": {"mps_common", "mps_wire", "mps_mqtt", "broker_bridge"},
    "mps_demo": {"mps_common", "mps_wire", "mps_mqtt", "mps_sdk", "broker_bridge",
                 "mps_testbed", "lpa_emulator", "consent_web"},
}

#: Modules loaded only on demand, whose own imports reach past their package's limits:
#: the agent's emu:// card backend (the emulated card is one backend among the others).
LAZY_BACKENDS = {
    "agent/card/emu.py": {"lpa_emulator"},
}

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _module_level_imports(path: Path) -> set[str]:
    """Project packages imported by statements that run when the module is imported."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # Imports inside functions run on demand: that is how lazy backends load.
            node.body = []
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # seen by the type checker only
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = []
    for path in _modules(package):
        relative = path.relative_to(ROOT).as_posix()
        allowed = ALLOWED[package] | {package} | LAZY_BACKENDS.get(relative, set())
        for imported in sorted(_module_level_imports(path) - allowed):
            wrong.append(f"{relative} imports {imported}")
    assert wrong == []


def test_the_agent_loads_no_emulator_server_or_test_bed() -> None:
    # A board installs the agent without the emulators: importing its command line must
    # not pull them in (nor aiohttp, which only the emulated SM-DP+ needs).
    code = ("import agent.cli, agent.lpa_cli, sys; print(sorted({m.split('.')[0] for m in "
            "sys.modules} & {'lpa_emulator', 'broker_bridge', 'mps_testbed', 'mps_sdk', "
            "'aiohttp', 'mps_bench'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    assert out.strip() == "[]"



def test_the_lpa_download_path_loads_no_crypto_library() -> None:
    # The eUICC and the SM-DP+ do the cryptography of a download (SGP.22 3.1.3); the LPA
    # only hashes the confirmation code (SHA-256), so mps-lpa's download, discovery and
    # notification commands start without the cryptography package or firmware profiles.
    code = ("import agent.lpa_cli, agent.lpa_remote, sys; print(sorted({m.split('.')[0] "
            "for m in sys.modules} & {'cryptography', 'firmware_profiles'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


# What each mps-agent command may not load: a board answers '--help' and lists its profiles
# without the MQTT client, the crypto library, PC/SC, the serial port or the eSIM stack.
_HEAVY = {"paho", "cryptography", "smartcard", "serial", "cbor2", "ssl", "mps_wire",
          "mps_mqtt.client", "lpa_emulator", "agent.firstboot", "agent.doctor"}
_AGENT_COMMANDS = {
    "--help": _HEAVY | {"firmware_profiles", "mps_esim"},
    "identity --help": _HEAVY | {"firmware_profiles", "mps_esim"},
    "profiles list": _HEAVY,
    "profiles check quectel-ec25": _HEAVY,
    # Reading the device's identity probes the modem (which fails here: no such port) and
    # the card; it never registers, so loads no MQTT, no outbox and no crypto library.
    "identity --profile firmware_profiles/quectel-ec25.toml --modem /nonexistent/tty":
        (_HEAVY - {"serial", "mps_wire"}) | {"agent.publisher", "agent.outbox"},
}


@pytest.mark.parametrize("argv", sorted(_AGENT_COMMANDS))
def test_each_agent_command_loads_only_what_it_needs(argv: str) -> None:
    code = ("import contextlib, io, json, sys\n"
            "from agent.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    main({argv.split()!r})\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    prefixes = {m for m in loaded for heavy in _AGENT_COMMANDS[argv]
                if m == heavy or m.startswith(heavy + ".")}
    assert sorted(prefixes) == []


def test_an_in_process_card_opens_without_the_pki_builder() -> None:
    # A card that exists is read, not issued: the in-process card of a first boot loads
    # neither the certificate builder (lpa_emulator.pki) nor the daemon's machinery.
    code = ("import agent.cli, agent.firstboot, agent.card.emu, sys; print(sorted(m for m in "
            "sys.modules if m in {'lpa_emulator.pki', 'agent.daemon', 'agent.orders'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


# What a first boot ("mps-agent run", unsigned, the profile downloaded) may not load: the
# registry's request types, kinds and reasons, the SM-DP+'s and eIM's reports, COSE, the
# SM-DS client, urllib.request and what it pulls in (paho imports it for a proxy variable),
# uuid's C part (paho's uuid is for client ids the agent gives), tempfile; with a PC/SC card
# not even the crypto library (the eUICC does the download's cryptography) nor the email
# package (which cryptography.x509 imports for the in-process card); with the in-process
# card not the library's key serialization (SSH formats included): the card reads its own
# key and its eIM's itself; nor SGP.32's own functions and codecs, which a download does
# not use.
_BOOT_NEVER = {"mps_wire.cose", "mps_wire.registration", "mps_wire.requests",
               "mps_wire.kinds", "mps_wire.reports", "_uuid",
               "mps_esim.lpa.es11", "http.client", "tempfile", "shutil",
               "lpa_emulator.pki", "agent.daemon", "agent.orders"}
_FIRST_BOOTS = {
    "agent.card.emu": _BOOT_NEVER | {"cryptography.hazmat.primitives.serialization",
                                     "lpa_emulator.euicc.iot", "lpa_emulator.euicc.psmo",
                                     "mps_esim.sgp32.package", "mps_esim.sgp32.result",
                                     "mps_esim.sgp32.es10", "lpa_emulator.uicc"},
    "agent.card.pcsc": _BOOT_NEVER | {"cryptography", "lpa_emulator", "email"},
}


# What the in-process card does at every first boot: open its state file (its identity read
# and checked), answer the ES10 functions a download starts with, store a change.
_EMU_BOOT = ("from pathlib import Path\n"
             "from agent.card.emu import EmuCardLink\n"
             "from mps_esim.lpa.es10 import Es10Client\n"
             "link = EmuCardLink(Path(sys.argv[1])); link.connect()\n"
             "es10 = Es10Client(link.open_isdr())\n"
             "es10.get_euicc_info1(); es10.get_euicc_info2(); es10.get_euicc_challenge()\n"
             "es10.list_notifications(); es10.retrieve_notifications()\n"
             "es10.set_default_dp_address('smdp.example')\n")  # a change: the state is saved


def _make_card(state: Path) -> None:
    """A card with an eIM associated, as the rig's are (made here: no part of a boot)."""
    from dataclasses import replace

    from cryptography.hazmat.primitives.asymmetric import ec

    from lpa_emulator.euicc.card import EuiccCard
    from mps_esim.sgp32.eim import EimConfig

    card = EuiccCard.open(state)
    eim = EimConfig("eim.test", fqdn="127.0.0.1:8443", id_type=2, counter=0,
                    protocols=frozenset({"eimRetrieveHttps"})).with_key(
                        ec.generate_private_key(ec.SECP256R1()).public_key())
    card.commit(replace(card.state.copy(), iot=card.state.iot.with_eim(eim)))


@pytest.mark.parametrize("card", sorted(_FIRST_BOOTS))
def test_a_first_boot_loads_only_what_it_needs(card: str, tmp_path: Path) -> None:
    state = tmp_path / "card.json"
    if card == "agent.card.emu":
        _make_card(state)
    code = ("import json, sys\n"
            "import agent.cli, agent.firstboot, agent.download, " + card + "\n"
            "from mps_mqtt.client import new_client\n"
            "new_client('x')._get_proxy()\n"
            + (_EMU_BOOT if card == "agent.card.emu" else "")
            + "print(json.dumps(sorted(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k.lower() != "mqtt_proxy"}
    out = subprocess.run([sys.executable, "-c", code, str(state)], check=True,
                         capture_output=True, text=True, cwd=ROOT, env=env).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    # What a library loads for its own imports is not the boot's doing (cryptography 42's
    # x509 imports its serialization package; later releases do not).
    library = _loaded_by("cryptography.x509") if card == "agent.card.emu" else set()
    assert sorted(m for m in loaded - library for never in _FIRST_BOOTS[card]
                  if m == never or m.startswith(never + ".")) == []


def _loaded_by(module: str) -> set[str]:
    """The modules that importing ``module`` alone loads, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", f"import json, sys, {module}\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


# A first boot through the eIM (SGP.32, no activation code) asks the card for its eIM's
# configuration and runs the eIM's download order: no eUICC package arrives, so neither the
# package and result codecs nor the card's package handlers and PSMOs are loaded.
_EIM_BOOT_NEVER = {"mps_esim.sgp32.package", "mps_esim.sgp32.result",
                   "lpa_emulator.euicc.packages", "lpa_emulator.euicc.psmo"}


def test_a_first_boot_through_the_eim_loads_no_package_code(tmp_path: Path) -> None:
    state = tmp_path / "card.json"
    _make_card(state)
    code = ("import json, sys\n"
            "import agent.cli, agent.firstboot, agent.download, agent.ipa, agent.card.emu\n"
            + _EMU_BOOT
            + "from mps_esim.ipa import card as ipa_card\n"
            "eims = ipa_card.get_eim_configuration(es10)\n"
            "assert [e.fqdn for e in eims] == ['127.0.0.1:8443'], eims\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(state)], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "lpa_emulator.euicc.iot" in loaded  # the SGP.32 functions did run
    assert sorted(loaded & _EIM_BOOT_NEVER) == []


def _limits(package: str) -> list[str]:
    from radon.complexity import cc_visit
    from radon.visitors import Class, Function

    problems: list[str] = []

    def visit(where: str, blocks: list[object]) -> None:
        for block in blocks:
            if isinstance(block, Function):
                length = block.endline - block.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{where}:{block.lineno} {block.fullname}: {length} lines")
                if block.complexity > MAX_COMPLEXITY:
                    problems.append(f"{where}:{block.lineno} {block.fullname}: "
                                    f"complexity {block.complexity}")
                visit(where, block.closures)
            elif isinstance(block, Class):
                visit(where, [*block.methods, *block.inner_classes])

    for path in _modules(package):
        where = path.relative_to(ROOT).as_posix()
        source = path.read_text(encoding="utf-8")
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            problems.append(f"{where}: {lines} lines")
        visit(where, cc_visit(source))
    return sorted(set(problems))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_modules_and_functions_stay_small(package: str) -> None:
    assert _limits(package) == []

"""The agent's modem driver against the emulated modem on a real pseudo-terminal, through
pyserial, hosting the software eUICC."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from agent.errors import CmeError, ModemError
from agent.modem import Modem, open_modem
from lpa_emulator.euicc import EuiccCard
from lpa_emulator.modem import DIALECTS, ModemEmulator, ModemState, PtyError
from lpa_emulator.modem.server import PtyServer
from mps_esim import simfiles
from mps_wire.identifiers import luhn_valid
from tests.fixtures.modem import EmulatorFactory, FakeCard, RunningModem

pytestmark = pytest.mark.timeout(60)

GET_EID = bytes.fromhex("80E2910006BF3E035C015A")  # ES10c GetEID: STORE DATA BF3E {5C 5A}


@pytest.fixture
def euicc(tmp_path: Path) -> EuiccCard:
    return EuiccCard.open(tmp_path / "euicc.json")


def profile(card: EuiccCard) -> tuple[str, str]:
    p = card.enabled_profile()
    assert p is not None
    return p.iccid, p.imsi


def fetch(send: Callable[[bytes], bytes], apdu: bytes) -> bytes:
    """Complete the T=0 procedure the way the agent's card link does: GET RESPONSE on 61xx."""
    resp = send(apdu)
    data = b""
    while resp[-2] == 0x61:
        data += resp[:-2]
        resp = send(bytes((0x00, 0xC0, 0x00, 0x00, resp[-1])))
    return data + resp


def test_identity_and_registration(modem_emulator_factory: EmulatorFactory,
                                   euicc: EuiccCard) -> None:
    started = time.monotonic()
    running = modem_emulator_factory(euicc, registration_delay=1.0)
    m = running.connect()
    imei = m.imei()
    assert imei == running.state.imei and luhn_valid(imei) and len(imei) == 15
    assert (m.manufacturer(), m.model()) == ("Quectel", "EC25")
    assert m.revision() == running.state.revision
    assert m.sim_present()
    assert (m.iccid(), m.imsi()) == profile(euicc)
    assert not m.registered()
    assert m.ip_addresses() == []
    m.wait_registered(5, interval=0.05)
    assert time.monotonic() - started >= 0.9
    assert m.registered()
    assert m.ip_addresses() == list(running.state.ip_addresses)


def test_csim_and_logical_channels_reach_the_euicc(modem_emulator_factory: EmulatorFactory,
                                                   euicc: EuiccCard) -> None:
    m = modem_emulator_factory(euicc).connect()
    # Basic channel through AT+CSIM: SELECT MF answers 61xx, fetched with GET RESPONSE.
    first = m.csim(bytes.fromhex("00A40004023F00"))
    assert first[-2] == 0x61
    assert fetch(m.csim, bytes.fromhex("00C00000") + first[-1:])[-2:] == b"\x90\x00"
    # AT+CCHO selects the ISD-R on a channel of the modem's choosing; GetEID through CGLA.
    assert m.supports_ccho()
    session = m.open_logical_channel(simfiles.ISDR_AID)
    response = fetch(lambda apdu: m.cgla(session, apdu), GET_EID)
    assert response[-2:] == b"\x90\x00"
    assert response[:5] == bytes.fromhex("BF3E125A10")
    assert response[5:21].hex() == euicc.eid
    m.close_logical_channel(session)
    with pytest.raises(CmeError) as info:
        m.cgla(session, GET_EID)
    assert info.value.code == 21
    with pytest.raises(CmeError) as info:
        m.open_logical_channel(bytes.fromhex("A000000000000000"))
    assert info.value.code == 22


def test_generic_dialect(modem_emulator_factory: EmulatorFactory, euicc: EuiccCard) -> None:
    running = modem_emulator_factory(euicc, dialect="generic")
    m = running.connect()
    assert m.dialect.name == "generic"
    assert m.iccid() == profile(euicc)[0]  # via AT+CRSM READ BINARY of EF.ICCID
    session = m.open_logical_channel(simfiles.ISDR_AID)  # bare 27.007 answer
    assert session not in range(20)
    m.close_logical_channel(session)


def test_no_card_is_cme_10(modem_emulator_factory: EmulatorFactory) -> None:
    m = modem_emulator_factory(None).connect()
    assert not m.sim_present()
    for call in (m.imsi, m.iccid, lambda: m.csim(bytes.fromhex("00A40004023F00")),
                 lambda: m.open_logical_channel(simfiles.ISDR_AID)):
        with pytest.raises(CmeError) as info:
            call()
        assert info.value.code == 10
    assert m.imei()  # the modem itself still works


def test_urcs_reach_handlers_while_commands_run(modem_emulator_factory: EmulatorFactory,
                                                euicc: EuiccCard) -> None:
    running = modem_emulator_factory(euicc, registration_delay=0.0, urc_interval=0.02,
                                     urc_mid_command=0.7)
    m = running.connect()
    urcs: list[str] = []
    m.on_urc(urcs.append)
    for _ in range(30):
        assert m.imei() == running.state.imei
        assert m.registration_status() == 1
        assert m.iccid() == profile(euicc)[0]
    assert urcs and all(u == "+CEREG: 1" for u in urcs)


def test_commands_from_several_threads(running_registered: RunningModem) -> None:
    m = running_registered.connect()
    results: list[object] = []

    def worker(n: int) -> None:
        for _ in range(15):
            try:
                got = (m.imei(), m.model()) if n % 2 else (m.iccid(), m.registered())
            except Exception as exc:
                results.append(exc)
            else:
                results.append(got)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    card = running_registered.card
    assert isinstance(card, EuiccCard)
    expected = {(running_registered.state.imei, "EC25"), (profile(card)[0], True)}
    assert len(results) == 60
    assert set(results) == expected


def test_urc_with_the_answers_prefix_mid_command(running_registered: RunningModem) -> None:
    m = running_registered.connect()
    urcs: list[str] = []
    m.on_urc(urcs.append)
    running_registered.emulator.inject_urc("+CEREG: 5", mid_command=True)
    assert m.registration_status() == 1
    assert urcs == ["+CEREG: 5"]
    running_registered.emulator.inject_urc("+QIND: SMS DONE")
    deadline = time.monotonic() + 2
    while "+QIND: SMS DONE" not in urcs and time.monotonic() < deadline:
        m.link.poll(0.1)
    assert urcs == ["+CEREG: 5", "+QIND: SMS DONE"]


@pytest.fixture
def running_registered(modem_emulator_factory: EmulatorFactory,
                       euicc: EuiccCard) -> RunningModem:
    return modem_emulator_factory(euicc, registration_delay=0.0)


def test_client_can_close_and_reopen(running_registered: RunningModem) -> None:
    for _ in range(3):
        m = Modem(open_modem(str(running_registered.link)), "quectel")
        m.sync()
        assert m.imei() == running_registered.state.imei
        m.close()
    # A client that leaves mid-command: the emulator keeps serving the next one.
    port = serial.Serial(str(running_registered.link), timeout=0.2)
    port.write(b"AT+CGS")
    port.close()
    m = running_registered.connect()
    assert m.imei() == running_registered.state.imei


def test_unread_output_does_not_block_the_emulator(running_registered: RunningModem) -> None:
    emulator = running_registered.emulator

    def flood() -> None:
        for i in range(3000):  # ~150 KB with nobody reading, far more than a pty buffers
            emulator.inject_urc(f"+QIND: FILL {i:05d} " + "x" * 30)
        time.sleep(0.3)

    flood()
    started = time.monotonic()
    m = running_registered.connect()
    assert m.imei() == running_registered.state.imei
    assert time.monotonic() - started < 3
    m.close()
    flood()
    # A blocking write into the full pty would hang the serving thread here.
    assert running_registered.stop(timeout=2)
    assert not os.path.lexists(running_registered.link)


def test_link_is_published_replaced_and_removed(tmp_path: Path, euicc: EuiccCard) -> None:
    link = tmp_path / "run" / "modem"
    link.parent.mkdir()
    os.symlink("/dev/pts/9999", link)  # left behind by a crashed emulator
    emulator = ModemEmulator(ModemState.create(), euicc)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=emulator.serve_pty, args=(link, stop),
                              kwargs={"ready": ready})
    thread.start()
    try:
        assert ready.wait(5)
        assert os.readlink(link) == emulator.pty_name
        assert link.resolve().exists()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert not os.path.lexists(link)

    link.write_text("not a link")
    with pytest.raises(PtyError):
        emulator.serve_pty(link, threading.Event())
    assert link.read_text() == "not a link"


@contextlib.contextmanager
def tcp_modem(emulator: ModemEmulator) -> Iterator[int]:
    """The emulator's byte interface behind a TCP port (as ser2net would export a modem)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.settimeout(0.02)
        # The client may hang up between a read and a write: that ends the session.
        with conn, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(emulator.boot())
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    data = conn.recv(4096)
                    if not data:
                        return
                    conn.sendall(emulator.feed(data))
                conn.sendall(emulator.poll())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_socket_transport(euicc: EuiccCard) -> None:
    state = ModemState.create()
    with tcp_modem(ModemEmulator(state, euicc)) as port:
        m = Modem(open_modem(f"socket://127.0.0.1:{port}"), "quectel")
        try:
            m.sync()
            assert m.imei() == state.imei
            assert m.iccid() == profile(euicc)[0]
        finally:
            m.close()


def test_opening_a_closed_socket_fails() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(ModemError):
        open_modem(f"socket://127.0.0.1:{port}")


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    link, state_path = tmp_path / "modem", tmp_path / "m1.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lpa_emulator.modem.cli", "--link", str(link),
         "--state", str(state_path), "--urc-interval", "0.2", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert str(link) in line and "/dev/pts/" in line
        state = ModemState.load(state_path)
        card_state = tmp_path / "m1-euicc.json"
        assert card_state.exists()  # the default hosted card, beside the modem state
        m = Modem(open_modem(str(link)), "quectel")
        try:
            m.sync()
            assert m.imei() == state.imei
            assert m.iccid() == profile(EuiccCard.open(card_state))[0]
        finally:
            m.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_without_card_and_bad_state(tmp_path: Path) -> None:
    state_path = tmp_path / "m.json"
    state_path.write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "lpa_emulator.modem.cli", "--link", str(tmp_path / "l"),
         "--state", str(state_path), "--no-card"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "imei" in result.stderr


def test_one_thread_serves_many_modems(tmp_path: Path) -> None:
    """A PtyServer runs several emulators (of different dialects) from one loop; each
    answers on its own pty, and a URC injected into one reaches only its client."""
    server = PtyServer()
    emulators = []
    for i, dialect in enumerate(("quectel", "sim7080", "ublox")):
        emulator = ModemEmulator(ModemState.create(), FakeCard(), dialect=dialect)
        server.add(emulator, tmp_path / f"modem{i}")
        emulators.append(emulator)
    with pytest.raises(PtyError, match="twice"):
        server.add(emulators[0], tmp_path / "modem0")
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), kwargs={"ready": ready},
                              daemon=True)
    thread.start()
    modems: list[Modem] = []
    try:
        assert ready.wait(5)
        for i, emulator in enumerate(emulators):
            m = Modem(open_modem(str(tmp_path / f"modem{i}")), emulator.dialect.name)
            modems.append(m)
            m.sync()
        # All three at once, from three threads, each getting its own modem's IMEI.
        seen: dict[int, str] = {}

        def ask(i: int) -> None:
            seen[i] = modems[i].imei()

        workers = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
        assert seen == {i: e.state.imei for i, e in enumerate(emulators)}
        urcs: list[str] = []
        modems[1].on_urc(urcs.append)
        emulators[1].inject_urc("+APP PDP: 0,ACTIVE")
        deadline = time.monotonic() + 5
        while not urcs and time.monotonic() < deadline:
            modems[1].link.poll(0.1)
        assert urcs == ["+APP PDP: 0,ACTIVE"]
    finally:
        for m in modems:
            m.close()
        stop.set()
        thread.join(5)
    assert not any(os.path.lexists(tmp_path / f"modem{i}") for i in range(3))


def test_cli_count_and_manifest(tmp_path: Path) -> None:
    """``--count`` with {i} templates and ``--manifest`` serve many modems from one process."""
    (tmp_path / "a").mkdir()
    manifest = tmp_path / "modems.toml"
    manifest.write_text(f"""
[[modem]]
link = "{tmp_path}/b/m0"
state = "{tmp_path}/b/s0.json"
no_card = true
dialect = "sim7600"

[[modem]]
link = "{tmp_path}/b/m1"
state = "{tmp_path}/b/s1.json"
dialect = "ublox"
""")
    runs = [
        ([sys.executable, "-m", "lpa_emulator.modem.cli", "--count", "3", "--link",
          f"{tmp_path}/a/m{{i}}", "--state", f"{tmp_path}/a/s{{i}}.json", "--no-card",
          "--dialect", "sim7080"], [tmp_path / "a" / f"m{i}" for i in range(3)], "sim7080"),
        ([sys.executable, "-m", "lpa_emulator.modem.cli", "--manifest", str(manifest)],
         [tmp_path / "b" / "m0", tmp_path / "b" / "m1"], None),
    ]
    for argv, links, dialect in runs:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None
            out = [proc.stdout.readline() for _ in range(len(links) + 1)]
            assert out[-1].strip() == f"mps-emu modem: {len(links)} modems ready"
            for n, link in enumerate(links):
                name = dialect or ("sim7600", "ublox")[n]
                m = Modem(open_modem(str(link)), name)
                try:
                    m.sync()
                    state = ModemState.load(link.with_name(f"s{n}.json"))
                    assert m.imei() == state.imei
                    assert m.manufacturer() == DIALECTS[name].identity[0]
                    assert m.sim_present() == (name == "ublox")
                finally:
                    m.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert not any(os.path.lexists(link) for link in links)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

"""Starting, watching and stopping the processes of an emulated deployment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from mps_testbed.errors import StackError


def console_script(name: str) -> list[str]:
    """The argv prefix that runs one of the project's console scripts.

    Prefers the script installed beside the running interpreter, so a virtualenv's
    scripts are used even when its bin directory is not on PATH.
    """
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return [str(beside)]
    modules = {"mps-agent": "agent.cli", "mps-emu": "lpa_emulator.cli",
               "mps-bridge": "broker_bridge.cli", "mps-app": "mps_sdk.app_cli",
               "mps-user": "mps_sdk.user_cli", "mps-lpa": "agent.lpa_cli",
               "mps-bench": "mps_bench.cli"}
    return [sys.executable, "-m", modules[name]]


class Service:
    """A long-running child process whose output goes to a log file."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    def wait_for_line(self, marker: str, timeout: float) -> None:
        """Wait until the log holds ``marker``; StackError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if marker in self.log_path.read_text(errors="replace"):
                    return
            if self.proc.poll() is not None:
                raise StackError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.02)
        raise StackError(f"{self.name} did not print {marker!r} within {timeout:g} s:\n"
                         f"{self.tail()}")

    def wait_for_path(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise StackError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} did not create {path} within {timeout:g} s")
            time.sleep(0.02)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ProcessGroup:
    """Children started for one run, stopped together (last started, first stopped)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: list[Service] = []
        self._lock = threading.Lock()

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              prefix: Sequence[str] = ()) -> Service:
        """Start ``argv`` (optionally behind ``prefix``, e.g. nsenter) logging to a file."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([*prefix, *argv], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    env=dict(env) if env is not None else None)
        svc = Service(name, proc, log_path)
        with self._lock:
            self.services.append(svc)
        return svc

    def stop_all(self) -> None:
        with self._lock:
            services, self.services = self.services, []
        for svc in reversed(services):
            svc.stop()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a command to completion and capture its output as text."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None, check=False)


def is_root() -> bool:
    return os.geteuid() == 0


AGENT_BOOT_MODULES = ("agent.cli", "agent.firstboot", "agent.download", "agent.card.emu",
                      "agent.card.pcsc", "agent.ipa", "lpa_emulator.euicc.iot")
"""What an ``mps-agent run`` loads on the way to "registered", whichever card and path (the
in-process card's SGP.32 functions are loaded by the first of them, via an eIM)."""


def fill_bytecode_cache(modules: Sequence[str] = AGENT_BOOT_MODULES, *,
                        env: Mapping[str, str] | None = None, timeout: float = 60.0) -> None:
    """Import ``modules`` once in a child with ``env``, so a bytecode cache it names
    (PYTHONPYCACHEPREFIX) holds them and theirs, as an installed package's ``.pyc`` files
    would: the processes that follow read bytecode instead of each compiling the sources
    first (which costs them time and, transiently, memory). A module that cannot be
    imported here is passed over; whoever needs it compiles it."""
    code = ("import importlib\n"
            f"for name in {list(modules)!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError:\n"
            "        pass\n")
    run([sys.executable, "-c", code], env=env, timeout=timeout)

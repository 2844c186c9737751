"""A private Mosquitto broker on a free loopback port, for demos, rigs and tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from mps_testbed.errors import StackError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise StackError(f"nothing listens on {host}:{port} after {timeout:g} s") from None
            time.sleep(0.02)


class Mosquitto:
    """Runs ``mosquitto`` with its own configuration, listening on 127.0.0.1 only.

    ``extra_config`` lines are appended to the generated configuration (listeners for TLS,
    ACL files, ...). With ``persistence`` the broker keeps sessions and queued messages in
    its work directory across :meth:`restart`. ``config_file`` runs a complete
    configuration instead (one written by ``mps-bridge broker-config``); ``port`` and
    ``tls_port`` must then name its listeners, which :meth:`start` waits for.
    """

    def __init__(self, *, port: int | None = None, workdir: Path | None = None,
                 persistence: bool = False, extra_config: str = "",
                 config_file: Path | None = None, tls_port: int | None = None) -> None:
        if config_file is not None and port is None and tls_port is None:
            raise ValueError("a given config_file needs the port(s) of its listeners")
        self.host = "127.0.0.1"
        self.port = port or (None if config_file is not None else free_port())
        self.tls_port = tls_port
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="mps-mosquitto-"))
        self.persistence = persistence
        self.extra_config = extra_config
        self.config_file = config_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The plain listener's URL (without credentials)."""
        if self.port is None:
            raise StackError("this broker has no plain listener")
        return f"mqtt://{self.host}:{self.port}"

    def tls_url(self, ca_file: str | Path) -> str:
        """The TLS listener's URL, trusting ``ca_file`` (without client credentials)."""
        if self.tls_port is None:
            raise StackError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls_port}?ca={ca_file}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _write_config(self) -> Path:
        if self.config_file is not None:
            return self.config_file
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/",
                      "autosave_interval 1"]
            if os.geteuid() == 0:
                # Started by root, mosquitto would drop to its own user, which cannot
                # write the private work directory its database lives in.
                lines.append("user root")
        conf.write_text("\n".join(lines) + "\n" + self.extra_config)
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self._proc is not None and self._proc.poll() is None:
            # A second one would find the port taken and exit, and this one, no longer
            # held, would outlive stop().
            raise StackError(f"mosquitto is running already (pid {self._proc.pid})")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise StackError("mosquitto is not installed (apt-get install mosquitto)")
        conf = self._write_config()
        log = (self.workdir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL)
        log.close()
        try:
            for port in (self.port, self.tls_port):
                if port is not None:
                    wait_for_port(self.host, port, timeout)
        except StackError:
            self.stop()
            raise StackError(f"mosquitto did not start; see {self.workdir}/mosquitto.log") from None
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self._proc is None:
            return
        if kill:
            self._proc.kill()
        else:
            self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def reload(self) -> None:
        """Make the broker read its password and ACL files again (SIGHUP)."""
        if self._proc is None:
            raise StackError("mosquitto is not running")
        self._proc.send_signal(signal.SIGHUP)

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["Mosquitto", "StackError", "free_port", "wait_for_port"]

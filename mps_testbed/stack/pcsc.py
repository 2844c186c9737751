"""A private pcscd with the vpcd reader driver, in its own network and mount namespace.

vpcd binds 0.0.0.0 (hard-coded), so pcscd runs in a fresh network namespace where
"everywhere" is just that namespace's loopback, with its own ``/run/pcscd`` on a tmpfs. A
holder process (``sleep``) keeps the namespaces alive, so pcscd can be restarted inside
them; virtual cards join the network namespace through :meth:`PcscSandbox.spawn` (or
:meth:`~PcscSandbox.nsenter_prefix`) and connect to 127.0.0.1:35963 / 35964. PC/SC clients
outside reach pcscd through its socket, ``PCSCLITE_CSOCK_NAME`` = :attr:`socket_path`
(:meth:`~PcscSandbox.env`). Every sandbox has its own namespaces, so several run at once.

Needs root (or CAP_SYS_ADMIN), ``unshare``/``nsenter`` (util-linux), ``ip`` (iproute2),
pcscd and libifdvpcd (vsmartcard-vpcd); :meth:`PcscSandbox.available` says what is missing.

Run as ``python -m mps_testbed.stack.pcsc probe ...`` it is the small PC/SC client the
sandbox uses to wait for readers and cards (libpcsclite reads the socket name once per
process, so each check runs in a fresh process).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from mps_common.cli import new_parser
from mps_testbed.errors import StackError

log = logging.getLogger(__name__)

READER_FRIENDLY_NAME = "Virtual PCD"
VPCD_PORTS = (35963, 35964)
"""vpcd's listening ports for slot 0 and slot 1 (0x8C7B, 0x8C7C)."""

VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
_VPCD_LIBRARIES = (
    Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/lib/x86_64-linux-gnu/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/lib64/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so"),
)
# pcscd's drop directory for USB reader bundles; hidden inside the sandbox so that a
# private pcscd never grabs a real reader the host's pcscd is using.
_USB_DROPDIR = Path("/usr/lib/pcsc/drivers")

_HOLDER_SCRIPT = """
set -e
ip link set lo up
mkdir -p /run/pcscd
mount -t tmpfs -o mode=0755,size=1m mps-pcscd /run/pcscd
if [ -d "$1" ]; then mount -t tmpfs -o mode=0755,size=1m mps-pcsc-drivers "$1"; fi
echo ready
exec sleep infinity
"""


def _find_vpcd_library() -> Path | None:
    with contextlib.suppress(OSError):
        for line in VPCD_CONF.read_text().splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "LIBPATH" and Path(value.strip()).exists():
                return Path(value.strip())
    return next((p for p in _VPCD_LIBRARIES if p.exists()), None)


def _terminate(proc: subprocess.Popen[Any], *, group: bool, timeout: float = 5.0) -> None:
    """SIGTERM ``proc`` (and its process group when it leads one), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


class PcscSandbox:
    """pcscd + vpcd in private namespaces; see the module documentation.

    The constructor does no I/O; :meth:`start` (or ``with``) brings it up, :meth:`close`
    takes everything down again, including processes started with :meth:`spawn`.
    """

    def __init__(self, *, workdir: Path | None = None, debug: bool = False) -> None:
        self._given_workdir = workdir
        self.workdir: Path | None = workdir
        self.debug = debug
        self._holder: subprocess.Popen[bytes] | None = None
        self._pcscd: subprocess.Popen[bytes] | None = None
        self._spawned: list[subprocess.Popen[Any]] = []
        self._library: Path | None = None

    # --- what the machine offers -----------------------------------------------------

    @staticmethod
    @functools.cache
    def available() -> tuple[bool, str]:
        """Whether a sandbox can run here, and if not, why (checked once per process)."""
        if not sys.platform.startswith("linux"):
            return False, "network namespaces need Linux"
        if os.geteuid() != 0:
            return False, "needs root to create network and mount namespaces"
        for tool in ("unshare", "nsenter", "ip", "pcscd"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                return False, f"{tool} is not installed"
        if _find_vpcd_library() is None:
            return False, "libifdvpcd (vsmartcard-vpcd) is not installed"
        if importlib.util.find_spec("smartcard") is None:
            return False, "pyscard is not installed"
        try:
            probe = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private",
                                    "sh", "-c", "ip link set lo up"],
                                   capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"unshare failed: {exc}"
        if probe.returncode != 0:
            why = probe.stderr.decode(errors="replace").strip() or f"exit {probe.returncode}"
            return False, f"unshare is not permitted here: {why}"
        return True, "ok"

    # --- identity ----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The process holding the namespaces (target for ``nsenter -t``)."""
        if self._holder is None or self._holder.poll() is not None:
            raise StackError("the PC/SC sandbox is not running")
        return self._holder.pid

    @property
    def pcscd_pid(self) -> int | None:
        return None if self._pcscd is None else self._pcscd.pid

    @property
    def socket_path(self) -> Path:
        """pcscd's socket as seen from outside the sandbox."""
        return Path(f"/proc/{self.pid}/root/run/pcscd/pcscd.comm")

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) pointing PC/SC at this pcscd."""
        env = dict(os.environ if base is None else base)
        env["PCSCLITE_CSOCK_NAME"] = str(self.socket_path)
        return env

    @staticmethod
    def reader_name(slot: int = 0) -> str:
        """The PC/SC name of vpcd's reader ``slot`` (0 or 1)."""
        if slot not in (0, 1):
            raise ValueError(f"vpcd has slots 0 and 1, not {slot}")
        return f"{READER_FRIENDLY_NAME} 00 {slot:02d}"

    @staticmethod
    def vpcd_port(slot: int = 0) -> int:
        """The port a virtual card for ``slot`` connects to, inside the sandbox."""
        return VPCD_PORTS[slot]

    def nsenter_prefix(self) -> list[str]:
        """The argv prefix that runs a command in the sandbox's network namespace."""
        return ["nsenter", "-t", str(self.pid), "-n", "--"]

    def spawn(self, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the network namespace (where vpcd listens on loopback).

        ``env`` defaults to :meth:`env`, and the child leads a new session so that
        :meth:`stop` can end it with all its children; other keywords go to ``Popen``.
        """
        popen_kwargs.setdefault("env", self.env())
        popen_kwargs.setdefault("start_new_session", True)
        self._spawned = [p for p in self._spawned if p.poll() is None]
        proc: subprocess.Popen[Any] = subprocess.Popen(
            [*self.nsenter_prefix(), *argv], **popen_kwargs)
        self._spawned.append(proc)
        return proc

    # --- life cycle --------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> PcscSandbox:
        """Create the namespaces and start pcscd; return once the readers are listed."""
        if self._holder is not None:
            raise StackError("the PC/SC sandbox is already started")
        ok, why = self.available()
        if not ok:
            raise StackError(f"cannot run a PC/SC sandbox: {why}")
        self._library = _find_vpcd_library()
        self.workdir = self._given_workdir or Path(tempfile.mkdtemp(prefix="mps-pcsc-"))
        try:
            self._write_config()
            self._start_holder(timeout)
            self._start_pcscd()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("PC/SC sandbox up: holder %d, pcscd %s, socket %s", self.pid,
                 self.pcscd_pid, self.socket_path)
        return self

    def _write_config(self) -> None:
        if self.workdir is None or self._library is None:
            raise StackError("the PC/SC sandbox has no work directory")
        # The library is copied into the work directory because the sandbox hides the
        # system driver directory (see _USB_DROPDIR).
        library = self.workdir / "libifdvpcd.so"
        shutil.copyfile(self._library, library)
        conf_dir = self.workdir / "reader.conf.d"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_FRIENDLY_NAME}"\n'
            f"DEVICENAME   /dev/null:0x{VPCD_PORTS[0]:X}\n"
            f"LIBPATH      {library}\n"
            f"CHANNELID    0x{VPCD_PORTS[0]:X}\n")

    def _start_holder(self, timeout: float) -> None:
        holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private",
             "sh", "-c", _HOLDER_SCRIPT, "mps-pcsc-holder", str(_USB_DROPDIR)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self._holder = holder
        stdout = holder.stdout
        if stdout is None:
            raise StackError("no pipe to the namespace holder")
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if line.strip() != b"ready":
            err = b""
            if holder.poll() is not None and holder.stderr is not None:
                err = holder.stderr.read()
            raise StackError("could not set up the PC/SC namespaces: "
                             f"{err.decode(errors='replace').strip() or 'no answer'}")
        # Nothing more is read from the holder; its pipes must not fill up or linger.
        stdout.close()
        if holder.stderr is not None:
            holder.stderr.close()

    def _start_pcscd(self) -> None:
        if self.workdir is None:
            raise StackError("the PC/SC sandbox has no work directory")
        # A pcscd killed hard leaves its socket and pid file behind, which would stop the
        # next one from starting.
        run_dir = Path(f"/proc/{self.pid}/root/run/pcscd")
        for stale in ("pcscd.comm", "pcscd.pid", "pcscd.pub"):
            with contextlib.suppress(FileNotFoundError):
                (run_dir / stale).unlink()
        argv = ["nsenter", "-t", str(self.pid), "-n", "-m", "--",
                "pcscd", "--foreground", "--config", str(self.workdir / "reader.conf.d")]
        if self.debug:
            argv += ["--debug", "--apdu"]
        with (self.workdir / "pcscd.log").open("ab") as log_file:
            self._pcscd = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                           stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until pcscd's socket exists and it lists both vpcd readers."""
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            self._check_pcscd()
            if time.monotonic() > deadline:
                raise StackError(f"pcscd made no socket within {timeout:g} s{self._log_tail()}")
            time.sleep(0.01)
        self._probe(["--reader", self.reader_name(0), "--reader", self.reader_name(1)],
                    max(0.5, deadline - time.monotonic()), "list the vpcd readers")

    def wait_card(self, slot: int = 0, timeout: float = 15.0) -> None:
        """Wait until pcscd sees a card in reader ``slot``."""
        self._probe(["--reader", self.reader_name(slot), "--card"], timeout,
                    f"see a card in {self.reader_name(slot)!r}")

    def wait_no_card(self, slot: int = 0, timeout: float = 15.0) -> None:
        """Wait until reader ``slot`` is empty."""
        self._probe(["--reader", self.reader_name(slot), "--empty"], timeout,
                    f"see {self.reader_name(slot)!r} empty")

    def _probe(self, args: list[str], timeout: float, what: str) -> None:
        argv = [sys.executable, "-m", "mps_testbed.stack.pcsc", "probe",
                "--timeout", f"{timeout:.3f}", *args]
        try:
            done = subprocess.run(argv, env=self.env(), capture_output=True, text=True,
                                  timeout=timeout + 10, check=False)
        except subprocess.TimeoutExpired:
            raise StackError(f"pcscd did not {what} within {timeout:g} s") from None
        if done.returncode != 0:
            raise StackError(f"pcscd did not {what} within {timeout:g} s: "
                             f"{done.stderr.strip()}{self._log_tail()}")

    def _check_pcscd(self) -> None:
        if self._pcscd is None or self._pcscd.poll() is not None:
            code = None if self._pcscd is None else self._pcscd.returncode
            raise StackError(f"pcscd is not running (exit {code}){self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        if self.workdir is None:
            return ""
        try:
            text = (self.workdir / "pcscd.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"\npcscd log ({self.workdir / 'pcscd.log'}):\n{tail}" if tail else ""

    def stop_pcscd(self) -> None:
        """Stop pcscd alone; the namespaces (and cards in them) stay."""
        if self._pcscd is not None:
            _terminate(self._pcscd, group=True)
            self._pcscd = None

    def restart_pcscd(self, timeout: float = 15.0) -> None:
        """Stop pcscd and start a fresh one in the same namespaces (cards reconnect)."""
        self.stop_pcscd()
        self._start_pcscd()
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Stop spawned processes, pcscd and the namespace holder."""
        spawned, self._spawned = self._spawned, []
        for proc in reversed(spawned):
            _terminate(proc, group=True)
        self.stop_pcscd()
        if self._holder is not None:
            _terminate(self._holder, group=True)
            self._holder = None

    def close(self) -> None:
        """:meth:`stop`, and remove the work directory unless it was given."""
        self.stop()
        if self._given_workdir is None and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> PcscSandbox:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --- the probe: a PC/SC client run in a fresh process -------------------------------------

def _probe_main(argv: Sequence[str]) -> int:
    parser = new_parser("python -m mps_testbed.stack.pcsc probe",
                        "Wait until pcscd lists the readers (holding a card, or none).")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--reader", action="append", default=[],
                        help="wait until this reader is listed (repeatable)")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--card", action="store_true", help="and holds a card")
    state.add_argument("--empty", action="store_true", help="and holds no card")
    args = parser.parse_args(argv)

    # Loaded only here: importing the sandbox must not pull libpcsclite into a process.
    from smartcard import scard

    deadline = time.monotonic() + args.timeout
    while True:
        hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult == scard.SCARD_S_SUCCESS:
            try:
                done, last = _probe_once(scard, ctx, args)
            finally:
                scard.SCardReleaseContext(ctx)
            if done:
                return 0
        else:
            last = f"no PC/SC context: {scard.SCardGetErrorMessage(hresult)}"
        if time.monotonic() > deadline:
            print(last, file=sys.stderr)
            return 1
        time.sleep(0.05)


def _probe_once(scard: Any, ctx: Any, args: argparse.Namespace) -> tuple[bool, str]:
    """Whether pcscd is as ``args`` wants it now, and what it showed."""
    hresult, names = scard.SCardListReaders(ctx, [])
    names = list(names) if hresult == scard.SCARD_S_SUCCESS else []
    if any(r not in names for r in args.reader):
        return False, f"readers {names}"
    if not (args.card or args.empty):
        return True, f"readers {names}"
    query = [(r, scard.SCARD_STATE_UNAWARE) for r in args.reader]
    hresult, states = scard.SCardGetStatusChange(ctx, 0, query)
    if hresult != scard.SCARD_S_SUCCESS:
        return False, f"readers {names}"
    present = [bool(s[1] & scard.SCARD_STATE_PRESENT) for s in states]
    shown = f"card present: {dict(zip(args.reader, present, strict=True))}"
    return (all(present) if args.card else not any(present)), shown


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        sys.exit(_probe_main(sys.argv[2:]))
    print("usage: python -m mps_testbed.stack.pcsc probe [--reader NAME] [--card|--empty]",
          file=sys.stderr)
    sys.exit(2)

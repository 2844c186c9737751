"""Watching the WAL index (the -shm file) keeps SQLite's locks on it.

Closing any descriptor of a file releases every POSIX record lock the process holds on it
(POSIX fcntl(2), "all locks associated with a file for a given process are removed when
any file descriptor for that file is closed"). SQLite marks a -shm in use with such a
lock (https://sqlite.org/walformat.html, "the DMS lock"); once it is gone, the next
process to open the database truncates the -shm and builds it again under the
connections still using it, and a read of a mapping of it in between kills the reader
with SIGBUS (a bridge that stopped answering registrations, in ``mps-bench``)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from broker_bridge.storage.sqlite import SqliteStore
from tests.helpers import PAUL_MSISDN, make_device, paul_and_apps

# From another process: the first lock on the whole file that a write lock would meet
# (struct flock of Linux on 64-bit: type, whence, start, len, pid).
_PROBE = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
want = struct.pack("hhxxxxqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
kind, _w, _s, _l, pid = struct.unpack("hhxxxxqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, want))
print(pid if kind != fcntl.F_UNLCK else 0)
"""


def lock_holder(path: Path) -> int:
    """The process holding a record lock on ``path`` (0: none), as another process sees."""
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return int(out)


def test_the_commit_marker_leaves_sqlites_lock_on_the_shm(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    with SqliteStore(db) as store:
        paul_and_apps(store)
        shm = Path(f"{db}-shm")
        assert lock_holder(shm) == os.getpid()  # SQLite's own, while connected
        markers = [store.commit_marker() for _ in range(3)]
        assert all(marker is not None and marker() is not None for marker in markers)
        del markers
        gc.collect()  # nothing the markers held may close a descriptor of the -shm
        assert lock_holder(shm) == os.getpid()
        # Another process opens the database: it finds the -shm in use and leaves it be.
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect("
                        "sys.argv[1]); c.execute('PRAGMA user_version'); c.close()",
                        str(db)], check=True, timeout=30)
        marker = store.commit_marker()
        assert marker is not None and marker() is not None
        store.register_device(make_device(5))
        assert store.read_versions(PAUL_MSISDN) is not None

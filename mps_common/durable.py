"""Durable file writes shared by every party: card and modem state, the device's outbox,
keys and broker configuration all replace their files the same way."""

from __future__ import annotations

import os
from pathlib import Path


def _create_beside(target: Path) -> tuple[int, Path]:
    """A new empty file ``.<name>.<random>.tmp`` beside ``target``, opened for writing and
    readable by the owner only (what tempfile.mkstemp does, without its imports of shutil
    and the compression modules, which a board's agent never needs)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | getattr(os, "O_CLOEXEC", 0), 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content,
    never a mix: a temporary file beside it, fsync, rename, then fsync of the directory
    (a rename is durable only once the directory entry is). ``mode`` applies from the
    start, so a secret is never readable by others, not even briefly."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(target)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

"""The account Mosquitto reads its files as, and handing the written files over to it.

Mosquitto started by root switches to the account its ``user`` option names, by default
``mosquitto``, before it opens the password, ACL and key files; started by anyone else it
stays that account. Files that account cannot read stop the broker at start
(``Error: Unable to open pwfile``), so the files written by root are given to it.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_DEFAULT_USER = "mosquitto"
"""The account Mosquitto switches to when started by root with no ``user`` option."""


@dataclass(frozen=True, slots=True)
class Handover:
    """What :func:`hand_over` did, and what a person should know about it.

    ``owner`` is the account the files now belong to (None: left as they were);
    ``notes`` say what stands in the broker's way and how to clear it.
    """

    owner: str | None
    notes: tuple[str, ...] = ()


def hand_over(out_dir: Path, paths: Iterable[Path], configured: str | None) -> Handover:
    """Give ``paths`` (the secret files, the persistence directory) to the account
    Mosquitto runs as, when this runs as root; otherwise say what starting it needs."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return Handover(None, (
            f"the files belong to {me}: start mosquitto as {me}; started by root it "
            f"switches to {configured or MOSQUITTO_DEFAULT_USER}, which cannot read them "
            "(write them as root to hand them over)",))
    user = configured or MOSQUITTO_DEFAULT_USER
    if user == "root":
        return Handover("root", ("Mosquitto warns when it runs as root; without --user it "
                                 f"runs as {MOSQUITTO_DEFAULT_USER} and the files are "
                                 "handed to that account",))
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return Handover(None, (f"there is no account {user!r} for Mosquitto to run as: "
                               "create it, or name another with --user",))
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)
    blocked = _closed_directory(out_dir, account)
    if blocked is None:
        return Handover(user)
    mode = stat.S_IMODE(blocked.stat().st_mode)
    return Handover(user, (f"{user} cannot reach {blocked} (mode {mode:04o}), so Mosquitto "
                           f"cannot open its files: write them elsewhere, or chmod o+x "
                           f"{blocked}",))


def _closed_directory(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first directory on the way to ``path`` (itself included) that ``account`` may
    not pass through."""
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                 if account.pw_name in g.gr_mem}
    full = path.resolve()
    for directory in [*reversed(full.parents), full]:
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None

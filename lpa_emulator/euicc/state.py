"""The card's persistent state: EID, installed profiles and ISD-R settings.

Kept as a small JSON document (bytes as hex at this edge) that survives restarts, as a
real card keeps its profiles across power cycles. :meth:`CardState.save` replaces the file
atomically, so a crash leaves either the old or the new state, never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lpa_emulator import simfiles
from lpa_emulator.euicc.errors import StateError
from mps_wire.identifiers import (
    IdentifierError,
    make_eid,
    make_iccid,
    validate_eid,
    validate_iccid,
    validate_imsi,
    validate_msisdn,
)

STATE_FORMAT = 1
"""Version of the state file layout; bumped when a field changes meaning."""

ISDP_AID_BASE = bytes.fromhex("A0000005591010FFFFFFFF8900001000")
"""The first ISD-P AID; further profiles step the second-to-last byte (``..1100``, ``..1200``)."""

DEFAULT_USIM_AID = simfiles.AID_USIM_PREFIX + bytes.fromhex("FF49FF0589")
DEFAULT_ROOT_DS = "lpa.ds.gsma.com"
PROFILE_CLASSES = ("test", "provisioning", "operational")

_EID_PREFIX = "8904903200"
_MAX_AID = 16
_MIN_AID = 5


def isdp_aid_for(index: int) -> bytes:
    """The ISD-P AID of the ``index``-th profile slot (0-based)."""
    if not 0 <= index < 0xEF:
        raise ValueError(f"no ISD-P AID for slot {index}")
    aid = bytearray(ISDP_AID_BASE)
    aid[-2] += index
    return bytes(aid)


def _digits(n: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


def random_eid() -> str:
    """A valid 32-digit EID under a test issuer prefix."""
    return make_eid(_EID_PREFIX + _digits(30 - len(_EID_PREFIX)))


def random_iccid() -> str:
    """A valid 20-digit ICCID (telecom prefix 89, country 49)."""
    return make_iccid("894900" + _digits(13))


def random_imsi() -> str:
    """A 15-digit IMSI in the test network 001-01."""
    return "00101" + _digits(10)


def random_msisdn() -> str:
    """A German-looking mobile number in E.164."""
    return "+49151" + _digits(8)


def _check_aid(aid: bytes, what: str) -> bytes:
    if not _MIN_AID <= len(aid) <= _MAX_AID:
        raise ValueError(f"{what} must be {_MIN_AID} to {_MAX_AID} bytes, got {len(aid)}")
    return aid


@dataclass
class ProfileRecord:
    """One installed profile and the subscription identities it carries.

    Identifiers are checked and normalised on construction (a ``ValueError`` names the
    bad field).
    """

    iccid: str
    imsi: str
    msisdn: str | None = None
    isdp_aid: bytes = ISDP_AID_BASE
    enabled: bool = False
    nickname: str | None = None
    name: str = "MPS profile"
    spn: str = "MPS"
    profile_class: str = "operational"
    usim_aid: bytes = DEFAULT_USIM_AID
    mnc_length: int = 2

    def __post_init__(self) -> None:
        self.iccid = validate_iccid(self.iccid)
        self.imsi = validate_imsi(self.imsi)
        if self.msisdn is not None:
            self.msisdn = validate_msisdn(self.msisdn)
        self.isdp_aid = _check_aid(bytes(self.isdp_aid), "isdp_aid")
        self.usim_aid = _check_aid(bytes(self.usim_aid), "usim_aid")
        if not self.usim_aid.startswith(simfiles.AID_USIM_PREFIX):
            raise ValueError(f"usim_aid {self.usim_aid.hex()} lacks the 3GPP USIM prefix")
        if self.profile_class not in PROFILE_CLASSES:
            raise ValueError(f"profile_class must be one of {PROFILE_CLASSES}")
        if self.mnc_length not in (2, 3):
            raise ValueError("mnc_length is 2 or 3")

    @classmethod
    def generate(cls, *, iccid: str | None = None, imsi: str | None = None,
                 msisdn: str | None = None, slot: int = 0, enabled: bool = True,
                 name: str = "MPS profile", spn: str = "MPS") -> ProfileRecord:
        """A profile with the given identities, random valid ones for those left out."""
        return cls(iccid=iccid or random_iccid(), imsi=imsi or random_imsi(), msisdn=msisdn,
                   isdp_aid=isdp_aid_for(slot), enabled=enabled, name=name, spn=spn)

    def to_dict(self) -> dict[str, Any]:
        return {
            "iccid": self.iccid,
            "imsi": self.imsi,
            "msisdn": self.msisdn,
            "isdp_aid": self.isdp_aid.hex().upper(),
            "enabled": self.enabled,
            "nickname": self.nickname,
            "name": self.name,
            "spn": self.spn,
            "profile_class": self.profile_class,
            "usim_aid": self.usim_aid.hex().upper(),
            "mnc_length": self.mnc_length,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileRecord:
        """Inverse of :meth:`to_dict`; ``ValueError``/``TypeError``/``KeyError`` on bad input."""
        def text(key: str, default: str | None = None) -> str | None:
            value = data.get(key, default)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a string")
            return value

        def required(key: str) -> str:
            value = text(key)
            if value is None:
                raise KeyError(key)
            return value

        enabled = data.get("enabled", False)
        mnc_length = data.get("mnc_length", 2)
        if not isinstance(enabled, bool):
            raise TypeError("enabled must be true or false")
        if not isinstance(mnc_length, int) or isinstance(mnc_length, bool):
            raise TypeError("mnc_length must be an integer")
        return cls(
            iccid=required("iccid"),
            imsi=required("imsi"),
            msisdn=text("msisdn"),
            isdp_aid=bytes.fromhex(required("isdp_aid")),
            enabled=enabled,
            nickname=text("nickname"),
            name=text("name", "MPS profile") or "",
            spn=text("spn", "MPS") or "",
            profile_class=text("profile_class", "operational") or "",
            usim_aid=bytes.fromhex(text("usim_aid", DEFAULT_USIM_AID.hex()) or ""),
            mnc_length=mnc_length,
        )


@dataclass
class CardState:
    """Everything a card keeps across power cycles."""

    eid: str
    profiles: list[ProfileRecord] = field(default_factory=list)
    default_dp_address: str | None = None
    root_ds_address: str = DEFAULT_ROOT_DS

    def __post_init__(self) -> None:
        self.eid = validate_eid(self.eid)
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` unless the profiles are consistent with each other."""
        if sum(p.enabled for p in self.profiles) > 1:
            raise ValueError("more than one profile is enabled")
        for key in ("iccid", "isdp_aid"):
            seen = [getattr(p, key) for p in self.profiles]
            if len(set(seen)) != len(seen):
                raise ValueError(f"two profiles share the same {key}")

    @classmethod
    def new(cls, *, eid: str | None = None,
            profiles: Iterable[ProfileRecord] | None = None) -> CardState:
        """A fresh card: the given (or a random valid) EID and the given profiles, or one
        enabled profile with random valid identities when ``profiles`` is None."""
        chosen = [ProfileRecord.generate()] if profiles is None else [
            replace(p) for p in profiles]
        return cls(eid=eid or random_eid(), profiles=chosen)

    def enabled_profile(self) -> ProfileRecord | None:
        for profile in self.profiles:
            if profile.enabled:
                return profile
        return None

    def find_profile(self, *, iccid: str | None = None,
                     isdp_aid: bytes | None = None) -> ProfileRecord | None:
        for profile in self.profiles:
            if profile.iccid == iccid or profile.isdp_aid == isdp_aid:
                return profile
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "eid": self.eid,
            "default_dp_address": self.default_dp_address,
            "root_ds_address": self.root_ds_address,
            "profiles": [p.to_dict() for p in self.profiles],
        }

    @classmethod
    def from_dict(cls, data: object) -> CardState:
        """Inverse of :meth:`to_dict`; :class:`StateError` names what is wrong."""
        try:
            if not isinstance(data, dict):
                raise TypeError("the state is not a JSON object")
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"unsupported state format {data.get('format')!r}, "
                                 f"expected {STATE_FORMAT}")
            profiles = data.get("profiles", [])
            if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
                raise TypeError("profiles must be a list of objects")
            dp = data.get("default_dp_address")
            ds = data.get("root_ds_address", DEFAULT_ROOT_DS)
            eid = data.get("eid")
            if not (dp is None or isinstance(dp, str)) or not isinstance(ds, str):
                raise TypeError("addresses must be strings")
            if not isinstance(eid, str):
                raise TypeError("eid is missing or not a string")
            return cls(eid=eid, profiles=[ProfileRecord.from_dict(p) for p in profiles],
                       default_dp_address=dp, root_ds_address=ds)
        except KeyError as exc:
            raise StateError(f"missing field {exc.args[0]!r}") from exc
        except (IdentifierError, ValueError, TypeError) as exc:
            raise StateError(str(exc)) from exc

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
        path = Path(path)
        payload = json.dumps(self.to_dict(), indent=2).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename itself is only durable once the directory entry is on disk.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: Path) -> CardState:
        """Read a state file; :class:`StateError` for unreadable, corrupt or invalid content
        (``FileNotFoundError`` passes through for a missing file)."""
        path = Path(path)
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateError(f"not a valid card state file (corrupt JSON: {exc})",
                             path=str(path)) from exc
        try:
            return cls.from_dict(data)
        except StateError as exc:
            raise StateError(f"invalid card state: {exc}", path=str(path)) from exc

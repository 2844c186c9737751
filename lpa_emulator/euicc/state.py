"""The card's persistent state: EID and identity, installed profiles, pending notifications,
ISD-R settings and counters.

Kept as a small JSON document (bytes as hex at this edge) that survives restarts, as a
real card keeps its profiles across power cycles. :meth:`CardState.save` replaces the file
atomically, so a crash leaves either the old or the new state, never half of one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lpa_emulator.euicc.eim_config import IotState
from lpa_emulator.euicc.errors import StateError
from lpa_emulator.euicc.identity import EuiccIdentity, IdentityError, generate
from lpa_emulator.euicc.numbers import (
    ISDP_AID_BASE,
    isdp_aid_for,
    random_eid,
    random_iccid,
    random_imsi,
    random_msisdn,
)
from mps_common.durable import atomic_write
from mps_esim import sgp22, simfiles, tlv
from mps_wire.identifiers import (
    IdentifierError,
    validate_eid,
    validate_iccid,
    validate_imsi,
    validate_msisdn,
)

STATE_FORMAT = 2
"""Version of the state file layout; bumped when a field changes meaning. Format 1 (no
identity, no notifications) is still read; the card gets a generated identity."""
_READABLE_FORMATS = (1, 2)

MAX_NOTIFICATIONS = 64
"""Pending notifications a card keeps; beyond that the oldest is dropped (and logged)."""

DEFAULT_USIM_AID = simfiles.AID_USIM_PREFIX + bytes.fromhex("FF49FF0589")
DEFAULT_ROOT_DS = "lpa.ds.gsma.com"
PROFILE_CLASSES = ("test", "provisioning", "operational")

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ROOT_DS", "DEFAULT_USIM_AID", "ISDP_AID_BASE", "MAX_NOTIFICATIONS", "PROFILE_CLASSES",
    "STATE_FORMAT", "CardState", "NotificationRecord", "ProfileRecord", "isdp_aid_for",
    "random_eid", "random_iccid", "random_imsi", "random_msisdn",
]

_MAX_AID = 16
_MIN_AID = 5


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
    smdp_address: str | None = None
    """The SM-DP+ that installed the profile; its notifications go there."""
    notify: tuple[str, ...] = sgp22.NOTIFICATION_EVENTS
    """The operations that produce a notification (the profile's notification config)."""
    ppr: tuple[str, ...] = ()
    """Profile policy rules: ``ppr1`` (may not be disabled), ``ppr2`` (may not be deleted)."""
    ki: bytes | None = field(default=None, repr=False)
    """The subscriber key K of the profile's AKA parameters (Milenage), when it has them."""
    opc: bytes | None = field(default=None, repr=False)
    """OPc of the AKA parameters."""

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
        if self.smdp_address is not None and not 0 < len(
                self.smdp_address.encode()) <= sgp22.MAX_ADDRESS:
            raise ValueError("smdp_address must be 1 to 255 bytes")
        self.notify = tuple(dict.fromkeys(self.notify))
        sgp22.names_to_bits(self.notify, sgp22.NOTIFICATION_EVENTS)
        self.ppr = tuple(dict.fromkeys(self.ppr))
        sgp22.names_to_bits(self.ppr, sgp22.PPR_IDS)
        if self.nickname is not None and len(self.nickname) > sgp22.MAX_NICKNAME:
            raise ValueError(f"nickname is at most {sgp22.MAX_NICKNAME} characters")
        for name in ("ki", "opc"):
            key = getattr(self, name)
            if key is not None and len(key) != 16:
                raise ValueError(f"{name} is 16 bytes, got {len(key)}")

    @property
    def owner(self) -> sgp22.OperatorId:
        """The profile owner (OperatorID), from the MCC and MNC of the IMSI."""
        mcc, mnc = self.imsi[:3], self.imsi[3:3 + self.mnc_length]
        return sgp22.OperatorId(sgp22.plmn_bytes(mcc, mnc))

    def info(self) -> sgp22.ProfileInfo:
        """Everything ListProfileInfo can report of this profile."""
        config = None
        if self.smdp_address is not None and self.notify:
            config = (sgp22.NotificationConfig(frozenset(self.notify), self.smdp_address),)
        return sgp22.ProfileInfo(
            iccid=self.iccid, isdp_aid=self.isdp_aid,
            state="enabled" if self.enabled else "disabled",
            nickname=self.nickname, provider_name=self.spn[:sgp22.MAX_PROVIDER_NAME],
            profile_name=self.name[:sgp22.MAX_PROFILE_NAME], profile_class=self.profile_class,
            notification_config=config, owner=self.owner, ppr=frozenset(self.ppr) or None)

    def notification_address(self, operation: str) -> str | None:
        """Where a notification for ``operation`` goes, or None when none is made."""
        return self.smdp_address if operation in self.notify else None

    @classmethod
    def generate(cls, *, iccid: str | None = None, imsi: str | None = None,
                 msisdn: str | None = None, slot: int = 0, enabled: bool = True,
                 name: str = "MPS profile", spn: str = "MPS",
                 smdp_address: str | None = None) -> ProfileRecord:
        """A profile with the given identities, random valid ones for those left out."""
        return cls(iccid=iccid or random_iccid(), imsi=imsi or random_imsi(), msisdn=msisdn,
                   isdp_aid=isdp_aid_for(slot), enabled=enabled, name=name, spn=spn,
                   smdp_address=smdp_address)

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
            "smdp_address": self.smdp_address,
            "notify": list(self.notify),
            "ppr": list(self.ppr),
            "ki": None if self.ki is None else self.ki.hex().upper(),
            "opc": None if self.opc is None else self.opc.hex().upper(),
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

        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = data.get(key, list(default))
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"{key} must be a list of strings")
            return tuple(value)

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
            smdp_address=text("smdp_address"),
            notify=names("notify", sgp22.NOTIFICATION_EVENTS),
            ppr=names("ppr", ()),
            ki=None if text("ki") is None else bytes.fromhex(required("ki")),
            opc=None if text("opc") is None else bytes.fromhex(required("opc")),
        )


@dataclass(frozen=True)
class NotificationRecord:
    """A pending notification, kept until the LPA reports it delivered (NotificationSent).

    ``signature`` is SK.EUICC's signature over the metadata, made when the operation
    happened; an install notification instead keeps the whole signed ProfileInstallationResult
    (``installation_result``, tag BF37).
    """

    seq: int
    operation: str
    address: str
    iccid: str | None = None
    signature: bytes = b""
    installation_result: bytes | None = None

    def __post_init__(self) -> None:
        if self.operation not in sgp22.NOTIFICATION_EVENTS:
            raise ValueError(f"unknown notification operation {self.operation!r}")
        if self.seq < 0:
            raise ValueError("a sequence number is not negative")

    @property
    def metadata(self) -> sgp22.NotificationMetadata:
        return sgp22.NotificationMetadata(self.seq, self.operation, self.address, self.iccid)

    def pending(self, identity: EuiccIdentity) -> bytes:
        """The PendingNotification: the stored BF37, or an OtherSignedNotification with
        the eUICC's and the EUM's certificates."""
        if self.installation_result is not None:
            return self.installation_result
        return tlv.encode(sgp22.TAG_SEQUENCE,
                          self.metadata.encode()
                          + tlv.encode(sgp22.TAG_SIGNATURE, self.signature)
                          + identity.certificate_der + identity.eum_certificate_der)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "operation": self.operation, "address": self.address,
                "iccid": self.iccid, "signature": self.signature.hex().upper(),
                "installation_result": (None if self.installation_result is None
                                        else self.installation_result.hex().upper())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NotificationRecord:
        seq, operation, address = data.get("seq"), data.get("operation"), data.get("address")
        iccid, signature = data.get("iccid"), data.get("signature", "")
        result = data.get("installation_result")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError("notification seq must be an integer")
        if not isinstance(operation, str) or not isinstance(address, str):
            raise TypeError("notification operation and address must be strings")
        if not (iccid is None or isinstance(iccid, str)) or not isinstance(signature, str) or not (
                result is None or isinstance(result, str)):
            raise TypeError("notification iccid, signature and result must be strings")
        return cls(seq=seq, operation=operation, address=address,
                   iccid=None if iccid is None else validate_iccid(iccid),
                   signature=bytes.fromhex(signature),
                   installation_result=None if result is None else bytes.fromhex(result))


def _object_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


_STATE_FIELDS: tuple[tuple[str, Any, Callable[[Any], bool], str], ...] = (
    ("profiles", [], _object_list, "profiles must be a list of objects"),
    ("notifications", [], _object_list, "notifications must be a list of objects"),
    ("default_dp_address", None, lambda v: v is None or _text(v), "addresses must be strings"),
    ("root_ds_address", DEFAULT_ROOT_DS, _text, "addresses must be strings"),
    ("eid", None, _text, "eid is missing or not a string"),
    ("isdr_aid", simfiles.ISDR_AID.hex(), _text, "isdr_aid must be a hex string"),
    ("next_seq", 1, _positive, "next_seq must be a positive integer"),
)
"""The plain fields of a state file in the order they are checked: key, default when
missing, the check and what is wrong when it fails."""


@dataclass
class CardState:
    """Everything a card keeps across power cycles.

    ``next_seq`` is the sequence number the next notification gets; it only grows, so a
    number is never used twice on one card.
    """

    eid: str
    identity: EuiccIdentity
    profiles: list[ProfileRecord] = field(default_factory=list)
    default_dp_address: str | None = None
    root_ds_address: str = DEFAULT_ROOT_DS
    isdr_aid: bytes = simfiles.ISDR_AID
    notifications: list[NotificationRecord] = field(default_factory=list)
    next_seq: int = 1
    iot: IotState = field(default_factory=IotState)
    """SGP.32: the associated eIMs and undelivered eUICC package results."""

    def __post_init__(self) -> None:
        self.eid = validate_eid(self.eid)
        self.isdr_aid = _check_aid(bytes(self.isdr_aid), "isdr_aid")
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` unless the parts are consistent with each other."""
        if sum(p.enabled for p in self.profiles) > 1:
            raise ValueError("more than one profile is enabled")
        for key in ("iccid", "isdp_aid"):
            seen = [getattr(p, key) for p in self.profiles]
            if len(set(seen)) != len(seen):
                raise ValueError(f"two profiles share the same {key}")
        seqs = [n.seq for n in self.notifications]
        if len(set(seqs)) != len(seqs):
            raise ValueError("two notifications share a sequence number")
        if seqs and max(seqs) >= self.next_seq:
            raise ValueError("next_seq must be above every notification's sequence number")
        self.identity.check(self.eid)

    def copy(self) -> CardState:
        """A copy whose lists can be changed without touching this state (the identity,
        which never changes in place, is shared)."""
        return replace(self, profiles=[replace(p) for p in self.profiles],
                       notifications=list(self.notifications))

    @classmethod
    def new(cls, *, eid: str | None = None, profiles: Iterable[ProfileRecord] | None = None,
            identity: EuiccIdentity | None = None,
            isdr_aid: bytes = simfiles.ISDR_AID) -> CardState:
        """A fresh card: the given (or a random valid) EID and the given profiles, or one
        enabled profile with random valid identities when ``profiles`` is None. Without an
        ``identity`` the card gets one under the built-in test issuer."""
        chosen = [ProfileRecord.generate()] if profiles is None else [
            replace(p) for p in profiles]
        eid = validate_eid(eid or (identity.eid if identity else None) or random_eid())
        return cls(eid=eid, identity=identity or generate(eid), profiles=chosen,
                   isdr_aid=isdr_aid)

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

    def reserve_seq(self) -> int:
        """A fresh notification sequence number (for a notification made elsewhere, such as
        the installation result a download signs)."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def add_notification(self, operation: str, profile: ProfileRecord
                         ) -> NotificationRecord | None:
        """Record the notification ``operation`` on ``profile`` produces, if its notification
        configuration asks for one; signs it with SK.EUICC. Returns the record."""
        address = profile.notification_address(operation)
        if address is None:
            return None
        record = NotificationRecord(self.reserve_seq(), operation, address, profile.iccid)
        return self._keep(replace(record,
                                  signature=self.identity.sign(record.metadata.encode())))

    def add_installation_result(self, metadata: sgp22.NotificationMetadata, result: bytes
                                ) -> NotificationRecord:
        """Keep a signed ProfileInstallationResult (``BF37``) as the pending install
        notification ``metadata`` describes (its number from :meth:`reserve_seq`)."""
        if metadata.seq >= self.next_seq:
            raise ValueError("the notification's number was not reserved")
        return self._keep(NotificationRecord(metadata.seq, "install", metadata.address,
                                             metadata.iccid, installation_result=result))

    def _keep(self, record: NotificationRecord) -> NotificationRecord:
        self.notifications.append(record)
        if len(self.notifications) > MAX_NOTIFICATIONS:
            dropped = self.notifications.pop(0)
            log.warning("notification list full: dropped %s notification %d",
                        dropped.operation, dropped.seq)
        return record

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "eid": self.eid,
            "isdr_aid": self.isdr_aid.hex().upper(),
            "default_dp_address": self.default_dp_address,
            "root_ds_address": self.root_ds_address,
            "next_seq": self.next_seq,
            "identity": self.identity.to_dict(),
            "profiles": [p.to_dict() for p in self.profiles],
            "notifications": [n.to_dict() for n in self.notifications],
            "iot": self.iot.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object, base: Path | None = None) -> CardState:
        """Inverse of :meth:`to_dict`; :class:`StateError` names what is wrong. Relative
        identity paths are taken from ``base``."""
        try:
            if not isinstance(data, dict):
                raise TypeError("the state is not a JSON object")
            if data.get("format") not in _READABLE_FORMATS:
                raise ValueError(f"unsupported state format {data.get('format')!r}, "
                                 f"expected {STATE_FORMAT}")
            values = {}
            for key, default, check, problem in _STATE_FIELDS:
                values[key] = data.get(key, default)
                if not check(values[key]):
                    raise TypeError(problem)
            eid = validate_eid(values["eid"])
            raw_identity = data.get("identity")
            # Format 1 files predate identities: such a card gets one generated.
            identity = (generate(eid) if raw_identity is None and data["format"] == 1
                        else EuiccIdentity.from_dict(raw_identity, base))
            return cls(eid=eid, identity=identity,
                       profiles=[ProfileRecord.from_dict(p) for p in values["profiles"]],
                       default_dp_address=values["default_dp_address"],
                       root_ds_address=values["root_ds_address"],
                       isdr_aid=bytes.fromhex(values["isdr_aid"]),
                       notifications=[NotificationRecord.from_dict(n)
                                      for n in values["notifications"]],
                       next_seq=values["next_seq"], iot=IotState.from_dict(data.get("iot")))
        except KeyError as exc:
            raise StateError(f"missing field {exc.args[0]!r}") from exc
        except (IdentifierError, IdentityError, ValueError, TypeError) as exc:
            raise StateError(str(exc)) from exc

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2).encode() + b"\n")

    @classmethod
    def load(cls, path: Path) -> CardState:
        """Read a state file; :class:`StateError` for unreadable, corrupt or invalid content
        (``FileNotFoundError`` passes through for a missing file). A file in an older format
        is rewritten in the current one, so what was added (the identity) stays fixed."""
        path = Path(path)
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateError(f"not a valid card state file (corrupt JSON: {exc})",
                             path=str(path)) from exc
        try:
            state = cls.from_dict(data, path.parent)
        except StateError as exc:
            raise StateError(f"invalid card state: {exc}", path=str(path)) from exc
        if data.get("format") != STATE_FORMAT:
            try:
                state.save(path)
            except OSError as exc:
                log.warning("cannot upgrade %s to state format %d: %s", path, STATE_FORMAT, exc)
        return state

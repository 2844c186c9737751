"""What an emulated modem remembers across restarts: its identity and network behaviour."""

from __future__ import annotations

import ipaddress
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lpa_emulator.modem.errors import StateFileError
from mps_common.durable import atomic_write
from mps_wire.identifiers import IdentifierError, make_imei, validate_imei

STATE_VERSION = 1

DEFAULT_MANUFACTURER = "Quectel"
DEFAULT_MODEL = "EC25"
DEFAULT_REVISION = "EC25EFAR06A06M4G"


@dataclass(frozen=True, slots=True)
class ModemState:
    """Persisted identity of one emulated modem.

    ``registration_delay`` is how long after boot the modem keeps searching (CEREG stat 2)
    before it reports itself registered (stat 1) and its PDP context gets the addresses.
    """

    imei: str
    manufacturer: str = DEFAULT_MANUFACTURER
    model: str = DEFAULT_MODEL
    revision: str = DEFAULT_REVISION
    ip_addresses: tuple[str, ...] = field(default_factory=tuple)
    registration_delay: float = 0.5

    def __post_init__(self) -> None:
        try:
            validate_imei(self.imei)
        except IdentifierError as exc:
            raise StateFileError(str(exc)) from exc
        for name in ("manufacturer", "model", "revision"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or not value.isprintable():
                raise StateFileError(f"{name} must be a non-empty printable string")
        if not isinstance(self.ip_addresses, tuple) or len(self.ip_addresses) > 2:
            raise StateFileError("ip_addresses holds at most two addresses (IPv4, IPv6)")
        for addr in self.ip_addresses:
            try:
                ipaddress.ip_address(addr)
            except ValueError as exc:
                raise StateFileError(f"bad IP address {addr!r}") from exc
        delay = self.registration_delay
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise StateFileError(f"registration_delay must be 0..3600 s, got {delay!r}")

    @classmethod
    def create(cls, rng: random.Random | None = None, *,
               identity: tuple[str, str, str] | None = None) -> ModemState:
        """A fresh modem with a random Luhn-valid IMEI and a random private IPv4 address;
        ``identity`` is its manufacturer, model and revision (default: a Quectel EC25)."""
        rng = rng or random.Random()
        manufacturer, model, revision = identity or (DEFAULT_MANUFACTURER, DEFAULT_MODEL,
                                                     DEFAULT_REVISION)
        # TACs beginning 35 are allocated by BABT; the rest is random but stable per file.
        tac = "35" + "".join(rng.choice("0123456789") for _ in range(6))
        serial = "".join(rng.choice("0123456789") for _ in range(6))
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        return cls(imei=make_imei(tac, serial), manufacturer=manufacturer, model=model,
                   revision=revision, ip_addresses=(ip,), registration_delay=0.5)

    # --- files -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> ModemState:
        """Read a state file written by :meth:`save`."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateFileError(f"cannot read modem state: {exc}", path=str(path)) from exc
        try:
            return cls.from_dict(raw)
        except StateFileError as exc:
            raise StateFileError(str(exc), path=str(path)) from exc

    @classmethod
    def load_or_create(cls, path: Path, *, rng: random.Random | None = None,
                       identity: tuple[str, str, str] | None = None) -> ModemState:
        """Load ``path``, or create a random modem (see :meth:`create`) and save it there
        if the file is missing."""
        if path.exists():
            return cls.load(path)
        state = cls.create(rng, identity=identity)
        state.save(path)
        return state

    def save(self, path: Path) -> None:
        """Write the state atomically: a crash leaves either the old or the new file."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2).encode() + b"\n")

    # --- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": STATE_VERSION}
        out.update(asdict(self))
        out["ip_addresses"] = list(self.ip_addresses)
        return out

    @classmethod
    def from_dict(cls, raw: object) -> ModemState:
        if not isinstance(raw, dict):
            raise StateFileError("modem state must be a JSON object")
        version = raw.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise StateFileError(f"unsupported modem state version {version!r}")
        imei = raw.get("imei")
        if not isinstance(imei, str):
            raise StateFileError("modem state has no imei")
        ips = raw.get("ip_addresses", [])
        if not isinstance(ips, list) or not all(isinstance(a, str) for a in ips):
            raise StateFileError("ip_addresses must be a list of strings")
        kwargs: dict[str, Any] = {"imei": imei, "ip_addresses": tuple(ips)}
        for name in ("manufacturer", "model", "revision", "registration_delay"):
            if name in raw:
                kwargs[name] = raw[name]
        return cls(**kwargs)

"""Declarative hardware profiles (TOML) and their loader.

A profile says how a board reaches its modem and its card, which capabilities it
declares, where its broker is and how it activates. Errors name the file, the key and
the problem, so a typo on a board is found at once.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mps_esim.lpa.activation import (
    ActivationCode,
    ActivationCodeError,
    parse_activation_code,
)
from mps_mqtt.client import BrokerURL

PROFILE_DIR = Path(__file__).resolve().parent

_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
_NAME = re.compile(r"[a-z0-9][a-z0-9._\-]{0,63}")
DIALECTS = ("quectel", "sim7600", "sim7080", "ublox", "generic")
"""The modem dialects the agent speaks (``agent.modem.DIALECTS`` has their definitions)."""
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_PREFIX = "mps/v1"
DEFAULT_REGISTER_TIMEOUT = 10.0


class ProfileError(ValueError):
    """A firmware profile is missing, unreadable or invalid."""

    def __init__(self, path: Path | str, key: str | None, problem: str) -> None:
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + problem)
        self.path = str(path)
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ModemConfig:
    """Where the modem's AT port is and which dialect it speaks."""

    port: str
    dialect: str = "quectel"
    command_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class CardConfig:
    """How the eUICC is reached: a card link URL (pcsc://, at://, emu://)."""

    url: str
    isdr_aid: bytes | None = None


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """The operator's MQTT broker."""

    url: str = DEFAULT_BROKER
    prefix: str = DEFAULT_PREFIX
    register_timeout: float = DEFAULT_REGISTER_TIMEOUT


@dataclass(frozen=True, slots=True)
class ActivationConfig:
    """How the device gets its operational profile when none is enabled: from the SM-DP+
    an activation ``code`` names (SGP.22 4.1, parsed by the LPA's own parser), or from
    the eUICC's default SM-DP+ address."""

    code: ActivationCode | None = None
    use_default_smdp: bool = False
    confirmation_code: str | None = None
    ca: Path | None = None  # the CA that verifies the SM-DP+'s TLS (default: system store)


@dataclass(frozen=True, slots=True)
class FirmwareProfile:
    """One board's hardware profile."""

    name: str
    path: Path
    modem: ModemConfig
    card: CardConfig
    broker: BrokerConfig
    capabilities: tuple[str, ...] = ()
    description: str = ""
    network_timeout: float = 60.0
    state_dir: str = "/var/lib/mps-agent"
    activation: ActivationConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Reader:
    """Pulls typed values out of one TOML table, naming the key on every error."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str, typ: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(name)
        if name not in self.table:
            if default is ...:
                raise ProfileError(self.path, self.key(name), "is required")
            return default
        value = self.table[name]
        types = typ if isinstance(typ, tuple) else (typ,)
        if isinstance(value, bool) and bool not in types:
            raise ProfileError(self.path, self.key(name), "must not be a boolean")
        if not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise ProfileError(self.path, self.key(name),
                               f"must be {names}, got {type(value).__name__}")
        return value

    def table_of(self, name: str, *, required: bool = True) -> _Reader:
        value = self.get(name, dict, ... if required else {})
        return _Reader(self.path, value, f"{self.prefix}{name}.")

    def positive(self, name: str, default: float) -> float:
        value = float(self.get(name, (int, float), default))
        if value <= 0:
            raise ProfileError(self.path, self.key(name), "must be greater than 0")
        return value

    def no_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ProfileError(self.path, self.key(unknown[0]), "is not a known setting")


def load_profile(path: str | Path) -> FirmwareProfile:
    """Read and validate a firmware profile file."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(p, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(p, None, f"cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(p, None, f"not valid TOML: {exc}") from exc
    return parse_profile(raw, p)


def parse_profile(raw: dict[str, Any], path: Path) -> FirmwareProfile:
    """Validate an already-parsed profile table."""
    top = _Reader(path, raw)
    name = top.get("name", str)
    if not _NAME.fullmatch(name):
        raise ProfileError(path, "name", f"must match {_NAME.pattern}")

    m = top.table_of("modem")
    dialect = m.get("dialect", str, "quectel")
    if dialect not in DIALECTS:
        raise ProfileError(path, m.key("dialect"), f"must be one of {', '.join(DIALECTS)}")
    port = m.get("port", str)
    if not (port.startswith("/") or re.match(r"(serial|socket)://.", port)):
        raise ProfileError(path, m.key("port"), "must be a device path (/dev/ttyUSB2) or a "
                           "serial:// or socket:// URL")
    modem = ModemConfig(port=port, dialect=dialect,
                        command_timeout=m.positive("command_timeout", 5.0))
    m.no_unknown()

    c = top.table_of("card")
    url = c.get("url", str)
    if not re.match(r"(pcsc|at|emu)://", url):
        raise ProfileError(path, c.key("url"), "must start with pcsc://, at:// or emu://")
    aid_hex = c.get("isdr_aid", str, None)
    aid: bytes | None = None
    if aid_hex is not None:
        try:
            aid = bytes.fromhex(aid_hex)
        except ValueError:
            raise ProfileError(path, c.key("isdr_aid"), "must be hexadecimal") from None
        if not 5 <= len(aid) <= 16:
            raise ProfileError(path, c.key("isdr_aid"), "an AID is 5 to 16 bytes")
    card = CardConfig(url=url, isdr_aid=aid)
    c.no_unknown()

    b = top.table_of("broker", required=False)
    broker = BrokerConfig(
        url=b.get("url", str, DEFAULT_BROKER),
        prefix=b.get("prefix", str, DEFAULT_PREFIX),
        register_timeout=b.positive("register_timeout", DEFAULT_REGISTER_TIMEOUT),
    )
    try:
        BrokerURL.parse(broker.url)
    except ValueError as exc:
        raise ProfileError(path, b.key("url"), str(exc)) from None
    b.no_unknown()

    d = top.table_of("device", required=False)
    caps = d.get("capabilities", list, [])
    for i, cap in enumerate(caps):
        if not isinstance(cap, str) or not _CAPABILITY.fullmatch(cap):
            raise ProfileError(path, f"{d.key('capabilities')}[{i}]",
                               f"must match {_CAPABILITY.pattern}")
    network_timeout = d.positive("network_timeout", 60.0)
    state_dir = d.get("state_dir", str, "/var/lib/mps-agent")
    d.no_unknown()

    activation = _activation(top, path) if "activation" in raw else None
    description = top.get("description", str, "")
    top.no_unknown()
    return FirmwareProfile(
        name=name, path=path, modem=modem, card=card, broker=broker,
        capabilities=tuple(caps), description=description,
        network_timeout=network_timeout, state_dir=state_dir, activation=activation,
    )


def _activation(top: _Reader, path: Path) -> ActivationConfig:
    a = top.table_of("activation")
    text = a.get("code", str, None)
    use_default = a.get("use_default_smdp", bool, False)
    confirmation = a.get("confirmation_code", str, None)
    ca_text = a.get("ca", str, None)
    a.no_unknown()
    ca: Path | None = None
    if ca_text is not None:
        if not ca_text.strip():
            raise ProfileError(path, a.key("ca"), "must name a CA certificate file")
        # Relative to the profile, so a profile and its operator's CA travel together.
        ca = (path.parent / ca_text).resolve() if not Path(ca_text).is_absolute() \
            else Path(ca_text)
    code: ActivationCode | None = None
    if text is not None:
        try:
            code = parse_activation_code(text)
        except ActivationCodeError as exc:
            raise ProfileError(path, a.key("code"), str(exc)) from None
        if use_default:
            raise ProfileError(path, a.key("use_default_smdp"),
                               "give either code or use_default_smdp = true, not both")
    elif not use_default:
        raise ProfileError(path, a.key("code"),
                           "is required unless use_default_smdp = true")
    if confirmation is not None and not (confirmation and confirmation.isprintable()
                                         and len(confirmation) <= 64):
        raise ProfileError(path, a.key("confirmation_code"),
                           "must be 1 to 64 printable characters")
    if code is not None and code.cc_required and confirmation is None:
        raise ProfileError(path, a.key("confirmation_code"),
                           "is required: the activation code asks for one (its flag is 1)")
    return ActivationConfig(code=code, use_default_smdp=use_default,
                            confirmation_code=confirmation, ca=ca)


def bundled_profiles() -> list[Path]:
    """The profiles shipped with the package."""
    return sorted(PROFILE_DIR.glob("*.toml"))


def find_profile(name_or_path: str | Path) -> Path:
    """A profile file: ``name_or_path`` itself when it is a path (has a ``/`` or ends in
    ``.toml``), else the bundled profile of that name."""
    text = str(name_or_path)
    if "/" in text or text.endswith(".toml"):
        return Path(text)
    bundled = PROFILE_DIR / f"{text}.toml"
    if not bundled.exists():
        names = ", ".join(p.stem for p in bundled_profiles())
        raise ProfileError(text, None, f"no such file, nor a bundled profile ({names})")
    return bundled

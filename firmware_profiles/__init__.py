"""Declarative hardware profiles (TOML) and their loader.

A profile says how a board reaches its modem and its card, which capabilities it
declares, where its broker is and how it activates. Errors name the file, the key and
the problem, so a typo on a board is found at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mps_common.errors import ConfigError, Problem
from mps_common.schema import Key, Table, collect, matches, one_of, positive, read_toml
from mps_esim.lpa.activation import ActivationCode, check_address, parse_activation_code
from mps_mqtt.url import BrokerURL

PROFILE_DIR = Path(__file__).resolve().parent

_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
_NAME = re.compile(r"[a-z0-9][a-z0-9._\-]{0,63}")
DIALECTS = ("quectel", "sim7600", "sim7080", "ublox", "generic")
"""The modem dialects the agent speaks (``agent.modem.DIALECTS`` has their definitions)."""
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_PREFIX = "mps/v1"
DEFAULT_REGISTER_TIMEOUT = 10.0


class ProfileError(ConfigError):
    """A firmware profile is missing, unreadable or invalid.

    ``problems`` lists everything wrong with the file, each naming its key path;
    ``key`` and ``problem`` are the first of them (``key`` is ``None`` for a file that
    cannot be read at all).
    """

    def __init__(self, path: Path | str, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(f"{path}: {p}" for p in problems), problems=problems,
                         source=str(path))
        self.path = str(path)
        self.key = problems[0].where or None
        self.problem = problems[0].what


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
    eim: str | None = None
    """The eIM (SGP.32) to ask for work when the eUICC names none, ``HOST[:PORT]``."""


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


def _port(port: str) -> str:
    if not (port.startswith("/") or re.match(r"(serial|socket)://.", port)):
        raise ValueError("must be a device path (/dev/ttyUSB2) or a serial:// or socket:// URL")
    return port


def _card_url(url: str) -> str:
    if not re.match(r"(pcsc|at|emu)://", url):
        raise ValueError("must start with pcsc://, at:// or emu://")
    return url


def _aid(text: str) -> bytes:
    try:
        aid = bytes.fromhex(text)
    except ValueError:
        raise ValueError("must be hexadecimal") from None
    if not 5 <= len(aid) <= 16:
        raise ValueError("an AID is 5 to 16 bytes")
    return aid


def _broker_url(url: str) -> str:
    BrokerURL.parse(url)
    return url


def _confirmation(code: str) -> str:
    if not (code and code.isprintable() and len(code) <= 64):
        raise ValueError("must be 1 to 64 printable characters")
    return code


def _ca(text: str) -> str:
    if not text.strip():
        raise ValueError("must name a CA certificate file")
    return text


PROFILE = Table(
    Key("name", str, check=matches(_NAME.pattern)),
    Key("description", str, ""),
    Table.key("modem", Table(
        Key("port", str, check=_port),
        Key("dialect", str, "quectel", check=one_of(*DIALECTS)),
        Key("command_timeout", float, 5.0, check=positive),
    )),
    Table.key("card", Table(
        Key("url", str, check=_card_url),
        Key("isdr_aid", str, None, check=_aid),
    )),
    Table.key("broker", Table(
        Key("url", str, DEFAULT_BROKER, check=_broker_url),
        Key("prefix", str, DEFAULT_PREFIX),
        Key("register_timeout", float, DEFAULT_REGISTER_TIMEOUT, check=positive),
    )),
    Table.key("device", Table(
        Key("capabilities", list, [], items=str, item_check=matches(_CAPABILITY.pattern)),
        Key("network_timeout", float, 60.0, check=positive),
        Key("state_dir", str, "/var/lib/mps-agent"),
    )),
    Table.key("activation", Table(
        Key("code", str, None, check=parse_activation_code),
        Key("use_default_smdp", bool, False),
        Key("confirmation_code", str, None, check=_confirmation),
        Key("ca", str, None, check=_ca),
        Key("eim", str, None, check=check_address),
    ), required=False),
)
"""A firmware profile's keys, their defaults and checks."""


def load_profile(path: str | Path) -> FirmwareProfile:
    """Read and validate a firmware profile file."""
    p = Path(path)
    try:
        raw = read_toml(p)
    except ConfigError as exc:
        raise ProfileError(p, [Problem("", str(exc).removeprefix(f"{p}: "))]) from exc
    return parse_profile(raw, p)


def parse_profile(raw: dict[str, Any], path: Path) -> FirmwareProfile:
    """Validate an already-parsed profile table, reporting every problem at once."""
    # [broker] and [device] may be left out; their keys then take their defaults.
    values, problems = collect({"broker": {}, "device": {}, **raw}, PROFILE)
    activation = values["activation"]
    if activation is not None and not any(p.where.startswith("activation.")
                                          for p in problems):
        problems += _activation_problems(activation)
    if problems:
        raise ProfileError(path, problems)
    modem, card, broker, device = (values[k] for k in ("modem", "card", "broker", "device"))
    return FirmwareProfile(
        name=values["name"], path=path,
        modem=ModemConfig(**modem), card=CardConfig(**card), broker=BrokerConfig(**broker),
        capabilities=tuple(device["capabilities"]), description=values["description"],
        network_timeout=device["network_timeout"], state_dir=device["state_dir"],
        activation=None if activation is None else _activation(activation, path),
    )


def _activation_problems(a: dict[str, Any]) -> list[Problem]:
    """What is wrong with ``[activation]`` as a whole, its keys being fine one by one."""
    code: ActivationCode | None = a["code"]
    if code is not None and a["use_default_smdp"]:
        return [Problem("activation.use_default_smdp",
                        "give either code or use_default_smdp = true, not both")]
    if code is None and not a["use_default_smdp"] and a["eim"] is None:
        return [Problem("activation.code",
                        "is required unless use_default_smdp = true or an eim is named")]
    if code is not None and code.cc_required and a["confirmation_code"] is None:
        return [Problem("activation.confirmation_code",
                        "is required: the activation code asks for one (its flag is 1)")]
    return []


def _activation(a: dict[str, Any], path: Path) -> ActivationConfig:
    ca: Path | None = None
    if a["ca"] is not None:
        # Relative to the profile, so a profile and its operator's CA travel together.
        ca = Path(a["ca"]) if Path(a["ca"]).is_absolute() else (path.parent / a["ca"]).resolve()
    return ActivationConfig(code=a["code"], use_default_smdp=a["use_default_smdp"],
                            confirmation_code=a["confirmation_code"], ca=ca, eim=a["eim"])


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
        raise ProfileError(text, [Problem("", f"no such file, nor a bundled profile ({names})")])
    return bundled

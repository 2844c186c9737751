"""Mosquitto's configuration for a registry deployment: listeners, TLS with the operator's
CA, and the dynamic security plugin's file, from the broker identities the operator issued.

The ACL gives each identity its own topics and nothing else:

==========  ========================================  ===================================
role        may publish                               may subscribe / receive
==========  ========================================  ===================================
device      devices/{eid}/register, .../state         devices/{eid}/# (its replies)
app         apps/{app}/requests                       apps/{app}/# (replies, events)
user        users/{contract}/requests                 users/{contract}/# (prompts, replies)
operator    operator/{source}/requests (the SM-DP+    operator/{source}/#
            source also operator/installations,
            the eim source operator/profiles)
bridge      the reply, event and prompt topics        the request and registration topics,
                                                      also as ``$share/<group>/...``
==========  ========================================  ===================================

The rules reach Mosquitto through its dynamic security plugin (``dynamic-security.json``,
read at start: restart the broker, sessions persist, to apply a change). It refuses a
PUBLISH (MQTT v5: PUBACK 0x87) and a SUBSCRIBE (SUBACK 0x87) outside the ACL, and it
checks a shared subscription with its ``$share/<group>/`` prefix, so only a bridge
identity can join the registry's group.

Mosquitto 2.0's plain ``acl_file`` is no longer offered: it does not check SUBSCRIBE at
all, so any identity could join ``$share/<group>/...`` and become a member of the
registry's group; Mosquitto hands it its share of the requests, its read ACL fails, and
those requests vanish. Nothing in the file format can close that.

Every identity's client id is its username (``use_username_as_clientid``): a client
naming another identity's client id (``bridge-one``, ``mps-dev-<EID>``) is connected under
its own, so it can neither take over another's connection nor wipe its persistent
session. An identity therefore has one connection at a time: give each registry process
(and each tool that must stay connected beside another) an identity of its own.

Limits apply to every client, one identity per client: ``max_packet_size`` (a request is
at most 16 KiB, a reply page well under the limit), ``max_queued_messages`` and
``max_queued_bytes`` per session, ``max_inflight_messages``. Mosquitto 2.0 has no
per-identity connection rate; ``max_connections`` bounds the connections of a listener.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_bridge.broker_account import Handover, hand_over
from broker_bridge.credentials import INSTALLATION_PUBLISHER, OperatorCA
from broker_bridge.errors import BridgeError
from broker_bridge.model import BrokerIdentity, Role
from broker_bridge.registry import PROFILES_SOURCE
from mps_common.durable import atomic_write
from mps_wire.messages import INSTALLATIONS, PROFILES
from mps_wire.topics import DEFAULT_PREFIX, Topics

CONF_FILE = "mosquitto.conf"
# Files of the withdrawn ``file`` mode: removed when the configuration is written again.
PASSWORD_FILE = "passwd"  # noqa: S105 - a file name
ACL_FILE = "acl"
DYNSEC_FILE = "dynamic-security.json"
ACL_MODES = ("dynsec",)
#: Why a mode once offered is refused now.
WITHDRAWN_MODES = {
    "file": "Mosquitto's acl_file does not check subscriptions, so any identity could "
            "join the registry's shared subscription group and make its requests "
            "vanish; use the dynamic security plugin (--acl dynsec)",
}
DYNSEC_PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


class MosquittoConfigError(BridgeError, ValueError):
    """The broker configuration asked for cannot be written."""


@dataclass(frozen=True, slots=True)
class MosquittoConfig:
    """What the broker should look like.

    ``port`` is a plain-TCP listener (password login; keep it on loopback for a
    co-located bridge), ``tls_port`` a TLS listener with the operator's CA; either may be
    None, not both. With ``client_certificates`` the TLS listener requires a client
    certificate from the CA and takes its common name as the username (no password).
    ``server_names`` go into the broker's certificate (IP addresses or host names).
    ``user`` is the account Mosquitto runs as once started by root (its default:
    ``mosquitto``, which must be able to read the files written here). ``acl`` picks
    how the rules reach Mosquitto (see the module documentation); ``dynsec_plugin`` is
    the plugin's path (default: the first of :data:`DYNSEC_PLUGIN_PATHS` present).
    """

    prefix: str = DEFAULT_PREFIX
    bind: str = "127.0.0.1"
    port: int | None = 1883
    tls_port: int | None = None
    client_certificates: bool = False
    server_names: tuple[str, ...] = ("127.0.0.1", "localhost")
    persistence: bool = True
    max_queued_messages: int = 100_000
    max_queued_bytes: int = 64 * 1024 * 1024
    max_packet_size: int = 256 * 1024
    max_inflight_messages: int = 20
    max_connections: int = -1
    user: str | None = None
    acl: str = "dynsec"
    dynsec_plugin: str | None = None
    extra: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        Topics(self.prefix)
        self._check_listeners()
        if self.acl in WITHDRAWN_MODES:
            raise MosquittoConfigError(f"acl {self.acl!r} is not offered: "
                                       f"{WITHDRAWN_MODES[self.acl]}")
        if self.acl not in ACL_MODES:
            raise MosquittoConfigError(f"acl must be one of {', '.join(ACL_MODES)}, "
                                       f"not {self.acl!r}")
        self._check_limits()
        for name, value in (("bind address", self.bind), ("user", self.user or "-")):
            if not value or any(c in value for c in " \n\t#"):
                raise MosquittoConfigError(f"{name} {value!r} does not fit in the "
                                           "configuration")

    def _check_limits(self) -> None:
        # Mosquitto's own floor for max_packet_size is 20 bytes; a request needs 16 KiB.
        if self.max_packet_size < 20 * 1024:
            raise MosquittoConfigError(f"max_packet_size {self.max_packet_size} is below "
                                       "20 KiB, the largest request plus headers")
        for name in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages"):
            if getattr(self, name) < 1:
                raise MosquittoConfigError(f"{name} must be at least 1")

    def _check_listeners(self) -> None:
        if self.port is None and self.tls_port is None:
            raise MosquittoConfigError("the broker needs a plain or a TLS listener")
        for port in (self.port, self.tls_port):
            if port is not None and not 0 < port < 65536:
                raise MosquittoConfigError(f"port {port} is out of range")
        if self.port is not None and self.port == self.tls_port:
            raise MosquittoConfigError("the plain and the TLS listener need different ports")
        if self.client_certificates and self.tls_port is None:
            raise MosquittoConfigError("client certificates need the TLS listener")


@dataclass(frozen=True, slots=True)
class MosquittoFiles:
    """Where :func:`write_broker_config` put things."""

    conf: Path
    dynsec: Path
    ca_file: Path | None = None
    server_cert: Path | None = None
    server_key: Path | None = None
    users: int = 0
    handover: Handover = field(default_factory=lambda: Handover(None))


def acl_rules(identity: BrokerIdentity, topics: Topics) -> list[tuple[str, str]]:
    """The (access, topic filter) pairs of one identity; see the module's table."""
    s = identity.subject
    p = topics.prefix
    if identity.role is Role.DEVICE:
        return [("write", topics.device_register(s)), ("write", topics.device_state(s)),
                ("read", topics.device_namespace(s) + "#")]
    if identity.role is Role.APP:
        return [("write", topics.app_requests(s)), ("read", topics.app_namespace(s) + "#")]
    if identity.role is Role.USER:
        return [("write", topics.user_requests(s)), ("read", topics.user_namespace(s) + "#")]
    if identity.role is Role.OPERATOR:
        rules = [("write", topics.operator_requests(s)),
                 ("read", topics.operator_namespace(s) + "#")]
        if s == INSTALLATION_PUBLISHER:
            rules.append(("write", topics.operator(INSTALLATIONS)))
        if s == PROFILES_SOURCE:
            rules.append(("write", topics.operator(PROFILES)))
        return rules
    # The bridge: every request and registration in, every reply, event and prompt out
    # (a Response Topic may be anywhere in the requester's namespace).
    return [("read", topics.all_registrations()), ("read", topics.all_app_requests()),
            ("read", topics.all_user_requests()), ("read", topics.all_operator_requests()),
            ("read", topics.operator(INSTALLATIONS)), ("read", topics.operator(PROFILES)),
            ("write", f"{p}/devices/+/#"), ("write", f"{p}/apps/+/#"),
            ("write", f"{p}/users/+/#"), ("write", f"{p}/operator/+/#")]


def render_dynsec(identities: Iterable[BrokerIdentity], topics: Topics) -> str:
    """The dynamic security plugin's JSON: a client and a role per active identity."""
    clients: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    for identity in sorted(identities, key=lambda i: i.username):
        if not identity.active:
            continue
        client: dict[str, Any] = {"username": identity.username,
                                  "roles": [{"rolename": identity.username}]}
        if identity.password_hash:
            # The same PBKDF2-SHA512 as the password file's $7$ form, split into fields.
            _, _, iterations, salt, digest = identity.password_hash.split("$")
            client.update(password=digest, salt=salt, iterations=int(iterations))
        clients.append(client)
        acls: list[dict[str, Any]] = []
        for access, topic in acl_rules(identity, topics):
            kinds = (("publishClientSend",) if access == "write"
                     else ("subscribePattern", "publishClientReceive"))
            acls += [{"acltype": kind, "topic": topic, "priority": 0, "allow": True}
                     for kind in kinds]
            if access == "read" and identity.role is Role.BRIDGE:
                # The plugin checks a shared subscription with its $share/<group>/ prefix.
                acls.append({"acltype": "subscribePattern", "topic": f"$share/+/{topic}",
                             "priority": 0, "allow": True})
        roles.append({"rolename": identity.username, "acls": acls})
    document = {
        # Anything not granted is refused, including the plugin's own $CONTROL topics.
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                             "subscribe": False, "unsubscribe": True},
        "clients": clients, "groups": [], "roles": roles,
    }
    return json.dumps(document, indent=1) + "\n"


def find_dynsec_plugin() -> str | None:
    """The first dynamic security plugin of :data:`DYNSEC_PLUGIN_PATHS` that exists."""
    return next((p for p in DYNSEC_PLUGIN_PATHS if Path(p).is_file()), None)


def render_conf(config: MosquittoConfig, out_dir: Path, *, ca_file: Path | None,
                server_cert: Path | None, server_key: Path | None) -> str:
    root = out_dir.resolve()
    lines = [
        "# Written by mps-bridge broker-config; changes are overwritten.",
        "per_listener_settings false",
        "allow_anonymous false",
    ]
    plugin = config.dynsec_plugin or find_dynsec_plugin()
    if plugin is None:
        raise MosquittoConfigError("Mosquitto's dynamic security plugin was not found; "
                                   "name it with --dynsec-plugin (Debian: package "
                                   "mosquitto)")
    lines += [
        f"plugin {plugin}", f"plugin_opt_config_file {root / DYNSEC_FILE}",
        "set_tcp_nodelay true",
        f"max_packet_size {config.max_packet_size}",
        f"max_queued_messages {config.max_queued_messages}",
        f"max_queued_bytes {config.max_queued_bytes}",
        f"max_inflight_messages {config.max_inflight_messages}",
    ]
    if config.user is not None:
        lines.append(f"user {config.user}")
    if config.persistence:
        # Sessions and queued QoS 1 messages survive a restart of the broker.
        lines += ["persistence true", f"persistence_location {root / 'data'}/",
                  "autosave_interval 1"]
    # Listener options: before the first listener Mosquitto would open its default one.
    # use_username_as_clientid: nobody connects under another identity's client id.
    per_listener = ["use_username_as_clientid true",
                    f"max_connections {config.max_connections}"]
    if config.port is not None:
        lines += ["", f"listener {config.port} {config.bind}", *per_listener]
    if config.tls_port is not None:
        lines += ["", f"listener {config.tls_port} {config.bind}", *per_listener,
                  f"cafile {ca_file}",
                  f"certfile {server_cert}", f"keyfile {server_key}", "tls_version tlsv1.2"]
        if config.client_certificates:
            lines += ["require_certificate true", "use_identity_as_username true"]
    lines += list(config.extra)
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write(path, text.encode("utf-8"), mode=mode)


def write_broker_config(out_dir: str | os.PathLike[str], config: MosquittoConfig,
                        identities: Sequence[BrokerIdentity], *,
                        ca: OperatorCA | None = None) -> MosquittoFiles:
    """Write ``mosquitto.conf`` and ``dynamic-security.json`` (and for TLS the CA and the
    broker's certificate) to ``out_dir``; remove a ``passwd`` and ``acl`` an earlier
    version wrote there. A TLS listener needs ``ca``."""
    root = Path(out_dir)
    if config.tls_port is not None and ca is None:
        raise MosquittoConfigError("a TLS listener needs the operator CA (--ca DIR)")
    topics = Topics(config.prefix)
    ca_file = server_cert = server_key = None
    if config.tls_port is not None and ca is not None:
        ca_file = root / "ca.pem"
        _atomic_write(ca_file, ca.cert_file.read_text(encoding="ascii"))
        server_cert, server_key = ca.issue_server(root, names=config.server_names)
    active = [i for i in identities if i.active]
    # The broker runs as its own user on many systems: it must read these files.
    for stale in (PASSWORD_FILE, ACL_FILE):
        (root / stale).unlink(missing_ok=True)
    _atomic_write(root / DYNSEC_FILE, render_dynsec(active, topics), 0o640)
    _atomic_write(root / CONF_FILE, render_conf(config, root, ca_file=ca_file,
                                                server_cert=server_cert,
                                                server_key=server_key))
    if config.persistence:
        (root / "data").mkdir(parents=True, exist_ok=True)
    secret = [root / DYNSEC_FILE, *([root / "data"] if config.persistence else []),
              *(p for p in (server_cert, server_key) if p is not None)]
    return MosquittoFiles(conf=root / CONF_FILE, dynsec=root / DYNSEC_FILE, ca_file=ca_file,
                       server_cert=server_cert, server_key=server_key, users=len(active),
                       handover=hand_over(root, secret, config.user))

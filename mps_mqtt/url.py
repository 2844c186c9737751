"""Broker URLs, parsed without loading the MQTT client (paho): a firmware profile or a
configuration file names a broker long before anything connects to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """Where a broker is: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...``.

    ``mqtts`` takes ``?ca=FILE`` (the operator's CA) and optionally ``cert=FILE&key=FILE``.
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} names no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r} has a bad port") from exc
        query = parse_qs(parts.query)
        unknown = set(query) - {"ca", "cert", "key"}
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ValueError(f"broker URL {url!r} has unknown options: {names}")

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ca_file=one("ca"),
            cert_file=one("cert"),
            key_file=one("key"),
        )

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

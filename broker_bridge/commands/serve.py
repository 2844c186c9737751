"""``mps-bridge serve``: the registry service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any

from broker_bridge.commands.common import PROG, open_store
from broker_bridge.limits import APP_BURST, APP_RATE
from broker_bridge.registry import DEFAULT_CONSENT_TTL, SignaturePolicy
from broker_bridge.registry.reads import DEFAULT_LIMIT as READ_LIMIT
from broker_bridge.service import AUDIT_LINGER, Bridge
from mps_common.cli import EXIT_OK, trace_crashes
from mps_common.config import Settings, non_negative_int, positive_float
from mps_mqtt.options import broker_url, credentials_option
from mps_wire.topics import DEFAULT_PREFIX, DEFAULT_SHARE_GROUP, Topics


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``serve``."""
    serve = commands.add_parser("serve", parents=[common], help="serve registrations and "
                                "app requests until SIGTERM/SIGINT")
    serve.add_argument("--db", help="the registry's database, made by 'mps-bridge db init' "
                                    "($MPS_DB)")
    serve.add_argument("--broker", help="broker URL, mqtt://host:port ($MPS_BROKER)")
    serve.add_argument("--prefix", help=f"topic prefix (default {DEFAULT_PREFIX})")
    serve.add_argument("--group", help=f"shared-subscription group (default "
                                       f"{DEFAULT_SHARE_GROUP})")
    serve.add_argument("--client-id", help="fixed MQTT client id: keeps a persistent session "
                                           "so requests queue while the bridge is down")
    serve.add_argument("--consent-ttl", help="seconds a consent prompt stays open "
                                             f"(default {DEFAULT_CONSENT_TTL:g})")
    serve.add_argument("--audit-linger", help="seconds the audit entries of queries "
                       "answered from memory gather before they are written (and their "
                       f"requests acknowledged; default {AUDIT_LINGER:g})")
    serve.add_argument("--app-rate", help="requests per second each app may send on "
                       "average; beyond, it is answered 'busy' at once (default "
                       f"{APP_RATE:g}) ($MPS_APP_RATE)")
    serve.add_argument("--app-burst", help="requests an app may send at once above its "
                       f"rate (default {APP_BURST:g}, at least 1) ($MPS_APP_BURST)")
    serve.add_argument("--read-model-size", help="devices answers (one per app and "
                       "contract) kept in memory; the oldest go first beyond (default "
                       f"{READ_LIMIT:,}; 0 answers every query from the store) "
                       "($MPS_READ_MODEL_SIZE)")
    credentials_option(serve)
    serve.add_argument("--signatures", choices=[p.value for p in SignaturePolicy],
                       help="which registrations must be signed by the device's enrolled "
                            "key: 'required' (all; devices without a key cannot register) "
                            "or 'enrolled' (devices with a key; default, for deployments "
                            "whose devices hold no keys yet) ($MPS_SIGNATURES)")


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; print one line once subscribed, one when stopped."""
    trace_crashes()
    db = settings.require("db")
    broker = broker_url(settings)
    topics = Topics(settings.text("prefix") or DEFAULT_PREFIX)
    group = settings.text("group") or DEFAULT_SHARE_GROUP
    client_id = settings.text("client_id")
    consent_ttl = settings.get("consent_ttl", DEFAULT_CONSENT_TTL, positive_float)
    signatures = settings.get("signatures", SignaturePolicy.ENROLLED, SignaturePolicy)
    audit_linger = settings.get("audit_linger", AUDIT_LINGER, positive_float)
    app_rate = settings.get("app_rate", APP_RATE, positive_float)
    app_burst = settings.get("app_burst", APP_BURST, _burst)
    read_model_size = settings.get("read_model_size", READ_LIMIT, non_negative_int)
    # Never a new database: a missing or empty one is a mistake to report, not to serve.
    store = open_store(db, create=False)
    try:
        bridge = Bridge(store, broker, topics=topics, group=group, client_id=client_id,
                        consent_ttl=consent_ttl, signatures=signatures,
                        audit_linger=audit_linger, app_rate=app_rate, app_burst=app_burst,
                        read_model_size=read_model_size)

        def ready() -> None:
            # One line on stdout, for scripts waiting until the bridge is subscribed, and
            # one once its read model is filled (at once, but for a large registry).
            print(f"{PROG}: serving {broker} prefix={topics.prefix} group={group} db={db} "
                  f"signatures={signatures.value} pid={os.getpid()}", flush=True)
            threading.Thread(target=_tell_filled, args=(bridge,), daemon=True).start()

        bridge.serve_forever(ready=ready)
    finally:
        store.close()
    stats = bridge.stats
    print(f"{PROG}: stopped after {stats.received} messages ({stats.handled} handled, "
          f"{stats.failed} failed)", flush=True)
    return EXIT_OK


def _tell_filled(bridge: Bridge) -> None:
    warming = bridge.warming
    warming.wait()
    print(f"{PROG}: read model filled: {warming.kept:,} answers in {warming.seconds:.1f} s",
          flush=True)


def _burst(text: Any) -> float:
    """A burst: a number of requests, at least 1."""
    value = positive_float(text)
    if value < 1:
        raise ValueError(f"expected at least 1, got {text!r}")
    return value

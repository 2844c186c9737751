"""Command-line options every MQTT client of the project takes: the broker and its login."""

from __future__ import annotations

import argparse

from mps_common.config import Settings
from mps_common.errors import ConfigError
from mps_mqtt.bundle import BundleError, CredentialBundle
from mps_mqtt.client import BrokerURL
from mps_wire.topics import DEFAULT_PREFIX


def credentials_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--credentials DIR``: the identity's credential bundle from the operator."""
    parser.add_argument("--credentials", metavar="DIR",
                        help="credential bundle from the operator (mps-bridge operator "
                             "issue): broker login, CA, client certificate "
                             "($MPS_CREDENTIALS)")


def broker_url(settings: Settings) -> BrokerURL:
    """The ``broker`` option, with the ``credentials`` bundle applied when one is named."""
    broker = BrokerURL.parse(settings.require("broker"))
    credentials = settings.text("credentials")
    if not credentials:
        return broker
    try:
        return CredentialBundle.load(credentials).broker_url(broker)
    except BundleError as exc:
        raise ConfigError(f"--credentials: {exc}") from exc


def client_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of every client of the registry: ``--broker``, ``--credentials``,
    ``--prefix`` and ``--timeout``."""
    parser.add_argument("--broker", help="broker URL, mqtt://host:port ($MPS_BROKER)")
    credentials_option(parser)
    parser.add_argument("--prefix", help=f"topic prefix (default {DEFAULT_PREFIX})")
    parser.add_argument("--timeout", help="seconds to wait for the registry (default 10)")

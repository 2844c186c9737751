"""The schema: each migration in its own module, applied once, in order.

Lists (addresses, capabilities, purposes) are JSON text: portable, and never queried
by element. Times are milliseconds since the Unix epoch.
"""

from broker_bridge.storage.migrations import (
    v1_registry,
    v2_pairings,
    v3_installations,
    v4_device_keys,
    v5_consent_index,
    v6_read_versions,
    v7_pairing_decoys,
    v10_portability,
)
from broker_bridge.storage.migrations.base import Migration

__all__ = ["LATEST_VERSION", "MIGRATIONS", "MIGRATIONS_TABLE", "Migration"]

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  BIGINT NOT NULL
)"""


MIGRATIONS: tuple[Migration, ...] = (
    v1_registry.MIGRATION,
    v2_pairings.MIGRATION,
    v3_installations.MIGRATION,
    v4_device_keys.MIGRATION,
    v5_consent_index.MIGRATION,
    v6_read_versions.MIGRATION,
    v7_pairing_decoys.MIGRATION,
    v10_portability.MIGRATION,
)

LATEST_VERSION = MIGRATIONS[-1].version

"""Schema version 3: profile installations.

The SM-DP+'s installation results: which eUICC holds which profile.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(3, "profile installations", (
    """CREATE TABLE installations (
        iccid       TEXT PRIMARY KEY,
        eid         TEXT NOT NULL,
        txn         TEXT NOT NULL,
        smdp        TEXT NOT NULL,
        ts          BIGINT NOT NULL,
        recorded_at BIGINT NOT NULL
    )""",
    "CREATE INDEX installations_by_eid ON installations (eid)",
))

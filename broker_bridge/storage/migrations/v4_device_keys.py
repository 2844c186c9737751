"""Schema version 4: device keys, replay state, broker identities.

Signed registrations: the devices' public keys, the newest registration accepted
from each EID (outliving the device record, so a replay after a removal is still
one), and the broker credentials the operator issued.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(4, "device keys, replay state, broker identities", (
    """CREATE TABLE device_keys (
        eid         TEXT PRIMARY KEY,
        public_key  TEXT NOT NULL,
        kid         TEXT NOT NULL,
        enrolled_at BIGINT NOT NULL,
        enrolled_by TEXT NOT NULL
    )""",
    """CREATE TABLE device_sequences (
        eid         TEXT PRIMARY KEY,
        last_seq    BIGINT NOT NULL,
        digest      TEXT NOT NULL,
        updated_at  BIGINT NOT NULL
    )""",
    # Devices registered before this version: their newest sequence number is known.
    "INSERT INTO device_sequences (eid, last_seq, digest, updated_at) "
    "SELECT eid, last_seq, '', updated_at FROM devices",
    """CREATE TABLE broker_identities (
        username      TEXT PRIMARY KEY,
        role          TEXT NOT NULL,
        subject       TEXT NOT NULL,
        password_hash TEXT,
        certificate   TEXT,
        issued_at     BIGINT NOT NULL,
        revoked_at    BIGINT
    )""",
    "CREATE INDEX broker_identities_by_subject ON broker_identities (role, subject)",
))

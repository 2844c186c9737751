"""Schema version 1: registry: contracts, numbers, subscriptions, devices, apps."""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(1, "registry: contracts, numbers, subscriptions, devices, apps", (
    """CREATE TABLE contracts (
        id          TEXT PRIMARY KEY,
        holder      TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    )""",
    """CREATE TABLE numbers (
        msisdn      TEXT PRIMARY KEY,
        contract_id TEXT NOT NULL REFERENCES contracts (id),
        updated_at  BIGINT NOT NULL
    )""",
    "CREATE INDEX numbers_by_contract ON numbers (contract_id)",
    """CREATE TABLE subscriptions (
        iccid       TEXT PRIMARY KEY,
        imsi        TEXT,
        msisdn      TEXT,
        contract_id TEXT NOT NULL REFERENCES contracts (id),
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    )""",
    "CREATE INDEX subscriptions_by_contract ON subscriptions (contract_id)",
    """CREATE TABLE devices (
        eid           TEXT PRIMARY KEY,
        contract_id   TEXT NOT NULL REFERENCES contracts (id),
        iccid         TEXT NOT NULL REFERENCES subscriptions (iccid),
        imei          TEXT NOT NULL,
        imsi          TEXT,
        ip            TEXT NOT NULL,
        capabilities  TEXT NOT NULL,
        manufacturer  TEXT NOT NULL,
        model         TEXT NOT NULL,
        revision      TEXT NOT NULL,
        profile       TEXT NOT NULL,
        last_seq      BIGINT NOT NULL,
        device_ts     BIGINT NOT NULL,
        registered_at BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL
    )""",
    "CREATE INDEX devices_by_contract ON devices (contract_id)",
    "CREATE INDEX devices_by_iccid ON devices (iccid)",
    """CREATE TABLE apps (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        trust       TEXT NOT NULL,
        purposes    TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    )""",
))

"""Schema version 2: trust levels, other operators, pairings, events, audit log.

Trust levels trusted/partner/public become partner with standing consent (both were
answered without asking the user) and unverified (see model.LEGACY_TRUST); pairings,
consent, event streams and the audit log arrive. Sequence numbers come from counter
rows updated inside the writing transaction, which is portable and keeps them
gap-free in commit order.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(2, "trust levels, other operators, pairings, events, audit log", (
    "ALTER TABLE apps ADD COLUMN standing_consent INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE apps ADD COLUMN removed_at BIGINT",
    "UPDATE apps SET standing_consent = 1 WHERE trust IN ('trusted', 'partner')",
    "UPDATE apps SET trust = 'partner' WHERE trust = 'trusted'",
    "UPDATE apps SET trust = 'unverified' WHERE trust = 'public'",
    "ALTER TABLE contracts ADD COLUMN consent_rev BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE contracts ADD COLUMN consent_published_rev BIGINT NOT NULL DEFAULT 0",
    """CREATE TABLE operators (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        registry    TEXT NOT NULL,
        prefix      TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    )""",
    """CREATE TABLE operator_prefixes (
        prefix      TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators (id)
    )""",
    "CREATE INDEX operator_prefixes_by_operator ON operator_prefixes (operator_id)",
    """CREATE TABLE ported_numbers (
        msisdn      TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators (id),
        updated_at  BIGINT NOT NULL
    )""",
    """CREATE TABLE pairings (
        id          TEXT PRIMARY KEY,
        app_id      TEXT NOT NULL REFERENCES apps (id),
        contract_id TEXT NOT NULL REFERENCES contracts (id),
        msisdn      TEXT NOT NULL,
        purpose     TEXT NOT NULL,
        state       TEXT NOT NULL,
        consent     TEXT,
        prompt_id   TEXT UNIQUE,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT,
        decided_at  BIGINT,
        decided_by  TEXT,
        ended_at    BIGINT,
        ended_by    TEXT,
        end_reason  TEXT
    )""",
    # At most one live pairing per app and contract, whichever process writes it.
    "CREATE UNIQUE INDEX pairings_live ON pairings (app_id, contract_id) "
    "WHERE state IN ('pending', 'active')",
    "CREATE INDEX pairings_by_contract ON pairings (contract_id, state)",
    "CREATE INDEX pairings_by_expiry ON pairings (state, expires_at)",
    """CREATE TABLE app_streams (
        app_id      TEXT PRIMARY KEY REFERENCES apps (id),
        last_seq    BIGINT NOT NULL
    )""",
    """CREATE TABLE app_events (
        app_id       TEXT NOT NULL REFERENCES apps (id),
        seq          BIGINT NOT NULL,
        kind         TEXT NOT NULL,
        contract_id  TEXT,
        pairing_id   TEXT,
        payload      TEXT NOT NULL,
        created_at   BIGINT NOT NULL,
        published_at BIGINT,
        PRIMARY KEY (app_id, seq)
    )""",
    "CREATE INDEX app_events_unpublished ON app_events (created_at) "
    "WHERE published_at IS NULL",
    """CREATE TABLE counters (
        name        TEXT PRIMARY KEY,
        value       BIGINT NOT NULL
    )""",
    "INSERT INTO counters (name, value) VALUES ('audit', 0)",
    """CREATE TABLE audit_log (
        id          BIGINT PRIMARY KEY,
        at          BIGINT NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        contract_id TEXT,
        app_id      TEXT,
        subject     TEXT,
        detail      TEXT NOT NULL
    )""",
    "CREATE INDEX audit_by_contract ON audit_log (contract_id, id)",
    "CREATE INDEX audit_by_app ON audit_log (app_id, id)",
    """CREATE TABLE registry_secrets (
        name        TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        created_at  BIGINT NOT NULL
    )""",
))

"""Schema version 9: the consent page's sign-in codes, throttles and sessions.

Codes and session tokens are stored as keyed hashes, never in clear. ``web_throttle``
counts requests per key (a number, a client address) for the page's rate limits, so
that several page processes sharing the store share the limits.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(9, "consent page sign-in", (
    """CREATE TABLE signin_codes (
        id          TEXT PRIMARY KEY,
        msisdn      TEXT NOT NULL,
        client      TEXT NOT NULL,
        contract_id TEXT,
        code_hash   TEXT,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        used_at     BIGINT,
        attempts    INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX signin_codes_msisdn ON signin_codes (msisdn, created_at)",
    """CREATE TABLE web_throttle (
        key         TEXT NOT NULL,
        at          BIGINT NOT NULL
    )""",
    "CREATE INDEX web_throttle_key ON web_throttle (key, at)",
    """CREATE TABLE web_sessions (
        token_hash  TEXT PRIMARY KEY,
        contract_id TEXT NOT NULL,
        msisdn      TEXT NOT NULL,
        csrf        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        ended_at    BIGINT
    )""",
))

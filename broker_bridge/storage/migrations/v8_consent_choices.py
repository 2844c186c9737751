"""Schema version 8: the user's choices, presence, binding history and eSIM requests.

``pairing_views`` holds what the user chose an active pairing to see (devices by EID,
NULL for every device including future ones; the fields); a pairing without a row sees
everything its app's trust level allows. ``device_presence`` is each device's last
reported online/offline state, ``device_bindings`` every change of the IMEI, ICCID or EID
seen for a device, and ``esim_requests`` the profile operations waiting for, or carried
out after, the user's word, with ``esim_counters`` numbering each device's signed orders.

The first three change what apps are answered: like the tables of schema version 6, each
raises its contract's version in the changing transaction (triggers each backend adds for
this version, see :data:`VERSIONED_TABLES`), so the read model never keeps a stale answer.
"""

from broker_bridge.storage.migrations.base import Migration

#: Tables of this version whose rows belong to one contract and change its answers.
VERSIONED_TABLES = ("pairing_views", "device_presence", "device_bindings")

MIGRATION = Migration(8, "consent choices, presence, binding history, eSIM requests", (
    """CREATE TABLE pairing_views (
        pairing_id  TEXT PRIMARY KEY REFERENCES pairings (id),
        contract_id TEXT NOT NULL REFERENCES contracts (id),
        devices     TEXT,
        fields      TEXT NOT NULL,
        updated_at  BIGINT NOT NULL,
        updated_by  TEXT NOT NULL
    )""",
    "CREATE INDEX pairing_views_by_contract ON pairing_views (contract_id)",
    """CREATE TABLE device_presence (
        eid         TEXT PRIMARY KEY,
        contract_id TEXT NOT NULL,
        online      INTEGER NOT NULL,
        since       BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    )""",
    """CREATE TABLE device_bindings (
        eid            TEXT NOT NULL,
        seq            BIGINT NOT NULL,
        contract_id    TEXT NOT NULL,
        at             BIGINT NOT NULL,
        source         TEXT NOT NULL,
        imei           TEXT,
        iccid          TEXT,
        previous_imei  TEXT,
        previous_iccid TEXT,
        PRIMARY KEY (eid, seq)
    )""",
    """CREATE TABLE esim_requests (
        id            TEXT PRIMARY KEY,
        eid           TEXT NOT NULL,
        contract_id   TEXT NOT NULL REFERENCES contracts (id),
        action        TEXT NOT NULL,
        iccid         TEXT NOT NULL,
        state         TEXT NOT NULL,
        requested_by  TEXT NOT NULL,
        requested_at  BIGINT NOT NULL,
        expires_at    BIGINT NOT NULL,
        decided_at    BIGINT,
        decided_by    TEXT,
        counter       BIGINT,
        order_expires BIGINT,
        sent_at       BIGINT,
        finished_at   BIGINT,
        result        TEXT,
        cleared_at    BIGINT
    )""",
    "CREATE INDEX esim_requests_by_contract ON esim_requests (contract_id, state)",
    "CREATE INDEX esim_requests_by_state ON esim_requests (state, expires_at)",
    """CREATE TABLE esim_counters (
        eid         TEXT PRIMARY KEY,
        value       BIGINT NOT NULL
    )""",
))

_BUMP = "UPDATE contracts SET version = version + 1 WHERE id"

#: SQLite's triggers for :data:`VERSIONED_TABLES` (as schema version 6 made them).
SQLITE_TRIGGERS = tuple(
    statement for table in VERSIONED_TABLES for statement in (
        f"CREATE TRIGGER {table}_version_insert AFTER INSERT ON {table} "
        f"BEGIN {_BUMP} = NEW.contract_id; END",
        f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} "
        f"BEGIN {_BUMP} IN (OLD.contract_id, NEW.contract_id); END",
        f"CREATE TRIGGER {table}_version_delete AFTER DELETE ON {table} "
        f"BEGIN {_BUMP} = OLD.contract_id; END"))

#: PostgreSQL's triggers for :data:`VERSIONED_TABLES`, on schema version 6's function.
POSTGRES_TRIGGERS = tuple(
    f"CREATE TRIGGER {table}_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION contract_version_bump()" for table in VERSIONED_TABLES)

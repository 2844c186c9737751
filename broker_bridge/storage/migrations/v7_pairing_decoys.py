"""Schema version 7: pairing decoys.

Before the user consents, an app learns nothing about a number: a pairing request for a
number this registry does not serve is answered as one for a customer (``pending``), and
the request expires as an unanswered prompt does. Its decoy is kept here, so that a repeat
gets the same pairing and expiry, and any bridge's housekeeping expires it with the same
event. No contract, no prompt to a user.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(7, "pairing decoys", (
    """CREATE TABLE pairing_decoys (
        id          TEXT PRIMARY KEY,
        app_id      TEXT NOT NULL REFERENCES apps (id),
        msisdn      TEXT NOT NULL,
        purpose     TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        closed_at   BIGINT
    )""",
    "CREATE INDEX pairing_decoys_live ON pairing_decoys (app_id, msisdn, closed_at)",
    "CREATE INDEX pairing_decoys_due ON pairing_decoys (closed_at, expires_at)",
))

"""Schema version 6: versions for the read model.

Every contract gets a ``version`` and the apps one counter (``counters`` row ``apps``);
triggers, which each backend adds for this version, raise them in the transaction of
every change to a contract's devices, subscriptions or pairings and to any app. A bridge
keeps its answers in memory under the versions it read them at and reads the current
ones, with the number's contract, in one statement per query: whatever process or
command made a change, the next query sees it (see :mod:`broker_bridge.registry.reads`).
"""

from broker_bridge.storage.migrations.base import Migration

#: Tables whose rows belong to one contract (``contract_id``) and change its answers.
CONTRACT_TABLES = ("devices", "subscriptions", "pairings")

MIGRATION = Migration(6, "versions for the read model", (
    "ALTER TABLE contracts ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
    "INSERT INTO counters (name, value) VALUES ('apps', 0)",
))

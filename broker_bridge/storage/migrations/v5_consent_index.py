"""Schema version 5: index of contracts with unpublished consent.

The housekeeping looks for consent prompts not yet published every second: only
the few such contracts are indexed, not every contract scanned.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(5, "index of contracts with unpublished consent", (
    "CREATE INDEX contracts_consent_unpublished ON contracts (id) "
    "WHERE consent_rev > consent_published_rev",
))

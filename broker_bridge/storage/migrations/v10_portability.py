"""Schema version 10: the number portability list, and the pseudonymous user ids.

The operator's list of which operator serves which number, and from when until when
(``mps-bridge portability import``). ``operator_id`` NULL means this registry's operator
(a number ported in), with the contract to file it under when the list names one. The
primary key makes the lookup of a number one index probe however long the list is; the
start index lets housekeeping find the periods that began since its last round.

``user_refs`` keeps the pseudonymous id each app was given for a contract when its pairing
was granted, so that a request naming the user by it is one index probe too.
"""

from broker_bridge.storage.migrations.base import Migration

MIGRATION = Migration(10, "portability and user references", (
    """CREATE TABLE portability (
        msisdn      TEXT NOT NULL,
        valid_from  BIGINT NOT NULL,
        valid_until BIGINT,
        operator_id TEXT,
        contract_id TEXT,
        imported_at BIGINT NOT NULL,
        PRIMARY KEY (msisdn, valid_from)
    )""",
    # Housekeeping looks for the periods that began since its last round.
    "CREATE INDEX portability_by_start ON portability (valid_from)",
    """CREATE TABLE user_refs (
        app_id      TEXT NOT NULL,
        ref         TEXT NOT NULL,
        contract_id TEXT NOT NULL,
        issued_at   BIGINT NOT NULL,
        PRIMARY KEY (app_id, ref)
    )""",
))

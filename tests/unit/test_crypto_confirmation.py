"""The confirmation-code hashes (SGP.22 3.1.3, hashCc)."""

from __future__ import annotations

import hashlib

from mps_esim.crypto.confirmation import confirmation_code_digest, confirmation_code_hash


def test_hash_cc_is_sha256_of_the_code_digest_and_the_transaction_id() -> None:
    # SGP.22 3.1.3: Hashed Confirmation Code = SHA256(SHA256(Confirmation Code) | TransactionID)
    txid = bytes.fromhex("0123456789ABCDEF")
    inner = hashlib.sha256(b"1357").digest()
    assert confirmation_code_hash("1357", txid) == hashlib.sha256(inner + txid).digest()
    assert confirmation_code_hash(b"1357", txid) == confirmation_code_hash("1357", txid)
    assert confirmation_code_hash("1357", txid) != confirmation_code_hash("1358", txid)
    assert confirmation_code_digest("1357") == inner

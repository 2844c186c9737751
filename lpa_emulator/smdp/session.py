"""One ES9+ download session of the SM-DP+, from initiateAuthentication to its end."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cryptography import x509

from lpa_emulator.smdp.credentials import ServerKeys


@dataclass
class Session:
    """What the SM-DP+ keeps of one download while it runs; ``lock`` orders its calls."""

    txid: bytes
    created: float
    euicc_challenge: bytes
    server_challenge: bytes
    keys: ServerKeys
    ci_pkid: bytes
    """euiccCiPKIdToBeUsed: the CI the eUICC's certificate chain must be issued under."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    step: str = "initiated"
    eid: str | None = None
    euicc_cert: x509.Certificate | None = None
    euicc_cert_der: bytes = b""
    eum_cert_der: bytes = b""
    matching_id: str | None = None
    smdp_signature2: bytes = b""
    euicc_otpk: bytes | None = None
    bpp: bytes | None = None

    @property
    def txid_hex(self) -> str:
        return self.txid.hex().upper()

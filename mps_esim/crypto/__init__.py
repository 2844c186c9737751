"""The cryptography of GSMA remote SIM provisioning.

* :mod:`~mps_esim.crypto.kdf`: the X9.63 KDF that turns the ECDH secret into the
  session keys of a bound profile package;
* :mod:`~mps_esim.crypto.scp03t`: SCP03t segment protection (AES-CBC with
  counter-derived IVs, C-MAC chaining);
* :mod:`~mps_esim.crypto.signatures`: ECDSA in the raw ``r || s`` form of SGP.22;
* :mod:`~mps_esim.crypto.certs`: the RSP certificate chains and roles;
* :mod:`~mps_esim.crypto.ecka`: one-time key agreement keys;
* :mod:`~mps_esim.crypto.confirmation`: the confirmation-code hashes (SHA-256 only).

The eUICC's half of a download is the card's (:mod:`lpa_emulator.euicc.download`), the
SM-DP+'s in :mod:`lpa_emulator.smdp`.
"""

from mps_esim.crypto.errors import (
    CertificateError,
    CertificateProblem,
    CryptoError,
    Scp03tError,
    SignatureError,
)

__all__ = ["CertificateError", "CertificateProblem", "CryptoError", "Scp03tError",
           "SignatureError"]

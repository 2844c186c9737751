"""The cryptography of GSMA remote SIM provisioning.

* :mod:`~lpa_emulator.crypto.kdf`: the X9.63 KDF that turns the ECDH secret into the
  session keys of a bound profile package;
* :mod:`~lpa_emulator.crypto.scp03t`: SCP03t segment protection (AES-CBC with
  counter-derived IVs, C-MAC chaining);
* :mod:`~lpa_emulator.crypto.signatures`: ECDSA in the raw ``r || s`` form of SGP.22;
* :mod:`~lpa_emulator.crypto.certs`: the RSP certificate chains and roles;
* :mod:`~lpa_emulator.crypto.ecka`: one-time key agreement keys, the confirmation-code hash.

The eUICC's half of a download is the card's (:mod:`lpa_emulator.euicc.download`), the
SM-DP+'s in :mod:`lpa_emulator.smdp`.
"""

from lpa_emulator.crypto.errors import (
    CertificateError,
    CertificateProblem,
    CryptoError,
    Scp03tError,
    SignatureError,
)

__all__ = ["CertificateError", "CertificateProblem", "CryptoError", "Scp03tError",
           "SignatureError"]

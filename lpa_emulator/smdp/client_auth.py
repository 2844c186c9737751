"""The server side of the eUICC's authentication (SGP.22 3.1.2 step 11 onwards, 5.6.2):
what an SM-DP+ (ES9+) and an SM-DS (ES11) check of an AuthenticateServerResponse before
they trust the EID in it."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from cryptography import x509

from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.fields import certificate_status, decoded, ec_key
from mps_esim.crypto import certs, signatures
from mps_esim.crypto.errors import CertificateError, CryptoError
from mps_esim.sgp22 import rsp


def verify_euicc(response: rsp.AuthenticateResponseOk, *, txid: bytes,
                 server_challenge: bytes, address: str, cis: Sequence[x509.Certificate],
                 ci_pkid: bytes | None = None
                 ) -> tuple[rsp.EuiccSigned1, x509.Certificate, str]:
    """euiccSigned1, CERT.EUICC and the EID of a response whose chain (under ``ci_pkid``
    when given), signature, transaction, challenge and server address check out;
    :class:`Es9StatusError` with the SGP.22 status otherwise."""
    signed = decoded(rsp.EuiccSigned1.decode, response.euicc_signed1, "euiccSigned1")
    if signed.transaction_id != txid:
        raise Es9StatusError(st.UNKNOWN_TRANSACTION, "euiccSigned1 names another transaction")
    try:
        euicc = certs.load_der(response.euicc_certificate, "euicc")
        eum = certs.load_der(response.eum_certificate, "eum")
        if ci_pkid is not None and certs.authority_key_id(eum) != ci_pkid:
            raise Es9StatusError(st.UNKNOWN_CI, "CERT.EUM is not issued by euiccCiPKIdToBeUsed")
        eid = certs.verify_euicc_chain(euicc, eum, cis, at=certs.now())
        signatures.verify(ec_key(euicc), response.euicc_signed1, response.euicc_signature1)
    except CertificateError as exc:
        raise Es9StatusError(certificate_status(exc), str(exc)) from exc
    except CryptoError as exc:
        raise Es9StatusError(st.EUICC_SIGNATURE, f"euiccSignature1: {exc}") from exc
    if not hmac.compare_digest(signed.server_challenge, server_challenge):
        raise Es9StatusError(st.EUICC_SIGNATURE,
                             "euiccSigned1 carries another server challenge")
    if signed.server_address.lower() != address.lower():
        raise Es9StatusError(st.EUICC_SIGNATURE, "euiccSigned1 names another server address")
    return signed, euicc, eid

"""The profile download's data structures, on the shared SGP.22 codec.

:mod:`~lpa_emulator.asn1.rsp` adds the download's types (AuthenticateServer,
PrepareDownload, the bound profile package, installation results, CancelSession) to the
ES10 types of :mod:`lpa_emulator.sgp22`, which it reuses; :mod:`~lpa_emulator.asn1.saip`
builds and reads the TCA profile package. Everything is encoded and decoded by the one
strict DER-TLV codec :mod:`lpa_emulator.tlv`, for the eUICC, the LPA and the SM-DP+ alike.
Decoders keep the exact bytes of signed parts, so signatures are checked over what was
received, never over a re-encoding.
"""

from lpa_emulator.asn1.der import Asn1Error

__all__ = ["Asn1Error"]

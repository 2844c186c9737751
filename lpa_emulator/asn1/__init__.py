"""The SGP.22 and TCA profile-package data structures used by the eUICC, LPA and SM-DP+.

One codec for all three roles: the structures are written out here, type by type, on top of
the strict DER-TLV codec :mod:`lpa_emulator.tlv`. Every decoder keeps the exact bytes of
the signed parts, so a signature is always checked over what was received, never over a
re-encoding.
"""

from lpa_emulator.asn1.der import Asn1Error

__all__ = ["Asn1Error"]

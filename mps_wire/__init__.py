"""The wire contract shared by device agent, registry and app SDK.

Topics, message types, identifier checks and the CBOR codec with its limits live here so
that every party agrees on them; this package imports none of the others.
"""

from mps_wire.errors import DecodeError, ErrorCode, ValidationError, WireError
from mps_wire.identifiers import (
    IdentifierError,
    validate_eid,
    validate_iccid,
    validate_imei,
    validate_imsi,
    validate_msisdn,
)

__all__ = [
    "DecodeError",
    "ErrorCode",
    "IdentifierError",
    "ValidationError",
    "WireError",
    "validate_eid",
    "validate_iccid",
    "validate_imei",
    "validate_imsi",
    "validate_msisdn",
]

"""The Local Profile Assistant: ES10 towards the eUICC over any APDU channel
(:mod:`~mps_esim.lpa.es10`), activation codes (:mod:`~mps_esim.lpa.activation`),
ES9+ towards the SM-DP+ over HTTPS (:mod:`~mps_esim.lpa.es9`), ES11 towards an SM-DS
(:mod:`~mps_esim.lpa.es11`), and the profile download and notification delivery between
them (:mod:`~mps_esim.lpa.download`).

The ES10 names below load :mod:`~mps_esim.lpa.es10` (and the SGP.22 codec) when first
used, so a program that only reads activation codes does not pay for them at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mps_esim.lpa.es10 import (
        ConfiguredAddresses,
        Es10Client,
        Es10Error,
        Es10ResultError,
        PendingNotification,
    )

__all__ = ["ConfiguredAddresses", "Es10Client", "Es10Error", "Es10ResultError",
           "PendingNotification"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mps_esim.lpa import es10

        return getattr(es10, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

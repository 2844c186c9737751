"""The Local Profile Assistant: ES10 towards the eUICC over any APDU channel
(:mod:`~mps_esim.lpa.es10`), activation codes (:mod:`~mps_esim.lpa.activation`),
ES9+ towards the SM-DP+ over HTTPS (:mod:`~mps_esim.lpa.es9`), and the profile
download and notification delivery between the two (:mod:`~mps_esim.lpa.download`)."""

from mps_esim.lpa.es10 import (
    ConfiguredAddresses,
    Es10Client,
    Es10Error,
    Es10ResultError,
    PendingNotification,
)

__all__ = ["ConfiguredAddresses", "Es10Client", "Es10Error", "Es10ResultError",
           "PendingNotification"]

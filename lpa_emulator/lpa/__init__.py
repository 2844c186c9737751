"""The Local Profile Assistant: ES10 towards the eUICC over any APDU channel
(:mod:`~lpa_emulator.lpa.es10`), activation codes (:mod:`~lpa_emulator.lpa.activation`),
ES9+ towards the SM-DP+ over HTTPS (:mod:`~lpa_emulator.lpa.es9`), and the profile
download and notification delivery between the two (:mod:`~lpa_emulator.lpa.download`)."""

from lpa_emulator.lpa.es10 import (
    ConfiguredAddresses,
    Es10Client,
    Es10Error,
    Es10ResultError,
    PendingNotification,
)

__all__ = ["ConfiguredAddresses", "Es10Client", "Es10Error", "Es10ResultError",
           "PendingNotification"]

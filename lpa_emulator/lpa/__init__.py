"""The Local Profile Assistant: ES10 towards the eUICC over any APDU channel."""

from lpa_emulator.lpa.es10 import (
    ConfiguredAddresses,
    Es10Client,
    Es10Error,
    Es10ResultError,
    PendingNotification,
)

__all__ = ["ConfiguredAddresses", "Es10Client", "Es10Error", "Es10ResultError",
           "PendingNotification"]

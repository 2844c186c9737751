"""The Local Profile Assistant: ES10 towards the eUICC over any APDU channel."""

from lpa_emulator.lpa.es10 import Es10Client, Es10Error

__all__ = ["Es10Client", "Es10Error"]

"""The root of every error the emulators raise."""

from __future__ import annotations


class EmulatorError(Exception):
    """Root of the errors of :mod:`lpa_emulator`: the eUICC, the modem, the SM-DP+, the
    test PKI and vpcd. Subclasses also inherit the matching built-in; a bad option or
    setting is :class:`mps_common.errors.ConfigError` instead."""

"""The root of every error the device's protocol stack raises."""

from __future__ import annotations


class EsimError(Exception):
    """Root of the errors of :mod:`mps_esim`: the TLV/DER codecs, ISO 7816, the RSP
    cryptography, activation codes, the LPA's ES10 and ES9+ clients and the download.

    Each subclass also inherits the built-in it stands for (a malformed value is a
    ``ValueError``, an unreachable SM-DP+ a ``ConnectionError``), so callers may catch
    either.
    """

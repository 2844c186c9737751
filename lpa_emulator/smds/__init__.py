"""The emulated SM-DS: ES12 event registration from SM-DP+s, ES11 event retrieval by LPAs
(SGP.22 3.6), served over HTTPS by the SM-DP+'s web server."""

from __future__ import annotations

from lpa_emulator.smds.service import (
    ES11_FUNCTIONS,
    ES12_FUNCTIONS,
    Event,
    Smds,
    SmdsCredentials,
)

ES11_PATH = "/gsma/rsp2/es11/"
ES12_PATH = "/gsma/rsp2/es12/"
ROUTES = {ES11_PATH: ES11_FUNCTIONS, ES12_PATH: ES12_FUNCTIONS}
"""The base paths an SM-DS serves, with their functions (for ``SmdpHttpServer(routes=...)``)."""

__all__ = ["ES11_FUNCTIONS", "ES11_PATH", "ES12_FUNCTIONS", "ES12_PATH", "ROUTES", "Event",
           "Smds", "SmdsCredentials"]

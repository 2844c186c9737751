"""ESipa over HTTPS (SGP.32 6.1): the eIM served by the emulators' HTTPS server.

``POST /gsma/rsp2/esipa/<function>`` with a JSON body (see :mod:`mps_esim.sgp32.esipa`),
served as ES9+ is (:mod:`lpa_emulator.smdp.http`): a function's own failures come back as
HTTP 200 with ``functionExecutionStatus`` ``Failed``; HTTP-level problems (unknown path,
wrong method, missing protocol header, body too large or not a JSON object) get their HTTP
status and the same kind of body; no request gets a traceback.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence

from lpa_emulator.eim.service import SERVED, Eim
from lpa_emulator.smdp.http import MAX_BODY, SmdpHttpServer
from mps_esim.sgp32.esipa import BASE_PATH

ESIPA_ROUTES: Mapping[str, Sequence[str]] = {BASE_PATH: SERVED}


class EimHttpServer(SmdpHttpServer):
    """Serves an :class:`Eim` over HTTPS from a background thread on 127.0.0.1 (or
    ``host``); :meth:`start` returns the bound port (``port=0`` picks a free one)."""

    def __init__(self, eim: Eim, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None, workers: int = 4,
                 max_body: int = MAX_BODY) -> None:
        super().__init__(eim, host=host, port=port, ssl_context=ssl_context, workers=workers,
                         max_body=max_body, routes=ESIPA_ROUTES)
        self.eim = eim

    @property
    def address(self) -> str:
        """``host:port``, as an eIM FQDN is written."""
        return f"{self.host}:{self.port}"

"""ES9+ to an SM-DP+ in the same process, through the same JSON bodies as over HTTPS.

For tests and benchmarks that want the whole SGP.22 exchange without TLS and sockets:
:class:`InProcessEs9` is an :class:`~mps_esim.lpa.es9.Es9` whose transport calls
:meth:`Smdp.call` and wraps the result in the response header the HTTP layer adds.
"""

from __future__ import annotations

import json
from typing import Any

from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.service import Smdp
from mps_esim.lpa.es9 import JsonEs9


def success_header() -> dict[str, Any]:
    return {"functionExecutionStatus": {"status": "Executed-Success"}}


def failure_body(error: Es9StatusError) -> dict[str, Any]:
    """The JSON body of a failed function (SGP.22 6.5.1.4)."""
    return {"header": {"functionExecutionStatus": {
        "status": "Failed",
        "statusCodeData": {"subjectCode": error.status.subject,
                           "reasonCode": error.status.reason, "message": error.message}}}}


class InProcessEs9(JsonEs9):
    """ES9+ to ``smdp`` without HTTP; bodies still go through JSON both ways."""

    def __init__(self, smdp: Smdp) -> None:
        self.smdp = smdp

    def _post(self, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        request = json.loads(json.dumps(body))
        try:
            answer = self.smdp.call(function, request)
        except Es9StatusError as exc:
            return failure_body(exc)
        if answer is None:
            return None
        return dict(json.loads(json.dumps({**answer, "header": success_header()})))

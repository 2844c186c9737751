"""ESipa towards the eIM: the IPA's client side (SGP.32 6.3), JSON over HTTPS.

The binding is the one ES9+ uses (:mod:`mps_esim.lpa.es9`) under ``/gsma/rsp2/esipa/``;
see :mod:`mps_esim.sgp32.esipa` for the bodies.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mps_esim.lpa.es9 import Es9Client, Es9ProtocolError
from mps_esim.sgp32 import esipa


@dataclass(frozen=True)
class EimPackage:
    """What getEimPackage handed over: its kind (one of
    :data:`~mps_esim.sgp32.esipa.PACKAGE_KINDS`) and DER."""

    kind: str
    der: bytes


class EsipaError(Es9ProtocolError):
    """The eIM refused the request (eidNotFound, invalidEid, ...)."""

    def __init__(self, function: str, code: int) -> None:
        self.code = code
        self.reason = esipa.EIM_PACKAGE_ERRORS.get(code, f"code {code}")
        super().__init__(f"{function}: the eIM answered {self.reason} ({code})")


class EsipaClient(Es9Client):
    """ESipa to one eIM ``address`` (``host[:port]``)."""

    base_path = esipa.BASE_PATH

    def __enter__(self) -> EsipaClient:
        return self

    def get_eim_package(self, eid: str, *, notify_state_change: bool = False
                        ) -> EimPackage | None:
        """The next package the eIM holds for ``eid``; None when it has none."""
        fn = "getEimPackage"
        body: dict[str, Any] = {"eidValue": eid}
        if notify_state_change:
            body["notifyStateChange"] = True
        answer = self._call(fn, body)
        error = answer.get("eimPackageError")
        if error is not None:
            if not isinstance(error, int) or isinstance(error, bool):
                raise Es9ProtocolError(f"{fn}: eimPackageError is not an integer")
            if error == esipa.NO_PACKAGE:
                return None
            raise EsipaError(fn, error)
        kinds = [k for k in esipa.PACKAGE_KINDS if k in answer]
        if len(kinds) != 1:
            raise Es9ProtocolError(f"{fn}: the response holds no single eIM package")
        return EimPackage(kinds[0], self._binary(fn, answer, kinds[0]))

    def provide_eim_package_result(self, eid: str, kind: str, result: bytes,
                                   notifications: Sequence[bytes] = ()) -> list[int]:
        """Hand the eIM a result; the sequence numbers it acknowledges."""
        if kind not in esipa.RESULT_KINDS:
            raise ValueError(f"unknown result kind {kind!r}")
        fn = "provideEimPackageResult"
        body: dict[str, Any] = {"eidValue": eid, kind: _b64(result)}
        if notifications:
            body["notificationList"] = [_b64(n) for n in notifications]
        answer = self._call(fn, body)
        acks = answer.get("eimAcknowledgements", [])
        if not isinstance(acks, list) or not all(
                isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in acks):
            raise Es9ProtocolError(f"{fn}: eimAcknowledgements is not a list of numbers")
        return acks


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")

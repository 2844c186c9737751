"""The SGP.32 (eSIM IoT, v1.x) data types this system speaks, on the SGP.22 codec.

* :mod:`.eim`: eIM configuration data (``EimConfigurationData``);
* :mod:`.package`: eUICC packages (PSMOs and eCOs), signed by the eIM;
* :mod:`.result`: the eUICC's signed results and refusals;
* :mod:`.es10`: the ES10b functions SGP.32 adds (AddInitialEim, GetEimConfigurationData,
  LoadEuiccPackage, GetIpaEuiccData);
* :mod:`.esipa`: the ESipa messages between the IPA and the eIM.

The ASN.1 module (SGP32Definitions) tags automatically like SGP.22's: see
:mod:`mps_esim.sgp22`. Every decoding failure raises :class:`mps_esim.tlv.TlvError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mps_esim.sgp32.eim import EimConfig, EimConfigError
    from mps_esim.sgp32.package import EuiccPackageRequest, EuiccPackageSigned, Operation
    from mps_esim.sgp32.result import EuiccPackageResult, OperationResult

__all__ = ["EimConfig", "EimConfigError", "EuiccPackageRequest", "EuiccPackageResult",
           "EuiccPackageSigned", "Operation", "OperationResult"]


# Re-exported on first use: a card that only keeps eIM configuration (the eim module) does not
# load the package and result codecs with the package.
_HOMES = {"EimConfig": "eim", "EimConfigError": "eim", "EuiccPackageRequest": "package",
          "EuiccPackageSigned": "package", "Operation": "package",
          "EuiccPackageResult": "result", "OperationResult": "result"}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value

"""Vendor dialects of the emulated modem: data plus a few handler overrides each.

A dialect starts from the 27.007 command table and changes what the vendor changes:
extra commands, the form of some answers, the power-on URCs, the identification text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from lpa_emulator.modem.commands import CME_TEXTS, STANDARD_HANDLERS, Handler, h_qccid

if TYPE_CHECKING:
    from lpa_emulator.modem.emulator import ModemEmulator


@dataclass(frozen=True, slots=True)
class EmulatedDialect:
    """How one vendor's modem talks.

    ``ccho_style`` is ``"prefixed"`` for ``+CCHO: <id>`` or ``"bare"`` for the 27.007
    ``<id>``; ``boot_urcs`` gives the power-on URCs given whether a SIM is present;
    ``cmee_default`` and ``cereg_default`` are the AT+CMEE / AT+CEREG modes after boot.
    """

    name: str
    handlers: Mapping[str, Handler]
    ccho_style: Literal["prefixed", "bare"]
    boot_urcs: Callable[[bool], tuple[str, ...]]
    identification: Callable[[ModemEmulator], list[str]]
    cme_texts: Mapping[int, str] = field(default_factory=lambda: CME_TEXTS)
    cmee_default: int = 0
    cereg_default: int = 1


def _quectel_boot(sim: bool) -> tuple[str, ...]:
    cpin = "+CPIN: READY" if sim else "+CPIN: NOT INSERTED"
    return ("RDY", cpin, "+QIND: SMS DONE", "+QIND: PB DONE")


def _quectel_ati(emu: ModemEmulator) -> list[str]:
    s = emu.state
    return [s.manufacturer, s.model, f"Revision: {s.revision}"]


def _generic_boot(sim: bool) -> tuple[str, ...]:
    return ("+CPIN: READY",) if sim else ()


def _generic_ati(emu: ModemEmulator) -> list[str]:
    s = emu.state
    return [f"{s.manufacturer} {s.model} {s.revision}"]


QUECTEL = EmulatedDialect(
    name="quectel",
    handlers={**STANDARD_HANDLERS, "+QCCID": h_qccid},
    ccho_style="prefixed",
    boot_urcs=_quectel_boot,
    identification=_quectel_ati,
    cmee_default=1,
)

GENERIC = EmulatedDialect(
    name="generic",
    handlers=STANDARD_HANDLERS,
    ccho_style="bare",
    boot_urcs=_generic_boot,
    identification=_generic_ati,
)

DIALECTS: dict[str, EmulatedDialect] = {d.name: d for d in (QUECTEL, GENERIC)}
"""Dialects by name, as ``mps-emu modem --dialect`` takes them."""

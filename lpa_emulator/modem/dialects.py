"""Vendor dialects of the emulated modem: data plus a few handler overrides each.

A dialect starts from the 27.007 command table and changes what the vendor changes:
extra commands (the ICCID and IP address commands), commands it lacks (AT+CCHO/CGLA on
modems that only list AT+CSIM), the form of some answers, the power-on URCs, the
identification text and the ``+CME ERROR`` texts.

The emulator keeps one simplification for every vendor: the data context is active as
soon as the modem is registered (a real SIM7080 needs ``AT+CNACT=0,1``, a SARA-R5
``AT+UPSDA=0,3``; both are accepted and change nothing here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from lpa_emulator.modem.card import CardFault
from lpa_emulator.modem.commands import (
    CME_BAD_PARAMS,
    CME_NOT_SUPPORTED,
    STANDARD_HANDLERS,
    AtCommand,
    CmeFailure,
    Handler,
    expect_args,
    h_qccid,
    hosted_card,
    int_arg,
    only_forms,
    sim_failure,
)
from mps_esim.ts27007 import CME_TEXTS, PACKET_DOMAIN_CME_TEXTS

if TYPE_CHECKING:
    from lpa_emulator.modem.emulator import ModemEmulator


VENDOR_CME_TEXTS: Mapping[int, str] = MappingProxyType({**CME_TEXTS,
                                                        **PACKET_DOMAIN_CME_TEXTS})


@dataclass(frozen=True, slots=True)
class EmulatedDialect:
    """How one vendor's modem talks.

    ``ccho_style`` is ``"prefixed"`` for ``+CCHO: <id>`` or ``"bare"`` for the 27.007
    ``<id>``; ``boot_urcs`` gives the power-on URCs given whether a SIM is present;
    ``cmee_default`` and ``cereg_default`` are the AT+CMEE / AT+CEREG modes after boot;
    ``identity`` is the manufacturer, model and revision a new modem state gets.
    """

    name: str
    handlers: Mapping[str, Handler]
    ccho_style: Literal["prefixed", "bare"]
    boot_urcs: Callable[[bool], tuple[str, ...]]
    identification: Callable[[ModemEmulator], list[str]]
    identity: tuple[str, str, str]
    cme_texts: Mapping[int, str] = field(default_factory=lambda: CME_TEXTS)
    cmee_default: int = 0
    cereg_default: int = 1


def _without(table: Mapping[str, Handler], *names: str) -> dict[str, Handler]:
    return {k: v for k, v in table.items() if k not in names}


def _iccid(emu: ModemEmulator) -> str:
    try:
        return hosted_card(emu).read_iccid()
    except CardFault as exc:
        raise sim_failure(exc) from exc


def _iccid_command(form: Callable[[str], str]) -> Handler:
    """A vendor ICCID command (action form) printing the ICCID as ``form`` says."""
    def handler(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
        only_forms(cmd, "action", "test", "read")
        return [] if cmd.kind == "test" else [form(_iccid(emu))]
    return handler


def _revision_command(form: Callable[[str], str]) -> Handler:
    def handler(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
        only_forms(cmd, "action", "test")
        return [] if cmd.kind == "test" else [form(emu.state.revision)]
    return handler


def h_not_supported(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    """A command the firmware knows by name but does not implement: CME 4 in every form."""
    raise CmeFailure(CME_NOT_SUPPORTED, f"{cmd.name} is not supported")


def _addresses(emu: ModemEmulator) -> tuple[str, ...]:
    return emu.state.ip_addresses if emu.registration_stat() in (1, 5) else ()


def h_cnact(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    """SIMCom LPWA app network: ``+CNACT: <pdpidx>,<status>,"<address>"`` for contexts 0..3."""
    if cmd.kind == "test":
        return ["+CNACT: (0-3),(0-2)"]
    if cmd.kind == "set":
        args = expect_args(cmd, 2, 2)
        int_arg(args[0], 0, 3)
        int_arg(args[1], 0, 2)
        return []
    only_forms(cmd, "read")
    addrs = _addresses(emu)
    v4 = next((a for a in addrs if ":" not in a), None)
    lines = [f'+CNACT: 0,1,"{v4}"' if v4 else '+CNACT: 0,0,"0.0.0.0"']
    lines += [f'+CNACT: {i},0,"0.0.0.0"' for i in range(1, 4)]
    return lines


def h_upsnd(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    """u-blox packet switched network-assigned data: ``<profile>,0`` the IP address,
    ``<profile>,8`` whether the profile is active."""
    only_forms(cmd, "set", "test")
    if cmd.kind == "test":
        return []
    profile_tok, param_tok = expect_args(cmd, 2, 2)
    profile = int_arg(profile_tok, 0, 6)
    param = int_arg(param_tok, 0, 8)
    addrs = _addresses(emu) if profile == 0 else ()
    if param == 0:
        v4 = next((a for a in addrs if ":" not in a), "")
        return [f'+UPSND: {profile},0,"{v4}"']
    if param == 8:
        return [f"+UPSND: {profile},8,{1 if addrs else 0}"]
    raise CmeFailure(CME_BAD_PARAMS, f"AT+UPSND parameter {param}")


def h_upsda(emu: ModemEmulator, cmd: AtCommand) -> list[str]:
    """u-blox PSD action; accepted (the emulated context follows the registration)."""
    only_forms(cmd, "set", "test")
    if cmd.kind == "set":
        args = expect_args(cmd, 2, 2)
        int_arg(args[0], 0, 6)
        int_arg(args[1], 0, 6)
    return []


# --- Quectel -------------------------------------------------------------------------

def _quectel_boot(sim: bool) -> tuple[str, ...]:
    cpin = "+CPIN: READY" if sim else "+CPIN: NOT INSERTED"
    return ("RDY", cpin, "+QIND: SMS DONE", "+QIND: PB DONE")


def _quectel_ati(emu: ModemEmulator) -> list[str]:
    s = emu.state
    return [s.manufacturer, s.model, f"Revision: {s.revision}"]


QUECTEL = EmulatedDialect(
    name="quectel",
    handlers={**STANDARD_HANDLERS, "+QCCID": h_qccid},
    ccho_style="prefixed",
    boot_urcs=_quectel_boot,
    identification=_quectel_ati,
    identity=("Quectel", "EC25", "EC25EFAR06A06M4G"),
    cme_texts=VENDOR_CME_TEXTS,
    cmee_default=1,
)

# --- SIMCom SIM7500 / SIM7600 ----------------------------------------------------------

def _sim7600_boot(sim: bool) -> tuple[str, ...]:
    # Bare status lines, not "+NAME:" URCs: a driver must know them by name.
    return ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE") if sim else \
        ("RDY", "+CPIN: NOT INSERTED")


def _simcom_ati(emu: ModemEmulator) -> list[str]:
    s = emu.state
    return [f"Manufacturer: {s.manufacturer}", f"Model: {s.model}",
            f"Revision: {s.revision}", f"IMEI: {s.imei}", "+GCAP: +CGSM"]


SIM7600 = EmulatedDialect(
    name="sim7600",
    handlers={
        # The manual lists AT+CSIM and AT+CRSM for SIM access, no logical channel commands.
        **_without(STANDARD_HANDLERS, "+CCHO", "+CGLA", "+CCHC"),
        "+CICCID": _iccid_command(lambda iccid: f"+ICCID: {iccid}"),
        "+CGMR": _revision_command(lambda rev: f"+CGMR: {rev}"),
    },
    ccho_style="bare",
    boot_urcs=_sim7600_boot,
    identification=_simcom_ati,
    identity=("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "LE20B04SIM7600M22"),
    cme_texts=VENDOR_CME_TEXTS,
)

# --- SIMCom SIM7080 / SIM7070 ----------------------------------------------------------

def _sim7080_boot(sim: bool) -> tuple[str, ...]:
    return ("RDY", "+CFUN: 1", "+CPIN: READY", "SMS Ready") if sim else \
        ("RDY", "+CFUN: 1", "+CPIN: NOT INSERTED")


SIM7080 = EmulatedDialect(
    name="sim7080",
    handlers={
        **STANDARD_HANDLERS,
        # Only AT+CSIM reaches the card: the channel commands are refused as unsupported.
        "+CCHO": h_not_supported,
        "+CGLA": h_not_supported,
        "+CCHC": h_not_supported,
        "+CCID": _iccid_command(lambda iccid: iccid),
        "+CNACT": h_cnact,
        "+CGMR": _revision_command(lambda rev: f"Revision:{rev}"),
    },
    ccho_style="bare",
    boot_urcs=_sim7080_boot,
    identification=_simcom_ati,
    identity=("SIMCOM INCORPORATED", "SIMCOM_SIM7080G", "1951B04SIM7080"),
    cme_texts=VENDOR_CME_TEXTS,
)

# --- u-blox SARA-R5 --------------------------------------------------------------------

def _ublox_boot(sim: bool) -> tuple[str, ...]:
    return ()


def _ublox_ati(emu: ModemEmulator) -> list[str]:
    s = emu.state
    return [f"{s.model}-00B-00"]


UBLOX = EmulatedDialect(
    name="ublox",
    handlers={
        **_without(STANDARD_HANDLERS, "+CCHO", "+CGLA", "+CCHC"),
        "+CCID": _iccid_command(lambda iccid: f"+CCID: {iccid}"),
        "+UPSND": h_upsnd,
        "+UPSDA": h_upsda,
    },
    ccho_style="bare",
    boot_urcs=_ublox_boot,
    identification=_ublox_ati,
    identity=("u-blox", "SARA-R510M8S", "03.15"),
    cme_texts=VENDOR_CME_TEXTS,
)

# --- 3GPP TS 27.007 only ---------------------------------------------------------------

def _generic_boot(sim: bool) -> tuple[str, ...]:
    return ("+CPIN: READY",) if sim else ()


def _generic_ati(emu: ModemEmulator) -> list[str]:
    s = emu.state
    return [f"{s.manufacturer} {s.model} {s.revision}"]


GENERIC = EmulatedDialect(
    name="generic",
    handlers=STANDARD_HANDLERS,
    ccho_style="bare",
    boot_urcs=_generic_boot,
    identification=_generic_ati,
    identity=("Generic", "LTE-27007", "1.0"),
)

DIALECTS: dict[str, EmulatedDialect] = {d.name: d for d in (QUECTEL, SIM7600, SIM7080,
                                                            UBLOX, GENERIC)}
"""Dialects by name, as ``mps-emu modem --dialect`` takes them."""

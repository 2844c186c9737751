"""An emulated LTE modem on a pseudo-terminal, in the dialects the agent supports (Quectel,
SIMCom SIM7600 and SIM7080, u-blox SARA-R5, plain 27.007), hosting a card (normally the
software eUICC) behind AT+CSIM, AT+CCHO/CGLA/CCHC where the dialect has them, AT+CIMI and
the vendor's ICCID command. :class:`PtyServer` serves many of them from one thread."""

from lpa_emulator.modem.card import CardPort, HostedCard
from lpa_emulator.modem.dialects import DIALECTS, EmulatedDialect
from lpa_emulator.modem.emulator import AtSettings, ModemEmulator
from lpa_emulator.modem.errors import EmulatorError, ModemEmulatorError, PtyError, StateFileError
from lpa_emulator.modem.server import PtyServer
from lpa_emulator.modem.state import ModemState

__all__ = [
    "DIALECTS",
    "AtSettings",
    "CardPort",
    "EmulatedDialect",
    "EmulatorError",
    "HostedCard",
    "ModemEmulator",
    "ModemEmulatorError",
    "ModemState",
    "PtyError",
    "PtyServer",
    "StateFileError",
]

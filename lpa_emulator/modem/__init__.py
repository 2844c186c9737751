"""An emulated LTE modem on a pseudo-terminal, in the dialects the agent supports, hosting a
card (normally the software eUICC) behind AT+CSIM, AT+CCHO/CGLA/CCHC, AT+CIMI and AT+QCCID."""

from lpa_emulator.modem.card import CardPort, HostedCard
from lpa_emulator.modem.dialects import DIALECTS, EmulatedDialect
from lpa_emulator.modem.emulator import ModemEmulator, Settings
from lpa_emulator.modem.errors import EmulatorError, PtyError, StateFileError
from lpa_emulator.modem.state import ModemState

__all__ = [
    "DIALECTS",
    "CardPort",
    "EmulatedDialect",
    "EmulatorError",
    "HostedCard",
    "ModemEmulator",
    "ModemState",
    "PtyError",
    "Settings",
    "StateFileError",
]

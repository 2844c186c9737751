"""The agent's modem driver: AT commands over a transport chosen by URL, in a vendor dialect.

``Modem(open_modem("/dev/ttyUSB2"), dialect="quectel")`` then ``modem.sync()``.
"""

from agent.modem.dialects import DIALECTS, GENERIC, QUECTEL, SIM7080, SIM7600, UBLOX, Dialect
from agent.modem.link import ModemLink, UrcHandler
from agent.modem.modem import Modem
from agent.modem.transports import TRANSPORTS, SerialLink, SocketLink, open_modem

__all__ = [
    "DIALECTS",
    "GENERIC",
    "QUECTEL",
    "SIM7080",
    "SIM7600",
    "TRANSPORTS",
    "UBLOX",
    "Dialect",
    "Modem",
    "ModemLink",
    "SerialLink",
    "SocketLink",
    "UrcHandler",
    "open_modem",
]

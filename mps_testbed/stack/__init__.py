"""Services the emulated world runs beside the devices: a private Mosquitto, a PC/SC
sandbox, and the helpers that start and stop them."""

from mps_testbed.stack.mosquitto import Mosquitto, free_port

__all__ = ["Mosquitto", "free_port"]

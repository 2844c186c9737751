"""The SM-DP+: ES9+ over HTTPS, profile orders, bound profile packages, installation reports.

* :mod:`~lpa_emulator.smdp.service`: the ES9+ functions (:class:`Smdp`), HTTP-free;
* :mod:`~lpa_emulator.smdp.http`: the HTTPS server (aiohttp);
* :mod:`~lpa_emulator.smdp.orders`: the order database (SQLite);
* :mod:`~lpa_emulator.smdp.bpp`: binding a profile to one eUICC;
* :mod:`~lpa_emulator.smdp.report`: installation reports to the registry over MQTT;
* :mod:`~lpa_emulator.smdp.cli`: ``mps-emu smdp`` and ``mps-emu pki``.
"""

from lpa_emulator.smdp.errors import ConfigError, Es9StatusError, OrderError, SmdpError

__all__ = ["ConfigError", "Es9StatusError", "OrderError", "SmdpError"]

"""The device agent: hardware drivers (modem, card) and the first-boot logic."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_loading = threading.Lock()


class _Deferred(types.ModuleType):
    """Stands for a module not loaded yet: the first attribute read loads it (once, under a
    lock), puts it in its place in sys.modules and on its package, and answers from it."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        with _loading:
            if sys.modules.get(name) is self:
                del sys.modules[name]
                real = importlib.import_module(name)
                parent, _, child = name.rpartition(".")
                if parent:  # a submodule is also an attribute of its package
                    setattr(sys.modules[parent], child, real)
                vars(self).update(vars(real))
        return getattr(sys.modules[name], attr)


def _defer_import(name: str) -> None:
    """Load the module ``name`` at its first use rather than when it is imported.

    paho-mqtt imports urllib.request (with http.client, email, tempfile and the
    compression modules: over 2 MB of a board's memory) only to read an ``mqtt_proxy``
    variable, which :class:`mps_mqtt.client.ProxyAwareClient` does not need it for. The
    agent is a process of its own, so deferring the module here changes nothing elsewhere.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    # The import statement reads __spec__ of a module it finds in sys.modules: a real one
    # (not initializing) lets `import urllib.request` take the stand-in as it is.
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, stand_in)


_defer_import("urllib.request")
# paho imports uuid (with _uuid and libuuid) for a client id it makes up when it is given
# none, and for WebSocket keys; the agent names its client and speaks MQTT over TCP.
_defer_import("uuid")

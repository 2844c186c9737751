"""Valid sample messages for tests."""

from __future__ import annotations

from typing import Any

from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import DeviceInfo, ModelInfo


def sample_device(n: int = 1, **overrides: Any) -> DeviceInfo:
    """A valid DeviceInfo whose identifiers are derived from ``n``."""
    fields: dict[str, Any] = {
        "eid": make_eid(f"89049032{n:022d}"),
        "imei": make_imei("35209900", f"{n:06d}"),
        "iccid": make_iccid(f"894900{n:012d}"),
        "imsi": f"26201{n:010d}",
        "ip": ("10.0.0.1",),
        "capabilities": ("lte", "gps"),
        "model": ModelInfo("Quectel", "EC25", "EC25EFAR06A06M4G"),
        "profile": "emulated-emu",
        "seq": 1,
        "ts": 1_700_000_000_000,
    }
    fields.update(overrides)
    return DeviceInfo(**fields)

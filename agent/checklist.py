"""The doctor's checklist: each check's outcome, the report of a run and its rendering."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class CheckStatus(enum.StrEnum):
    """A check's outcome."""

    PASS = "pass"  # noqa: S105 - a check outcome, not a password
    FAIL = "fail"
    SKIP = "skip"


# The checks, in the order they run.
PORT = "modem port opens"
MODEM = "modem answers AT"
SIM = "SIM present"
EUICC = "eUICC reachable"
ISDR = "ISD-R selectable"
PROFILE = "operational profile enabled"
NETWORK = "network registered"
ADDRESS = "IP address assigned"
BROKER = "broker reachable"
CHECKS = (PORT, MODEM, SIM, EUICC, ISDR, PROFILE, NETWORK, ADDRESS, BROKER)


@dataclass
class Check:
    """One check's outcome; ``hint`` says what to do about a failure (or a doubt)."""

    name: str
    status: CheckStatus
    detail: str = ""
    hint: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "hint": self.hint, "seconds": round(self.seconds, 3)}


@dataclass
class DoctorReport:
    """Every check of one run."""

    profile: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status is CheckStatus.PASS for c in self.checks)

    def get(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "ok": self.ok,
                "checks": [c.to_json() for c in self.checks]}


def render(report: DoctorReport, *, width: int = 28) -> list[str]:
    """The human checklist, one line per check plus a hint line under each failure."""
    lines: list[str] = []
    for check in report.checks:
        lines += render_check(check, width=width)
    return lines


_MARK = {CheckStatus.PASS: "[ ok ]", CheckStatus.FAIL: "[FAIL]", CheckStatus.SKIP: "[skip]"}


def render_check(check: Check, *, width: int = 28) -> list[str]:
    out = [f"{_MARK[check.status]} {check.name:<{width}} {check.detail}".rstrip()]
    if check.hint:
        label = "hint" if check.status is CheckStatus.FAIL else "note"
        out.append(f"       {'':<{width}} {label}: {check.hint}")
    return out

"""The plain UICC's card model and its state file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpa_emulator.euicc import fs
from lpa_emulator.euicc.errors import StateError
from lpa_emulator.euicc.filecard import FileCard
from lpa_emulator.euicc.numbers import random_iccid, random_imsi
from lpa_emulator.euicc.state import ProfileRecord
from mps_common.durable import atomic_write
from mps_wire.identifiers import IdentifierError, validate_iccid, validate_imsi, validate_msisdn

UICC_KIND = "uicc"
"""The ``kind`` a plain UICC's state file names (an eUICC's file has none)."""
STATE_FORMAT = 1


@dataclass(frozen=True)
class UiccState:
    """The subscription a plain SIM carries; identifiers are checked on construction."""

    iccid: str
    imsi: str
    msisdn: str | None = None
    spn: str = "MPS"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "iccid", validate_iccid(self.iccid))
            object.__setattr__(self, "imsi", validate_imsi(self.imsi))
            if self.msisdn is not None:
                object.__setattr__(self, "msisdn", validate_msisdn(self.msisdn))
        except IdentifierError as exc:
            raise StateError(str(exc)) from exc
        if not isinstance(self.spn, str) or not 0 < len(self.spn) <= 16:
            raise StateError("spn is 1 to 16 characters")

    @classmethod
    def new(cls, *, iccid: str | None = None, imsi: str | None = None,
            msisdn: str | None = None) -> UiccState:
        """A card with the given identities, random valid ones for those left out."""
        return cls(iccid=iccid or random_iccid(), imsi=imsi or random_imsi(), msisdn=msisdn)

    def files(self) -> fs.FileSystem:
        """The tree the card shows: the same layout an eUICC shows for its enabled profile."""
        profile = ProfileRecord(iccid=self.iccid, imsi=self.imsi, msisdn=self.msisdn,
                                spn=self.spn, enabled=True)
        return fs.build(profile)

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "kind": UICC_KIND, "iccid": self.iccid,
                "imsi": self.imsi, "msisdn": self.msisdn, "spn": self.spn}

    @classmethod
    def from_dict(cls, data: object) -> UiccState:
        """Inverse of :meth:`to_dict`; :class:`StateError` names what is wrong."""
        if not isinstance(data, dict):
            raise StateError("the state is not a JSON object")
        if data.get("kind") != UICC_KIND or data.get("format") != STATE_FORMAT:
            raise StateError(f"not a plain UICC state (kind {data.get('kind')!r}, format "
                             f"{data.get('format')!r}; expected {UICC_KIND!r}, "
                             f"{STATE_FORMAT})")
        for key in ("iccid", "imsi"):
            if not isinstance(data.get(key), str):
                raise StateError(f"missing field {key!r}")
        msisdn = data.get("msisdn")
        if msisdn is not None and not isinstance(msisdn, str):
            raise StateError("msisdn is a string or null")
        return cls(iccid=data["iccid"], imsi=data["imsi"], msisdn=msisdn,
                   spn=data.get("spn", "MPS"))

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2).encode() + b"\n")

    @classmethod
    def load(cls, path: Path) -> UiccState:
        """Read a state file (``FileNotFoundError`` passes through)."""
        try:
            data = json.loads(Path(path).read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateError(f"not a valid card state file (corrupt JSON: {exc})",
                             path=str(path)) from exc
        try:
            return cls.from_dict(data)
        except StateError as exc:
            raise StateError(f"invalid card state: {exc}", path=str(path)) from exc


class UiccCard(FileCard):
    """A plain SIM: the files of its one subscription and no ISD-R, so a SELECT of the
    ISD-R's AID answers 6A82 (file not found) as on a real UICC (ISO 7816-4 5.1.1)."""

    def __init__(self, state: UiccState, state_path: Path | None = None) -> None:
        super().__init__(state.files())
        self._state = state
        self._state_path = state_path

    @classmethod
    def open(cls, state_path: Path) -> UiccCard:
        """The card kept in ``state_path`` (:class:`StateError` when it is not one)."""
        return cls(UiccState.load(state_path), Path(state_path))

    @property
    def state(self) -> UiccState:
        return self._state

    @property
    def state_path(self) -> Path | None:
        return self._state_path

    @property
    def iccid(self) -> str:
        return self._state.iccid

    @property
    def name(self) -> str:
        return f"UICC {self._state.iccid}"

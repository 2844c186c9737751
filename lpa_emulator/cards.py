"""Opening an emulated card from its state file, whichever kind it holds."""

from __future__ import annotations

import json
from pathlib import Path

from lpa_emulator.euicc.card import EuiccCard
from lpa_emulator.euicc.filecard import FileCard

UICC_KIND = "uicc"
"""The ``kind`` a plain UICC's state file names (:data:`lpa_emulator.uicc.card.UICC_KIND`;
its module is loaded for such a card only)."""


def card_kind(state_path: Path) -> str:
    """``uicc`` for a plain UICC's state file, ``euicc`` otherwise (also for a missing or
    unreadable file: opening it as an eUICC creates one or reports what is wrong)."""
    try:
        data = json.loads(Path(state_path).read_bytes())
    except (OSError, ValueError):
        return "euicc"
    return UICC_KIND if isinstance(data, dict) and data.get("kind") == UICC_KIND else "euicc"


def open_card(state_path: Path) -> FileCard:
    """The card kept in ``state_path``: a plain UICC when the file says so, else an eUICC
    (created when the file is missing, as :meth:`EuiccCard.open` does)."""
    if card_kind(state_path) == UICC_KIND:
        from lpa_emulator.uicc.card import UiccCard

        return UiccCard.open(state_path)
    return EuiccCard.open(state_path)

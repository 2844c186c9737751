"""Card links chosen by URL: ``pcsc://?reader=<regex>``, ``at://<modem port>``,
``emu://<state file>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from agent.card.link import CardLink, Channel, check
from agent.errors import AgentConfigError
from mps_esim.simfiles import ISDR_AID


def _pcsc(url: SplitResult, **kw: Any) -> CardLink:
    from agent.card.pcsc import PcscCardLink

    return PcscCardLink.from_url(url, isdr_aid=kw["isdr_aid"])


def _at(url: SplitResult, **kw: Any) -> CardLink:
    from agent.card.at import AtCardLink

    return AtCardLink.from_url(url, isdr_aid=kw["isdr_aid"], modem=kw.get("modem"))


def _emu(url: SplitResult, **kw: Any) -> CardLink:
    from agent.card.emu import EmuCardLink

    return EmuCardLink.from_url(url, isdr_aid=kw["isdr_aid"])


# Each scheme's module validates its own options; modules load lazily so a board without
# pcscd never imports pyscard.
SCHEMES: dict[str, Callable[..., CardLink]] = {"pcsc": _pcsc, "at": _at, "emu": _emu}


def open_card(url: str, *, isdr_aid: bytes = ISDR_AID, modem: Any = None) -> CardLink:
    """Make the card link ``url`` names (not yet connected).

    ``modem`` is the already-open :class:`agent.modem.Modem` of the device, which an
    ``at://`` link on the same port shares instead of opening the port twice.
    """
    parts = urlsplit(url)
    factory = SCHEMES.get(parts.scheme)
    if factory is None:
        raise AgentConfigError(f"card URL {url!r}: scheme must be one of "
                          f"{', '.join(s + '://' for s in SCHEMES)}")
    return factory(parts, isdr_aid=isdr_aid, modem=modem)


__all__ = ["SCHEMES", "CardLink", "Channel", "check", "open_card"]

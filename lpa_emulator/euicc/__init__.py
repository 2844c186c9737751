"""A software eUICC: the ISD-R's ES10 commands (the SGP.22 profile download included,
:mod:`~lpa_emulator.euicc.download`), a UICC file system that follows the enabled profile,
an identity (CERT.EUICC, CERT.EUM, CI) and state that survives restarts. Served in-process
(:class:`EuiccCard`), to the real PC/SC stack through vpcd (:mod:`lpa_emulator.vpcd`) and
behind the emulated modem."""

from lpa_emulator.euicc.card import ATR, EuiccCard
from lpa_emulator.euicc.download import DownloadSession
from lpa_emulator.euicc.errors import CardStatus, EuiccError, StateError
from lpa_emulator.euicc.identity import EuiccIdentity, IdentityError
from lpa_emulator.euicc.state import CardState, NotificationRecord, ProfileRecord

__all__ = ["ATR", "CardState", "CardStatus", "DownloadSession", "EuiccCard", "EuiccError",
           "EuiccIdentity", "IdentityError", "NotificationRecord", "ProfileRecord", "StateError"]

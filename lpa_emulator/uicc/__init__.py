"""A plain UICC (a SIM card without an ISD-R): EF.ICCID under the MF and ADF.USIM with
EF.IMSI and EF.MSISDN (ETSI TS 102 221, 3GPP TS 31.102), its subscription kept in a small
state file. Served like the eUICC: in-process, through vpcd and behind the emulated modem."""

from lpa_emulator.uicc.card import UICC_KIND, UiccCard, UiccState

__all__ = ["UICC_KIND", "UiccCard", "UiccState"]

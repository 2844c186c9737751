"""The eSIM protocol stack a device runs: TLV/DER, SGP.22 types, ISO 7816 APDUs, SIM files,
3GPP TS 27.007 error codes, the crypto of the RSP protocol, and the LPA (ES10 and ES9+
clients, profile download, activation codes).

Nothing here is emulated and nothing here imports an emulator: the agent on a board, the
emulators in :mod:`lpa_emulator` and the tests all use this one implementation.
"""

"""Everything GSMA and everything emulated: eUICC card, modem emulator, the stack of
services a rig runs, and (as they land) LPA, SM-DP+ and test PKI."""

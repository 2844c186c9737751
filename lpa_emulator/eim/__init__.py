"""An eIM (eSIM IoT remote Manager, SGP.32): the fleet's EIDs and queued work in SQLite
(:mod:`.store`), the ESipa functions (:mod:`.service`, :mod:`.results`) served over HTTPS
(:mod:`.http`), and the operator's ``mps-emu eim`` commands (:mod:`.cli`)."""

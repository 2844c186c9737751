"""The IoT Profile Assistant on the device (IPAd, SGP.32): the SGP.32 ES10b functions
(:mod:`.card`), the ESipa client towards the eIM (:mod:`.esipa`) and one polling round
(:mod:`.poll`)."""

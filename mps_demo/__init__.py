"""The story of the system told end to end over every real part (``mps-demo``).

Paul's four devices boot against a private broker and registry; a health app pairs with
his number and he approves; his new tennis racket joins the contract and the app is told
unasked; apps of other trust levels see more or less. The rig lives in ``lpa_emulator``
and the apps in ``broker_bridge``: this package is where the two meet.
"""

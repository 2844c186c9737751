"""The test bed: the emulated rig of N devices, the process stack (a private Mosquitto, the
pcscd + vpcd sandbox, an SM-DP+), and the demo story. Used by ``mps-demo``, ``mps-bench``
and the tests; never by the agent or the registry.
"""

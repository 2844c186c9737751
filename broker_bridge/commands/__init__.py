"""The subcommands of ``mps-bridge`` (:mod:`broker_bridge.cli`), one module per group: each
adds its parsers and carries out what they parse."""

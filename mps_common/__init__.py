"""What every package of the project shares and nothing else: the command-line conventions
(exit codes, tables, ``--json``, logging), layered configuration, the one configuration
error, durable file writes and the terminal progress bar. It imports no other package of
the project.
"""

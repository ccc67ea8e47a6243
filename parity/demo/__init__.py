"""The bundled demo: a target service with old/new profiles, its baseline, and ``parity demo``'s runner.

The runner's two defaults live here so that building the command line's parser (every command, and its
``--help``) does not import :mod:`parity.demo.runner` and with it processes, urllib and ssl (~0.1 s).
"""

#: Default replay length of ``parity demo``: the bundled day compressed into this many seconds.
DEFAULT_DURATION_S = 75.0
#: Default load of ``parity demo`` relative to the baseline's production rate.
DEFAULT_RATE_SCALE = 1.5

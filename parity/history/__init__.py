"""Nightly history: the append-only store, change-point detection across nights, the trend page.

- :mod:`parity.history.store`: ``append`` / ``load`` of the SQLite history file.
- :mod:`parity.history.changepoints`: lasting level shifts per endpoint and metric (pure).
- :mod:`parity.history.trend`: the trend page's view-model and HTML (pure).
- :mod:`parity.history.command`: ``parity history`` and ``record_run`` for the nightly job (I/O).
"""

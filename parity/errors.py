"""Errors the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

__all__ = [
    "EXIT_ABORTED",
    "EXIT_BAD_INPUT",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "BadInput",
]

#: Exit codes of every command (README "Exit codes").
EXIT_OK = 0  # parity holds
EXIT_REGRESSION = 1  # at least one endpoint regressed
EXIT_BAD_INPUT = 2  # bad input, bad usage, unreachable dependency
EXIT_INCONCLUSIVE = 3  # not enough data to decide
EXIT_ABORTED = 4  # a safety rail refused or aborted the run
EXIT_INTERRUPTED = 130  # Ctrl-C


class BadInput(Exception):
    """Input the harness cannot use (missing file, malformed field, bad option); exit code 2.

    The message is one line that names the file and, where there is one, the field.
    """

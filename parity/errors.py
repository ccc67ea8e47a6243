"""Errors the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "EXIT_ABORTED",
    "EXIT_BAD_INPUT",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "BadInput",
    "Interrupted",
    "Refused",
    "reading",
]

#: Exit codes of every command (README "Exit codes").
EXIT_OK = 0  # parity holds
EXIT_REGRESSION = 1  # at least one endpoint regressed
EXIT_BAD_INPUT = 2  # bad input, bad usage, unreachable dependency
EXIT_INCONCLUSIVE = 3  # not enough data to decide
EXIT_ABORTED = 4  # a safety rail refused or aborted the run
EXIT_INTERRUPTED = 130  # Ctrl-C


class Refused(Exception):
    """A safety rail refused the run before any request (e.g. a target that is not allow-listed); exit code 4.
    The message is one line: the rail's reason."""


class Interrupted(Exception):
    """The command was stopped by a signal (SIGINT or SIGTERM) before it could finish; exit code 128 + signal
    (130 for SIGINT, 143 for SIGTERM). What was already written stays (whole files only)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class BadInput(Exception):
    """Input the harness cannot use (missing file, malformed field, bad option); exit code 2.

    The message is one line that names the file and, where there is one, the field.
    """


@contextmanager
def reading(path: Path, expected: str) -> Iterator[None]:
    """Turn an OS error raised while the block reads ``path`` into a one-line BadInput.

    ``expected`` names what the file should be (for "is a directory, expected ...").
    """
    try:
        yield
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, expected {expected}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None

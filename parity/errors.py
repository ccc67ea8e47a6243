"""Errors the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

__all__ = ["BadInput"]


class BadInput(Exception):
    """Input the harness cannot use (missing file, malformed field, bad option); exit code 2.

    The message is one line that names the file and, where there is one, the field.
    """

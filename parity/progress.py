"""A progress bar over the queries of a Datadog pull, drawn on a terminal stream (CLI only).

On a terminal the bar redraws one line in place; elsewhere (CI logs) it prints a line per finished query
and per wait. Waits (rate limits, retries) are always shown with their reason and length.
"""

from __future__ import annotations

from typing import TextIO

from parity.datadog import PullProgress

__all__ = ["QueryProgressBar"]

#: Characters of the bar itself.
BAR_WIDTH = 24
#: Characters of the current query shown after the bar.
QUERY_WIDTH = 70


class QueryProgressBar:
    """Callable progress sink for ``pull_baseline(progress=...)``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._drawn = False

    def __call__(self, p: PullProgress) -> None:
        query = p.query if len(p.query) <= QUERY_WIDTH else p.query[: QUERY_WIDTH - 1] + "…"
        if p.waiting:
            self._line(f"pull: {p.reason}: waiting {p.wait_s:g} s before retry {p.attempt} of {query}", final=True)
            return
        filled = round(BAR_WIDTH * p.done / p.total) if p.total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = f"pull: [{bar}] {p.done}/{p.total} queries  {query}"
        if self._tty:
            self._line(text, final=p.done == p.total)
        elif p.done:
            print(f"pull: {p.done}/{p.total} queries done ({query})", file=self._stream, flush=True)

    def _line(self, text: str, *, final: bool) -> None:
        if self._tty:
            self._stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._drawn = not final
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End a partly drawn line (after an error)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

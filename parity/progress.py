"""Progress drawn on a terminal stream (the edges only: the CLI and the replay locustfile; the core never prints).

- :class:`ProgressLine`: one status line, redrawn in place on a terminal (``rich.live``), and a plain line every
  ``PLAIN_EVERY_S`` seconds elsewhere (piped, CI logs). The replay's live progress uses it
  (:func:`replay_progress` for a ``parity`` command running the replay as a child; the locustfile for a direct
  ``locust -f loadtests/replay.py`` run).
- :class:`QueryProgressBar`: a progress bar over the queries of a Datadog pull. On a terminal the bar redraws one
  line in place; elsewhere it prints a line per finished query and per wait. Waits (rate limits, retries) are
  always shown with their reason and length.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from parity.datadog import PullProgress
    from parity.replay.progress import ReplayProgress

__all__ = [
    "PLAIN_EVERY_ENV",
    "PLAIN_EVERY_S",
    "ProgressLine",
    "QueryProgressBar",
    "plain_every_s",
    "replay_progress",
]

#: Seconds between two plain progress lines when the stream is not a terminal (piped, CI logs).
PLAIN_EVERY_S = 10.0
#: Environment variable overriding ``PLAIN_EVERY_S`` (seconds, > 0), e.g. for a shorter interval in tests.
PLAIN_EVERY_ENV = "PARITY_PROGRESS_EVERY"


def plain_every_s(environ: Mapping[str, str]) -> float:
    """Seconds between plain progress lines: ``PLAIN_EVERY_ENV`` in ``environ`` when it is a number > 0, else
    ``PLAIN_EVERY_S``."""
    try:
        value = float(environ.get(PLAIN_EVERY_ENV, ""))
    except ValueError:
        return PLAIN_EVERY_S
    return value if value > 0 and math.isfinite(value) else PLAIN_EVERY_S


class ProgressLine:
    """One status line on ``stream`` (stderr: stdout stays for results). On a terminal (``terminal``: None asks
    the stream) every :meth:`update` redraws it in place with ``rich.live``; elsewhere :meth:`update` prints a plain
    line when ``every_s`` seconds (of ``clock``) have passed since the last one printed (the first at once), and
    :meth:`close` prints the last text if it was not printed yet.

    ``capture_logs``: on a terminal, log handlers writing to ``stream`` write through the live display meanwhile
    (their lines scroll above the status line instead of breaking it; restored by :meth:`close`). Use it as a
    context manager, or call :meth:`close` at the end."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every_s: float = PLAIN_EVERY_S,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        capture_logs: bool = False,
    ) -> None:
        self._stream = stream
        self._every_s = every_s
        self._clock = clock
        self._terminal = stream.isatty() if terminal is None else terminal
        self._last_text: str | None = None
        self._printed: str | None = None
        self._printed_at = -math.inf
        self._live: Live | None = None
        self._handlers: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
        if self._terminal:
            from rich.console import Console  # only for a terminal (about 60 ms to import)
            from rich.live import Live

            console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=False)
            self._live = Live(
                console=console, auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=False
            )
            self._live.start()
            if capture_logs:
                self._capture_logs(console)

    @property
    def terminal(self) -> bool:
        """The line is redrawn in place (the stream is a terminal)."""
        return self._terminal

    def _capture_logs(self, console: Console) -> None:
        from rich.file_proxy import FileProxy

        proxy = FileProxy(console, self._stream)
        loggers = [logging.getLogger(), *(v for v in logging.root.manager.loggerDict.values())]
        for logger in loggers:
            for handler in getattr(logger, "handlers", ()):
                if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                    self._handlers.append((handler, handler.stream))
                    handler.setStream(proxy)

    def update(self, text: str) -> None:
        """Show ``text`` (see the class docstring for when it is drawn)."""
        self._last_text = text
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(text), refresh=True)
            return
        now = self._clock()
        if now - self._printed_at >= self._every_s:
            self._print(text, now)

    def _print(self, text: str, now: float) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
        self._printed, self._printed_at = text, now

    def close(self) -> None:
        """Stop redrawing: the terminal keeps the last line; a plain stream gets the last text unless it was the
        last printed. Log handlers get their streams back. Safe to call twice."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
        elif self._last_text is not None and self._last_text != self._printed:
            self._print(self._last_text, self._clock())
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextmanager
def replay_progress(
    quiet: bool, stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> Iterator[Callable[[ReplayProgress | None], None] | None]:
    """The live progress of a replay run as a child process, for ``ReplayRun(progress=...)``: a callable drawing
    each snapshot on ``stream`` (default stderr) as a :class:`ProgressLine` (plain lines every
    ``plain_every_s(environ)`` seconds when it is not a terminal, from the run's start on: a replay refused or
    failing before its start prints none); None when ``quiet``. Closed on exit."""
    if quiet:
        yield None
        return
    from parity.replay.progress import format_progress

    every_s = plain_every_s(os.environ if environ is None else environ)
    with ProgressLine(sys.stderr if stream is None else stream, every_s=every_s) as line:
        yield _ReplayDraw(line, format_progress)


class _ReplayDraw:
    """Draws a replay's snapshots on a :class:`ProgressLine`; :meth:`close` (called by ``run_replay`` when the
    replay ends) ends the line, so what a command prints after the replay comes after its last progress line."""

    def __init__(self, line: ProgressLine, render: Callable[[ReplayProgress | None], str]) -> None:
        self._line = line
        self._render = render

    def __call__(self, snapshot: ReplayProgress | None) -> None:
        if snapshot is not None or self._line.terminal:  # a log gets no "starting" line (nor one for a refused run)
            self._line.update(self._render(snapshot))

    def close(self) -> None:
        self._line.close()


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

"""Live progress of a replay: what a snapshot holds, how it is taken from the recorders, and its one-line text.

Pure (no Locust import, no printing): the replay locustfile takes a :class:`ReplayProgress` from its recorders
every ``SNAPSHOT_EVERY_S`` (the master's in a master/worker run: its recorders hold every worker's reports, so the
figures are the aggregate) and hands it to a renderer (``parity.progress.ProgressLine``) and, for a ``parity``
command running the replay as a child process, to a small JSON file the parent reads
(:func:`write_snapshot` / :func:`read_snapshot`).

The "current" figures — send rate, planned rate, p95 — cover a recent window of the timeline
(``RECENT_S``, at least one timeline bucket) that ends ``lag_s`` before now: the last second is still being
recorded, and a master hears from its workers every 3 s. Send rate counts sends by when they started; p95 is the
service time of the requests sent in the window that have been answered; the planned rate is the schedule's
average over the same window. Totals (sent, errors, late) cover the run so far.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recorder needs numpy and the sketches: a parent process reading snapshots does not
    from parity.replay.recorder import Recorder

__all__ = [
    "RECENT_S",
    "SNAPSHOT_EVERY_S",
    "ReplayProgress",
    "SideProgress",
    "format_ms",
    "format_progress",
    "planned_rate",
    "read_snapshot",
    "take_snapshot",
    "write_snapshot",
]

#: Seconds of the recent window behind the current rate and p95 (stretched to one timeline bucket when those are
#: longer: a long run's timeline has buckets of up to an hour).
RECENT_S = 10.0
#: Seconds between two snapshots taken by the replay (a terminal redraws at least once a second).
SNAPSHOT_EVERY_S = 0.5


@dataclass(frozen=True)
class SideProgress:
    """One target's figures: ``name`` ("" for a single-target replay, else old/new); totals so far (``sent``
    requests started, ``errors`` among the answered or failed ones, ``recorded`` of them, ``late`` sends that
    started over the lateness threshold after their planned time); over the recent window ``rate_rps`` (sends/s)
    and ``p95_ms`` (service time) — None when the window is still empty or has no answered request."""

    name: str
    sent: int
    recorded: int
    errors: int
    late: int
    rate_rps: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class ReplayProgress:
    """A snapshot of a running replay: seconds since its start (negative before it) of ``planned_s`` planned;
    ``planned_requests`` to each target over the whole run (expected value); ``plan_rps`` the schedule's rate over
    the recent window (None while it is empty), ``window_s`` its length; one :class:`SideProgress` per target (old
    before new); ``stopping``: why the run is being stopped early, if it is."""

    elapsed_s: float
    planned_s: float
    planned_requests: float
    plan_rps: float | None
    window_s: float
    sides: tuple[SideProgress, ...]
    stopping: str | None = None

    def to_json(self) -> str:
        """The snapshot as one line of JSON (:func:`write_snapshot`)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ReplayProgress:
        """The snapshot :meth:`to_json` wrote; ValueError (or KeyError, TypeError) for anything else."""
        data = json.loads(text)
        sides = tuple(SideProgress(**side) for side in data.pop("sides"))
        return cls(sides=sides, **data)


def planned_rate(cell_rates: Sequence[float], run_time_s: float, start_s: float, end_s: float) -> float | None:
    """The schedule's mean rate (req/s) over run seconds ``[start_s, end_s)``: ``cell_rates`` are the total planned
    rates of the schedule's cells, which split ``run_time_s`` evenly; outside the run the rate is 0. None for an
    empty span or an empty schedule."""
    cells = len(cell_rates)
    if end_s <= start_s or cells == 0 or run_time_s <= 0:
        return None
    cell_s = run_time_s / cells
    requests = 0.0
    first = max(0, math.floor(start_s / cell_s))
    last = min(cells - 1, math.floor(end_s / cell_s))
    for i in range(first, last + 1):
        overlap = min(end_s, (i + 1) * cell_s) - max(start_s, i * cell_s)
        if overlap > 0:
            requests += float(cell_rates[i]) * overlap
    return requests / (end_s - start_s)


def take_snapshot(
    recorders: Mapping[str, Recorder],
    *,
    now_s: float,
    start_s: float,
    run_time_s: float,
    cell_rates: Sequence[float],
    lag_s: float,
    stopping: str | None = None,
) -> ReplayProgress:
    """The progress of a replay that started at Unix time ``start_s`` (``run_time_s`` planned, ``cell_rates`` its
    schedule: see :func:`planned_rate`) at Unix time ``now_s``, from its recorders (one per target; a single
    target's is named "" in the snapshot). The recent window is the last whole timeline buckets of about
    ``RECENT_S`` ending ``lag_s`` before now (none before the run has gone that far)."""
    interval = next(iter(recorders.values())).interval_s if recorders else 1.0
    end = math.floor((now_s - lag_s) / interval) * interval
    since = max(end - max(RECENT_S, interval), start_s)
    window_s = max(0.0, end - since)
    has_window = window_s >= min(1.0, interval)
    sides = []
    for name, recorder in sorted(recorders.items(), key=lambda item: item[0] != "old"):
        recent = recorder.window(since, end) if has_window else None
        sends = recorder.sends
        sides.append(
            SideProgress(
                name=name if len(recorders) > 1 else "",
                sent=sends["sent"],
                recorded=recorder.count,
                errors=recorder.errors,
                late=sends["late"],
                rate_rps=recent.sent / window_s if recent is not None else None,
                p95_ms=recent.p95_ms if recent is not None else None,
            )
        )
    plan_rps = planned_rate(cell_rates, run_time_s, since - start_s, end - start_s) if has_window else None
    return ReplayProgress(
        elapsed_s=now_s - start_s,
        planned_s=run_time_s,
        planned_requests=sum(cell_rates) * run_time_s / len(cell_rates) if len(cell_rates) else 0.0,
        plan_rps=plan_rps,
        window_s=window_s if has_window else 0.0,
        sides=tuple(sides),
        stopping=stopping,
    )


def format_ms(ms: float | None) -> str:
    """A latency for the progress line: ``4.3 ms`` below 10 ms, ``437 ms``, ``1,250 ms``; ``-`` when unknown."""
    if ms is None or not math.isfinite(ms):
        return "-"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:,.0f} ms"


def _rate(rps: float | None) -> str:
    return "-" if rps is None else f"{rps:,.1f}/s"


def _errors(side: SideProgress) -> str:
    """``errors 3 (0.2%)``: the share is of the requests recorded so far (none shown without errors)."""
    text = f"errors {side.errors:,}"
    return text + f" ({side.errors / side.recorded:.1%})" if side.errors and side.recorded else text


def format_progress(progress: ReplayProgress | None) -> str:
    """The progress line: ``replay 12.0 s / 60 s · sent 1,204 of ~6,000 · 99.8/s (plan 100.0/s) · errors 0 · late 3
    · p95 12 ms``; an A/B run shows the plan once, then each side after its name (``old: sent 1,204, 99.8/s, errors
    0, late 3, p95 12 ms``). None (no snapshot yet): ``replay: starting Locust``; before the start: ``replay
    starting in 1 s``; past the planned end: ``finishing`` (answers still in flight); a stop adds its reason."""
    if progress is None:
        return "replay: starting Locust"
    planned, total = f"{progress.planned_s:g} s", f"~{progress.planned_requests:,.0f}"
    if progress.elapsed_s < 0:
        return f"replay starting in {-progress.elapsed_s:.0f} s ({planned}, {total} requests planned)"
    parts = [f"replay {min(progress.elapsed_s, progress.planned_s):.1f} s / {planned}"]
    if progress.elapsed_s > progress.planned_s:
        parts.append("finishing (waiting for answers in flight)")
    plan = f"plan {_rate(progress.plan_rps)}"
    if len(progress.sides) == 1:
        side = progress.sides[0]
        parts += [
            f"sent {side.sent:,} of {total}",
            f"{_rate(side.rate_rps)} ({plan})",
            _errors(side),
            f"late {side.late:,}",
            f"p95 {format_ms(side.p95_ms)}",
        ]
    else:
        parts.append(f"{plan}, {total} each")
        parts += [
            f"{side.name}: sent {side.sent:,}, {_rate(side.rate_rps)}, {_errors(side)}, late {side.late:,}, "
            f"p95 {format_ms(side.p95_ms)}"
            for side in progress.sides
        ]
    if progress.stopping:
        parts.append(f"stopping: {progress.stopping}")
    return " · ".join(parts)


def write_snapshot(progress: ReplayProgress, path: Path) -> None:
    """Replace ``path`` with ``progress`` as JSON, atomically (a temporary file renamed): a reader never sees half
    a snapshot. OSError is the caller's."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(progress.to_json() + "\n", "utf-8")
    tmp.replace(path)


def read_snapshot(path: Path) -> ReplayProgress | None:
    """The last snapshot written to ``path``; None when there is none yet (or it cannot be read)."""
    try:
        return ReplayProgress.from_json(path.read_text("utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None

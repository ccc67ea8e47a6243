"""Replay plan: a baseline Measurement turned into what a replay needs to send.

For every replayable endpoint: its request template and its rate over the baseline window, on one grid
of intervals (requests per second at production traffic, i.e. divided by the baseline's ``rate_scale``).
Endpoints that cannot be replayed (an unmapped APM resource, or a route with placeholders but no
parameter pools) are kept in ``skipped`` with their share of traffic, never silently dropped.

Missing timeline points (None) take the endpoint's mean rate over its known points; an endpoint without
a timeline is spread evenly over the window.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from parity.model import Endpoint, EndpointStats, Measurement, RequestTemplate, Timeline

__all__ = ["PlannedEndpoint", "ReplayPlan", "SkippedEndpoint", "build_plan", "placeholders"]

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def placeholders(text: str) -> tuple[str, ...]:
    """Names of ``{name}`` placeholders in ``text``, each once, in order of appearance."""
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(text)))


@dataclass(frozen=True)
class PlannedEndpoint:
    endpoint: Endpoint
    request: RequestTemplate


@dataclass(frozen=True)
class SkippedEndpoint:
    endpoint: Endpoint
    share: float  # of baseline requests
    reason: str


@dataclass(frozen=True)
class ReplayPlan:
    """``rates[e, i]``: requests/s of endpoint ``e`` in grid interval ``i`` at production traffic.

    The grid covers the baseline window with ``rates.shape[1]`` intervals of ``interval_s`` seconds.
    """

    endpoints: tuple[PlannedEndpoint, ...]
    rates: npt.NDArray[np.float64]
    interval_s: float
    skipped: tuple[SkippedEndpoint, ...]

    @property
    def window_s(self) -> float:
        return self.interval_s * int(self.rates.shape[1])

    @property
    def skipped_share(self) -> float:
        """Share of baseline requests the replay cannot send."""
        return sum(s.share for s in self.skipped)

    def mean_rate(self) -> float:
        """Mean requests/s over the window at production traffic (all endpoints)."""
        return float(self.rates.sum(axis=0).mean()) if self.rates.size else 0.0

    def expected_requests(self, run_time_s: float, rate_scale: float) -> float:
        """Requests a run of ``run_time_s`` seconds sends on average when it compresses the whole window."""
        return float(self.mean_rate() * rate_scale * run_time_s)


def _request_for(stats: EndpointStats) -> tuple[RequestTemplate | None, str]:
    """The request template to use, or None with the reason the endpoint cannot be replayed."""
    if not stats.endpoint.mapped:
        return None, "unmapped resource: no method and route (add it to the route map)"
    template = stats.request or RequestTemplate(path=stats.endpoint.route)
    needed = set(placeholders(template.path))
    for value in template.query.values():
        needed |= set(placeholders(value))
    missing = sorted(needed - set(template.params))
    if missing:
        return None, f"no parameter pool for {', '.join('{' + m + '}' for m in missing)}"
    return template, ""


def _grid_counts(timeline: Timeline, grid_start: float, interval: float, cells: int) -> npt.NDArray[np.float64]:
    """Spread a timeline's counts over the grid by overlap; missing points take the mean of known ones."""
    known = [c for c in timeline.counts if c is not None]
    fill = float(np.mean(known)) if known else 0.0
    out = np.zeros(cells)
    for j, count in enumerate(timeline.counts):
        value = fill if count is None else float(count)
        if value == 0.0:
            continue
        lo = timeline.start_s + j * timeline.interval_s - grid_start
        hi = lo + timeline.interval_s
        first, last = max(math.floor(lo / interval), 0), min(math.ceil(hi / interval), cells)
        for i in range(first, last):
            overlap = min(hi, (i + 1) * interval) - max(lo, i * interval)
            if overlap > 0:
                out[i] += value * overlap / timeline.interval_s
    return out


def build_plan(baseline: Measurement) -> ReplayPlan:
    """Plan a replay of ``baseline`` (see module docstring)."""
    window_start = baseline.window.start.timestamp()
    window_s = baseline.window.duration_s
    intervals = [e.timeline.interval_s for e in baseline.endpoints if e.timeline is not None]
    interval = min(intervals) if intervals else window_s
    cells = max(1, math.ceil(window_s / interval - 1e-9))
    total = baseline.total_count
    planned, rows, skipped = [], [], []
    for stats in baseline.endpoints:
        template, reason = _request_for(stats)
        if template is None:
            skipped.append(SkippedEndpoint(stats.endpoint, stats.count / total if total else 0.0, reason))
            continue
        if stats.count == 0:
            continue
        if stats.timeline is not None and stats.timeline.total > 0:
            counts = _grid_counts(stats.timeline, window_start, interval, cells)
        else:
            counts = np.full(cells, stats.count / cells)
        planned.append(PlannedEndpoint(stats.endpoint, template))
        rows.append(counts / interval / baseline.rate_scale)
    rates = np.vstack(rows) if rows else np.zeros((0, cells))
    return ReplayPlan(tuple(planned), rates, interval, tuple(skipped))

"""Replay plan: a baseline Measurement turned into what a replay needs to send.

For every replayable endpoint: its request template and its rate over the baseline window, on one grid
of intervals (requests per second at production traffic, i.e. divided by the baseline's ``rate_scale``).
Endpoints that cannot be replayed (an unmapped APM resource, or a route with placeholders but no
parameter pools) are kept in ``skipped`` with their share of traffic, never silently dropped.

Missing timeline points (None) take the endpoint's mean rate over its known points; an endpoint without
a timeline is spread evenly over the window.

Query shapes (``RequestTemplate.query_shapes``, access-log baselines): a placeholder in a shape whose parameter
has no value pool (every logged value was left out: secret-like or an e-mail) is *unfillable*: the plan puts
``UNFILLABLE_VALUE`` in its place and lists the parameter in ``PlannedEndpoint.unfillable`` (the replay says so
before it starts). A path placeholder without a pool still makes the endpoint unreplayable.

Bodies: ``build_plan(baseline, bodies)`` replaces the body of each endpoint named in ``bodies`` (endpoint key →
JSON template, see ``parity.replay.bodies``). A write endpoint (``WRITE_METHODS``) left without a body is listed
by :meth:`ReplayPlan.without_body`: the replay refuses to send it unless told to (``--allow-empty-bodies``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from parity.model import WRITE_METHODS, Endpoint, EndpointStats, Measurement, QueryShape, RequestTemplate, Timeline

__all__ = ["UNFILLABLE_VALUE", "PlannedEndpoint", "ReplayPlan", "SkippedEndpoint", "build_plan", "placeholders"]

#: Sent in place of a query parameter whose logged values were all left out (secret-like, e-mail addresses).
UNFILLABLE_VALUE = "parity-unfillable"

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def placeholders(text: str) -> tuple[str, ...]:
    """Names of ``{name}`` placeholders in ``text``, each once, in order of appearance."""
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(text)))


@dataclass(frozen=True)
class PlannedEndpoint:
    """An endpoint the replay sends; ``unfillable``: query parameters sent as ``UNFILLABLE_VALUE`` (no pool)."""

    endpoint: Endpoint
    request: RequestTemplate
    unfillable: tuple[str, ...] = ()

    @property
    def without_body(self) -> bool:
        """True for a write endpoint (POST, PUT, PATCH) that would be sent without a request body."""
        return self.endpoint.method in WRITE_METHODS and self.request.body is None


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

    def without_body(self) -> tuple[Endpoint, ...]:
        """The write endpoints this plan would send without a request body, in plan order."""
        return tuple(p.endpoint for p in self.endpoints if p.without_body)

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
    if not template.query_shapes:
        for value in template.query.values():
            needed |= set(placeholders(value))
    missing = sorted(needed - set(template.params))
    if missing:
        return None, f"no parameter pool for {', '.join('{' + m + '}' for m in missing)}"
    return template, ""


def _fill_unfillable(template: RequestTemplate) -> tuple[RequestTemplate, tuple[str, ...]]:
    """``template`` with every query-shape placeholder that has no pool replaced by ``UNFILLABLE_VALUE``, and
    the names of the parameters that had one (each once, in order)."""
    unfillable: dict[str, None] = {}
    shapes = []
    for shape in template.query_shapes:
        params = []
        for name, value in shape.params:
            filled = value
            for ph in placeholders(value or ""):
                if ph not in template.params and filled is not None:
                    unfillable[name] = None
                    filled = filled.replace("{" + ph + "}", UNFILLABLE_VALUE)
            params.append((name, filled))
        shapes.append(QueryShape(tuple(params), shape.weight))
    if not unfillable:
        return template, ()
    return replace(template, query_shapes=tuple(shapes)), tuple(unfillable)


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


def build_plan(baseline: Measurement, bodies: Mapping[str, Any] | None = None) -> ReplayPlan:
    """Plan a replay of ``baseline`` (see module docstring); ``bodies`` maps endpoint keys to the JSON body
    template their requests send instead of the baseline's (keys of endpoints not in the baseline are ignored)."""
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
        if bodies is not None and stats.endpoint.key in bodies:
            template = replace(template, body=bodies[stats.endpoint.key])
        template, unfillable = _fill_unfillable(template)
        planned.append(PlannedEndpoint(stats.endpoint, template, unfillable))
        rows.append(counts / interval / baseline.rate_scale)
    rates = np.vstack(rows) if rows else np.zeros((0, cells))
    return ReplayPlan(tuple(planned), rates, interval, tuple(skipped))

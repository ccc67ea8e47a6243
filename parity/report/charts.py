"""``chart_data(result, baseline, candidate)``: compact per-endpoint chart series for the HTML report. Pure.

The report draws its charts in the browser from this data (Chart.js, vendored in ``parity/report/static``);
everything here is plain lists of rounded numbers so that a 1,000-endpoint report stays a few MB:

- **latency distribution (CDF)** per side, from the latency the judge used (``intended`` when the endpoint
  was judged on it, else as measured): the sketch's quantiles in ms at the shared probability grid
  :data:`CDF_GRID` (~60 points, denser in the tail). A side with summary figures only (APM) gives the
  quantiles it reported, as explicit ``[probabilities, ms]``.
- **over time** per side: request rate (req/s) and latency (ms; p95 when the timeline has it, else avg) per
  point, the source intervals merged so that at most :data:`TIMELINE_POINTS` points remain. Merging sums
  counts (rate = requests / merged span), weights ``avg_ms`` by counts and keeps the *highest* ``p95_ms`` of
  the merged intervals (p95s do not average). Times are seconds from the side's own window start.

Missing data stays missing: a side without the endpoint, without latency or without a timeline is ``None``;
an interval without data is ``None`` inside a series (never 0). Latency vs load needs no Measurement: the
page draws it from the result's saturation knees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from parity.judge.compare import INTENDED
from parity.judge.result import ParityResult
from parity.model import (
    SUMMARY_QUANTILES,
    EndpointStats,
    Latency,
    LatencyDistribution,
    LatencySummary,
    Measurement,
    Timeline,
)

__all__ = ["CDF_GRID", "SIGNIFICANT_DIGITS", "TIMELINE_POINTS", "chart_data", "rounded"]

#: Cumulative probabilities the CDF is sampled at (shared by every endpoint and side): every 2% up to 90%,
#: then the tail (p95, p99, p99.9) and the maximum. 57 points.
CDF_GRID: tuple[float, ...] = (
    *(i / 50 for i in range(46)),
    0.92,
    0.94,
    0.95,
    0.96,
    0.97,
    0.98,
    0.99,
    0.995,
    0.998,
    0.999,
    1.0,
)
#: At most this many points per time series (source intervals are merged to get there).
TIMELINE_POINTS = 60
#: Significant digits kept of every charted number (charts need no more; the JSON stays small).
SIGNIFICANT_DIGITS = 3


_EXACT_INT = 2.0**53  # floats below this in magnitude are exact integers when whole
_SPEC = f".{SIGNIFICANT_DIGITS}g"


def rounded(value: float | None, digits: int = SIGNIFICANT_DIGITS) -> float | int | None:
    """``value`` to ``digits`` significant digits (an int when whole); None when missing or not finite.

    Correctly rounded (``g`` formatting, read back). Called ~100k times per 300-endpoint report, hence the
    prebuilt format spec and the float bound (an f-string spec and ``2**53`` per call cost ~20% more).
    """
    if value is None or not math.isfinite(value):
        return None
    r = float(format(value, _SPEC if digits == SIGNIFICANT_DIGITS else f".{digits}g"))
    return int(r) if r.is_integer() and -_EXACT_INT < r < _EXACT_INT else r


def _cdf(latency: Latency | None) -> list[Any] | None:
    """Quantiles in ms at :data:`CDF_GRID`, or ``[probabilities, ms]`` for a summary; None when empty."""
    if isinstance(latency, LatencyDistribution):
        if latency.samples == 0:
            return None
        return [rounded(v) for v in latency.sketch.quantiles(CDF_GRID)]
    if isinstance(latency, LatencySummary):
        known = [(q, latency.quantile(q)) for q in (*SUMMARY_QUANTILES, 1.0)]
        pairs = [(q, v) for q, v in known if v is not None and math.isfinite(v)]
        if not pairs:
            return None
        return [[q for q, _ in pairs], [rounded(v) for _, v in pairs]]
    return None


def _merge(values: Sequence[float | None], weights: Sequence[int | None], how: str) -> float | None:
    known = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None and math.isfinite(v)]
    if not known:
        return None
    if how == "max":
        return max(v for v, _ in known)
    total = sum(w or 0 for _, w in known)
    if total == 0:
        return sum(v for v, _ in known) / len(known)
    return sum(v * (w or 0) for v, w in known) / total


def _timeline(t: Timeline | None, window_start_s: float) -> list[Any] | None:
    """``[start_s, step_s, latency_name, rates, latencies]``: merged series of ``t``; None without one.

    ``start_s`` is the first point's start relative to ``window_start_s``; point ``i`` covers
    ``[start_s + i*step_s, start_s + (i+1)*step_s)``. ``latency_name`` is ``p95`` or ``avg`` (None: the
    timeline has no latency column; ``latencies`` is then empty).
    """
    if t is None or not t.counts:
        return None
    n = len(t.counts)
    k = math.ceil(n / TIMELINE_POINTS)
    step = t.interval_s * k
    column, name, how = (
        (t.p95_ms, "p95", "max")
        if t.p95_ms is not None
        else (t.avg_ms, "avg", "mean")
        if t.avg_ms
        else (None, None, "")
    )
    rates: list[float | int | None] = []
    latencies: list[float | int | None] = []
    for lo in range(0, n, k):
        counts = t.counts[lo : lo + k]
        known = [c for c in counts if c is not None]
        span = t.interval_s * len(counts)
        rates.append(rounded(sum(known) / span) if known else None)
        if column is not None:
            latencies.append(rounded(_merge(column[lo : lo + k], counts, how)))
    return [rounded(t.start_s - window_start_s), rounded(step), name, rates, latencies]


def _side(stats: EndpointStats | None, m: Measurement, intended: bool) -> dict[str, Any] | None:
    if stats is None:
        return None
    latency = stats.intended if intended and stats.intended is not None else stats.latency
    return {"cdf": _cdf(latency), "time": _timeline(stats.timeline, m.window.start.timestamp())}


def chart_data(result: ParityResult, baseline: Measurement, candidate: Measurement) -> list[dict[str, Any] | None]:
    """Chart series per endpoint of ``result``, in the result's order: ``{"b": side, "c": side}`` where a
    side is ``{"cdf": ..., "time": ...}`` (see the module docstring) or None when that side lacks the
    endpoint; None for an endpoint neither Measurement has (the Measurements are not the result's)."""
    base, cand = baseline.by_key(), candidate.by_key()
    out: list[dict[str, Any] | None] = []
    for e in result.endpoints:
        key = e.endpoint.key
        intended = e.latency_basis == INTENDED
        b = _side(base.get(key), baseline, intended)
        c = _side(cand.get(key), candidate, intended)
        out.append(None if b is None and c is None else {"b": b, "c": c})
    return out

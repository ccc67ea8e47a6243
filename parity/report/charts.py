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
  the merged intervals (p95s do not average). Times are UTC clock time: seconds since the Unix epoch.
- **clock** (:func:`clock_axes`, one per report): each side's window in epoch seconds, whether the two
  windows share one clock (a concurrent run) or are aligned by the fraction of each window elapsed (a
  before/after comparison, or a replay that compressed the baseline's day into minutes), and the baseline's
  UTC offsets over its window when its Measurement names a time zone (label :data:`TIMEZONE_LABEL`).

Missing data stays missing: a side without the endpoint, without latency or without a timeline is ``None``;
an interval without data is ``None`` inside a series (never 0). Latency vs load needs no Measurement: the
page draws it from the result's saturation knees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

__all__ = [
    "CDF_GRID",
    "SAME_CLOCK_S",
    "SIGNIFICANT_DIGITS",
    "TIMELINE_POINTS",
    "TIMEZONE_LABEL",
    "chart_data",
    "clock_axes",
    "rounded",
    "time_zone",
    "utc_offsets",
    "with_time_zone",
]

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
#: Measurement label naming the time zone its clock times are local to: an IANA name (``Europe/Berlin``) or a
#: fixed offset (``+02:00``, ``-0530``). Without it the report's time charts show UTC only and say so.
TIMEZONE_LABEL = "timezone"
#: Two windows whose starts and ends differ by at most this many seconds share one clock on the time charts.
SAME_CLOCK_S = 120.0
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


def _timeline(t: Timeline | None) -> list[Any] | None:
    """``[start_s, step_s, latency_name, rates, latencies]``: merged series of ``t``; None without one.

    ``start_s`` is the first point's start in UTC epoch seconds (to the millisecond); point ``i`` covers
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
    start = round(t.start_s, 3)
    return [int(start) if start.is_integer() else start, rounded(step), name, rates, latencies]


def _fixed_offset(name: str) -> timezone | None:
    """``+02:00``, ``-0530``, ``UTC+2`` as a fixed-offset zone; None when ``name`` is not one."""
    text = name.strip().upper().removeprefix("UTC").removeprefix("GMT")
    if not text or text[0] not in "+-":
        return None
    digits = text[1:].replace(":", "")
    if not digits.isdigit() or len(digits) not in (1, 2, 4):
        return None
    hours, minutes = (int(digits), 0) if len(digits) <= 2 else (int(digits[:2]), int(digits[2:]))
    if hours > 14 or minutes >= 60:
        return None
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def time_zone(name: str) -> timezone | ZoneInfo | None:
    """The time zone ``name`` means (IANA, e.g. ``Europe/Berlin``, or a fixed ``±HH:MM``); None when it is not one
    this Python knows (a folder of the zone database such as ``America``, or a name too long for a file, too)."""
    zone: timezone | ZoneInfo | None = _fixed_offset(name)
    if zone is None:
        try:
            zone = ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, a name too long for a path
            return None
    return zone


def with_time_zone(m: Measurement, name: str | None) -> Measurement:
    """``m`` labelled (:data:`TIMEZONE_LABEL`) with its service's local time zone ``name``, which the clock axes show
    beside UTC; ``m`` itself when None."""
    return m if name is None else replace(m, labels={**m.labels, TIMEZONE_LABEL: name})


def utc_offsets(name: str, start: datetime, end: datetime) -> list[list[int]] | None:
    """The UTC offsets of time zone ``name`` (IANA or a fixed ``±HH:MM``) over ``[start, end]`` as
    ``[[from epoch s, offset s], ...]`` (one entry, or one more per daylight-saving change; probed at every whole
    UTC hour, a change found placed to the second: some zones change at half hours, Newfoundland at 05:30 UTC);
    None when the name is not a time zone this Python knows."""
    zone = time_zone(name)
    if zone is None:
        return None

    def offset_at(epoch_s: int) -> int:
        offset = datetime.fromtimestamp(epoch_s, UTC).astimezone(zone).utcoffset()
        return 0 if offset is None else int(offset.total_seconds())

    out: list[list[int]] = []
    t, stop = int(start.timestamp()), int(end.timestamp())
    prev = t
    while True:
        seconds = offset_at(t)
        if not out:
            out.append([t, seconds])
        elif out[-1][1] != seconds:
            lo, hi = prev, t  # the offset changed in (lo, hi]: bisect to the first second of the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if offset_at(mid) == seconds else (mid, hi)
            out.append([hi, seconds])
        if t >= stop:
            return out
        prev, t = t, min((t // 3600 + 1) * 3600, stop)


def clock_axes(baseline: Measurement, candidate: Measurement) -> dict[str, Any]:
    """How the page puts both sides' timelines on clock time: ``{"b": [start, end], "c": [start, end]}`` (each
    window in UTC epoch seconds), ``"same"`` (True: the windows coincide within :data:`SAME_CLOCK_S`, one UTC
    axis serves both; False: each point is placed by the fraction of its own window elapsed, the baseline's
    clock on the lower axis, the candidate's on the upper one — a replay compresses the baseline's window, so
    its minute 5 of 10 replays the baseline's minute 30 of 60), ``"tz"`` (the baseline's :data:`TIMEZONE_LABEL`;
    None without one) and ``"offsets"`` (its :func:`utc_offsets`; None: UTC only — no label, or one not a
    known time zone)."""
    b, c = baseline.window, candidate.window
    same = (
        abs((b.start - c.start).total_seconds()) <= SAME_CLOCK_S
        and abs((b.end - c.end).total_seconds()) <= SAME_CLOCK_S
    )
    tz = baseline.labels.get(TIMEZONE_LABEL) or None
    return {
        "b": [b.start.timestamp(), b.end.timestamp()],
        "c": [c.start.timestamp(), c.end.timestamp()],
        "same": same,
        "tz": tz,
        "offsets": None if tz is None else utc_offsets(tz, b.start, b.end),
    }


def _side(stats: EndpointStats | None, intended: bool) -> dict[str, Any] | None:
    if stats is None:
        return None
    latency = stats.intended if intended and stats.intended is not None else stats.latency
    return {"cdf": _cdf(latency), "time": _timeline(stats.timeline)}


def chart_data(result: ParityResult, baseline: Measurement, candidate: Measurement) -> list[dict[str, Any] | None]:
    """Chart series per endpoint of ``result``, in the result's order: ``{"b": side, "c": side}`` where a
    side is ``{"cdf": ..., "time": ...}`` (see the module docstring) or None when that side lacks the
    endpoint; None for an endpoint neither Measurement has (the Measurements are not the result's)."""
    base, cand = baseline.by_key(), candidate.by_key()
    out: list[dict[str, Any] | None] = []
    for e in result.endpoints:
        key = e.endpoint.key
        intended = e.latency_basis == INTENDED
        b = _side(base.get(key), intended)
        c = _side(cand.get(key), intended)
        out.append(None if b is None and c is None else {"b": b, "c": c})
    return out

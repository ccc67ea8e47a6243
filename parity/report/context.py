"""``build_context(result, meta, charts)``: the view-model the HTML report renders. Pure: no I/O.

Like Locust's ``html.py``, every figure is formatted here; the template only loops and prints strings, and
the page's script only places the strings of ``data`` (the endpoint table, as JSON) and charts its numbers.
:func:`explain` puts the statistics behind each metric's verdict in plain words.
Numbers use :func:`parity.judge.compare.format_value`; ratios read ``x1.23``; deltas are signed in the
metric's unit (``+12.3 ms``, ``-0.20 req/s``), error-rate deltas in percentage points (``+0.40 pp``).
A missing figure prints as ``n/a`` (never as zero). Verdicts carry a CSS class derived from the
:class:`~parity.judge.result.Verdict` value (``verdict-fail``…); colours live in the template's CSS.

The formatting helpers are shared with :mod:`parity.report.ci` so every renderer prints the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from parity.judge.compare import format_value
from parity.judge.policy import METRICS
from parity.judge.result import (
    Bottleneck,
    Change,
    ComparisonMode,
    Direction,
    EndpointResult,
    EstimateKind,
    GeneratorInfo,
    MetricResult,
    ParityResult,
    SaturationKnee,
    SideInfo,
    Statistics,
    Verdict,
)
from parity.report.charts import CDF_GRID, rounded

__all__ = [
    "METRIC_LABELS",
    "MISSING",
    "TOP_BOTTLENECKS",
    "VERDICT_ORDER",
    "RunMeta",
    "build_context",
    "explain",
    "explain_parts",
    "format_count",
    "format_delta",
    "format_duration",
    "format_extra_errors",
    "format_extra_time",
    "format_ratio",
    "format_time",
    "iso_utc",
    "mode_label",
    "verdict_css",
    "verdict_label",
]

#: What a missing figure prints as.
MISSING = "n/a"

#: Verdicts worst first (the order counts and legends are listed in).
VERDICT_ORDER: tuple[Verdict, ...] = tuple(sorted(Verdict, key=lambda v: -v.severity))

#: Short column label per metric name (``avg``, ``p95``, ``error rate``…).
METRIC_LABELS: dict[str, str] = {m.name: m.label or m.name for m in METRICS}

_MODE_LABELS = {
    ComparisonMode.CONCURRENT: "concurrent A/B",
    ComparisonMode.BEFORE_AFTER: "before/after",
}
_MODE_EXPLANATIONS = {
    ComparisonMode.CONCURRENT: "both sides were measured at the same time under the same load",
    ComparisonMode.BEFORE_AFTER: (
        "the sides were measured at different times and loads: differences may come from the load "
        "as well as the environment"
    ),
}


@dataclass(frozen=True)
class RunMeta:
    """Facts about the harness run that produced a report (not about the measurements).

    ``generated_at`` must carry a time zone; reports print it in UTC. ``config`` is the path of the config
    file used (None: defaults only); ``command`` the command line, when known.
    """

    harness_version: str
    commit: str | None
    generated_at: datetime
    config: str | None
    command: str | None

    def __post_init__(self) -> None:
        if self.generated_at.tzinfo is None:
            raise ValueError("RunMeta.generated_at must carry a time zone")


# --- formatting helpers (shared by every renderer) -------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def verdict_label(verdict: Verdict) -> str:
    """``PASS``, ``MARGINAL``, ``FAIL``, ``INCONCLUSIVE``."""
    return verdict.value.upper()


def verdict_css(verdict: Verdict) -> str:
    """CSS class of a verdict: ``verdict-`` + the enum value (``verdict-fail``)."""
    return f"verdict-{verdict.value}"


def mode_label(mode: ComparisonMode) -> str:
    """``concurrent A/B`` or ``before/after``."""
    return _MODE_LABELS[mode]


def format_ratio(ratio: float | None) -> str:
    """``x1.23``; ``n/a`` when missing or not finite."""
    ratio = _finite(ratio)
    return MISSING if ratio is None else f"x{ratio:.2f}"


def _signed(value: float, digits: int) -> str:
    rounded = round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{rounded:+.{digits}f}"


def format_delta(delta: float | None, unit: str) -> str:
    """Signed difference in the metric's unit: ``+12.3 ms``, ``-0.40 pp`` (a ratio unit prints in
    percentage points), ``+1.25 req/s``; ``n/a`` when missing."""
    delta = _finite(delta)
    if delta is None:
        return MISSING
    if unit == "ratio":
        return f"{_signed(delta * 100, 2)} pp"
    if unit == "req/s":
        return f"{_signed(delta, 2)} req/s"
    return f"{_signed(delta, 1)} {unit}"


def format_extra_time(ms_per_min: float) -> str:
    """Extra server time per minute: ``+850 ms/min`` below a second, else ``+3.2 s/min``."""
    if ms_per_min < 1000:
        return f"+{ms_per_min:.0f} ms/min"
    return f"+{ms_per_min / 1000:.1f} s/min"


def format_extra_errors(per_min: float) -> str:
    """Extra errors per minute: ``+1.5 errors/min``."""
    return f"+{per_min:.1f} errors/min"


def format_count(n: int | None) -> str:
    """``12,345``; ``n/a`` when unknown."""
    return MISSING if n is None else f"{n:,}"


def format_share(share: float | None) -> str:
    """``12.3%`` of traffic; ``n/a`` when unknown."""
    share = _finite(share)
    return MISSING if share is None else f"{share:.1%}"


def iso_utc(dt: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix: ``2026-01-01T12:00:00Z``."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_time(dt: datetime) -> str:
    """``2026-01-01 12:00:00 UTC``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min 30 s``, ``3 h 05 min``."""
    total = round(seconds)
    if total < 120:
        return f"{seconds:.3g} s" if total < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _text(value: object | None) -> str:
    return "—" if value is None or value == "" else str(value)


# --- statistics in plain words ----------------------------------------------------------------------


def _pct(x: float) -> str:
    """A percentage without its sign: one decimal below 10%, none above."""
    x = abs(x)
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def _p(p: float) -> str:
    """``= 3e-6`` (two significant digits, no zero-padded exponent); ``< 1e-300`` when it underflowed."""
    if p <= 0:
        return "< 1e-300"
    return "= " + f"{p:.2g}".replace("e-0", "e-").replace("e+0", "e+")


def _tolerance_text(m: MetricResult) -> str:
    """``5% / 2 ms``: the relative tolerance and the absolute floor in the metric's unit (pp for rates)."""
    floor = f"{m.min_delta * 100:g} pp" if m.unit == "ratio" else f"{m.min_delta:g} {m.unit}"
    return f"{m.tolerance * 100:g}% / {floor}"


def _effect_text(m: MetricResult, s: Statistics, label: str) -> str:
    """``p95 is 12% higher (95% CI 8–16%)`` from the test's estimate and interval (ratio: relative change;
    difference: in the metric's unit, pp for rates); falls back to the figures' own ratio."""
    estimate = _finite(s.estimate)
    kind = s.estimate_kind
    if estimate is None:
        estimate, kind = _finite(m.ratio), EstimateKind.RATIO
    if estimate is None:
        return f"{label}: {format_value(_finite(m.baseline), m.unit)} → {format_value(_finite(m.candidate), m.unit)}"
    if kind is EstimateKind.RATIO:
        change, scale, unit = estimate - 1.0, 100.0, "%"
        low_high = None if s.interval is None else (s.interval[0] - 1.0, s.interval[1] - 1.0)
    else:
        change, scale, unit = (
            estimate,
            (100.0 if m.unit == "ratio" else 1.0),
            (" pp" if m.unit == "ratio" else f" {m.unit}"),
        )
        low_high = s.interval

    digits = {" ms": 1, " pp": 2}.get(unit, 2)

    def amount(x: float) -> str:
        return _pct(x * scale) if unit == "%" else f"{abs(x * scale):.{digits}f}"

    if float(amount(change)) == 0:
        text = f"{label} is unchanged"
    else:
        text = f"{label} is {amount(change)}{unit} {'higher' if change > 0 else 'lower'}"
    if low_high is not None and all(math.isfinite(v) for v in low_high):
        low, high = low_high
        level = f"{s.confidence * 100:g}% CI"
        if change != 0 and low * change > 0 and high * change > 0:  # the whole interval on the estimate's side
            a, b = sorted((abs(low), abs(high)))
            text += f" ({level} {amount(a)}–{amount(b)}{unit})"
        else:
            signed = [f"{'−' if v < 0 else '+'}{amount(v)}{unit}" for v in (low, high)]
            text += f" ({level} {signed[0]} to {signed[1]})"
    return text


def explain_parts(m: MetricResult, alpha: float) -> tuple[str, str]:
    """:func:`explain` in two parts, ``(head, tail)``: the head holds this metric's own figures (effect,
    interval, p-values), the tail the rule it was held to (family size, significance, tolerance, verdict),
    which repeats across endpoints — the HTML report sends each distinct tail once. ``tail`` is empty for a
    metric that was not judged (the head is then the judge's reason)."""
    label = METRIC_LABELS.get(m.metric, m.metric)
    s = m.statistics
    if s is None or m.change is Change.UNKNOWN:
        return m.reason, ""
    head = _effect_text(m, s, label)
    beyond = m.change in (Change.WORSE, Change.BETTER)
    tolerance = f"the {_tolerance_text(m)} tolerance"
    where = f"beyond {tolerance}{' (better)' if m.change is Change.BETTER else ''}" if beyond else f"within {tolerance}"
    verdict = f" → {verdict_label(m.verdict)}"
    if not s.tested or s.p_value is None:
        return head, f": no significance test possible (summary figures only), {where}{verdict}"
    head += f", p {_p(s.p_value)}"
    rate = f"the run's {alpha * 100:g}% false-alarm rate"
    if s.adjusted_p is None:
        significant = False
        family = " (not adjusted: left out of the run's family of tests)"
    else:
        significant = s.adjusted_p <= alpha
        head += f", Holm-adjusted {_p(s.adjusted_p).removeprefix('= ')}"
        family = f" over {s.family_size:,} tests"
    sig = f"significant at {rate}" if significant else f"not significant at {rate}"
    return head, f"{family}: {sig}, {'and' if significant == beyond else 'but'} {where}{verdict}"


def explain(m: MetricResult, alpha: float) -> str:
    """The statistics behind a metric's verdict in plain words, e.g. ``p95 is 12% higher (95% CI 8–16%),
    p = 3e-6, Holm-adjusted 1e-3 over 340 tests: significant at the run's 1% false-alarm rate, and beyond the
    5% / 2 ms tolerance → FAIL``.

    The effect and its interval come from the test's estimate (a ratio reads as a relative change; a
    difference in the metric's unit, percentage points for rates). Significance is the Holm-adjusted p-value
    against the run's ``alpha``; "beyond" the tolerance means the judge found the change larger than both the
    relative tolerance and the absolute floor. A metric that was not judged (a side missing, too few
    samples, a saturated generator) gets the judge's own reason.
    """
    head, tail = explain_parts(m, alpha)
    return head + tail


# --- view-model ------------------------------------------------------------------------------------

#: The overview lists at most this many bottlenecks (the endpoint table holds every endpoint).
TOP_BOTTLENECKS = 20


def _verdict(verdict: Verdict) -> dict[str, Any]:
    return {"value": verdict.value, "label": verdict_label(verdict), "css": verdict_css(verdict)}


def _sort_key(m: MetricResult) -> float | int | None:
    """Sort key of a metric cell, larger = worse: the ratio (inverted for higher-is-better metrics), the
    delta for error rates (their baseline is often 0); None when unknown. Four significant digits."""
    if m.unit == "ratio":
        value = _finite(m.delta)
    elif m.ratio is None or not math.isfinite(m.ratio) or m.ratio <= 0:
        value = None
    else:
        value = m.ratio if m.direction is Direction.LOWER_IS_BETTER else 1 / m.ratio
    return rounded(value, 4)


def _cell(m: MetricResult, e: EndpointResult, alpha: float, strings: dict[str, dict[str, int]]) -> list[Any]:
    """One metric of one endpoint for the page (positional, see :func:`build_context`). Repeated text is
    interned: ``strings["methods"]`` and ``strings["rules"]`` map each distinct string to its index."""
    head, tail = explain_parts(m, alpha)
    method = (
        None if m.statistics is None else strings["methods"].setdefault(m.statistics.method, len(strings["methods"]))
    )
    rule = strings["rules"].setdefault(tail, len(strings["rules"])) if tail else None
    # the judge's own reason travels only where the page shows it: as an endpoint reason, or as the words
    reason = m.reason if (m.reason in e.reasons or not tail) else None
    return [
        format_value(_finite(m.baseline), m.unit),
        format_value(_finite(m.candidate), m.unit),
        format_ratio(m.ratio),
        format_delta(m.delta, m.unit),
        m.verdict.value,
        m.change.value,
        _sort_key(m),
        f"{m.samples[0]:,} / {m.samples[1]:,}",
        reason,
        head if tail else None,
        rule,
        method,
    ]


#: Percentiles of the "percentiles side by side" chart, by metric name.
_PERCENTILES = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


def _percentiles(e: EndpointResult) -> list[list[float | int | None]] | None:
    """``[[baseline p50, p95, p99, max], [candidate ...]]`` in ms (rounded), None when no latency metric."""
    metrics = [e.metric(name) for name in _PERCENTILES]
    if all(m is None for m in metrics):
        return None
    return [
        [None if m is None else rounded(m.baseline) for m in metrics],
        [None if m is None else rounded(m.candidate) for m in metrics],
    ]


def _load_curve(knee: SaturationKnee | None) -> list[list[Any]] | None:
    """``[[stage, load req/s, p95 ms | None, generator saturated], ...]`` of one side's stages."""
    if knee is None:
        return None
    return [[p.stage, rounded(p.load_rps), rounded(p.p95_ms), p.generator_saturated] for p in knee.points]


def _summary(e: EndpointResult) -> str:
    """The first reason's headline (up to its first ``;``) for an endpoint that did not pass; else empty."""
    if e.verdict is Verdict.PASS or not e.reasons:
        return ""
    return e.reasons[0].split(";", 1)[0]


def _endpoint_row(
    index: int,
    e: EndpointResult,
    alpha: float,
    strings: dict[str, dict[str, int]],
    knees: dict[str, dict[str, SaturationKnee]],
    charts: dict[str, Any] | None,
) -> dict[str, Any]:
    by_name = {m.metric: m for m in e.metrics}
    cells = [None if (m := by_name.get(spec.name)) is None else _cell(m, e, alpha, strings) for spec in METRICS]
    reasons = list(e.reasons)
    cell_reasons = {c[8]: i for i, c in enumerate(cells) if c is not None and c[8] is not None}
    sides = knees.get(e.endpoint.key, {})
    row: dict[str, Any] = {
        "i": index,
        "k": e.endpoint.key,
        "v": e.verdict.value,
        "n": [format_count(e.baseline_count), format_count(e.candidate_count)],
        "ns": [e.baseline_count, e.candidate_count],
        "sh": format_share(e.traffic_share),
        # a reason that is a metric's own reason is sent once, as that metric's index
        "r": [cell_reasons.get(r, r) for r in reasons],
        "m": cells,
    }
    if e.critical:
        row["crit"] = True
    if e.latency_basis:
        row["lb"] = e.latency_basis
    if summary := _summary(e):
        row["s"] = summary
    if (pct := _percentiles(e)) is not None:
        row["pct"] = pct
    if sides:
        row["load"] = [_load_curve(sides.get("baseline")), _load_curve(sides.get("candidate"))]
    if charts is not None:
        row["ch"] = charts
    return row


def _knee_text(k: SaturationKnee | None) -> str:
    if k is None:
        return MISSING
    if k.stage is None or k.load_rps is None:
        return "none found"
    return f"{k.load_rps:,.0f} req/s ({k.stage})"


def _knees_by_key(knees: tuple[SaturationKnee, ...]) -> dict[str, dict[str, SaturationKnee]]:
    by_key: dict[str, dict[str, SaturationKnee]] = {}
    for k in knees:
        by_key.setdefault(k.endpoint.key, {})[k.side] = k
    return by_key


def _knee_rows(knees: tuple[SaturationKnee, ...]) -> list[dict[str, Any]]:
    """One row per endpoint with a knee on either side (endpoints in first-seen order)."""
    rows = []
    for key, sides in _knees_by_key(knees).items():
        base, cand = sides.get("baseline"), sides.get("candidate")
        earlier = (
            cand is not None
            and cand.load_rps is not None
            and (base is None or base.load_rps is None or cand.load_rps < base.load_rps)
        )
        rows.append(
            {
                "key": key,
                "baseline": _knee_text(base),
                "candidate": _knee_text(cand),
                "css": "verdict-fail" if earlier else "",
                "reasons": [f"{side}: {k.reason}" for side, k in sides.items()],
            }
        )
    return rows


def _bottleneck_row(b: Bottleneck) -> dict[str, Any]:
    return {
        "rank": b.rank,
        "key": b.endpoint.key,
        "verdict": _verdict(b.verdict),
        "extra_time": format_extra_time(b.extra_ms_per_min) if b.extra_ms_per_min > 0 else "—",
        "extra_errors": format_extra_errors(b.extra_errors_per_min) if b.extra_errors_per_min > 0 else "—",
        "baseline_rpm": f"{b.baseline_rpm:,.1f} req/min",
        "avg_ratio": format_ratio(b.avg_ratio),
        "p95_ratio": format_ratio(b.p95_ratio),
        "failed_metrics": ", ".join(METRIC_LABELS.get(n, n) for n in b.failed_metrics) or "—",
    }


def _generator_text(g: GeneratorInfo | None) -> str | None:
    """One line on the load generator's health: processes, peak CPU, saturation, late and dropped sends."""
    if g is None:
        return None
    cpu = "CPU not sampled" if g.peak_cpu_percent is None else f"peak CPU {g.peak_cpu_percent:.0f}%"
    parts = [f"{g.processes} process{'es' if g.processes != 1 else ''}", cpu]
    if g.saturated_share is not None:
        parts.append(f"saturated (> {g.saturation_percent:g}%) in {g.saturated_share:.0%} of intervals")
    parts.append(f"{g.late_sends:,} of {g.sent:,} sends late")
    if g.dropped:
        parts.append(f"{g.dropped:,} dropped over the rate cap")
    text = ", ".join(parts)
    return f"{text} — latency not judged" if g.blamed_generator else text


def _generator_rows(result: ParityResult) -> list[dict[str, Any]]:
    """Overview lines on each side's load generator (sides that had one of ours)."""
    rows = []
    for title, side in (("Baseline", result.baseline), ("Candidate", result.candidate)):
        g = side.generator
        if g is None:
            continue
        saturated = g.blamed_generator or (g.saturated_share is not None and g.saturated_share > 0)
        rows.append(
            {
                "side": title,
                "text": _generator_text(g) or "",
                "css": "verdict-fail" if g.blamed_generator else ("verdict-marginal" if saturated else "verdict-pass"),
                "health": "saturated" if g.blamed_generator else ("strained" if saturated else "healthy"),
            }
        )
    return rows


def _side(title: str, s: SideInfo) -> dict[str, Any]:
    rows = [
        ("File", s.name),
        ("Source", s.source_kind),
        ("Description", s.description),
        ("Service", s.service),
        ("Environment", s.env),
        ("Target", s.target),
        ("Window", f"{format_time(s.window_start)} – {format_time(s.window_end)}"),
        ("Duration", format_duration(s.duration_s)),
        ("Requests", format_count(s.requests)),
        ("Errors", format_count(s.errors)),
        ("Endpoints", format_count(s.endpoints)),
        ("Latency kind", s.latency_kind),
        ("Rate scale", f"{s.rate_scale:g}"),
        ("Pair id", s.pair_id),
        ("Load generator", _generator_text(s.generator)),
    ]
    return {"title": title, "rows": [{"label": k, "value": _text(v)} for k, v in rows]}


def _title(result: ParityResult) -> str:
    service = result.candidate.service or result.baseline.service
    return f"Performance parity: {service}" if service else "Performance parity"


def _statistics_text(result: ParityResult) -> str:
    return (
        f"run-level false-alarm rate α = {result.alpha * 100:g}%, Holm-adjusted over {result.tests:,} test(s); "
        "a metric fails only when its change is significant and beyond its tolerance"
    )


def build_context(
    result: ParityResult, meta: RunMeta, charts: Sequence[dict[str, Any] | None] | None = None
) -> dict[str, Any]:
    """The HTML report's view-model: nested dicts, lists and pre-formatted strings only (numbers only where
    the page charts or sorts them).

    The overview (banner, counts, generators, top :data:`TOP_BOTTLENECKS` bottlenecks in rank order, knees,
    metadata) is rendered by the template. The endpoint table is in ``data`` (JSON for the page's script,
    which builds the rows, sorts, filters and draws charts): ``data["rows"]`` keeps the result's order (worst
    first), one dict per endpoint with short keys — ``i`` position, ``k`` endpoint, ``v`` verdict, ``crit``
    critical, ``n`` formatted counts (baseline, candidate), ``ns`` raw counts (for sorting), ``sh`` traffic
    share, ``lb`` latency basis, ``s`` headline of the first reason, ``r`` reasons (an int is the index of the
    metric whose reason it is), ``m`` one cell per :data:`~parity.judge.policy.METRICS` entry (None: not
    reported) as ``[baseline, candidate, ratio, delta, verdict, change, sort key (larger = worse; None:
    unknown), samples, the judge's reason (None unless it is one of the endpoint's reasons or the metric was
    not judged), the statistics in plain words as a head (None: not judged) and the index of its tail in
    ``data["rules"]`` (see :func:`explain_parts`), the test's index in ``data["methods"]``]``, ``pct``
    p50/p95/p99/max ms per side, ``load`` the latency-vs-load points per side (staged runs), ``ch`` the
    chart series of :func:`parity.report.charts.chart_data` (only when ``charts`` is given).
    """
    counts = result.counts()
    strings: dict[str, dict[str, int]] = {"methods": {}, "rules": {}}
    knees = _knees_by_key(result.knees)
    rows = [
        _endpoint_row(i, e, result.alpha, strings, knees, None if charts is None else charts[i - 1])
        for i, e in enumerate(result.endpoints, start=1)
    ]
    verdicts = {v.value: {**_verdict(v), "severity": v.severity} for v in VERDICT_ORDER}
    return {
        "title": _title(result),
        "subtitle": f"{result.baseline.name} (baseline) → {result.candidate.name} (candidate)",
        "verdict": {**_verdict(result.verdict), "reasons": list(result.reasons)},
        "mode": {
            "value": result.mode.value,
            "label": mode_label(result.mode),
            "explanation": _MODE_EXPLANATIONS[result.mode],
        },
        "counts": [{**_verdict(v), "count": counts[v]} for v in VERDICT_ORDER],
        "total_endpoints": len(result.endpoints),
        "notes": list(result.notes),
        "statistics": _statistics_text(result),
        "generators": _generator_rows(result),
        "metric_columns": [{"name": m.name, "label": METRIC_LABELS[m.name], "unit": m.unit} for m in METRICS],
        "bottlenecks": [_bottleneck_row(b) for b in result.bottlenecks[:TOP_BOTTLENECKS]],
        "more_bottlenecks": max(len(result.bottlenecks) - TOP_BOTTLENECKS, 0),
        "knees": _knee_rows(result.knees),
        "sides": [_side("Baseline", result.baseline), _side("Candidate", result.candidate)],
        "run": [
            {"label": "Harness version", "value": _text(meta.harness_version)},
            {"label": "Commit", "value": _text(meta.commit)},
            {"label": "Generated at", "value": format_time(meta.generated_at)},
            {"label": "Config", "value": _text(meta.config)},
            {"label": "Command", "value": _text(meta.command)},
            {"label": "Statistics", "value": _statistics_text(result)},
        ],
        "footer": f"parity {meta.harness_version} · generated {format_time(meta.generated_at)}",
        "data": {
            "columns": [{"name": m.name, "label": METRIC_LABELS[m.name], "unit": m.unit} for m in METRICS],
            "verdicts": verdicts,
            "methods": list(strings["methods"]),
            "rules": list(strings["rules"]),
            "grid": list(CDF_GRID),
            "charts": charts is not None,
            "rows": rows,
        },
    }

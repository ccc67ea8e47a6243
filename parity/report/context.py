"""``build_context(result, meta)``: the view-model the HTML report renders. Pure: no I/O.

Like Locust's ``html.py``, every figure is formatted here; the template only loops and prints strings.
Numbers use :func:`parity.judge.compare.format_value`; ratios read ``x1.23``; deltas are signed in the
metric's unit (``+12.3 ms``, ``-0.20 req/s``), error-rate deltas in percentage points (``+0.40 pp``).
A missing figure prints as ``n/a`` (never as zero). Verdicts carry a CSS class derived from the
:class:`~parity.judge.result.Verdict` value (``verdict-fail``…); colours live in the template's CSS.

The formatting helpers are shared with :mod:`parity.report.ci` so every renderer prints the same figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from parity.judge.compare import format_value
from parity.judge.policy import METRICS
from parity.judge.result import (
    Bottleneck,
    ComparisonMode,
    Direction,
    EndpointResult,
    GeneratorInfo,
    MetricResult,
    ParityResult,
    SaturationKnee,
    SideInfo,
    Verdict,
)

__all__ = [
    "METRIC_LABELS",
    "MISSING",
    "VERDICT_ORDER",
    "RunMeta",
    "build_context",
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


# --- view-model ------------------------------------------------------------------------------------


def _verdict(verdict: Verdict) -> dict[str, Any]:
    return {"value": verdict.value, "label": verdict_label(verdict), "css": verdict_css(verdict)}


def _sort_value(m: MetricResult) -> str:
    """Sort key of a metric cell, larger = worse: the ratio (inverted for higher-is-better metrics), the
    delta for error rates (their baseline is often 0); empty when unknown."""
    if m.unit == "ratio":
        value = _finite(m.delta)
    elif m.ratio is None or not math.isfinite(m.ratio) or m.ratio <= 0:
        value = None
    else:
        value = m.ratio if m.direction is Direction.LOWER_IS_BETTER else 1 / m.ratio
    return "" if value is None else repr(value)


def _metric_cell(m: MetricResult) -> dict[str, Any]:
    return {
        "name": m.metric,
        "label": METRIC_LABELS.get(m.metric, m.metric),
        "baseline": format_value(_finite(m.baseline), m.unit),
        "candidate": format_value(_finite(m.candidate), m.unit),
        "ratio": format_ratio(m.ratio),
        "delta": format_delta(m.delta, m.unit),
        "verdict": _verdict(m.verdict),
        "change": m.change.value,
        "css": f"{verdict_css(m.verdict)} change-{m.change.value}",
        "reason": m.reason,
        "samples": f"{m.samples[0]:,} / {m.samples[1]:,} samples",
    }


def _endpoint_row(index: int, e: EndpointResult) -> dict[str, Any]:
    by_name = {m.metric: m for m in e.metrics}
    cells = []
    sort: dict[str, str] = {
        "order": str(index),
        "endpoint": e.endpoint.key,
        "verdict": str(e.verdict.severity),
        "baseline-count": "" if e.baseline_count is None else str(e.baseline_count),
        "candidate-count": "" if e.candidate_count is None else str(e.candidate_count),
    }
    for spec in METRICS:
        m = by_name.get(spec.name)
        if m is None:
            cells.append({"name": spec.name, "missing": True})
            sort[spec.name] = ""
        else:
            cells.append({**_metric_cell(m), "missing": False})
            sort[spec.name] = _sort_value(m)
    return {
        "index": index,
        "key": e.endpoint.key,
        "verdict": _verdict(e.verdict),
        "reasons": list(e.reasons),
        "checks": [_check(m) for m in e.metrics],
        "critical": e.critical,
        "latency_basis": e.latency_basis,
        "open": e.verdict is not Verdict.PASS,
        "baseline_count": format_count(e.baseline_count),
        "candidate_count": format_count(e.candidate_count),
        "traffic_share": format_share(e.traffic_share),
        "metrics": cells,
        "sort": sort,
    }


def _check(m: MetricResult) -> str:
    """A metric's reason, followed by the method behind it when a test (or a figure comparison) was made."""
    if m.statistics is None:
        return m.reason
    return f"{m.reason} [{m.statistics.method}]"


def _knee_text(k: SaturationKnee | None) -> str:
    if k is None:
        return MISSING
    if k.stage is None or k.load_rps is None:
        return "none found"
    return f"{k.load_rps:,.0f} req/s ({k.stage})"


def _knee_rows(knees: tuple[SaturationKnee, ...]) -> list[dict[str, Any]]:
    """One row per endpoint with a knee on either side (endpoints in first-seen order)."""
    by_key: dict[str, dict[str, SaturationKnee]] = {}
    for k in knees:
        by_key.setdefault(k.endpoint.key, {})[k.side] = k
    rows = []
    for key, sides in by_key.items():
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


def build_context(result: ParityResult, meta: RunMeta) -> dict[str, Any]:
    """The HTML report's view-model: nested dicts, lists and pre-formatted strings only.

    Endpoints keep the result's order (worst first); bottlenecks keep their rank order. Each endpoint row
    carries ``sort`` attributes (strings; numeric ones parse as floats, larger = worse, empty = unknown)
    for the page's optional column sorting.
    """
    counts = result.counts()
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
        "metric_columns": [{"name": m.name, "label": METRIC_LABELS[m.name], "unit": m.unit} for m in METRICS],
        "endpoints": [_endpoint_row(i, e) for i, e in enumerate(result.endpoints, start=1)],
        "bottlenecks": [_bottleneck_row(b) for b in result.bottlenecks],
        "knees": _knee_rows(result.knees),
        "sides": [_side("Baseline", result.baseline), _side("Candidate", result.candidate)],
        "run": [
            {"label": "Harness version", "value": _text(meta.harness_version)},
            {"label": "Commit", "value": _text(meta.commit)},
            {"label": "Generated at", "value": format_time(meta.generated_at)},
            {"label": "Config", "value": _text(meta.config)},
            {"label": "Command", "value": _text(meta.command)},
        ],
        "footer": f"parity {meta.harness_version} · generated {format_time(meta.generated_at)}",
    }

"""Rank regressed endpoints by what they cost at baseline traffic. Pure: no I/O.

Impact = (candidate avg − baseline avg) ms × baseline requests per minute = extra server time per minute
(ms/min) the regression would add in production; it counts only when a latency metric got worse beyond
tolerance, so noise on an endpoint that regressed on errors alone does not rank it. Failed endpoints
rank before marginal ones; within each, by extra time, then by extra errors per minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from parity.judge.result import Bottleneck, Change, EndpointResult, Verdict
from parity.model import Measurement

__all__ = ["rank_bottlenecks"]


_LATENCY = ("avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def _worse(result: EndpointResult, metrics: tuple[str, ...]) -> bool:
    return any(m.metric in metrics and m.change is Change.WORSE for m in result.metrics)


def _positive_delta(result: EndpointResult, metric: str) -> float:
    m = result.metric(metric)
    return max(m.delta, 0.0) if m is not None and m.delta is not None else 0.0


def rank_bottlenecks(results: Sequence[EndpointResult], baseline: Measurement) -> tuple[Bottleneck, ...]:
    """Regressed (fail or marginal) endpoints, most costly first; ranks start at 1."""
    per_minute = 60.0 / baseline.window.duration_s / baseline.rate_scale
    found = []
    for r in results:
        if r.verdict not in (Verdict.FAIL, Verdict.MARGINAL) or r.baseline_count is None:
            continue
        rpm = r.baseline_count * per_minute
        avg, p95 = r.metric("avg_ms"), r.metric("p95_ms")
        found.append(
            Bottleneck(
                rank=0,
                endpoint=r.endpoint,
                verdict=r.verdict,
                extra_ms_per_min=_positive_delta(r, "avg_ms") * rpm if _worse(r, _LATENCY) else 0.0,
                extra_errors_per_min=_positive_delta(r, "error_rate") * rpm if _worse(r, ("error_rate",)) else 0.0,
                baseline_rpm=rpm,
                avg_ratio=None if avg is None else avg.ratio,
                p95_ratio=None if p95 is None else p95.ratio,
                failed_metrics=tuple(m.metric for m in r.metrics if m.verdict in (Verdict.FAIL, Verdict.MARGINAL)),
            )
        )
    found.sort(key=lambda b: (-b.verdict.severity, -b.extra_ms_per_min, -b.extra_errors_per_min, b.endpoint.key))
    return tuple(replace(b, rank=i) for i, b in enumerate(found, start=1))

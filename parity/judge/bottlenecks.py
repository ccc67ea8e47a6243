"""Bottlenecks: which regressed endpoints cost the most, and at what load each endpoint saturates. Pure: no I/O.

Impact = (candidate avg − baseline avg) ms × baseline requests per minute = extra server time per minute
(ms/min) the regression would add in production; it counts only when a latency metric got worse beyond
tolerance, so noise on an endpoint that regressed on errors alone does not rank it. Failed endpoints
rank before marginal ones; within each, by extra time, then by extra errors per minute.

Saturation knee (staged replays: ramp steps, bursts): per endpoint and side, the p95 of each stage
against the stage's planned load. The knee is the first stage, in order of load, whose p95 is above the
SLO (``slo_p95_ms``, when configured) or grew faster than linearly with load: above the straight line
through the two stages before it by more than ``KNEE_GROWTH`` and ``KNEE_MIN_DELTA_MS``. Stages where
the load generator was saturated or lagged behind its schedule are not judged (its own delay is not the
target's), nor stages where the endpoint has fewer than ``KNEE_MIN_SAMPLES`` requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from parity.judge.policy import LatencyBasis, Policy
from parity.judge.result import Bottleneck, Change, EndpointResult, SaturationKnee, StagePoint, Verdict
from parity.model import EndpointStats, LoadStage, Measurement

__all__ = ["KNEE_GROWTH", "KNEE_MIN_DELTA_MS", "KNEE_MIN_SAMPLES", "rank_bottlenecks", "saturation_knees"]

#: Relative growth of p95 above the linear trend of the two stages before that marks a knee.
KNEE_GROWTH = 0.20
#: ... and the absolute growth (ms) it must also exceed, so that a 2 ms endpoint's jitter is not a knee.
KNEE_MIN_DELTA_MS = 5.0
#: Requests an endpoint needs in a stage for its p95 to count (5 beyond the p95 at 100).
KNEE_MIN_SAMPLES = 100

_LATENCY = ("shift", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")


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
                avg_ratio=None if avg is None or not avg.comparable else avg.ratio,
                p95_ratio=None if p95 is None or not p95.comparable else p95.ratio,
                failed_metrics=tuple(m.metric for m in r.metrics if m.verdict in (Verdict.FAIL, Verdict.MARGINAL)),
            )
        )
    found.sort(key=lambda b: (-b.verdict.severity, -b.extra_ms_per_min, -b.extra_errors_per_min, b.endpoint.key))
    return tuple(replace(b, rank=i) for i, b in enumerate(found, start=1))


def _stage_point(stage: LoadStage, stats: EndpointStats, m: Measurement, policy: Policy) -> StagePoint:
    """One endpoint's figures in ``stage``."""
    latency = stats.latency
    if stats.intended is not None and policy.latency is not LatencyBasis.MEASURED:
        latency = stats.intended
    enough = latency is not None and stats.count >= KNEE_MIN_SAMPLES
    g, limit = m.generator, policy.max_generator_saturated_share
    share = None if g is None else g.saturated_share(stage.start_s, stage.end_s)
    lagged = None if g is None else g.lagged_share(policy.max_generator_lag_ms, stage.start_s, stage.end_s)
    return StagePoint(
        stage=stage.name,
        load_rps=stage.target_rps,
        endpoint_rps=stats.count / stage.duration_s,
        samples=stats.count,
        p95_ms=latency.quantile(0.95) if enough and latency is not None else None,
        generator_saturated=(share is not None and share > limit) or (lagged is not None and lagged > limit),
    )


def _knee(points: Sequence[StagePoint], slo_ms: float | None) -> tuple[StagePoint | None, str]:
    """The first saturated point of ``points`` (in order of load) and why; or None and why not."""
    judged: list[StagePoint] = []
    for point in points:
        if point.generator_saturated:
            where = f"from stage {point.stage!r} ({point.load_rps:.0f} req/s)"
            why = f"load generator saturated or lagging {where}: not judged beyond"
            return None, why if judged else f"{why}; no stage could be judged"
        if point.p95_ms is None:
            continue
        if slo_ms is not None and point.p95_ms > slo_ms:
            return point, f"p95 {point.p95_ms:.1f} ms above the SLO of {slo_ms:g} ms at {point.load_rps:.0f} req/s"
        if len(judged) >= 2:
            a, b = judged[-2], judged[-1]
            assert a.p95_ms is not None
            assert b.p95_ms is not None
            slope = max((b.p95_ms - a.p95_ms) / (b.load_rps - a.load_rps), 0.0) if b.load_rps > a.load_rps else 0.0
            expected = b.p95_ms + slope * (point.load_rps - b.load_rps)
            excess = point.p95_ms - expected
            if excess > KNEE_MIN_DELTA_MS and excess > KNEE_GROWTH * expected:
                return point, (
                    f"p95 grew faster than linearly with load: {point.p95_ms:.1f} ms at {point.load_rps:.0f} req/s, "
                    f"{expected:.1f} ms expected from the stages before"
                )
        judged.append(point)
    if len(judged) < 3 and slo_ms is None:
        return None, f"{len(judged)} stage(s) with enough requests ({KNEE_MIN_SAMPLES}): 3 needed to see the trend"
    if not judged:
        return None, f"no stage with enough requests ({KNEE_MIN_SAMPLES}) to judge"
    top = judged[-1]
    return None, f"no knee up to {top.load_rps:.0f} req/s (p95 {top.p95_ms:.1f} ms)"


def saturation_knees(m: Measurement, side: str, policy: Policy) -> tuple[SaturationKnee, ...]:
    """Per endpoint of a staged replay ``m`` (two stages or more), its knee on ``side``; () otherwise."""
    if len(m.stages) < 2:
        return ()
    order = sorted(m.stages, key=lambda s: (s.target_rps, s.start_s))
    by_stage = [(stage, {e.endpoint.key: e for e in stage.endpoints}) for stage in order]
    out = []
    for stats in m.endpoints:
        key = stats.endpoint.key
        points = tuple(_stage_point(stage, found[key], m, policy) for stage, found in by_stage if key in found)
        if not points:
            continue
        knee, reason = _knee(points, policy.for_endpoint(stats.endpoint.key).slo_p95_ms)
        out.append(
            SaturationKnee(
                endpoint=stats.endpoint,
                side=side,
                stage=None if knee is None else knee.stage,
                load_rps=None if knee is None else knee.load_rps,
                reason=reason,
                points=points,
            )
        )
    return tuple(out)

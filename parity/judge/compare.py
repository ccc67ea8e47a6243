"""``compare(baseline, candidate, policy) -> ParityResult``: the tolerance judge. Pure: no I/O.

Per endpoint and metric the candidate is judged against the baseline with the policy's rule (direction,
relative tolerance, absolute floor, minimum samples — see ``parity.judge.policy``). An endpoint fails
when any metric fails; it passes only when at least one latency metric was judged and nothing failed;
otherwise it is inconclusive. The run fails when any endpoint fails, and is inconclusive when nothing
could be judged or when unjudged endpoints carry more than ``max_inconclusive_share`` of baseline traffic.

Generator health: when a replay's load generator was CPU-saturated in more than
``max_generator_saturated_share`` of its sampled intervals, its own queueing inflates the latency it
measured, so no latency metric is judged (they become inconclusive with that reason; errors and
throughput are still judged) — the harness never blames the target for the generator's load.

This judge applies practical tolerances only; it makes no significance test.
"""

from __future__ import annotations

import math
from dataclasses import replace

from parity.judge.bottlenecks import rank_bottlenecks
from parity.judge.policy import METRICS, Gate, LatencyBasis, MetricRule, MetricSpec, Policy
from parity.judge.result import (
    Change,
    ComparisonMode,
    Direction,
    EndpointResult,
    GeneratorInfo,
    MetricResult,
    ParityResult,
    SideInfo,
    Verdict,
)
from parity.model import Endpoint, EndpointStats, LatencyDistribution, LatencyKind, Measurement

__all__ = ["compare", "format_value", "generator_info", "judge_metric", "side_info"]

_LATENCY_METRICS = frozenset(m.name for m in METRICS if m.unit == "ms")
#: ``latency_basis`` of endpoints judged on latency from the planned send time.
INTENDED = "intended"


def format_value(value: float | None, unit: str) -> str:
    """Human form of a metric value: ``12.3 ms``, ``0.52%``, ``4.10 req/s``; ``n/a`` when missing."""
    if value is None:
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "req/s":
        return f"{value:.2f} req/s"
    return f"{value:.1f} {unit}"


def _latency_basis(base: EndpointStats, cand: EndpointStats, b: Measurement, c: Measurement, p: Policy) -> str:
    """``intended`` when the policy and both sides allow it, else the measured kinds (``server/service-time``)."""
    both_intended = base.intended is not None and cand.intended is not None
    if p.latency is LatencyBasis.INTENDED or (p.latency is LatencyBasis.AUTO and both_intended):
        return INTENDED
    kinds = (b.latency_kind.value, c.latency_kind.value)
    return kinds[0] if kinds[0] == kinds[1] else "/".join(kinds)


def _metric_value(spec: MetricSpec, stats: EndpointStats, m: Measurement, basis: str) -> tuple[float | None, int]:
    """(value, samples) of ``spec`` for one side; value None when the side does not know it."""
    if spec.name == "error_rate":
        return stats.error_rate, stats.count
    if spec.name == "rps":
        return stats.count / m.window.duration_s / m.rate_scale, stats.count
    latency = stats.intended if basis == INTENDED else stats.latency
    if latency is None:
        return None, 0
    samples = latency.samples if isinstance(latency, LatencyDistribution) else stats.count
    if spec.name == "avg_ms":
        value = latency.mean
    elif spec.quantile == 1.0:
        value = latency.maximum
    else:
        assert spec.quantile is not None
        value = latency.quantile(spec.quantile)
    return value, samples


def judge_metric(
    spec: MetricSpec,
    rule: MetricRule,
    baseline: float | None,
    candidate: float | None,
    samples: tuple[int, int],
) -> MetricResult:
    """Judge one metric: worse beyond both gates → fail (or marginal for a ``warn`` gate)."""
    both = baseline is not None and candidate is not None
    delta = candidate - baseline if both else None  # type: ignore[operator]
    ratio = candidate / baseline if both and baseline else None  # type: ignore[operator]

    def result(verdict: Verdict, change: Change, reason: str) -> MetricResult:
        return MetricResult(
            metric=spec.name,
            unit=spec.unit,
            direction=spec.direction,
            baseline=baseline,
            candidate=candidate,
            ratio=ratio,
            delta=delta,
            change=change,
            verdict=verdict,
            reason=reason,
            tolerance=rule.tolerance,
            min_delta=rule.min_delta,
            min_samples=rule.min_samples,
            samples=samples,
        )

    label = spec.label or spec.name
    if baseline is None or candidate is None:
        side = "baseline" if baseline is None else "candidate"
        return result(Verdict.INCONCLUSIVE, Change.UNKNOWN, f"{label}: not known on the {side} side")
    if min(samples) < rule.min_samples:
        return result(
            Verdict.INCONCLUSIVE,
            Change.UNKNOWN,
            f"{label}: not judged, {min(samples)} samples < {rule.min_samples} needed on each side",
        )
    assert delta is not None
    worse_by = delta if spec.direction is Direction.LOWER_IS_BETTER else -delta
    relative = worse_by / baseline if baseline else math.copysign(math.inf, worse_by) if worse_by else 0.0
    figures = f"{format_value(candidate, spec.unit)} vs {format_value(baseline, spec.unit)}"
    if ratio is not None:
        figures += f" (x{ratio:.2f})"
    bounds = f"+{rule.tolerance:.0%} and {format_value(rule.min_delta, spec.unit)}"
    if worse_by > rule.min_delta and relative > rule.tolerance:
        change, reason = Change.WORSE, f"{label} worse: {figures}, beyond {bounds}"
        verdict = Verdict.FAIL if rule.gate is Gate.FAIL else Verdict.MARGINAL
    elif -worse_by > rule.min_delta and -relative > rule.tolerance:
        change, verdict, reason = Change.BETTER, Verdict.PASS, f"{label} better: {figures}"
    else:
        change, verdict, reason = Change.SAME, Verdict.PASS, f"{label} within {bounds}: {figures}"
    if rule.gate is Gate.OFF:
        verdict, reason = Verdict.INCONCLUSIVE, f"{reason}; reported only (gate off)"
    return result(verdict, change, reason)


def _judge_endpoint(
    endpoint: Endpoint,
    base: EndpointStats | None,
    cand: EndpointStats | None,
    baseline: Measurement,
    candidate: Measurement,
    policy: Policy,
    share: float | None,
    saturated: tuple[str, ...] = (),
) -> EndpointResult:
    """``saturated``: reasons why latency cannot be judged (a side's load generator was saturated)."""
    basis = "" if base is None or cand is None else _latency_basis(base, cand, baseline, candidate, policy)

    def result(verdict: Verdict, reasons: list[str], metrics: tuple[MetricResult, ...] = ()) -> EndpointResult:
        return EndpointResult(
            endpoint=endpoint,
            verdict=verdict,
            reasons=tuple(reasons),
            metrics=metrics,
            baseline_count=None if base is None else base.count,
            candidate_count=None if cand is None else cand.count,
            traffic_share=share,
            latency_basis=basis,
        )

    if base is None:
        return result(Verdict.INCONCLUSIVE, ["not in the baseline: nothing to compare against"])
    if cand is None:
        return result(Verdict.INCONCLUSIVE, ["no candidate requests: endpoint was not replayed or not recorded"])
    metrics = []
    for spec in METRICS:
        b_value, b_n = _metric_value(spec, base, baseline, basis)
        c_value, c_n = _metric_value(spec, cand, candidate, basis)
        judged_metric = judge_metric(spec, policy.rule(spec.name), b_value, c_value, (b_n, c_n))
        if saturated and spec.name in _LATENCY_METRICS and judged_metric.verdict is not Verdict.INCONCLUSIVE:
            judged_metric = replace(
                judged_metric,
                verdict=Verdict.INCONCLUSIVE,
                reason=f"{judged_metric.reason}; not judged: {'; '.join(saturated)}",
            )
        metrics.append(judged_metric)
    judged = tuple(metrics)
    if min(base.count, cand.count) < policy.min_samples:
        return result(
            Verdict.INCONCLUSIVE,
            [
                f"too few requests: {base.count} baseline, {cand.count} candidate "
                f"({policy.min_samples} needed on each side)"
            ],
            judged,
        )
    gated = [m for m in judged if policy.rule(m.metric).gate is not Gate.OFF]
    failed = [m for m in gated if m.verdict is Verdict.FAIL]
    marginal = [m for m in gated if m.verdict is Verdict.MARGINAL]
    unjudged = [m.reason for m in gated if m.verdict is Verdict.INCONCLUSIVE]
    latency_judged = any(m.metric in _LATENCY_METRICS and m.verdict is not Verdict.INCONCLUSIVE for m in gated)
    if failed:
        return result(Verdict.FAIL, [m.reason for m in failed + marginal], judged)
    if marginal:
        return result(Verdict.MARGINAL, [m.reason for m in marginal] + unjudged, judged)
    if not latency_judged:
        why = [*saturated] if saturated else []
        return result(Verdict.INCONCLUSIVE, ["no latency metric could be judged", *why, *unjudged], judged)
    return result(Verdict.PASS, ["every judged metric within tolerance", *unjudged], judged)


def generator_info(m: Measurement, policy: Policy) -> GeneratorInfo | None:
    """How the side's load generator fared, and whether its saturation rules out judging latency."""
    g = m.generator
    if g is None:
        return None
    share = g.saturated_share()
    return GeneratorInfo(
        processes=g.processes,
        peak_cpu_percent=g.peak_cpu_percent,
        saturated_share=share,
        saturation_percent=g.saturation_percent,
        sent=g.sent,
        late_sends=g.late_sends,
        dropped=g.dropped,
        blamed_generator=share is not None and share > policy.max_generator_saturated_share,
    )


def _saturation_reason(side: str, info: GeneratorInfo | None) -> list[str]:
    if info is None or not info.blamed_generator:
        return []
    return [
        f"the {side}'s load generator was CPU-saturated (> {info.saturation_percent:g}%) in "
        f"{info.saturated_share or 0:.0%} of the run: its own queueing inflates latency "
        "(add generator processes or lower the rate)"
    ]


def side_info(m: Measurement, name: str, policy: Policy | None = None) -> SideInfo:
    """Provenance of one side for reports."""
    errors = [e.errors for e in m.endpoints]
    return SideInfo(
        name=name,
        source_kind=m.source.kind.value,
        description=m.source.description,
        service=m.source.service,
        env=m.source.env,
        target=m.source.target,
        window_start=m.window.start,
        window_end=m.window.end,
        duration_s=m.window.duration_s,
        requests=m.total_count,
        errors=None if any(e is None for e in errors) else sum(e for e in errors if e is not None),
        endpoints=len(m.endpoints),
        latency_kind=m.latency_kind.value,
        rate_scale=m.rate_scale,
        pair_id=m.pair_id,
        generator=generator_info(m, policy or Policy()),
    )


def _notes(baseline: Measurement, candidate: Measurement, mode: ComparisonMode) -> list[str]:
    notes = []
    if mode is ComparisonMode.BEFORE_AFTER:
        notes.append(
            "before/after comparison: the sides were measured at different times and loads, "
            "so differences may come from the load as well as the environment"
        )
    if baseline.latency_kind is not candidate.latency_kind:
        notes.append(
            f"latency kinds differ: baseline is {baseline.latency_kind.value}, candidate is "
            f"{candidate.latency_kind.value}"
            + (
                " (client-side times include the network)"
                if LatencyKind.SERVER in (baseline.latency_kind, candidate.latency_kind)
                else ""
            )
        )
    if baseline.rate_scale != candidate.rate_scale:
        notes.append(
            f"throughput compared per unit of offered load: baseline rate scale {baseline.rate_scale:g}, "
            f"candidate rate scale {candidate.rate_scale:g}"
        )
    return notes


def compare(
    baseline: Measurement,
    candidate: Measurement,
    policy: Policy | None = None,
    *,
    names: tuple[str, str] = ("baseline", "candidate"),
) -> ParityResult:
    """Judge ``candidate`` against ``baseline``; see the module docstring for the rules."""
    policy = policy or Policy()
    sides = (side_info(baseline, names[0], policy), side_info(candidate, names[1], policy))
    saturated = tuple(
        r
        for role, side in zip(("baseline", "candidate"), sides, strict=True)
        for r in _saturation_reason(role, side.generator)
    )
    base_by_key, cand_by_key = baseline.by_key(), candidate.by_key()
    total = baseline.total_count
    keys = list(base_by_key) + [k for k in cand_by_key if k not in base_by_key]
    results = []
    for key in keys:
        base, cand = base_by_key.get(key), cand_by_key.get(key)
        share = base.count / total if base is not None and total else None
        endpoint = (base or cand).endpoint  # type: ignore[union-attr]
        results.append(_judge_endpoint(endpoint, base, cand, baseline, candidate, policy, share, saturated))
    results.sort(key=lambda r: (-r.verdict.severity, -(r.traffic_share or 0.0), r.endpoint.key))

    mode = (
        ComparisonMode.CONCURRENT
        if baseline.pair_id is not None and baseline.pair_id == candidate.pair_id
        else ComparisonMode.BEFORE_AFTER
    )
    verdict, reasons = _run_verdict(results, policy)
    notes = [*_notes(baseline, candidate, mode), *(f"latency not judged: {s}" for s in saturated)]
    intended = sum(1 for r in results if r.latency_basis == INTENDED)
    if intended:
        notes.append(
            f"latency judged from each request's planned send time on {intended} endpoint(s) "
            "(open-model replays on both sides: includes time a request waited to be sent)"
        )
    return ParityResult(
        verdict=verdict,
        reasons=tuple(reasons),
        mode=mode,
        endpoints=tuple(results),
        bottlenecks=rank_bottlenecks(results, baseline),
        baseline=sides[0],
        candidate=sides[1],
        notes=tuple(notes),
    )


def _run_verdict(results: list[EndpointResult], policy: Policy) -> tuple[Verdict, list[str]]:
    by = {v: [r for r in results if r.verdict is v] for v in Verdict}
    unjudged_share = sum(r.traffic_share or 0.0 for r in by[Verdict.INCONCLUSIVE])
    if by[Verdict.FAIL]:
        names = ", ".join(r.endpoint.key for r in by[Verdict.FAIL][:5])
        more = len(by[Verdict.FAIL]) - 5
        return Verdict.FAIL, [
            f"{len(by[Verdict.FAIL])} endpoint(s) regressed: {names}" + (f" and {more} more" if more > 0 else "")
        ]
    if not by[Verdict.PASS] and not by[Verdict.MARGINAL]:
        return Verdict.INCONCLUSIVE, ["no endpoint had enough data to be judged"]
    if unjudged_share > policy.max_inconclusive_share:
        return Verdict.INCONCLUSIVE, [
            f"{unjudged_share:.1%} of baseline traffic is on endpoints that could not be judged "
            f"(more than the {policy.max_inconclusive_share:.0%} allowed)"
        ]
    judged = len(by[Verdict.PASS]) + len(by[Verdict.MARGINAL])
    if by[Verdict.MARGINAL]:
        return Verdict.MARGINAL, [f"{len(by[Verdict.MARGINAL])} endpoint(s) marginal, none regressed ({judged} judged)"]
    reasons = [f"all {judged} judged endpoint(s) within tolerance"]
    if by[Verdict.INCONCLUSIVE]:
        reasons.append(
            f"{len(by[Verdict.INCONCLUSIVE])} endpoint(s) not judged ({unjudged_share:.1%} of baseline traffic)"
        )
    return Verdict.PASS, reasons

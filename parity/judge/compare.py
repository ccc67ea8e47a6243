"""``compare(baseline, candidate, policy) -> ParityResult``: the statistical judge. Pure: no I/O.

Per endpoint and metric (``parity.judge.policy.METRICS``) the sides are compared with the tests of
``parity.judge.stats`` — sample-level when both sides carry distributions, against the figures when one
side only has an APM summary (before/after, labelled so) — and every p-value of the run is adjusted
together (Holm, at the policy's run-level ``alpha``). A metric is then judged by two gates, significant
*and* beyond its practical tolerance (relative and absolute) in its bad direction:

=======================================================  ==================================================
significant and beyond tolerance                         fail (marginal for a ``warn`` gate)
beyond tolerance, adjusted p ≤ ``marginal_alpha``        marginal: changed, not significant
beyond tolerance, adjusted p above that                  inconclusive: within noise, more requests needed
beyond tolerance, no test possible (summaries only)      fail, labelled untested (tolerance alone)
within tolerance, or better                              pass
a side missing, too few samples, generator saturated     inconclusive (never a pass; missing is never zero)
=======================================================  ==================================================

An endpoint fails when any gated metric fails, is marginal when any is marginal, is inconclusive when no
latency metric with a fail gate could be judged (pass or fail: a metric within noise is not judged), and
passes otherwise, listing the metrics it could not judge. The run fails when an endpoint fails
(only a *critical* one with ``fail_on = "critical"``: the others make it marginal); it is inconclusive
when nothing could be judged, when a critical endpoint could not be judged, or when unjudged endpoints
carry more than ``max_inconclusive_share`` of baseline traffic.

Generator health: when a replay's load generator was CPU-saturated in more than
``max_generator_saturated_share`` of its sampled intervals, its own queueing inflates the latency it
measured, so no latency metric is judged (they become inconclusive with that reason; errors and
throughput are still judged) — the harness never blames the target for the generator's load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from parity.judge import stats
from parity.judge.bottlenecks import rank_bottlenecks, saturation_knees
from parity.judge.policy import METRICS, EndpointPolicy, FailOn, Gate, LatencyBasis, MetricSpec, Policy
from parity.judge.result import (
    Change,
    ComparisonMode,
    EndpointResult,
    GeneratorInfo,
    MetricResult,
    ParityResult,
    SideInfo,
    Statistics,
    Verdict,
)
from parity.judge.stats import Decision, Evidence, Outcome, Status, Tolerance, format_value
from parity.model import Endpoint, EndpointStats, LatencyKind, Measurement

__all__ = ["compare", "format_value", "generator_info", "side_info"]

_LATENCY_METRICS = frozenset(m.name for m in METRICS if m.unit == "ms")
#: ``latency_basis`` of endpoints judged on latency from the planned send time.
INTENDED = "intended"


def _latency_basis(base: EndpointStats, cand: EndpointStats, b: Measurement, c: Measurement, p: Policy) -> str:
    """``intended`` when the policy and both sides allow it, else the measured kinds (``server/service-time``)."""
    both_intended = base.intended is not None and cand.intended is not None
    if p.latency is LatencyBasis.INTENDED or (p.latency is LatencyBasis.AUTO and both_intended):
        return INTENDED
    kinds = (b.latency_kind.value, c.latency_kind.value)
    return kinds[0] if kinds[0] == kinds[1] else "/".join(kinds)


def _evidence(
    base: EndpointStats, cand: EndpointStats, b: Measurement, c: Measurement, basis: str
) -> dict[str, Evidence]:
    """The comparison of every metric of one endpoint (``stats``), keyed by metric name."""
    intended = basis == INTENDED
    evidence = stats.latency_evidence(
        base.intended if intended else base.latency,
        cand.intended if intended else cand.latency,
        (base.count, cand.count),
    )
    evidence["error_rate"] = stats.error_rate_evidence(base.errors, base.count, cand.errors, cand.count)
    evidence["rps"] = stats.throughput_evidence(
        base.count, b.window.duration_s * b.rate_scale, cand.count, c.window.duration_s * c.rate_scale
    )
    return evidence


@dataclass(frozen=True)
class _Pending:
    """One endpoint between gathering its evidence and its verdict."""

    endpoint: Endpoint
    base: EndpointStats | None
    cand: EndpointStats | None
    share: float | None
    basis: str
    settings: EndpointPolicy
    evidence: Mapping[str, Evidence]

    def why_not_judged(self, spec: MetricSpec, saturated: Sequence[str], min_samples: int) -> str | None:
        """Why ``spec`` is left out of the run's tests (None: it is tested)."""
        assert self.base is not None
        assert self.cand is not None
        rule = self.settings.rule(spec.name)
        samples = self.evidence[spec.name].samples
        if min(self.base.count, self.cand.count) < min_samples:
            return f"too few requests ({min_samples} needed on each side)"
        if rule.gate is Gate.OFF:
            return "reported only (gate off)"
        if spec.name in _LATENCY_METRICS and saturated:
            return "; ".join(saturated)
        if min(samples) < rule.min_samples:
            return f"{min(samples)} samples < {rule.min_samples} needed on each side"
        return None


def _statistics(d: Decision) -> Statistics:
    e = d.evidence
    return Statistics(
        method=e.method,
        tested=e.status is Status.TESTED,
        estimate=e.estimate,
        estimate_kind=e.estimate_kind,
        interval=e.interval,
        confidence=e.confidence,
        p_value=e.p_value,
        adjusted_p=d.adjusted_p,
        alpha=d.alpha,
        family_size=d.family_size,
        details=tuple(sorted(e.details.items())),
    )


def _verdict(d: Decision, gate: Gate, policy: Policy) -> tuple[Verdict, Change, str]:
    """The metric's verdict from its two-gate outcome (table in the module docstring)."""
    worse = Verdict.FAIL if gate is Gate.FAIL else Verdict.MARGINAL
    match d.outcome:
        case Outcome.WORSE | Outcome.UNTESTED:
            return worse, Change.WORSE, d.reason
        case Outcome.NOT_SIGNIFICANT if d.adjusted_p is not None and d.adjusted_p <= policy.marginal_alpha:
            return Verdict.MARGINAL, Change.WORSE, d.reason
        case Outcome.NOT_SIGNIFICANT:
            return Verdict.INCONCLUSIVE, Change.WORSE, f"{d.reason}; within noise: more requests needed to tell"
        case Outcome.BETTER:
            return Verdict.PASS, Change.BETTER, d.reason
        case Outcome.SAME:
            return Verdict.PASS, Change.SAME, d.reason
    return Verdict.INCONCLUSIVE, Change.UNKNOWN, d.reason


def _metric_result(
    spec: MetricSpec, p: _Pending, d: Decision, policy: Policy, not_judged: str | None = None
) -> MetricResult:
    rule = p.settings.rule(spec.name)
    e = d.evidence
    if not_judged is None:
        verdict, change, reason = _verdict(d, rule.gate, policy)
    else:
        figures = f"{format_value(e.candidate, e.unit)} vs {format_value(e.baseline, e.unit)}"
        verdict, change, reason = (
            Verdict.INCONCLUSIVE,
            Change.UNKNOWN,
            f"{d.label}: not judged, {not_judged}: {figures}",
        )
    both = e.baseline is not None and e.candidate is not None
    return MetricResult(
        metric=spec.name,
        unit=spec.unit,
        direction=spec.direction,
        baseline=e.baseline,
        candidate=e.candidate,
        ratio=e.candidate / e.baseline if both and e.baseline else None,  # type: ignore[operator]
        delta=e.candidate - e.baseline if both else None,  # type: ignore[operator]
        change=change,
        verdict=verdict,
        reason=reason,
        tolerance=rule.tolerance,
        min_delta=rule.min_delta,
        min_samples=rule.min_samples,
        samples=e.samples,
        statistics=None if e.status is Status.INSUFFICIENT else _statistics(d),
    )


def _pending(
    base: EndpointStats | None,
    cand: EndpointStats | None,
    baseline: Measurement,
    candidate: Measurement,
    policy: Policy,
) -> _Pending:
    total = baseline.total_count
    share = base.count / total if base is not None and total else None
    endpoint = (base or cand).endpoint  # type: ignore[union-attr]
    both = base is not None and cand is not None
    basis = _latency_basis(base, cand, baseline, candidate, policy) if both else ""  # type: ignore[arg-type]
    evidence = _evidence(base, cand, baseline, candidate, basis) if both else {}  # type: ignore[arg-type]
    return _Pending(endpoint, base, cand, share, basis, policy.for_endpoint(endpoint.key), evidence)


def _judge_run(
    pending: Sequence[_Pending], policy: Policy, saturated: Sequence[str]
) -> tuple[list[EndpointResult], int]:
    """Every endpoint's result, the run's p-values adjusted together; also the number of tests adjusted."""
    items: list[tuple[str, Evidence, Tolerance]] = []
    slots: list[tuple[int, MetricSpec]] = []
    left_out: dict[tuple[int, str], str] = {}
    for i, p in enumerate(pending):
        if p.base is None or p.cand is None:
            continue
        for spec in METRICS:
            why = p.why_not_judged(spec, saturated, policy.min_samples)
            if why is not None:
                left_out[i, spec.name] = why
            rule = p.settings.rule(spec.name)
            items.append((spec.label or spec.name, p.evidence[spec.name], Tolerance(rule.tolerance, rule.min_delta)))
            slots.append((i, spec))
    family = [n for n, (i, spec) in enumerate(slots) if (i, spec.name) not in left_out]
    decided = stats.judge_family([items[n] for n in family], policy.alpha)
    tests = decided[0].family_size if decided else 0
    decisions: dict[int, Decision] = dict(zip(family, decided, strict=True))
    metrics: dict[int, list[MetricResult]] = {}
    for n, (i, spec) in enumerate(slots):
        label, evidence, tolerance = items[n]
        why = left_out.get((i, spec.name))
        d = decisions.get(n) or stats.decide(
            evidence, tolerance, None, label=label, alpha=policy.alpha, family_size=tests
        )
        metrics.setdefault(i, []).append(_metric_result(spec, pending[i], d, policy, why))
    results = [_endpoint_result(p, tuple(metrics.get(i, ())), policy, saturated) for i, p in enumerate(pending)]
    return results, tests


def _endpoint_result(
    p: _Pending, judged: tuple[MetricResult, ...], policy: Policy, saturated: Sequence[str]
) -> EndpointResult:
    def result(verdict: Verdict, reasons: Sequence[str]) -> EndpointResult:
        return EndpointResult(
            endpoint=p.endpoint,
            verdict=verdict,
            reasons=tuple(reasons),
            metrics=judged,
            baseline_count=None if p.base is None else p.base.count,
            candidate_count=None if p.cand is None else p.cand.count,
            traffic_share=p.share,
            latency_basis=p.basis,
            critical=p.settings.critical,
        )

    if p.base is None:
        return result(Verdict.INCONCLUSIVE, ["not in the baseline: nothing to compare against"])
    if p.cand is None:
        return result(Verdict.INCONCLUSIVE, ["no candidate requests: endpoint was not replayed or not recorded"])
    if min(p.base.count, p.cand.count) < policy.min_samples:
        return result(
            Verdict.INCONCLUSIVE,
            [
                f"too few requests: {p.base.count} baseline, {p.cand.count} candidate "
                f"({policy.min_samples} needed on each side)"
            ],
        )
    gated = [m for m in judged if p.settings.rule(m.metric).gate is not Gate.OFF]
    failed = [m for m in gated if m.verdict is Verdict.FAIL]
    marginal = [m for m in gated if m.verdict is Verdict.MARGINAL]
    unjudged = [m.reason for m in gated if m.verdict is Verdict.INCONCLUSIVE]
    decisive = [m for m in gated if p.settings.rule(m.metric).gate is Gate.FAIL]
    latency_judged = any(m.metric in _LATENCY_METRICS and m.verdict is not Verdict.INCONCLUSIVE for m in decisive)
    if failed:
        return result(Verdict.FAIL, [m.reason for m in failed + marginal])
    if marginal:
        return result(Verdict.MARGINAL, [m.reason for m in marginal] + unjudged)
    if not latency_judged:
        return result(Verdict.INCONCLUSIVE, ["no latency metric could be judged", *saturated, *unjudged])
    return result(Verdict.PASS, ["every judged metric within tolerance", *unjudged])


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


def _pattern_notes(policy: Policy, keys: Sequence[str]) -> tuple[list[str], list[str]]:
    """(notes, critical patterns) for ``[compare.endpoints]`` patterns that match no endpoint of either side."""
    notes, critical = [], []
    for entry in policy.endpoints:
        if any(entry.matches(k) for k in keys):
            continue
        notes.append(f"config: endpoint pattern {entry.pattern!r} matches no endpoint of either side")
        if entry.critical:
            critical.append(entry.pattern)
    return notes, critical


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
    keys = list(base_by_key) + [k for k in cand_by_key if k not in base_by_key]
    pending = [_pending(base_by_key.get(k), cand_by_key.get(k), baseline, candidate, policy) for k in keys]
    results, tests = _judge_run(pending, policy, saturated)
    results.sort(key=lambda r: (-r.verdict.severity, not r.critical, -(r.traffic_share or 0.0), r.endpoint.key))

    mode = (
        ComparisonMode.CONCURRENT
        if baseline.pair_id is not None and baseline.pair_id == candidate.pair_id
        else ComparisonMode.BEFORE_AFTER
    )
    pattern_notes, missing_critical = _pattern_notes(policy, [p.endpoint.key for p in pending])
    verdict, reasons = _run_verdict(results, policy, missing_critical)
    notes = [*_notes(baseline, candidate, mode), *(f"latency not judged: {s}" for s in saturated), *pattern_notes]
    intended = sum(1 for r in results if r.latency_basis == INTENDED)
    if intended:
        notes.append(
            f"latency judged from each request's planned send time on {intended} endpoint(s) "
            "(open-model replays on both sides: includes time a request waited to be sent)"
        )
    notes.append(
        f"significance: {tests} tests adjusted together (Holm) for a run-level false-alarm rate of "
        f"{policy.alpha:g}; a metric fails only when its change is significant and beyond its tolerance"
    )
    knees = saturation_knees(baseline, "baseline", policy) + saturation_knees(candidate, "candidate", policy)
    return ParityResult(
        verdict=verdict,
        reasons=tuple(reasons),
        mode=mode,
        endpoints=tuple(results),
        bottlenecks=rank_bottlenecks(results, baseline),
        baseline=sides[0],
        candidate=sides[1],
        notes=tuple(notes),
        knees=knees,
        alpha=policy.alpha,
        tests=tests,
    )


def _names(results: Sequence[EndpointResult], limit: int = 5) -> str:
    names = ", ".join(r.endpoint.key for r in results[:limit])
    more = len(results) - limit
    return names + (f" and {more} more" if more > 0 else "")


def _run_verdict(
    results: list[EndpointResult], policy: Policy, missing_critical: Sequence[str] = ()
) -> tuple[Verdict, list[str]]:
    by = {v: [r for r in results if r.verdict is v] for v in Verdict}
    failed = by[Verdict.FAIL]
    blocking = failed if policy.fail_on is FailOn.ANY else [r for r in failed if r.critical]
    if blocking:
        critical = sum(r.critical for r in blocking)
        which = f" ({critical} critical)" if critical else ""
        return Verdict.FAIL, [f"{len(blocking)} endpoint(s) regressed{which}: {_names(blocking)}"]
    unjudged_critical = [r for r in by[Verdict.INCONCLUSIVE] if r.critical]
    if unjudged_critical or missing_critical:
        reasons = (
            [f"critical endpoint(s) could not be judged: {_names(unjudged_critical)}"] if unjudged_critical else []
        )
        reasons += [f"critical endpoint pattern {p!r} matches no endpoint" for p in missing_critical]
        return Verdict.INCONCLUSIVE, reasons
    unjudged_share = sum(r.traffic_share or 0.0 for r in by[Verdict.INCONCLUSIVE])
    if not by[Verdict.PASS] and not by[Verdict.MARGINAL] and not failed:
        return Verdict.INCONCLUSIVE, ["no endpoint had enough data to be judged"]
    if unjudged_share > policy.max_inconclusive_share:
        return Verdict.INCONCLUSIVE, [
            f"{unjudged_share:.1%} of baseline traffic is on endpoints that could not be judged "
            f"(more than the {policy.max_inconclusive_share:.0%} allowed)"
        ]
    judged = len(by[Verdict.PASS]) + len(by[Verdict.MARGINAL]) + len(failed)
    if failed:
        return Verdict.MARGINAL, [
            f"{len(failed)} non-critical endpoint(s) regressed: {_names(failed)} (fail_on = critical)"
        ]
    if by[Verdict.MARGINAL]:
        return Verdict.MARGINAL, [f"{len(by[Verdict.MARGINAL])} endpoint(s) marginal, none regressed ({judged} judged)"]
    reasons = [f"all {judged} judged endpoint(s) within tolerance"]
    if by[Verdict.INCONCLUSIVE]:
        reasons.append(
            f"{len(by[Verdict.INCONCLUSIVE])} endpoint(s) not judged ({unjudged_share:.1%} of baseline traffic)"
        )
    return Verdict.PASS, reasons

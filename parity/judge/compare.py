"""``compare(baseline, candidate, policy) -> ParityResult``: the statistical judge. Pure: no I/O.

Per endpoint and metric (``parity.judge.policy.METRICS``) the sides are compared with the tests of
``parity.judge.stats`` — sample-level when both sides carry distributions, against the figures when one
side only has an APM summary (before/after, labelled so) — and every p-value of the run is adjusted
together (Holm, at the policy's run-level ``alpha``). A metric is then judged by two gates, significant
*and* beyond its practical tolerance (relative and absolute) in its bad direction:

=======================================================  ==================================================
significant and beyond tolerance                         fail (marginal for a ``warn`` gate), at any n
beyond tolerance, adjusted p ≤ ``marginal_alpha``        marginal: changed, not significant
beyond tolerance, adjusted p above that                  inconclusive: within noise, more requests needed
beyond tolerance, no test possible (summaries only)      fail, labelled untested (tolerance alone)
within tolerance, or better                              pass — with fewer than the metric's ``min_samples``
                                                         only when the interval shows it within tolerance
a side missing, too few samples, generator saturated     inconclusive (never a pass; missing is never zero)
=======================================================  ==================================================

No fixed sample-count cut-off keeps a clear regression from failing: the tests are exact or valid at small
n (the percentile interval is the exact order-statistic one when few requests lie beyond it), so ×8 on 165
requests fails. ``min_samples`` (per metric, and per endpoint) is what a *pass* needs: with fewer
requests an unchanged-looking metric is inconclusive, with ``needs`` saying how many requests would decide it.

**Like with like.** Latency is compared only between the same kind: server-side (APM, access log) with
server-side, client-side (a replay's service time or intended time, a Locust request log) with
client-side. When the kinds differ the latency metrics are *incomparable*: neither passed nor failed, the
run is inconclusive (unless errors fail it) and ``ParityResult.incomparable`` carries the commands that get a
comparable side. **Throughput** is gated only when both sides saw the same offered load (a concurrent A/B
pair, or records of the same reproduced traffic: see :func:`_throughput_note`); otherwise it is shown,
not judged — closed-loop sources (a user's locustfile) never gate it, since there throughput follows latency.
Oversampled endpoints (``EndpointStats.load_factor``) compare per unit of their own load.

An endpoint fails when any gated metric fails, is marginal when any is marginal, is inconclusive when its
latency is incomparable, when it has fewer than ``min_samples`` requests on a side, or when no latency
metric with a fail gate could be judged (pass or fail: a metric within noise is not judged), and passes
otherwise, listing the metrics it could not judge. The run fails when an endpoint fails (only a *critical*
one with ``fail_on = "critical"``: the others make it marginal); it is inconclusive when latency is
incomparable, when nothing could be judged, when a critical endpoint could not be judged, when an
endpoint that could not be judged *looks* worse beyond its tolerance (point estimates, read from
``stats.MIN_SAMPLES`` requests per side: no green on missing evidence), or when unjudged endpoints carry
more than ``max_inconclusive_share`` of baseline traffic.

**Partial sides are never green.** A side that holds only part of its run (``parity.judge.completeness``: a
replay stopped early, aborted by a safety rail, with a failed or lost worker, stopped by a signal, or that left
much of its schedule unsent) is listed in ``ParityResult.partial``, and the run verdict is capped: a pass or
marginal becomes inconclusive (nothing recorded shows what the rest of the run would have), while a fail stays a
fail — a significant regression beyond tolerance in what *was* recorded is real evidence, and hiding it behind
"inconclusive" would bury a true regression. The reasons then say so first. Endpoint verdicts stay those of the
recorded data. Throughput of a partial side is shown, not judged (its window covers only part of its schedule),
unless both sides are a concurrent A/B pair, which stopped together under the same offered load — and were sent
the same requests: a pair of replays whose sends differ (``completeness.unequal_sends``) is never gated on
throughput.

**Requests sent without their body are not parity.** An endpoint a replay sent without its request body (listed
in either side's ``LABEL_WITHOUT_BODY``: ``--allow-empty-bodies``) is inconclusive with that reason, whatever its
figures: a server answers an empty POST with a fast 4xx or a 5xx, so a pass there would be false and so would a
fail. Its metrics stay out of the run's tests and never "look worse"; its traffic counts as not judged.

Generator health: when a replay's load generator was CPU-saturated, or lagged more than
``max_generator_lag_ms`` behind its own schedule (its process not given the CPU by a loaded machine, however
little CPU it used itself), in more than ``max_generator_saturated_share`` of its sampled intervals, its own
delay inflates the latency it measured, so no latency metric is judged (they become inconclusive with that
reason, naming which; errors and throughput are still judged, so a fail on errors stays a fail) — the harness
never blames the target, nor clears it, on the generator's own delay. Lag is the event loop's own lateness,
not late sends: a send waiting for a free sender behind a slow target is the target's regression and is judged
(intended-time latency).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from parity.judge import stats
from parity.judge.bottlenecks import rank_bottlenecks, saturation_knees
from parity.judge.completeness import partial_reasons, unequal_sends, unequal_sides, without_body
from parity.judge.policy import METRICS, EndpointPolicy, FailOn, Gate, LatencyBasis, MetricSpec, Policy
from parity.judge.result import (
    Change,
    ComparisonMode,
    EndpointResult,
    GeneratorInfo,
    Incomparability,
    MetricResult,
    ParityResult,
    PartialSide,
    SideInfo,
    Statistics,
    Verdict,
)
from parity.judge.stats import Decision, Evidence, Outcome, Status, Tolerance, format_value
from parity.model import (
    LABEL_AGGREGATE,
    LABEL_REPLAY_OF,
    Endpoint,
    EndpointStats,
    LatencyKind,
    Measurement,
    SourceKind,
    fingerprint,
)

__all__ = ["compare", "describe_looks_worse", "format_value", "generator_info", "side_info"]

_LATENCY_METRICS = frozenset(m.name for m in METRICS if m.unit == "ms")
#: Why an endpoint as a whole cannot pass: fewer requests than the policy's ``min_samples`` on a side.
_FEW_REQUESTS = "too few requests to pass"
#: ``latency_basis`` of endpoints judged on latency from the planned send time.
INTENDED = "intended"
#: Why an endpoint a replay sent without its request body (``LABEL_WITHOUT_BODY``) is not judged.
_WITHOUT_BODY = (
    "replayed without its request body (--allow-empty-bodies): its requests are not the baseline's, so their "
    "figures are not parity — give it a body template with --bodies DIR"
)


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
        base.count,
        b.window.duration_s * b.rate_scale * base.load_factor,
        cand.count,
        c.window.duration_s * c.rate_scale * cand.load_factor,
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

    def left_out(self, spec: MetricSpec, run: _RunContext) -> _LeftOut | None:
        """Why ``spec`` is left out of the run's tests, and whether it still counts (None: it is tested)."""
        if self.endpoint.key in run.without_body:
            return _LeftOut(_WITHOUT_BODY, gated=False)
        rule = self.settings.rule(spec.name)
        if rule.gate is Gate.OFF:
            return _LeftOut("reported only (gate off)", gated=False)
        if spec.name in _LATENCY_METRICS and run.incomparable is not None:
            return _LeftOut(f"incomparable: {run.incomparable.reason}", gated=False, comparable=False)
        if spec.name == "rps" and run.throughput_note:
            return _LeftOut(run.throughput_note, gated=False, verb="shown, not judged")
        if spec.name in _LATENCY_METRICS and run.saturated:
            return _LeftOut("; ".join(run.saturated))
        return None

    def too_few(self, spec: MetricSpec, samples: tuple[int, int], policy: Policy) -> str | None:
        """Why the metric cannot *pass* on its point estimate (a significant regression fails at any n)."""
        assert self.base is not None
        assert self.cand is not None
        counts = min(self.base.count, self.cand.count)
        if counts < policy.min_samples:
            return f"{_FEW_REQUESTS}: {counts} < {policy.min_samples} on a side"
        need = self.settings.rule(spec.name).min_samples
        if min(samples) < need:
            return f"too few samples to pass: {min(samples)} < {need} on a side"
        return None


@dataclass(frozen=True)
class _LeftOut:
    """A metric kept out of the run's tests: why, whether it still counts towards the endpoint's verdict
    (``gated``: a saturated generator leaves latency unjudged but owed), whether the sides' kinds match, and
    the words for it (``verb``: throughput under unequal load is "shown, not judged")."""

    why: str
    gated: bool = True
    comparable: bool = True
    verb: str = "not judged"


@dataclass(frozen=True)
class _RunContext:
    """Run-wide facts that decide which metrics can be judged at all."""

    saturated: tuple[str, ...]
    incomparable: Incomparability | None
    throughput_note: str
    without_body: frozenset[str] = frozenset()  # endpoint keys a replay sent without their request body


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


def _verdict(d: Decision, gate: Gate, policy: Policy, too_few: str | None) -> tuple[Verdict, Change, str]:
    """The metric's verdict from its two-gate outcome (table in the module docstring). ``too_few``: why the
    metric cannot pass on its point estimate alone — it then passes only when its interval shows it within
    tolerance, while a significant regression beyond tolerance fails whatever the sample size."""
    worse = Verdict.FAIL if gate is Gate.FAIL else Verdict.MARGINAL
    match d.outcome:
        case Outcome.WORSE:
            decided = f" (decided with {min(d.evidence.samples)} requests per side)" if too_few else ""
            return worse, Change.WORSE, d.reason + decided
        case Outcome.UNTESTED if too_few:
            return Verdict.INCONCLUSIVE, Change.WORSE, f"{d.reason}; {too_few}"
        case Outcome.UNTESTED:
            return worse, Change.WORSE, d.reason
        case Outcome.NOT_SIGNIFICANT if too_few and too_few.startswith(_FEW_REQUESTS):
            # the whole endpoint is below the minimum: "changed, not significant" is no verdict, only a question
            return Verdict.INCONCLUSIVE, Change.WORSE, f"{d.reason}; {too_few}: more requests needed to tell"
        case Outcome.NOT_SIGNIFICANT if d.adjusted_p is not None and d.adjusted_p <= policy.marginal_alpha:
            return Verdict.MARGINAL, Change.WORSE, d.reason
        case Outcome.NOT_SIGNIFICANT:
            return Verdict.INCONCLUSIVE, Change.WORSE, f"{d.reason}; within noise: more requests needed to tell"
        case Outcome.BETTER | Outcome.SAME if too_few and not stats.shown_within(d.evidence, d.tolerance):
            change = Change.BETTER if d.outcome is Outcome.BETTER else Change.SAME
            return Verdict.INCONCLUSIVE, change, f"{d.reason}; {too_few}"
        case Outcome.BETTER:
            return Verdict.PASS, Change.BETTER, d.reason
        case Outcome.SAME:
            return Verdict.PASS, Change.SAME, d.reason
    return Verdict.INCONCLUSIVE, Change.UNKNOWN, d.reason


def _needs(d: Decision, verdict: Verdict, too_few: str | None, floor: int) -> int | None:
    """Requests per side that would decide an undecided metric. One that looks worse: the fewer of what makes
    the change seen significant and what resolves a change of the tolerance's size either way. One that does
    not (it only lacks requests to pass on its point estimate): the minimum to pass (``floor``)."""
    if verdict is not Verdict.INCONCLUSIVE:
        return None
    if d.outcome is Outcome.INCONCLUSIVE and "baseline_lo" in d.evidence.details:
        return None  # the sides' rounding (Locust's stats) left it open: no number of requests decides it
    e, family = d.evidence, max(d.family_size, 1)
    have = min(e.samples) if e.samples else 0
    if stats.looks_worse(e, d.tolerance):
        known = [
            n
            for n in (
                stats.requests_to_decide(e, d.alpha, family),
                stats.requests_to_detect(e, d.tolerance, d.alpha, family),
            )
            if n is not None
        ]
        if known:
            return max(min(known), have + 1)
    if too_few or e.status is Status.INSUFFICIENT:
        return max(floor, stats.MIN_SAMPLES, have + 1)
    return None


def _metric_result(
    spec: MetricSpec,
    p: _Pending,
    d: Decision,
    policy: Policy,
    left_out: _LeftOut | None = None,
) -> MetricResult:
    rule = p.settings.rule(spec.name)
    e = d.evidence
    needs = None
    if left_out is None:
        too_few = p.too_few(spec, e.samples, policy)
        verdict, change, reason = _verdict(d, rule.gate, policy, too_few)
        needs = _needs(d, verdict, too_few, max(rule.min_samples, policy.min_samples))
    else:
        figures = f"{format_value(e.candidate, e.unit)} vs {format_value(e.baseline, e.unit)}"
        verdict, change, reason = (
            Verdict.INCONCLUSIVE,
            Change.UNKNOWN,
            f"{d.label}: {left_out.verb}, {left_out.why}: {figures}",
        )
    both = e.baseline is not None and e.candidate is not None
    comparable = left_out is None or left_out.comparable
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
        statistics=None if e.status is Status.INSUFFICIENT or left_out is not None else _statistics(d),
        gated=left_out is None or left_out.gated,
        comparable=comparable,
        # Below the tests' own minimum (stats.MIN_SAMPLES per side) nothing is read into the figures: such an
        # endpoint counts towards max_inconclusive_share, not as looking worse.
        looks_worse=comparable
        and e.status is not Status.INSUFFICIENT
        and min(e.samples, default=0) >= stats.MIN_SAMPLES
        and stats.looks_worse(e, d.tolerance),
        needs=needs,
    )


def _pending(
    base: EndpointStats | None,
    cand: EndpointStats | None,
    baseline: Measurement,
    candidate: Measurement,
    policy: Policy,
    total: int,
) -> _Pending:
    """One endpoint's evidence, before the run's p-values are adjusted; ``total``: the baseline's requests."""
    share = base.count / total if base is not None and total else None
    endpoint = (base or cand).endpoint  # type: ignore[union-attr]
    both = base is not None and cand is not None
    basis = _latency_basis(base, cand, baseline, candidate, policy) if both else ""  # type: ignore[arg-type]
    evidence = _evidence(base, cand, baseline, candidate, basis) if both else {}  # type: ignore[arg-type]
    return _Pending(endpoint, base, cand, share, basis, policy.for_endpoint(endpoint.key), evidence)


def _judge_run(pending: Sequence[_Pending], policy: Policy, run: _RunContext) -> tuple[list[EndpointResult], int]:
    """Every endpoint's result, the run's p-values adjusted together; also the number of tests adjusted."""
    items: list[tuple[str, Evidence, Tolerance]] = []
    slots: list[tuple[int, MetricSpec]] = []
    left_out: dict[tuple[int, str], _LeftOut] = {}
    for i, p in enumerate(pending):
        if p.base is None or p.cand is None:
            continue
        for spec in METRICS:
            why = p.left_out(spec, run)
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
        d = decisions.get(n) or stats.decide(
            evidence, tolerance, None, label=label, alpha=policy.alpha, family_size=tests
        )
        metrics.setdefault(i, []).append(_metric_result(spec, pending[i], d, policy, left_out.get((i, spec.name))))
    results = [_endpoint_result(p, tuple(metrics.get(i, ())), policy, run) for i, p in enumerate(pending)]
    return results, tests


def _endpoint_result(p: _Pending, judged: tuple[MetricResult, ...], policy: Policy, run: _RunContext) -> EndpointResult:
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
    if p.endpoint.key in run.without_body:
        return result(Verdict.INCONCLUSIVE, [_WITHOUT_BODY])
    gated = [m for m in judged if m.gated]
    failed = [m for m in gated if m.verdict is Verdict.FAIL]
    marginal = [m for m in gated if m.verdict is Verdict.MARGINAL]
    unjudged = [m.reason for m in gated if m.verdict is Verdict.INCONCLUSIVE]
    decisive = [m for m in gated if p.settings.rule(m.metric).gate is Gate.FAIL]
    latency_judged = any(m.metric in _LATENCY_METRICS and m.verdict is not Verdict.INCONCLUSIVE for m in decisive)
    if failed:
        return result(Verdict.FAIL, [m.reason for m in failed + marginal])
    if marginal:
        return result(Verdict.MARGINAL, [m.reason for m in marginal] + unjudged)
    if run.incomparable is not None:
        return result(Verdict.INCONCLUSIVE, [f"latency not compared: {run.incomparable.reason}", *unjudged])
    counts = min(p.base.count, p.cand.count)
    if counts < policy.min_samples:
        return result(
            Verdict.INCONCLUSIVE,
            [
                f"too few requests to pass: {p.base.count} baseline, {p.cand.count} candidate "
                f"({policy.min_samples} needed on each side)",
                *unjudged,
            ],
        )
    if not latency_judged:
        return result(Verdict.INCONCLUSIVE, ["no latency metric could be judged", *run.saturated, *unjudged])
    return result(Verdict.PASS, ["every judged metric within tolerance", *unjudged])


def generator_info(m: Measurement, policy: Policy) -> GeneratorInfo | None:
    """How the side's load generator fared, and whether its saturation or its scheduling lag rules out judging
    latency (each compared on its own with ``policy.max_generator_saturated_share``; lag not measured, as in
    files written before it existed, rules out nothing)."""
    g = m.generator
    if g is None:
        return None
    share = g.saturated_share()
    lagged = g.lagged_share(policy.max_generator_lag_ms)
    saturated = share is not None and share > policy.max_generator_saturated_share
    lagging = lagged is not None and lagged > policy.max_generator_saturated_share
    return GeneratorInfo(
        processes=g.processes,
        peak_cpu_percent=g.peak_cpu_percent,
        saturated_share=share,
        saturation_percent=g.saturation_percent,
        sent=g.sent,
        late_sends=g.late_sends,
        dropped=g.dropped,
        in_flight=g.in_flight,
        blamed_generator=saturated or lagging,
        peak_lag_ms=g.peak_lag_ms,
        lagged_share=lagged,
        lag_limit_ms=policy.max_generator_lag_ms,
        saturated=saturated,
        lagging=lagging,
    )


def _saturation_reason(side: str, info: GeneratorInfo | None) -> list[str]:
    """Why ``side``'s latency is not judged: its generator's CPU saturation, its scheduling lag, or both."""
    if info is None or not info.blamed_generator:
        return []
    reasons = []
    if info.saturated:
        reasons.append(
            f"the {side}'s load generator was CPU-saturated (> {info.saturation_percent:g}%) in "
            f"{info.saturated_share or 0:.0%} of the run: its own queueing inflates latency "
            "(add generator processes or lower the rate)"
        )
    if info.lagging:
        reasons.append(
            f"the {side}'s load generator lagged > {info.lag_limit_ms:g} ms behind its schedule in "
            f"{info.lagged_share or 0:.0%} of the run (worst {info.peak_lag_ms or 0:,.0f} ms): its own delay "
            "inflates latency on every endpoint, so a change in the target cannot be told from it "
            "(the machine did not give it the CPU: run it on a quieter machine or with fewer other processes)"
        )
    return reasons


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
    for side, m in (("baseline", baseline), ("candidate", candidate)):
        if m.labels.get(LABEL_AGGREGATE):
            notes.append(
                f"the {side} holds only an aggregate of {m.labels[LABEL_AGGREGATE]} (one endpoint): "
                "this is not a per-endpoint comparison"
            )
    if mode is ComparisonMode.BEFORE_AFTER:
        notes.append(
            "before/after comparison: the sides were measured at different times and loads, "
            "so differences may come from the load as well as the environment"
        )
    if baseline.rate_scale != candidate.rate_scale:
        notes.append(
            f"throughput compared per unit of offered load: baseline rate scale {baseline.rate_scale:g}, "
            f"candidate rate scale {candidate.rate_scale:g}"
        )
    oversampled = [e for m in (baseline, candidate) for e in m.endpoints if e.load_factor != 1.0]
    if oversampled:
        listed = ", ".join(sorted({f"{e.endpoint.key} x{e.load_factor:.3g}" for e in oversampled}))
        notes.append(
            f"oversampled endpoints (sent above their share of traffic so they can be judged; the mix differs "
            f"from production, throughput is compared per unit of each endpoint's load): {listed}"
        )
    return notes


_KIND_WORDS = {
    LatencyKind.SERVER: "server-side",
    LatencyKind.SERVICE_TIME: "client-side (service time)",
    LatencyKind.INTENDED: "client-side (from the planned send time)",
}
_SOURCE_WORDS = {
    SourceKind.DATADOG: "Datadog APM",
    SourceKind.ACCESS_LOG: "access log",
    SourceKind.LOCUST_REPLAY: "replay",
    SourceKind.LOCUST_CSV: "Locust request log",
    SourceKind.SYNTHETIC: "synthetic",
    SourceKind.K6: "k6 results",
    SourceKind.JMETER: "JMeter results",
}


def _remedies(baseline: Measurement, candidate: Measurement, names: tuple[str, str]) -> tuple[str, ...]:
    """Commands that give a side comparable with the other (placeholders in capitals), best first."""
    base_name, cand_name = names
    server, client = (baseline, candidate) if not baseline.latency_kind.client_side else (candidate, baseline)
    server_name, client_name = (base_name, cand_name) if server is baseline else (cand_name, base_name)
    service = client.source.service or server.source.service or "SERVICE"
    new_url = candidate.source.target or "NEW_URL"
    remedies = [
        f"parity ab {base_name} --old OLD_URL --new {new_url} --out DIR   "
        "(replay old and new at once: client-side on both sides, same load, same time)"
    ]
    if client.source.kind is SourceKind.LOCUST_REPLAY:
        env = client.source.env or "ENV"
        if server.source.kind is SourceKind.ACCESS_LOG:
            fmt = server.labels.get("format", "alb|nginx")
            pull = f"parity baseline from-logs --format {fmt} ACCESS_LOGS --window-of {client_name} -o server-side.json"
        else:
            pull = f"parity baseline pull --service {service} --env {env} --window-of {client_name} -o server-side.json"
        remedies.append(
            f"{pull} && parity compare {server_name} server-side.json --out DIR   "
            "(the replayed environment's own server-side figures for the replay's window)"
        )
        run_time, seed = client.labels.get("run_time_s", "DURATION"), client.labels.get("seed", "1")
        remedies.append(
            f"locust -f loadtests/replay.py --headless --host OLD_URL --baseline {server_name} -t {run_time}s "
            f"--rate-scale {client.rate_scale:g} --seed {seed} --parity-out old.json && "
            f"parity compare old.json {client_name} --out DIR   (replay the old environment too: client against client)"
        )
    return tuple(remedies)


def _comparability(baseline: Measurement, candidate: Measurement, names: tuple[str, str]) -> Incomparability | None:
    """None when the latencies are of the same side (server with server, client with client)."""
    b, c = baseline.latency_kind, candidate.latency_kind
    if b.client_side == c.client_side:
        return None
    reason = (
        f"the baseline's latency is {_KIND_WORDS[b]} ({_SOURCE_WORDS[baseline.source.kind]}), the candidate's "
        f"{_KIND_WORDS[c]} ({_SOURCE_WORDS[candidate.source.kind]}): client-side times include the network, "
        "TLS and the client's own queueing, so the difference would be a verdict on the measurement, not the target"
    )
    return Incomparability(b.value, c.value, reason, _remedies(baseline, candidate, names))


def _throughput_note(baseline: Measurement, candidate: Measurement, mode: ComparisonMode) -> str:
    """Why per-endpoint throughput is only shown (empty: both sides saw the same offered load, so it is gated).

    Gated for a concurrent A/B pair unless both are replays whose sends differ (``completeness.unequal_sends``),
    for two records of the same reproduced traffic (replays, or server-side figures over a replay's window, of the
    same baseline) and for a record of a baseline's replay against that baseline. Never for closed-loop sources,
    whose throughput follows their latency."""
    closed = [name for name, m in (("baseline", baseline), ("candidate", candidate)) if m.source.kind.closed_loop]
    if closed:
        return (
            f"closed-loop load on the {' and '.join(closed)} side (users wait for each response before the next "
            "request): when one endpoint slows down every endpoint's rate falls, so throughput follows latency"
        )
    if mode is ComparisonMode.CONCURRENT:
        if not unequal_sends(baseline, candidate):
            return ""
        unequal = unequal_sides(baseline, candidate, ("baseline", "candidate"))
        return (
            f"the two targets of this concurrent A/B pair were not sent the same requests ({unequal}): one side's "
            "sends fell behind (a target's senders all busy, or the generator held back), so their request rates "
            "are not the same offered load"
        )
    replay_b, replay_c = baseline.labels.get(LABEL_REPLAY_OF), candidate.labels.get(LABEL_REPLAY_OF)
    if (replay_b and replay_b == replay_c) or replay_c == fingerprint(baseline) or replay_b == fingerprint(candidate):
        return ""
    return (
        "the sides were not driven by the same offered load (different traffic at different times), "
        "so their request rates say nothing about the target"
    )


def describe_looks_worse(result: EndpointResult, limit: int = 2) -> str:
    """An unjudged endpoint that looks worse, in words: ``looks x1.90 slower (p95), +0.40 pp errors: needs ~1,200
    more requests per side`` (the fewest that would decide one of the metrics that look worse); empty when it
    does not look worse."""
    looks = []
    worse = result.looks_worse
    for m in worse[:limit]:
        label = m.metric.removesuffix("_ms") if m.unit == "ms" else m.metric.replace("_", " ")
        if m.unit == "ratio" and m.delta is not None:
            looks.append(f"{m.delta * 100:+.2f} pp {label}")
        elif m.ratio is not None:
            slower = "slower" if m.unit == "ms" else "lower"
            looks.append(f"x{m.ratio:.2f} {slower} ({label})")
    if not looks:
        return ""
    text = "looks " + ", ".join(looks)
    have = min(result.baseline_count or 0, result.candidate_count or 0)
    needs = [m.needs for m in worse if m.needs is not None and m.needs > have]
    if needs:
        text += f": needs ~{min(needs) - have:,} more requests per side"
    return text


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
    mode = (
        ComparisonMode.CONCURRENT
        if baseline.pair_id is not None and baseline.pair_id == candidate.pair_id
        else ComparisonMode.BEFORE_AFTER
    )
    partial = tuple(
        PartialSide(role, name, why)
        for role, name, m in (("baseline", names[0], baseline), ("candidate", names[1], candidate))
        if (why := partial_reasons(m))
    )
    run = _RunContext(
        saturated=saturated,
        incomparable=_comparability(baseline, candidate, names),
        throughput_note=_partial_throughput_note(partial, mode) or _throughput_note(baseline, candidate, mode),
        without_body=without_body(baseline) | without_body(candidate),
    )
    base_by_key, cand_by_key = baseline.by_key(), candidate.by_key()
    keys = list(base_by_key) + [k for k in cand_by_key if k not in base_by_key]
    total = baseline.total_count  # once: a sum over every endpoint
    pending = [_pending(base_by_key.get(k), cand_by_key.get(k), baseline, candidate, policy, total) for k in keys]
    results, tests = _judge_run(pending, policy, run)
    results.sort(key=lambda r: (-r.verdict.severity, not r.critical, -(r.traffic_share or 0.0), r.endpoint.key))

    pattern_notes, missing_critical = _pattern_notes(policy, [p.endpoint.key for p in pending])
    verdict, reasons = _run_verdict(results, policy, missing_critical, run.incomparable)
    verdict, reasons = _capped_for_partial(verdict, reasons, partial)
    notes = [*_notes(baseline, candidate, mode), *(f"latency not judged: {s}" for s in saturated), *pattern_notes]
    if run.throughput_note:
        notes.append(f"throughput shown, not judged: {run.throughput_note}")
    on_intended = sum(1 for r in results if r.latency_basis == INTENDED)
    if on_intended and run.incomparable is None:
        notes.append(
            f"latency judged from each request's planned send time on {on_intended} endpoint(s) "
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
        incomparable=run.incomparable,
        throughput_gated=not run.throughput_note,
        throughput_note=run.throughput_note,
        partial=partial,
    )


def _partial_throughput_note(partial: Sequence[PartialSide], mode: ComparisonMode) -> str:
    """Why throughput is only shown when a side is partial (empty: no partial side, or a concurrent A/B pair,
    whose sides stopped together under the same offered load)."""
    if not partial or mode is ComparisonMode.CONCURRENT:
        return ""
    sides = " and ".join(p.side for p in partial)
    return (
        f"the {sides} run is partial: its window covers only part of its schedule, so its request rate says "
        "nothing about the target"
    )


def _capped_for_partial(
    verdict: Verdict, reasons: list[str], partial: Sequence[PartialSide]
) -> tuple[Verdict, list[str]]:
    """The run verdict when a side is partial: a fail stays a fail (the regression is in what was recorded), any
    other verdict becomes inconclusive; the partial sides lead the reasons."""
    if not partial:
        return verdict, reasons
    head = "partial run: " + "; ".join(p.describe() for p in partial)
    if verdict is Verdict.FAIL:
        return verdict, [f"{head} — the regressions below are in what was recorded", *reasons]
    return Verdict.INCONCLUSIVE, [
        f"{head} — a partial run cannot pass",
        *(f"on what was recorded ({verdict.value}): {r}" for r in reasons),
    ]


def _names(results: Sequence[EndpointResult], limit: int = 5) -> str:
    names = ", ".join(r.endpoint.key for r in results[:limit])
    more = len(results) - limit
    return names + (f" and {more} more" if more > 0 else "")


def _run_verdict(
    results: list[EndpointResult],
    policy: Policy,
    missing_critical: Sequence[str] = (),
    incomparable: Incomparability | None = None,
) -> tuple[Verdict, list[str]]:
    by = {v: [r for r in results if r.verdict is v] for v in Verdict}
    failed = by[Verdict.FAIL]
    blocking = failed if policy.fail_on is FailOn.ANY else [r for r in failed if r.critical]
    if blocking:
        critical = sum(r.critical for r in blocking)
        which = f" ({critical} critical)" if critical else ""
        return Verdict.FAIL, [f"{len(blocking)} endpoint(s) regressed{which}: {_names(blocking)}"]
    if incomparable is not None:
        return Verdict.INCONCLUSIVE, [
            f"latency not comparable: {incomparable.reason}",
            f"for a latency verdict: {incomparable.remedies[0]}",
        ]
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
    reasons = []
    looking_worse = [r for r in by[Verdict.INCONCLUSIVE] if r.looks_worse]
    if looking_worse:
        listed = "; ".join(f"{r.endpoint.key} {describe_looks_worse(r)}" for r in looking_worse[:3])
        more = len(looking_worse) - 3
        reasons.append(
            f"{len(looking_worse)} endpoint(s) not judged look worse beyond tolerance: {listed}"
            + (f"; and {more} more" if more > 0 else "")
        )
    if unjudged_share > policy.max_inconclusive_share:
        reasons.append(
            f"{unjudged_share:.1%} of baseline traffic is on endpoints that could not be judged "
            f"(more than the {policy.max_inconclusive_share:.0%} allowed)"
        )
    if reasons:
        return Verdict.INCONCLUSIVE, reasons
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

"""Sample-size planning: how many requests each endpoint needs for a verdict, against what a run will send.
Pure: a baseline Measurement, the planned requests per endpoint and a Policy in; a ``SamplePlan`` out.

For every gated metric of an endpoint, the requests per side that detect a change of the metric's tolerance
(``max(tolerance, min_delta / baseline value)``) with ``stats.POWER`` (80%) at the run's ``alpha`` after
Holm over the run's tests (``alpha / tests``, one-sided) — the standard normal-approximation formulas for
the judge's tests, with the baseline's latency spread read as a lognormal ``sigma`` (of ln ms):

==============  ==========================================================================================
``shift``       Noether (1987): ``n = z² / (6 (P − ½)²)``, ``P = Φ(δ / (σ√2))`` for a shift δ of ln latency
``avg_ms``      Welch on the log ratio of means: ``n = 2 cv² z² / δ²``, ``cv² = exp(σ²) − 1``
``pNN_ms``      order statistics: ``n = 2 q(1 − q) z² / (g² δ²)``, ``g = φ(Φ⁻¹(q)) / σ`` (density of ln X there)
``error_rate``  two proportions: ``n = z² (p(1 − p) + p'(1 − p')) / Δ²``, ``p' = p + Δ``
``rps``         two Poisson counts under the same offered load: ``n = 2 z² / ln(1 / (1 − tolerance))²``
==============  ==========================================================================================

``z = z_{α/tests} + z_{power}``. ``max_ms`` is not planned (one request each: no sample size helps). The
spread comes from the baseline's sketch (``ln p90 − ln p10`` over 2·1.2816) or, for an APM summary, from
its percentiles (p50 with p90, p95 or p75; else avg/p50); without either, ``DEFAULT_SIGMA``.

An endpoint is *judgeable* when the run sends it at least ``verdict_requests``: the policy's minimum for a
pass and what its typical latency (the cheapest of ``shift``, ``avg_ms``, ``p50_ms`` with a fail gate) needs
to detect its tolerance — then a pass means "no change of that size", not "too little data to see one".
Endpoints with meaningful traffic are all but the rarest whose shares add up to at most the policy's
``max_inconclusive_share`` (critical endpoints always count); the plan says by how much the run time or
the rate scale must grow, or which per-endpoint minimum rate, to make every one of them judgeable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import special

from parity.judge import stats
from parity.judge.policy import METRICS, Gate, Policy
from parity.model import Endpoint, EndpointStats, LatencyDistribution, LatencySummary, Measurement

__all__ = ["DEFAULT_SIGMA", "EndpointNeeds", "MetricNeed", "SamplePlan", "plan_samples", "spread"]

#: Log-spread assumed when the baseline says nothing about an endpoint's latency distribution.
DEFAULT_SIGMA = 0.5
#: z of the 10th/90th percentile of a normal (the spread is read from ln p90 − ln p10).
_Z90 = 1.2815515655446004
_TYPICAL = ("shift", "avg_ms", "p50_ms")
_PLANNED = ("shift", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "error_rate", "rps")


@dataclass(frozen=True)
class MetricNeed:
    """Requests per side a metric needs: to detect a change of ``effect`` (relative, e.g. 0.05 = 5%; for
    error rates an absolute difference in share of requests) at the run's alpha with the plan's power
    (``detect``; None when the baseline says too little), and to pass on its point estimate (``to_pass``)."""

    metric: str
    detect: int | None
    to_pass: int
    effect: float

    @property
    def requests(self) -> int | None:
        """What a verdict on this metric needs: both (None when the detection size is unknown)."""
        return None if self.detect is None else max(self.detect, self.to_pass)


@dataclass(frozen=True)
class EndpointNeeds:
    """One endpoint: its share of baseline traffic, the requests the run plans to send it (expected value)
    and its ``load_factor`` (oversampling), and what each gated metric needs."""

    endpoint: Endpoint
    share: float
    planned: float
    load_factor: float
    needs: tuple[MetricNeed, ...]
    critical: bool = False

    def need(self, metric: str) -> MetricNeed | None:
        return next((n for n in self.needs if n.metric == metric), None)

    @property
    def verdict_requests(self) -> int | None:
        """Requests per side for a verdict that means something: the cheapest typical-latency metric's need."""
        typical = [n.requests for n in self.needs if n.metric in _TYPICAL and n.requests is not None]
        return min(typical) if typical else None

    @property
    def judgeable(self) -> bool:
        need = self.verdict_requests
        return need is not None and self.planned >= need


@dataclass(frozen=True)
class SamplePlan:
    """Per endpoint what the run sends and what it needs; how to make every endpoint that matters judgeable.

    ``tests``: the run's expected number of tests (endpoints × tested metrics) the alpha is shared over.
    ``meaningful``: keys of the endpoints that must be judgeable (see module docstring). ``scale``: the
    factor by which run time (or rate scale) must grow for all of them to be (1.0: they already are; None:
    some need cannot be estimated). ``min_endpoint_rps``: the per-endpoint minimum rate (req/s of run time)
    that would make them judgeable by oversampling only the rare ones (None: no need).
    """

    endpoints: tuple[EndpointNeeds, ...]
    run_time_s: float
    alpha: float
    power: float
    tests: int
    meaningful: tuple[str, ...]
    scale: float | None
    min_endpoint_rps: float | None

    @property
    def unjudgeable(self) -> tuple[EndpointNeeds, ...]:
        """Endpoints with meaningful traffic that the run will not send enough requests to judge."""
        keys = set(self.meaningful)
        return tuple(e for e in self.endpoints if e.endpoint.key in keys and not e.judgeable)


def spread(latency: LatencyDistribution | LatencySummary | None) -> float | None:
    """The lognormal spread (sd of ln latency) of an endpoint's latency; None when nothing tells it."""
    if isinstance(latency, LatencyDistribution):
        lo, hi = latency.quantile(0.10), latency.quantile(0.90)
        if lo and hi and hi > lo > 0:
            return math.log(hi / lo) / (2 * _Z90)
        return None
    if isinstance(latency, LatencySummary):
        p50 = latency.p50_ms
        for upper, z in (
            (latency.p90_ms, _Z90),
            (latency.p95_ms, 1.6448536269514722),
            (latency.p75_ms, 0.6744897501960817),
        ):
            if p50 and upper and upper > p50 > 0:
                return math.log(upper / p50) / z
        if p50 and latency.avg_ms and latency.avg_ms > p50 > 0:
            return math.sqrt(2 * math.log(latency.avg_ms / p50))  # lognormal: mean / median = exp(σ²/2)
    return None


def _value(latency: LatencyDistribution | LatencySummary | None, metric: str) -> float | None:
    if latency is None:
        return None
    if metric == "avg_ms":
        return latency.mean
    q = 0.5 if metric == "shift" else stats.LATENCY_QUANTILES.get(metric)
    return None if q is None else latency.quantile(q)


def _latency_need(metric: str, sigma: float, effect: float, z: float) -> int:
    delta = math.log1p(effect)
    if metric == "shift":
        p = float(special.ndtr(delta / (sigma * math.sqrt(2.0))))
        return math.ceil(z * z / (6.0 * (p - 0.5) ** 2))
    if metric == "avg_ms":
        return math.ceil(2.0 * math.expm1(sigma * sigma) * z * z / delta**2)
    q = stats.LATENCY_QUANTILES[metric]
    density = math.exp(-0.5 * float(special.ndtri(q)) ** 2) / math.sqrt(2 * math.pi) / sigma
    return math.ceil(2.0 * q * (1.0 - q) * z * z / (density * delta) ** 2)


def _needs(stats_: EndpointStats, policy: Policy, z: float) -> tuple[MetricNeed, ...]:
    settings = policy.for_endpoint(stats_.endpoint.key)
    sigma = spread(stats_.latency) or DEFAULT_SIGMA
    out = []
    for spec in METRICS:
        rule = settings.rule(spec.name)
        if spec.name not in _PLANNED or rule.gate is Gate.OFF:
            continue
        to_pass = max(rule.min_samples, policy.min_samples)
        if spec.name == "error_rate":
            rate = stats_.error_rate
            if rate is None:
                out.append(MetricNeed(spec.name, None, to_pass, rule.min_delta))
                continue
            diff = max(rule.tolerance * rate, rule.min_delta)
            worse = min(rate + diff, 1.0)
            variance = rate * (1 - rate) + worse * (1 - worse)
            out.append(MetricNeed(spec.name, math.ceil(z * z * variance / diff**2), to_pass, diff))
            continue
        if spec.name == "rps":
            delta = -math.log1p(-min(rule.tolerance, 0.99))
            out.append(MetricNeed(spec.name, math.ceil(2 * z * z / delta**2), to_pass, rule.tolerance))
            continue
        value = _value(stats_.latency, spec.name)
        effect = max(rule.tolerance, rule.min_delta / value) if value else rule.tolerance
        detect = _latency_need(spec.name, sigma, effect, z) if effect > 0 else None
        out.append(MetricNeed(spec.name, detect, to_pass, effect))
    return tuple(out)


def plan_samples(
    baseline: Measurement,
    planned: Mapping[str, float],
    run_time_s: float,
    policy: Policy | None = None,
    *,
    load_factors: Mapping[str, float] | None = None,
    power: float = stats.POWER,
) -> SamplePlan:
    """What each endpoint of ``baseline`` needs against ``planned`` (endpoint key → expected requests in a
    run of ``run_time_s`` seconds; endpoints the run cannot send are absent or 0). See the module docstring."""
    policy = policy or Policy()
    total = baseline.total_count
    gated = sum(1 for spec in METRICS if policy.rule(spec.name).gate is not Gate.OFF)
    sent = [e for e in baseline.endpoints if planned.get(e.endpoint.key, 0.0) > 0]
    tests = max(len(sent) * gated, 1)
    z = stats.detection_z(policy.alpha, tests, power)
    factors = load_factors or {}
    rows = tuple(
        EndpointNeeds(
            endpoint=e.endpoint,
            share=e.count / total if total else 0.0,
            planned=float(planned.get(e.endpoint.key, 0.0)),
            load_factor=float(factors.get(e.endpoint.key, 1.0)),
            needs=_needs(e, policy, z),
            critical=policy.for_endpoint(e.endpoint.key).critical,
        )
        for e in baseline.endpoints
    )
    meaningful = _meaningful(rows, policy.max_inconclusive_share)
    short = [e for e in rows if e.endpoint.key in meaningful and not e.judgeable]
    scale: float | None = 1.0
    min_rps = None
    if short:
        needs = [e.verdict_requests for e in short]
        if any(n is None or e.planned <= 0 for n, e in zip(needs, short, strict=True)):
            scale = None
        else:
            scale = max(n / e.planned for n, e in zip(needs, short, strict=True) if n is not None)
        known = [n for n in needs if n is not None]
        min_rps = max(known) / run_time_s if known else None
    return SamplePlan(rows, run_time_s, policy.alpha, power, tests, meaningful, scale, min_rps)


def _meaningful(rows: tuple[EndpointNeeds, ...], allowed_share: float) -> tuple[str, ...]:
    """Every endpoint but the rarest whose shares together stay within ``allowed_share`` (critical ones always)."""
    minor: set[str] = set()
    left = allowed_share
    for e in sorted(rows, key=lambda r: (r.share, r.endpoint.key)):
        if e.critical:
            continue
        if e.share > left:
            break
        minor.add(e.endpoint.key)
        left -= e.share
    return tuple(e.endpoint.key for e in rows if e.endpoint.key not in minor)

"""A/A calibration: from repeated runs against the same target, the judge's false-alarm rate, the
environment's noise floor per metric, and tolerances that noise supports. Pure: no I/O.

Every ordered pair of runs is compared as baseline/candidate with the given policy (each run on both sides,
so drift in either direction shows): nothing changed between them, so every failed pair is a false alarm.
Per metric, over every endpoint of every pair whose metric was tested with enough samples (the metric's
``min_samples`` on both sides), the change in the metric's bad direction (``worse_by`` = candidate −
baseline for latency and errors, baseline − candidate for throughput; negative changes count as 0):
relative (``worse_by / baseline``) and absolute (metric unit). The noise floor is the ``NOISE_QUANTILE`` of
those changes.

Why the tolerance, not the test, absorbs this noise: a p-value measures sampling noise within one run.
Two runs against the same target also differ by run-to-run noise (caches, neighbours, time of day), which
with thousands of requests is *significant* yet is no regression. A metric fails only when its change is
significant after adjustment *and* beyond tolerance, so the tolerance must sit above the largest change
the tests call significant between A/A runs. Suggested relative tolerance = ``SAFETY`` × the largest
bad-direction relative change that was significant (adjusted p ≤ alpha) in any pair, rounded up to 1%,
never below ``MIN_TOLERANCE``; a change must pass both gates to fail, so this alone absorbs every such
change and the absolute floor stays. The error rate is the exception: relative to a zero baseline a change
is infinite, so its absolute floor (share of requests) is raised instead, to ``SAFETY`` × the largest
significant difference rounded up to ``ERROR_RATE_STEP``. When no change was significant the current
rule stands: the tests alone absorb this environment's noise.

The false-alarm rate under the suggested tolerances is measured on the same runs (in-sample, so
optimistic): confirm with a fresh set of A/A runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import permutations

import numpy as np

from parity.judge.compare import compare
from parity.judge.policy import METRICS, MetricRule, MetricSpec, Policy
from parity.judge.result import Direction, ParityResult, Verdict
from parity.model import Measurement

__all__ = [
    "ERROR_RATE_STEP",
    "MIN_TOLERANCE",
    "NOISE_QUANTILE",
    "SAFETY",
    "Calibration",
    "NoiseFloor",
    "calibrate",
]

#: Quantile of the A/A changes reported as the noise floor.
NOISE_QUANTILE = 0.99
#: Margin of a suggested tolerance over the largest significant A/A change.
SAFETY = 1.25
#: Smallest relative tolerance suggested (1%).
MIN_TOLERANCE = 0.01
#: Rounding step of a suggested error-rate floor (0.05 percentage points).
ERROR_RATE_STEP = 0.0005


@dataclass(frozen=True)
class NoiseFloor:
    """A/A noise of one metric over ``observations`` endpoint-pairs (relative and absolute, in the metric's
    unit; None without observations). ``significant``: endpoint-pairs whose change was significant after
    adjustment; ``max_significant_*``: the largest such change in the bad direction (0 when none).
    ``suggested``: the rule calibration proposes (equal to ``current`` when the data gives no reason)."""

    metric: str
    unit: str
    observations: int
    median_relative: float | None
    relative: float | None
    absolute: float | None
    significant: int
    max_significant_relative: float
    max_significant_absolute: float
    current: MetricRule
    suggested: MetricRule


@dataclass(frozen=True)
class Calibration:
    """The outcome of an A/A calibration over ``runs`` runs (``pairs`` comparisons)."""

    runs: int
    pairs: int
    false_alarms: int  # pairs whose run verdict was fail under the current policy
    false_alarm_endpoints: tuple[str, ...]  # endpoints that failed in at least one pair
    suggested_false_alarms: int  # the same, under the suggested tolerances (in-sample)
    inconclusive_pairs: int
    floors: tuple[NoiseFloor, ...]

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.pairs if self.pairs else 0.0

    @property
    def suggested_false_alarm_rate(self) -> float:
        return self.suggested_false_alarms / self.pairs if self.pairs else 0.0

    def suggested_policy(self, policy: Policy) -> Policy:
        """``policy`` with every suggested rule in place."""
        return replace(policy, rules={**policy.rules, **{f.metric: f.suggested for f in self.floors}})


@dataclass
class _Changes:
    relative: list[float]
    absolute: list[float]
    significant_relative: list[float]
    significant_absolute: list[float]


def _worse_by(direction: Direction, baseline: float, candidate: float) -> float:
    delta = candidate - baseline
    return delta if direction is Direction.LOWER_IS_BETTER else -delta


def _collect(results: Sequence[ParityResult], policy: Policy) -> dict[str, _Changes]:
    changes = {m.name: _Changes([], [], [], []) for m in METRICS}
    for result in results:
        for e in result.endpoints:
            for m in e.metrics:
                s = m.statistics
                if s is None or not s.tested or m.baseline is None or m.candidate is None:
                    continue
                counts = min(e.baseline_count or 0, e.candidate_count or 0)
                if min(m.samples) < m.min_samples or counts < policy.min_samples:
                    continue
                worse = max(_worse_by(m.direction, m.baseline, m.candidate), 0.0) + 0.0  # no -0.0
                relative = worse / abs(m.baseline) if m.baseline else (math.inf if worse else 0.0)
                c = changes[m.metric]
                c.relative.append(relative)
                c.absolute.append(worse)
                if worse > 0 and s.adjusted_p is not None and s.adjusted_p <= s.alpha:
                    c.significant_relative.append(relative)
                    c.significant_absolute.append(worse)
    return changes


def _round_up(value: float, step: float) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 10)


def _suggest(spec: MetricSpec, rule: MetricRule, c: _Changes) -> MetricRule:
    if not c.significant_relative:
        return rule
    if spec.name == "error_rate":
        return replace(rule, min_delta=_round_up(SAFETY * max(c.significant_absolute), ERROR_RATE_STEP))
    finite = [r for r in c.significant_relative if math.isfinite(r)]
    if not finite:
        return rule
    return replace(rule, tolerance=max(_round_up(SAFETY * max(finite), 0.01), MIN_TOLERANCE))


def _quantile(values: Sequence[float], q: float) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.quantile(finite, q)) if finite else None


def _floor(spec: MetricSpec, policy: Policy, c: _Changes) -> NoiseFloor:
    rule = policy.rule(spec.name)
    return NoiseFloor(
        metric=spec.name,
        unit=spec.unit,
        observations=len(c.relative),
        median_relative=_quantile(c.relative, 0.5),
        relative=_quantile(c.relative, NOISE_QUANTILE),
        absolute=_quantile(c.absolute, NOISE_QUANTILE),
        significant=len(c.significant_relative),
        max_significant_relative=max((r for r in c.significant_relative if math.isfinite(r)), default=0.0),
        max_significant_absolute=max(c.significant_absolute, default=0.0),
        current=rule,
        suggested=_suggest(spec, rule, c),
    )


def calibrate(runs: Sequence[Measurement], policy: Policy | None = None) -> Calibration:
    """Compare every pair of ``runs`` (A/A: same target, nothing changed) and calibrate the tolerances.

    Needs at least two runs (ValueError otherwise). Endpoints are matched by key across runs; an endpoint
    missing from a run simply has no observation in the pairs involving it.
    """
    if len(runs) < 2:
        raise ValueError(f"calibration needs at least 2 runs against the same target, got {len(runs)}")
    policy = policy or Policy()
    pairs = list(permutations(range(len(runs)), 2))  # each run as baseline and as candidate: drift either way
    results = [compare(runs[i], runs[j], policy) for i, j in pairs]
    floors = tuple(_floor(spec, policy, c) for spec, c in zip(METRICS, _collect(results, policy).values(), strict=True))
    calibration = Calibration(
        runs=len(runs),
        pairs=len(pairs),
        false_alarms=sum(r.verdict is Verdict.FAIL for r in results),
        false_alarm_endpoints=tuple(
            sorted({e.endpoint.key for r in results for e in r.endpoints if e.verdict is Verdict.FAIL})
        ),
        suggested_false_alarms=0,
        inconclusive_pairs=sum(r.verdict is Verdict.INCONCLUSIVE for r in results),
        floors=floors,
    )
    suggested = calibration.suggested_policy(policy)
    again = sum(compare(runs[i], runs[j], suggested).verdict is Verdict.FAIL for i, j in pairs)
    return replace(calibration, suggested_false_alarms=again)

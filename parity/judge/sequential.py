"""Anytime-valid sequential tests for a live cutover (issue 16): the statistical core of the cutover gate.

During a weighted-DNS cutover both environments serve real users at the same moment. At every check the
caller hands in the newest interval's APM summary of each endpoint on BOTH sides (hits, errors, avg and
percentiles in ms, as Datadog APM reports them per interval: summaries, not samples). This module keeps,
per endpoint and metric, a test that stays valid however often it is looked at (a confidence sequence:
the chance that it *ever* excludes the truth is at most its alpha), and turns them into a decision for
the current step: ``STOP`` (a regression beyond tolerance is shown), ``GO`` (every endpoint with
meaningful traffic is shown within tolerance and the minimum hold has passed), ``WAIT``, or ``HOLD`` (the
maximum hold passed undecided: a person decides). Fixed-horizon tests re-run at every check do not have
this property: their false-stop rate grows with the number of looks (``benchmarks/cutover_simulation.py``).

Errors (Lindon, Sanden & Shirikian, KDD 2022, "Rapid regression detection in software deployments through
sequential testing"): per interval, given the total errors ``e`` of an endpoint and both sides' request
counts, the new side's errors are Binomial(e, theta) with ``theta = r n_new / (r n_new + n_old)``, where
``r`` is the ratio of the new side's error rate to the old side's. Conditioning on the interval's totals
cancels whatever both sides share (time of day, an upstream outage). A mixture of likelihood ratios over
``r`` (a discretised normal prior on ln r, ``ERROR_PRIOR_SD``) is a test martingale for every fixed ``r``
(Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences"; Robbins'
method of mixtures); inverting it on a grid of ln r gives a confidence sequence for ``r``. The ratio alone
would stop on a trivial change of a tiny rate (0.01% → 0.02%), so a stop also needs the absolute excess
``p_new - p_old`` shown beyond the tolerance's absolute part, from conjugate beta-binomial confidence
sequences for each side's own error rate (``bernoulli_cs``).

Latency: per interval and metric (``avg_ms`` or a percentile), ``y = ln(new / old)`` of the two sides' figures,
taken only when each side had enough hits in that interval for the figure to mean something
(``min_interval_hits``: a p95 of 3 requests is their maximum, biased low); intervals with too few hits on a side
are skipped, never zero-filled. ``y`` is clipped to ``±LATENCY_CLIP`` (one broken interval must not decide),
weighted by ``n_eff = 1 / (1/n_new + 1/n_old)`` (the information a difference carries) and the weighted mean's
confidence sequence comes from the two-sided normal-mixture boundary of Howard et al. 2021 (``sqrt((V + rho)
ln((V + rho) / (rho alpha^2)))``) with ``V`` the largest of a model variance (lognormal shape read from the old
side's p50/p95 in the same interval), the empirical weighted variance of the ``y`` seen so far (``Var(y) ~
1/w``) and the robust one ``sum w²(y - mean)²`` (a drift of one side that does not shrink with the traffic,
weighed by ``w²`` when the weights change between steps). The guarantee holds for sub-Gaussian ``y`` with a
known variance; here the variance is estimated (a plug-in, kept conservative by taking the larger estimate; the
seeded Monte Carlo in tests/test_sequential.py and the heavy-tailed scenario of benchmarks/cutover_simulation.py
check the false-stop rate it gives). The log of a mean of few samples is biased low by about ``ln(1 + CV^2/n) /
2`` (Jensen; Fenton-Wilkinson's lognormal approximation of a sum of lognormals); the model's ``CV^2`` removes
that bias from ``avg_ms`` observations (measured residual under 0.02 for n >= 3 and sigma <= 1).

Each latency bound is one-sided on its own (``one_sided_level``): the lower bound beyond the tolerance
(a STOP) and the upper bound within it (a GO) are each wrong with probability <= the test's alpha.

Multiplicity: the tests of the gate (endpoints × (error rate + latency metrics + each guardrail when
set)) share ``alpha`` by a weighted Bonferroni split (a union bound, so the family-wise false-stop rate
stays <= alpha at every check, however long the cutover runs): per endpoint, the mean latency weighs 3, the
error rate 2, a percentile or a guardrail 1 (``ALPHA_WEIGHTS``): at small weights only the mean can
decide (a p95 needs >= 100 hits a side per interval), so alpha is spent where it can buy a stop. The
guardrails (error rate, p99) restart on each step's own counts: their alpha is split over the steps. Every other
test runs over the whole cutover (evidence carries from one step to the next; later steps, with more
traffic on the new side, weigh more through ``n_eff``).

Use (the ``parity cutover`` command, its journal and reports build on this)::

    plan = plan_gate(endpoints, CutoverPolicy(...), judge_policy)   # the family is fixed here
    state = start(plan)
    for each check: state = update(state, Check(...)); decision = decide(state)
        STOP -> roll back (exit 1; a guardrail breach: 4)   GO -> shift, state = next_step(state)
        WAIT -> check again                                HOLD -> keep the weights (exit 3)

``update`` is deterministic: a journal of the ``Check`` inputs rebuilds the state on ``--resume``. A STOP is
latched in the state (``update``); the driver acts on the first one anyway. GO at small weights: an endpoint
whose traffic at this weight cannot show the tolerance by the maximum hold does not hold the GO back
(``decide``); the last step (100 %) has no old side and is judged by the guardrails alone. The observed split
is compared with the weight through a binomial confidence sequence (``_split``).

The module is pure: no I/O, no clock, no printing. Times are ms, rates are ratios (0.01 = 1%), weights
are percent of traffic to the new environment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy import special

from parity.judge.policy import Policy
from parity.judge.stats import ALPHA, Tolerance

__all__ = [
    "ALPHA_WEIGHTS",
    "DECIDABLE_FRACTION",
    "DEFAULT_MAX_HOLD_CHECKS",
    "DEFAULT_MIN_HOLD_CHECKS",
    "DEFAULT_STEPS",
    "ERROR_PRIOR_SD",
    "LATENCY_CLIP",
    "LATENCY_V_OPT",
    "MIN_LATENCY_INTERVALS",
    "Action",
    "Check",
    "CutoverPolicy",
    "EndpointInterval",
    "Finding",
    "GatePlan",
    "GateState",
    "GuardrailBreach",
    "IntervalSummary",
    "MaxHold",
    "MetricDecision",
    "SplitCheck",
    "StepDecision",
    "bernoulli_bound",
    "bernoulli_cs",
    "bernoulli_log_mixture",
    "decide",
    "guardrail_step_alpha",
    "min_interval_hits",
    "next_step",
    "normal_mixture_bound",
    "normal_mixture_rho",
    "one_sided_level",
    "plan_gate",
    "ratio_log_mixture",
    "start",
    "update",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Default steps (percent of traffic to the new environment).
DEFAULT_STEPS: tuple[float, ...] = (1.0, 5.0, 10.0, 50.0, 100.0)
#: Standard deviation of the normal mixing prior on ln(error-rate ratio): mass on ratios of 1/20-20.
ERROR_PRIOR_SD = 1.5
#: Grid of ln(ratio) on which the error-ratio confidence sequence is evaluated (ratios 1/100-100, 1% apart).
_LOG_RATIO_GRID: FloatArray = np.round(np.arange(-4.6, 4.6 + 1e-9, 0.01), 6)
#: Beta(a, b) mixing prior of the per-side error-rate confidence sequences (Jeffreys).
BERNOULLI_PRIOR = (0.5, 0.5)
#: Per-interval latency log ratios are clipped to ±this (a x4 slower or faster interval counts as x4).
LATENCY_CLIP = math.log(4.0)
#: The intrinsic time (variance, ln-ratio² × hits) at which the normal-mixture boundary is tightest:
#: about where a 20% change of a typical endpoint becomes decidable (CV² 0.3 × ~300 effective hits).
LATENCY_V_OPT = 100.0
#: Usable intervals an endpoint's latency metric needs before it can be shown anything (the empirical
#: variance needs a few).
MIN_LATENCY_INTERVALS = 5
#: Hits an interval needs per side for its mean to be compared.
MIN_HITS_MEAN = 3
#: Hits an interval needs per side beyond a percentile (and below it) for the percentile to be compared.
TAIL_HITS = 5
#: New-side hits an interval needs for its p99 to be held against the p99 guardrail.
P99_GUARD_MIN_HITS = 100
#: The intrinsic time (ln-ratio variance × hits) at which the p99 guardrail's boundary is tightest: one interval
#: of ~300 new-side hits (a p99's variance per hit is ~3.5 at a lognormal shape of 0.5), so a gross breach stops
#: at the first such interval.
P99_GUARD_V_OPT = 1000.0
#: Requests a step needs (both sides together) before the observed split is compared with the weight.
SPLIT_MIN_HITS = 200
#: Default minimum / maximum hold per step, in checks (minutes at the default 60-s check interval); see
#: ``CutoverPolicy`` for why 40 minutes.
DEFAULT_MIN_HOLD_CHECKS = 40
DEFAULT_MAX_HOLD_CHECKS = 120
#: Relative share of an endpoint's alpha per test (normalised over the tests the plan runs): the mean latency
#: is the test that decides a step at small weights, percentiles need >= 100 hits a side per interval and
#: only speak at large weights (see ``plan_gate``).
ALPHA_WEIGHTS: Mapping[str, float] = {"error_rate": 2.0, "avg_ms": 3.0, "error_guardrail": 1.0, "p99_guardrail": 1.0}
#: A test not in ``ALPHA_WEIGHTS`` (a percentile) weighs this.
ALPHA_WEIGHT_OTHER = 1.0
#: An endpoint's metric is decidable at the current weight when its confidence sequence, projected to the
#: maximum hold with the step's requests split by the weight, would be narrower than this fraction of the
#: tolerance on each side of "no change" (so a change of up to (1 - this) of the tolerance is shown within).
DECIDABLE_FRACTION = 0.5
#: Bounds of the lognormal shape read from an interval's p50 and p95 (σ of ln latency).
_SIGMA_RANGE = (0.05, 1.5)
_Z95 = 1.6448536269514722
_QUANTILES: Mapping[str, float] = {"p50_ms": 0.50, "p75_ms": 0.75, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99}
LATENCY_METRICS: tuple[str, ...] = ("avg_ms", *_QUANTILES)
#: Rows of a latency block: W, Σwy, Σwy², k, Σw·c², Σw·old, Σw², Σw²y, Σw²y² (``_latency_increment``).
ROWS = 9


class Action(Enum):
    """What the gate says for the current step."""

    STOP = "stop"  # a regression beyond tolerance (or a guardrail breach) is shown: roll back
    GO = "go"  # minimum hold passed and every endpoint with meaningful traffic shown within tolerance
    WAIT = "wait"  # undecided; keep the weight and check again
    HOLD = "hold"  # the maximum hold passed undecided: keep the weight, a person decides (exit 3)


class MaxHold(Enum):
    """What an undecided step does at its maximum hold. ``hold``: wait for a person (the issue's rule).
    ``advance``: go on when nothing was shown worse (a time-boxed step; the simulation's stand-in for the
    person who says go)."""

    HOLD = "hold"
    ADVANCE = "advance"


class Finding(Enum):
    """One endpoint's metric, at one check."""

    WORSE = "worse"  # the whole confidence sequence lies beyond tolerance
    WITHIN = "within"  # the whole confidence sequence lies inside tolerance
    OPEN = "open"  # the sequence straddles the tolerance
    NO_DATA = "no_data"  # too few usable intervals (missing data is never within)


@dataclass(frozen=True)
class IntervalSummary:
    """One side's APM figures for one endpoint over one interval. Latencies in ms; None = not reported
    (never read as 0). ``hits`` 0 means the side served none of it: nothing to compare."""

    hits: int
    errors: int
    avg_ms: float | None = None
    p50_ms: float | None = None
    p75_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class EndpointInterval:
    """Both sides of one endpoint in one interval; a side that is None was missing from APM."""

    endpoint: str
    old: IntervalSummary | None
    new: IntervalSummary | None


@dataclass(frozen=True)
class Check:
    """The newest interval of every endpoint, both sides at the same moment. ``end_ms``: the interval's end
    (epoch ms). An endpoint absent from ``endpoints`` is missing for this interval (skipped, not zero)."""

    end_ms: int
    endpoints: tuple[EndpointInterval, ...]


@dataclass(frozen=True)
class CutoverPolicy:
    """The cutover's decision settings (the ``[cutover]`` table will map onto these).

    ``steps``: percent to the new environment. ``min_hold_checks`` / ``max_hold_checks``: checks per step (with data
    / of any kind) before a GO may be taken / after which an undecided step holds (``on_max_hold``). The driver
    converts ``min_hold_s`` / ``max_hold_s`` into these (ceil(hold / interval)); the defaults, 40 and 120, are
    40 minutes and 2 hours at the default 60-s interval.

    Why 40 minutes: at 1, 5 and 10 % almost no endpoint can be shown WITHIN a 5 % tolerance (see ``decide``),
    so those steps go at their minimum hold, and the minimum hold is what buys the evidence that stops a
    regression before half the users see it. An endpoint with 5 % of 2,000 requests a minute sends
    40 × (1 + 5 + 10) = 640 requests to the new side by the end of the 10 % step; the intervals with >= 3 hits
    a side give an effective sample of ~550, so a +20 % mean latency beyond a 5 % tolerance
    (ln(1.2/1.05) = 0.134 against a per-request CV of 0.53) reaches an expected z of 5.87, while the one-sided
    normal-mixture boundary at the mean latency's alpha (0.01 / 90 × 1.5, ``ALPHA_WEIGHTS``) sits at z = 4.48:
    P(stopped by then) ~ Phi(1.39) = 92 % (30 minutes: z 5.08 against 4.47, 73 %; 35: 84 %). The holds in
    minutes are what a cautious production cutover uses anyway (the whole move takes >= 3 h 20 min). ``alpha``:
    family-wise false-stop rate of the whole cutover. ``latency_metrics``: judged latency figures (``avg_ms``,
    ``p50_ms`` … ``p99_ms``). ``go_metrics``: the metrics every endpoint with meaningful traffic must have shown
    within tolerance for a GO (others need not be shown within: a p95 needs ~100 hits per side and interval and is
    rarely judgeable at small weights; they stop, and hold the GO back once shown worse than no change).
    ``min_traffic_share``: an endpoint whose share of the requests seen, over the cutover and in the step, is below
    this does not hold a GO back (it can still stop it). ``error_rate_limit``: guardrail, the new side's error rate
    (ratio) shown above it in the current step stops at once; ``p99_limit_ms``: the new side's p99 shown above it
    in the current step (intervals with at least ``P99_GUARD_MIN_HITS`` new-side hits; see ``_guardrails``) stops
    at once. ``split_tolerance``: relative gap
    between the observed share of requests on the new side in the step and the weight beyond which the split does
    not match (a DNS change not in effect); a mismatch blocks GO.
    """

    steps: tuple[float, ...] = DEFAULT_STEPS
    min_hold_checks: int = DEFAULT_MIN_HOLD_CHECKS
    max_hold_checks: int = DEFAULT_MAX_HOLD_CHECKS
    alpha: float = ALPHA
    latency_metrics: tuple[str, ...] = ("avg_ms", "p95_ms")
    go_metrics: tuple[str, ...] = ("error_rate", "avg_ms")
    min_traffic_share: float = 0.01
    error_rate_limit: float | None = None
    p99_limit_ms: float | None = None
    split_tolerance: float = 0.5
    on_max_hold: MaxHold = MaxHold.HOLD


@dataclass(frozen=True)
class GatePlan:
    """What the gate judges: the endpoints (fixed before the cutover: the Bonferroni family), the metrics,
    each endpoint's tolerance per metric and each test's alpha. ``test_alpha``: the family's alpha split
    evenly (alpha / family); ``alpha_weights``: per test (``error_rate``, a latency metric,
    ``error_guardrail``, ``p99_guardrail``) the factor on it, averaging 1 over an endpoint's tests
    (``ALPHA_WEIGHTS``): the tests' alphas still sum to the policy's alpha."""

    endpoints: tuple[str, ...]
    policy: CutoverPolicy
    tolerances: Mapping[str, tuple[Tolerance, ...]]  # metric -> per endpoint, in ``endpoints`` order
    family: int
    test_alpha: float
    alpha_weights: Mapping[str, float] = field(default_factory=dict)

    def alpha(self, test: str) -> float:
        """The alpha of one test (``error_rate``, a latency metric, ``error_guardrail`` or ``p99_guardrail``) of
        one endpoint."""
        return self.test_alpha * self.alpha_weights.get(test, 1.0)


@dataclass(frozen=True, eq=False)
class GateState:
    """Everything the gate knows after the checks so far. Arrays are per endpoint (``plan.endpoints``
    order) and never modified in place: ``update`` returns a new state.

    ``error_loglik``: per endpoint, the conditional log-likelihood of the errors on the ln-ratio grid.
    ``errors_*``/``hits_*``: cumulative counts over intervals where both sides reported hits; ``hits_seen``:
    every hit reported on either side (an endpoint served by one side only still has traffic).
    ``latency``: per metric, cumulative (W, Σwy, Σwy², k, Σw·c², Σw·old, Σw², Σw²y, Σw²y²) of the usable
    intervals (``ROWS``).
    ``step_*``: counts of the current step (new side's hits and errors, all hits) for guardrail and split;
    ``step_usable_checks``: checks of the step with at least one interval seen on both sides (the minimum hold
    counts these: a check that brought nothing is not time watched at the new weight; at 100 %: the new side).
    ``step_latency``: per metric, the step's own rows like ``latency`` (for the projection of ``decide``: the
    variance measured within the step); ``step_hits_seen``:
    per endpoint, the step's requests on either side. ``stopped``: the reasons of the first STOP (latched,
    see ``update``). ``evaluation``: the findings and guardrail breaches ``update`` computed (``decide``
    reuses them; None after ``start``/``next_step``).
    """

    plan: GatePlan
    step_index: int = 0
    step_checks: int = 0
    step_usable_checks: int = 0
    checks: int = 0
    error_loglik: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    errors_old: FloatArray = field(default_factory=lambda: np.zeros(0))
    errors_new: FloatArray = field(default_factory=lambda: np.zeros(0))
    hits_old: FloatArray = field(default_factory=lambda: np.zeros(0))
    hits_new: FloatArray = field(default_factory=lambda: np.zeros(0))
    hits_seen: FloatArray = field(default_factory=lambda: np.zeros(0))
    latency: Mapping[str, FloatArray] = field(default_factory=dict)
    step_hits_new: FloatArray = field(default_factory=lambda: np.zeros(0))
    step_errors_new: FloatArray = field(default_factory=lambda: np.zeros(0))
    step_hits_all: float = 0.0
    last_p99_new: FloatArray = field(default_factory=lambda: np.zeros(0))
    step_p99_guard: FloatArray = field(default_factory=lambda: np.zeros((ROWS, 0)))
    last_check_usable: bool = False
    step_latency: Mapping[str, FloatArray] = field(default_factory=dict)
    step_hits_seen: FloatArray = field(default_factory=lambda: np.zeros(0))
    stopped: tuple[str, ...] = ()
    evaluation: tuple[tuple[MetricDecision, ...], tuple[GuardrailBreach, ...]] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MetricDecision:
    """One endpoint's metric at a check. ``lower``/``estimate``/``upper``: the new/old ratio (error rate or
    latency figure) and its confidence sequence (None when nothing usable; ``upper`` may be inf).
    ``threshold``: the ratio beyond which the change exceeds the tolerance (both its parts). ``intervals``:
    usable intervals so far (latency) or total errors (error rate)."""

    endpoint: str
    metric: str
    finding: Finding
    estimate: float | None
    lower: float | None
    upper: float | None
    threshold: float
    intervals: int
    reason: str
    decidable: bool = True  # False: this step's traffic cannot show it within tolerance by the maximum hold


@dataclass(frozen=True)
class GuardrailBreach:
    """An absolute limit broken on the new side. ``kind``: ``error_rate`` (ratio) or ``p99_ms`` (ms)."""

    endpoint: str
    kind: str
    observed: float
    limit: float
    reason: str


@dataclass(frozen=True)
class SplitCheck:
    """Observed share of the step's requests on the new side against the weight (both percent).
    ``matches`` None: fewer than ``SPLIT_MIN_HITS`` requests in the step so far."""

    weight_pct: float
    observed_pct: float | None
    hits: int
    matches: bool | None


@dataclass(frozen=True)
class StepDecision:
    """The gate's decision for the current step at one check, with everything behind it."""

    action: Action
    step_index: int
    weight_pct: float
    step_checks: int
    reasons: tuple[str, ...]
    metrics: tuple[MetricDecision, ...]
    guardrails: tuple[GuardrailBreach, ...]
    split: SplitCheck


# --- boundaries and mixtures (known-answer tested) -----------------------------------------------------


def normal_mixture_rho(v_opt: float, alpha: float) -> float:
    """The mixing variance ``rho`` that makes the two-sided normal-mixture boundary tightest at intrinsic
    time ``v_opt`` for level ``alpha`` (the choice of Howard et al. 2021 and confseq's ``best_rho``)."""
    log_inv = math.log(1 / alpha)
    return v_opt / (2 * log_inv + math.log(1 + 2 * log_inv))


def normal_mixture_bound(v: FloatArray | float, alpha: float, rho: float) -> FloatArray:
    """Two-sided normal-mixture boundary (Howard et al. 2021; confseq's ``TwoSidedNormalMixture``):
    ``|S_t| < u(V_t)`` for all t with probability >= 1 - alpha when S is a sum of conditionally sub-Gaussian
    increments with variance process V. ``u(v) = sqrt((v + rho) ln((v + rho) / (rho alpha^2)))``."""
    v_arr = np.asarray(v, dtype=float)
    return np.asarray(np.sqrt((v_arr + rho) * np.log((v_arr + rho) / (rho * alpha * alpha))))


def one_sided_level(alpha: float) -> float:
    """The level at which the two-sided normal-mixture boundary is a valid ONE-sided boundary at ``alpha``:
    ``2 alpha / (1 + alpha)``. The two-sided mixture M is the mean of the half-normal mixtures M+ (over
    lambda > 0) and M- (lambda < 0), each a test martingale; while S >= 0, M- <= 1, so M >= 1/a' implies
    M+ >= 2/a' - 1 = 1/alpha, which Ville's inequality bounds by alpha. The latency tests use it for each
    side on its own: a false STOP (lower bound beyond tolerance) and a false GO (upper bound within) each
    have probability <= the test's alpha."""
    return 2 * alpha / (1 + alpha)


def bernoulli_log_mixture(successes: FloatArray, trials: FloatArray, p: FloatArray) -> FloatArray:
    """ln of the beta-binomial mixture martingale for a Bernoulli rate ``p``: ``B(a+S, b+F)/B(a, b)`` over
    ``p^S (1-p)^F`` (prior Beta(``BERNOULLI_PRIOR``)). Under a constant rate p its expectation is 1 at every
    n, so ``{p: value < ln(1/alpha)}`` is a confidence sequence."""
    a, b = BERNOULLI_PRIOR
    s = np.asarray(successes, dtype=float)
    f = np.asarray(trials, dtype=float) - s
    p_arr = np.asarray(p, dtype=float)
    mix = special.betaln(a + s, b + f) - special.betaln(a, b)
    return np.asarray(mix - special.xlogy(s, p_arr) - special.xlog1py(f, -p_arr))


def bernoulli_bound(successes: FloatArray, trials: FloatArray, alpha: float, *, upper: bool | BoolArray) -> FloatArray:
    """One end of ``bernoulli_cs``: the upper (``upper``) or lower bound, by bisection (40 halvings: < 1e-12).
    ``upper`` may be an array (per element: several bounds in one vectorised bisection)."""
    s = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    up = np.broadcast_to(np.asarray(upper, dtype=bool), s.shape)
    threshold = math.log(1 / alpha)
    p_hat = np.where(n > 0, s / np.maximum(n, 1), 0.5)
    inner, outer = p_hat.copy(), up.astype(float)
    for _ in range(40):  # invariant: inner is inside the sequence's set, outer is not (or is the edge)
        mid = (inner + outer) / 2
        inside = bernoulli_log_mixture(s, n, mid) < threshold
        inner, outer = np.where(inside, mid, inner), np.where(inside, outer, mid)
    return np.where(up, np.where((n > 0) & (s < n), outer, 1.0), np.where((n > 0) & (s > 0), outer, 0.0))


def bernoulli_cs(successes: FloatArray, trials: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """Anytime-valid (lower, upper) bounds of a Bernoulli rate from ``successes`` of ``trials`` (arrays): the
    set ``{p: bernoulli_log_mixture < ln(1/alpha)}`` (an interval: the mixture's ln is convex in p), found by
    bisection. No trials: (0, 1); no successes: lower 0; all successes: upper 1."""
    s, n = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    both = bernoulli_bound(
        np.stack([s, s]), np.stack([n, n]), alpha, upper=np.array([False, True]).reshape((2,) + (1,) * s.ndim)
    )
    return both[0], both[1]


def _log_prior() -> FloatArray:
    logp = -0.5 * (_LOG_RATIO_GRID / ERROR_PRIOR_SD) ** 2
    return np.asarray(logp - special.logsumexp(logp))


_LOG_PRIOR = _log_prior()


def ratio_log_mixture(loglik: FloatArray) -> FloatArray:
    """ln M(r) on the ln-ratio grid for each row of ``loglik`` (conditional log-likelihoods on the grid):
    ``ln sum_k prior_k exp(l_k) - l(r)``, the mixture likelihood ratio against each grid ratio r."""
    mixed = special.logsumexp(loglik + _LOG_PRIOR, axis=-1, keepdims=True)
    return np.asarray(mixed - loglik)


def _grid_cs(log_m: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """(lower, upper) ln-ratio bounds per row from ln M on the grid, widened by one grid point each side
    (the set is an interval in ln r because the conditional log-likelihood is concave in ln r; between grid
    points it is not evaluated). Edges of the grid become -inf/+inf."""
    inside = log_m < math.log(1 / alpha)
    n_grid = _LOG_RATIO_GRID.size
    any_inside = inside.any(axis=1)
    first = np.where(any_inside, inside.argmax(axis=1), log_m.argmin(axis=1))
    last = np.where(any_inside, n_grid - 1 - inside[:, ::-1].argmax(axis=1), log_m.argmin(axis=1))
    grid = np.concatenate(([-np.inf], _LOG_RATIO_GRID, [np.inf]))
    return grid[first], grid[last + 2]


def min_interval_hits(metric: str) -> int:
    """Hits an interval needs on EACH side for ``metric`` to be compared: ``MIN_HITS_MEAN`` for the mean,
    ``TAIL_HITS`` beyond and below a percentile q (ceil(TAIL_HITS / min(q, 1-q)); p95 → 100, p99 → 500)."""
    if metric == "avg_ms":
        return MIN_HITS_MEAN
    q = _QUANTILES[metric]
    return math.ceil(TAIL_HITS / min(q, 1 - q) - 1e-9)


# --- plan, start, update -------------------------------------------------------------------------------


def plan_gate(endpoints: Sequence[str], policy: CutoverPolicy, judge: Policy | None = None) -> GatePlan:
    """The gate for ``endpoints`` (keys such as ``"GET /users/{id}"``; duplicates are an error) with
    tolerances from the judge's policy (``Policy.for_endpoint(key).rule(metric)``: ``tolerance`` relative,
    ``min_delta`` absolute in the metric's unit). The Bonferroni family: endpoints × (error rate + latency
    metrics + each guardrail when set). A ``go_metrics`` entry that is not judged is an error."""
    keys = tuple(endpoints)
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate endpoint keys")
    unknown = [m for m in policy.latency_metrics if m not in LATENCY_METRICS]
    if unknown:
        raise ValueError(f"unknown latency metrics: {', '.join(unknown)} (known: {', '.join(LATENCY_METRICS)})")
    unjudged = [m for m in policy.go_metrics if m not in ("error_rate", *policy.latency_metrics)]
    if unjudged:  # a GO metric nothing judges would be skipped at GO time: a GO on missing data
        raise ValueError(f"go_metrics not among the judged metrics: {', '.join(unjudged)} (add to latency_metrics)")
    if not 0 < policy.alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {policy.alpha}")
    if policy.min_hold_checks > policy.max_hold_checks:
        raise ValueError("min_hold_checks must not exceed max_hold_checks")
    judge = judge or Policy()
    tolerances: dict[str, tuple[Tolerance, ...]] = {}
    for metric in ("error_rate", *policy.latency_metrics):
        rules = [judge.for_endpoint(k).rule(metric) for k in keys]
        tolerances[metric] = tuple(Tolerance(r.tolerance, r.min_delta) for r in rules)
    tests = (
        ["error_rate", *policy.latency_metrics]
        + (["error_guardrail"] if policy.error_rate_limit is not None else [])
        + (["p99_guardrail"] if policy.p99_limit_ms is not None else [])
    )
    raw = {t: ALPHA_WEIGHTS.get(t, ALPHA_WEIGHT_OTHER) for t in tests}
    mean_raw = sum(raw.values()) / len(raw)
    family = max(1, len(keys) * len(tests))
    weights = {t: w / mean_raw for t, w in raw.items()}
    return GatePlan(keys, policy, tolerances, family, policy.alpha / family, weights)


def start(plan: GatePlan) -> GateState:
    """The state before the first check (step 0, nothing seen)."""
    n = len(plan.endpoints)
    zeros = np.zeros(n)
    latency = {m: np.zeros((ROWS, n)) for m in plan.policy.latency_metrics}
    return GateState(
        step_latency={m: np.zeros((ROWS, n)) for m in plan.policy.latency_metrics},
        step_hits_seen=zeros,
        plan=plan,
        error_loglik=np.zeros((n, _LOG_RATIO_GRID.size)),
        errors_old=zeros,
        errors_new=zeros,
        hits_old=zeros,
        hits_new=zeros,
        hits_seen=zeros,
        latency=latency,
        step_hits_new=zeros,
        step_errors_new=zeros,
        last_p99_new=np.full(n, np.nan),
        step_p99_guard=np.zeros((ROWS, n)),
    )


def next_step(state: GateState) -> GateState:
    """The state at the start of the next step: the tests carry on, the step's counters restart."""
    n = len(state.plan.endpoints)
    return replace(
        state,
        step_index=state.step_index + 1,
        step_checks=0,
        step_usable_checks=0,
        step_hits_new=np.zeros(n),
        step_errors_new=np.zeros(n),
        step_hits_all=0.0,
        last_p99_new=np.full(n, np.nan),
        step_p99_guard=np.zeros((ROWS, n)),
        last_check_usable=False,
        step_latency={m: np.zeros((ROWS, n)) for m in state.plan.policy.latency_metrics},
        step_hits_seen=np.zeros(n),
        evaluation=None,  # the guardrails and the decidability are the new step's
    )


def _column(check: Check, index: Mapping[str, int], side: str, name: str) -> FloatArray:
    """Per endpoint, ``name`` of ``side`` in this check; NaN where the endpoint or side or figure is missing."""
    out = np.full(len(index), np.nan)
    for item in check.endpoints:
        i = index.get(item.endpoint)
        summary = item.old if side == "old" else item.new
        if i is None or summary is None:
            continue
        value = getattr(summary, name)
        if value is not None and math.isfinite(float(value)):
            out[i] = float(value)
    return out


def update(state: GateState, check: Check) -> GateState:
    """The state after one more check (pure; ``state`` is unchanged). Endpoints not in the plan are ignored
    (the family was fixed at ``plan_gate``). Per endpoint, an interval counts for the error test only when
    both sides reported hits > 0 (and 0 <= errors <= hits), and for a latency metric only when both sides
    reported the figure and at least ``min_interval_hits(metric)`` hits; anything else is skipped, never
    zero-filled. At the last step (100 %) a check counts towards the minimum hold when the new side reported
    hits (there is no old side left: the guardrails alone decide).

    A STOP is latched: once a regression or a guardrail breach is shown, ``stopped`` keeps its reasons and
    later checks only count (no evidence is added; ``decide`` says STOP for good). A confidence sequence that
    once lay beyond the tolerance is still a valid statement afterwards (the running intersection of a
    confidence sequence is one too), so a STOP never turns back into WAIT."""
    plan = state.plan
    if state.stopped:
        return replace(state, checks=state.checks + 1, step_checks=state.step_checks + 1)
    index = {k: i for i, k in enumerate(plan.endpoints)}
    col = {(side, name): _column(check, index, side, name) for side in ("old", "new") for name in ("hits", "errors")}
    n_old, n_new = col["old", "hits"], col["new", "hits"]
    e_old, e_new = col["old", "errors"], col["new", "errors"]
    with np.errstate(invalid="ignore"):  # NaN (missing) compares False: the side is not usable
        sane_old = (e_old >= 0) & (e_old <= n_old)
        sane_new = (e_new >= 0) & (e_new <= n_new)
    both = (n_old > 0) & (n_new > 0) & sane_old & sane_new
    hits_old = state.hits_old + np.where(both, n_old, 0.0)
    hits_new = state.hits_new + np.where(both, n_new, 0.0)
    errors_old = state.errors_old + np.where(both, e_old, 0.0)
    errors_new = state.errors_new + np.where(both, e_new, 0.0)
    loglik = state.error_loglik
    rows = np.flatnonzero(both & (e_old + e_new > 0))
    if rows.size:
        loglik = loglik.copy()
        log_odds = np.log(n_old[rows] / n_new[rows])[:, None]  # ln(n_old / n_new)
        grid = _LOG_RATIO_GRID[None, :]
        # theta = 1 / (1 + (n_old/n_new) e^-s); ln theta = -ln(1 + e^(ln(n_old/n_new) - s))
        loglik[rows] += -e_new[rows, None] * np.logaddexp(0.0, log_odds - grid) - e_old[rows, None] * np.logaddexp(
            0.0, grid - log_odds
        )

    new_seen = (n_new > 0) & sane_new
    step_hits_new = state.step_hits_new + np.where(new_seen, n_new, 0.0)
    seen = np.where((n_old > 0) & sane_old, n_old, 0.0) + np.where(new_seen, n_new, 0.0)

    latency, step_latency = dict(state.latency), dict(state.step_latency)
    p50_old, p95_old = _column(check, index, "old", "p50_ms"), _column(check, index, "old", "p95_ms")
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.clip(np.log(p95_old / p50_old) / _Z95, *_SIGMA_RANGE)  # NaN where either is missing
    for metric in plan.policy.latency_metrics:
        increment = _latency_increment(
            metric, n_old, n_new, _column(check, index, "old", metric), _column(check, index, "new", metric), sigma
        )
        latency[metric] = state.latency[metric] + increment
        step_latency[metric] = state.step_latency[metric] + increment  # the step's own rows
    p99_new = _column(check, index, "new", "p99_ms")
    step_p99_guard = state.step_p99_guard
    if plan.policy.p99_limit_ms is not None:  # the step's p99 against the limit (a constant "old side")
        p50_new, p95_new = _column(check, index, "new", "p50_ms"), _column(check, index, "new", "p95_ms")
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma_new = np.clip(np.log(p95_new / p50_new) / _Z95, *_SIGMA_RANGE)
        limit = np.full(len(index), plan.policy.p99_limit_ms)
        step_p99_guard = state.step_p99_guard + _latency_increment(
            "p99_ms",
            np.full(len(index), np.inf),
            np.where(new_seen, n_new, np.nan),
            limit,
            p99_new,
            sigma_new,
            P99_GUARD_MIN_HITS,
        )
    last_step = _weight(state) >= 100.0
    usable = bool(new_seen.any()) if last_step else bool(both.any())
    new_state = replace(
        state,
        checks=state.checks + 1,
        step_checks=state.step_checks + 1,
        step_usable_checks=state.step_usable_checks + usable,
        error_loglik=loglik,
        errors_old=errors_old,
        errors_new=errors_new,
        hits_old=hits_old,
        hits_new=hits_new,
        hits_seen=state.hits_seen + seen,
        latency=latency,
        step_hits_new=step_hits_new,
        step_errors_new=state.step_errors_new + np.where(new_seen, e_new, 0.0),
        step_hits_all=state.step_hits_all + float(seen.sum()),
        last_p99_new=np.where(n_new >= P99_GUARD_MIN_HITS, p99_new, np.nan),
        step_p99_guard=step_p99_guard,
        last_check_usable=usable,
        step_latency=step_latency,
        step_hits_seen=state.step_hits_seen + seen,
        evaluation=None,
    )
    metrics, guardrails = _evaluate(new_state)
    return replace(new_state, evaluation=(metrics, guardrails), stopped=tuple(_stop_reasons(metrics, guardrails)))


def _weight(state: GateState) -> float:
    """The current step's weight (percent to the new side)."""
    steps = state.plan.policy.steps
    return steps[min(state.step_index, len(steps) - 1)]


def _latency_increment(
    metric: str,
    n_old: FloatArray,
    n_new: FloatArray,
    old: FloatArray,
    new: FloatArray,
    sigma: FloatArray,
    need: int | None = None,
) -> FloatArray:
    """Rows (W, Σwy, Σwy², k, Σw·c², Σw·old, Σw², Σw²y, Σw²y²) added by one interval; zero where it is not usable.
    ``c²``: model variance of y per effective hit (lognormal with shape ``sigma`` from the old side's p50/p95;
    without them a shape of 0.5 is assumed, the empirical variance still applies). ``need``: hits per side
    (default ``min_interval_hits(metric)``). The p99 guardrail passes the limit as ``old`` with ``n_old``
    infinite (a constant: W is the new side's hits)."""
    need = min_interval_hits(metric) if need is None else need
    usable = (n_old >= need) & (n_new >= need) & (old > 0) & (new > 0)
    s = np.where(np.isfinite(sigma), sigma, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(usable, 1.0 / (1.0 / n_old + 1.0 / n_new), 0.0)
        y = np.log(new / old)
        if metric == "avg_ms":
            c2 = np.expm1(s * s)  # CV² of a lognormal latency
            # E[ln(mean of n)] = ln(mean) - ln(1 + CV²/n) / 2 (Fenton-Wilkinson; exact at n = 1 for a lognormal,
            # where the delta method's CV²/2n over-corrects by 70% at sigma 1): undo it on both sides
            y = y + 0.5 * (np.log1p(c2 / n_new) - np.log1p(c2 / n_old))
        else:
            q = _QUANTILES[metric]
            c2 = s * s * q * (1 - q) / (math.exp(-0.5 * float(special.ndtri(q)) ** 2) / math.sqrt(2 * math.pi)) ** 2
    y = np.where(usable, np.clip(y, -LATENCY_CLIP, LATENCY_CLIP), 0.0)
    old_level = np.where(usable, old, 0.0)
    w2 = w * w
    return np.stack(
        [
            w,
            w * y,
            w * y * y,
            usable.astype(float),
            w * np.where(usable, c2, 0.0),
            w * old_level,
            w2,
            w2 * y,
            w2 * y * y,
        ]
    )


# --- decisions -----------------------------------------------------------------------------------------


def _finding(lower: float, upper: float, threshold: float, usable: bool) -> Finding:
    if not usable:
        return Finding.NO_DATA
    if lower > threshold:
        return Finding.WORSE
    if upper <= threshold:
        return Finding.WITHIN
    return Finding.OPEN


def _error_decisions(state: GateState) -> list[MetricDecision]:
    """Per endpoint, the error-rate ratio's confidence sequence and the absolute excess check."""
    plan = state.plan
    a = plan.alpha("error_rate")
    log_m = ratio_log_mixture(state.error_loglik)
    lo, hi = _grid_cs(log_m, a / 2)
    # A stop needs the ratio shown beyond (false with prob <= a/2 when it is not) AND the absolute excess
    # p_new - p_old shown beyond, from the larger of two lower bounds: p_new_lo - p_old_hi (each side's own
    # sequence at a/4) and (r_lo - 1) p_old_lo (false with prob <= a in all when the excess is not beyond).
    # A GO needs either part shown within (the ratio's upper bound, or p_new_hi - p_old_lo).
    thr = np.array([1 + t.relative for t in plan.tolerances["error_rate"]])
    n = len(plan.endpoints)
    excess_lo, excess_hi = np.full(n, -np.inf), np.full(n, np.inf)
    stop_rows = np.flatnonzero(lo > np.log(thr))  # only these can stop: their absolute excess decides
    go_rows = np.flatnonzero(hi > np.log(thr))  # only these need the absolute excess to be shown within
    if stop_rows.size or go_rows.size:  # one vectorised bisection: new lo, old lo, old hi | new hi, old lo
        e_new, h_new, e_old, h_old = state.errors_new, state.hits_new, state.errors_old, state.hits_old
        succ = np.concatenate([e_new[stop_rows], e_old[stop_rows], e_old[stop_rows], e_new[go_rows], e_old[go_rows]])
        tri = np.concatenate([h_new[stop_rows], h_old[stop_rows], h_old[stop_rows], h_new[go_rows], h_old[go_rows]])
        up = np.repeat([False, False, True, True, False], [stop_rows.size] * 3 + [go_rows.size] * 2)
        p_new_lo, p_old_lo, p_old_hi, p_new_hi, p_old_lo_go = np.split(
            bernoulli_bound(succ, tri, a / 4, upper=up), np.cumsum([stop_rows.size] * 3 + [go_rows.size])
        )
        excess_lo[stop_rows] = np.maximum(p_new_lo - p_old_hi, np.expm1(lo[stop_rows]) * p_old_lo)
        excess_hi[go_rows] = p_new_hi - p_old_lo_go
    out = []
    for i, key in enumerate(plan.endpoints):
        tol = plan.tolerances["error_rate"][i]
        total = int(state.errors_old[i] + state.errors_new[i])
        ratio_thr = 1 + tol.relative
        r_lo, r_hi = math.exp(lo[i]), math.exp(hi[i])
        rate_new = state.errors_new[i] / state.hits_new[i] if state.hits_new[i] else math.nan
        rate_old = state.errors_old[i] / state.hits_old[i] if state.hits_old[i] else math.nan
        estimate = rate_new / rate_old if rate_old > 0 else (math.inf if rate_new > 0 else None)
        if state.hits_new[i] == 0:
            finding, reason = Finding.NO_DATA, "no interval with requests on both sides"
        elif r_lo > ratio_thr and excess_lo[i] > tol.absolute:
            finding = Finding.WORSE
            reason = f"error rate x{r_lo:.2f}+ and +{excess_lo[i]:.2%}+ beyond tolerance"
        elif r_hi <= ratio_thr or excess_hi[i] <= tol.absolute:
            finding = Finding.WITHIN
            shown = f"ratio <= x{r_hi:.2f}" if r_hi <= ratio_thr else f"excess <= +{max(excess_hi[i], 0):.2%}"
            reason = f"error rate shown within tolerance ({shown})"
        else:
            finding = Finding.OPEN
            reason = f"error-rate ratio x{r_lo:.2f}-x{r_hi:.2f} straddles x{ratio_thr:.2f}"
        out.append(
            MetricDecision(
                key,
                "error_rate",
                finding,
                None if estimate is None else float(estimate),
                r_lo,
                r_hi,
                ratio_thr,
                total,
                reason,
            )
        )
    return out


def _latency_decisions(state: GateState, metric: str) -> list[MetricDecision]:
    """Per endpoint, the weighted mean ln ratio's normal-mixture confidence sequence against tolerance."""
    plan = state.plan
    w, swy, _, k, _, swold = state.latency[metric][:6]
    side_alpha = one_sided_level(plan.alpha(metric))
    rho = normal_mixture_rho(LATENCY_V_OPT, side_alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = swy / w
        v = _latency_variance(state.latency[metric])
        half = normal_mixture_bound(v, side_alpha, rho) / w
        old_level = swold / w
    out = []
    for i, key in enumerate(plan.endpoints):
        tol = plan.tolerances[metric][i]
        usable = k[i] >= MIN_LATENCY_INTERVALS and w[i] > 0
        threshold = 1 + tol.relative
        if usable and old_level[i] > 0:
            threshold = max(threshold, 1 + tol.absolute / old_level[i])
        lower = math.exp(mean[i] - half[i]) if usable else None
        upper = math.exp(mean[i] + half[i]) if usable else None
        finding = _finding(lower or 0.0, upper or math.inf, threshold, usable)
        if finding is Finding.NO_DATA:
            reason = (
                f"{int(k[i])} usable intervals (needs {MIN_LATENCY_INTERVALS} with >= "
                f"{min_interval_hits(metric)} hits per side)"
            )
        else:
            reason = f"{metric} x{lower:.3f}-x{upper:.3f} vs tolerance x{threshold:.3f}"
        out.append(
            MetricDecision(
                key,
                metric,
                finding,
                math.exp(mean[i]) if usable else None,
                lower,
                upper,
                threshold,
                int(k[i]),
                reason,
            )
        )
    return out


def _guardrails(state: GateState) -> list[GuardrailBreach]:
    """Absolute limits on the new side, each SHOWN broken in the current step at its step alpha
    (``guardrail_step_alpha``): the step's error rate above ``error_rate_limit`` (beta-binomial lower bound);
    the p99 above ``p99_limit_ms``: the weighted (by hits) mean of ln(p99 / limit) over the step's intervals with
    at least ``P99_GUARD_MIN_HITS`` new-side hits, its one-sided normal-mixture lower bound above 0 (variance:
    the larger of a p99's lognormal model, shape from the new side's p50/p95, and the empirical one), like the
    latency tests. Not the newest interval's raw p99: the p99 of 100 hits is their second largest, and with a
    limit 1.5x the true p99 (lognormal, 150 hits a check) 63 % of endpoints broke it within 120 checks (a false
    stop, exit 4). An x4 breach on >= 100 hits still stops at its first interval."""
    policy, plan = state.plan.policy, state.plan
    out = []
    if policy.error_rate_limit is not None:
        lower = bernoulli_bound(state.step_errors_new, state.step_hits_new, guardrail_step_alpha(plan), upper=False)
        for i in np.flatnonzero(lower > policy.error_rate_limit):
            observed = state.step_errors_new[i] / state.step_hits_new[i]
            out.append(
                GuardrailBreach(
                    plan.endpoints[i],
                    "error_rate",
                    float(observed),
                    policy.error_rate_limit,
                    f"new side's error rate {observed:.2%} (at least {lower[i]:.2%}) above the limit "
                    f"{policy.error_rate_limit:.2%}",
                )
            )
    if policy.p99_limit_ms is not None:
        block = state.step_p99_guard
        side_alpha = one_sided_level(guardrail_step_alpha(plan, "p99_guardrail"))
        rho = normal_mixture_rho(P99_GUARD_V_OPT, side_alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = block[1] / block[0]
            lower = np.where(
                block[0] > 0, mean - normal_mixture_bound(_latency_variance(block), side_alpha, rho) / block[0], -np.inf
            )
        for i in np.flatnonzero(lower > 0):
            observed = policy.p99_limit_ms * math.exp(mean[i])
            out.append(
                GuardrailBreach(
                    plan.endpoints[i],
                    "p99_ms",
                    float(observed),
                    policy.p99_limit_ms,
                    f"new side's p99 {observed:.0f} ms (at least {policy.p99_limit_ms * math.exp(lower[i]):.0f} ms) "
                    f"above the limit {policy.p99_limit_ms:.0f} ms",
                )
            )
    return out


def guardrail_step_alpha(plan: GatePlan, test: str = "error_guardrail") -> float:
    """A guardrail's alpha in one step (``error_guardrail`` or ``p99_guardrail``): its test's alpha split evenly
    over the steps (each step starts a new sequence on the step's own counts, so the steps are a union bound
    too)."""
    return plan.alpha(test) / len(plan.policy.steps)


def _split(state: GateState, weight: float) -> SplitCheck:
    """The new side's share of the step's requests against the weight: a mismatch is shown when the share's
    anytime-valid binomial confidence sequence (``bernoulli_cs`` at the policy's alpha) lies wholly outside
    ``weight × (1 ± split_tolerance)``; ``matches`` is True when it lies wholly inside, None while it
    straddles an edge (or under ``SPLIT_MIN_HITS`` requests). Requests are taken as independent draws: DNS
    resolver caches make them clump, which a wide ``split_tolerance`` absorbs."""
    hits = int(state.step_hits_all)
    if hits < SPLIT_MIN_HITS:
        return SplitCheck(weight, None, hits, None)
    new_hits = float(state.step_hits_new.sum())
    observed = 100.0 * new_hits / state.step_hits_all
    low, high = bernoulli_cs(np.array(new_hits), np.array(state.step_hits_all), state.plan.policy.alpha)
    tolerance = state.plan.policy.split_tolerance * weight / 100.0
    band = (weight / 100.0 - tolerance, weight / 100.0 + tolerance)
    matches: bool | None = None
    if float(low) > band[1] or float(high) < band[0]:
        matches = False
    elif float(low) >= band[0] and float(high) <= band[1]:
        matches = True
    return SplitCheck(weight, observed, hits, matches)


def _evaluate(state: GateState) -> tuple[tuple[MetricDecision, ...], tuple[GuardrailBreach, ...]]:
    """Every test's finding and the guardrail breaches of the current step."""
    metrics = _error_decisions(state)
    for metric in state.plan.policy.latency_metrics:
        metrics += _latency_decisions(state, metric)
    return tuple(metrics), tuple(_guardrails(state))


def _stop_reasons(metrics: Sequence[MetricDecision], guardrails: Sequence[GuardrailBreach]) -> list[str]:
    reasons = [f"guardrail {g.endpoint}: {g.reason}" for g in guardrails]
    return reasons + [_reason_line(m) for m in metrics if m.finding is Finding.WORSE]


def _latency_variance(block: FloatArray) -> FloatArray:
    """The variance process V of a latency test (and of the p99 guardrail): the largest of the model's (Σw·c²),
    the empirical one under ``Var(y_i) = c²/w_i`` (the weighted residual variance times W) and the robust
    (sandwich) one, ``Σ w_i² (y_i - mean)² k/(k-1)``, which holds whatever the variance of each interval. Without
    the last, a drift of the new side's own (sd 0.3 a minute, not shared with the old side) across the 1 % and
    50 % steps crossed a one-sided 24 % boundary on 44 % of no-change paths (the first estimate under-counts
    a variance that does not shrink with w when the weights differ)."""
    w, swy, swy2, k, swc2, _, sw2, sw2y, sw2y2 = block
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = swy / w
        emp_c2 = np.maximum(swy2 - w * mean * mean, 0.0) / np.maximum(k - 1, 1)
        robust = np.maximum(sw2y2 - 2 * mean * sw2y + mean * mean * sw2, 0.0) * k / np.maximum(k - 1, 1)
    return np.asarray(np.maximum(np.maximum(swc2, emp_c2 * w), robust))


def _decidable(state: GateState, metric: str, rows: FloatArray) -> BoolArray:
    """For the endpoints ``rows``, whether ``metric`` could be shown within tolerance at this weight: its
    confidence sequence, projected to the maximum hold and centred on "no change", narrower than
    ``DECIDABLE_FRACTION`` of the tolerance. The projection splits the endpoint's requests per check in this
    step (either side) by the WEIGHT, not by what each side reported: an endpoint the new side does not
    serve at all (or the old side, or a split that did not take effect) is decidable, so it holds the GO
    back. Latency: per check, ``n_new = T w`` and ``n_old = T (1 - w)`` add ``1 / (1/n_new + 1/n_old)`` to W
    and one usable interval when both reach ``min_interval_hits`` (none otherwise); the variance per unit
    of W is the one measured IN THIS STEP (the larger of the model's and the empirical one over the step's
    intervals, ``step_latency``; the model's over the cutover while the step has fewer than two usable
    intervals; a sigma-0.5 lognormal before any). Not the whole cutover's empirical variance: a
    load-dependent regression that appears at this step makes the ln ratios jump (0 before, ln 2 now), which
    inflated that variance enough to call a 2x slower endpoint with thousands of requests a side "not
    decidable" and let it GO. Not the model's alone either: heavy tails the lognormal model misses would make
    endpoints with no change decidable and never shown within (35 % of the benchmark's none/heavy cutovers
    then asked a person). Error rate: both sides' hits grow
    the same way with the pooled error rate on both; decidable when the ratio (normal approximation of the
    mixture: information E_old E_new / E, prior variance ``ERROR_PRIOR_SD``²) or the absolute excess
    (``bernoulli_bound`` at the projected counts) would be narrow enough."""
    plan, policy = state.plan, state.plan.policy
    idx = rows.astype(int)
    w_new = _weight(state) / 100.0
    remaining = max(policy.max_hold_checks - state.step_checks, 0)
    per_check = state.step_hits_seen[idx] / max(state.step_checks, 1)  # requests a check, both sides
    new_per, old_per = per_check * w_new, per_check * (1 - w_new)
    fraction = DECIDABLE_FRACTION
    if metric == "error_rate":
        tol = [plan.tolerances["error_rate"][i] for i in idx]
        a = plan.alpha("error_rate")
        h_old = state.hits_old[idx] + remaining * old_per
        h_new = state.hits_new[idx] + remaining * new_per
        total = h_old + h_new
        seen = state.hits_old[idx] + state.hits_new[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            pooled = np.where(seen > 0, (state.errors_old[idx] + state.errors_new[idx]) / seen, 0.0)
            e_old, e_new = pooled * h_old, pooled * h_new
            info = np.where(e_old * e_new > 0, e_old * e_new / (e_old + e_new), 0.0)
            rho = 1 / ERROR_PRIOR_SD**2
            ratio_half = np.where(info > 0, normal_mixture_bound(info, a / 2, rho) / np.maximum(info, 1e-300), np.inf)
        ratio_ok = ratio_half <= fraction * np.log1p([t.relative for t in tol])
        p_new_hi, p_old_lo = np.split(
            bernoulli_bound(
                np.concatenate([pooled * h_new, pooled * h_old]),
                np.concatenate([h_new, h_old]),
                a / 4,
                upper=np.repeat([True, False], idx.size),
            ),
            2,
        )
        excess_ok = (total > 0) & (p_new_hi - p_old_lo <= fraction * np.array([t.absolute for t in tol]))
        return np.asarray(ratio_ok | excess_ok)
    block = state.latency[metric][:, idx]
    w, k, swold = block[0], block[3], block[5]
    need = min_interval_hits(metric)
    comparable = (new_per >= need) & (old_per >= need)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_check = np.where(comparable, new_per * old_per / (new_per + old_per), 0.0)
        w_end = w + remaining * w_check
        k_end = k + remaining * comparable
        step_block = state.step_latency[metric][:, idx]
        step_w, step_k = step_block[0], step_block[3]
        per_w = np.where(
            (step_w > 0) & (step_k >= 2),
            _latency_variance(step_block) / step_w,  # this step's own (no drift between steps in it)
            np.where(w > 0, block[4] / w, math.expm1(0.25)),  # the model's, before the step has two intervals
        )
        side_alpha = one_sided_level(plan.alpha(metric))
        rho = normal_mixture_rho(LATENCY_V_OPT, side_alpha)
        half = normal_mixture_bound(per_w * w_end, side_alpha, rho) / w_end
        level = np.where(w > 0, swold / w, np.nan)
    tol = [plan.tolerances[metric][i] for i in idx]
    threshold = np.array([1 + t.relative for t in tol])
    absolute = np.array([t.absolute for t in tol])
    with np.errstate(divide="ignore", invalid="ignore"):
        threshold = np.where(level > 0, np.maximum(threshold, 1 + absolute / level), threshold)
        return np.asarray((w_end > 0) & (k_end >= MIN_LATENCY_INTERVALS) & (half <= fraction * np.log(threshold)))


def _reason_line(metric: MetricDecision) -> str:
    """``endpoint metric: reason``, without naming the metric twice (latency reasons begin with it)."""
    if metric.reason.startswith(f"{metric.metric} "):
        return f"{metric.endpoint} {metric.reason}"
    return f"{metric.endpoint} {metric.metric}: {metric.reason}"


def _shown_changed(metric: MetricDecision) -> bool:
    """Whether the metric's confidence sequence already excludes "no change" on the worse side (its lower
    bound above a ratio of 1): shown slower (or more erroring) than the old side, not yet beyond tolerance.
    Such a metric is never waved through as "not decidable at this weight": the data point to a regression
    and only its size is open. Under no change this happens with at most the test's alpha (the same bound
    that would have to cross the tolerance for a STOP), so it costs clean cutovers nothing measurable."""
    return metric.lower is not None and metric.lower > 1.0


def _go_blockers(
    state: GateState, metrics: list[MetricDecision], candidates: list[int], position: Mapping[str, int]
) -> list[MetricDecision]:
    """The metrics (indices ``candidates`` of ``metrics``: meaningful traffic, not shown within) that hold the
    GO back: those decidable at this weight, and those not decidable but already shown worse than no change.
    Marks the not decidable ones in ``metrics`` (``decidable`` False, the reason says so)."""
    weight = _weight(state)
    blocking = []
    for metric in {metrics[j].metric for j in candidates}:
        group = [j for j in candidates if metrics[j].metric == metric]
        rows = np.array([position[metrics[j].endpoint] for j in group], dtype=float)
        for j, ok in zip(group, _decidable(state, metric, rows), strict=True):
            if not ok:
                why = f"not decidable at {weight:g} %"
                if _shown_changed(metrics[j]):
                    why += ", but already shown worse than no change: it holds the GO"
                metrics[j] = replace(metrics[j], decidable=False, reason=f"{metrics[j].reason}; {why}")
            if ok or _shown_changed(metrics[j]):
                blocking.append(metrics[j])
    return blocking


def decide(state: GateState) -> StepDecision:
    """The decision for the current step after the checks so far (see ``Action``).

    STOP beats everything and is latched (``update``). GO needs the minimum hold (checks with data), a usable newest
    check, a split not shown to mismatch, and every endpoint with meaningful traffic shown within tolerance on every
    ``go_metrics`` metric. Meaningful traffic: at least ``min_traffic_share`` of the requests seen over the cutover
    or in this step (an endpoint quiet during a long step that carries 5 % of the next one's requests was 0.2 % of
    the cutover's and went unjudged) AND decidable at this weight (``_decidable``: the step's traffic could show the
    tolerance by the maximum hold). An endpoint's metric that is not decidable at this weight is reported so
    (``MetricDecision.decidable`` False, "not decidable at this weight") and does not hold the GO back: it was not
    shown worse, and its evidence carries into the next, heavier step, where it may stop the cutover; unless it is
    already shown changed for the worse (``_shown_changed``: lower bound above no change), which holds the GO back
    like a decidable metric. A judged metric outside ``go_metrics`` (a percentile) need not be shown within, but one
    already shown changed for the worse holds the GO back too (a p95 +10 % against a 5 % tolerance, x1.001-x1.173 at
    the 50 % step's minimum hold, went to 100 % with the mean shown within). NO_DATA is never within; a NO_DATA that
    the step could have filled blocks the GO.

    At the last step (100 %) there is no old side: only the guardrails decide (STOP on a breach; GO, i.e.
    completed, after the minimum hold of checks with new-side data). At the maximum hold an undecided step
    HOLDs (or, with ``MaxHold.ADVANCE`` and nothing shown worse, goes)."""
    plan, policy = state.plan, state.plan.policy
    weight = _weight(state)
    evaluated, guardrails = state.evaluation if state.evaluation is not None else _evaluate(state)
    metrics = list(evaluated)
    split = _split(state, weight)

    def result(action: Action, reasons: list[str]) -> StepDecision:
        return StepDecision(
            action, state.step_index, weight, state.step_checks, tuple(reasons), tuple(metrics), guardrails, split
        )

    stop = list(state.stopped) or _stop_reasons(metrics, guardrails)
    if stop:
        return result(Action.STOP, stop)

    last_step = weight >= 100.0
    total, in_step = state.hits_seen, state.step_hits_seen
    share = total / total.sum() if total.sum() > 0 else np.zeros_like(total)
    if in_step.sum() > 0:  # an endpoint quiet so far that carries this step's traffic has meaningful traffic too
        share = np.maximum(share, in_step / in_step.sum())
    position = {key: i for i, key in enumerate(plan.endpoints)}
    candidates = [
        j
        for j, m in enumerate(metrics)
        if not last_step
        and m.metric in policy.go_metrics
        and share[position[m.endpoint]] >= policy.min_traffic_share
        and m.finding is not Finding.WITHIN
    ]
    blocking = _go_blockers(state, metrics, candidates, position)
    for j, m in enumerate(metrics):  # a judged metric outside go_metrics (a p95) can only stop, but one already
        # shown slower than no change holds the GO like _shown_changed does for an undecidable GO metric: at the
        # last compared step the GO would carry its regression to 100 %, where nothing compares it any more
        if (
            not last_step
            and m.metric not in policy.go_metrics
            and share[position[m.endpoint]] >= policy.min_traffic_share
            and m.finding is Finding.OPEN
            and _shown_changed(m)
        ):
            metrics[j] = replace(m, reason=f"{m.reason}; already shown worse than no change: it holds the GO")
            blocking.append(metrics[j])
    undecidable = sum(not m.decidable for m in metrics)
    reasons = [_reason_line(m) for m in blocking]
    if not state.last_check_usable:
        side = "on the new side" if last_step else "on both sides"
        reasons.insert(0, f"newest check has no interval with requests {side}")
    if split.matches is False:
        reasons.insert(0, f"observed split {split.observed_pct:.2f}% does not match the weight {weight:g}%")
    if not share.any():
        reasons.insert(0, "no requests seen yet")
    if not reasons and state.step_usable_checks >= policy.min_hold_checks:
        if last_step:
            why = "guardrails held for the minimum hold at 100 % (no old side left to compare)"
        else:
            why = "every endpoint with meaningful traffic shown within tolerance"
            if undecidable:
                why += f" ({undecidable} tests not decidable at {weight:g} %, none shown worse)"
        return result(Action.GO, [why])
    if state.step_checks >= policy.max_hold_checks:
        if policy.on_max_hold is MaxHold.ADVANCE and state.last_check_usable and split.matches is not False:
            return result(Action.GO, ["maximum hold passed with nothing shown worse (time-boxed step)", *reasons])
        return result(Action.HOLD, ["maximum hold passed undecided", *reasons])
    if state.step_usable_checks < policy.min_hold_checks:
        reasons.insert(0, f"minimum hold: {state.step_usable_checks} of {policy.min_hold_checks} checks with data")
    return result(Action.WAIT, reasons)

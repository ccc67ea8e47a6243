"""What a comparison concludes: verdicts per metric, endpoint and run, with the figures behind them.

Pure data (frozen dataclasses and enums). Renderers (HTML, JSON, JUnit, Markdown) read these and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from parity.model import Endpoint

__all__ = [
    "Bottleneck",
    "Change",
    "ComparisonMode",
    "Direction",
    "EndpointResult",
    "EstimateKind",
    "GeneratorInfo",
    "Incomparability",
    "MetricResult",
    "ParityResult",
    "PartialSide",
    "SaturationKnee",
    "SideInfo",
    "StagePoint",
    "Statistics",
    "Verdict",
]


class Verdict(Enum):
    """Outcome of a judgement. ``INCONCLUSIVE`` means not enough data to decide — never a pass."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"

    @property
    def severity(self) -> int:
        """Ordering for "worst first": fail > inconclusive > marginal > pass."""
        return {"pass": 0, "marginal": 1, "inconclusive": 2, "fail": 3}[self.value]


class Direction(Enum):
    """Which way a metric gets worse."""

    LOWER_IS_BETTER = "lower-is-better"  # latency, error rate
    HIGHER_IS_BETTER = "higher-is-better"  # throughput


class Change(Enum):
    """How the candidate moved relative to the baseline, beyond the practical tolerance or not."""

    WORSE = "worse"
    BETTER = "better"
    SAME = "same"  # within tolerance
    UNKNOWN = "unknown"  # one side missing or too few samples


class EstimateKind(Enum):
    """What an effect estimate is."""

    RATIO = "ratio"  # candidate / baseline
    DIFFERENCE = "difference"  # candidate − baseline, in the metric's unit


class ComparisonMode(Enum):
    """How the two sides were measured."""

    CONCURRENT = "concurrent-a/b"  # same load, same time, two targets: the fairest comparison
    BEFORE_AFTER = "before/after"  # different times (and loads): less certain


@dataclass(frozen=True)
class Statistics:
    """The test behind a metric's verdict (``parity.judge.stats``), for people and for parity.json.

    ``method``: the test in words. ``tested``: False when no test was possible (summary figures only:
    the verdict rests on the tolerance alone). ``estimate``: the effect (``estimate_kind``: a ratio
    candidate / baseline, or a difference candidate − baseline in the metric's unit) with its two-sided
    ``confidence`` ``interval`` (None: not computable). ``p_value``: one-sided, for "candidate worse";
    ``adjusted_p``: Holm-adjusted over the ``family_size`` tests of the run (1.0 when the test could not
    reach ``alpha`` and was left out of the family; None when untested). ``details``: the statistics
    behind the p-value (U, z, counts above a threshold ...).
    """

    method: str
    tested: bool
    estimate: float | None
    estimate_kind: EstimateKind
    interval: tuple[float, float] | None
    confidence: float
    p_value: float | None
    adjusted_p: float | None
    alpha: float
    family_size: int
    details: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class MetricResult:
    """One metric of one endpoint, both sides and the rules that judged it.

    ``ratio`` = candidate / baseline (None when either is missing or the baseline is 0). ``delta`` =
    candidate − baseline in the metric's unit. ``samples`` = (baseline, candidate) sample counts.
    ``statistics``: the significance test behind the verdict (None when the metric was not judged: a
    side missing, too few samples, or a saturated generator).

    ``gated``: the metric counts towards the endpoint's verdict (False: its gate is off, its latency kind is
    not comparable with the other side's, or throughput under unequal offered load — shown, not judged).
    ``comparable``: False when the two sides measured different kinds of latency (server vs client side).
    ``looks_worse``: the point estimates put the candidate beyond the tolerance the bad way, whatever the
    evidence (what an undecided metric looks like). ``needs``: requests per side that would decide an
    undecided metric (None: decided, or nothing to go on).
    """

    metric: str
    unit: str
    direction: Direction
    baseline: float | None
    candidate: float | None
    ratio: float | None
    delta: float | None
    change: Change
    verdict: Verdict
    reason: str
    tolerance: float
    min_delta: float
    min_samples: int
    samples: tuple[int, int]
    statistics: Statistics | None = None
    gated: bool = True
    comparable: bool = True
    looks_worse: bool = False
    needs: int | None = None


@dataclass(frozen=True)
class EndpointResult:
    """The verdict for one endpoint and why. ``traffic_share`` is its share of baseline requests.

    ``latency_basis`` says which latency the latency metrics judged: ``intended`` (from the planned send
    time, both sides) or the sides' latency kinds as measured, e.g. ``server/service-time``. ``critical``:
    named critical in the config (its failure, or its not being judged, decides the run).
    """

    endpoint: Endpoint
    verdict: Verdict
    reasons: tuple[str, ...]
    metrics: tuple[MetricResult, ...]
    baseline_count: int | None
    candidate_count: int | None
    traffic_share: float | None
    latency_basis: str = ""
    critical: bool = False

    def metric(self, name: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.metric == name), None)

    @property
    def looks_worse(self) -> tuple[MetricResult, ...]:
        """Undecided gated metrics whose point estimates are beyond tolerance the bad way (an endpoint that
        could not be judged but looks worse: never hidden behind a green run)."""
        if self.verdict is not Verdict.INCONCLUSIVE:
            return ()
        return tuple(m for m in self.metrics if m.gated and m.verdict is Verdict.INCONCLUSIVE and m.looks_worse)

    @property
    def needs(self) -> int | None:
        """Requests per side that would decide this endpoint's undecided gated metrics (the most any needs;
        None when nothing is undecided or nothing is known)."""
        needed = [m.needs for m in self.metrics if m.gated and m.verdict is Verdict.INCONCLUSIVE and m.needs]
        return max(needed) if needed else None


@dataclass(frozen=True)
class Bottleneck:
    """A regressed endpoint ranked by what it costs at baseline traffic.

    ``extra_ms_per_min`` = (candidate avg − baseline avg) ms × baseline requests per minute: the extra
    server time the regression adds each minute (0 unless a latency metric got worse beyond tolerance).
    ``extra_errors_per_min`` likewise for errors (0 unless the error rate got worse beyond tolerance).
    """

    rank: int
    endpoint: Endpoint
    verdict: Verdict
    extra_ms_per_min: float
    extra_errors_per_min: float
    baseline_rpm: float
    avg_ratio: float | None
    p95_ratio: float | None
    failed_metrics: tuple[str, ...]


@dataclass(frozen=True)
class StagePoint:
    """One endpoint in one load stage: the stage's planned total load (req/s), the endpoint's own
    achieved rate (req/s), its p95 (ms; None with too few samples) and whether the load generator was
    saturated during the stage (its latency then says nothing about the target)."""

    stage: str
    load_rps: float
    endpoint_rps: float
    samples: int
    p95_ms: float | None
    generator_saturated: bool


@dataclass(frozen=True)
class SaturationKnee:
    """Where one endpoint saturates on one side of a staged (ramp/burst) replay.

    ``stage``/``load_rps``: the first stage whose p95 crossed the SLO or grew faster than linearly with
    load (None: no knee within the stages judged). ``reason`` says which, or why no knee could be found
    (too few samples, generator saturated). ``points``: the latency-vs-load curve, every stage in order.
    """

    endpoint: Endpoint
    side: str  # "baseline" | "candidate"
    stage: str | None
    load_rps: float | None
    reason: str
    points: tuple[StagePoint, ...]


@dataclass(frozen=True)
class GeneratorInfo:
    """How one side's load generator fared (replays only): peak CPU of its busiest process (% of one core),
    the share of sampled intervals above the saturation threshold, late sends, requests still in flight when
    the run ended (sent, never recorded), its own scheduling lag (``peak_lag_ms``; ``lagged_share`` of the
    sampled intervals above ``lag_limit_ms``; None: not measured), and whether its latency was therefore not
    judged (``blamed_generator``: CPU-``saturated`` or ``lagging`` beyond the policy's share)."""

    processes: int
    peak_cpu_percent: float | None
    saturated_share: float | None
    saturation_percent: float
    sent: int
    late_sends: int
    dropped: int
    blamed_generator: bool
    in_flight: int = 0
    peak_lag_ms: float | None = None
    lagged_share: float | None = None
    lag_limit_ms: float = 0.0
    saturated: bool = False
    lagging: bool = False


@dataclass(frozen=True)
class SideInfo:
    """Provenance of one side, for the report's metadata."""

    name: str  # file it came from
    source_kind: str
    description: str
    service: str | None
    env: str | None
    target: str | None
    window_start: datetime
    window_end: datetime
    duration_s: float
    requests: int
    errors: int | None
    endpoints: int
    latency_kind: str
    rate_scale: float
    pair_id: str | None
    generator: GeneratorInfo | None = None


@dataclass(frozen=True)
class Incomparability:
    """Why the two sides' latencies cannot be compared, and the commands that would give a comparable side.

    ``baseline_kind`` / ``candidate_kind``: the latency kinds (``server``, ``service-time``, ``intended``).
    ``reason``: one line for people. ``remedies``: command lines (with placeholders in capitals where the
    harness cannot know the value, e.g. ``OLD_URL``), best first.
    """

    baseline_kind: str
    candidate_kind: str
    reason: str
    remedies: tuple[str, ...]


@dataclass(frozen=True)
class PartialSide:
    """A side that holds only part of its run: a replay stopped early, aborted by a safety rail, with a failed
    or lost worker lane, stopped by a signal, or whose generator left a large part of the schedule unsent.

    ``side``: ``baseline`` or ``candidate``; ``name``: the side's name (the file it came from); ``reasons``: one
    line each, in words, with the Measurement label behind it (``stopped early (complete=no)``).
    What was recorded is still judged: a significant regression in it is real evidence and fails the run, but
    nothing recorded can make the run pass (see :func:`parity.judge.compare.compare`).
    """

    side: str
    name: str
    reasons: tuple[str, ...]

    def describe(self) -> str:
        """``the candidate (new.json) is partial: stopped early (complete=no); aborted: ...``"""
        return f"the {self.side} ({self.name}) is partial: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class ParityResult:
    """The whole comparison: run verdict, per-endpoint results (worst first), bottlenecks, saturation
    knees (staged replays only), provenance. ``alpha``: the run-level false-alarm rate the tests were
    adjusted to (Holm over ``tests`` p-values). ``incomparable``: set when the sides' latency kinds differ
    (server vs client side): latency is then neither passed nor failed. ``throughput_gated``: per-endpoint
    throughput counted towards verdicts (both sides saw the same offered load); else ``throughput_note``
    says why it is only shown. ``partial``: the sides that hold only part of their run (empty: both complete);
    with any, the run is never pass or marginal (at best inconclusive; a regression in what was recorded still
    fails it) and ``reasons`` say so first."""

    verdict: Verdict
    reasons: tuple[str, ...]
    mode: ComparisonMode
    endpoints: tuple[EndpointResult, ...]
    bottlenecks: tuple[Bottleneck, ...]
    baseline: SideInfo
    candidate: SideInfo
    notes: tuple[str, ...]
    knees: tuple[SaturationKnee, ...] = ()
    alpha: float = 0.01
    tests: int = 0
    incomparable: Incomparability | None = None
    throughput_gated: bool = True
    throughput_note: str = ""
    partial: tuple[PartialSide, ...] = ()

    @property
    def complete(self) -> bool:
        """Both sides hold their whole run (no :class:`PartialSide`)."""
        return not self.partial

    def partial_text(self) -> str:
        """The partial sides in one line for people (``partial run: the candidate (x.json) is partial: ...``);
        empty when both sides are complete. Every renderer leads with it."""
        if not self.partial:
            return ""
        return "partial run: " + "; ".join(p.describe() for p in self.partial)

    @property
    def unjudged_looking_worse(self) -> tuple[EndpointResult, ...]:
        """Endpoints that could not be judged but look worse beyond tolerance (most traffic first)."""
        return tuple(e for e in self.endpoints if e.looks_worse)

    def counts(self) -> dict[Verdict, int]:
        """Endpoints per verdict (every verdict present, zeros included)."""
        out = dict.fromkeys(Verdict, 0)
        for e in self.endpoints:
            out[e.verdict] += 1
        return out

"""The cutover's shared vocabulary: what every part of ``parity.cutover`` produces or reads.

The decision core (``parity.judge.sequential``) works on checks and steps; this module adds what the driver,
the shifters, the live APM reader and the reports share: where each environment's APM lives, how the weights
move, and the run as a whole (:class:`CutoverRun`, built from the journal, read by the reports).

Weights are percent of traffic to the NEW environment (0-100). Times are Unix seconds (float) for wall-clock
instants and ms for latencies. Missing data is None, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from parity.judge.sequential import Action, Check, IntervalSummary, StepDecision

__all__ = [
    "ApmSelector",
    "ApmUnavailable",
    "CheckRecord",
    "CutoverRun",
    "LiveApm",
    "Outcome",
    "PersonDecision",
    "Rollback",
    "ShiftError",
    "Shifter",
    "StepRecord",
    "StopExplanation",
    "StopWhy",
]


class Outcome(Enum):
    """How a cutover ended (``cutover.json`` ``outcome``)."""

    COMPLETED = "completed"  # the last step (100 %) was reached
    STOPPED = "stopped"  # a regression or a guardrail breach was shown: rolled back
    HELD = "held"  # undecided at the maximum hold, or a failure (Datadog, AWS): weights kept, a person decides
    ABORTED = "aborted"  # interrupted (Ctrl-C, SIGTERM) or refused before it started


@dataclass(frozen=True)
class ApmSelector:
    """One environment's APM in Datadog: ``trace.<span>`` metrics of ``service`` in ``env``, narrowed by
    ``tags`` (``key:value`` strings, e.g. ``kube_cluster_name:eks-prod``)."""

    service: str
    env: str
    span: str = "rack.request"
    tags: tuple[str, ...] = ()


class ApmUnavailable(Exception):
    """A live APM read failed (401/403/429/5xx, time-out, unexpected answer): no data for this check.
    ``reason`` is one line, without secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveApm(Protocol):
    """Reads one environment's per-endpoint APM figures over ``[start_s, end_s)`` (Unix s)."""

    def interval(self, selector: ApmSelector, start_s: int, end_s: int) -> Mapping[str, IntervalSummary]:
        """Per endpoint (Datadog ``resource_name``) that had hits in the window: hits, errors, avg/pNN/max
        in ms (None when Datadog had no value). An endpoint absent from a successful answer had no hits.
        Raises :class:`ApmUnavailable` when the answer is missing or unusable."""
        ...


class ShiftError(Exception):
    """A weight change or read failed (AWS throttling, access denied, time-out, the command failed, the
    read-back disagrees). ``reason`` is one line, without credentials."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Shifter(Protocol):
    """Moves traffic between the environments."""

    def describe(self, weight_pct: float) -> str:
        """One line saying what ``apply(weight_pct)`` would change (for ``--dry-run`` and the journal)."""
        ...

    def read(self) -> float | None:
        """The live weight to the new environment (percent), or None when it cannot be known (``manual``).
        Raises :class:`ShiftError` when the read fails."""
        ...

    def apply(self, weight_pct: float) -> None:
        """Set the new environment's weight to ``weight_pct`` (and the old one's to 100 - it), wait until
        the change is in effect and verify it. Raises :class:`ShiftError`."""
        ...


@dataclass(frozen=True)
class CheckRecord:
    """One check of a step: the window read, the data (None when APM was unavailable: ``missing`` says
    why) and the gate's decision after it (None when the check brought no data and no decision was taken)."""

    index: int
    step_index: int
    start_s: int
    end_s: int
    check: Check | None
    decision: StepDecision | None
    missing: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """One step: the weight, when it began (the weight in effect, verified) and ended, its checks and how
    it ended (``action`` None: still running or interrupted)."""

    index: int
    weight_pct: float
    started_s: float
    ended_s: float | None
    action: Action | None
    checks: tuple[CheckRecord, ...] = ()

    @property
    def last_decision(self) -> StepDecision | None:
        """The newest decision of the step (None when no check brought data)."""
        for record in reversed(self.checks):
            if record.decision is not None:
                return record.decision
        return None


@dataclass(frozen=True)
class Rollback:
    """The rollback after a stop: the weight set, whether it was applied and verified, and why not."""

    weight_pct: float
    applied: bool
    reason: str | None = None


@dataclass(frozen=True)
class PersonDecision:
    """A person's decision on a held (or interrupted) cutover, journaled before it acted: ``action`` ``watch``
    (watch the same step for another maximum hold), ``go`` (advance to the next step, or complete at the last)
    or ``rollback`` (roll back now; the run ends stopped). ``user``: who (``$USER``; None when unknown)."""

    at_s: float
    step_index: int
    weight_pct: float | None
    action: str
    user: str | None = None


@dataclass(frozen=True)
class StopWhy:
    """One endpoint that stopped the gate and why it is slower: ``metrics`` the tests that stopped it (``avg_ms``,
    ``error_rate``, ``guardrail:error_rate``...), ``sentence`` the explanation's why line (``no explanation:
    <reason>`` when its traces could not tell)."""

    endpoint: str
    metrics: tuple[str, ...]
    sentence: str


@dataclass(frozen=True)
class StopExplanation:
    """Why a stopped cutover's endpoints were slower, from both sides' APM traces over the stopped step's window
    (read after the rollback was applied and journaled). ``why``: per endpoint, in the order explained; ``file``:
    the explain.json written beside the reports (None when not written); ``skipped``: the one-line reason nothing
    was explained (then ``why`` is empty). Never changes the outcome, the rollback or the exit code."""

    why: tuple[StopWhy, ...] = ()
    file: str | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class CutoverRun:
    """A cutover as the reports see it (built from the journal).

    ``final_weight_pct``: the live weight at the end (after a rollback: the rollback weight; None when
    unknown, e.g. a ``manual`` shifter that was not confirmed). ``reasons``: why it ended, in plain words.
    ``settings``: the settings that matter to a reader (steps, holds, interval, alpha, selectors, shifter
    kind, guardrails, tolerances), already plain JSON values. ``unjudged``: endpoints seen with traffic that are
    not in the judged family (``endpoints``, fixed before the first shift), listed and not judged."""

    outcome: Outcome
    final_weight_pct: float | None
    started_s: float
    ended_s: float
    old: ApmSelector
    new: ApmSelector
    endpoints: tuple[str, ...]
    steps: tuple[StepRecord, ...]
    reasons: tuple[str, ...]
    rollback: Rollback | None = None
    guardrail: bool = False
    settings: Mapping[str, object] = field(default_factory=dict)
    unjudged: tuple[str, ...] = ()  # endpoints with traffic that appeared after the family was fixed: listed only
    person_decisions: tuple[PersonDecision, ...] = ()  # a person's go / watch / rollback on a hold, in order
    explanation: StopExplanation | None = None  # a STOP's why, journaled after its end (None: not explained)

"""The cutover driver: walks the steps, reads both sides' live APM every interval, asks the gate, and acts.

Flow of :func:`run_cutover` (every record is in the journal BEFORE the action it announces):

1. read the live weight (a fresh start refuses unless it is below the first step: a cutover under way is
   continued with ``--resume``), fix the endpoint family (``endpoints``, or the old side's resources over
   ``discover_s``), journal ``start``;
2. per step: journal the shift ``intent``, ``apply`` it, journal ``done`` (``failed``: HELD, the reason);
   wait ``settle_s``; then one check per ``interval_s``: window ``k`` of the step is
   ``[t0 + k·interval, t0 + (k+1)·interval)`` (whole seconds, ``t0`` = verified + settle), read once it is
   ``delay_s`` old. Both sides are read; an endpoint absent from a successful answer had no hits there
   (``IntervalSummary(0, 0)``); a failed read (:class:`ApmUnavailable`) is a missing check: journaled, no
   update, no decision (``max_missing_checks`` in a row: HELD). Otherwise ``update`` + ``decide``, journal the
   check and the decision, then act: STOP → roll back to ``rollback_weight`` (exit 1; a guardrail breach: 4),
   GO → the next step, HOLD → HELD (exit 3, weights kept), WAIT → the next check;
3. the last step (100 %) has no old side to compare: its checks watch the new side's guardrails until
   ``min_hold_s`` of checks with new-side traffic passed (COMPLETED); a breach there still rolls back;
4. journal ``end``, build the :class:`CutoverRun` from the journal (:func:`run_from_journal`), write the
   reports, send the Datadog event (a failure is one warning line).

``--resume`` rebuilds the gate by replaying the journaled checks through ``update``/``next_step`` (a replayed
decision that differs from the journaled one — a changed ``[compare]`` policy — is refused), reads the live
weight first and never re-applies blindly (see :func:`run_cutover`). A HELD cutover is the person's to continue
(``person``): ``watch`` the same step for another maximum hold (the default of ``--resume``), ``go`` to the next
step, or ``rollback`` now (the run ends stopped); each is journaled (``person``, with ``$USER``) before it acts.
Ctrl-C / SIGTERM (``KeyboardInterrupt`` / :class:`parity.errors.Interrupted`) journal ``interrupted``: the run is
ABORTED with the weights unchanged, and resumable.

The driver never prints: it talks through ``progress`` (one line each). Times are Unix seconds (``clock``),
waits go through ``sleep``; weights are percent to the new environment.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity import version
from parity.cutover.journal import (
    JOURNAL_NAME,
    Journal,
    decode_check,
    decode_decision,
    decode_explanation,
    encode_check,
    encode_decision,
    encode_explanation,
    read_journal,
    repair,
)
from parity.cutover.model import (
    ApmSelector,
    ApmUnavailable,
    CheckRecord,
    CutoverRun,
    LiveApm,
    Outcome,
    PersonDecision,
    Rollback,
    Shifter,
    ShiftError,
    StepRecord,
    StopExplanation,
)
from parity.cutover.settings import CutoverSettings, plain_settings, policy_of, redact, secret_values
from parity.cutover.shifters import WEIGHT_EPS, format_weight, make_shifter, parse_weight
from parity.errors import (
    EXIT_ABORTED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    BadInput,
    Interrupted,
)
from parity.judge.policy import Policy
from parity.judge.sequential import (
    Action,
    Check,
    CutoverPolicy,
    EndpointInterval,
    GatePlan,
    GateState,
    IntervalSummary,
    StepDecision,
    decide,
    next_step,
    plan_gate,
    start,
    update,
)

if TYPE_CHECKING:
    from parity.cutover.report import CutoverEvent

__all__ = [
    "MAX_BACKFILL_CHECKS",
    "PERSON_ACTIONS",
    "RESUME_FREE_KEYS",
    "cutover_exit_code",
    "dry_run_lines",
    "event_of",
    "make_shifter",
    "run_cutover",
    "run_from_journal",
    "summary_of",
    "write_reports",
]

#: Windows a resumed cutover reads late at most (the newest ones); older missed windows are skipped (never
#: zero-filled: the gate simply does not see them).
MAX_BACKFILL_CHECKS = 30
#: What a person can decide on a held cutover (``parity cutover --resume`` / ``--resume --go`` /
#: ``--rollback``): watch the same step for another maximum hold, advance, or roll back now.
PERSON_ACTIONS = ("watch", "go", "rollback")
#: ``[cutover]`` keys (dotted inside tables) that ``--resume`` lets change: they neither decide nor change the
#: plan (where the reports go, when to hold on missing data, the event's tags, the Datadog site, discovery that
#: already happened, time-outs, whether a STOP is explained). Any other change is refused, naming the key.
RESUME_FREE_KEYS = frozenset(
    {"out", "max_missing_checks", "datadog_tags", "site", "dd_url", "discover_s", "shifter.timeout_s",
     "shifter.insync_timeout_s", "explain"}
)  # fmt: skip
_ZERO = IntervalSummary(hits=0, errors=0)
_LATENCIES = ("avg_ms", "p50_ms", "p75_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


def _quiet(_line: str) -> None:
    pass


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= WEIGHT_EPS


def _w(weight: float | None) -> str:
    return "unknown" if weight is None else f"{format_weight(weight)}%"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


# --- endpoint keys --------------------------------------------------------------------------------------


def _key_function(settings: CutoverSettings) -> Callable[[str], str]:
    """resource_name -> endpoint key (``METHOD /route`` through the route map, else the resource as is)."""
    if settings.routes is None:
        return lambda resource: resource
    from parity.sources.routes import read_route_map

    route_map = read_route_map(settings.routes)

    def key(resource: str) -> str:
        endpoint = route_map.resolve(resource)
        return resource if endpoint is None else endpoint.key

    return key


def _merge(parts: Sequence[IntervalSummary]) -> IntervalSummary:
    """Several resources of one endpoint in one interval: counts add, the mean is hit-weighted, the max is the
    max; percentiles cannot be merged from summaries and are None (missing, never guessed)."""
    if len(parts) == 1:
        return parts[0]
    hits = sum(p.hits for p in parts)
    avg = None
    if hits > 0 and all(p.avg_ms is not None or p.hits == 0 for p in parts):
        avg = sum((p.avg_ms or 0.0) * p.hits for p in parts) / hits
    maxima = [p.max_ms for p in parts if p.hits > 0]
    return IntervalSummary(
        hits=hits,
        errors=sum(p.errors for p in parts),
        avg_ms=avg,
        max_ms=None if not maxima or any(m is None for m in maxima) else max(m for m in maxima if m is not None),
    )


def _by_key(answer: Mapping[str, IntervalSummary], key: Callable[[str], str]) -> dict[str, IntervalSummary]:
    grouped: dict[str, list[IntervalSummary]] = {}
    for resource, summary in answer.items():
        grouped.setdefault(key(resource), []).append(summary)
    return {k: _merge(v) for k, v in grouped.items()}


# --- the run from its journal ---------------------------------------------------------------------------


def _selector(raw: Mapping[str, Any]) -> ApmSelector:
    span = str(raw.get("span", "rack.request"))
    return ApmSelector(str(raw["service"]), str(raw["env"]), span, tuple(raw.get("tags", ())))


@dataclass
class _StepDraft:
    index: int
    weight: float
    started: float
    ended: float | None = None
    action: Action | None = None
    checks: list[CheckRecord] = field(default_factory=list)
    failed: bool = False  # the step's shift failed: it never began


class _RunBuilder:
    """Folds the journal's records (after ``start``) into the steps, the rollback and the end of the run."""

    def __init__(self, first: Mapping[str, Any]) -> None:
        self.steps: list[_StepDraft] = []
        self.checks: dict[int, Mapping[str, Any]] = {}
        self.unjudged: set[str] = set()
        self.rollback: Rollback | None = None
        self.end: Mapping[str, Any] | None = None
        self.interrupted: Mapping[str, Any] | None = None
        self.person: list[PersonDecision] = []
        self.explanation: Mapping[str, Any] | None = None
        live = first.get("live_weight")
        self.verified: float | None = None if live is None else float(live)

    def add(self, record: Mapping[str, Any]) -> None:
        kind = record["kind"]
        if kind == "start":  # a journal is one cutover: a second start is damage
            raise BadInput("the journal holds two start records")
        handler = {
            "shift": self._shift,
            "check": self._check,
            "decision": self._decision,
            "rollback": self._rollback,
            "person": self._person,
        }.get(kind)
        if handler is not None:
            handler(record)
        elif kind == "interrupted":
            self.interrupted = record
        elif kind == "end":
            self.end = record
        elif kind == "explain":
            self.explanation = record

    def _shift(self, record: Mapping[str, Any]) -> None:
        step, weight, at = int(record["step"]), float(record["weight"]), float(record["at"])
        if record["phase"] == "intent":
            self.verified = None
        elif record["phase"] == "done":
            self.steps.append(_StepDraft(step, weight, at))
            self.verified = weight
        else:  # failed: the step never began; shown with its failure (HELD)
            self.steps.append(_StepDraft(step, weight, at, at, Action.HOLD, failed=True))

    def _check(self, record: Mapping[str, Any]) -> None:
        self.checks[int(record["index"])] = record
        self.unjudged.update(record.get("unjudged", ()))
        if record.get("missing") is not None and self.steps:
            self.steps[-1].checks.append(_check_record(record, None))

    def _decision(self, record: Mapping[str, Any]) -> None:
        check = self.checks.get(int(record["index"]))
        if check is None or not self.steps:
            return
        decision = decode_decision(record["decision"])
        step = self.steps[-1]
        step.checks.append(_check_record(check, decision))
        act = record.get("act", decision.action.value)
        if act in ("go", "complete"):
            step.action, step.ended = Action.GO, float(record["at"])
        elif act in ("stop", "hold"):
            step.action, step.ended = Action(act), float(record["at"])

    def _person(self, record: Mapping[str, Any]) -> None:
        """A person's decision re-opens a held run (the next ``end`` closes it again)."""
        at, action = float(record["at"]), str(record["action"])
        weight = record.get("weight")
        self.person.append(
            PersonDecision(
                at, int(record["step"]), None if weight is None else float(weight), action, record.get("user")
            )
        )
        self.end, self.interrupted = None, None
        last = self.steps[-1] if self.steps and not self.steps[-1].failed else None
        if last is not None and action == "watch" and last.action is Action.HOLD:
            last.action, last.ended = None, None
        elif last is not None and action == "go":
            last.action, last.ended = Action.GO, at

    def _rollback(self, record: Mapping[str, Any]) -> None:
        weight = float(record["weight"])
        if record["phase"] == "done":
            self.rollback, self.verified = Rollback(weight, True), weight
        elif record["phase"] == "failed":
            self.rollback = Rollback(weight, False, record.get("reason"))
        else:
            self.rollback, self.verified = Rollback(weight, False, "the rollback did not finish"), None

    def ending(self, last: Mapping[str, Any]) -> tuple[Outcome, float | None, tuple[str, ...], bool, float]:
        """(outcome, final weight, reasons, guardrail, ended): the ``end`` record's, else ABORTED."""
        if self.end is not None:
            final = self.end.get("final_weight")
            return (
                Outcome(self.end["outcome"]),
                None if final is None else float(final),
                tuple(self.end.get("reasons", ())),
                bool(self.end.get("guardrail", False)),
                float(self.end["at"]),
            )
        if self.interrupted is not None and self.interrupted is last:
            weight = self.interrupted.get("weight")
            final = None if weight is None else float(weight)
            why = (
                f"interrupted by {self.interrupted.get('signal', 'a signal')}: weights left at {_w(final)}; "
                "continue with parity cutover --resume"
            )
        else:
            final = self.verified
            why = "the journal has no end: the driver stopped without finishing; continue with parity cutover --resume"
        return Outcome.ABORTED, final, (why,), False, float(last["at"])


def run_from_journal(records: Sequence[Mapping[str, Any]]) -> CutoverRun:
    """The :class:`CutoverRun` the reports read, from the journal's records (a resumed run's included: one
    function, so every report sees everything). A journal without ``end`` is ABORTED (interrupted, or the driver
    was killed): its final weight is the last verified one (None when a shift was under way)."""
    if not records or records[0]["kind"] != "start":
        raise BadInput("the journal does not begin with a start record")
    first = records[0]
    settings = first["settings"]
    builder = _RunBuilder(first)
    for record in records[1:]:
        builder.add(record)
    outcome, final, reasons, guardrail, ended = builder.ending(records[-1])
    for s in builder.steps:  # a step still running when the run ended ends with it
        if s.ended is None and builder.end is not None:
            s.ended = ended
    return CutoverRun(
        outcome=outcome,
        final_weight_pct=final,
        started_s=float(first["at"]),
        ended_s=ended,
        old=_selector(settings["old"]),
        new=_selector(settings["new"]),
        endpoints=tuple(first["endpoints"]),
        steps=tuple(
            StepRecord(s.index, s.weight, s.started, s.ended, s.action, tuple(s.checks)) for s in builder.steps
        ),
        reasons=reasons,
        rollback=builder.rollback,
        guardrail=guardrail,
        settings=settings,
        unjudged=tuple(sorted(builder.unjudged - set(first["endpoints"]))),
        person_decisions=tuple(builder.person),
        explanation=_explanation(builder.explanation),
    )


def _explanation(record: Mapping[str, Any] | None) -> StopExplanation | None:
    """A journaled ``explain`` record as the run's explanation (a damaged one: None, never a failed report)."""
    if record is None:
        return None
    try:
        return decode_explanation(record)
    except (KeyError, TypeError, ValueError):
        return None


def _check_record(record: Mapping[str, Any], decision: StepDecision | None) -> CheckRecord:
    window = record["window"]
    data = record.get("data")
    return CheckRecord(
        index=int(record["index"]),
        step_index=int(record["step"]),
        start_s=int(window[0]),
        end_s=int(window[1]),
        check=None if data is None else decode_check(data),
        decision=decision,
        missing=record.get("missing"),
    )


# --- reports and the event (parity.cutover.report, imported when used) ----------------------------------


def write_reports(run: CutoverRun, out: Path) -> None:
    """The run's reports in ``out``: index.html, summary.md, cutover.json
    (:func:`parity.cutover.report.write_cutover_reports`; the default of ``run_cutover(reports=...)``)."""
    from parity.cutover.report import write_cutover_reports

    write_cutover_reports(run, out)


def event_of(run: CutoverRun, tags: Sequence[str] = ()) -> CutoverEvent:
    """The run's Datadog event (:func:`parity.cutover.report.cutover_event`)."""
    from parity.cutover.report import cutover_event

    return cutover_event(run, tags=tags)


def summary_of(run: CutoverRun) -> list[str]:
    """Terminal lines for the run (:func:`parity.cutover.report.summary_lines`)."""
    from parity.cutover.report import summary_lines

    return summary_lines(run)


def cutover_exit_code(run: CutoverRun) -> int:
    """0 completed, 1 stopped (4 on a guardrail breach), 3 held, 130 aborted (the CLI uses 128 + the signal)."""
    if run.outcome is Outcome.COMPLETED:
        return EXIT_OK
    if run.outcome is Outcome.STOPPED:
        return EXIT_ABORTED if run.guardrail else EXIT_REGRESSION
    if run.outcome is Outcome.HELD:
        return EXIT_INCONCLUSIVE
    return EXIT_INTERRUPTED


# --- dry run --------------------------------------------------------------------------------------------


def dry_run_lines(
    settings: CutoverSettings, shifter: Shifter, judge: Policy | None = None, secrets: tuple[str, ...] = ()
) -> list[str]:
    """What the cutover would do, without doing any of it: the plan (steps, holds in checks and time, alpha per
    test), the Datadog queries of each side, and the change each step (and the rollback) would make (secrets
    in the commands redacted: :func:`parity.cutover.settings.redact` with ``secrets``)."""
    policy = policy_of(settings)
    iv = settings.interval_s
    per_endpoint = (
        1 + len(policy.latency_metrics) + (policy.error_rate_limit is not None) + (policy.p99_limit_ms is not None)
    )
    lines = [
        f"steps: {', '.join(_w(s) for s in settings.steps)} to the new environment ({settings.new.env}); "
        f"rollback to {_w(settings.rollback_weight)}",
        f"checks every {iv:g} s, each reading the window [t - {settings.delay_s:g} s - {iv:g} s, "
        f"t - {settings.delay_s:g} s); "
        f"settle {settings.settle_s:g} s after each verified shift",
        f"hold per step: at least {policy.min_hold_checks} checks with data ({policy.min_hold_checks * iv:g} s), "
        f"at most {policy.max_hold_checks} checks ({policy.max_hold_checks * iv:g} s), then a person decides (exit 3); "
        f"last step: guardrails watched for {policy.min_hold_checks} checks",
        f"judged: error_rate, {', '.join(policy.latency_metrics)}; GO needs {', '.join(policy.go_metrics)} within "
        f"tolerance on endpoints with >= {policy.min_traffic_share:.1%} of traffic",
        "guardrails (new side): error rate "
        f"{'off' if policy.error_rate_limit is None else f'{policy.error_rate_limit:.2%}'}, "
        f"p99 {'off' if policy.p99_limit_ms is None else f'{policy.p99_limit_ms:g} ms'}; "
        f"{settings.max_missing_checks} checks in a row without APM data hold the gate",
    ]
    lines += _alpha_lines(settings, policy, judge, per_endpoint)
    from parity.cutover.live_apm import queries_for

    for side, selector in (("old", settings.old), ("new", settings.new)):
        lines.append(f"Datadog queries, {side} side ({selector.service} in {selector.env}):")
        lines += [f"  {q}" for q in queries_for(selector)]
    lines.append(f"changes ({settings.shifter.kind} shifter):")
    for i, weight in enumerate(settings.steps):
        lines.append(f"  step {i + 1} ({_w(weight)}): {redact(shifter.describe(weight), secrets)}")
    rollback = redact(shifter.describe(settings.rollback_weight), secrets)
    lines.append(f"  on a stop ({_w(settings.rollback_weight)}): {rollback}")
    return lines


def _alpha_lines(
    settings: CutoverSettings, policy: CutoverPolicy, judge: Policy | None, per_endpoint: int
) -> list[str]:
    """The alpha each test gets (``GatePlan.alpha(test)``: the family's alpha split by ``ALPHA_WEIGHTS``), per
    test kind; with discovered endpoints, as the figure for one endpoint divided by their number."""
    tests = (
        ["error_rate", *policy.latency_metrics]
        + (["error_guardrail"] if policy.error_rate_limit is not None else [])
        + (["p99_guardrail"] if policy.p99_limit_ms is not None else [])
    )
    if settings.endpoints is not None:
        plan = plan_gate(settings.endpoints, policy, judge)
        head = f"alpha {policy.alpha:g} over {plan.family} tests ({len(plan.endpoints)} endpoints x {per_endpoint})"
        shares = ", ".join(f"{t} {plan.alpha(t):.3g}" for t in tests)
    else:
        plan = plan_gate(["?"], policy, judge)  # one endpoint: each test's alpha times the endpoint count
        head = (
            f"alpha {policy.alpha:g} over N endpoints x {per_endpoint} tests (N: the old side's resources over the "
            f"{settings.discover_s:g} s before the start)"
        )
        shares = ", ".join(f"{t} {plan.alpha(t):.3g} / N" for t in tests)
    lines = [f"{head}; per test (weighted Bonferroni): {shares}"]
    guards = [g for g, on in (("error-rate", policy.error_rate_limit), ("p99", policy.p99_limit_ms)) if on is not None]
    if guards:
        lines.append(
            f"  the {' and '.join(guards)} guardrail's alpha is split over the {len(policy.steps)} steps "
            "(a new test each)"
        )
    return lines


# --- the driver -----------------------------------------------------------------------------------------


class _Finish(Exception):
    """Ends the run: journal ``end`` with these."""

    def __init__(self, outcome: Outcome, reasons: Sequence[str], final: float | None, guardrail: bool = False):
        super().__init__(reasons[0] if reasons else outcome.value)
        self.outcome, self.reasons, self.final, self.guardrail = outcome, list(reasons), final, guardrail


@dataclass
class _Position:
    """Where a journal left the cutover (see :func:`_replay`)."""

    state: GateState
    weight: float | None  # the last verified weight (the start's live weight before any shift)
    step: int  # the step under way (-1: none shifted yet)
    t0: float | None  # the step's first window start (verified + settle)
    next_k: int  # the step's next window
    next_index: int  # the run's next check index
    missing_run: int  # missing checks in a row at the end
    step_data_checks: int  # last step: checks with new-side traffic
    pending: tuple[int, float, float | None] | None  # a shift intent without its end: (step, weight, previous)
    went: bool  # the last decision was GO: the next step's shift is due
    stop: StepDecision | None  # a STOP whose rollback did not finish
    guardrail: bool
    undecided: tuple[int, tuple[int, ...]] | None = None  # a journaled check whose decision was not: (index, window)
    max_hold: int | None = None  # the step's maximum hold in checks when a person extended it (``watch``)
    person_rollback: str | None = None  # a person's rollback whose shift did not finish: who decided it
    finished: tuple[Outcome, tuple[str, ...], float | None] | None = None  # acted on, its ``end`` lost in a kill


class _Driver:
    def __init__(
        self,
        settings: CutoverSettings,
        plan: GatePlan,
        *,
        apm: LiveApm,
        shifter: Shifter,
        journal: Journal,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        progress: Callable[[str], None],
        key: Callable[[str], str],
        ask: Callable[[str], str] | None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.secrets = secrets
        self.settings, self.plan, self.policy = settings, plan, plan.policy
        self.apm, self.shifter, self.journal = apm, shifter, journal
        self.clock, self.sleep, self.progress, self.key, self.ask = clock, sleep, progress, key, ask
        self.weight: float | None = None
        self.pending_weight: float | None = None

    # -- shifting --

    def describe(self, weight: float) -> str:
        """The shifter's change, secrets redacted (it is printed)."""
        return redact(self.shifter.describe(weight), self.secrets)

    def reason(self, exc: ShiftError) -> str:
        """A shift failure's reason, secrets redacted (it is printed and journaled)."""
        return redact(exc.reason, self.secrets)

    def live_weight(self) -> float:
        """The live weight (the shifter's read; a person's answer when it cannot read). ShiftError / BadInput."""
        return _live_weight(self.shifter, self.ask)

    def _final_weight(self) -> float | None:
        if self.pending_weight is None:
            return self.weight
        try:
            return self.shifter.read()
        except ShiftError:
            return None

    def shift(self, step: int) -> float:
        """Move to ``steps[step]``: intent, apply, done (returns its time) — or failed: HELD."""
        weight, previous = self.settings.steps[step], self.weight
        self.progress(f"step {step + 1}/{len(self.settings.steps)}: shifting to {_w(weight)} ({self.describe(weight)})")
        self.journal.append("shift", phase="intent", step=step, weight=weight, previous=previous)
        self.pending_weight = weight
        try:
            self.shifter.apply(weight)
        except ShiftError as exc:
            why = self.reason(exc)
            self.journal.append("shift", phase="failed", step=step, weight=weight, previous=previous, reason=why)
            final = self._final_weight()
            raise _Finish(
                Outcome.HELD,
                [f"the shift to {_w(weight)} failed: {why}; weights now {_w(final)} (a person decides)"],
                final,
            ) from None
        done = self.journal.append("shift", phase="done", step=step, weight=weight, previous=previous)
        self.weight, self.pending_weight = weight, None
        self.progress(f"step {step + 1}: {_w(weight)} in effect (verified); settling {self.settings.settle_s:g} s")
        return float(done["at"])

    def confirm_shift(self, step: int, weight: float, previous: float | None) -> float:
        """A shift intent found in effect on resume: journaled done without applying it again."""
        done = self.journal.append("shift", phase="done", step=step, weight=weight, previous=previous, resumed=True)
        self.weight, self.pending_weight = weight, None
        self.progress(f"step {step + 1}: {_w(weight)} found in effect (the interrupted shift had been made)")
        return float(done["at"])

    def rollback(self, reasons: Sequence[str], guardrail: bool) -> None:
        """Roll back to ``rollback_weight`` and finish STOPPED (a failed rollback is in the reasons, first)."""
        target = self.settings.rollback_weight
        self.journal.append("rollback", phase="intent", weight=target)
        self.pending_weight = target
        self.progress(f"rolling back to {_w(target)} ({self.describe(target)})")
        try:
            self.shifter.apply(target)
        except ShiftError as exc:
            why = self.reason(exc)
            self.journal.append("rollback", phase="failed", weight=target, reason=why)
            final = self._final_weight()
            raise _Finish(
                Outcome.STOPPED,
                [
                    f"ROLLBACK FAILED: {why}; the new environment still has {_w(final)}: roll back by hand",
                    *reasons,
                ],
                final,
                guardrail,
            ) from None
        self.journal.append("rollback", phase="done", weight=target)
        self.weight, self.pending_weight = target, None
        raise _Finish(Outcome.STOPPED, [*reasons, f"rolled back to {_w(target)} (verified)"], target, guardrail)

    # -- checks --

    def _window(self, t0: float, k: int) -> tuple[int, int]:
        iv = self.settings.interval_s
        return math.floor(t0 + k * iv), math.floor(t0 + (k + 1) * iv)

    def checks(self, pos: _Position) -> None:
        """The checks of step ``pos.step`` until it ends: returns on GO (``pos`` moved to the next step), raises
        _Finish otherwise."""
        while True:
            k, window, extra = self._next_window(pos)
            index = pos.next_index
            pos.next_k, pos.next_index = k + 1, index + 1
            read = self._read(pos, index, k, window, extra)
            if read is not None and self._judge(pos, index, k, window, read, extra):
                return

    def _next_window(self, pos: _Position) -> tuple[int, tuple[int, int], dict[str, Any]]:
        """The step's next window (skipping to the newest ``MAX_BACKFILL_CHECKS`` when far behind), after
        sleeping until it is ``delay_s`` old; ``extra``: journal fields (skipped windows, read late)."""
        assert pos.t0 is not None
        k, now, iv = pos.next_k, self.clock(), self.settings.interval_s
        newest = math.floor((now - self.settings.delay_s - pos.t0) / iv) - 1  # the newest window already due
        extra: dict[str, Any] = {}
        if newest - k >= MAX_BACKFILL_CHECKS:  # far behind (a long pause): read the newest windows only
            extra["skipped"] = newest - MAX_BACKFILL_CHECKS + 1 - k
            k += extra["skipped"]
            self.progress(f"skipping {extra['skipped']} missed windows (reading back at most {MAX_BACKFILL_CHECKS})")
        window = self._window(pos.t0, k)
        due = window[1] + self.settings.delay_s
        if due > now:
            self.sleep(due - now)
        elif due < now - iv:
            extra["backfill"] = True
        return k, window, extra

    def _read(
        self, pos: _Position, index: int, k: int, window: tuple[int, int], extra: Mapping[str, Any]
    ) -> tuple[dict[str, IntervalSummary], dict[str, IntervalSummary]] | None:
        """Both sides' answers by endpoint key; None after a failed read (journaled as missing; the
        ``max_missing_checks``-th in a row: HELD). At 100 % the old side is not read: it serves nothing (its
        APM has no hits, which the reader cannot tell from data not yet ingested), and the gate judges the
        new side's guardrails only."""
        try:
            old: dict[str, IntervalSummary] = {}
            if self.settings.steps[pos.step] < 100.0:
                old = _by_key(self.apm.interval(self.settings.old, *window), self.key)
            new = _by_key(self.apm.interval(self.settings.new, *window), self.key)
        except ApmUnavailable as exc:
            pos.missing_run += 1
            self.journal.append(
                "check", index=index, step=pos.step, k=k, window=list(window), missing=exc.reason, **extra
            )
            self.progress(
                f"check {index + 1} ({_utc(window[0])}-{_utc(window[1])}): no APM data ({exc.reason}); "
                f"{pos.missing_run} of {self.settings.max_missing_checks} in a row"
            )
            if pos.missing_run >= self.settings.max_missing_checks:
                raise _Finish(
                    Outcome.HELD,
                    [
                        f"no APM data for {pos.missing_run} checks in a row ({exc.reason}): no decision is taken "
                        f"on missing data; weights kept at {_w(self.weight)}"
                    ],
                    self.weight,
                ) from None
            return None
        pos.missing_run = 0
        return old, new

    def _last_step_act(self, pos: _Position, state: GateState, decision: StepDecision) -> str:
        """At 100 % (no old side to compare): STOP as the gate says (guardrails), complete after ``min_hold``
        checks with new-side traffic, hold at the maximum hold, else wait."""
        if decision.action is Action.STOP:
            return "stop"
        if pos.step_data_checks >= self.policy.min_hold_checks:
            return "complete"
        return "hold" if state.step_checks >= (pos.max_hold or self.policy.max_hold_checks) else "wait"

    def _judge(
        self,
        pos: _Position,
        index: int,
        k: int,
        window: tuple[int, int],
        sides: tuple[dict[str, IntervalSummary], dict[str, IntervalSummary]],
        extra: Mapping[str, Any],
    ) -> bool:
        """Update the gate with one check, journal it, then decide and act (:meth:`act_on`; True on GO)."""
        old, new = sides
        family = set(self.plan.endpoints)
        check = Check(
            end_ms=window[1] * 1000,
            endpoints=tuple(EndpointInterval(e, old.get(e, _ZERO), new.get(e, _ZERO)) for e in self.plan.endpoints),
        )
        unjudged = sorted({e for e, s in (*old.items(), *new.items()) if e not in family and s.hits > 0})
        state = update(pos.state, check)
        if pos.step == len(self.settings.steps) - 1 and _new_hits(check) > 0:
            pos.step_data_checks += 1
        self.journal.append(
            "check", index=index, step=pos.step, k=k, window=list(window), data=encode_check(check),
            unjudged=unjudged, **extra,
        )  # fmt: skip
        pos.state = state
        return self.act_on(pos, index, window)

    def act_on(self, pos: _Position, index: int, window: Sequence[int]) -> bool:
        """Decide on the checks so far (``pos.state``, the newest being check ``index``), journal the decision,
        then act: STOP rolls back, HOLD and the last step's completion finish, GO returns True (``pos`` moved
        to the next step), WAIT returns False."""
        state = pos.state
        decision = _decide(state, pos.max_hold)
        last = pos.step == len(self.settings.steps) - 1
        act = self._last_step_act(pos, state, decision) if last else decision.action.value
        self.journal.append("decision", index=index, step=pos.step, act=act, decision=encode_decision(decision))
        head = decision.reasons[0] if decision.reasons else ""
        self.progress(
            f"check {index + 1} ({_utc(window[0])}-{_utc(window[1])}, step {pos.step + 1}): {act.upper()} {head}"
        )
        if act == "stop":
            pos.stop, pos.guardrail = decision, bool(decision.guardrails)
            self.rollback(list(decision.reasons), pos.guardrail)
        if act == "hold":
            reasons = list(decision.reasons)
            if last:
                reasons = [
                    f"maximum hold passed at {_w(self.weight)} with {pos.step_data_checks} of "
                    f"{self.policy.min_hold_checks} checks seeing traffic on the new side"
                ]
            raise _Finish(Outcome.HELD, [*reasons, f"weights kept at {_w(self.weight)}"], self.weight)
        if act == "complete":
            raise _Finish(
                Outcome.COMPLETED,
                [
                    f"every step passed; {_w(self.weight)} on the new environment, its guardrails watched for "
                    f"{pos.step_data_checks} checks"
                ],
                self.weight,
            )
        if act == "go":
            pos.state, pos.went = next_step(state), True
            return True
        return False

    def walk(self, pos: _Position) -> None:
        """From ``pos`` to the end of the cutover (raises _Finish)."""
        while True:
            if pos.t0 is None or pos.went:
                step = pos.step + 1
                done_at = self.shift(step)
                pos.step, pos.t0, pos.next_k, pos.went = step, done_at + self.settings.settle_s, 0, False
                pos.missing_run, pos.step_data_checks, pos.max_hold = 0, 0, None
            self.checks(pos)


def _decide(state: GateState, max_hold: int | None) -> StepDecision:
    """``decide``, with the step's maximum hold extended to ``max_hold`` checks when a person chose to watch
    the step for another hold (the gate's own rule otherwise)."""
    if max_hold is None:
        return decide(state)
    policy = replace(state.plan.policy, max_hold_checks=max_hold)
    return decide(replace(state, plan=replace(state.plan, policy=policy)))


def _new_hits(check: Check) -> int:
    """Requests the new side served in the check (all endpoints of the family)."""
    return sum(e.new.hits for e in check.endpoints if e.new is not None)


def _live_weight(shifter: Shifter, ask: Callable[[str], str] | None) -> float:
    weight = shifter.read()
    if weight is not None:
        return weight
    if ask is None:
        raise BadInput("the shifter cannot read the live weight and nobody can be asked (no terminal)")
    try:
        answer = ask("the new environment's live weight now, in percent: ")
    except EOFError:
        raise BadInput("the live weight is needed and no answer came (no input)") from None
    try:
        return parse_weight(answer, "the live weight")
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _discover(settings: CutoverSettings, apm: LiveApm, now: float, key: Callable[[str], str]) -> tuple[str, ...]:
    """The judged family: ``endpoints``, or the old side's endpoints with hits over ``discover_s`` (most hits
    first). ApmUnavailable propagates."""
    if settings.endpoints is not None:
        return settings.endpoints
    end = math.floor(now - settings.delay_s)
    answer = _by_key(apm.interval(settings.old, math.floor(end - settings.discover_s), end), key)
    found = sorted((k for k, s in answer.items() if s.hits > 0), key=lambda k: (-answer[k].hits, k))
    if not found:
        raise BadInput(
            f"no requests of service {settings.old.service!r} in env {settings.old.env!r} over the last "
            f"{settings.discover_s:g} s: check [cutover.old] (service, env, span, tags) or list [cutover] endpoints"
        )
    return tuple(found)


def _replay(records: Sequence[Mapping[str, Any]], plan: GatePlan, settings: CutoverSettings) -> _Position:
    """Rebuild the gate by feeding the journaled checks through ``update``/``next_step``; check every replayed
    decision against the journaled one (BadInput when they differ: the policy changed since)."""
    state = start(plan)
    pos = _Position(state, records[0].get("live_weight"), -1, None, 0, 0, 0, 0, None, False, None, False)
    for number, record in enumerate(records[1:], start=2):
        try:
            _replay_record(pos, record, plan, settings)
        except KeyError as exc:
            raise BadInput(
                f"record {number}: a {record['kind']} record without its {exc} (the journal is damaged)"
            ) from None
        except (TypeError, ValueError, IndexError) as exc:
            raise BadInput(f"record {number}: a damaged {record['kind']} record ({exc})") from None
    return pos


def _replay_record(pos: _Position, record: Mapping[str, Any], plan: GatePlan, settings: CutoverSettings) -> None:
    """One journal record folded into ``pos`` (see :func:`_replay`); KeyError/TypeError/ValueError when damaged."""
    kind = record["kind"]
    if kind == "shift":
        step, weight = int(record["step"]), float(record["weight"])
        if record["phase"] == "intent":
            previous = record.get("previous")
            pos.pending = (step, weight, None if previous is None else float(previous))
        elif record["phase"] == "done":
            pos.pending = None
            pos.weight, pos.step, pos.t0 = weight, step, float(record["at"]) + settings.settle_s
            pos.next_k, pos.went, pos.missing_run, pos.step_data_checks = 0, False, 0, 0
            pos.max_hold = None
    elif kind == "check":
        pos.next_index = int(record["index"]) + 1
        pos.next_k = int(record["k"]) + 1
        if record.get("missing") is not None:
            pos.missing_run += 1
            return
        pos.missing_run = 0
        check = decode_check(record["data"])
        pos.state = update(pos.state, check)
        pos.undecided = (int(record["index"]), tuple(record["window"]))
        if pos.step == len(settings.steps) - 1 and _new_hits(check) > 0:
            pos.step_data_checks += 1
    elif kind == "decision":
        pos.undecided = None
        journaled = record["decision"]["action"]
        replayed = _decide(pos.state, pos.max_hold).action.value
        if replayed != journaled:
            raise BadInput(
                f"the journal does not replay: check {int(record['index']) + 1} decided {journaled!r} then, "
                f"{replayed!r} now (the [compare] tolerances or the gate changed): resume with the same config"
            )
        if record.get("act") == "go":
            pos.state, pos.went = next_step(pos.state), True
        elif record.get("act") == "complete":  # decided: a kill before its ``end`` changes nothing
            final = pos.weight
            why = (
                f"every step passed; {_w(final)} on the new environment, its guardrails watched for "
                f"{pos.step_data_checks} checks"
            )
            pos.finished = (Outcome.COMPLETED, (why,), final)
        elif record.get("act") == "stop":
            decision = decode_decision(record["decision"])
            pos.stop, pos.guardrail = decision, bool(decision.guardrails)
    elif kind == "rollback" and record["phase"] == "done":  # the run is over: STOPPED (its end may be lost)
        weight = float(record["weight"])
        stopped: tuple[str, ...] = pos.stop.reasons if pos.stop is not None else ()
        if pos.person_rollback is not None:
            stopped = (f"rolled back on {pos.person_rollback}'s decision",)
        pos.finished = (Outcome.STOPPED, (*stopped, f"rolled back to {_w(weight)} (verified)"), weight)
        pos.weight, pos.stop, pos.person_rollback = weight, None, None
    # a failed rollback keeps the STOP (or the person's rollback) pending: its ``end`` closes the journal,
    # and without it (a kill in between) --resume tries the rollback again before anything else
    elif kind == "person":
        _replay_person(pos, record, plan)


def _replay_person(pos: _Position, record: Mapping[str, Any], plan: GatePlan) -> None:
    """A person's journaled decision, as the driver acted on it (see :func:`_resume`)."""
    action = record["action"]
    pos.missing_run = 0
    if action == "watch":
        pos.max_hold = pos.state.step_checks + plan.policy.max_hold_checks
    elif action == "go" and pos.step == len(plan.policy.steps) - 1:  # at the last step a go completes the run
        weight = record.get("weight")
        final = pos.weight if weight is None else float(weight)
        who = record.get("user") or "a person"
        pos.finished = (Outcome.COMPLETED, (f"completed on {who}'s decision at {_w(final)}",), final)
    elif action == "go":
        pos.state, pos.went, pos.max_hold = next_step(pos.state), True, None
    elif action == "rollback":
        pos.person_rollback = record.get("user") or "a person"


def _settings_changed(journaled: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The ``[cutover]`` keys (dotted inside tables) whose value differs, except ``RESUME_FREE_KEYS``; the
    gate's derived ``policy.*`` last (they follow from the others)."""

    def diff(a: Any, b: Any, prefix: str) -> list[str]:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return [k for key in sorted(set(a) | set(b)) for k in diff(a.get(key), b.get(key), f"{prefix}{key}.")]
        return [] if a == b else [prefix[:-1]]

    changed = [k for k in diff(journaled, current, "") if k not in RESUME_FREE_KEYS]
    return sorted(changed, key=lambda k: k.startswith("policy."))


def _tolerances(plan: GatePlan) -> dict[str, list[list[float]]]:
    """The plan's tolerances (from ``[compare]``) as plain JSON: per metric, per endpoint [relative, absolute]."""
    return {m: [[t.relative, t.absolute] for t in tols] for m, tols in plan.tolerances.items()}


def _tolerances_changed(journaled: Mapping[str, Any] | None, plan: GatePlan) -> list[str]:
    """``metric of endpoint`` whose tolerance differs from the journal's (nothing for a journal without them)."""
    if journaled is None:
        return []
    now = _tolerances(plan)
    out = []
    for metric in sorted(set(journaled) | set(now)):
        old, new = journaled.get(metric, []), now.get(metric, [])
        for i, endpoint in enumerate(plan.endpoints):
            if (old[i] if i < len(old) else None) != (new[i] if i < len(new) else None):
                out.append(f"{metric} of {endpoint}")
    return out


def _open_end(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The ``end`` that closes the journal (None while it is open: no end, or a person's decision after it)."""
    for record in reversed(records):
        if record["kind"] == "person":
            return None
        if record["kind"] == "end":
            end: Mapping[str, Any] = record
            return end
    return None


def run_cutover(
    settings: CutoverSettings,
    *,
    apm: LiveApm,
    shifter: Shifter,
    journal_path: Path | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    send_event: Callable[[CutoverRun], None] | None = None,
    progress: Callable[[str], None] = _quiet,
    resume: bool = False,
    judge: Policy | None = None,
    ask: Callable[[str], str] | None = None,
    reports: Callable[[CutoverRun, Path], None] = write_reports,
    person: str | None = None,
    user: str | None = None,
    environ: Mapping[str, str] | None = None,
    explain: Callable[[CutoverRun, Path], StopExplanation] | None = None,
) -> CutoverRun:
    """Run (or with ``resume`` continue) the cutover of ``settings`` and return it as its journal tells it.

    ``journal_path``: default ``settings.out / journal.jsonl``; the reports go beside it. ``judge``: the
    ``[compare]`` policy (tolerances, critical endpoints). ``ask``: asks a person (the live weight when the
    shifter cannot read it). ``send_event``: sends the run's Datadog event (any exception: one warning line).

    Fresh start: BadInput (exit 2, nothing written) when a journal without ``end`` is there (``--resume`` it) or
    the live weight is not below the first step. An ended journal is kept as ``journal-<start>.jsonl``.

    Resume: BadInput when the journal is missing or ended other than HELD, or when the settings (beyond
    ``RESUME_FREE_KEYS``), the ``[compare]`` tolerances or the replayed decisions differ from the journal's.
    The live weight is read FIRST: a shift intent without its end is completed (journaled done, not applied)
    only when the live weight equals it and re-applied only when the live weight is the previous step's; a step
    under way continues only at its own weight; anything else is HELD with the figures. A journaled STOP whose
    rollback did not finish rolls back now; a journaled check without its decision is decided on first. Windows
    missed meanwhile are read late (at most ``MAX_BACKFILL_CHECKS``).

    A person's part (``person``, with ``resume``; ``user``: who, journaled): a HELD journal can be resumed.
    ``watch`` (the default on a held journal): the same step is watched for another maximum hold (a failed
    shift is tried again under the live-weight rules). ``go``: only on a held step under way at its own live
    weight: the next step is shifted (at the last step: completed). ``rollback``: on a held or unfinished
    journal, roll back to ``rollback_weight`` now; the run ends STOPPED. Each is journaled (``person``) after the
    live weight is read and before it acts; one that does not apply is BadInput with one line, nothing written.
    ``environ``: where the secret-looking variables are (default ``os.environ``): their values, and
    ``--token=…``-like arguments, are redacted from the journaled commands and every printed change.

    ``explain``: on a STOPPED run (with ``[cutover] explain``, the default), called after the rollback and the
    ``end`` were journaled and the reports written (written again with it), before the event: why the stopping
    endpoints are slower (:func:`parity.cutover.explain.explainer`), journaled as an ``explain`` record and shown
    by every report.
    Its failure (any exception, Ctrl-C) is one ``no explanation`` line: the outcome and exit code stay.
    """
    if person is not None and person not in PERSON_ACTIONS:
        raise BadInput(f"cutover: unknown decision {person!r} (one of {', '.join(PERSON_ACTIONS)})")
    if person is not None and not resume:
        raise BadInput(f"cutover: --{person} is a decision on a cutover under way: it needs --resume")
    path = journal_path or settings.out / JOURNAL_NAME
    judge = judge or Policy()
    policy = policy_of(settings)
    key = _key_function(settings)
    secrets = secret_values(os.environ if environ is None else environ)
    plain = plain_settings(settings, secrets)
    plan, pos, held = plan_gate((), policy, judge), None, False
    if resume:
        plan, pos, held = _prepare_resume(path, settings, plain, judge, person)
    else:
        _make_room(path, clock)
    journal = Journal(path, clock)
    driver = _Driver(
        settings, plan, apm=apm, shifter=shifter, journal=journal,
        clock=clock, sleep=sleep, progress=progress, key=key, ask=ask, secrets=secrets,
    )  # fmt: skip
    try:
        try:
            if pos is not None:
                _resume(driver, pos, settings, _Person(person or ("watch" if held else None), user, held))
            else:
                _fresh(driver, settings, policy, judge, plain, apm, key)
        except (KeyboardInterrupt, Interrupted) as exc:
            if journal.records == 0 and not resume:
                raise  # stopped before the cutover began: nothing to journal
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            weight = _journaled_weight(path, driver.weight if driver.pending_weight is None else None)
            journal.append("interrupted", signal=signal.Signals(signum).name, weight=weight)
            progress(f"interrupted by {signal.Signals(signum).name}: weights left at {_w(weight)}")
        except _Finish as finish:
            journal.append(
                "end",
                outcome=finish.outcome.value,
                final_weight=finish.final,
                reasons=finish.reasons,
                guardrail=finish.guardrail,
            )
    finally:
        journal.close()
    run = run_from_journal(read_journal(path))
    if explain is not None and settings.explain and run.outcome is Outcome.STOPPED and run.explanation is None:
        # the STOP's reports first: reading traces can take minutes, and a driver killed meanwhile must leave them
        # (an ended journal cannot be resumed to write them); a failure here is warned by the write after
        with suppress(OSError, BadInput):
            reports(run, path.parent)
        run = _explain(run, path, explain, clock, progress)
    _afterwards(run, path.parent, reports, send_event, progress)
    return run


def _explain(
    run: CutoverRun,
    path: Path,
    explain: Callable[[CutoverRun, Path], StopExplanation],
    clock: Callable[[], float],
    progress: Callable[[str], None],
) -> CutoverRun:
    """A STOP's explanation (after its rollback and ``end`` were journaled), journaled as an ``explain`` record;
    the run with it. Nothing here changes the outcome: any failure, Ctrl-C included, is the one ``skipped`` line."""
    progress("explaining the stop from both environments' APM traces (the rollback is done)")
    try:
        explanation = explain(run, path.parent)
    except (KeyboardInterrupt, Interrupted) as exc:
        name = signal.Signals(exc.signum).name if isinstance(exc, Interrupted) else "SIGINT"
        explanation = StopExplanation(skipped=f"interrupted by {name} while reading traces")
    except Exception as exc:  # an explanation must never change the outcome
        explanation = StopExplanation(skipped=str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__)
    for why in explanation.why:
        progress(f"why {why.endpoint}: {why.sentence}")
    if explanation.skipped is not None:  # explained, its file unwritable: not "no explanation" under the why lines
        progress(f"{'explain.json not saved' if explanation.why else 'no explanation'}: {explanation.skipped}")
    journal = Journal(path, clock)
    try:
        journal.append("explain", **encode_explanation(explanation))
    except BadInput as exc:
        progress(f"warning: the explanation was not journaled ({exc})")
    finally:
        journal.close()
    return replace(run, explanation=explanation)


def _journaled_weight(path: Path, fallback: float | None) -> float | None:
    """The last verified weight as the journal tells it (None while a shift or rollback is under way): a signal
    can land after a 'done' record was written and before the driver noted it. ``fallback`` when unreadable."""
    try:
        records = read_journal(path)
        builder = _RunBuilder(records[0])
        for record in records[1:]:
            builder.add(record)
    except (BadInput, KeyError, TypeError, ValueError, IndexError):
        return fallback
    return builder.verified


def _prepare_resume(
    path: Path, settings: CutoverSettings, plain: Mapping[str, Any], judge: Policy, person: str | None
) -> tuple[GatePlan, _Position, bool]:
    """The plan, the position of the journal at ``path`` and whether it ended HELD (the person's to continue);
    BadInput when there is nothing to resume, it cannot be resumed with these settings, or the person's
    decision does not apply. A record cut short at its end is dropped from the file."""
    records = read_journal(path)
    if not records or records[0]["kind"] != "start":
        raise BadInput(f"{path}: not a cutover journal (no start record)")
    for key in ("at", "settings", "endpoints"):
        if key not in records[0]:
            raise BadInput(f"{path}: the start record has no {key!r} (the journal is damaged)")
    ended = _open_end(records)
    held = ended is not None and ended.get("outcome") == Outcome.HELD.value
    if ended is not None and not held:
        raise BadInput(
            f"{path}: this cutover ended ({ended.get('outcome')}): nothing to resume"
            f"{' or roll back' if person == 'rollback' else ''}; `parity cutover` without --resume starts a new one"
        )
    if held and not records[0].get("endpoints"):
        raise BadInput(
            f"{path}: this cutover was held before its first shift (no endpoints found): nothing moved; "
            "`parity cutover` without --resume starts it again"
        )
    if person == "go" and not held:
        raise BadInput(
            f"{path}: --go decides on a HELD cutover; this one is not held (interrupted or under way): --resume "
            "continues it and the gate decides"
        )
    changed = _settings_changed(records[0]["settings"], plain)
    if changed:
        raise BadInput(
            f"{path}: [cutover] changed since the journal began ({', '.join(changed)}): these decide or plan the "
            "cutover; resume with the journal's values (free to change: "
            f"{', '.join(sorted(RESUME_FREE_KEYS))})"
        )
    try:
        plan = plan_gate(records[0]["endpoints"], policy_of(settings), judge)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}") from None
    tolerances = _tolerances_changed(records[0].get("tolerances"), plan)
    if tolerances:
        raise BadInput(
            f"{path}: the [compare] tolerances changed since the journal began ({', '.join(tolerances[:3])}"
            f"{', …' if len(tolerances) > 3 else ''}): resume with the same [compare] policy"
        )
    try:
        pos = _replay(records, plan, settings)
    except BadInput as exc:
        raise BadInput(f"{path}: {exc}") from None
    if person == "go" and (pos.pending is not None or pos.step < 0):
        raise BadInput(
            f"{path}: --go: the held step's shift to {_w(pos.pending[1] if pos.pending else settings.steps[0])} "
            "was not made; --resume tries it again (or --rollback)"
        )
    repair(path)
    return plan, pos, held


def _make_room(path: Path, clock: Callable[[], float]) -> None:
    """Before a fresh start: BadInput when a cutover is under way in ``path`` (no ``end``); an ended journal is
    kept as ``journal-<its start>.jsonl``."""
    if not path.exists():
        return
    records = read_journal(path)
    if records and _open_end(records) is None:  # no end, or a person's decision after the last one
        raise BadInput(
            f"{path}: a cutover is under way (its journal has no end): continue it with parity cutover --resume"
        )
    stamp = int(records[0]["at"]) if records else int(clock())
    path.rename(path.with_name(f"journal-{stamp}.jsonl"))


def _fresh(
    driver: _Driver,
    settings: CutoverSettings,
    policy: CutoverPolicy,
    judge: Policy,
    plain: Mapping[str, Any],
    apm: LiveApm,
    key: Callable[[str], str],
) -> None:
    """A new cutover: refuse a live weight at or above the first step (nothing journaled), fix the family,
    journal start, walk."""
    try:
        live = driver.live_weight()
    except ShiftError as exc:
        raise BadInput(f"cannot read the live weight: {exc.reason}") from None
    if live >= settings.steps[0] - WEIGHT_EPS:
        raise BadInput(
            f"the new environment already has {_w(live)} (the first step is {_w(settings.steps[0])}): a cutover under "
            "way continues with parity cutover --resume; otherwise set the weights back to "
            f"{_w(settings.rollback_weight)} first"
        )
    try:
        endpoints = _discover(settings, apm, driver.clock(), key)
    except ApmUnavailable as exc:
        driver.journal.append("start", version=version(), settings=plain, endpoints=[], live_weight=live)
        raise _Finish(
            Outcome.HELD, [f"no APM data to find the endpoints before the first shift: {exc.reason}"], live
        ) from None
    try:
        driver.plan = plan_gate(endpoints, policy, judge)
    except ValueError as exc:
        raise BadInput(f"cutover: {exc}") from None
    driver.journal.append(
        "start", version=version(), settings=plain, endpoints=list(endpoints), live_weight=live,
        tolerances=_tolerances(driver.plan),
    )  # fmt: skip
    driver.weight = live
    driver.progress(
        f"{len(endpoints)} endpoint(s) judged; live weight {_w(live)}; steps {', '.join(_w(s) for s in settings.steps)}"
    )
    driver.walk(_Position(start(driver.plan), live, -1, None, 0, 0, 0, 0, None, False, None, False))


def _person_rollback(driver: _Driver, pos: _Position, settings: CutoverSettings, person: _Person, live: float) -> None:
    """A person's rollback: decided now (journaled first), or one a kill interrupted; raises _Finish STOPPED."""
    if person.action == "rollback":
        driver.journal.append("person", action="rollback", user=person.user, step=pos.step, weight=live)
        pos.person_rollback = person.user or "a person"
        driver.progress(f"{pos.person_rollback} decided: roll back now (from {_w(live)})")
    if pos.person_rollback is None:
        return
    reasons = [f"rolled back on {pos.person_rollback}'s decision (a person ended the cutover at {_w(live)})"]
    if _same(live, settings.rollback_weight):
        driver.journal.append("rollback", phase="done", weight=settings.rollback_weight, resumed=True)
        raise _Finish(Outcome.STOPPED, [*reasons, f"found rolled back to {_w(live)}"], live)
    driver.weight, driver.pending_weight = live, None
    driver.rollback(reasons, False)


@dataclass(frozen=True)
class _Person:
    """The person's decision on resume: ``action`` (None: a plain resume of an unfinished journal), who, and
    whether the journal had ended HELD."""

    action: str | None
    user: str | None
    held: bool


def _end_if_finished(pos: _Position, live: float) -> None:
    """A run acted to its end (a verified rollback, a completion) before a kill took its ``end`` record: end it
    as it ended (raises _Finish), applying nothing; a live weight that moved since is said."""
    if pos.finished is None:
        return
    outcome, reasons, final = pos.finished
    if not _same(live, final):
        reasons = (*reasons, f"on resume the live weight is {_w(live)}, not {_w(final)}: nothing applied")
    raise _Finish(outcome, [*reasons, "(its end record was lost: ended on --resume)"], live, pos.guardrail)


def _resume(driver: _Driver, pos: _Position, settings: CutoverSettings, person: _Person) -> None:
    """Continue from the journal's position; the live weight is read first (see :func:`run_cutover`)."""
    try:
        live = driver.live_weight()
    except ShiftError as exc:
        reason = driver.reason(exc)
        raise _Finish(Outcome.HELD, [f"on resume, the live weight could not be read: {reason}"], None) from None
    driver.weight = pos.weight
    driver.progress(
        f"resuming: live weight {_w(live)}; journal at step {pos.step + 1}, verified weight {_w(pos.weight)}"
    )
    _end_if_finished(pos, live)
    who = person.user or "a person"
    _person_rollback(driver, pos, settings, person, live)
    if person.action == "watch" and person.held:
        driver.journal.append("person", action="watch", user=person.user, step=pos.step, weight=live)
        driver.progress(f"{who} decided: watch step {pos.step + 1} for another maximum hold")
        _replay_person(pos, {"action": "watch"}, driver.plan)
    if pos.stop is not None:  # a STOP whose rollback did not finish: roll back now
        reasons = [*pos.stop.reasons, "(rollback finished on --resume)"]
        if _same(live, settings.rollback_weight):
            driver.journal.append("rollback", phase="done", weight=settings.rollback_weight, resumed=True)
            driver.weight = settings.rollback_weight
            raise _Finish(Outcome.STOPPED, [*reasons, f"found rolled back to {_w(live)}"], live, pos.guardrail)
        driver.weight = live
        driver.rollback(reasons, pos.guardrail)
    if pos.pending is not None:
        step, weight, previous = pos.pending
        if _same(live, weight):
            done_at = driver.confirm_shift(step, weight, previous)
            pos.step, pos.t0, pos.next_k, pos.went, pos.missing_run, pos.step_data_checks = (
                step, done_at + settings.settle_s, 0, False, 0, 0,
            )  # fmt: skip
        elif _same(live, previous):
            driver.progress(f"the interrupted shift to {_w(weight)} was not made (live {_w(live)}): applying it again")
            driver.weight = live
            pos.step, pos.went = step - 1, True  # walk shifts step ``step`` again
        else:
            raise _Finish(
                Outcome.HELD,
                [
                    f"on resume the live weight is {_w(live)}: neither the interrupted shift's {_w(weight)} nor the "
                    f"previous {_w(previous)}; nothing applied (a person decides)"
                ],
                live,
            )
    elif not _same(live, pos.weight):
        raise _Finish(
            Outcome.HELD,
            [
                f"on resume the live weight is {_w(live)}, the journal's is {_w(pos.weight)}: nothing applied "
                "(a person decides)"
            ],
            live,
        )
    elif person.action == "go":
        driver.journal.append("person", action="go", user=person.user, step=pos.step, weight=live)
        if pos.step == len(settings.steps) - 1:
            raise _Finish(
                Outcome.COMPLETED,
                [f"completed on {who}'s decision at {_w(live)} (the gate had held the last step)"],
                live,
            )
        driver.progress(f"{who} decided: go to step {pos.step + 2} ({_w(settings.steps[pos.step + 1])})")
        _replay_person(pos, {"action": "go"}, driver.plan)
    elif pos.undecided is not None:  # killed between a check and its decision: decide on it first
        index, window = pos.undecided
        driver.progress(f"check {index + 1} was journaled without its decision: deciding on it now")
        driver.act_on(pos, index, window)
    driver.walk(pos)


def _afterwards(
    run: CutoverRun,
    out: Path,
    reports: Callable[[CutoverRun, Path], None],
    send_event: Callable[[CutoverRun], None] | None,
    progress: Callable[[str], None],
) -> None:
    """Reports, then the event; neither changes the outcome (a failure is one warning line)."""
    try:
        reports(run, out)
    except (OSError, BadInput) as exc:
        progress(f"warning: the reports were not written ({exc}); the journal {out / JOURNAL_NAME} holds the run")
    if send_event is not None:
        try:
            send_event(run)
        except Exception as exc:  # an event must never change the outcome
            progress(
                "warning: the Datadog event was not sent: "
                + (str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__)
            )

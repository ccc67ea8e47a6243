"""Realistic :class:`parity.cutover.model.CutoverRun` objects for the report tests: seeded synthetic APM
intervals of both environments run through the real decision core (``parity.judge.sequential``: ``plan_gate``
→ ``start`` → ``update`` → ``decide`` → ``next_step``), with the driver's rules around it (journal order, act
on the first STOP, missing checks are not updates, ``max_missing`` missing checks in a row hold, the 100 %
step watches the new side's guardrails only, a rollback after a stop).

Each interval draws, per endpoint, the requests of the interval (Poisson around the endpoint's share of
``rate`` requests), splits them by the weight (binomial), draws each side's errors (binomial) and latencies
(lognormal, so avg and percentiles are real order statistics of the requests) and summarises them like
Datadog APM does. Everything is seeded: the same scenario gives the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from parity.cutover.model import ApmSelector, CheckRecord, CutoverRun, Outcome, Rollback, StepRecord
from parity.judge.sequential import (
    Action,
    Check,
    CutoverPolicy,
    EndpointInterval,
    IntervalSummary,
    MaxHold,
    StepDecision,
    decide,
    next_step,
    plan_gate,
    start,
    update,
)

#: 2026-06-01 09:00 UTC: the first check's clock.
T0 = 1_780_304_400.0
INTERVAL_S = 60.0
SETTLE_S = 30.0
DELAY_S = 15.0
#: (endpoint, share of traffic, median ms, error rate) of the old environment.
ENDPOINTS: tuple[tuple[str, float, float, float], ...] = (
    ("GET /api/orders/{id}", 0.45, 80.0, 0.002),
    ("GET /api/users", 0.38, 30.0, 0.001),
    ("POST /api/orders", 0.12, 150.0, 0.01),
    ("GET /health", 0.05, 2.0, 0.0),
)
OLD = ApmSelector("orders-api", "ec2", "rack.request", ("team:checkout",))
NEW = ApmSelector("orders-api", "eks", "rack.request", ("kube_cluster_name:eks-prod",))
#: Short holds; an undecided step goes on at its maximum hold when nothing was shown worse (``MaxHold.ADVANCE``,
#: the simulation's stand-in for the person who says go), except in the ``held_max_hold`` scenario.
POLICY = CutoverPolicy(
    min_hold_checks=4,
    max_hold_checks=8,
    alpha=0.05,
    error_rate_limit=0.05,
    p99_limit_ms=2000.0,
    on_max_hold=MaxHold.ADVANCE,
)


@dataclass(frozen=True)
class Scenario:
    """A cutover to simulate. ``slow``: endpoint → latency factor on the new side from ``slow_from_pct``
    weight on (load-dependent). ``new_errors``: endpoint → the new side's error rate. ``missing``: (step, check)
    pairs whose APM read fails (with ``missing_reason``). ``abort_at``: (step, check) after which the run is
    interrupted. ``rollback_fails``: the rollback's shift raises. ``rate``: requests per interval."""

    name: str
    seed: int
    rate: float = 6000.0
    slow: dict[str, float] = field(default_factory=dict)
    slow_from_pct: float = 0.0
    new_errors: dict[str, float] = field(default_factory=dict)
    missing: frozenset[tuple[int, int]] = frozenset()
    missing_reason: str = "Datadog answered 429 Too Many Requests (the rate limit resets in 37 s)"
    max_missing: int = 3
    abort_at: tuple[int, int] | None = None
    rollback_fails: bool = False
    policy: CutoverPolicy = POLICY


SCENARIOS: dict[str, Scenario] = {
    "completed": Scenario("completed", seed=1),
    "stopped_latency": Scenario("stopped_latency", seed=2, slow={"GET /api/orders/{id}": 1.6}, slow_from_pct=10.0),
    "stopped_guardrail": Scenario("stopped_guardrail", seed=3, new_errors={"POST /api/orders": 0.3}, slow_from_pct=10.0),
    "held_max_hold": Scenario("held_max_hold", seed=4, policy=replace(POLICY, on_max_hold=MaxHold.HOLD)),
    "held_missing": Scenario("held_missing", seed=5, missing=frozenset({(2, 1), (2, 2), (2, 3)})),
    "aborted": Scenario("aborted", seed=6, abort_at=(2, 2)),
    "rollback_failed": Scenario(
        "rollback_failed", seed=7, slow={"GET /api/orders/{id}": 1.6}, slow_from_pct=10.0, rollback_fails=True
    ),
}


def _side(rng: np.random.Generator, n: int, median_ms: float, error_rate: float) -> IntervalSummary:
    if n == 0:
        return IntervalSummary(hits=0, errors=0)
    lat = median_ms * np.exp(0.5 * rng.standard_normal(n))
    p50, p75, p90, p95, p99 = (float(v) for v in np.quantile(lat, [0.5, 0.75, 0.9, 0.95, 0.99]))
    return IntervalSummary(
        hits=n,
        errors=int(rng.binomial(n, error_rate)),
        avg_ms=float(lat.mean()),
        p50_ms=p50,
        p75_ms=p75,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=float(lat.max()),
    )


def _interval(rng: np.random.Generator, s: Scenario, weight: float, end_s: float) -> Check:
    items = []
    for key, share, median, errors in ENDPOINTS:
        n = int(rng.poisson(s.rate * share))
        n_new = int(rng.binomial(n, weight / 100.0))
        factor = s.slow.get(key, 1.0) if weight >= s.slow_from_pct else 1.0
        old = _side(rng, n - n_new, median, errors)
        error_rate = s.new_errors.get(key, errors) if weight >= s.slow_from_pct else errors
        new = _side(rng, n_new, median * factor, error_rate)
        items.append(EndpointInterval(key, old, new))
    return Check(int(end_s * 1000), tuple(items))


def simulate(s: Scenario) -> CutoverRun:
    """Run ``s`` through the real gate like the driver does and return the run as the journal would hold it."""
    rng = np.random.default_rng(s.seed)
    policy = s.policy
    keys = tuple(e[0] for e in ENDPOINTS)
    state = start(plan_gate(keys, policy))
    clock = T0
    started = T0 - 120.0  # discovery before the first shift
    steps: list[StepRecord] = []
    reasons: tuple[str, ...] = ()
    outcome: Outcome | None = None
    rollback: Rollback | None = None
    guardrail = False
    final: float | None = None
    index = 0
    last = len(policy.steps) - 1
    for step_index, weight in enumerate(policy.steps):
        clock += 20.0  # shift applied and verified
        step_start = clock
        clock += SETTLE_S
        records: list[CheckRecord] = []
        missing_run = 0
        action: Action | None = None
        watched = 0
        for check_no in range(policy.max_hold_checks + 1):
            clock += INTERVAL_S
            window = (int(clock - DELAY_S - INTERVAL_S), int(clock - DELAY_S))
            if (step_index, check_no) in s.missing:
                records.append(CheckRecord(index, step_index, *window, None, None, s.missing_reason))
                index += 1
                missing_run += 1
                if missing_run >= s.max_missing:
                    action, outcome = Action.HOLD, Outcome.HELD
                    reasons = (
                        f"{missing_run} checks in a row without APM data (last: {s.missing_reason}): "
                        f"the gate holds, weights unchanged at {weight:g}%",
                    )
                    break
                continue
            missing_run = 0
            check = _interval(rng, s, weight, window[1])
            state = update(state, check)
            decision: StepDecision = decide(state)
            records.append(CheckRecord(index, step_index, *window, check, decision))
            index += 1
            if step_index == last:  # no old side: only the new side's guardrails can act
                watched += 1
                if decision.action is Action.STOP:
                    action = Action.STOP
                elif watched >= policy.min_hold_checks:
                    action = Action.GO
            else:
                action = None if decision.action is Action.WAIT else decision.action
            if s.abort_at == (step_index, check_no) and action is None:
                outcome = Outcome.ABORTED
                reasons = (f"interrupted by SIGINT (Ctrl-C) during step {step_index + 1}; weights unchanged at {weight:g}%",)
                break
            if action is not None:
                break
        if outcome is Outcome.ABORTED:
            steps.append(StepRecord(step_index, weight, step_start, None, None, tuple(records)))
            final = weight
            break
        steps.append(StepRecord(step_index, weight, step_start, clock, action, tuple(records)))
        if action is Action.STOP:
            decision = records[-1].decision  # type: ignore[assignment]
            guardrail = bool(decision.guardrails)
            outcome = Outcome.STOPPED
            reasons = decision.reasons
            if s.rollback_fails:
                rollback = Rollback(0.0, False, "the command 'shift-weights 0' exited 1: upstream refused the change")
                final = weight
            else:
                rollback = Rollback(0.0, True)
                final = 0.0
            clock += 20.0
            break
        if action is Action.HOLD:
            outcome = Outcome.HELD
            if not reasons:
                reasons = records[-1].decision.reasons if records[-1].decision else ()
            final = weight
            break
        if step_index == last:
            outcome, final = Outcome.COMPLETED, weight
            reasons = ("every step passed its checks; 100% of traffic goes to the new environment",)
            break
        state = next_step(state)
    assert outcome is not None
    settings = {
        "steps": list(policy.steps),
        "interval_s": INTERVAL_S,
        "min_hold_s": policy.min_hold_checks * INTERVAL_S,
        "max_hold_s": policy.max_hold_checks * INTERVAL_S,
        "settle_s": SETTLE_S,
        "delay_s": DELAY_S,
        "alpha": policy.alpha,
        "rollback_weight": 0.0,
        "latency_metrics": list(policy.latency_metrics),
        "go_metrics": list(policy.go_metrics),
        "guardrails": {"error_rate": policy.error_rate_limit, "p99_ms": policy.p99_limit_ms},
        "shifter": "command",
    }
    return CutoverRun(
        outcome=outcome,
        final_weight_pct=final,
        started_s=started,
        ended_s=clock,
        old=OLD,
        new=NEW,
        endpoints=keys,
        steps=tuple(steps),
        reasons=tuple(reasons),
        rollback=rollback,
        guardrail=guardrail,
        settings=settings,
    )

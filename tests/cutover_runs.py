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
    GateState,
    IntervalSummary,
    MaxHold,
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
#: An endpoint name holding markup, a script, a mention and a reference (names come from traffic).
HOSTILE = "GET /x<script>window.__pwned=1</script><img src=x onerror=alert(1)> @oncall #123 `tick` | pipe"
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
    interrupted. ``rollback_fails``: the rollback's shift raises. ``rate``: requests per interval (40,000: with
    the short holds here, the 10 % step's traffic must decide a 1.6x regression within 8 checks, against the
    evidence of "no change" the 1 % and 5 % steps pooled into the same test). ``endpoints``:
    the judged family; ``late``: endpoints in the traffic that were not discovered (not judged). ``served``: step
    → the weight the traffic really follows (a DNS change not in effect)."""

    name: str
    seed: int
    rate: float = 40000.0
    slow: dict[str, float] = field(default_factory=dict)
    slow_from_pct: float = 0.0
    new_errors: dict[str, float] = field(default_factory=dict)
    missing: frozenset[tuple[int, int]] = frozenset()
    missing_reason: str = "Datadog answered 429 Too Many Requests (the rate limit resets in 37 s)"
    max_missing: int = 3
    abort_at: tuple[int, int] | None = None
    rollback_fails: bool = False
    policy: CutoverPolicy = POLICY
    endpoints: tuple[tuple[str, float, float, float], ...] = ENDPOINTS
    late: tuple[tuple[str, float, float, float], ...] = ()
    served: dict[int, float] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    "completed": Scenario("completed", seed=1),
    "stopped_latency": Scenario("stopped_latency", seed=2, slow={"GET /api/orders/{id}": 1.6}, slow_from_pct=10.0),
    "stopped_guardrail": Scenario(
        "stopped_guardrail", seed=3, new_errors={"POST /api/orders": 0.3}, slow_from_pct=10.0
    ),
    # +5 % from 50 % on, exactly at the 5 % tolerance: decidable at 50 % (so it holds the GO back), never shown
    # within nor beyond: the step reaches its maximum hold and a person decides.
    "held_max_hold": Scenario(
        "held_max_hold",
        seed=4,
        slow={"GET /api/orders/{id}": 1.05},
        slow_from_pct=50.0,
        policy=replace(POLICY, on_max_hold=MaxHold.HOLD),
    ),
    "held_missing": Scenario("held_missing", seed=5, missing=frozenset({(2, 1), (2, 2), (2, 3)})),
    "aborted": Scenario("aborted", seed=6, abort_at=(2, 2)),
    "held_split": Scenario("held_split", seed=8, served={1: 1.0}),
    "hostile": Scenario(
        "hostile",
        seed=9,
        endpoints=((HOSTILE, 0.5, 40.0, 0.001), *ENDPOINTS[1:]),
        late=(("GET /new-<b>feature</b> @team", 0.02, 20.0, 0.0),),
        slow={HOSTILE: 2.0},
        slow_from_pct=5.0,
    ),
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
    for key, share, median, errors in s.endpoints + s.late:
        n = int(rng.poisson(s.rate * share))
        n_new = int(rng.binomial(n, weight / 100.0))
        factor = s.slow.get(key, 1.0) if weight >= s.slow_from_pct else 1.0
        old = _side(rng, n - n_new, median, errors)
        error_rate = s.new_errors.get(key, errors) if weight >= s.slow_from_pct else errors
        new = _side(rng, n_new, median * factor, error_rate)
        items.append(EndpointInterval(key, old, new))
    return Check(int(end_s * 1000), tuple(items))


@dataclass
class _Gate:
    """The simulated driver's running state (the gate state, the clock, the check counter)."""

    state: GateState
    rng: np.random.Generator
    clock: float = T0
    index: int = 0


def _step(
    gate: _Gate, s: Scenario, step_index: int, weight: float
) -> tuple[StepRecord, Outcome | None, tuple[str, ...]]:
    """One step like the driver runs it: checks until the gate acts (a missing check is journaled, not an update;
    ``max_missing`` in a row hold); at 100 % only a STOP (guardrail) acts, else the step ends after the
    minimum hold. Returns the step, the outcome when the run ends here, and the driver's reasons."""
    policy = s.policy
    gate.clock += 20.0  # shift applied and verified
    step_start = gate.clock
    gate.clock += SETTLE_S
    records: list[CheckRecord] = []
    missing_run = 0
    action: Action | None = None
    last = step_index == len(policy.steps) - 1
    for check_no in range(policy.max_hold_checks + 1):
        gate.clock += INTERVAL_S
        window = (int(gate.clock - DELAY_S - INTERVAL_S), int(gate.clock - DELAY_S))
        gate.index += 1
        if (step_index, check_no) in s.missing:
            records.append(CheckRecord(gate.index - 1, step_index, *window, None, None, s.missing_reason))
            missing_run += 1
            if missing_run >= s.max_missing:
                reason = (
                    f"{missing_run} checks in a row without APM data (last: {s.missing_reason}): "
                    f"the gate holds, weights unchanged at {weight:g}%"
                )
                step = StepRecord(step_index, weight, step_start, gate.clock, Action.HOLD, tuple(records))
                return step, Outcome.HELD, (reason,)
            continue
        missing_run = 0
        check = _interval(gate.rng, s, s.served.get(step_index, weight), window[1])
        gate.state = update(gate.state, check)
        decision = decide(gate.state)
        records.append(CheckRecord(gate.index - 1, step_index, *window, check, decision))
        if last:  # no old side: only the new side's guardrails can act
            action = Action.STOP if decision.action is Action.STOP else None
            if action is None and check_no + 1 >= policy.min_hold_checks:
                action = Action.GO
        else:
            action = None if decision.action is Action.WAIT else decision.action
        if s.abort_at == (step_index, check_no) and action is None:
            reason = f"interrupted by SIGINT (Ctrl-C) during step {step_index + 1}; weights unchanged at {weight:g}%"
            return StepRecord(step_index, weight, step_start, None, None, tuple(records)), Outcome.ABORTED, (reason,)
        if action is not None:
            break
    step = StepRecord(step_index, weight, step_start, gate.clock, action, tuple(records))
    if action is Action.STOP:
        return step, Outcome.STOPPED, decision.reasons
    if action is Action.HOLD:
        return step, Outcome.HELD, decision.reasons
    if last:
        return step, Outcome.COMPLETED, ("every step passed its checks; 100% of traffic goes to the new environment",)
    return step, None, ()


def simulate(s: Scenario) -> CutoverRun:
    """Run ``s`` through the real gate like the driver does and return the run as the journal would hold it."""
    policy = s.policy
    keys = tuple(e[0] for e in s.endpoints)
    gate = _Gate(start(plan_gate(keys, policy)), np.random.default_rng(s.seed))
    steps: list[StepRecord] = []
    outcome: Outcome | None = None
    reasons: tuple[str, ...] = ()
    for step_index, weight in enumerate(policy.steps):
        step, outcome, reasons = _step(gate, s, step_index, weight)
        steps.append(step)
        if outcome is not None:
            break
        gate.state = next_step(gate.state)
    assert outcome is not None
    final: float | None = steps[-1].weight_pct
    rollback = None
    stop = steps[-1].last_decision if outcome is Outcome.STOPPED else None
    if outcome is Outcome.STOPPED:
        gate.clock += 20.0
        if s.rollback_fails:
            rollback = Rollback(0.0, False, "the command 'shift-weights 0' exited 1: upstream refused the change")
        else:
            rollback, final = Rollback(0.0, True), 0.0
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
        started_s=T0 - 120.0,  # discovery before the first shift
        ended_s=gate.clock,
        old=OLD,
        new=NEW,
        endpoints=keys,
        steps=tuple(steps),
        reasons=tuple(reasons),
        rollback=rollback,
        guardrail=bool(stop and stop.guardrails),
        settings=settings,
    )

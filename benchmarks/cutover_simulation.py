"""Benchmark: does the cutover gate (parity.judge.sequential) stop false alarms and catch planted regressions,
and what does re-running a fixed-horizon test at every check do instead?

Simulated weighted-DNS cutovers through the 1 → 5 → 10 → 50 % steps (the 100 % step has no old side left to
compare with and is judged by the guardrails alone, none set by default: reaching it counts as completed) with
one check per 1-minute interval. Traffic: 30 endpoints with a Zipf(1) mix (the top one ~25 %, the 5th 5.0 %),
~2,000 requests/min in total (Poisson per endpoint and side), each request sent to the new side with
probability weight/100. Latency per endpoint: lognormal with a median drawn log-uniformly in 20-300 ms and
sigma 0.5, times a shared per-minute factor (both sides, lognormal sd 0.05: the load of the moment).
Background error rate per endpoint log-uniform in 0.05-1 %. Each interval's APM-like summary (hits, errors,
avg, p50/p75/p90/p95/p99 by nearest rank, max) is computed from the simulated requests of each side; the gate
sees only those summaries.

Gate: the default ``CutoverPolicy`` as a user gets it (alpha 0.01 over the family, split by
``ALPHA_WEIGHTS``: the mean latency 1.5 × alpha/90, the error rate 1 ×, the p95 0.5 ×; one-sided latency
bounds; tolerances from the judge's default policy: avg/p95 5 % and 1/2 ms, error rate x1.5 and +0.1
point; holds of 40-120 checks, i.e. 40 minutes to 2 hours per step), with ``MaxHold.ADVANCE`` standing in for
the person asked when a step reaches its maximum hold undecided: "held steps" is the share of steps that
did, "unasked" the share of cutovers that went through every step on the gate's own GO (no person asked).
After the gate stops, the stream goes on at the minimum-hold pace for the fixed-horizon tests only.

Scenarios (the regressed endpoint is the 5th, 5.0 % of traffic):
  none          no change
  none/heavy    no change; 5 % of requests from a Pareto(1.5) tail above twice the median (infinite variance:
                the gate's lognormal variance model is wrong here, its empirical variance must carry it)
  latency+20%   every request of the regressed endpoint x1.2 on the new side
  errors+2pt    every endpoint's error rate +2 points on the new side
  errors+2pt/1  the regressed endpoint only: +2 points

Fixed-horizon comparison ("what people do by hand"), run on the same stream at every check, cumulative
over the cutover, per endpoint: a one-sided t-test of the per-interval ln(avg_new / avg_old) > 0 (the same
usable intervals as the gate) together with the estimate beyond the tolerance, and an exact conditional
binomial test of the new side's errors (given all errors and the request split) with the rate beyond the
tolerance; "fixed 0.05" tests every endpoint and metric at 0.05, "fixed bonf" at 0.01 / family (an even
Bonferroni split of the gate's alpha) — it still inflates with every look.

Measured at the session's final code (seed 1, 200 cutovers per scenario, default holds 40-120; two runs side
by side on 2 cores shared with other work, so s/run is inflated):
  scenario        stopped   by 10%     at 1/5/10/50%  held steps  unasked  fixed 0.05  fixed bonf  s/run
  none               0.0%     nan%           0/0/0/0        0.0%   100.0%      100.0%        3.5%   2.40
  none/heavy         0.0%     nan%           0/0/0/0        0.0%   100.0%      100.0%        1.0%   1.46
  latency+20%      100.0%   100.0%        0/97/103/0        0.0%     0.0%      100.0%      100.0%   1.43
  errors+2pt       100.0%   100.0%        21/178/1/0        0.2%     0.0%      100.0%      100.0%   0.99
  errors+2pt/1      96.0%    51.6%        0/11/88/93        1.0%     3.5%      100.0%      100.0%   1.51
Every no-change cutover went through all four steps on the gate's own GO, none stopped; the fixed-horizon
test at 0.05 stopped all of them, at the Bonferroni split 3.5 % (it inflates with every look).

Before issue 16's decisions (holds 10-30, two-sided bounds, an even alpha split, GO only when every endpoint
was shown within): latency+20% stopped 100 %, 63.5 % of them by the 10 % step, and 100 % of the no-change
steps reached their maximum hold (a person asked at every step). With the 40-120 holds, one-sided bounds and
weighted alpha but before the rule below: 92.0 % by the 10 % step, 0/34/150/16 over the steps.

Why every one by the 10 % step: a metric shown worse than no change (its lower bound above x1) holds the GO
back even when the step's traffic could not show it beyond tolerance (``sequential._shown_changed``), so
the step waits, gathering evidence, instead of going on at its 40-check minimum hold, and the STOP comes in
the same step. Without it the arithmetic was: the regressed endpoint (100 req/min) sends 40 × (1 + 5 + 10) =
640 requests to the new side by the end of the 10 % step; intervals with >= 3 hits a side give an effective
sample of ~550, so a 20 % change beyond a 5 % tolerance, ln(1.2/1.05) = 0.134 against a per-request CV of
0.53, reaches an expected z of 5.87, while the one-sided normal-mixture boundary at 1.5 × 0.01/90 sits at
z = 4.48 (two-sided at 0.01/90: 4.72; a single fixed look would need 3.69): P(crossed by then) ~ 92 %.
Under no change, a lower bound above x1 happens with at most the test's alpha, so the rule costs clean
cutovers nothing measurable (100 % unasked above). The single-endpoint error increase (errors+2pt/1) is the
weakest case: 5 % of traffic, about 1 new-side error a minute even at the 50 % step.

Usage: python benchmarks/cutover_simulation.py [--runs 200] [--seed 1] [--min-hold N] [--max-hold N]
[--scenario NAME] [--scenario NAME ...]. Not part of `make test`; about 15-20 minutes on one core with the
defaults.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from parity.judge import sequential as seq

N_ENDPOINTS = 30
RATE_PER_MIN = 2000.0
STEPS = (1.0, 5.0, 10.0, 50.0)
SIGMA = 0.5
DRIFT_SD = 0.05
REGRESSED = 4  # Zipf(1) rank 5: 5.0 % of traffic
QUANTILES = (0.50, 0.75, 0.90, 0.95, 0.99)
SCENARIOS = ("none", "none/heavy", "latency+20%", "errors+2pt", "errors+2pt/1")
PARETO_SHARE, PARETO_ALPHA = 0.05, 1.5
FIXED_ALPHA = 0.05


@dataclass
class Outcome:
    stopped_at: int | None  # step index where the gate stopped
    held_steps: int  # steps that went on at their maximum hold
    fixed_stop: int | None  # step index where the fixed-horizon test (0.05) would have stopped
    bonf_stop: int | None


def _summaries(
    rng: np.random.Generator, n: np.ndarray, medians: np.ndarray, mult: np.ndarray, err: np.ndarray, heavy: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per group (endpoint × side) APM-like figures from simulated requests: hits, errors, avg, quantiles, max."""
    groups = n.size
    keys = np.repeat(np.arange(groups), n)
    values = rng.lognormal(np.log(medians[keys]), SIGMA) * mult[keys]
    if heavy:  # 5 % of requests from a Pareto tail (infinite variance) starting at twice the median
        tail = rng.random(values.size) < PARETO_SHARE
        values[tail] = 2 * medians[keys[tail]] * mult[keys[tail]] * (1 + rng.pareto(PARETO_ALPHA, int(tail.sum())))
    order = np.lexsort((values, keys))
    values = values[order]
    start = np.concatenate(([0], np.cumsum(n)[:-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.bincount(keys, weights=values, minlength=groups) / n
    figures = [avg]
    for q in QUANTILES:
        idx = start + np.maximum(np.ceil(q * n).astype(int) - 1, 0)
        figures.append(
            np.where(n > 0, values[np.minimum(idx, max(values.size - 1, 0))] if values.size else np.nan, np.nan)
        )
    figures.append(
        np.where(n > 0, values[np.minimum(start + n - 1, max(values.size - 1, 0))] if values.size else np.nan, np.nan)
    )
    errors = rng.binomial(n, err)
    return errors, figures


def _check(minute: int, names: list[str], n: np.ndarray, errors: np.ndarray, figures: list[np.ndarray]) -> seq.Check:
    items = []
    for i, name in enumerate(names):
        sides = []
        for side in (0, 1):
            g = 2 * i + side
            hits = int(n[g])
            if hits == 0:
                sides.append(seq.IntervalSummary(0, 0))
                continue
            sides.append(seq.IntervalSummary(hits, int(errors[g]), *(float(f[g]) for f in figures)))
        items.append(seq.EndpointInterval(name, sides[0], sides[1]))
    return seq.Check(minute * 60_000, tuple(items))


class FixedHorizon:
    """Cumulative per-endpoint fixed-horizon tests re-run at every check (see module docstring)."""

    def __init__(self, plan: seq.GatePlan) -> None:
        self.y = np.zeros((3, len(plan.endpoints)))  # count, sum, sum of squares of ln(avg_new / avg_old)
        self.counts = np.zeros((4, len(plan.endpoints)))  # hits old/new, errors old/new
        self.lat_tol = np.array([t.relative for t in plan.tolerances["avg_ms"]])
        self.err_tol = plan.tolerances["error_rate"]

    def update(self, n: np.ndarray, errors: np.ndarray, avg: np.ndarray) -> None:
        n_old, n_new = n[0::2], n[1::2]
        both = (n_old > 0) & (n_new > 0)
        self.counts += np.where(both, np.stack([n_old, n_new, errors[0::2], errors[1::2]]), 0)
        need = seq.min_interval_hits("avg_ms")
        usable = (n_old >= need) & (n_new >= need)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(usable, np.log(avg[1::2] / avg[0::2]), 0.0)
        self.y += np.stack([usable.astype(float), y, y * y])

    def stops(self, alpha: float) -> bool:
        k, sy, syy = self.y
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = sy / k
            sd = np.sqrt(np.maximum(syy - k * mean * mean, 0.0) / (k - 1))
            p_lat = stats.t.sf(mean / (sd / np.sqrt(k)), k - 1)
        if np.any((k >= 3) & (p_lat < alpha) & (mean > np.log1p(self.lat_tol))):
            return True
        h_old, h_new, e_old, e_new = self.counts
        total = e_old + e_new
        theta = np.where(h_old + h_new > 0, h_new / np.maximum(h_old + h_new, 1), 0.5)
        p = stats.binom.sf(e_new - 1, total, theta)
        with np.errstate(divide="ignore", invalid="ignore"):
            r_new, r_old = e_new / h_new, e_old / h_old
        for i in np.flatnonzero((p < alpha) & (total > 0)):
            tol = self.err_tol[i]
            if r_new[i] - r_old[i] > tol.absolute and r_new[i] > (1 + tol.relative) * r_old[i]:
                return True
        return False


def simulate(scenario: str, rng: np.random.Generator, policy: seq.CutoverPolicy) -> Outcome:
    """One simulated cutover; see the module docstring."""
    names = [f"GET /api/e{i:02d}" for i in range(N_ENDPOINTS)]
    share = 1 / np.arange(1, N_ENDPOINTS + 1)
    share /= share.sum()
    medians = np.exp(rng.uniform(math.log(20), math.log(300), N_ENDPOINTS))
    base_err = np.exp(rng.uniform(math.log(0.0005), math.log(0.01), N_ENDPOINTS))
    new_err, new_mult = base_err.copy(), np.ones(N_ENDPOINTS)
    if scenario == "latency+20%":
        new_mult[REGRESSED] = 1.2
    elif scenario == "errors+2pt":
        new_err += 0.02
    elif scenario == "errors+2pt/1":
        new_err[REGRESSED] += 0.02
    plan = seq.plan_gate(names, policy)
    state = seq.start(plan)
    fixed = FixedHorizon(plan)
    bonf_alpha = policy.alpha / plan.family
    outcome = Outcome(None, 0, None, None)
    minute = 0
    med2 = np.repeat(medians, 2)
    err2 = np.stack([base_err, new_err], axis=1).ravel()
    for step, weight in enumerate(STEPS):
        if step:
            state = seq.next_step(state)
        w = weight / 100
        while True:
            minute += 1
            lam = RATE_PER_MIN * np.stack([share * (1 - w), share * w], axis=1).ravel()
            n = rng.poisson(lam)
            drift = np.repeat(np.exp(rng.normal(0, DRIFT_SD, N_ENDPOINTS)), 2)
            mult = drift * np.stack([np.ones(N_ENDPOINTS), new_mult], axis=1).ravel()
            errors, figures = _summaries(rng, n, med2, mult, err2, scenario == "none/heavy")
            fixed.update(n, errors, figures[0])
            if outcome.fixed_stop is None and fixed.stops(FIXED_ALPHA):
                outcome.fixed_stop = step
            if outcome.bonf_stop is None and fixed.stops(bonf_alpha):
                outcome.bonf_stop = step
            if outcome.stopped_at is None:
                state = seq.update(state, _check(minute, names, n, errors, figures))
                decision = seq.decide(state)
                if decision.action is seq.Action.STOP:
                    outcome.stopped_at = step
                elif decision.action is seq.Action.GO:
                    outcome.held_steps += state.step_checks >= policy.max_hold_checks
                    break
            else:  # the gate stopped: the stream goes on for the fixed-horizon tests, min-hold steps (the pace
                # of a cutover that goes at its minimum hold)
                state = replace(state, step_checks=state.step_checks + 1)
            if outcome.stopped_at is not None and state.step_checks >= policy.min_hold_checks:
                break
        if outcome.stopped_at is not None and outcome.fixed_stop is not None and outcome.bonf_stop is not None:
            break
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="simulated cutovers per scenario (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--min-hold", type=int, help="minimum hold per step, in checks (default: the policy's)")
    parser.add_argument("--max-hold", type=int, help="maximum hold per step, in checks (default: the policy's)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    args = parser.parse_args()
    policy = seq.CutoverPolicy(on_max_hold=seq.MaxHold.ADVANCE)
    if args.min_hold is not None:
        policy = replace(policy, min_hold_checks=args.min_hold)
    if args.max_hold is not None:
        policy = replace(policy, max_hold_checks=args.max_hold)
    plan = seq.plan_gate([f"e{i}" for i in range(N_ENDPOINTS)], policy)
    print(
        f"{args.runs} cutovers per scenario, steps {'/'.join(f'{s:g}' for s in STEPS)} %, {RATE_PER_MIN:.0f} req/min, "
        f"{N_ENDPOINTS} endpoints, hold {policy.min_hold_checks}-{policy.max_hold_checks} checks; gate alpha "
        f"{policy.alpha} over a family of {plan.family} ({plan.test_alpha:.2e} each on average, mean latency "
        f"{plan.alpha('avg_ms'):.2e}, one-sided)"
    )
    header = (
        f"{'scenario':<14}{'stopped':>9}{'by 10%':>9}{'at 1/5/10/50%':>18}{'held steps':>12}{'unasked':>9}"
        f"{'fixed 0.05':>12}{'fixed bonf':>12}{'s/run':>7}"
    )
    print(header)
    print("-" * len(header))
    for k, scenario in enumerate(SCENARIOS):
        if args.scenario and scenario not in args.scenario:
            continue
        rng = np.random.default_rng([args.seed, k])
        began = time.perf_counter()
        outcomes = [simulate(scenario, rng, policy) for _ in range(args.runs)]
        per_run = (time.perf_counter() - began) / args.runs
        stopped = [o.stopped_at for o in outcomes if o.stopped_at is not None]
        by_step = [sum(1 for s in stopped if s == i) for i in range(len(STEPS))]
        early = sum(1 for s in stopped if s <= 2)
        held = sum(o.held_steps for o in outcomes) / (args.runs * len(STEPS))
        unattended = sum(o.stopped_at is None and not o.held_steps for o in outcomes) / args.runs
        fixed = sum(o.fixed_stop is not None for o in outcomes) / args.runs
        bonf = sum(o.bonf_stop is not None for o in outcomes) / args.runs
        print(
            f"{scenario:<14}{len(stopped) / args.runs:>9.1%}"
            f"{(early / len(stopped) if stopped else float('nan')):>9.1%}"
            f"{'/'.join(str(c) for c in by_step):>18}{held:>12.1%}{unattended:>9.1%}"
            f"{fixed:>12.1%}{bonf:>12.1%}{per_run:>7.2f}"
        )
    print(
        "stopped: share of cutovers the gate stopped; by 10%: of those, the share stopped at the 1, 5 or 10 % step;"
        "\nheld steps: share of steps that reached their maximum hold undecided (a person would be asked);"
        "\nunasked: share of cutovers that reached 100 % with every step GO by the gate (no person asked);"
        "\nfixed 0.05 / fixed bonf: share of the same cutovers a fixed-horizon test re-run at every check would have"
        "\nstopped (per test alpha 0.05 / Bonferroni-split alpha)."
    )


if __name__ == "__main__":
    main()

"""Benchmark: the compressed timing of ``parity demo cutover`` — can the gate decide within the demo's holds?

Feeds the real decision core (``parity.judge.sequential``) simulated checks of the demo's traffic at the 50 %
step: the bundled baseline's mix at ``--rate`` req/s split evenly, one check per ``--interval`` seconds, each
side's per-interval avg per endpoint from lognormal requests with the old side's measured avg and spread
(``--sigma``), and on the new side the planted bottleneck's measured ratios (``BOTTLENECK_50``, from
``benchmarks/demo_cutover_bottleneck.py`` at 80 req/s) or none. Prints, over ``--runs`` seeded runs: with the
bottleneck, how many checks until the first STOP; without it, how many until every endpoint with at least
``--share`` of the traffic is shown within tolerance on ``avg_ms`` (what a GO at the last compared step needs),
and how often anything stopped (a false stop).

    .venv/bin/python benchmarks/demo_cutover_timing.py --rate 80 --interval 2 --tolerance 0.25
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import numpy as np

from parity.demo.catalog import CATALOG
from parity.judge import sequential as seq
from parity.judge.policy import DEFAULT_RULES, Policy

#: Old side's avg (ms) per endpoint as the demo servers answer (spans, 80 req/s, measured).
OLD_AVG_MS = {
    "GET /health": 1.6,
    "POST /api/session": 60.0,
    "GET /api/employees": 36.0,
    "GET /api/employees/{id}": 14.0,
    "PATCH /api/employees/{id}": 34.0,
    "GET /api/employees/{id}/attendance": 30.0,
    "POST /api/attendance/clock-in": 13.0,
    "GET /api/leave-requests": 27.0,
    "GET /api/departments": 5.3,
    "GET /api/payslips/{id}": 44.0,
    "POST /api/payroll/calculations": 240.0,
    "GET /api/reports/employees.csv": 70.0,
}
#: New/old avg at the 50 % step with the planted bottleneck (80 req/s; benchmarks/demo_cutover_bottleneck.py).
BOTTLENECK_50 = {
    "GET /health": 0.975,
    "POST /api/session": 1.232,
    "GET /api/employees": 1.339,
    "GET /api/employees/{id}": 1.883,
    "PATCH /api/employees/{id}": 1.309,
    "GET /api/employees/{id}/attendance": 1.346,
    "POST /api/attendance/clock-in": 1.898,
    "GET /api/leave-requests": 1.418,
    "GET /api/departments": 2.230,
    "GET /api/payslips/{id}": 1.268,
    "POST /api/payroll/calculations": 1.005,
    "GET /api/reports/employees.csv": 1.197,
}
#: Steady-mix shares of the bundled baseline (its day's hits per endpoint over all hits).
SHARES = {
    "GET /health": 0.0802,
    "POST /api/session": 0.0549,
    "GET /api/employees": 0.1406,
    "GET /api/employees/{id}": 0.2005,
    "PATCH /api/employees/{id}": 0.0402,
    "GET /api/employees/{id}/attendance": 0.1204,
    "POST /api/attendance/clock-in": 0.1006,
    "GET /api/leave-requests": 0.0703,
    "GET /api/departments": 0.0501,
    "GET /api/payslips/{id}": 0.1060,
    "POST /api/payroll/calculations": 0.0162,
    "GET /api/reports/employees.csv": 0.0201,
}


def demo_policy(tolerance: float) -> Policy:
    """The judge's default policy with ``avg_ms`` tolerance ``tolerance`` (0: unchanged)."""
    if not tolerance:
        return Policy()
    rules = dict(DEFAULT_RULES)
    rules["avg_ms"] = replace(rules["avg_ms"], tolerance=tolerance)
    return Policy(rules=rules)


def _side(rng: np.random.Generator, n: int, avg: float, sigma: float) -> seq.IntervalSummary:
    if n == 0:
        return seq.IntervalSummary(0, 0)
    median = avg / math.exp(sigma * sigma / 2)
    values = median * np.exp(sigma * rng.standard_normal(n))
    p50, p75, p90, p95, p99 = (float(np.percentile(values, q, method="nearest")) for q in (50, 75, 90, 95, 99))
    return seq.IntervalSummary(n, 0, float(values.mean()), p50, p75, p90, p95, p99, float(values.max()))


def run(args: argparse.Namespace, bottleneck: bool, seed: int) -> tuple[int | None, int | None]:
    """(checks until the first STOP, checks until every endpoint above --share is WITHIN) at the 50 % step."""
    rng = np.random.default_rng(seed)
    keys = [e.key for e in CATALOG]
    judge = demo_policy(args.tolerance)
    policy = seq.CutoverPolicy(
        steps=(50.0, 100.0),
        min_hold_checks=1,
        max_hold_checks=10_000,
        latency_metrics=("avg_ms",),
        go_metrics=("avg_ms",),
        min_traffic_share=args.share,
    )
    state = seq.start(seq.plan_gate(keys, policy, judge))
    within_at = None
    for check in range(1, args.max_checks + 1):
        items = []
        for key in keys:
            lam = args.rate * SHARES[key] * args.interval * 0.5
            n_old, n_new = rng.poisson(lam), rng.poisson(lam)
            ratio = BOTTLENECK_50[key] if bottleneck else 1.0
            old = _side(rng, int(n_old), OLD_AVG_MS[key], args.sigma)
            new = _side(rng, int(n_new), OLD_AVG_MS[key] * ratio, args.sigma * (1.3 if bottleneck else 1.0))
            items.append(seq.EndpointInterval(key, old, new))
        state = seq.update(state, seq.Check(check * 1000, tuple(items)))
        decision = seq.decide(state)
        if decision.action is seq.Action.STOP:
            return check, within_at
        must = [m for m in decision.metrics if m.metric == "avg_ms" and SHARES[m.endpoint] >= args.share]
        if within_at is None and all(m.finding is seq.Finding.WITHIN for m in must):
            within_at = check
            if not bottleneck:
                return None, within_at
    return None, within_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=80.0, help="demo rate, req/s (default 80)")
    parser.add_argument("--interval", type=float, default=2.0, help="check interval, s (default 2)")
    parser.add_argument("--tolerance", type=float, default=0.25, help="avg_ms tolerance (0: the judge's default)")
    parser.add_argument("--share", type=float, default=0.1, help="min_traffic_share (default 0.1)")
    parser.add_argument("--sigma", type=float, default=0.45, help="lognormal spread of a request (default 0.45)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--max-checks", type=int, default=60)
    args = parser.parse_args()
    for bottleneck in (True, False):
        stops, withins = [], []
        for seed in range(args.runs):
            stop, within = run(args, bottleneck, seed)
            stops.append(stop)
            withins.append(within)
        stopped = [s for s in stops if s is not None]
        shown = [w for w in withins if w is not None]
        label = "bottleneck" if bottleneck else "none"

        def q(values: list[int], p: float) -> str:
            return f"{np.percentile(values, p):.0f}" if values else "-"

        print(
            f"{label:10s} stopped {len(stopped) / args.runs:6.1%} checks to stop p50/p90/max "
            f"{q(stopped, 50)}/{q(stopped, 90)}/{max(stopped, default=0)}; "
            f"all WITHIN {len(shown) / args.runs:6.1%} checks p50/p90/max {q(shown, 50)}/{q(shown, 90)}/"
            f"{max(shown, default=0)}"
        )


if __name__ == "__main__":
    main()

"""How often does ``parity.explain`` name the right component, and how often a wrong one?

Synthetic requests of a Rails-like endpoint (skewed times, varying call counts): app code log-normal around
40 ms, a Poisson number of postgres queries (mean 10, each log-normal around 1.5 ms), 0-3 redis commands, an
outbound call to ``billing`` in half the requests. Each draw builds the spans, breaks every trace down with the
real :mod:`parity.explain.breakdown` and judges old vs new with :func:`parity.explain.judge.explain`.

Scenarios: ``A/A`` (no change: any component called slower or faster is a false finding), ``N+1`` (twice the
queries), ``CPU`` (+30 % app code), ``slow db`` (+60 % per query, same count), ``far billing`` (+15 ms per
outbound call). For each number of traces per side: the share of draws whose explanation names the planted
component first, and the share naming a component that did not change.

Run: ``.venv/bin/python benchmarks/explain_accuracy.py [--draws 200]`` (about 40 s of CPU).

Figures (200 draws per cell, seed 1). "right first": the planted component is named first; "false": some
component that did not change is called slower or faster (the Bonferroni-adjusted intervals bound it by 5 %
per explanation, 2.5 % for "slower"); "not slower": the sampled requests as a whole are not shown slower
(the components are still judged on their own):

    traces/side  scenario      right first   false  not slower
             10  A/A                     -    1.0%       98.0%
             10  N+1                 85.0%    3.0%       61.0%
             10  CPU                 13.0%    2.0%       80.5%
             10  slow db             43.5%    3.0%       78.5%
             10  far billing          5.0%    2.0%       88.0%
             40  A/A                     -    3.5%       97.0%
             40  N+1                100.0%    0.5%        9.0%
             40  CPU                 77.0%    3.0%       28.0%
             40  slow db             99.0%    1.5%       39.5%
             40  far billing         28.0%    3.5%       65.5%

A call-count blow-up is found from 10 traces; a +30 % CPU change against a log-normal spread needs about 40;
a +15 ms outbound call present in half the requests (+7.5 ms per request on ~85 ms with a wide spread) is
mostly undecided even at 40 — more traces, or a per-call comparison, would find it.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from parity.explain.breakdown import TraceBreakdown, breakdown_trace
from parity.explain.judge import Change, TraceSample, explain
from parity.explain.spans import Span

T0 = 1_764_000_000_000.0


def request(rng: np.random.Generator, tid: str, scenario: str, new: bool) -> TraceBreakdown:
    """One synthetic request's trace, broken down."""
    app = float(rng.lognormal(math.log(40.0), 0.35))
    n_q = int(rng.poisson(10))
    q_scale = 1.5
    billing_extra = 0.0
    if new and scenario == "N+1":
        n_q *= 2
    if new and scenario == "CPU":
        app *= 1.3
    if new and scenario == "slow db":
        q_scale *= 1.6
    if new and scenario == "far billing":
        billing_extra = 15.0
    calls: list[tuple[str, str, float, tuple[tuple[str, str], ...]]] = []
    calls += [("postgres.query", "sql", float(rng.lognormal(math.log(q_scale), 0.5)), ()) for _ in range(n_q)]
    calls += [
        ("redis.command", "redis", float(rng.lognormal(math.log(0.5), 0.3)), ()) for _ in range(rng.integers(0, 4))
    ]
    if rng.random() < 0.5:
        calls.append(
            (
                "http.request",
                "http",
                float(rng.lognormal(math.log(20.0), 0.4)) + billing_extra,
                (("peer.service", "billing"),),
            )
        )
    total = app + sum(c[2] for c in calls)
    spans = [Span(tid, "r", None, "web", "web", "rack.request", "GET /x", T0, total)]
    at = T0 + app / 2
    for i, (name, typ, d, tags) in enumerate(calls):
        spans.append(Span(tid, f"s{i}", "r", "web", typ, name, name, at, d, tags=tags))
        at += d
    result = breakdown_trace(spans)
    assert isinstance(result, TraceBreakdown)
    return result


PLANTED = {"A/A": None, "N+1": "postgres", "CPU": "app code", "slow db": "postgres", "far billing": "billing"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'traces/side':>11}  {'scenario':12}  {'right first':>11}  {'false':>6}  {'not slower':>10}")
    for n in (10, 40):
        for scenario, planted in PLANTED.items():
            right = false = not_slower = 0
            for d in range(args.draws):
                old = TraceSample(traces=tuple(request(rng, f"o{d}-{i}", scenario, False) for i in range(n)))
                new = TraceSample(traces=tuple(request(rng, f"n{d}-{i}", scenario, True) for i in range(n)))
                e = explain("GET /x", old, new)
                assert e.request is not None
                right += bool(planted and e.named and e.named[0] == planted)
                not_slower += e.request.change is not Change.SLOWER
                false += any(c.change in (Change.SLOWER, Change.FASTER) and c.label != planted for c in e.components)
            first = "-" if planted is None else f"{right / args.draws:.1%}"
            print(f"{n:>11}  {scenario:12}  {first:>11}  {false / args.draws:>6.1%}  {not_slower / args.draws:>10.1%}")


if __name__ == "__main__":
    main()

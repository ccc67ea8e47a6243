"""Benchmark: does the replay send what it planned? (prints figures; not part of `make test`)

Replays ``baselines/demo.json`` and compares what was recorded with the deterministic schedule the same plan,
shape and seed produce (``parity.replay.schedule.iter_arrivals``, as the replay computes it):
- steady: ``--shape steady --rps 1000`` (the baseline's overall mix) against nginx on loopback (fast enough
  that the target never holds the generator back) — the acceptance run;
- replay: the baseline's day compressed into the run at ``--rate-scale 8`` (mean ≈ 620 req/s, payroll peak
  ≈ 1,570 req/s) against nginx;
- demo: the same at ``--rate-scale 2`` against the demo's ``old`` profile (a real, slower target; fewer requests,
  so its mix figure is indicative only).

Figures per run: total = achieved / planned requests (target ±2%); seconds = share of whole seconds after a
2 s warm-up whose achieved count (by send time) is within ±5% (or ±1 request) of the planned count in the same
second (target ≥ 95%); mix = total variation distance between planned and achieved endpoint shares (target
≤ 0.02 over ≥ 10,000 requests; the TVD against the plan's mix probabilities is shown beside it).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import replay_support as rs

from parity import measurement_json
from parity.demo.processes import running_server
from parity.replay import shapes
from parity.replay.plan import build_plan
from parity.replay.schedule import iter_arrivals
from parity.replay.shapes import ShapedPlan

SEED = 1
WARMUP_S = 2.0
TOTAL_TOL, SECOND_TOL, SECONDS_SHARE, TVD_MAX, TVD_MIN_REQUESTS = 0.02, 0.05, 0.95, 0.02, 10_000


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "nginx" or "demo"
    run_s: float
    shape: list[str]  # replay options

    def shaped(self) -> ShapedPlan:
        plan = build_plan(measurement_json.read(rs.DEMO_BASELINE))
        opts = dict(zip(self.shape[::2], self.shape[1::2], strict=True))
        if opts.get("--shape") == "steady":
            return shapes.steady(plan, self.run_s, float(opts["--rps"]))
        return shapes.replay(plan, self.run_s, float(opts.get("--rate-scale", "1")))


@contextmanager
def target(kind: str) -> Iterator[tuple[str, list[int]]]:
    if kind == "nginx":
        with rs.nginx() as (url, pid):
            yield url, [pid]
    else:
        with running_server("old") as url:
            yield url, []


def tvd(a: Counter[str], b: Counter[str] | dict[str, float]) -> float:
    ta, tb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / ta - b.get(k, 0) / tb) for k in set(a) | set(b))


def run_case(case: Case, tmp: Path) -> list[str]:
    shaped = case.shaped()
    planned = list(iter_arrivals(shaped.plan, shaped.run_time_s, rate_scale=1.0, seed=SEED))
    planned_mix = Counter(f"{a.method} {a.name}" for a in planned)
    mix_probs = {p.endpoint.key: float(shaped.plan.rates[i].sum()) for i, p in enumerate(shaped.plan.endpoints)}
    out = tmp / f"{case.name}.json"
    with target(case.target) as (url, pids):
        rs.wait_quiet()
        run = rs.run_locust(
            rs.replay_locustfile(),
            rs.replay_args(url, rs.DEMO_BASELINE, out, case.run_s, "--seed", str(SEED), *case.shape),
            tmp,
            timeout_s=case.run_s + 90,
            target_pids=pids,
        )
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"{case.name}: replay failed ({run.returncode}): {run.stderr[-1500:]}")
    m = measurement_json.read(out)
    start = m.window.start.timestamp()
    achieved = rs.per_second(m)
    planned_s = Counter(math.floor(start + a.at_s) for a in planned)
    seconds = range(math.ceil(start + WARMUP_S), math.floor(start + case.run_s))  # whole seconds in the run
    good = sum(1 for s in seconds if abs(achieved.get(s, 0) - planned_s[s]) <= max(1, SECOND_TOL * planned_s[s]))
    achieved_mix = Counter({e.endpoint.key: e.count for e in m.endpoints})
    total = m.total_count
    errors = sum(e.errors or 0 for e in m.endpoints)
    sent, late = rs.sends(m)
    cpu = run.cpu.generator(start + 1, start + case.run_s)
    d_plan, d_probs = tvd(achieved_mix, planned_mix), tvd(achieved_mix, mix_probs)
    share = good / len(seconds)
    ratio = total / len(planned)
    enough = total >= TVD_MIN_REQUESTS
    mix_verdict = rs.verdict(d_plan <= TVD_MAX) if enough else f"(n/a: < {TVD_MIN_REQUESTS:,} requests)"
    return [
        f"{case.name}: {' '.join(case.shape)}, {case.run_s:g} s against {case.target}; generator CPU "
        f"{'+'.join(f'{c:.0f}' for c in cpu)}%, background {run.cpu.background(start + 1, start + case.run_s):.0f}%"
        f"{' (with the demo target)' if case.target == 'demo' else ''}"
        f", errors {errors}, late sends {late}/{sent}",
        f"  total     achieved {total} / planned {len(planned)} = {ratio:.4f}  (±{TOTAL_TOL:.0%})  "
        f"{rs.verdict(abs(ratio - 1) <= TOTAL_TOL)}",
        f"  seconds   {good}/{len(seconds)} within ±{SECOND_TOL:.0%} of plan = {share:.1%}  (≥ {SECONDS_SHARE:.0%})  "
        f"{rs.verdict(share >= SECONDS_SHARE)}",
        f"  mix TVD   vs schedule {d_plan:.4f}, vs plan mix {d_probs:.4f}  (≤ {TVD_MAX})  {mix_verdict}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=20.0, help="seconds per run (20)")
    parser.add_argument("--rps", type=float, default=1000.0, help="steady run's total rate (1000)")
    parser.add_argument("--no-demo", action="store_true", help="skip the run against the demo target")
    rs.add_locustfile_option(parser)
    args = parser.parse_args()
    rs.use_locustfile(args.locustfile)
    cases = [
        Case("steady", "nginx", args.run_s, ["--shape", "steady", "--rps", f"{args.rps:g}"]),
        Case("replay", "nginx", args.run_s, ["--shape", "replay", "--rate-scale", "8"]),
    ]
    if not args.no_demo:
        cases.append(Case("demo", "demo", args.run_s, ["--shape", "replay", "--rate-scale", "2"]))
    print(f"rate and mix fidelity of {rs.replay_locustfile()} replaying {rs.DEMO_BASELINE.name}, seed {SEED}")
    print(rs.load_note())
    print(f"code: {rs.git_state()}")
    with tempfile.TemporaryDirectory(prefix="bench-fid-") as tmp:
        for case in cases:
            t = time.monotonic()
            for line in run_case(case, Path(tmp)):
                print(line, flush=True)
            print(f"  ({time.monotonic() - t:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

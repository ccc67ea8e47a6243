"""Benchmark: does the replay send what it planned? (prints figures; not part of `make test`)

Replays the bundled baseline for RUN_S seconds against the demo's `old` profile on loopback and
compares what was recorded with the deterministic schedule the same seed produces:
- total: achieved / planned requests;
- rate: share of seconds whose achieved count is within ±5% (or ±1 request) of the plan, after 2 s;
- mix: total variation distance between planned and achieved endpoint shares.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from parity import measurement_json
from parity.demo.processes import running_server
from parity.replay.plan import build_plan
from parity.replay.schedule import iter_arrivals

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "baselines" / "demo.json"
RUN_S = 30
RATE_SCALE = 2.0
SEED = 1


def main() -> int:
    plan = build_plan(measurement_json.read(BASELINE))
    planned = list(iter_arrivals(plan, RUN_S, rate_scale=RATE_SCALE, seed=SEED))
    planned_mix = Counter(f"{a.method} {a.name}" for a in planned)
    planned_per_s = Counter(math.floor(a.at_s) for a in planned)
    with running_server("old") as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "replay.py"), "--headless",
             "--only-summary", "--host", url, "--baseline", str(BASELINE), "-t", f"{RUN_S}s",
             "--rate-scale", str(RATE_SCALE), "--seed", str(SEED), "--parity-out", str(out)],
            check=True, capture_output=True, timeout=RUN_S + 120,
        )  # fmt: skip
        m = measurement_json.read(out)
    achieved_mix = {e.endpoint.key: e.count for e in m.endpoints}
    total = sum(achieved_mix.values())
    tvd = 0.5 * sum(
        abs(planned_mix[k] / len(planned) - achieved_mix.get(k, 0) / total)
        for k in set(planned_mix) | set(achieved_mix)
    )
    start = m.window.start.timestamp()
    per_s: Counter[int] = Counter()
    for e in m.endpoints:
        assert e.timeline is not None
        for i, c in enumerate(e.timeline.counts):
            t = e.timeline.start_s + i * e.timeline.interval_s - start
            per_s[math.floor(t + 1e-6)] += c or 0
    seconds = list(range(2, RUN_S))
    good = sum(1 for s in seconds if abs(per_s[s] - planned_per_s[s]) <= max(1, 0.05 * planned_per_s[s]))
    print(f"replay of {BASELINE.name}: {RUN_S} s at rate scale {RATE_SCALE:g}, seed {SEED}")
    print(f"  planned requests     {len(planned)}")
    print(f"  achieved requests    {total}  (ratio {total / len(planned):.4f})")
    print(f"  seconds within ±5%   {good}/{len(seconds)}  ({good / len(seconds):.1%}, after 2 s warm-up)")
    print(f"  mix TVD              {tvd:.4f}")
    print(f"  late sends (>100 ms) {m.labels.get('late_sends')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

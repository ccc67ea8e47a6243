"""Load shapes: replay, steady, ramp and burst plans (known answers) and a ramp run end to end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.demo.processes import fetch_stats, running_server
from parity.model import LatencyDistribution
from parity.replay import shapes
from parity.replay.plan import build_plan
from parity.replay.schedule import iter_arrivals
from tests.conftest import ROOT, run_replay
from tests.test_replay_plan import _baseline

BASELINE = ROOT / "baselines" / "demo.json"


def test_replay_shape_is_the_compressed_baseline() -> None:
    plan = build_plan(_baseline())
    shaped = shapes.replay(plan, 20.0, 0.5)
    assert shaped.rate_scale == pytest.approx(0.5)
    assert shaped.plan.rates == pytest.approx(plan.rates * 0.5)
    assert [(s.name, s.start_s, s.end_s) for s in shaped.stages] == [("replay", 0.0, 20.0)]
    assert shaped.stages[0].target_rps == pytest.approx(10.0)


def test_steady_keeps_the_overall_mix() -> None:
    plan = build_plan(_baseline())  # /a 6000 and /b 6000 requests: half each
    shaped = shapes.steady(plan, 30.0, 40.0)
    assert shaped.plan.rates[:, 0] == pytest.approx([20.0, 20.0])
    arrivals = list(iter_arrivals(shaped.plan, 30.0, seed=2))
    assert abs(len(arrivals) - 1200) < 4 * np.sqrt(1200)
    per_10s = Counter(int(a.at_s // 10) for a in arrivals)
    assert all(abs(per_10s[k] - 400) < 4 * np.sqrt(400) for k in range(3))  # constant: /b's burst is gone
    assert shaped.rate_scale == pytest.approx(2.0)  # 40 req/s against a 20 req/s baseline mean
    with pytest.raises(ValueError, match="> 0"):
        shapes.steady(plan, 30.0, 0)


def test_ramp_steps_are_percentages_of_the_peak() -> None:
    plan = build_plan(_baseline())  # peak: minutes 5-6 with 10 + 50 = 60 req/s
    shaped = shapes.ramp(plan, (1, 5, 10, 50, 100), 4.0)
    assert shaped.run_time_s == 20.0
    assert [s.name for s in shaped.stages] == ["1%", "5%", "10%", "50%", "100%"]
    assert [s.target_rps for s in shaped.stages] == pytest.approx([0.6, 3.0, 6.0, 30.0, 60.0])
    assert [(s.start_s, s.end_s) for s in shaped.stages][-1] == (16.0, 20.0)
    counts = Counter(int(a.at_s // 4) for a in iter_arrivals(shaped.plan, shaped.run_time_s, seed=4))
    assert counts[4] == pytest.approx(240, abs=4 * np.sqrt(240))
    assert counts[3] == pytest.approx(120, abs=4 * np.sqrt(120))
    with pytest.raises(ValueError, match="percentages > 0"):
        shapes.ramp(plan, (), 4.0)


def test_burst_multiplies_the_rate_inside_its_window_only() -> None:
    plan = build_plan(_baseline())
    shaped = shapes.burst(plan, 20.0, rate_scale=1.0, multiplier=4.0, start_s=2.0, duration_s=2.0)
    names = [(s.name, s.start_s, s.end_s) for s in shaped.stages]
    assert names == [("before", 0.0, 2.0), ("burst", 2.0, 4.0), ("after", 4.0, 20.0)]
    assert [s.target_rps for s in shaped.stages][:2] == pytest.approx([10.0, 40.0])  # /a only in minutes 0-4
    arrivals = list(iter_arrivals(shaped.plan, 20.0, seed=6))
    in_burst = sum(1 for a in arrivals if 2.0 <= a.at_s < 4.0)
    assert in_burst == pytest.approx(80, abs=4 * np.sqrt(80))
    with pytest.raises(ValueError, match="within the 20 s run"):
        shapes.burst(plan, 20.0, rate_scale=1.0, multiplier=2.0, start_s=19.0, duration_s=5.0)


@pytest.mark.e2e
def test_ramp_run_records_its_stages(tmp_path: Path) -> None:
    out = tmp_path / "ramp.json"
    with running_server("old") as url:
        before = fetch_stats(url)["total"]
        done = run_replay("--host", url, "--baseline", str(BASELINE), "--shape", "ramp", "--steps", "10,40",
                          "--step-duration", "5", "--parity-out", str(out))  # fmt: skip
        received = fetch_stats(url)["total"] - before
    assert done.returncode == 0, done.stderr[-2000:]
    m = measurement_json.read(out)
    assert m.labels["shape"] == "ramp"
    assert [s.name for s in m.stages] == ["10%", "40%"]
    assert m.window.duration_s == pytest.approx(10.0)
    assert m.total_count == received
    start = m.window.start.timestamp()
    assert [(s.start_s - start, s.end_s - start) for s in m.stages] == [
        pytest.approx((0, 5), abs=1e-3),
        pytest.approx((5, 10), abs=1e-3),
    ]
    # every request is in exactly one stage, per endpoint, with its latency
    for e in m.endpoints:
        in_stages = [x for s in m.stages for x in s.endpoints if x.endpoint == e.endpoint]
        assert sum(x.count for x in in_stages) == e.count
        samples = sum(x.latency.samples for x in in_stages if isinstance(x.latency, LatencyDistribution))
        assert samples == (e.latency.samples if isinstance(e.latency, LatencyDistribution) else 0)
    low, high = m.stages
    assert high.target_rps == pytest.approx(4 * low.target_rps)
    for stage in m.stages:
        assert stage.achieved_rps == pytest.approx(stage.target_rps, rel=0.35)

"""Load shapes: replay, steady, ramp and burst plans (known answers) and a ramp run end to end."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.demo.processes import fetch_stats, running_server
from parity.model import LatencyDistribution
from parity.replay import shapes
from parity.replay.plan import build_plan
from parity.replay.schedule import iter_arrivals, schedule_fingerprint
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


def test_oversample_raises_rare_endpoints_to_the_minimum_rate() -> None:
    plan = build_plan(_baseline())  # /a 10 req/s all along; /b 50 req/s in minutes 5-6 only: mean 10 req/s
    shaped = shapes.replay(plan, 20.0, 0.1)  # /a 1 req/s, /b 0 or 5 req/s (mean 1)
    raised = shapes.oversample(shaped, 4.0)
    assert raised.load_factors == pytest.approx({"GET /a/{id}": 4.0, "POST /b": 4.0})
    assert raised.plan.rates == pytest.approx(shaped.plan.rates * 4.0)  # the shape over time is kept
    assert raised.rate_scale == shaped.rate_scale  # the load of the endpoints that were not raised
    assert raised.stages[0].target_rps == pytest.approx(8.0)
    # Only the endpoints below the minimum move; an endpoint at or above it keeps its rate and has no factor.
    steady = shapes.steady(plan, 30.0, 40.0)  # 20 req/s each
    assert shapes.oversample(steady, 20.0) is steady
    uneven = shapes.replay(plan, 20.0, 0.3)  # /a 3 req/s, /b mean 3 req/s
    partly = shapes.oversample(replace_rates(uneven, [3.0, 0.5]), 2.0)
    assert partly.load_factors == pytest.approx({"POST /b": 4.0})
    assert partly.plan.rates[0] == pytest.approx(3.0)
    assert partly.plan.rates[1].mean() == pytest.approx(2.0)
    arrivals = list(iter_arrivals(partly.plan, 20.0, seed=3))
    b = sum(1 for a in arrivals if a.name == "/b")
    assert b == pytest.approx(40, abs=4 * np.sqrt(40))  # ~ R x run time
    # Oversampling twice multiplies the factors; the minimum must be a rate.
    assert shapes.oversample(shapes.oversample(shaped, 2.0), 4.0).load_factors == pytest.approx(raised.load_factors)
    with pytest.raises(ValueError, match="> 0"):
        shapes.oversample(shaped, 0.0)


def replace_rates(shaped: shapes.ShapedPlan, per_endpoint: list[float]) -> shapes.ShapedPlan:
    """``shaped`` with each endpoint's rate constant (req/s) over the run."""
    rates = np.repeat(np.asarray(per_endpoint)[:, None], shaped.plan.rates.shape[1], axis=1)
    return replace(shaped, plan=replace(shaped.plan, rates=rates))


def test_ramp_stages_follow_an_oversampled_endpoint() -> None:
    plan = build_plan(_baseline())  # mix: half /a, half /b
    shaped = shapes.ramp(plan, (10, 100), 5.0)  # 6 and 60 req/s: each endpoint 3 and 30 (mean 16.5)
    raised = shapes.oversample(shaped, 33.0)
    assert raised.load_factors == pytest.approx({"GET /a/{id}": 2.0, "POST /b": 2.0})
    assert [s.target_rps for s in raised.stages] == pytest.approx([12.0, 120.0])


def _fingerprint(
    *,
    baseline: str = "abc",
    seed: int = 1,
    shape: dict[str, object] | None = None,
    run_time_s: float = 60.0,
    rate_scale: float = 0.5,
    load_factors: dict[str, float] | None = None,
) -> str:
    return schedule_fingerprint(
        baseline=baseline,
        seed=seed,
        shape=shape or {"kind": "replay"},
        run_time_s=run_time_s,
        rate_scale=rate_scale,
        load_factors=load_factors or {},
    )


def test_schedule_fingerprint_names_what_determines_the_schedule() -> None:
    fp = _fingerprint()
    assert len(fp) == 16
    assert _fingerprint() == fp
    assert _fingerprint(run_time_s=60.0000000001) == fp  # the same number, recomputed
    assert _fingerprint(baseline="abd") != fp
    assert _fingerprint(seed=2) != fp
    assert _fingerprint(run_time_s=61.0) != fp
    assert _fingerprint(rate_scale=0.6) != fp
    assert _fingerprint(shape={"kind": "burst", "multiplier": 3.0, "start_s": 1.0, "duration_s": 2.0}) != fp
    assert _fingerprint(load_factors={"GET /x": 4.0}) != fp
    assert _fingerprint(load_factors={"GET /x": 4.0}) != _fingerprint(load_factors={"GET /x": 4.5})
    # A steady shape sets its own rate: the rate scale does not change its schedule.
    steady: dict[str, object] = {"kind": "steady", "rps": 40.0}
    assert _fingerprint(shape=steady, rate_scale=2.0) == _fingerprint(shape=steady)
    assert _fingerprint(shape={"kind": "steady", "rps": 41.0}) != _fingerprint(shape=steady)


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

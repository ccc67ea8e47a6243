"""Run recorder: batched sketch adds, per-stage results and generator health through worker deltas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from parity import measurement_json
from parity.model import LatencyDistribution, Source, SourceKind
from parity.replay.recorder import FLUSH_EVERY, GeneratorTotals, Recorder, StageSpan
from parity.sketch import LatencySketch

T0 = 1_800_000_000.0
SOURCE = Source(SourceKind.LOCUST_REPLAY)


def test_batched_adds_build_the_same_sketch_as_single_adds() -> None:
    rng = np.random.default_rng(8)
    values = np.concatenate([rng.lognormal(3, 1.2, 20_000), [0.0, 1e-12, -3.0, 5e4]])
    one, many = LatencySketch(), LatencySketch()
    for v in values:
        one.add(float(v))
    many.add_many(values[:7])
    many.add_many(values[7:])
    many.add_many([])
    a, b = one.to_dict(), many.to_dict()
    assert a.pop("sum") == pytest.approx(b.pop("sum"))
    assert a == b  # same bins, counts, zero count, min (negative clamped to 0) and max


def test_many_quantiles_at_once_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(11)
    qs = [i / 50 for i in range(51)] + [0.001, 0.995, 0.999]
    for trial in range(60):
        values = rng.lognormal(rng.uniform(-3, 5), rng.uniform(0.1, 2), int(rng.integers(1, 3000)))
        if trial % 3 == 0:
            values[: values.size // 4] = 0.0  # the zero bucket
        sketch = LatencySketch()
        sketch.add_many(values)
        assert sketch.quantiles(qs) == [sketch.quantile(q) for q in qs]
    assert LatencySketch().quantiles([0.5, 1.0]) == [None, None]


def _spans() -> list[StageSpan]:
    return [StageSpan("1%", T0, T0 + 10, 2.0), StageSpan("5%", T0 + 10, T0 + 20, 10.0)]


def test_stages_split_requests_by_send_time_and_merge_across_workers() -> None:
    rng = np.random.default_rng(9)
    n = 2 * FLUSH_EVERY + 123  # crosses automatic flushes
    sent = T0 + rng.uniform(0, 21, n)  # a few sends after the last stage: they count in it
    latency = np.where(sent < T0 + 10, 5.0, 50.0)
    single, master = Recorder(1.0), Recorder(1.0)
    workers = [Recorder(1.0, track_delta=True) for _ in range(2)]
    for rec in (single, master, *workers):
        rec.set_stages(_spans())
    for i in range(n):
        args = ("GET", "/a" if i % 3 else "/b", float(sent[i]), float(latency[i]), i % 50 == 0, float(latency[i]) + 1)
        single.record(*args)
        workers[i % 2].record(*args)
        if i % 1000 == 999:
            master.merge_delta(json.loads(json.dumps(workers[i % 2].take_delta())))
    for w in workers:
        master.merge_delta(json.loads(json.dumps(w.take_delta())))
    start = datetime.fromtimestamp(T0, UTC)
    for rec in (single, master):
        m = rec.to_measurement(source=SOURCE, start=start, end=start + timedelta(seconds=20))
        low, high = m.stages
        assert (low.name, low.target_rps, high.name) == ("1%", 2.0, "5%")
        assert sum(e.count for e in low.endpoints) == int((sent < T0 + 10).sum())
        assert sum(e.count for s in m.stages for e in s.endpoints) == n
        for e in low.endpoints:
            assert isinstance(e.latency, LatencyDistribution)
            assert isinstance(e.intended, LatencyDistribution)
            assert e.latency.maximum == 5.0
            assert e.intended.maximum == 6.0
            assert e.timeline is None
        for e in high.endpoints:
            assert isinstance(e.latency, LatencyDistribution)
            assert e.latency.quantile(0.01) == pytest.approx(50.0, rel=0.01)
        errors = sum(e.errors or 0 for s in m.stages for e in s.endpoints)
        assert errors == sum(e.errors or 0 for e in m.endpoints) == len(range(0, n, 50))
        assert low.achieved_rps == pytest.approx(sum(e.count for e in low.endpoints) / 10)


def test_generator_health_per_interval_merges_max_cpu_and_summed_late_sends() -> None:
    workers = [Recorder(1.0, track_delta=True) for _ in range(2)]
    master = Recorder(1.0)
    workers[0].record_cpu(T0 + 0.5, 40.0)
    workers[1].record_cpu(T0 + 0.7, 95.0)
    workers[0].record_cpu(T0 + 2.2, 30.0)
    workers[0].record_lag(T0 + 0.2, 3.0)
    workers[1].record_lag(T0 + 0.9, 2500.0)
    workers[1].record_lag(T0 + 0.95, 4.0)
    workers[0].record_lag(T0 + 3.1, 1.5)
    workers[0].count_sends(T0 + 2.9, sent=5, late=1)
    workers[1].count_sends(T0 + 2.1, sent=5, late=3, dropped=1)
    workers[1].count_sends(T0 + 3.5, unsent=7)
    workers[0].count_sends(T0 + 3.6, in_flight=2)
    workers[1].count_sends(T0 + 3.7, in_flight=1)
    for w in workers:
        master.merge_delta(json.loads(json.dumps(w.take_delta())))
        assert w.take_delta()["cpu"] == {}
    start = datetime.fromtimestamp(T0, UTC)
    totals = GeneratorTotals(processes=2, late_after_ms=100.0)
    m = master.to_measurement(source=SOURCE, start=start, end=start + timedelta(seconds=4), generator=totals)
    g = m.generator
    assert g is not None
    assert g.start_s == T0
    assert g.cpu_percent == (95.0, None, 30.0, None)  # the busiest process per second; unsampled stays None
    assert g.late == (0, 0, 4, 0)
    assert g.lag_ms == (2500.0, None, None, 1.5)  # the worst process's longest lag per second
    assert g.saturated == (True, False, False, False)
    assert (g.processes, g.sent, g.late_sends, g.dropped, g.unsent, g.in_flight) == (2, 10, 4, 1, 7, 3)
    assert master.sends == {"sent": 10, "late": 4, "dropped": 1, "unsent": 7, "in_flight": 3}
    again = measurement_json.loads(measurement_json.dumps(m), "round trip").generator
    assert again is not None
    assert again.in_flight == 3
    assert again.lag_ms == g.lag_ms
    older = measurement_json.to_dict(m)
    del older["generator"]["in_flight"]  # written before the counter existed: absent means 0
    old_generator = measurement_json.from_dict(older).generator
    assert old_generator is not None
    assert old_generator.in_flight == 0
    assert master.to_measurement(source=SOURCE, start=start, end=start + timedelta(seconds=4)).generator is None


def test_requests_in_flight_at_the_end_are_shown_with_the_generator_health() -> None:
    from parity.judge.compare import generator_info
    from parity.judge.policy import Policy
    from parity.report.context import _generator_text

    rec = Recorder(1.0)
    rec.count_sends(T0 + 0.5, sent=12)
    rec.record("GET", "/a", T0 + 0.5, 3.0, False)
    rec.count_sends(T0 + 1.5, in_flight=11)
    rec.record_lag(T0 + 0.4, 3.0)
    rec.record_lag(T0 + 1.4, 1234.0)
    start = datetime.fromtimestamp(T0, UTC)
    totals = GeneratorTotals(processes=1, late_after_ms=100.0)
    m = rec.to_measurement(source=SOURCE, start=start, end=start + timedelta(seconds=2), generator=totals)
    assert m.generator is not None
    assert m.generator.sent == m.total_count + m.generator.in_flight
    text = _generator_text(generator_info(m, Policy()))
    assert text is not None
    assert "11 still in flight at the end (sent, not recorded)" in text
    assert "lagged up to 1,234 ms behind its schedule (> 100 ms in 50% of intervals)" in text
    assert text.endswith("— latency not judged (lagging)")

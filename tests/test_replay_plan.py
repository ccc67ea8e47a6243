"""Replay plan, arrival schedule and recorder: known answers on made-up baselines."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    Measurement,
    RequestTemplate,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.replay.plan import build_plan
from parity.replay.recorder import Recorder, timeline_interval
from parity.replay.schedule import count_arrivals, fill, iter_arrivals

DAY = datetime(2026, 11, 25, tzinfo=UTC)


def _baseline() -> Measurement:
    """A 10-minute window: /a steady 600/min, /b only in minutes 5-6 (a burst), /c unmapped, /d no pool."""
    minutes = 10
    burst = tuple(3000 if m in (5, 6) else 0 for m in range(minutes))
    return Measurement(
        source=Source(SourceKind.SYNTHETIC),
        window=Window(DAY, DAY + timedelta(minutes=minutes)),
        endpoints=(
            EndpointStats(
                Endpoint("GET", "/a/{id}"),
                count=6000,
                timeline=Timeline(DAY.timestamp(), 60, (600,) * minutes),
                request=RequestTemplate("/a/{id}", query={"q": "{word}"}, params={"id": ("1", "2"), "word": ("x y",)}),
            ),
            EndpointStats(
                Endpoint("POST", "/b"),
                count=6000,
                timeline=Timeline(DAY.timestamp(), 60, burst),
                request=RequestTemplate("/b", params={"n": ("7",)}, body={"n": "{n}", "list": ["{n}", 1]}),
            ),
            EndpointStats(Endpoint("", "LegacyController#index"), count=100),
            EndpointStats(Endpoint("GET", "/d/{id}"), count=100),
        ),
        latency_kind=LatencyKind.SERVER,
    )


def test_plan_rates_and_skipped_endpoints() -> None:
    plan = build_plan(_baseline())
    assert [p.endpoint.key for p in plan.endpoints] == ["GET /a/{id}", "POST /b"]
    assert plan.interval_s == 60
    assert plan.rates.shape == (2, 10)
    assert plan.rates[0] == pytest.approx(np.full(10, 10.0))  # 600/min = 10 req/s
    assert plan.rates[1, 5] == pytest.approx(50.0)
    assert plan.rates[1, 0] == 0
    reasons = {s.endpoint.key: s.reason for s in plan.skipped}
    assert "unmapped resource" in reasons["LegacyController#index"]
    assert "no parameter pool for {id}" in reasons["GET /d/{id}"]
    assert plan.skipped_share == pytest.approx(200 / 12200)
    assert plan.mean_rate() == pytest.approx(20.0)


def test_plan_fills_missing_points_and_resamples_coarser_timelines() -> None:
    base = _baseline()
    holes = EndpointStats(
        Endpoint("GET", "/h"), count=300, timeline=Timeline(DAY.timestamp(), 60, (100, None, 200, None, *([150] * 6)))
    )
    coarse = EndpointStats(Endpoint("GET", "/k"), count=600, timeline=Timeline(DAY.timestamp(), 120, (240,) * 5))
    flat = EndpointStats(Endpoint("GET", "/f"), count=1200)
    plan = build_plan(Measurement(base.source, base.window, (holes, coarse, flat)))
    assert plan.rates[0, :4] * 60 == pytest.approx([100, 150, 200, 150])  # None → mean of known points
    assert plan.rates[1] * 60 == pytest.approx(np.full(10, 120.0))  # 240 per 2 min spread over two cells
    assert plan.rates[2] * 60 == pytest.approx(np.full(10, 120.0))  # no timeline: even


def test_schedule_is_deterministic_compressed_and_scaled() -> None:
    plan = build_plan(_baseline())
    run = list(iter_arrivals(plan, 20.0, rate_scale=0.5, seed=7))
    again = list(iter_arrivals(plan, 20.0, rate_scale=0.5, seed=7))
    assert run == again
    assert run != list(iter_arrivals(plan, 20.0, rate_scale=0.5, seed=8))
    # rate = 0.5 x 20 req/s on average over 20 s → ~200 requests (Poisson, so within ~4 sd)
    assert abs(len(run) - 200) < 4 * np.sqrt(200)
    times = [a.at_s for a in run]
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < 20.0
    # /b only in baseline minutes 5-6 → run seconds [10, 14)
    burst = [a.at_s for a in run if a.name == "/b"]
    assert burst
    assert min(burst) >= 10.0
    assert max(burst) < 14.0


def test_schedule_fills_templates() -> None:
    plan = build_plan(_baseline())
    arrivals = list(iter_arrivals(plan, 20.0, seed=3))
    a = next(x for x in arrivals if x.name == "/a/{id}")
    assert a.method == "GET"
    assert a.url in ("/a/1?q=x+y", "/a/2?q=x+y")
    assert {x.url.split("?")[0] for x in arrivals if x.name == "/a/{id}"} == {"/a/1", "/a/2"}
    b = next(x for x in arrivals if x.name == "/b")
    assert b.body is not None
    assert json.loads(b.body) == {"n": "7", "list": ["7", 1]}
    assert b.headers["Content-Type"] == "application/json"
    assert fill("/u/{name}", {"name": "a/b c"}, url=True) == "/u/a%2Fb%20c"


@pytest.mark.parametrize("lanes", [2, 3])
def test_lanes_split_the_schedule_without_overlap(lanes: int) -> None:
    plan = build_plan(_baseline())
    whole = list(iter_arrivals(plan, 20.0, seed=5))
    parts = [list(iter_arrivals(plan, 20.0, seed=5, lane=k, lanes=lanes)) for k in range(lanes)]
    assert sorted((a for p in parts for a in p), key=lambda a: a.number) == whole
    assert all(a.number % lanes == k for k, p in enumerate(parts) for a in p)
    with pytest.raises(ValueError, match="lane 3"):
        next(iter_arrivals(plan, 20.0, lane=3, lanes=3))


@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_counting_the_rest_of_a_lane_matches_building_it(lanes: int) -> None:
    plan = build_plan(_baseline())
    for lane in range(lanes):
        arrivals = list(iter_arrivals(plan, 20.0, rate_scale=3.0, seed=5, lane=lane, lanes=lanes))
        assert len(arrivals) > 100
        for cut in (0, 1, len(arrivals) // 3, len(arrivals) - 1):
            rest = count_arrivals(
                plan, 20.0, rate_scale=3.0, seed=5, lane=lane, lanes=lanes, from_number=arrivals[cut].number
            )
            assert rest == len(arrivals) - cut
        beyond = arrivals[-1].number + 1
        assert count_arrivals(plan, 20.0, rate_scale=3.0, seed=5, lane=lane, lanes=lanes, from_number=beyond) == 0


def test_mix_follows_the_baseline_over_many_requests() -> None:
    plan = build_plan(_baseline())
    mix = Counter(a.name for a in iter_arrivals(plan, 600.0, seed=11))
    total = sum(mix.values())
    assert mix["/a/{id}"] / total == pytest.approx(0.5, abs=0.02)


def test_timeline_interval_choice() -> None:
    assert timeline_interval(60) == 1
    assert timeline_interval(600) == 5
    assert timeline_interval(86400) == 600


def test_recorder_worker_deltas_merge_to_the_same_result() -> None:
    rng = np.random.default_rng(4)
    sent = 1_800_000_000 + rng.uniform(0, 30, 3000)
    latency = rng.lognormal(3, 0.5, 3000)
    names = rng.choice(["/a", "/b", "/c"], 3000)
    errors = rng.random(3000) < 0.05
    single = Recorder(1.0)
    master = Recorder(1.0)
    workers = [Recorder(1.0, track_delta=True), Recorder(1.0, track_delta=True)]
    for i in range(3000):
        no_response = i % 97 == 0
        args = ("GET", str(names[i]), float(sent[i]), None if no_response else float(latency[i]), bool(errors[i]))
        single.record(*args)
        workers[i % 2].record(*args)
        if i % 500 == 0:  # periodic reports, as Locust workers send every 3 s
            master.merge_delta(json.loads(json.dumps(workers[i % 2].take_delta())))
    for w in workers:
        master.merge_delta(w.take_delta())
        assert w.take_delta()["endpoints"] == []  # nothing is handed out twice
    start = datetime.fromtimestamp(1_800_000_000, UTC)
    end = start + timedelta(seconds=30)
    src = Source(SourceKind.LOCUST_REPLAY)
    a = single.to_measurement(source=src, start=start, end=end)
    b = master.to_measurement(source=src, start=start, end=end)
    assert a.total_count == b.total_count == 3000
    for x, y in zip(a.endpoints, b.endpoints, strict=True):
        assert (x.endpoint, x.count, x.errors) == (y.endpoint, y.count, y.errors)
        assert x.latency is not None
        assert y.latency is not None
        assert x.latency.quantile(0.95) == y.latency.quantile(0.95)
        assert x.timeline is not None
        assert y.timeline is not None
        assert (x.timeline.counts, x.timeline.errors, x.timeline.max_ms) == (
            y.timeline.counts,
            y.timeline.errors,
            y.timeline.max_ms,
        )
        assert x.timeline.avg_ms == pytest.approx(y.timeline.avg_ms)
    first = a.endpoints[0]
    assert first.timeline is not None
    assert first.timeline.interval_s == 1.0
    assert len(first.timeline.counts) == 30
    assert sum(c for c in first.timeline.counts if c is not None) == first.count
    no_latency = sum(1 for i in range(3000) if i % 97 == 0)
    samples = [e.latency.samples for e in a.endpoints if isinstance(e.latency, LatencyDistribution)]
    assert sum(samples) == 3000 - no_latency
    assert single.take_delta()["endpoints"] == []  # not tracking: no second copy kept
    with pytest.raises(ValueError, match="interval"):
        Recorder(2.0).merge_delta(workers[0].take_delta())


def test_recorder_keeps_intended_time_latency() -> None:
    rec = Recorder(1.0, track_delta=True)
    for i in range(50):
        rec.record("GET", "/a", 1000.0 + i, 10.0, False, intended_ms=10.0 + i * 20)
    rec.record("GET", "/a", 1060.0, None, True)  # no response: neither latency
    master = Recorder(1.0)
    master.merge_delta(json.loads(json.dumps(rec.take_delta())))
    start = datetime.fromtimestamp(1000, UTC)
    m = master.to_measurement(source=Source(SourceKind.LOCUST_REPLAY), start=start, end=start + timedelta(seconds=61))
    a = m.endpoints[0]
    assert isinstance(a.latency, LatencyDistribution)
    assert isinstance(a.intended, LatencyDistribution)
    assert (a.count, a.latency.samples, a.intended.samples) == (51, 50, 50)
    assert a.latency.maximum == 10.0
    assert a.intended.maximum == 990.0

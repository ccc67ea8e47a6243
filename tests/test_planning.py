"""Known-answer tests of sample-size planning (parity.judge.planning)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from scipy import stats as st

from parity.judge import stats
from parity.judge.planning import DEFAULT_SIGMA, plan_samples, spread
from parity.judge.policy import Policy, policy_from_mapping
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Window,
)
from parity.sketch import LatencySketch
from tests.conftest import T0


def _summary_baseline(shares: dict[str, float], sigma: float = 0.4, median: float = 40.0) -> Measurement:
    total = 100_000
    z90 = st.norm.ppf(0.9)
    endpoints = tuple(
        EndpointStats(
            Endpoint.parse(key),
            count=round(share * total),
            errors=0,
            latency=LatencySummary(
                avg_ms=median * math.exp(sigma**2 / 2), p50_ms=median, p90_ms=median * math.exp(z90 * sigma)
            ),
        )
        for key, share in shares.items()
    )
    return Measurement(Source(SourceKind.DATADOG, "apm"), Window(T0, T0 + timedelta(days=1)), endpoints)


def test_spread_from_a_summary_and_from_a_sketch() -> None:
    summary = LatencySummary(p50_ms=40.0, p90_ms=40.0 * math.exp(st.norm.ppf(0.9) * 0.4))
    assert spread(summary) == pytest.approx(0.4)
    assert spread(LatencySummary(p50_ms=40.0, avg_ms=40.0 * math.exp(0.3**2 / 2))) == pytest.approx(0.3)
    assert spread(LatencySummary(avg_ms=40.0)) is None
    sketch = LatencySketch()
    sketch.add_many(np.random.default_rng(3).lognormal(math.log(40.0), 0.6, 50_000))
    assert spread(LatencyDistribution(sketch)) == pytest.approx(0.6, rel=0.03)
    assert spread(None) is None


def test_the_mean_test_reaches_the_planned_power_at_the_planned_size() -> None:
    """Simulate the judge's mean test at the size the plan gives for a 10% change: ~80% power."""
    baseline = _summary_baseline({"GET /a": 1.0}, sigma=0.5)
    policy = policy_from_mapping({"metrics": {"avg_ms": {"tolerance": 0.10, "min_delta": 0.0}}})
    plan = plan_samples(baseline, {"GET /a": 1.0}, 60.0, policy)
    need = plan.endpoints[0].need("avg_ms")
    assert need is not None
    assert need.detect is not None
    n = need.detect
    z = st.norm.isf(policy.alpha / plan.tests) + st.norm.ppf(0.8)
    assert n == math.ceil(2 * math.expm1(0.25) * z**2 / math.log(1.1) ** 2)
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(200):
        base, cand = LatencySketch(), LatencySketch()
        base.add_many(rng.lognormal(math.log(40.0), 0.5, n))
        cand.add_many(rng.lognormal(math.log(44.0), 0.5, n))
        e = stats.mean_ratio(base, cand)
        caught += e.p_value is not None and e.p_value <= policy.alpha / plan.tests
    assert 0.70 <= caught / 200 <= 0.92


def test_judgeable_endpoints_and_how_to_make_the_rest_judgeable() -> None:
    baseline = _summary_baseline({"GET /big": 0.90, "GET /mid": 0.08, "GET /rare": 0.015, "GET /tiny": 0.005})
    sent = dict.fromkeys(("GET /big", "GET /mid", "GET /rare", "GET /tiny"), 1.0)  # four endpoints: the run's tests
    needs_of = plan_samples(baseline, sent, 60.0).endpoints[0].verdict_requests
    assert needs_of is not None
    # every endpoint at the same latency: the same need; /big gets plenty, /mid exactly its need
    planned = {"GET /big": needs_of * 20.0, "GET /mid": float(needs_of), "GET /rare": needs_of / 4, "GET /tiny": 5.0}
    plan = plan_samples(baseline, planned, 60.0)
    by_key = {e.endpoint.key: e for e in plan.endpoints}
    assert by_key["GET /big"].judgeable
    assert by_key["GET /mid"].judgeable
    assert not by_key["GET /rare"].judgeable
    # the rarest endpoints within max_inconclusive_share (5%) may go unjudged: /tiny and /rare (2% together)
    assert plan.meaningful == ("GET /big", "GET /mid")
    assert plan.unjudgeable == ()
    assert plan.scale == 1.0
    strict = plan_samples(baseline, planned, 60.0, Policy(max_inconclusive_share=0.01))
    assert strict.meaningful == ("GET /big", "GET /mid", "GET /rare")
    assert [e.endpoint.key for e in strict.unjudgeable] == ["GET /rare"]
    assert strict.scale == pytest.approx(4.0, rel=1e-3)  # 4x the run time (or the rate scale) judges /rare
    assert strict.min_endpoint_rps == pytest.approx(needs_of / 60.0)
    critical = policy_from_mapping({"endpoints": {"GET /tiny": {"critical": True}}})
    assert "GET /tiny" in plan_samples(baseline, planned, 60.0, critical).meaningful


def test_needs_follow_the_policy_and_missing_data() -> None:
    baseline = _summary_baseline({"GET /a": 1.0})
    off = policy_from_mapping({"metrics": {"p99_ms": {"gate": "off"}}})
    needs = plan_samples(baseline, {"GET /a": 1000.0}, 60.0, off).endpoints[0]
    assert needs.need("p99_ms") is None  # not gated: not planned
    assert needs.need("max_ms") is None  # one request each side: no size helps
    p95 = needs.need("p95_ms")
    assert p95 is not None
    assert p95.to_pass == 200
    unknown = replace(baseline, endpoints=(replace(baseline.endpoints[0], latency=None, errors=None),))
    row = plan_samples(unknown, {"GET /a": 1000.0}, 60.0).endpoints[0]
    err = row.need("error_rate")
    assert err is not None
    assert err.detect is None  # unknown error count: nothing to plan from
    shift = row.need("shift")
    assert shift is not None
    assert shift.detect is not None  # no latency known: DEFAULT_SIGMA, and the tolerance alone
    assert DEFAULT_SIGMA == 0.5

"""Known-answer tests of the tolerance judge, its policy parsing and the bottleneck ranking."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from parity.config import load_config
from parity.errors import BadInput
from parity.judge.compare import compare, judge_metric
from parity.judge.policy import DEFAULT_RULES, METRICS, Gate, LatencyBasis, MetricRule, Policy, policy_from_mapping
from parity.judge.result import Change, ComparisonMode, MetricResult, Verdict
from parity.model import Endpoint, EndpointStats, GeneratorHealth, LatencySummary, Measurement, Window
from tests.conftest import T0, lognormal_side

SPEC = {m.name: m for m in METRICS}


def test_identical_sides_pass() -> None:
    side = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 150})
    result = compare(side, side)
    assert result.verdict is Verdict.PASS
    assert {e.verdict for e in result.endpoints} == {Verdict.PASS}
    assert result.bottlenecks == ()
    for e in result.endpoints:
        assert {m.metric for m in e.metrics} == set(SPEC)
        assert all(m.ratio == pytest.approx(1.0) for m in e.metrics if m.baseline)
        assert all(m.delta == 0 for m in e.metrics)


def test_independent_samples_of_the_same_distribution_pass() -> None:
    a = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 150}, seed=1)
    b = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 150}, seed=2)
    assert compare(a, b).verdict is Verdict.PASS


def test_planted_regression_fails_only_where_planted() -> None:
    base = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 150}, seed=1)
    cand = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 240}, seed=2)
    result = compare(base, cand)
    assert result.verdict is Verdict.FAIL
    verdicts = {e.endpoint.key: e.verdict for e in result.endpoints}
    assert verdicts == {"POST /c": Verdict.FAIL, "GET /a": Verdict.PASS, "GET /b": Verdict.PASS}
    assert result.endpoints[0].endpoint.key == "POST /c"  # regressions first
    failed = result.endpoints[0]
    p50 = failed.metric("p50_ms")
    assert p50 is not None
    assert p50.change is Change.WORSE
    assert p50.ratio == pytest.approx(1.6, rel=0.05)
    assert any("p50 worse" in r for r in failed.reasons)
    assert [b.endpoint.key for b in result.bottlenecks] == ["POST /c"]


def _judge(
    metric: str, base: float | None, cand: float | None, n: tuple[int, int] = (1000, 1000), **rule: object
) -> MetricResult:
    return judge_metric(SPEC[metric], replace(DEFAULT_RULES[metric], **rule), base, cand, n)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metric", "base", "cand", "verdict", "change"),
    [
        ("p95_ms", 100.0, 119.0, Verdict.PASS, Change.SAME),  # +19% < 20%
        ("p95_ms", 100.0, 121.0, Verdict.FAIL, Change.WORSE),  # +21% and +21 ms
        ("p95_ms", 10.0, 14.0, Verdict.PASS, Change.SAME),  # +40% but only +4 ms < 5 ms floor
        ("p95_ms", 100.0, 60.0, Verdict.PASS, Change.BETTER),
        ("p50_ms", 0.0, 10.0, Verdict.FAIL, Change.WORSE),  # zero baseline: the absolute floor decides
        ("max_ms", 100.0, 250.0, Verdict.MARGINAL, Change.WORSE),  # warn gate
        ("max_ms", 100.0, 190.0, Verdict.PASS, Change.SAME),
        ("error_rate", 0.0, 0.02, Verdict.FAIL, Change.WORSE),  # errors over a zero-error baseline
        ("error_rate", 0.0, 0.005, Verdict.PASS, Change.SAME),  # below the 1 pp floor
        ("error_rate", 0.10, 0.14, Verdict.PASS, Change.SAME),  # +40% < 50%
        ("rps", 10.0, 8.5, Verdict.FAIL, Change.WORSE),  # throughput down is bad
        ("rps", 10.0, 12.0, Verdict.PASS, Change.BETTER),  # throughput up is good
        ("avg_ms", None, 10.0, Verdict.INCONCLUSIVE, Change.UNKNOWN),  # missing is never a pass
    ],
)
def test_metric_rules(metric: str, base: float | None, cand: float | None, verdict: Verdict, change: Change) -> None:
    result = _judge(metric, base, cand)
    assert (result.verdict, result.change) == (verdict, change)


def test_metric_needs_enough_samples_and_gate_off_is_not_judged() -> None:
    few = _judge("p99_ms", 100.0, 500.0, n=(999, 2000))
    assert few.verdict is Verdict.INCONCLUSIVE
    assert "999 samples < 1000" in few.reason
    off = _judge("p95_ms", 100.0, 500.0, gate=Gate.OFF)
    assert off.verdict is Verdict.INCONCLUSIVE
    assert off.change is Change.WORSE
    assert "gate off" in off.reason


def test_too_few_requests_is_inconclusive_not_pass() -> None:
    base = lognormal_side({"GET /a": 20, "GET /rare": 20}, n=20)
    result = compare(base, base)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert all(e.verdict is Verdict.INCONCLUSIVE for e in result.endpoints)
    assert "too few requests" in result.endpoints[0].reasons[0]


def test_inconclusive_share_decides_the_run() -> None:
    big = lognormal_side({"GET /a": 20}, n=2000)
    rare = lognormal_side({"GET /rare": 20}, n=20, seed=3)
    merged = replace(big, endpoints=big.endpoints + rare.endpoints)  # /rare is 1% of traffic
    assert compare(merged, merged).verdict is Verdict.PASS
    strict = Policy(max_inconclusive_share=0.005)
    result = compare(merged, merged, strict)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "1.0% of baseline traffic" in result.reasons[0]


def test_endpoint_missing_on_one_side() -> None:
    base = lognormal_side({"GET /a": 20, "GET /gone": 20})
    cand = lognormal_side({"GET /a": 20, "GET /new": 20})
    result = compare(base, cand)
    by_key = {e.endpoint.key: e for e in result.endpoints}
    assert by_key["GET /gone"].verdict is Verdict.INCONCLUSIVE
    assert "no candidate requests" in by_key["GET /gone"].reasons[0]
    assert by_key["GET /new"].verdict is Verdict.INCONCLUSIVE
    assert by_key["GET /new"].traffic_share is None
    assert result.verdict is Verdict.INCONCLUSIVE  # half the baseline traffic was not judged


def test_error_burst_over_zero_error_baseline_fails() -> None:
    base = lognormal_side({"GET /a": 20})
    cand = lognormal_side({"GET /a": 20}, errors={"GET /a": 100}, seed=2)
    result = compare(base, cand)
    assert result.verdict is Verdict.FAIL
    err = result.endpoints[0].metric("error_rate")
    assert err is not None
    assert err.verdict is Verdict.FAIL
    assert result.bottlenecks[0].extra_errors_per_min == pytest.approx(0.05 * 2000)
    assert result.bottlenecks[0].extra_ms_per_min == 0.0  # latency did not get worse


def test_throughput_is_compared_per_unit_of_offered_load() -> None:
    base = lognormal_side({"GET /a": 20}, duration_s=60)
    half = replace(lognormal_side({"GET /a": 20}, seed=2, duration_s=120), rate_scale=0.5)
    rps = compare(base, half).endpoints[0].metric("rps")
    assert rps is not None
    assert rps.candidate == pytest.approx(rps.baseline)  # 2000/120/0.5 == 2000/60
    assert rps.verdict is Verdict.PASS


def test_summary_baseline_against_sketch_candidate_is_before_after() -> None:
    summary = EndpointStats(
        Endpoint("GET", "/a"), count=5000, errors=0, latency=LatencySummary(avg_ms=20.9, p50_ms=20.0, p95_ms=32.5)
    )
    base = Measurement(
        source=lognormal_side({}).source, window=Window(T0, T0 + timedelta(days=1)), endpoints=(summary,)
    )
    cand = lognormal_side({"GET /a": 20}, pair_id="x")
    result = compare(base, cand)
    assert result.mode is ComparisonMode.BEFORE_AFTER
    assert any("before/after" in n for n in result.notes)
    assert any("latency kinds differ" in n for n in result.notes)
    e = result.endpoints[0]
    assert e.verdict is Verdict.PASS
    p99 = e.metric("p99_ms")
    assert p99 is not None
    assert p99.verdict is Verdict.INCONCLUSIVE  # the summary did not report p99


def test_concurrent_mode_needs_a_shared_pair_id() -> None:
    a = lognormal_side({"GET /a": 20}, pair_id="p1")
    assert compare(a, a).mode is ComparisonMode.CONCURRENT
    assert compare(a, replace(a, pair_id="p2")).mode is ComparisonMode.BEFORE_AFTER


def test_bottlenecks_rank_by_extra_time_at_baseline_traffic() -> None:
    base = lognormal_side({"GET /busy": 20, "GET /slow": 200, "GET /ok": 10}, seed=1)
    cand = lognormal_side({"GET /busy": 30, "GET /slow": 400, "GET /ok": 10}, seed=2)
    # /busy: +10 ms on 3x the traffic of /slow (+200 ms): /slow costs more per minute.
    busy = replace(base.endpoints[0], count=6000)
    base = replace(base, endpoints=(busy, *base.endpoints[1:]))
    result = compare(base, cand)
    assert [b.endpoint.key for b in result.bottlenecks] == ["GET /slow", "GET /busy"]
    slow = result.bottlenecks[0]
    assert slow.rank == 1
    assert slow.baseline_rpm == pytest.approx(2000.0)
    assert slow.extra_ms_per_min == pytest.approx(200 * 2000, rel=0.1)


def test_policy_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "parity.toml"
    path.write_text(
        "[compare]\nmin_samples = 10\nmax_inconclusive_share = 0.1\n"
        '[compare.metrics.p95_ms]\ntolerance = 0.5\nmin_delta = 1\ngate = "warn"\n'
    )
    policy = load_config(path).policy
    assert policy.min_samples == 10
    assert policy.max_inconclusive_share == 0.1
    assert policy.rule("p95_ms") == MetricRule(tolerance=0.5, min_delta=1, min_samples=200, gate=Gate.WARN)
    assert policy.rule("p50_ms") == DEFAULT_RULES["p50_ms"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[compare]\nmin_sample = 3\n", "compare.min_sample: unknown key"),
        ("[compare.metrics.p42_ms]\ntolerance = 1\n", "compare.metrics.p42_ms: unknown metric"),
        ("[compare.metrics.p95_ms]\ntolerance = -1\n", "compare.metrics.p95_ms.tolerance: expected a number >= 0"),
        ('[compare.metrics.p95_ms]\ngate = "loud"\n', "compare.metrics.p95_ms.gate: expected fail, warn or off"),
        ("[judge]\n", "judge: unknown section"),
        ("[compare\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "parity.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=r"parity\.toml") as err:
        load_config(path)
    assert message in str(err.value)


def test_policy_rejects_bad_share() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        policy_from_mapping({"max_inconclusive_share": 2})


def _with_intended(m: Measurement, factor: float) -> Measurement:
    """``m`` with an intended-time latency per endpoint: the measured sketch's values times ``factor``."""
    from parity.model import LatencyDistribution
    from tests.conftest import sketch_of

    endpoints = []
    for e in m.endpoints:
        assert isinstance(e.latency, LatencyDistribution)
        n = e.latency.samples
        values = [float(e.latency.quantile((i + 0.5) / n) or 0.0) * factor for i in range(n)]
        endpoints.append(replace(e, intended=LatencyDistribution(sketch_of(values))))
    return replace(m, endpoints=tuple(endpoints))


def test_latency_basis_auto_prefers_intended_when_both_sides_have_it() -> None:
    base = lognormal_side({"GET /a": 20}, seed=1)
    cand = lognormal_side({"GET /a": 20}, seed=2)
    # the candidate's service time is unchanged, but requests waited to be sent (coordinated omission)
    base_i, cand_i = _with_intended(base, 1.0), _with_intended(cand, 3.0)
    auto = compare(base_i, cand_i)
    assert auto.verdict is Verdict.FAIL
    assert auto.endpoints[0].latency_basis == "intended"
    assert any("planned send time on 1 endpoint" in n for n in auto.notes)
    measured = compare(base_i, cand_i, Policy(latency=LatencyBasis.MEASURED))
    assert measured.verdict is Verdict.PASS
    assert measured.endpoints[0].latency_basis == "service-time"
    one_sided = compare(base, cand_i)  # only one side has it: auto falls back to the measured latency
    assert one_sided.endpoints[0].latency_basis == "service-time"
    strict = compare(base, cand_i, Policy(latency=LatencyBasis.INTENDED))
    assert strict.endpoints[0].verdict is Verdict.INCONCLUSIVE
    assert "no latency metric could be judged" in strict.endpoints[0].reasons[0]
    assert policy_from_mapping({"latency": "measured"}).latency is LatencyBasis.MEASURED
    with pytest.raises(ValueError, match="expected auto, measured or intended"):
        policy_from_mapping({"latency": "fast"})


def _with_generator(m: Measurement, cpu: tuple[float | None, ...]) -> Measurement:
    start = m.window.start.timestamp()
    interval = m.window.duration_s / len(cpu)
    return replace(m, generator=GeneratorHealth(start, interval, cpu, (0,) * len(cpu), sent=m.total_count))


def test_a_saturated_generator_is_not_blamed_on_the_target() -> None:
    base = lognormal_side({"GET /a": 20, "GET /b": 20}, seed=1)
    cand = lognormal_side({"GET /a": 40, "GET /b": 20}, errors={"GET /b": 100}, seed=2)
    healthy = compare(_with_generator(base, (40.0,) * 20), _with_generator(cand, (50.0,) * 19 + (95.0,)))
    assert healthy.candidate.generator is not None
    assert healthy.candidate.generator.saturated_share == pytest.approx(0.05)  # at the limit: still judged
    assert not healthy.candidate.generator.blamed_generator
    assert {e.endpoint.key: e.verdict for e in healthy.endpoints} == {"GET /a": Verdict.FAIL, "GET /b": Verdict.FAIL}

    busy = compare(_with_generator(base, (40.0,) * 20), _with_generator(cand, (50.0,) * 17 + (95.0, None, 97.0)))
    gen = busy.candidate.generator
    assert gen is not None
    assert gen.blamed_generator
    assert gen.saturated_share == pytest.approx(2 / 19)  # the unsampled interval does not count
    by_key = {e.endpoint.key: e for e in busy.endpoints}
    slow = by_key["GET /a"]
    assert slow.verdict is Verdict.INCONCLUSIVE  # latency doubled, but the generator was saturated
    assert any("candidate's load generator was CPU-saturated" in r for r in slow.reasons)
    for m in slow.metrics:
        if m.unit == "ms":
            assert m.verdict is Verdict.INCONCLUSIVE
    assert by_key["GET /b"].verdict is Verdict.FAIL  # errors are still the target's
    assert busy.verdict is Verdict.FAIL
    assert any(n.startswith("latency not judged: the candidate's load generator") for n in busy.notes)
    assert busy.baseline.generator is not None
    assert not busy.baseline.generator.blamed_generator
    lenient = compare(base, _with_generator(cand, (95.0,) * 20), Policy(max_generator_saturated_share=1.0))
    assert {e.verdict for e in lenient.endpoints} == {Verdict.FAIL}
    assert compare(base, cand).candidate.generator is None  # no generator data: nothing to say

"""Known-answer tests of the tolerance judge, its policy parsing and the bottleneck ranking."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from parity.config import load_config
from parity.errors import BadInput
from parity.judge.compare import compare
from parity.judge.policy import DEFAULT_RULES, METRICS, Gate, LatencyBasis, MetricRule, Policy, policy_from_mapping
from parity.judge.result import Change, ComparisonMode, MetricResult, Verdict
from parity.model import (
    LABEL_REPLAY_OF,
    Endpoint,
    EndpointStats,
    GeneratorHealth,
    LatencyKind,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Window,
    fingerprint,
)
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
        assert all(m.delta == pytest.approx(0, abs=1e-9) for m in e.metrics)


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


def _summary_side(metric: str, value: float | None, *, count: int = 2000, errors: int = 0) -> Measurement:
    """One endpoint known only by an APM-style summary where ``metric`` is ``value`` (others fixed)."""
    figures: dict[str, float | None] = {
        "avg_ms": 50.0,
        "p50_ms": 40.0,
        "p95_ms": 100.0,
        "p99_ms": 150.0,
        "max_ms": 400.0,
    }
    if metric in figures:
        figures[metric] = value
    summary = LatencySummary(**figures)  # type: ignore[arg-type]  # every key a figure in ms
    stats = EndpointStats(Endpoint("GET", "/a"), count=count, errors=errors, latency=summary)
    return Measurement(
        source=lognormal_side({}).source, window=Window(T0, T0 + timedelta(minutes=1)), endpoints=(stats,)
    )


def _judge(metric: str, base: float | None, cand: float | None) -> MetricResult:
    """``metric`` judged on two summaries (latency: untested, tolerance alone) or counts (errors, rps)."""
    if metric == "error_rate":
        assert base is not None
        assert cand is not None
        sides = (
            _summary_side(metric, None, errors=round(base * 2000)),
            _summary_side(metric, None, errors=round(cand * 2000)),
        )
    elif metric == "rps":  # a concurrent pair: the same offered load, so throughput is judged
        assert base is not None
        assert cand is not None
        sides = (
            replace(_summary_side(metric, None, count=round(base * 60)), pair_id="ab"),
            replace(_summary_side(metric, None, count=round(cand * 60)), pair_id="ab"),
        )
    else:
        sides = _summary_side(metric, base), _summary_side(metric, cand)
    result = compare(*sides).endpoints[0].metric(metric)
    assert result is not None
    return result


@pytest.mark.parametrize(
    ("metric", "base", "cand", "verdict", "change"),
    [
        ("p95_ms", 100.0, 104.0, Verdict.PASS, Change.SAME),  # +4% < 5%
        ("p95_ms", 100.0, 106.0, Verdict.FAIL, Change.WORSE),  # +6% and +6 ms: untested, the tolerance decides
        ("p95_ms", 10.0, 11.5, Verdict.PASS, Change.SAME),  # +15% but only +1.5 ms < 2 ms floor
        ("p95_ms", 100.0, 60.0, Verdict.PASS, Change.SAME),  # better, but untested: not claimed as better
        ("p50_ms", 0.0, 10.0, Verdict.FAIL, Change.WORSE),  # zero baseline: the absolute floor decides
        ("max_ms", 100.0, 250.0, Verdict.MARGINAL, Change.WORSE),  # warn gate
        ("max_ms", 100.0, 190.0, Verdict.PASS, Change.SAME),
        ("error_rate", 0.0, 0.02, Verdict.FAIL, Change.WORSE),  # 40 errors over a zero-error baseline
        ("error_rate", 0.0, 0.0005, Verdict.PASS, Change.SAME),  # 1 error: below the 0.1 pp floor
        ("error_rate", 0.10, 0.14, Verdict.PASS, Change.SAME),  # +40% < 50%, though significant
        ("rps", 10.0, 8.5, Verdict.FAIL, Change.WORSE),  # throughput down is bad (510 vs 600 requests)
        ("rps", 10.0, 12.0, Verdict.PASS, Change.BETTER),  # throughput up is good
        ("avg_ms", None, 10.0, Verdict.INCONCLUSIVE, Change.UNKNOWN),  # missing is never a pass
    ],
)
def test_metric_rules(metric: str, base: float | None, cand: float | None, verdict: Verdict, change: Change) -> None:
    result = _judge(metric, base, cand)
    assert (result.verdict, result.change) == (verdict, change)
    if metric.endswith("_ms") and base is not None:
        assert result.statistics is not None
        assert not result.statistics.tested  # summaries: no test, labelled so
        assert "untested" in result.reason or "within" in result.reason


def test_errors_and_rps_carry_their_tests() -> None:
    err = _judge("error_rate", 0.0, 0.02)
    assert err.statistics is not None
    assert err.statistics.tested
    assert err.statistics.p_value is not None
    assert err.statistics.p_value < 1e-10
    assert err.statistics.adjusted_p is not None
    assert err.statistics.adjusted_p <= 0.01
    assert err.statistics.interval is not None
    assert err.statistics.interval[0] > 0  # the rate difference is surely positive


def test_a_clear_regression_fails_below_the_pass_minimum_and_gate_off_is_not_judged() -> None:
    base = lognormal_side({"GET /a": 20}, n=999, seed=1)
    cand = lognormal_side({"GET /a": 100}, n=2000, seed=2)
    few = compare(base, cand).endpoints[0].metric("p99_ms")
    assert few is not None
    assert few.verdict is Verdict.FAIL  # x5 on 999 requests is decided: no fixed cut-off for a failure
    assert "decided with 999 requests per side" in few.reason
    same = compare(base, lognormal_side({"GET /a": 20}, n=2000, seed=2)).endpoints[0].metric("p99_ms")
    assert same is not None
    assert same.verdict is Verdict.INCONCLUSIVE  # within tolerance, but 999 < 1000 samples to pass on a p99
    assert "too few samples to pass: 999 < 1000" in same.reason
    assert same.needs == 1000
    off_policy = policy_from_mapping(
        {"metrics": {name: {"gate": "off"} for name, spec in SPEC.items() if spec.unit == "ms"}}
    )
    off = compare(base, cand, off_policy).endpoints[0]
    p95 = off.metric("p95_ms")
    assert p95 is not None
    assert p95.verdict is Verdict.INCONCLUSIVE
    assert not p95.gated
    assert "reported only (gate off)" in p95.reason
    assert off.verdict is Verdict.INCONCLUSIVE  # no latency metric judged


def test_too_few_requests_is_inconclusive_not_pass() -> None:
    base = lognormal_side({"GET /a": 20, "GET /rare": 20}, n=20)
    result = compare(base, base)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert all(e.verdict is Verdict.INCONCLUSIVE for e in result.endpoints)
    assert "too few requests to pass" in result.endpoints[0].reasons[0]


def test_a_huge_change_on_few_requests_is_decided() -> None:
    base = lognormal_side({"GET /a": 20, "POST /rare": 200}, n=25, seed=1)
    cand = lognormal_side({"GET /a": 20, "POST /rare": 1600}, n=25, seed=2)
    result = compare(base, cand)
    rare = {e.endpoint.key: e for e in result.endpoints}["POST /rare"]
    assert rare.verdict is Verdict.FAIL  # x8 on 25 vs 25 requests: below min_samples, still decided
    assert result.verdict is Verdict.FAIL


def test_an_unjudged_endpoint_that_looks_worse_keeps_the_run_from_passing() -> None:
    base = lognormal_side({"GET /a": 20}, n=3000, seed=1)
    rare_b = lognormal_side({"POST /rare": 200}, n=12, seed=3)
    rare_c = lognormal_side({"POST /rare": 300}, n=12, seed=4)  # x1.5 on 12 requests: not decidable
    cand = lognormal_side({"GET /a": 20}, n=3000, seed=2)
    result = compare(
        replace(base, endpoints=base.endpoints + rare_b.endpoints),
        replace(cand, endpoints=cand.endpoints + rare_c.endpoints),
    )
    rare = {e.endpoint.key: e for e in result.endpoints}["POST /rare"]
    assert rare.verdict is Verdict.INCONCLUSIVE
    assert rare.looks_worse
    assert result.verdict is Verdict.INCONCLUSIVE  # 0.4% of traffic, but it looks x1.5 slower: no green
    assert "POST /rare looks x1." in result.reasons[0]
    assert "more requests per side" in result.reasons[0]
    assert rare.needs is not None
    assert rare.needs > 12
    unchanged = lognormal_side({"POST /rare": 200}, n=12, seed=3)
    same = compare(
        replace(base, endpoints=base.endpoints + rare_b.endpoints),
        replace(cand, endpoints=cand.endpoints + unchanged.endpoints),
    )
    assert same.verdict is Verdict.PASS  # unjudged but not looking worse, and under max_inconclusive_share


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
    replayed = replace(half, labels={LABEL_REPLAY_OF: fingerprint(base)})  # a replay of the baseline at half rate
    rps = compare(base, replayed).endpoints[0].metric("rps")
    assert rps is not None
    assert rps.candidate == pytest.approx(rps.baseline)  # 2000/120/0.5 == 2000/60
    assert rps.verdict is Verdict.PASS
    assert rps.gated
    oversampled = replace(replayed, endpoints=(replace(replayed.endpoints[0], count=8000, load_factor=4.0),))
    rps = compare(base, oversampled).endpoints[0].metric("rps")
    assert rps is not None
    assert rps.candidate == pytest.approx(rps.baseline)  # sent at 4x its share: compared per unit of its own load
    assert any("oversampled endpoints" in n and "GET /a x4" in n for n in compare(base, oversampled).notes)


def test_throughput_is_judged_only_under_the_same_offered_load() -> None:
    base = lognormal_side({"GET /a": 20, "GET /b": 30}, seed=1)
    fewer = lognormal_side({"GET /a": 20, "GET /b": 30}, n=1600, seed=2)  # 20% fewer requests everywhere
    before_after = compare(base, fewer)
    rps = before_after.endpoints[0].metric("rps")
    assert rps is not None
    assert not rps.gated
    assert rps.verdict is Verdict.INCONCLUSIVE
    assert "not driven by the same offered load" in rps.reason
    assert not before_after.throughput_gated
    assert before_after.verdict is Verdict.PASS  # shown, not judged: the rest passes
    paired = compare(replace(base, pair_id="ab"), replace(fewer, pair_id="ab"))
    assert paired.verdict is Verdict.FAIL  # the same schedule sent to both: 20% fewer served is a regression
    same_traffic = {LABEL_REPLAY_OF: "f00d"}  # two replays of one baseline (or server-side figures of them)
    assert compare(replace(base, labels=same_traffic), replace(fewer, labels=same_traffic)).verdict is Verdict.FAIL


def test_closed_loop_request_logs_judge_latency_not_throughput() -> None:
    """A user's own locustfile (CsvRequestLogger): one endpoint x1.5 slower and every endpoint 20% fewer
    requests (users waited longer) — exactly the slower endpoint fails."""
    keys = {"GET /a": 20, "GET /b": 30, "POST /c": 50}
    base = replace(lognormal_side(keys, n=3000, seed=1), source=Source(SourceKind.LOCUST_CSV, "requests.csv"))
    slower = {**keys, "GET /b": 45}
    cand = replace(lognormal_side(slower, n=2400, seed=2), source=Source(SourceKind.LOCUST_CSV, "requests.csv"))
    result = compare(base, cand)
    assert {e.endpoint.key: e.verdict for e in result.endpoints} == {
        "GET /b": Verdict.FAIL,
        "GET /a": Verdict.PASS,
        "POST /c": Verdict.PASS,
    }
    assert "closed-loop load" in result.throughput_note
    assert any(n.startswith("throughput shown, not judged: closed-loop") for n in result.notes)


def test_server_side_baseline_against_a_client_side_replay_is_incomparable() -> None:
    summary = EndpointStats(
        Endpoint("GET", "/a"), count=5000, errors=0, latency=LatencySummary(avg_ms=20.9, p50_ms=20.0, p95_ms=32.5)
    )
    base = Measurement(
        source=Source(SourceKind.ACCESS_LOG, "access.log"),
        window=Window(T0, T0 + timedelta(days=1)),
        endpoints=(summary,),
        labels={"format": "nginx"},
    )
    cand = replace(
        lognormal_side({"GET /a": 26}),  # x1.3 slower client-side: the network, not the target
        source=Source(SourceKind.LOCUST_REPLAY, "replay", service="web", env="eks", target="http://new:8080"),
        labels={"run_time_s": "60", "seed": "3"},
    )
    result = compare(base, cand, names=("base.json", "new.json"))
    assert result.verdict is Verdict.INCONCLUSIVE  # never a FAIL (exit 1) for a difference of kinds
    assert result.incomparable is not None
    assert result.incomparable.baseline_kind == "server"
    assert result.reasons[0].startswith("latency not comparable: the baseline's latency is server-side (access log)")
    assert result.reasons[1] == f"for a latency verdict: {result.incomparable.remedies[0]}"
    assert result.incomparable.remedies[0].startswith("parity ab base.json --old OLD_URL --new http://new:8080")
    assert "from-logs --format nginx ACCESS_LOGS --window-of new.json" in result.incomparable.remedies[1]
    assert "--baseline base.json -t 60s --rate-scale 1 --seed 3" in result.incomparable.remedies[2]
    e = result.endpoints[0]
    assert e.verdict is Verdict.INCONCLUSIVE
    for name in ("shift", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        m = e.metric(name)
        assert m is not None
        assert (m.verdict, m.comparable, m.gated, m.looks_worse) == (Verdict.INCONCLUSIVE, False, False, False)
        assert m.reason.split(": ", 1)[1].startswith("not judged, incomparable")
    errors_now = replace(cand, endpoints=(replace(cand.endpoints[0], errors=200),))
    assert compare(base, errors_now).verdict is Verdict.FAIL  # errors are still judged across kinds


def test_summary_baseline_against_a_server_side_sketch_is_before_after() -> None:
    summary = EndpointStats(
        Endpoint("GET", "/a"), count=50000, errors=0, latency=LatencySummary(avg_ms=20.9, p50_ms=20.0, p95_ms=32.5)
    )
    base = Measurement(
        source=Source(SourceKind.DATADOG, "apm"), window=Window(T0, T0 + timedelta(days=1)), endpoints=(summary,)
    )
    cand = replace(lognormal_side({"GET /a": 20}), latency_kind=LatencyKind.SERVER)  # e.g. access log of the window
    result = compare(base, cand)
    assert result.mode is ComparisonMode.BEFORE_AFTER
    assert result.incomparable is None
    assert any("before/after" in n for n in result.notes)
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


def _lagging(m: Measurement, lag_ms: tuple[float | None, ...], cpu: float = 10.0) -> Measurement:
    """``m`` with a generator that used ``cpu`` % and lagged ``lag_ms`` behind its schedule per interval."""
    start = m.window.start.timestamp()
    interval = m.window.duration_s / len(lag_ms)
    n = len(lag_ms)
    health = GeneratorHealth(start, interval, (cpu,) * n, (0,) * n, sent=m.total_count, lag_ms=lag_ms)
    return replace(m, generator=health)


def test_a_generator_lagging_behind_its_schedule_leaves_latency_unjudged() -> None:
    # Starved, not busy (10% CPU): both sides' latency inflated alike hides a doubled /a — never a pass.
    base = lognormal_side({"GET /a": 2000, "GET /b": 2000}, seed=1)
    cand = lognormal_side({"GET /a": 2040, "GET /b": 2000}, errors={"GET /b": 100}, seed=2)
    starved = (3.0,) * 10 + (1500.0,) * 10
    r = compare(_lagging(base, starved), _lagging(cand, starved))
    info = r.candidate.generator
    assert info is not None
    assert (info.blamed_generator, info.lagging, info.saturated) == (True, True, False)
    assert info.lagged_share == pytest.approx(0.5)
    assert info.peak_lag_ms == 1500.0
    by_key = {e.endpoint.key: e for e in r.endpoints}
    assert by_key["GET /a"].verdict is Verdict.INCONCLUSIVE
    reason = "the candidate's load generator lagged > 100 ms behind its schedule in 50% of the run (worst 1,500 ms)"
    assert any(reason in x for x in by_key["GET /a"].reasons)
    assert all(m.verdict is Verdict.INCONCLUSIVE for m in by_key["GET /a"].metrics if m.unit == "ms")
    assert by_key["GET /b"].verdict is Verdict.FAIL  # errors are still the target's
    assert r.verdict is Verdict.FAIL
    same = compare(_lagging(base, starved), _lagging(base, starved))  # identical sides: inconclusive, not pass
    assert same.verdict is Verdict.INCONCLUSIVE
    assert any(n.startswith("latency not judged: the baseline's load generator lagged") for n in same.notes)

    # One lagging interval in 20 is at the limit (5%): still judged; a lag at the threshold does not count.
    slow = lognormal_side({"GET /a": 40}, seed=2)
    fast = lognormal_side({"GET /a": 20}, seed=1)
    judged = compare(_lagging(fast, (5.0,) * 20), _lagging(slow, (5.0,) * 18 + (100.0, 900.0)))
    assert judged.candidate.generator is not None
    assert judged.candidate.generator.lagged_share == pytest.approx(0.05)
    assert not judged.candidate.generator.blamed_generator
    assert judged.verdict is Verdict.FAIL
    twice = compare(_lagging(fast, (5.0,) * 20), _lagging(slow, (5.0,) * 17 + (None, 101.0, 900.0)))
    assert twice.verdict is Verdict.INCONCLUSIVE  # 2 of 19 sampled intervals: the unsampled one is not counted
    lenient = compare(fast, _lagging(slow, (900.0,) * 20), Policy(max_generator_lag_ms=1000.0))
    assert lenient.verdict is Verdict.FAIL
    unmeasured = compare(fast, _with_generator(slow, (10.0,) * 20))  # lag not measured (older files): as before
    assert unmeasured.candidate.generator is not None
    assert unmeasured.candidate.generator.lagged_share is None
    assert unmeasured.verdict is Verdict.FAIL
    both = compare(fast, _lagging(slow, (900.0,) * 20, cpu=95.0))
    assert both.candidate.generator is not None
    assert (both.candidate.generator.saturated, both.candidate.generator.lagging) == (True, True)
    assert sum("candidate's load generator" in n for n in both.notes) == 2  # each cause named


def test_the_generator_lag_limit_is_configurable() -> None:
    assert Policy().max_generator_lag_ms == 100.0
    assert policy_from_mapping({"max_generator_lag_ms": 250}).max_generator_lag_ms == 250.0
    with pytest.raises(ValueError, match=r"compare\.max_generator_lag_ms: expected a number >= 0"):
        policy_from_mapping({"max_generator_lag_ms": -1})


def test_tail_only_change_with_an_unchanged_median_fails() -> None:
    rng = np.random.default_rng(7)
    base_values = rng.lognormal(np.log(40), 0.5, 20_000)
    cand_values = rng.lognormal(np.log(40), 0.5, 20_000)
    median = 40.0
    cand_values = np.where(cand_values > median, median * (cand_values / median) ** 1.25, cand_values)  # tail x~1.2
    base = replace(lognormal_side({}), endpoints=(_dist_stats("GET /t", base_values),))
    cand = replace(lognormal_side({}), endpoints=(_dist_stats("GET /t", cand_values),))
    e = compare(base, cand).endpoints[0]
    assert e.verdict is Verdict.FAIL
    verdicts = {m.metric: m.verdict for m in e.metrics}
    assert verdicts["p50_ms"] is Verdict.PASS  # the median did not move
    assert verdicts["p95_ms"] is Verdict.FAIL
    assert verdicts["p99_ms"] is Verdict.FAIL


def _dist_stats(key: str, values: np.ndarray, errors: int = 0) -> EndpointStats:
    from parity.model import LatencyDistribution
    from tests.conftest import sketch_of

    return EndpointStats(
        Endpoint.parse(key), count=len(values), errors=errors, latency=LatencyDistribution(sketch_of(values))
    )


def test_changed_but_not_significant_is_marginal_or_within_noise_never_fail() -> None:
    # 80 requests a side, +15% typical latency: beyond the 5% tolerance, but not provable at alpha 0.01
    outcomes = {}
    for seed in (3, 6):
        base = lognormal_side({"GET /a": 20}, n=80, seed=seed, sigma=0.5)
        cand = lognormal_side({"GET /a": 23}, n=80, seed=seed + 100, sigma=0.5)
        e = compare(base, cand).endpoints[0]
        shift = e.metric("shift")
        assert shift is not None
        assert shift.change is Change.WORSE
        assert shift.statistics is not None
        assert shift.statistics.adjusted_p is not None
        assert shift.statistics.adjusted_p > 0.01
        assert "not significant" in shift.reason
        outcomes[seed] = (e.verdict, shift.verdict, shift.statistics.adjusted_p)
    verdict, metric, adjusted = outcomes[3]  # adjusted p 0.06 <= marginal_alpha 0.1: marginal
    assert (verdict, metric) == (Verdict.MARGINAL, Verdict.MARGINAL)
    assert adjusted <= 0.1
    verdict, metric, adjusted = outcomes[6]  # adjusted p 0.9: within noise, not judged; p50 within tolerance
    assert metric is Verdict.INCONCLUSIVE
    assert adjusted > 0.1
    assert verdict is Verdict.PASS


def test_every_test_of_the_run_is_adjusted_together() -> None:
    side = lognormal_side({f"GET /e{i}": 20 for i in range(10)}, n=2000, seed=1, pair_id="ab")
    other = lognormal_side({f"GET /e{i}": 20 for i in range(10)}, n=2000, seed=2, pair_id="ab")
    result = compare(side, other)
    tested = [m.statistics for e in result.endpoints for m in e.metrics if m.statistics and m.statistics.tested]
    # 10 endpoints x (6 latency tests + throughput); zero errors on both sides cannot be significant (left out)
    assert result.tests == 70
    assert len(tested) == 80
    assert {s.family_size for s in tested} == {result.tests}
    assert all(s.adjusted_p is not None and s.p_value is not None and s.adjusted_p >= s.p_value for s in tested)
    assert any(n.startswith(f"significance: {result.tests} tests adjusted together (Holm)") for n in result.notes)


def _critical_sides() -> tuple[Measurement, Measurement]:
    base = lognormal_side({"POST /payroll/run": 50, "GET /health": 2, "GET /reports": 30}, seed=1)
    cand = lognormal_side({"POST /payroll/run": 50, "GET /health": 2, "GET /reports": 60}, seed=2)
    return base, cand


def test_critical_endpoints_and_fail_on_critical() -> None:
    base, cand = _critical_sides()
    assert compare(base, cand).verdict is Verdict.FAIL  # fail_on = any
    policy = policy_from_mapping({"fail_on": "critical", "endpoints": {"POST /payroll/*": {"critical": True}}})
    result = compare(base, cand, policy)
    assert result.verdict is Verdict.MARGINAL  # only a non-critical endpoint regressed
    assert "1 non-critical endpoint(s) regressed: GET /reports" in result.reasons[0]
    assert [e.endpoint.key for e in result.endpoints if e.critical] == ["POST /payroll/run"]
    critical_reports = policy_from_mapping({"fail_on": "critical", "endpoints": {"GET /rep*": {"critical": True}}})
    failed = compare(base, cand, critical_reports)
    assert failed.verdict is Verdict.FAIL
    assert failed.reasons[0] == "1 endpoint(s) regressed (1 critical): GET /reports"


def test_a_critical_endpoint_that_cannot_be_judged_makes_the_run_inconclusive() -> None:
    base, cand = _critical_sides()
    missing = replace(cand, endpoints=tuple(e for e in cand.endpoints if e.endpoint.key != "POST /payroll/run"))
    same_reports = replace(missing, endpoints=tuple(e for e in base.endpoints if e.endpoint.key == "GET /health"))
    policy = policy_from_mapping({"endpoints": {"POST /payroll/run": {"critical": True}}})
    result = compare(base, same_reports, policy)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reasons[0] == "critical endpoint(s) could not be judged: POST /payroll/run"
    typo = policy_from_mapping({"endpoints": {"POST /payrol/run": {"critical": True}}})
    result = compare(base, base, typo)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "critical endpoint pattern 'POST /payrol/run' matches no endpoint" in result.reasons
    assert "config: endpoint pattern 'POST /payrol/run' matches no endpoint of either side" in result.notes


def test_per_endpoint_overrides_apply_in_order() -> None:
    base, cand = _critical_sides()  # /reports doubled
    loose = {"metrics": {m: {"tolerance": 1.5} for m in ("shift", "avg_ms", "p50_ms", "p95_ms", "p99_ms")}}
    policy = policy_from_mapping(
        {"endpoints": {"GET /*": loose, "GET /health": {"metrics": {"p95_ms": {"gate": "warn"}}}}}
    )
    result = compare(base, cand, policy)
    assert result.verdict is Verdict.PASS  # x2 is within +150%
    health = policy.for_endpoint("GET /health")
    assert health.rule("p95_ms") == MetricRule(tolerance=1.5, min_delta=2.0, min_samples=200, gate=Gate.WARN)
    assert policy.for_endpoint("POST /payroll/run").rule("p95_ms") == DEFAULT_RULES["p95_ms"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"endpoints": {"GET /a": {"critcal": True}}}, "compare.endpoints.'GET /a'.critcal: unknown key"),
        ({"endpoints": {"GET /a": {"critical": "yes"}}}, "compare.endpoints.'GET /a'.critical: expected true or false"),
        ({"endpoints": {"GET /a": {"metrics": {"p42": {}}}}}, "compare.endpoints.'GET /a'.metrics.p42: unknown metric"),
        ({"fail_on": "some"}, "compare.fail_on: expected any or critical, got 'some'"),
        ({"alpha": 0}, "compare.alpha: must be above 0"),
        ({"alpha": 0.2, "marginal_alpha": 0.1}, "compare.marginal_alpha: must be at least alpha"),
    ],
)
def test_bad_endpoint_and_run_settings_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        policy_from_mapping(table)


def _staged(p95_by_stage: dict[float, float], *, saturated_from: float | None = None, n: int = 400) -> Measurement:
    """A ramp replay of ``GET /r``: per stage load (req/s) a lognormal latency whose p95 is the value given."""
    from parity.model import LoadStage

    rng = np.random.default_rng(5)
    stages, start = [], T0.timestamp()
    for i, (load, p95) in enumerate(p95_by_stage.items()):
        median = p95 / np.exp(1.645 * 0.3)
        values = rng.lognormal(np.log(median), 0.3, n)
        stages.append(
            LoadStage(f"step {i + 1}", start + 10 * i, start + 10 * (i + 1), load, (_dist_stats("GET /r", values),))
        )
    cpu = tuple(95.0 if saturated_from is not None and load >= saturated_from else 40.0 for load in p95_by_stage)
    side = lognormal_side({"GET /r": 20}, seed=3)
    generator = GeneratorHealth(start, 10.0, cpu, (0,) * len(cpu), sent=n * len(cpu))
    return replace(side, stages=tuple(stages), generator=generator)


def test_saturation_knee_where_p95_grows_faster_than_linearly() -> None:
    from parity.judge.bottlenecks import saturation_knees

    flat_then_jump = _staged({10: 20.0, 50: 21.0, 100: 22.0, 500: 80.0, 1000: 300.0})
    (knee,) = saturation_knees(flat_then_jump, "candidate", Policy())
    assert (knee.stage, knee.load_rps) == ("step 4", 500)
    assert "faster than linearly" in knee.reason
    assert [p.load_rps for p in knee.points] == [10, 50, 100, 500, 1000]
    linear = _staged({10: 20.0, 50: 24.0, 100: 29.0, 500: 69.0, 1000: 119.0})  # +0.1 ms per req/s: no knee
    (none,) = saturation_knees(linear, "baseline", Policy())
    assert none.stage is None
    assert none.reason.startswith("no knee up to 1000 req/s")
    (slo,) = saturation_knees(linear, "baseline", Policy(slo_p95_ms=50.0))
    assert (slo.stage, slo.load_rps) == ("step 4", 500)
    assert "above the SLO of 50 ms" in slo.reason


def test_no_knee_is_blamed_on_a_saturated_generator() -> None:
    from parity.judge.bottlenecks import saturation_knees

    busy = _staged({10: 20.0, 50: 21.0, 100: 22.0, 500: 80.0, 1000: 300.0}, saturated_from=500)
    (knee,) = saturation_knees(busy, "candidate", Policy())
    assert knee.stage is None
    assert "load generator saturated or lagging from stage 'step 4' (500 req/s)" in knee.reason
    assert [p.generator_saturated for p in knee.points] == [False, False, False, True, True]
    few = _staged({10: 20.0, 50: 21.0, 100: 200.0}, n=50)  # 50 requests a stage: p95 not judged
    (unknown,) = saturation_knees(few, "candidate", Policy())
    assert unknown.stage is None
    assert "0 stage(s) with enough requests" in unknown.reason
    assert saturation_knees(lognormal_side({"GET /r": 20}), "baseline", Policy()) == ()  # no stages


def test_knees_reach_the_result_for_both_sides() -> None:
    base = _staged({10: 20.0, 50: 21.0, 100: 22.0, 500: 23.0, 1000: 24.0})
    cand = _staged({10: 20.0, 50: 21.0, 100: 22.0, 500: 80.0, 1000: 300.0})
    result = compare(base, cand)
    assert [(k.side, k.stage) for k in result.knees] == [("baseline", None), ("candidate", "step 4")]


# --- partial sides are never green ---------------------------------------------------------------------


def _labelled(m: Measurement, **labels: str) -> Measurement:
    return replace(m, labels={**m.labels, **labels})


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({"complete": "no"}, "stopped before its planned end (complete=no)"),
        ({"complete": "no", "aborted": "error rate 12% over 5%"}, "aborted by a safety rail: error rate 12% over 5%"),
        ({"failed": "lane 2: connection refused"}, "a worker lane failed: lane 2: connection refused"),
        ({"stopped": "SIGTERM"}, "stopped by a signal: SIGTERM"),
        ({"lost": "worker-3"}, "lost worker(s): worker-3"),
        ({"lost_lanes": "1"}, "lost worker lane(s): 1"),
        ({"lost_lanes": "0"}, "lost worker lane(s): 0"),
    ],
)
def test_a_partial_candidate_never_passes(labels: dict[str, str], words: str) -> None:
    side = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 150})
    assert compare(side, side).verdict is Verdict.PASS
    result = compare(side, _labelled(side, **labels), names=("base.json", "cand.json"))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert not result.complete
    (partial,) = result.partial
    assert (partial.side, partial.name) == ("candidate", "cand.json")
    assert words in partial.reasons
    assert result.reasons[0].startswith("partial run: the candidate (cand.json) is partial: ")
    assert result.reasons[0].endswith("a partial run cannot pass")
    assert result.reasons[1] == "on what was recorded (pass): all 3 judged endpoint(s) within tolerance"
    assert result.partial_text().startswith("partial run: the candidate (cand.json) is partial")
    assert {e.verdict for e in result.endpoints} == {Verdict.PASS}  # endpoint verdicts: the recorded data's


def test_a_partial_baseline_never_passes_and_complete_labels_do_not_count() -> None:
    side = lognormal_side({"GET /a": 20, "GET /b": 5})
    result = compare(_labelled(side, complete="no", stopped="SIGINT"), side)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert [p.side for p in result.partial] == ["baseline"]
    assert result.partial[0].reasons == ("stopped before its planned end (complete=no)", "stopped by a signal: SIGINT")
    fine = _labelled(side, complete="yes", aborted="", failed="no", stopped="false", lost="0")
    assert compare(fine, fine).verdict is Verdict.PASS
    assert compare(fine, fine).complete
    both = compare(_labelled(side, complete="no"), _labelled(side, aborted="max rps"))
    assert [p.side for p in both.partial] == ["baseline", "candidate"]


def test_a_regression_in_what_a_partial_run_recorded_still_fails() -> None:
    base = lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 150}, seed=1)
    cand = _labelled(lognormal_side({"GET /a": 20, "GET /b": 5, "POST /c": 240}, seed=2), aborted="error rate")
    result = compare(base, cand)
    assert result.verdict is Verdict.FAIL  # a significant regression in the recorded part is real evidence
    assert result.reasons[0].startswith("partial run: the candidate (candidate) is partial: aborted by a safety rail")
    assert result.reasons[0].endswith("the regressions below are in what was recorded")
    assert result.reasons[1] == "1 endpoint(s) regressed: POST /c"
    # a marginal run (only non-critical endpoints regressed) is not green either
    policy = policy_from_mapping({"fail_on": "critical", "endpoints": {"GET /a": {"critical": True}}})
    marginal = compare(base, cand, policy)
    assert marginal.verdict is Verdict.INCONCLUSIVE
    assert marginal.reasons[1].startswith("on what was recorded (marginal): 1 non-critical endpoint(s) regressed")


def _with_sends(m: Measurement, *, sent: int, unsent: int, dropped: int = 0) -> Measurement:
    start = m.window.start.timestamp()
    health = GeneratorHealth(start, m.window.duration_s, (20.0,), (0,), sent=sent, unsent=unsent, dropped=dropped)
    return replace(m, generator=health)


@pytest.mark.parametrize(
    ("sent", "unsent", "dropped", "partial"),
    [
        (2000, 0, 0, False),
        (2000, 10, 0, False),  # a handful at the end of a run: normal (at most MIN_UNSENT)
        (100, 11, 0, True),  # over 10 and over 1% of the 111 planned
        (5000, 40, 0, False),  # 0.8% of the planned: within MAX_UNSENT_SHARE
        (5000, 60, 0, True),  # 1.2%
        (2000, 0, 900, False),  # dropped by the user's max-RPS cap: reported, not partial
    ],
)
def test_a_generator_that_left_much_of_its_schedule_unsent_is_partial(
    sent: int, unsent: int, dropped: int, partial: bool
) -> None:
    side = lognormal_side({"GET /a": 20})
    result = compare(side, _with_sends(side, sent=sent, unsent=unsent, dropped=dropped))
    assert (not result.complete) is partial
    assert result.verdict is (Verdict.INCONCLUSIVE if partial else Verdict.PASS)
    if partial:
        assert f"could not start {unsent:,} of {sent + unsent + dropped:,} planned requests" in result.reasons[0]


@pytest.mark.parametrize(
    ("sent", "late", "partial"),
    [
        (2000, 4, False),  # healthy runs here: 0-4 late of ~2,000
        (100, 20, False),  # 20% but only MIN_LATE: a short run's hiccup
        (2000, 200, False),  # 10%: within MAX_LATE_SHARE
        (2000, 201, True),
        (2016, 1352, True),  # the overloaded A/B pair that passed a planted +30 ms
    ],
)
def test_a_generator_that_sent_much_of_its_schedule_late_never_passes(sent: int, late: int, partial: bool) -> None:
    side = lognormal_side({"GET /a": 20})
    start = side.window.start.timestamp()
    health = GeneratorHealth(start, side.window.duration_s, (20.0,), (late,), sent=sent, late_sends=late)
    result = compare(side, replace(side, generator=health))
    assert (not result.complete) is partial
    assert result.verdict is (Verdict.INCONCLUSIVE if partial else Verdict.PASS)
    if partial:
        assert f"{late:,} of {sent:,} requests" in result.reasons[0]
        assert "were sent more than 100 ms behind their schedule" in result.reasons[0]
    slower = lognormal_side({"GET /a": 40}, seed=7)  # a real regression under back-pressure still fails
    assert compare(side, replace(slower, generator=health)).verdict is Verdict.FAIL


def test_throughput_of_a_partial_side_is_shown_unless_both_stopped_together() -> None:
    base = lognormal_side({"GET /a": 20, "GET /b": 30}, seed=1)
    fewer = lognormal_side({"GET /a": 20, "GET /b": 30}, n=1600, seed=2)
    same_traffic = {LABEL_REPLAY_OF: "f00d"}
    replays = compare(replace(base, labels=same_traffic), replace(fewer, labels={**same_traffic, "complete": "no"}))
    assert not replays.throughput_gated  # the partial window covers only part of the schedule
    assert "candidate run is partial" in replays.throughput_note
    assert replays.verdict is Verdict.INCONCLUSIVE
    paired = compare(
        replace(base, pair_id="ab", labels={"complete": "no"}), replace(fewer, pair_id="ab", labels={"complete": "no"})
    )
    assert paired.throughput_gated  # an A/B pair stopped together, under the same offered load
    assert paired.verdict is Verdict.FAIL  # 20% fewer served is a regression, partial or not

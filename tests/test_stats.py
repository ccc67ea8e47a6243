"""Known-answer tests of parity.judge.stats: tests on sketch bins, proportions, rates, Holm, the two gates.

Every random input comes from a fixed seed. Answers are checked against scipy on the raw samples, against
closed forms, and — for intervals and type-I error — against the stated rate over many seeds.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats as st

from parity.judge import stats
from parity.judge.result import Direction
from parity.judge.stats import EstimateKind, Evidence, Outcome, Status, Tolerance
from parity.model import LatencyDistribution, LatencySummary
from parity.sketch import LatencySketch

FloatArray = npt.NDArray[np.float64]
TOL = Tolerance(0.05, 1.0)


def sketch(values: npt.ArrayLike, accuracy: float = 0.01) -> LatencySketch:
    s = LatencySketch(accuracy)
    s.add_many(values)
    return s


def lognormal(seed: int, n: int, median: float = 40.0, sigma: float = 0.5) -> FloatArray:
    return np.random.default_rng(seed).lognormal(math.log(median), sigma, n)


def stretch_tail(x: FloatArray, median: float, k: float) -> FloatArray:
    """Values above ``median`` pushed out: ``median · (x / median)^k``; the median is unchanged."""
    return np.where(x <= median, x, median * (x / median) ** k)


def endpoint_decisions(base: LatencySketch, cand: LatencySketch) -> dict[str, stats.Decision]:
    n = (round(base.count), round(cand.count))
    evidence = stats.latency_evidence(LatencyDistribution(base), LatencyDistribution(cand), n)
    decisions = stats.judge_family([(m, e, TOL) for m, e in evidence.items()])
    return {d.label: d for d in decisions}


# --- rank test on bins -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "shift"), [(50, 1.0), (400, 1.05), (3000, 1.02), (3000, 1.0)])
def test_binned_mann_whitney_agrees_with_scipy_on_the_raw_samples(n: int, shift: float) -> None:
    for seed in range(3):
        a, b = lognormal(seed, n), lognormal(seed + 100, n + 7) * shift
        e = stats.rank_shift(sketch(a), sketch(b))
        ref = st.mannwhitneyu(b, a, alternative="greater", method="asymptotic").pvalue
        assert e.status is Status.TESTED
        assert e.p_value == pytest.approx(ref, abs=0.02)
        hl = math.exp(float(np.median(np.subtract.outer(np.log(b), np.log(a)))))
        assert e.estimate == pytest.approx(hl, rel=0.006)


def test_binned_mann_whitney_equals_scipy_when_the_samples_are_bin_values() -> None:
    """Values already on bin representatives: the bins are exactly scipy's tie groups."""
    probe = LatencySketch()
    rng = np.random.default_rng(7)
    a = np.array([probe._mapping.value(int(k)) for k in rng.integers(300, 330, 500)])
    b = np.array([probe._mapping.value(int(k)) for k in rng.integers(302, 332, 450)])
    e = stats.rank_shift(sketch(a), sketch(b))
    ref = st.mannwhitneyu(b, a, alternative="greater", method="asymptotic", use_continuity=True)
    assert e.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert e.details["u"] == pytest.approx(ref.statistic, rel=1e-12)


def test_moses_interval_covers_the_true_shift_at_the_stated_rate() -> None:
    covered = 0
    for seed in range(200):
        e = stats.rank_shift(sketch(lognormal(seed, 300)), sketch(lognormal(seed + 10_000, 300) * 1.1))
        assert e.interval is not None
        covered += e.interval[0] <= 1.1 <= e.interval[1]
    assert 0.90 <= covered / 200 <= 0.99


def test_rank_shift_detects_a_shift_and_reports_a_typical_latency() -> None:
    e = stats.rank_shift(sketch(lognormal(1, 5000)), sketch(lognormal(2, 5000) * 1.10))
    assert e.p_value is not None
    assert e.p_value < 1e-12
    assert e.estimate == pytest.approx(1.10, rel=0.02)
    assert e.candidate == pytest.approx(e.baseline * e.estimate)  # type: ignore[operator]
    assert e.details["prob_candidate_slower"] > 0.5


def test_sketches_of_different_accuracy_are_compared_on_one_grid() -> None:
    a, b = lognormal(3, 2000), lognormal(4, 2000) * 1.04
    ref = st.mannwhitneyu(b, a, alternative="greater", method="asymptotic").pvalue
    for base_accuracy, cand_accuracy in ((0.01, 0.02), (0.02, 0.01)):
        e = stats.rank_shift(sketch(a, base_accuracy), sketch(b, cand_accuracy))
        assert e.p_value == pytest.approx(ref, rel=0.15)
        assert e.estimate == pytest.approx(1.04, abs=0.02)


# --- mean --------------------------------------------------------------------------------------------------


def test_mean_ratio_agrees_with_welch_and_uses_exact_means() -> None:
    a, b = lognormal(5, 800), lognormal(6, 900) * 1.05
    e = stats.mean_ratio(sketch(a), sketch(b))
    assert e.baseline == pytest.approx(a.mean(), rel=1e-12)
    assert e.candidate == pytest.approx(b.mean(), rel=1e-12)
    ref = st.ttest_ind(b, a, equal_var=False, alternative="greater").pvalue
    assert e.p_value == pytest.approx(ref, abs=0.01)


def test_mean_ratio_interval_covers_the_true_ratio_at_the_stated_rate() -> None:
    covered = 0
    for seed in range(200):
        e = stats.mean_ratio(sketch(lognormal(seed, 500)), sketch(lognormal(seed + 10_000, 500) * 1.2))
        assert e.interval is not None
        covered += e.interval[0] <= 1.2 <= e.interval[1]
    assert 0.90 <= covered / 200 <= 0.99


# --- quantiles ------------------------------------------------------------------------------------------------


def test_quantile_ratio_estimates_sample_quantiles_within_the_sketch_accuracy() -> None:
    a, b = lognormal(8, 5000), lognormal(9, 5000)
    for q in (0.5, 0.95, 0.99):
        e = stats.quantile_ratio(sketch(a), sketch(b), q)
        assert e.baseline == pytest.approx(np.quantile(a, q), rel=0.01)
        assert e.candidate == pytest.approx(np.quantile(b, q), rel=0.01)


def test_quantile_interval_covers_the_true_p95_ratio_at_the_stated_rate() -> None:
    covered = 0
    for seed in range(200):
        e = stats.quantile_ratio(sketch(lognormal(seed, 2000)), sketch(lognormal(seed + 10_000, 2000) * 1.1), 0.95)
        assert e.interval is not None
        covered += e.interval[0] <= 1.1 <= e.interval[1]
    assert 0.90 <= covered / 200 <= 0.99


def test_quantile_test_keeps_its_false_positive_rate_under_the_null() -> None:
    """Fisher's exact test at the pooled quantile is exact (conservative) when nothing changed."""
    p_values = [
        stats.quantile_ratio(sketch(lognormal(s, 1000)), sketch(lognormal(s + 10_000, 1000)), 0.95).p_value
        for s in range(300)
    ]
    rejected = sum(p is not None and p <= 0.05 for p in p_values)
    assert rejected / 300 <= 0.07


def test_a_p99_shift_with_an_unchanged_median_is_caught() -> None:
    """Kayenta #780: a rank test alone misses a tail-only change; the quantile tests must not."""
    median = 40.0
    base = lognormal(11, 20_000, median)
    # k so that the true p99 is x1.3: exp(k · 2.326 · 0.5) = 1.3 · exp(2.326 · 0.5)
    k = 1 + math.log(1.3) / (st.norm.ppf(0.99) * 0.5)
    cand = stretch_tail(lognormal(12, 20_000, median), median, k)
    d = endpoint_decisions(sketch(base), sketch(cand))
    assert d["p99_ms"].outcome is Outcome.WORSE
    assert d["p99_ms"].evidence.estimate == pytest.approx(1.3, rel=0.05)
    assert d["p50_ms"].outcome is Outcome.SAME
    assert d["shift"].outcome is Outcome.SAME


def test_a_spread_only_change_is_caught_by_the_tail_quantiles() -> None:
    base = lognormal(13, 20_000, 40.0, 0.5)
    cand = lognormal(14, 20_000, 40.0, 0.6)  # same median, 20% more log-spread: p95 x1.18
    d = endpoint_decisions(sketch(base), sketch(cand))
    assert d["p95_ms"].outcome is Outcome.WORSE
    assert d["p99_ms"].outcome is Outcome.WORSE
    assert d["p50_ms"].outcome is Outcome.SAME
    assert d["shift"].outcome is not Outcome.WORSE


def test_quantiles_are_tested_from_ten_requests_per_side() -> None:
    e = stats.quantile_ratio(sketch(lognormal(1, 9)), sketch(lognormal(2, 500)), 0.99)
    assert e.status is Status.INSUFFICIENT
    assert "10 needed" in e.reason
    small = stats.quantile_ratio(sketch(lognormal(1, 500)), sketch(lognormal(2, 500)), 0.99)
    assert small.status is Status.TESTED  # exact at any n: with 10 requests beyond the pooled p99 it is weak,
    assert small.min_p > stats.ALPHA / 50  # and cannot reach alpha after adjusting for a 50-test run
    with pytest.raises(ValueError, match="strictly between"):
        stats.quantile_ratio(sketch([1.0]), sketch([1.0]), 1.0)


def test_an_eightfold_p95_on_165_requests_per_side_is_decided() -> None:
    """The issue's case: the payroll endpoint's p95 x8 on 165 vs 165 requests must be decided, after Holm over
    a run-sized family, not left grey for want of 200 samples."""
    base = lognormal(21, 165, 220.0, 0.3)
    cand = lognormal(22, 165, 220.0, 0.3) * 8.0
    e = stats.quantile_ratio(sketch(base), sketch(cand), 0.95)
    assert e.status is Status.TESTED
    assert e.p_value is not None
    assert e.p_value < stats.ALPHA / 300  # significant at the first Holm step of a 300-test run
    assert e.interval is not None
    assert e.interval[0] > 1.05  # the exact interval excludes "within tolerance"
    assert e.estimate == pytest.approx(8.0, rel=0.15)


@pytest.mark.parametrize("n", [40, 165])
def test_small_sample_quantile_interval_covers_at_least_the_stated_rate(n: int) -> None:
    """With few requests beyond p95 the interval is the exact order-statistic one: conservative, never short."""
    covered = 0
    for seed in range(200):
        e = stats.quantile_ratio(sketch(lognormal(seed, n)), sketch(lognormal(seed + 10_000, n) * 1.5), 0.95)
        assert e.interval is not None
        covered += e.interval[0] <= 1.5 <= e.interval[1]
    assert covered / 200 >= 0.95


def test_small_sample_quantile_test_keeps_its_false_positive_rate() -> None:
    p_values = [
        stats.quantile_ratio(sketch(lognormal(s, 60)), sketch(lognormal(s + 10_000, 60)), 0.95).p_value
        for s in range(300)
    ]
    assert sum(p is not None and p <= 0.05 for p in p_values) / 300 <= 0.07


def test_requests_to_decide_scales_the_observed_z() -> None:
    e = Evidence(
        method="m", status=Status.TESTED, direction=Direction.LOWER_IS_BETTER, unit="ms", baseline=10.0,
        candidate=12.0, estimate=1.2, estimate_kind=EstimateKind.RATIO, interval=(0.9, 1.6),
        p_value=float(st.norm.sf(2.0)), samples=(100, 120), reason="",
    )  # fmt: skip
    need = (st.norm.isf(0.01 / 50) + st.norm.isf(0.2)) / 2.0
    assert stats.requests_to_decide(e, 0.01, 50) == math.ceil(100 * need**2)
    assert stats.requests_to_decide(replace(e, p_value=0.7), 0.01, 50) is None  # not worse: nothing to decide
    assert stats.requests_to_decide(replace(e, p_value=None), 0.01, 50) is None


def test_shown_within_is_an_equivalence_check_on_the_interval() -> None:
    e = Evidence(
        method="m", status=Status.TESTED, direction=Direction.LOWER_IS_BETTER, unit="ms", baseline=100.0,
        candidate=101.0, estimate=1.01, estimate_kind=EstimateKind.RATIO, interval=(0.97, 1.04),
        p_value=0.3, samples=(100, 100), reason="",
    )  # fmt: skip
    assert stats.shown_within(e, Tolerance(0.05, 1.0))
    assert not stats.shown_within(replace(e, interval=(0.97, 1.08)), Tolerance(0.05, 1.0))
    assert stats.shown_within(replace(e, interval=(0.97, 1.08)), Tolerance(0.05, 10.0))  # +8 ms < 10 ms floor
    assert not stats.shown_within(replace(e, interval=None), Tolerance(0.05, 1.0))
    assert stats.looks_worse(replace(e, candidate=120.0), Tolerance(0.05, 1.0))
    assert not stats.looks_worse(e, Tolerance(0.05, 1.0))


# --- max ----------------------------------------------------------------------------------------------------


def test_max_exceedance_has_the_closed_form_tail() -> None:
    base = np.linspace(10, 100, 200)
    cand = np.concatenate([np.linspace(10, 90, 95), [150, 160, 170, 180, 190]])  # 5 above the baseline max
    e = stats.max_exceedance(sketch(base), sketch(cand))
    assert e.details["exceedances"] == 5
    assert e.p_value == pytest.approx(math.comb(100, 5) / math.comb(300, 5), rel=1e-9)
    assert e.estimate == pytest.approx(1.9)


# --- edge cases of the latency tests ----------------------------------------------------------------------------


def test_an_empty_sketch_is_inconclusive_for_every_latency_metric() -> None:
    d = endpoint_decisions(LatencySketch(), sketch(lognormal(1, 5000)))
    assert {x.outcome for x in d.values()} == {Outcome.INCONCLUSIVE}
    assert "no latency samples on the baseline side" in d["shift"].reason


def test_one_sample_is_inconclusive() -> None:
    d = endpoint_decisions(sketch([12.0]), sketch([30.0]))
    assert {x.outcome for x in d.values()} == {Outcome.INCONCLUSIVE}
    assert all(x.evidence.p_value is None for x in d.values())


def test_zero_variance_equal_on_both_sides_is_the_same() -> None:
    d = endpoint_decisions(sketch(np.full(500, 20.0)), sketch(np.full(700, 20.0)))
    for metric in ("shift", "avg_ms", "p50_ms", "p95_ms", "max_ms"):
        assert d[metric].outcome is Outcome.SAME, metric
        assert d[metric].evidence.estimate == pytest.approx(1.0)
    assert d["shift"].evidence.p_value == 1.0
    assert d["shift"].evidence.min_p == 1.0  # no ordering information: left out of the family
    assert d["avg_ms"].evidence.p_value == 1.0


def test_zero_variance_on_both_sides_with_different_values_is_worse() -> None:
    d = endpoint_decisions(sketch(np.full(500, 20.0)), sketch(np.full(500, 30.0)))
    for metric in ("shift", "avg_ms", "p50_ms", "p95_ms"):
        assert d[metric].outcome is Outcome.WORSE, metric
        # every value in one bin per side: the rank-based ratio is exact only to a bin (about 2%)
        assert d[metric].evidence.estimate == pytest.approx(1.5, rel=0.025)
    assert d["avg_ms"].evidence.p_value == 0.0


def test_identical_sides_are_the_same() -> None:
    s = sketch(lognormal(21, 5000))
    d = endpoint_decisions(s, s)
    for metric, decision in d.items():
        assert decision.outcome is Outcome.SAME, metric
        assert decision.evidence.estimate == pytest.approx(1.0)
        assert decision.evidence.p_value is not None
        assert decision.evidence.p_value > 0.3


def test_same_input_gives_the_same_output() -> None:
    a, b = sketch(lognormal(1, 3000)), sketch(lognormal(2, 3000))
    first = stats.latency_evidence(LatencyDistribution(a), LatencyDistribution(b), (3000, 3000))
    assert first == stats.latency_evidence(LatencyDistribution(a), LatencyDistribution(b), (3000, 3000))


# --- summaries --------------------------------------------------------------------------------------------------


def test_two_summaries_give_ratios_without_tests() -> None:
    base = LatencySummary(avg_ms=20.0, max_ms=300.0, p50_ms=15.0, p95_ms=50.0, p99_ms=None)
    cand = LatencySummary(avg_ms=21.0, max_ms=320.0, p50_ms=15.5, p95_ms=65.0, p99_ms=90.0)
    evidence = stats.latency_evidence(base, cand, (100_000, 90_000))
    assert evidence["p95_ms"].status is Status.UNTESTED
    assert evidence["p95_ms"].estimate == pytest.approx(1.3)
    assert evidence["p95_ms"].p_value is None
    assert "before/after" in evidence["p95_ms"].reason
    assert evidence["p99_ms"].status is Status.INSUFFICIENT  # not reported on the baseline side
    assert evidence["shift"].status is Status.INSUFFICIENT
    d = {x.label: x for x in stats.judge_family([(m, e, TOL) for m, e in evidence.items()])}
    assert d["p95_ms"].outcome is Outcome.UNTESTED
    assert d["avg_ms"].outcome is Outcome.SAME
    assert d["p99_ms"].outcome is Outcome.INCONCLUSIVE
    assert d["p95_ms"].adjusted_p is None


def test_a_sketch_against_a_much_larger_summary_is_tested_approximately() -> None:
    """The APM side saw 100x the requests: its figures stand as exact references (before/after)."""
    truth_p95 = 40.0 * math.exp(st.norm.ppf(0.95) * 0.5)
    truth_mean = 40.0 * math.exp(0.5**2 / 2)
    summary = LatencySummary(avg_ms=truth_mean, p50_ms=40.0, p95_ms=truth_p95, p99_ms=None)
    same = LatencyDistribution(sketch(lognormal(31, 5000)))
    slower = LatencyDistribution(sketch(lognormal(32, 5000) * 1.15))
    for cand, worse in ((same, False), (slower, True)):
        evidence = stats.latency_evidence(summary, cand, (500_000, 5000))
        for metric in ("avg_ms", "p50_ms", "p95_ms"):
            e = evidence[metric]
            assert e.status is Status.TESTED, metric
            assert "before/after" in e.reason
            assert e.p_value is not None
            assert (e.p_value < 1e-6) is worse, (metric, e.p_value)
        assert evidence["p99_ms"].status is Status.INSUFFICIENT
        assert evidence["max_ms"].status is Status.INSUFFICIENT  # the summary has no max
    # and the other way round: the sketch is the baseline, the candidate only has a summary
    fast = LatencyDistribution(sketch(lognormal(33, 5000) / 1.15))
    e = stats.latency_evidence(fast, summary, (5000, 500_000))["p95_ms"]
    assert e.status is Status.TESTED
    assert e.p_value is not None
    assert e.p_value < 1e-6
    assert e.estimate == pytest.approx(1.15, rel=0.05)


def test_a_summary_with_too_few_requests_is_not_taken_as_exact() -> None:
    summary = LatencySummary(avg_ms=45.0, p50_ms=40.0, p95_ms=90.0)
    evidence = stats.latency_evidence(summary, LatencyDistribution(sketch(lognormal(1, 5000))), (20_000, 5000))
    assert evidence["p95_ms"].status is Status.UNTESTED
    assert evidence["avg_ms"].status is Status.UNTESTED


def test_a_missing_latency_side_is_inconclusive() -> None:
    evidence = stats.latency_evidence(None, LatencyDistribution(sketch(lognormal(1, 100))), (0, 100))
    assert {e.status for e in evidence.values()} == {Status.INSUFFICIENT}


# --- errors -------------------------------------------------------------------------------------------------------


def test_errors_over_a_zero_error_baseline_fail() -> None:
    e = stats.error_rate_evidence(0, 2000, 20, 2000)
    assert e.p_value == pytest.approx(math.comb(2000, 20) / math.comb(4000, 20), rel=1e-9)
    assert e.estimate_kind is EstimateKind.DIFFERENCE
    assert e.estimate == pytest.approx(0.01)
    assert e.interval is not None
    assert e.interval[0] > 0
    (d,) = stats.judge_family([("error_rate", e, Tolerance(0.5, 0.001))])
    assert d.outcome is Outcome.WORSE


def test_error_difference_interval_covers_the_true_difference_at_the_stated_rate() -> None:
    rng = np.random.default_rng(4)
    covered = 0
    for _ in range(300):
        e = stats.error_rate_evidence(int(rng.binomial(1000, 0.02)), 1000, int(rng.binomial(1200, 0.03)), 1200)
        assert e.interval is not None
        covered += e.interval[0] <= 0.01 <= e.interval[1]
    assert 0.92 <= covered / 300 <= 0.99


@pytest.mark.parametrize(("eb", "nb", "ec", "nc"), [(3, 1000, 9, 1200), (0, 50, 2, 40), (40, 20_000, 70, 20_000)])
def test_error_test_is_fishers_exact_test(eb: int, nb: int, ec: int, nc: int) -> None:
    e = stats.error_rate_evidence(eb, nb, ec, nc)
    ref = st.fisher_exact(np.array([[ec, nc - ec], [eb, nb - eb]]), alternative="greater").pvalue
    assert e.p_value == pytest.approx(ref, rel=1e-9)


def test_zero_errors_on_both_sides_is_fine_and_left_out_of_the_family() -> None:
    e = stats.error_rate_evidence(0, 5000, 0, 5000)
    assert e.p_value == 1.0
    assert e.min_p == 1.0
    assert e.interval is not None
    assert e.interval[0] < 0 < e.interval[1]
    other = replace(e, p_value=0.004, min_p=0.0)
    decisions = stats.judge_family([("a", e, TOL), ("b", other, TOL)])
    assert decisions[0].outcome is Outcome.SAME
    assert decisions[0].adjusted_p == 1.0
    assert decisions[1].family_size == 1
    assert decisions[1].adjusted_p == pytest.approx(0.004)


def test_all_requests_errors() -> None:
    e = stats.error_rate_evidence(0, 100, 100, 100)
    (d,) = stats.judge_family([("error_rate", e, Tolerance(0.5, 0.01))])
    assert d.outcome is Outcome.WORSE
    both = stats.error_rate_evidence(100, 100, 100, 100)
    assert both.p_value == 1.0
    assert both.min_p == 1.0
    (d,) = stats.judge_family([("error_rate", both, Tolerance(0.5, 0.01))])
    assert d.outcome is Outcome.SAME


def test_tiny_counts_are_changed_but_not_significant() -> None:
    e = stats.error_rate_evidence(0, 10, 1, 10)
    assert e.p_value == pytest.approx(0.5)
    d = stats.decide(e, Tolerance(0.5, 0.01), e.p_value)
    assert d.outcome is Outcome.NOT_SIGNIFICANT
    assert "not significant" in d.reason
    assert stats.rank_shift(sketch([1.0, 2.0]), sketch([3.0, 4.0])).status is Status.INSUFFICIENT


def test_unknown_error_counts_are_inconclusive_never_zero() -> None:
    e = stats.error_rate_evidence(None, 1000, 5, 1000)
    assert e.status is Status.INSUFFICIENT
    assert stats.decide(e, TOL, None).outcome is Outcome.INCONCLUSIVE
    assert stats.error_rate_evidence(0, 0, 0, 10).status is Status.INSUFFICIENT


# --- throughput ---------------------------------------------------------------------------------------------------


def test_throughput_is_an_exact_conditional_poisson_test() -> None:
    e = stats.throughput_evidence(1000, 60.0, 850, 60.0)
    assert e.direction is Direction.HIGHER_IS_BETTER
    assert e.p_value == pytest.approx(st.binomtest(850, 1850, 0.5, alternative="less").pvalue, rel=1e-9)
    assert e.estimate == pytest.approx(0.85)
    assert e.interval is not None
    assert e.interval[0] < 0.85 < e.interval[1] < 1.0
    # per unit of offered load: half the exposure (half the rate scale), half the requests → same rate
    same = stats.throughput_evidence(1000, 60.0, 500, 30.0)
    assert same.estimate == pytest.approx(1.0)
    assert 0.4 < (same.p_value or 0) < 0.6
    assert stats.throughput_evidence(0, 60.0, 0, 60.0).status is Status.INSUFFICIENT
    (d,) = stats.judge_family([("rps", e, Tolerance(0.05, 0.0))])
    assert d.outcome is Outcome.WORSE


def test_throughput_interval_covers_the_true_ratio_at_the_stated_rate() -> None:
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(300):
        e = stats.throughput_evidence(int(rng.poisson(500)), 100.0, int(rng.poisson(400)), 100.0)
        assert e.interval is not None
        covered += e.interval[0] <= 0.8 <= e.interval[1]
    assert 0.92 <= covered / 300 <= 0.99


# --- Holm and the gates -------------------------------------------------------------------------------------------


def test_holm_known_answer() -> None:
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert stats.holm([0.5]) == (0.5,)
    assert stats.holm([]) == ()
    assert stats.holm([0.3, 0.3, 0.9]) == pytest.approx((0.9, 0.9, 0.9))


def _evidence(base: float, cand: float, p: float | None, **kw: object) -> Evidence:
    fields: dict[str, object] = {
        "method": "test",
        "status": Status.TESTED if p is not None else Status.UNTESTED,
        "direction": Direction.LOWER_IS_BETTER,
        "unit": "ms",
        "baseline": base,
        "candidate": cand,
        "estimate": cand / base,
        "estimate_kind": EstimateKind.RATIO,
        "interval": (cand / base * 0.97, cand / base * 1.03),
        "p_value": p,
        "samples": (1000, 1000),
        "reason": "made up",
    }
    fields.update(kw)
    return Evidence(**fields)  # type: ignore[arg-type]


def test_both_gates_are_needed_to_fail() -> None:
    tol = Tolerance(0.10, 3.0)
    assert stats.decide(_evidence(100, 120, 1e-6), tol, 1e-6).outcome is Outcome.WORSE
    assert stats.decide(_evidence(100, 120, 0.2), tol, 0.2).outcome is Outcome.NOT_SIGNIFICANT
    # significant but within the relative tolerance, or within the absolute floor (+40% of 2 ms)
    assert stats.decide(_evidence(100, 105, 1e-9), tol, 1e-9).outcome is Outcome.SAME
    assert "significant but within tolerance" in stats.decide(_evidence(100, 105, 1e-9), tol, 1e-9).reason
    assert stats.decide(_evidence(2, 2.8, 1e-9), tol, 1e-9).outcome is Outcome.SAME
    assert stats.decide(_evidence(100, 80, 0.99), tol, 0.99).outcome is Outcome.BETTER
    wide = _evidence(100, 80, 0.9, interval=(0.6, 1.1))
    assert stats.decide(wide, tol, 0.9).outcome is Outcome.SAME  # better, but within noise
    assert stats.decide(_evidence(100, 130, None), tol, None).outcome is Outcome.UNTESTED


def test_direction_higher_is_better() -> None:
    e = _evidence(100, 80, 1e-6, direction=Direction.HIGHER_IS_BETTER)
    assert stats.decide(e, Tolerance(0.1), 1e-6).outcome is Outcome.WORSE
    up = _evidence(100, 130, 0.99, direction=Direction.HIGHER_IS_BETTER)
    assert stats.decide(up, Tolerance(0.1), 0.99).outcome is Outcome.BETTER


def test_family_adjustment_turns_a_lone_small_p_into_not_significant() -> None:
    items = [("m0", _evidence(100, 120, 0.001), TOL)] + [(f"m{i}", _evidence(100, 100, 0.5), TOL) for i in range(1, 50)]
    first = stats.judge_family(items)[0]
    assert first.family_size == 50
    assert first.adjusted_p == pytest.approx(0.05)
    assert first.outcome is Outcome.NOT_SIGNIFICANT
    assert stats.judge_family(items, alpha=0.1)[0].outcome is Outcome.WORSE


def _full_tail(x: int, big_n: int, marked: int, drawn: int) -> float:
    """The upper tail as the judge summed it before windowing: every term, scipy's logsumexp."""
    from scipy import special

    lo, hi = max(x + 1, 0, drawn - (big_n - marked)), min(marked, drawn)
    if lo > hi:
        return 0.0
    k = np.arange(lo, hi + 1, dtype=np.float64)
    g = special.gammaln
    log_terms = (
        g(marked + 1)
        - g(k + 1)
        - g(marked - k + 1)
        + g(big_n - marked + 1)
        - g(drawn - k + 1)
        - g(big_n - marked - drawn + k + 1)
        - (g(big_n + 1) - g(drawn + 1) - g(big_n - drawn + 1))
    )
    return min(float(np.exp(special.logsumexp(log_terms))), 1.0)


@pytest.mark.parametrize(
    ("x", "big_n", "marked", "drawn"),
    [
        (-1, 100, 10, 20),  # x < 0: the whole distribution
        (-5, 100, 10, 20),
        (10, 100, 10, 20),  # x ≥ min(marked, drawn): empty tail
        (25, 100, 10, 20),
        (9, 100, 10, 20),  # the last term alone
        (0, 50, 0, 20),  # nothing marked
        (3, 40, 40, 20),  # everything marked: X = drawn
        (19, 40, 40, 20),
        (5, 1000, 600, 900),  # the lower limit drawn − (N − marked) > 0
        (4_990, 10_000_000, 100_000, 500_000),  # huge N, around the mean (many terms: windowed)
        (6_000, 10_000_000, 100_000, 500_000),  # huge N, far tail (~1e-40)
        (3_000, 10_000_000, 100_000, 500_000),  # huge N, below the mean (p near 1)
        (150_000, 9_999_999, 4_000_000, 300_000),  # ~300k terms, the tail where the judge's p50 test lives
    ],
)
def test_hypergeometric_tail_matches_scipy(x: int, big_n: int, marked: int, drawn: int) -> None:
    got = stats._hypergeom_sf(x, big_n, marked, drawn)
    assert got == pytest.approx(st.hypergeom.sf(x, big_n, marked, drawn), rel=1e-7, abs=1e-300)
    # windowing drops only terms that add exactly 0 in float64
    assert got == pytest.approx(_full_tail(x, big_n, marked, drawn), rel=1e-12, abs=0)


def test_hypergeometric_tail_below_1e_300_underflows_to_zero_and_reports_as_such() -> None:
    # P(X ≥ 100,000) with 100,000 marked among 10M and 5M drawn: 2^-100000-ish, far below float64
    assert stats._hypergeom_sf(99_999, 10_000_000, 100_000, 5_000_000) == 0.0
    # just above the float64 floor: a tiny positive p with its relative precision, not 0
    p = stats._hypergeom_sf(12_500, 10_000_000, 20_000, 5_000_000)
    assert 1e-280 < p < 1e-270
    assert p == pytest.approx(_full_tail(12_500, 10_000_000, 20_000, 5_000_000), rel=1e-12)
    assert math.log(p) == pytest.approx(float(st.hypergeom.logsf(12_500, 10_000_000, 20_000, 5_000_000)), rel=1e-9)
    e = stats.error_rate_evidence(0, 5_000_000, 100_000, 5_000_000)
    assert e.p_value == 0.0
    (d,) = stats.judge_family([("error_rate", e, Tolerance(0.5, 0.001))])
    assert d.outcome is Outcome.WORSE


@pytest.mark.parametrize(
    ("eb", "nb", "ec", "nc"), [(2_000, 5_000_000, 2_300, 5_000_000), (25_000, 5_000_000, 25_400, 4_900_000)]
)
def test_error_test_is_fishers_exact_test_at_millions_of_requests(eb: int, nb: int, ec: int, nc: int) -> None:
    e = stats.error_rate_evidence(eb, nb, ec, nc)
    ref = st.fisher_exact(np.array([[ec, nc - ec], [eb, nb - eb]]), alternative="greater").pvalue
    assert e.p_value == pytest.approx(ref, rel=1e-7)

"""Benchmark: does the statistical judge (parity.judge.stats) cry wolf, and does it catch planted regressions?

A simulation with known truths. Every run judges 50 endpoints with the product's judge,
``parity.judge.compare.compare`` and the default ``Policy`` (its tolerances are printed first): for each
endpoint the six latency comparisons (rank shift, avg, p50, p95, p99, max), the error-rate and the
throughput comparison; Holm's adjustment over every test of the run at the policy's alpha; and the two
gates (significant after adjustment *and* beyond tolerance). An endpoint *fails* when a metric with a fail
gate fails (``max_ms`` has a warn gate: it can only make an endpoint marginal).

Latency distributions (ms, before a per-endpoint scale factor drawn log-uniformly from 0.5–4):
  lognormal   median 40, sigma 0.5 (p95/p50 = 2.3)
  bimodal     75% lognormal(median 20, sigma 0.25) + 25% lognormal(median 150, sigma 0.3) (cache hit/miss)
  heavy       95% lognormal(median 40, sigma 0.4) + 5% Pareto(x_m 80, alpha 1.5) (infinite variance)

Planted changes on the candidate (monotone maps of each sample, so the true quantiles are known exactly;
``m`` is the true median, ``Q95`` the true p95 of the distribution, ``s`` the size 0.05/0.10/0.20):
  mean      x -> (1 + s) x: every quantile and the mean x(1 + s)
  p95 only  x -> x below m, m (x/m)^k above, k = 1 + ln(1 + s) / ln(Q95/m): the true p95 is x(1 + s),
            the median and the whole lower half unchanged (the upper tail stretched)
  spread    x -> m (x/m)^(1 + s): log-spread around the unchanged median x(1 + s) (lower half faster,
            upper half slower; the mean barely moves)
  errors    baseline 0 errors; candidate errors ~ Binomial(n, r) for r = 0.5%, 1%, 2%; latency unchanged

A/A runs: 50 endpoints, distribution cycling through the three, requests per side ~ Poisson(n) with n
log-uniform in 200–20,000, half the endpoints with a background error rate (log-uniform 0.01%–1%, same
on both sides). A/B runs: 25 planted endpoints (5 each at n = 200, 500, 2,000, 5,000, 20,000) and 25
unchanged ones as in A/A. Power = share of planted endpoints that fail.

The last table puts the hardest case in perspective: the z a *perfect* p95 comparison would reach
(asymptotic, from the true density: ln(1 + s) / sqrt(2 q(1 - q) / n) * g(ln Q95)) and its power after Holm.

Small samples (issue 11): A/A runs with every endpoint at n 20-300, and x2/x4/x8 changes of the tail (p95-only
map) or of everything on 100, 200 and 300 requests per side: failed, and "not green" (failed, or the run kept
from passing because the endpoint looks worse while undecided).

Usage: python benchmarks/judge_accuracy.py [--aa-runs 240] [--ab-runs 30] [--small-runs 40] [--seed 1]
Not part of `make test`; about 4–5 minutes on one core with the defaults (most of it building sketches).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from scipy import stats as st

from parity.judge.compare import compare
from parity.judge.policy import DEFAULT_RULES, Policy
from parity.judge.result import Verdict
from parity.model import Endpoint as ModelEndpoint
from parity.model import EndpointStats, LatencyDistribution, Measurement, Source, SourceKind, Window
from parity.sketch import LatencySketch

#: The judge under test: the product's defaults (tolerances in ``parity.judge.policy.DEFAULT_RULES``).
POLICY = Policy()
T0 = datetime(2026, 1, 1, tzinfo=UTC)

FloatArray = npt.NDArray[np.float64]

ENDPOINTS = 50
PLANTED_SIZES = (200, 500, 2_000, 5_000, 20_000)
PLANTED_PER_SIZE = 5
SIZES = (0.05, 0.10, 0.20)
ERROR_RATES = (0.005, 0.01, 0.02)
WINDOW_S = 600.0


# --- distributions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A mixture of lognormals (weight, median ms, sigma) and at most one Pareto tail (weight, x_m, alpha)."""

    name: str
    lognormals: tuple[tuple[float, float, float], ...]
    pareto: tuple[float, float, float] | None = None

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        weights = [w for w, _, _ in self.lognormals] + ([self.pareto[0]] if self.pareto else [])
        which = rng.choice(len(weights), size=n, p=np.asarray(weights) / sum(weights))
        out = np.empty(n)
        for i, (_, median, sigma) in enumerate(self.lognormals):
            idx = which == i
            out[idx] = rng.lognormal(math.log(median), sigma, int(idx.sum()))
        if self.pareto:
            idx = which == len(self.lognormals)
            _, x_m, alpha = self.pareto
            out[idx] = x_m * rng.random(int(idx.sum())) ** (-1.0 / alpha)
        return out

    def cdf(self, x: float) -> float:
        total = float(sum(w * special.ndtr((math.log(x) - math.log(m)) / s) for w, m, s in self.lognormals))
        if self.pareto:
            w, x_m, alpha = self.pareto
            total += w * (1.0 - (x_m / x) ** alpha if x > x_m else 0.0)
        return float(total)

    def pdf(self, x: float) -> float:
        total = float(sum(w * st.lognorm.pdf(x, s, scale=m) for w, m, s in self.lognormals))
        if self.pareto:
            w, x_m, alpha = self.pareto
            total += w * (alpha * x_m**alpha / x ** (alpha + 1) if x > x_m else 0.0)
        return float(total)

    def quantile(self, q: float) -> float:
        return float(optimize.brentq(lambda x: self.cdf(x) - q, 1e-6, 1e9, xtol=1e-12, rtol=1e-12))


FAMILIES = (
    Family("lognormal", ((1.0, 40.0, 0.5),)),
    Family("bimodal", ((0.75, 20.0, 0.25), (0.25, 150.0, 0.3))),
    Family("heavy", ((0.95, 40.0, 0.4),), (0.05, 80.0, 1.5)),
)


def change(kind: str, size: float, family: Family) -> Callable[[FloatArray], FloatArray]:
    """The monotone map that plants a change (see the module docstring); applied before scaling."""
    m, q95 = family.quantile(0.5), family.quantile(0.95)
    if kind == "mean":
        return lambda x: x * (1 + size)
    if kind == "p95":
        k = 1 + math.log(1 + size) / math.log(q95 / m)
        return lambda x: np.where(x <= m, x, m * (x / m) ** k)
    if kind == "spread":
        return lambda x: m * (x / m) ** (1 + size)
    return lambda x: x


# --- one run -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    family: Family
    n: int
    scale: float
    error_rate: float
    kind: str = "none"  # planted change: none | mean | p95 | spread | errors
    size: float = 0.0


def sketch(values: FloatArray) -> LatencySketch:
    s = LatencySketch()
    s.add_many(values)
    return s


def simulate(ep: Endpoint, rng: np.random.Generator) -> tuple[tuple[int, int, LatencySketch], ...]:
    """(requests, errors, latency sketch) for the baseline and the candidate of one endpoint."""
    sides = []
    for candidate in (False, True):
        n = max(int(rng.poisson(ep.n)), 1)
        x = ep.family.sample(rng, n)
        if candidate and ep.kind in ("mean", "p95", "spread"):
            x = change(ep.kind, ep.size, ep.family)(x)
        rate = ep.size if candidate and ep.kind == "errors" else (0.0 if ep.kind == "errors" else ep.error_rate)
        errors = int(rng.binomial(n, rate)) if rate else 0
        sides.append((n, errors, sketch(x * ep.scale)))
    return tuple(sides)


@dataclass(frozen=True)
class Judged:
    """One judged run (``compare`` with the default ``Policy``): per endpoint the metrics that failed, its
    verdict; the run's verdict; per alpha of ``SENSITIVITY_ALPHAS`` whether each endpoint failed; the
    family size; seconds taken."""

    failed: list[set[str]]
    verdicts: list[Verdict]
    run: Verdict
    failed_at: dict[float, list[bool]]
    family_size: int
    seconds: float

    @property
    def marginal(self) -> list[bool]:
        return [v is Verdict.MARGINAL for v in self.verdicts]


#: Other family-wise alphas tried on the same data, to show what relaxing the false-alarm target buys.
SENSITIVITY_ALPHAS = (0.05, 0.20)


def measurements(data: list[tuple[tuple[int, int, LatencySketch], ...]]) -> tuple[Measurement, Measurement]:
    """The baseline and candidate Measurements of one simulated run (endpoint ``GET /e<i>``)."""
    window = Window(T0, T0 + timedelta(seconds=WINDOW_S))
    sides = []
    for side in (0, 1):
        endpoints = tuple(
            EndpointStats(ModelEndpoint("GET", f"/e{i}"), count=n, errors=e, latency=LatencyDistribution(sk))
            for i, pair in enumerate(data)
            for n, e, sk in (pair[side],)
        )
        # A concurrent pair: both sides under the same offered load, so throughput is judged too (the per-side
        # Poisson counts below are noisier than one schedule sent to both, which makes the rps test's job harder).
        sides.append(Measurement(Source(SourceKind.SYNTHETIC, "judge_accuracy"), window, endpoints, pair_id="sim"))
    return sides[0], sides[1]


def judge_run(data: list[tuple[tuple[int, int, LatencySketch], ...]]) -> Judged:
    """Judge one run with the default policy (timed) and at each of ``SENSITIVITY_ALPHAS``."""
    base, cand = measurements(data)
    t0 = time.perf_counter()
    result = compare(base, cand, POLICY)
    elapsed = time.perf_counter() - t0
    by_key = {r.endpoint.key: r for r in result.endpoints}
    ordered = [by_key[f"GET /e{i}"] for i in range(len(data))]
    failed = [{m.metric for m in r.metrics if m.verdict is Verdict.FAIL} for r in ordered]
    failed_at = {}
    for alpha in SENSITIVITY_ALPHAS:
        other = {
            r.endpoint.key: r.verdict
            for r in compare(
                base, cand, replace(POLICY, alpha=alpha, marginal_alpha=max(alpha, POLICY.marginal_alpha))
            ).endpoints
        }
        failed_at[alpha] = [other[f"GET /e{i}"] is Verdict.FAIL for i in range(len(data))]
    return Judged(failed, [r.verdict for r in ordered], result.verdict, failed_at, result.tests, elapsed)


def background(rng: np.random.Generator, i: int, lo: int = 200, hi: int = 20_000) -> Endpoint:
    n = round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    rate = 0.0 if rng.random() < 0.5 else math.exp(rng.uniform(math.log(1e-4), math.log(1e-2)))
    return Endpoint(FAMILIES[i % 3], n, math.exp(rng.uniform(math.log(0.5), math.log(4))), rate)


def run_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


# --- reports -------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts gathered over the runs, for the tables."""

    times: list[float] = field(default_factory=list)
    family_sizes: list[int] = field(default_factory=list)
    aa_false_at: dict[float, int] = field(default_factory=dict)
    aa_runs: int = 0
    #: (scenario, distribution, n, alpha) -> planted endpoints that failed
    caught_at: dict[tuple[str, str, int, float], int] = field(default_factory=dict)
    trials: int = 0

    def add(self, judged: Judged) -> None:
        self.times.append(judged.seconds)
        self.family_sizes.append(judged.family_size)


def aa(runs: int, seed: int, tally: Tally) -> None:
    false_runs = marginal_runs = flagged = 0
    by_metric: dict[str, int] = {}
    run_verdicts = dict.fromkeys(Verdict, 0)
    endpoint_verdicts = dict.fromkeys(Verdict, 0)
    for r in range(runs):
        rng = run_rng(seed, 0, r)
        eps = [background(rng, i) for i in range(ENDPOINTS)]
        judged = judge_run([simulate(ep, rng) for ep in eps])
        tally.add(judged)
        false_runs += any(judged.failed)
        marginal_runs += any(judged.marginal)
        run_verdicts[judged.run] += 1
        for v in judged.verdicts:
            endpoint_verdicts[v] += 1
        flagged += sum(bool(f) for f in judged.failed)
        for f in judged.failed:
            for metric in f:
                by_metric[metric] = by_metric.get(metric, 0) + 1
        for alpha, flags in judged.failed_at.items():
            tally.aa_false_at[alpha] = tally.aa_false_at.get(alpha, 0) + any(flags)
    tally.aa_false_at[POLICY.alpha] = false_runs
    tally.aa_runs = runs
    lo, hi = clopper_pearson(false_runs, runs)
    print(f"A/A: {runs} runs x {ENDPOINTS} endpoints (n 200-20,000 per side, three distributions)")
    print(
        f"  run-level false alarms: {false_runs}/{runs} = {false_runs / runs:.2%} "
        f"(95% CI {lo:.2%}-{hi:.2%}; target <= 1%)"
    )
    print(f"  endpoints falsely failed: {flagged}/{runs * ENDPOINTS}; by metric: {by_metric or 'none'}")
    print(f"  runs with a marginal endpoint: {marginal_runs}/{runs}")
    print("  run verdicts: " + ", ".join(f"{v.value} {c}" for v, c in run_verdicts.items()))
    print("  endpoint verdicts: " + ", ".join(f"{v.value} {c}" for v, c in endpoint_verdicts.items()))
    print(f"  tests per run in the Holm family: {min(tally.family_sizes)}-{max(tally.family_sizes)}")


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    lo = 0.0 if k == 0 else float(st.beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(st.beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def scenarios() -> list[tuple[str, Family, str, float]]:
    out = [
        (f"{kind} +{size:.0%}", fam, kind, size)
        for kind in ("mean", "p95", "spread")
        for fam in FAMILIES
        for size in SIZES
    ]
    return out + [(f"errors {rate:.1%} over 0", FAMILIES[0], "errors", rate) for rate in ERROR_RATES]


def ab(runs: int, seed: int, tally: Tally) -> None:
    header = f"{'scenario':<22}{'distribution':<11}" + "".join(f"{'n=' + format(n, ','):>9}" for n in PLANTED_SIZES)
    print(f"\nA/B power: share of planted endpoints that fail ({runs * PLANTED_PER_SIZE} per cell)")
    print(header + "   caught by (n >= 2,000)          unchanged endpoints failed")
    tally.trials = runs * PLANTED_PER_SIZE
    for s_index, (label, fam, kind, size) in enumerate(scenarios()):
        caught = dict.fromkeys(PLANTED_SIZES, 0)
        via: dict[str, int] = {}
        false_eps = 0
        for r in range(runs):
            rng = run_rng(seed, 1, s_index, r)
            planted = [
                Endpoint(fam, n, math.exp(rng.uniform(math.log(0.5), math.log(4))), 0.0, kind, size)
                for n in PLANTED_SIZES
                for _ in range(PLANTED_PER_SIZE)
            ]
            eps = planted + [background(rng, i) for i in range(ENDPOINTS - len(planted))]
            judged = judge_run([simulate(ep, rng) for ep in eps])
            tally.add(judged)
            for j, (ep, f) in enumerate(zip(eps, judged.failed, strict=True)):
                if ep.kind == "none":
                    false_eps += bool(f)
                    continue
                caught[ep.n] += bool(f)
                key = (label, fam.name, ep.n)
                tally.caught_at[(*key, POLICY.alpha)] = tally.caught_at.get((*key, POLICY.alpha), 0) + bool(f)
                for alpha, flags in judged.failed_at.items():
                    tally.caught_at[(*key, alpha)] = tally.caught_at.get((*key, alpha), 0) + flags[j]
                if f and ep.n >= 2_000:
                    for metric in f:
                        via[metric] = via.get(metric, 0) + 1
        top = sorted(via.items(), key=lambda kv: -kv[1])[:3]
        big = sum(caught[n] for n in PLANTED_SIZES if n >= 2_000) or 1
        via_text = ", ".join(f"{m} {c / big:.0%}" for m, c in top)
        cells = "".join(f"{caught[n] / tally.trials:>9.0%}" for n in PLANTED_SIZES)
        dist = fam.name if kind != "errors" else "any"
        print(f"{label:<22}{dist:<11}{cells}   {via_text:<32} {false_eps}/{runs * (ENDPOINTS - 25)}")


SMALL_SIZES = (100, 200, 300)
SMALL_FACTORS = (2.0, 4.0, 8.0)


def small_samples(runs: int, seed: int) -> None:
    """Few requests per side: A/A false alarms with every endpoint at n 20-300, and how often a x2-x8 tail change
    (the p95-only map: p95 x k, median unchanged) or a x2-x8 shift of everything is failed on 100-300 requests.
    'not green' counts the planted endpoints that failed, were marginal, *or* kept the run from passing
    (inconclusive, looks worse): what the old fixed cut-offs (p95 needed 200 samples) let through as a pass."""
    print(f"\nSmall samples: A/A with every endpoint at n 20-300 per side ({runs} runs x {ENDPOINTS} endpoints)")
    false_runs = 0
    verdicts = dict.fromkeys(Verdict, 0)
    for r in range(runs):
        rng = run_rng(seed, 3, r)
        judged = judge_run([simulate(background(rng, i, 20, 300), rng) for i in range(ENDPOINTS)])
        false_runs += any(judged.failed)
        verdicts[judged.run] += 1
    lo, hi = clopper_pearson(false_runs, runs)
    print(f"  run-level false alarms: {false_runs}/{runs} = {false_runs / runs:.2%} (95% CI {lo:.2%}-{hi:.2%})")
    print("  run verdicts: " + ", ".join(f"{v.value} {c}" for v, c in verdicts.items()))
    trials = runs * PLANTED_PER_SIZE
    print(f"  planted on {PLANTED_PER_SIZE} endpoints per n ({trials} per cell): failed / not green")
    print(f"  {'change':<14}{'distribution':<11}" + "".join(f"{'n=' + str(n):>14}" for n in SMALL_SIZES))
    for k_index, (kind, factor) in enumerate((kind, f) for kind in ("p95", "mean") for f in SMALL_FACTORS):
        for f_index, fam in enumerate(FAMILIES):
            failed = dict.fromkeys(SMALL_SIZES, 0)
            not_green = dict.fromkeys(SMALL_SIZES, 0)
            for r in range(runs):
                rng = run_rng(seed, 4, k_index, f_index, r)
                planted = [
                    Endpoint(fam, n, math.exp(rng.uniform(math.log(0.5), math.log(4))), 0.0, kind, factor - 1)
                    for n in SMALL_SIZES
                    for _ in range(PLANTED_PER_SIZE)
                ]
                eps = planted + [background(rng, i) for i in range(ENDPOINTS - len(planted))]
                judged = judge_run([simulate(ep, rng) for ep in eps])
                for ep, f, v in zip(eps, judged.failed, judged.verdicts, strict=True):
                    if ep.kind == "none":
                        continue
                    failed[ep.n] += bool(f)
                    not_green[ep.n] += (
                        bool(f)
                        or v is Verdict.MARGINAL
                        or (v is Verdict.INCONCLUSIVE and judged.run is not Verdict.PASS)
                    )
            label = f"{'p95' if kind == 'p95' else 'all'} x{factor:g}"
            cells = "".join(f"{failed[n] / trials:>7.0%} /{not_green[n] / trials:>5.0%}" for n in SMALL_SIZES)
            print(f"  {label:<14}{fam.name:<11}{cells}")


def sensitivity(tally: Tally) -> None:
    """What a looser run-level alpha buys: A/A false alarms and power at n = 2,000 for the +10% changes."""
    alphas = (POLICY.alpha, *SENSITIVITY_ALPHAS)
    print("\nAlpha sensitivity (same data): run-level false alarms, and power at n = 2,000 for +10% changes")
    print(f"{'':<33}" + "".join(f"{'alpha ' + format(a, 'g'):>12}" for a in alphas))
    print(
        f"{'A/A run-level false alarms':<33}"
        + "".join(f"{tally.aa_false_at[a] / tally.aa_runs:>12.1%}" for a in alphas)
    )
    for label, fam, kind, size in scenarios():
        if size != (0.01 if kind == "errors" else 0.10):
            continue
        cells = "".join(f"{tally.caught_at[(label, fam.name, 2_000, a)] / tally.trials:>12.0%}" for a in alphas)
        print(f"{label + ' ' + fam.name:<33}{cells}")


def oracle(family_size: int) -> None:
    """The z and power of a perfect p95 comparison (true density, no binning) for the p95-only change."""
    z_holm = float(special.ndtri(1 - POLICY.alpha / family_size))
    print(
        f"\nCeiling for 'p95 only': a perfect p95 comparison, first Holm threshold z = {z_holm:.2f} "
        f"(alpha {POLICY.alpha} over ~{family_size} tests); cells: ideal z / its power"
    )
    print(f"{'change':<12}{'distribution':<11}" + "".join(f"{'n=' + format(n, ','):>14}" for n in PLANTED_SIZES))
    q = 0.95
    for size in SIZES:
        for fam in FAMILIES:
            x = fam.quantile(q)
            g = x * fam.pdf(x)  # density of ln X at ln Q95
            cells = ""
            for n in PLANTED_SIZES:
                z = math.log(1 + size) / (math.sqrt(2 * q * (1 - q) / n) / g)
                cells += f"{z:>7.1f} /{special.ndtr(z - z_holm):>5.0%}"
            print(f"{'p95 +' + format(size, '.0%'):<12}{fam.name:<11}{cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--aa-runs", type=int, default=240)
    parser.add_argument("--ab-runs", type=int, default=30)
    parser.add_argument("--small-runs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # tables show as they are done, also when piped
    t0 = time.perf_counter()
    print(
        f"judge: compare() with the default policy: Holm over every test of a run, alpha = {POLICY.alpha}; "
        "tolerances (relative/absolute): "
        + ", ".join(f"{m} {r.tolerance:.0%}/{r.min_delta:g}" for m, r in DEFAULT_RULES.items())
    )
    tally = Tally()
    aa(args.aa_runs, args.seed, tally)
    ab(args.ab_runs, args.seed, tally)
    small_samples(args.small_runs, args.seed)
    sensitivity(tally)
    oracle(family_size=round(float(np.mean(tally.family_sizes))))
    per_run = float(np.mean(tally.times))
    print(
        f"\njudging time: {per_run * 1000:.0f} ms per run of {ENDPOINTS} endpoints (mean n ~ 5,000 per side), "
        f"{per_run / ENDPOINTS * 1000:.1f} ms per endpoint"
    )
    rng = run_rng(args.seed, 2)
    big = [simulate(background(rng, i), rng) for i in range(1000)]
    print(f"one run of 1,000 endpoints (n 200-20,000 per side): {judge_run(big).seconds:.2f} s")
    print(f"benchmark wall time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Judgement rules: per metric a direction, a practical tolerance, an absolute floor and a minimum sample count;
per run the false-alarm rate; per endpoint (by name pattern) overrides and critical endpoints.

A metric is worse only when it moved the bad way by more than ``tolerance`` (relative) *and* more than
``min_delta`` (absolute, in the metric's unit) — a 10% change of a 2 ms endpoint is noise, not a
regression — *and* the change is statistically significant at the run's ``alpha`` after adjusting for
every test of the run (``parity.judge.stats``); that can happen at any sample size. ``min_samples`` is what a
metric needs on each side to *pass* on its point estimate (with fewer, it passes only when its interval
shows it within tolerance, else it is inconclusive). For percentiles the default minimum keeps at least
``TAIL_SAMPLES`` requests beyond the percentile.

The default tolerances are those ``benchmarks/judge_accuracy.py`` measures (run-level false alarms and
power): tight enough to catch a 10% regression with a few thousand requests per endpoint. An
environment noisier than that needs wider ones: measure its noise with ``parity calibrate``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from parity.bounds import is_finite_number
from parity.judge.result import Direction
from parity.judge.stats import ALPHA  # the run-level false-alarm rate (family-wise), one definition

__all__ = [
    "ALPHA",
    "DEFAULT_MAX_GENERATOR_LAG_MS",
    "DEFAULT_RULES",
    "MARGINAL_ALPHA",
    "METRICS",
    "TAIL_SAMPLES",
    "EndpointPolicy",
    "EndpointRules",
    "FailOn",
    "Gate",
    "LatencyBasis",
    "MetricRule",
    "MetricSpec",
    "Policy",
    "policy_from_mapping",
]

#: Run-level rate at which "beyond tolerance, not significant" is reported as marginal rather than as
#: within noise (inconclusive for that metric).
MARGINAL_ALPHA = 0.10

#: Requests that must lie beyond a percentile before it is judged (p95 → 200 samples, p99 → 1000).
TAIL_SAMPLES = 10


class LatencyBasis(Enum):
    """Which latency the latency metrics judge.

    ``auto``: the latency from the planned send time when both sides recorded it (open-model replays:
    immune to coordinated omission), else the latency as measured. ``measured``: always as measured.
    ``intended``: only the planned-send-time latency; endpoints without it on both sides get no latency
    verdict.
    """

    AUTO = "auto"
    MEASURED = "measured"
    INTENDED = "intended"


class FailOn(Enum):
    """Which failed endpoints fail the run. ``any``: every failure. ``critical``: only endpoints named
    critical in the config; failures elsewhere make the run marginal."""

    ANY = "any"
    CRITICAL = "critical"


class Gate(Enum):
    """What a metric beyond tolerance does to the verdict."""

    FAIL = "fail"  # beyond tolerance → fail
    WARN = "warn"  # beyond tolerance → marginal (for noisy metrics such as max)
    OFF = "off"  # reported, not judged


@dataclass(frozen=True)
class MetricSpec:
    """A judged metric: its name in parity.json, unit, direction and, for percentiles, the quantile."""

    name: str
    unit: str
    direction: Direction
    quantile: float | None = None
    label: str = ""


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("shift", "ms", Direction.LOWER_IS_BETTER, label="typical latency (rank shift)"),
    MetricSpec("avg_ms", "ms", Direction.LOWER_IS_BETTER, label="avg"),
    MetricSpec("p50_ms", "ms", Direction.LOWER_IS_BETTER, 0.50, "p50"),
    MetricSpec("p95_ms", "ms", Direction.LOWER_IS_BETTER, 0.95, "p95"),
    MetricSpec("p99_ms", "ms", Direction.LOWER_IS_BETTER, 0.99, "p99"),
    MetricSpec("max_ms", "ms", Direction.LOWER_IS_BETTER, 1.0, "max"),
    MetricSpec("error_rate", "ratio", Direction.LOWER_IS_BETTER, label="error rate"),
    MetricSpec("rps", "req/s", Direction.HIGHER_IS_BETTER, label="throughput"),
)


@dataclass(frozen=True)
class MetricRule:
    """How one metric is judged (see module docstring)."""

    tolerance: float
    min_delta: float
    min_samples: int
    gate: Gate = Gate.FAIL


DEFAULT_RULES: Mapping[str, MetricRule] = {
    "shift": MetricRule(tolerance=0.05, min_delta=1.0, min_samples=30),
    "avg_ms": MetricRule(tolerance=0.05, min_delta=1.0, min_samples=30),
    "p50_ms": MetricRule(tolerance=0.05, min_delta=1.0, min_samples=30),
    "p95_ms": MetricRule(tolerance=0.05, min_delta=2.0, min_samples=round(TAIL_SAMPLES / 0.05)),
    "p99_ms": MetricRule(tolerance=0.10, min_delta=5.0, min_samples=round(TAIL_SAMPLES / 0.01)),
    "max_ms": MetricRule(tolerance=1.00, min_delta=100.0, min_samples=30, gate=Gate.WARN),
    "error_rate": MetricRule(tolerance=0.50, min_delta=0.001, min_samples=30),
    "rps": MetricRule(tolerance=0.10, min_delta=0.0, min_samples=30),
}


@dataclass(frozen=True)
class EndpointRules:
    """Settings for the endpoints whose key (``"GET /users/:id"``) matches ``pattern`` (an exact key or a
    shell-style glob, ``"POST /payroll/*"``). ``critical``/``slo_p95_ms`` None: unchanged. ``metrics``: per
    metric, the rule keys to override (``{"p95_ms": {"tolerance": 0.1}}``)."""

    pattern: str
    critical: bool | None = None
    slo_p95_ms: float | None = None
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def matches(self, key: str) -> bool:
        return key == self.pattern or fnmatch.fnmatchcase(key, self.pattern)


@dataclass(frozen=True)
class EndpointPolicy:
    """The settings that apply to one endpoint once every matching ``EndpointRules`` is applied."""

    rules: Mapping[str, MetricRule]
    critical: bool
    slo_p95_ms: float | None

    def rule(self, metric: str) -> MetricRule:
        return self.rules[metric]


#: Default ``Policy.max_generator_lag_ms`` (ms): the replay's "late send" threshold. Measured on a shared 2-core
#: machine replaying 480 req/s (``parity ab``, 240 req/s per side), longest lag per 1 s interval: 1-15 ms with
#: one process at load average 7-33 from other processes (also niced to 15 beside 3 CPU hogs: the OS favours a
#: process that mostly sleeps), 6-59 ms with ``--processes 2``, 5-87 ms beside 16 CPU hogs; an event loop held
#: 300 ms at a time read 290-320 ms. A threshold near the latency tolerance (1-5 ms) would trip on healthy runs.
DEFAULT_MAX_GENERATOR_LAG_MS = 100.0


@dataclass(frozen=True)
class Policy:
    """All judgement settings; every field has a documented default.

    ``min_samples``: requests an endpoint needs on each side to pass (a clear regression fails with fewer).
    ``max_inconclusive_share``: share of baseline traffic that may sit on unjudged endpoints before the
    whole run is inconclusive. ``latency``: which latency the latency metrics judge (``LatencyBasis``).
    ``max_generator_saturated_share``: share of a replay's sampled intervals in which its load generator
    may be impaired — CPU-saturated, or lagging more than ``max_generator_lag_ms`` behind its own schedule —
    before its latency is no longer judged (each kind of impairment is counted on its own).
    ``max_generator_lag_ms``: the generator's own scheduling lag (ms; per interval, the longest a timer of its
    worst process woke after it was due) above which an interval counts as lagging. A process the machine does
    not give the CPU lags whatever its own CPU use, and every response arriving meanwhile waits too: a CPU-starved
    generator measured 1-5 s on both sides of an A/B run and hid a +30 ms regression. The default sits far above
    what a healthy generator shows (see ``DEFAULT_MAX_GENERATOR_LAG_MS``).
    ``alpha``: run-level false-alarm rate (Holm over every test of the run). ``marginal_alpha``: a change
    beyond tolerance whose adjusted p-value is above ``alpha`` but at most this is marginal; above it, the
    metric is within noise (inconclusive). ``fail_on``: which failures fail the run (``FailOn``).
    ``slo_p95_ms``: the p95 (ms) above which a load stage counts as saturated (None: only the growth of
    p95 with load finds the knee). ``rules``: per-metric rules (missing metrics use ``DEFAULT_RULES``).
    ``endpoints``: per-endpoint overrides and critical endpoints, applied in order (later wins).
    """

    min_samples: int = 30
    max_inconclusive_share: float = 0.05
    latency: LatencyBasis = LatencyBasis.AUTO
    max_generator_saturated_share: float = 0.05
    max_generator_lag_ms: float = DEFAULT_MAX_GENERATOR_LAG_MS
    alpha: float = ALPHA
    marginal_alpha: float = MARGINAL_ALPHA
    fail_on: FailOn = FailOn.ANY
    slo_p95_ms: float | None = None
    rules: Mapping[str, MetricRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    endpoints: tuple[EndpointRules, ...] = ()

    def rule(self, metric: str) -> MetricRule:
        return self.rules.get(metric, DEFAULT_RULES[metric])

    def for_endpoint(self, key: str) -> EndpointPolicy:
        """The rules, criticality and SLO of the endpoint ``key`` (run-level settings, then every matching
        ``endpoints`` entry in order)."""
        rules = {m.name: self.rule(m.name) for m in METRICS}
        critical, slo = False, self.slo_p95_ms
        for entry in self.endpoints:
            if not entry.matches(key):
                continue
            critical = critical if entry.critical is None else entry.critical
            slo = slo if entry.slo_p95_ms is None else entry.slo_p95_ms
            for metric, overrides in entry.metrics.items():
                rules[metric] = _apply_rule_keys(rules[metric], overrides)
        return EndpointPolicy(rules=rules, critical=critical, slo_p95_ms=slo)


def _number(value: Any, where: str, *, minimum: float = 0.0, integer: bool = False) -> Any:
    """``value`` when it is a finite number (an integer with ``integer``) >= ``minimum``; ValueError naming
    ``where`` otherwise. TOML allows ``nan`` and ``inf``: a NaN tolerance would make every change pass."""
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not is_finite_number(value) or not value >= minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{where}: expected {kind} >= {minimum:g}, got {value!r}")
    return value


def _share(value: Any, where: str) -> float:
    share = _number(value, where)
    if share > 1:
        raise ValueError(f"{where}: must be between 0 and 1, got {share}")
    return float(share)


_SHARES = ("max_inconclusive_share", "max_generator_saturated_share")
_PROBABILITIES = ("alpha", "marginal_alpha")


def _probability(value: Any, where: str) -> float:
    p = _share(value, where)
    if p == 0:
        raise ValueError(f"{where}: must be above 0, got {value!r}")
    return p


def policy_from_mapping(data: Mapping[str, Any], where: str = "compare") -> Policy:
    """Build a Policy from the ``[compare]`` table of parity.toml; unknown keys raise ValueError naming them.

    Example::

        [compare]
        min_samples = 30
        max_inconclusive_share = 0.05
        latency = "auto"     # auto | measured | intended
        max_generator_saturated_share = 0.05
        max_generator_lag_ms = 100  # ms: an interval whose generator lagged more is impaired
        alpha = 0.01         # run-level false-alarm rate
        marginal_alpha = 0.1
        fail_on = "any"      # any | critical
        slo_p95_ms = 500     # saturation knee: stages with p95 above this are saturated
        [compare.metrics.p95_ms]
        tolerance = 0.05     # 5 %
        min_delta = 2.0      # ms
        min_samples = 200
        gate = "fail"        # fail | warn | off
        [compare.endpoints."POST /payroll/*"]
        critical = true
        slo_p95_ms = 800
        [compare.endpoints."POST /payroll/*".metrics.p95_ms]
        tolerance = 0.10
    """
    known = {
        "alpha",
        "endpoints",
        "fail_on",
        "latency",
        "marginal_alpha",
        "max_generator_lag_ms",
        "max_generator_saturated_share",
        "max_inconclusive_share",
        "metrics",
        "min_samples",
        "slo_p95_ms",
    }
    for key in data:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    policy = Policy()
    if "min_samples" in data:
        policy = replace(policy, min_samples=_number(data["min_samples"], f"{where}.min_samples", integer=True))
    shares: dict[str, Any] = {k: _share(data[k], f"{where}.{k}") for k in _SHARES if k in data}
    shares |= {k: _probability(data[k], f"{where}.{k}") for k in _PROBABILITIES if k in data}
    policy = replace(policy, **shares)
    if policy.marginal_alpha < policy.alpha:
        raise ValueError(
            f"{where}.marginal_alpha: must be at least alpha ({policy.alpha:g}), got {policy.marginal_alpha:g}"
        )
    if "max_generator_lag_ms" in data:
        lag = float(_number(data["max_generator_lag_ms"], f"{where}.max_generator_lag_ms"))
        policy = replace(policy, max_generator_lag_ms=lag)
    if "slo_p95_ms" in data:
        policy = replace(policy, slo_p95_ms=float(_number(data["slo_p95_ms"], f"{where}.slo_p95_ms")))
    if "latency" in data:
        policy = replace(policy, latency=_enum(LatencyBasis, data["latency"], f"{where}.latency"))
    if "fail_on" in data:
        policy = replace(policy, fail_on=_enum(FailOn, data["fail_on"], f"{where}.fail_on"))
    rules = dict(DEFAULT_RULES)
    for name, keys in _metric_tables(data.get("metrics", {}), f"{where}.metrics").items():
        rules[name] = _apply_rule_keys(rules[name], keys)
    endpoints = data.get("endpoints", {})
    if not isinstance(endpoints, Mapping):
        raise ValueError(f"{where}.endpoints: expected a table of endpoint patterns")
    entries = tuple(
        _endpoint_rules(pattern, table, f"{where}.endpoints.{pattern!r}") for pattern, table in endpoints.items()
    )
    return replace(policy, rules=rules, endpoints=entries)


def _enum(kind: type[Any], value: Any, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        values = [str(member.value) for member in kind]
        choices = f"{', '.join(values[:-1])} or {values[-1]}"
        raise ValueError(f"{where}: expected {choices}, got {value!r}") from None


def _metric_tables(metrics: Any, at: str) -> dict[str, dict[str, Any]]:
    """The validated rule keys of every ``[...metrics.NAME]`` table under ``at``."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{at}: expected a table")
    names = {m.name for m in METRICS}
    out = {}
    for name, table in metrics.items():
        if name not in names:
            raise ValueError(f"{at}.{name}: unknown metric (known: {', '.join(m.name for m in METRICS)})")
        out[name] = _rule_keys(table, f"{at}.{name}")
    return out


def _endpoint_rules(pattern: str, table: Any, at: str) -> EndpointRules:
    if not isinstance(table, Mapping):
        raise ValueError(f"{at}: expected a table")
    known = {"critical", "metrics", "slo_p95_ms"}
    for key in table:
        if key not in known:
            raise ValueError(f"{at}.{key}: unknown key (known: {', '.join(sorted(known))})")
    critical = table.get("critical")
    if critical is not None and not isinstance(critical, bool):
        raise ValueError(f"{at}.critical: expected true or false, got {critical!r}")
    slo = table.get("slo_p95_ms")
    return EndpointRules(
        pattern=pattern,
        critical=critical,
        slo_p95_ms=None if slo is None else float(_number(slo, f"{at}.slo_p95_ms")),
        metrics=_metric_tables(table.get("metrics", {}), f"{at}.metrics"),
    )


def _rule_keys(table: Any, at: str) -> dict[str, Any]:
    """The keys of one ``[...metrics.NAME]`` table, validated (``gate`` as a ``Gate``)."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{at}: expected a table")
    rule_keys = {f.name for f in fields(MetricRule)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in rule_keys:
            raise ValueError(f"{at}.{key}: unknown key (known: {', '.join(sorted(rule_keys))})")
        if key == "gate":
            out[key] = _enum(Gate, value, f"{at}.gate")
        else:
            out[key] = _number(value, f"{at}.{key}", integer=key == "min_samples")
    return out


def _apply_rule_keys(rule: MetricRule, keys: Mapping[str, Any]) -> MetricRule:
    return replace(rule, **keys)

"""Judgement rules: per metric a direction, a practical tolerance, an absolute floor and a minimum sample count.

A metric is worse only when it moved the bad way by more than ``tolerance`` (relative) *and* more than
``min_delta`` (absolute, in the metric's unit) — a 20% change of a 2 ms endpoint is noise, not a
regression. With fewer than ``min_samples`` on either side the metric is not judged (inconclusive).
For percentiles the default minimum keeps at least ``TAIL_SAMPLES`` requests beyond the percentile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from parity.judge.result import Direction

__all__ = [
    "DEFAULT_RULES",
    "METRICS",
    "TAIL_SAMPLES",
    "Gate",
    "LatencyBasis",
    "MetricRule",
    "MetricSpec",
    "Policy",
    "policy_from_mapping",
]

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
    "avg_ms": MetricRule(tolerance=0.15, min_delta=3.0, min_samples=30),
    "p50_ms": MetricRule(tolerance=0.15, min_delta=3.0, min_samples=30),
    "p95_ms": MetricRule(tolerance=0.20, min_delta=5.0, min_samples=round(TAIL_SAMPLES / 0.05)),
    "p99_ms": MetricRule(tolerance=0.30, min_delta=10.0, min_samples=round(TAIL_SAMPLES / 0.01)),
    "max_ms": MetricRule(tolerance=1.00, min_delta=100.0, min_samples=30, gate=Gate.WARN),
    "error_rate": MetricRule(tolerance=0.50, min_delta=0.01, min_samples=100),
    "rps": MetricRule(tolerance=0.10, min_delta=0.0, min_samples=30),
}


@dataclass(frozen=True)
class Policy:
    """All judgement settings; every field has a documented default.

    ``min_samples``: requests an endpoint needs on each side to be judged at all.
    ``max_inconclusive_share``: share of baseline traffic that may sit on unjudged endpoints before the
    whole run is inconclusive. ``latency``: which latency the latency metrics judge (``LatencyBasis``).
    ``max_generator_saturated_share``: share of a replay's sampled intervals in which its load generator
    may be CPU-saturated before latency regressions on that run are no longer blamed on the target.
    ``rules``: per-metric rules (missing metrics use ``DEFAULT_RULES``).
    """

    min_samples: int = 30
    max_inconclusive_share: float = 0.05
    latency: LatencyBasis = LatencyBasis.AUTO
    max_generator_saturated_share: float = 0.05
    rules: Mapping[str, MetricRule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def rule(self, metric: str) -> MetricRule:
        return self.rules.get(metric, DEFAULT_RULES[metric])


def _number(value: Any, where: str, *, minimum: float = 0.0, integer: bool = False) -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{where}: expected {kind} >= {minimum:g}, got {value!r}")
    return value


def _share(value: Any, where: str) -> float:
    share = _number(value, where)
    if share > 1:
        raise ValueError(f"{where}: must be between 0 and 1, got {share}")
    return float(share)


def policy_from_mapping(data: Mapping[str, Any], where: str = "compare") -> Policy:
    """Build a Policy from the ``[compare]`` table of parity.toml; unknown keys raise ValueError naming them.

    Example::

        [compare]
        min_samples = 30
        max_inconclusive_share = 0.05
        latency = "auto"     # auto | measured | intended
        max_generator_saturated_share = 0.05
        [compare.metrics.p95_ms]
        tolerance = 0.2      # 20 %
        min_delta = 5.0      # ms
        min_samples = 200
        gate = "fail"        # fail | warn | off
    """
    known = {"min_samples", "max_inconclusive_share", "max_generator_saturated_share", "latency", "metrics"}
    for key in data:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    policy = Policy()
    if "min_samples" in data:
        policy = replace(policy, min_samples=_number(data["min_samples"], f"{where}.min_samples", integer=True))
    if "max_inconclusive_share" in data:
        policy = replace(
            policy, max_inconclusive_share=_share(data["max_inconclusive_share"], f"{where}.max_inconclusive_share")
        )
    if "max_generator_saturated_share" in data:
        share = _share(data["max_generator_saturated_share"], f"{where}.max_generator_saturated_share")
        policy = replace(policy, max_generator_saturated_share=share)
    if "latency" in data:
        try:
            policy = replace(policy, latency=LatencyBasis(data["latency"]))
        except ValueError:
            raise ValueError(f"{where}.latency: expected auto, measured or intended, got {data['latency']!r}") from None
    metrics = data.get("metrics", {})
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{where}.metrics: expected a table")
    rules = dict(DEFAULT_RULES)
    names = {m.name for m in METRICS}
    for name, table in metrics.items():
        if name not in names:
            raise ValueError(f"{where}.metrics.{name}: unknown metric (known: {', '.join(m.name for m in METRICS)})")
        rules[name] = _rule_from_mapping(rules[name], table, f"{where}.metrics.{name}")
    return replace(policy, rules=rules)


def _rule_from_mapping(rule: MetricRule, table: Any, at: str) -> MetricRule:
    """``rule`` with the keys of one ``[compare.metrics.NAME]`` table applied."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{at}: expected a table")
    rule_keys = {f.name for f in fields(MetricRule)}
    for key, value in table.items():
        if key not in rule_keys:
            raise ValueError(f"{at}.{key}: unknown key (known: {', '.join(sorted(rule_keys))})")
        if key == "gate":
            try:
                rule = replace(rule, gate=Gate(value))
            except ValueError:
                raise ValueError(f"{at}.gate: expected fail, warn or off, got {value!r}") from None
        else:
            rule = replace(rule, **{key: _number(value, f"{at}.{key}", integer=key == "min_samples")})
    return rule

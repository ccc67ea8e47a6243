"""Load shapes of a migration: what rate to send over the run. Pure: ReplayPlan in, ShapedPlan out.

- ``replay``: the baseline's window compressed into the run, at ``rate_scale`` × its rate (default).
- ``steady``: a constant ``rps`` with the baseline's overall endpoint mix.
- ``ramp``: staged percentages of the baseline's *peak* total rate (e.g. 1, 5, 10, 50, 100 %), each for
  ``step_s`` seconds, with the overall mix — a cutover's staged ramp.
- ``burst``: the replay with its rate multiplied by ``multiplier`` from ``start_s`` for ``duration_s``
  seconds of the run — a payroll-day spike on top of normal traffic.

A shaped plan's rates are final (requests/s of run time, no further scaling): its grid of cells is
spread evenly over ``run_time_s``, which is what ``iter_arrivals`` does with any plan. Stages name spans of
the run (seconds from its start) so results can be read against load.

``oversample`` raises rare endpoints of a shaped plan to a minimum mean rate, so that each gets enough requests
to be judged; the factor is kept per endpoint (``ShapedPlan.load_factors``) and recorded in the Measurement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import numpy.typing as npt

from parity.replay.plan import ReplayPlan

__all__ = [
    "MAX_BURST_CELL_S",
    "ShapeKind",
    "ShapeSettings",
    "ShapedPlan",
    "Stage",
    "burst",
    "oversample",
    "ramp",
    "replay",
    "shape",
    "steady",
]

#: Longest cell of a burst-shaped grid, seconds: finer grids put the burst's edges where they belong.
MAX_BURST_CELL_S = 0.5


class ShapeKind(Enum):
    REPLAY = "replay"
    STEADY = "steady"
    RAMP = "ramp"
    BURST = "burst"


@dataclass(frozen=True)
class Stage:
    """A span of the run, seconds from its start; ``target_rps`` is the planned mean total rate in it."""

    name: str
    start_s: float
    end_s: float
    target_rps: float


@dataclass(frozen=True)
class ShapedPlan:
    """Rates (requests/s of run time) to play over ``run_time_s``, its stages, and the load relative to
    the baseline's mean rate (``rate_scale``, for throughput comparisons).

    ``load_factors`` maps the key of each oversampled endpoint (see :func:`oversample`) to the factor its rates
    were multiplied by (> 1); ``rate_scale`` leaves them out: it is the load of every other endpoint."""

    plan: ReplayPlan
    run_time_s: float
    stages: tuple[Stage, ...]
    rate_scale: float
    load_factors: Mapping[str, float] = field(default_factory=dict)


def _mix(plan: ReplayPlan) -> npt.NDArray[np.float64]:
    """Each endpoint's share of all the baseline's planned requests."""
    totals = plan.rates.sum(axis=1)
    mix: npt.NDArray[np.float64] = totals / totals.sum()
    return mix


def _shaped(plan: ReplayPlan, rates: npt.NDArray[np.float64], run_time_s: float, stages: list[Stage]) -> ShapedPlan:
    cell_s = run_time_s / rates.shape[1]
    shaped = replace(plan, rates=rates, interval_s=cell_s)
    base = plan.mean_rate()
    return ShapedPlan(shaped, run_time_s, tuple(stages), shaped.mean_rate() / base if base else 1.0)


def replay(plan: ReplayPlan, run_time_s: float, rate_scale: float = 1.0) -> ShapedPlan:
    """The baseline window compressed into the run at ``rate_scale``."""
    rates = plan.rates * rate_scale
    return _shaped(plan, rates, run_time_s, [Stage("replay", 0.0, run_time_s, float(rates.sum(axis=0).mean()))])


def steady(plan: ReplayPlan, run_time_s: float, rps: float) -> ShapedPlan:
    """A constant ``rps`` total with the baseline's overall mix."""
    if not rps > 0:
        raise ValueError(f"steady rate must be > 0 req/s, got {rps}")
    rates = (_mix(plan) * rps)[:, None]
    return _shaped(plan, rates, run_time_s, [Stage(f"steady {rps:g} rps", 0.0, run_time_s, rps)])


def ramp(plan: ReplayPlan, steps_percent: tuple[float, ...], step_s: float) -> ShapedPlan:
    """Each step at that percentage of the baseline's peak total rate, ``step_s`` seconds each."""
    if not steps_percent or any(not p > 0 for p in steps_percent):
        raise ValueError(f"ramp steps must be percentages > 0, got {list(steps_percent)}")
    if not step_s > 0:
        raise ValueError(f"step duration must be > 0 s, got {step_s}")
    peak = float(plan.rates.sum(axis=0).max())
    targets = [peak * p / 100.0 for p in steps_percent]
    rates = _mix(plan)[:, None] * np.asarray(targets)[None, :]
    stages = [
        Stage(f"{p:g}%", i * step_s, (i + 1) * step_s, t)
        for i, (p, t) in enumerate(zip(steps_percent, targets, strict=True))
    ]
    return _shaped(plan, rates, step_s * len(steps_percent), stages)


def burst(
    plan: ReplayPlan, run_time_s: float, *, rate_scale: float, multiplier: float, start_s: float, duration_s: float
) -> ShapedPlan:
    """The replay at ``rate_scale``, times ``multiplier`` during ``[start_s, start_s + duration_s)`` of the run."""
    if not multiplier > 0:
        raise ValueError(f"burst multiplier must be > 0, got {multiplier}")
    end_s = start_s + duration_s
    if not (0 <= start_s < end_s <= run_time_s):
        raise ValueError(f"burst [{start_s:g} s, {end_s:g} s) must lie within the {run_time_s:g} s run")
    cells = plan.rates.shape[1]
    repeat = max(1, math.ceil(run_time_s / cells / MAX_BURST_CELL_S))
    rates = np.repeat(plan.rates, repeat, axis=1) * rate_scale
    cell_s = run_time_s / rates.shape[1]
    mids = (np.arange(rates.shape[1]) + 0.5) * cell_s
    inside = (mids >= start_s) & (mids < end_s)
    rates[:, inside] *= multiplier
    totals = rates.sum(axis=0)
    spans = [("before", 0.0, start_s), ("burst", start_s, end_s), ("after", end_s, run_time_s)]
    stages = []
    for name, lo, hi in spans:
        cells_in = (mids >= lo) & (mids < hi)
        if hi > lo and cells_in.any():
            stages.append(Stage(name, lo, hi, float(totals[cells_in].mean())))
    return _shaped(plan, rates, run_time_s, stages)


def oversample(shaped: ShapedPlan, min_rps: float) -> ShapedPlan:
    """``shaped`` with every endpoint whose mean planned rate is below ``min_rps`` (req/s of run time) raised to
    it: its rate in every cell multiplied by ``min_rps / mean`` (the shape over time is kept). The factors are in
    ``load_factors`` (endpoints already oversampled multiply theirs); stage target rates are recomputed from
    the new rates; ``rate_scale`` is unchanged. An endpoint with no planned requests stays at zero (nothing to
    scale). ValueError when ``min_rps`` is not > 0."""
    if not (min_rps > 0 and math.isfinite(min_rps)):
        raise ValueError(f"minimum endpoint rate must be > 0 req/s, got {min_rps}")
    plan = shaped.plan
    means = plan.rates.mean(axis=1) if plan.rates.size else np.zeros(len(plan.endpoints))
    rates = plan.rates.copy()
    factors = dict(shaped.load_factors)
    for e, (planned, mean) in enumerate(zip(plan.endpoints, means.tolist(), strict=True)):
        if 0 < mean < min_rps:
            factor = min_rps / mean
            rates[e] *= factor
            key = planned.endpoint.key
            factors[key] = factors.get(key, 1.0) * factor
    if factors == dict(shaped.load_factors):
        return shaped
    cells = rates.shape[1]
    cell_s = shaped.run_time_s / cells
    mids = (np.arange(cells) + 0.5) * cell_s
    totals = rates.sum(axis=0)
    stages = []
    for stage in shaped.stages:
        inside = (mids >= stage.start_s) & (mids < stage.end_s)
        target = float(totals[inside].mean()) if inside.any() else stage.target_rps
        stages.append(replace(stage, target_rps=target))
    return replace(shaped, plan=replace(plan, rates=rates), stages=tuple(stages), load_factors=factors)


@dataclass(frozen=True)
class ShapeSettings:
    """A shape and its options, as the replay's command line gives them (see the module docstring): the run
    time in s (a ramp's is its steps × step duration), the rate scale, ``rps`` (steady), ``steps`` (% of the
    peak) and ``step_s`` (ramp), ``multiplier``, ``start_s`` and ``duration_s`` (burst), and the per-endpoint
    minimum rate that oversamples rare endpoints (:func:`oversample`; None: off)."""

    kind: ShapeKind = ShapeKind.REPLAY
    run_time_s: float | None = None
    rate_scale: float = 1.0
    rps: float | None = None
    steps: tuple[float, ...] = (1.0, 5.0, 10.0, 50.0, 100.0)
    step_s: float | None = None
    multiplier: float = 3.0
    start_s: float | None = None
    duration_s: float | None = None
    min_endpoint_rps: float | None = None


def shape(plan: ReplayPlan, settings: ShapeSettings) -> ShapedPlan:
    """``plan`` shaped and oversampled as ``settings`` say (the one place a replay's rates are built: the
    locustfile, ``parity ab`` and ``parity plan`` all call it); ValueError for missing or impossible settings."""
    kind, run_time_s = settings.kind, settings.run_time_s
    if kind is ShapeKind.RAMP:
        if settings.step_s is None:
            raise ValueError("a ramp needs a step duration")
        shaped = ramp(plan, settings.steps, settings.step_s)
    elif run_time_s is None:
        raise ValueError("needs a run time: the baseline window is compressed into it")
    elif kind is ShapeKind.STEADY:
        if settings.rps is None:
            raise ValueError("steady needs a rate (--rps)")
        shaped = steady(plan, run_time_s, settings.rps)
    elif kind is ShapeKind.BURST:
        if settings.start_s is None or settings.duration_s is None:
            raise ValueError("a burst needs a start and a duration")
        shaped = burst(
            plan,
            run_time_s,
            rate_scale=settings.rate_scale,
            multiplier=settings.multiplier,
            start_s=settings.start_s,
            duration_s=settings.duration_s,
        )
    else:
        shaped = replay(plan, run_time_s, settings.rate_scale)
    if settings.min_endpoint_rps is not None:
        shaped = oversample(shaped, settings.min_endpoint_rps)
    return shaped

"""What a shaped replay will send per endpoint, and the sample-size plan for it (``parity plan``, and the
replay's start-up log). Pure: numpy only, no Locust import."""

from __future__ import annotations

from parity.judge.planning import SamplePlan, plan_samples
from parity.judge.policy import Policy
from parity.model import Measurement
from parity.replay.shapes import ShapedPlan

__all__ = ["planned_requests", "replay_sample_plan"]


def planned_requests(shaped: ShapedPlan) -> dict[str, float]:
    """Expected requests per endpoint key over the shaped run (rates × cell length, summed over the run)."""
    plan = shaped.plan
    return {
        p.endpoint.key: float(row.sum() * plan.interval_s) for p, row in zip(plan.endpoints, plan.rates, strict=True)
    }


def replay_sample_plan(baseline: Measurement, shaped: ShapedPlan, policy: Policy | None = None) -> SamplePlan:
    """The sample-size plan of replaying ``baseline`` as ``shaped`` (see ``parity.judge.planning``)."""
    return plan_samples(baseline, planned_requests(shaped), shaped.run_time_s, policy, load_factors=shaped.load_factors)

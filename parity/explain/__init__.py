"""``parity explain``: why an endpoint is slower, from APM traces of both environments.

- :mod:`parity.explain.spans` — the :class:`Span` model sources produce (ms inside, ids as strings).
- :mod:`parity.explain.breakdown` — pure: per trace, exclusive time and calls per component.
- :mod:`parity.explain.judge` — pure: old vs new per component, with intervals, and the "why" sentence.
"""

from __future__ import annotations

from parity.explain.breakdown import (
    Component,
    ComponentTime,
    Kind,
    SkippedTrace,
    TraceBreakdown,
    breakdown_trace,
    breakdown_traces,
    classify,
)
from parity.explain.judge import (
    Change,
    ComponentChange,
    Explanation,
    RequestChange,
    Sampling,
    TraceSample,
    explain,
    no_explanation,
    to_json,
    trace_sample,
)
from parity.explain.spans import Span

__all__ = [
    "Change",
    "Component",
    "ComponentChange",
    "ComponentTime",
    "Explanation",
    "Kind",
    "RequestChange",
    "Sampling",
    "SkippedTrace",
    "Span",
    "TraceBreakdown",
    "TraceSample",
    "breakdown_trace",
    "breakdown_traces",
    "classify",
    "explain",
    "no_explanation",
    "to_json",
    "trace_sample",
]

"""Why is an endpoint slower? Old vs new per component, with intervals, and the plain "why" sentence. Pure.

Input: per side a :class:`TraceSample` — the sampled traces broken down by :mod:`parity.explain.breakdown`,
the traces that could not be (with reasons), how the traces were chosen (stated by the source), or why none
could be read. Output: an :class:`Explanation` (frozen; :func:`to_json` gives plain JSON for reports).

Method, per component (service × kind × name; the endpoint's own service is matched across sides even when
its name differs, e.g. ``web`` on EC2 and ``web-eks`` on EKS):

- **time per request** (ms): the mean over a side's traces of the time charged to the component (a trace
  without a span of it charged 0: the trace was read whole). Because a trace's components sum to its root's
  duration, the components' differences sum exactly to the difference in mean request time.
- **calls per request**: the mean number of its spans per trace; the effect is the ratio new / old.
- **intervals**: Welch's t interval for the difference of the two means (unequal variances,
  Welch–Satterthwaite degrees of freedom); for the calls ratio, the same on the log scale (delta method).
  When E endpoints are explained together (``endpoints``: a report explains its top regressions, the demo
  every endpoint), the request's interval is at ``1 − (1 − CONFIDENCE) / E`` and the components' at
  ``1 − (1 − CONFIDENCE) / (E × K)`` over the K components of the endpoint (Bonferroni), so that the whole
  explain.json names a component that did not change with probability <= ``(1 − CONFIDENCE) / 2`` (with one
  endpoint: the request at ``CONFIDENCE``, the components simultaneous over K). Why not a bootstrap:
  on skewed, zero-heavy per-trace times (log-normal, 70 % zeros) at 5-40 traces per side, a percentile
  bootstrap covered 86-93 % instead of 95 % and called an unchanged component slower 3-7 % of the time
  instead of 2.5 %; Welch covered 96-99 % with 0.4-2.7 % (1,000 A/A draws per case). Deterministic: no random
  numbers. Few traces give wide intervals; below ``MIN_TRACES`` usable traces on a side there is no
  explanation.
- **change** (:class:`Change`): SLOWER when the interval of the difference lies above 0 and the estimate is at
  least the practical threshold ``max(MIN_EFFECT_MS, MIN_EFFECT_SHARE × old mean request time)``; FASTER
  mirrored; UNCHANGED when the whole interval lies within ± the threshold; otherwise UNDECIDED (the data
  cannot tell). The same rule judges the request as a whole.
- **named first**: the SLOWER components, largest first, until they explain at least ``EXPLAIN_SHARE`` (80 %)
  of the regression — the difference in mean request time of the sampled traces, whether or not the traces
  alone show it significantly (the endpoint's verdict rests on far more requests than a trace sample; the
  components' own intervals decide what is named). ``explained_share`` says how much they explain. When the
  sampled requests are not slower on average, every SLOWER component is named, without shares.

Missing data is never zero and never an explanation: a side without traces (the Spans API failed, no indexed
spans in the window, every trace skipped) gives ``available=False`` and the sentence ``no explanation:
<reason>``; the verdicts elsewhere are untouched. Sampling is always stated (:class:`Sampling`): indexed spans
are a sample of the traffic, the per-request figures are means over the traces read.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from parity.explain.breakdown import (
    APP_LABEL,
    Component,
    Kind,
    SkippedTrace,
    TraceBreakdown,
    breakdown_traces,
)
from parity.explain.spans import Span

__all__ = [
    "CALLS_MIN_RATIO",
    "CONFIDENCE",
    "EXPLAIN_SHARE",
    "MIN_EFFECT_MS",
    "MIN_EFFECT_SHARE",
    "MIN_TRACES",
    "Change",
    "ComponentChange",
    "Explanation",
    "RequestChange",
    "Sampling",
    "TraceSample",
    "calls_text",
    "explain",
    "no_explanation",
    "to_json",
    "trace_sample",
]

CONFIDENCE = 0.95
"""Two-sided confidence of every interval."""
MIN_TRACES = 5
"""Fewer usable traces than this on a side: no explanation (a variance from 1-4 traces says next to nothing)."""
MIN_EFFECT_MS = 1.0
"""A change smaller than this (ms per request) is never named, whatever its significance."""
MIN_EFFECT_SHARE = 0.02
"""... nor one smaller than this share of the old mean request time."""
EXPLAIN_SHARE = 0.8
"""The components named first explain at least this share of the regression (when the shown changes do)."""
CALLS_MIN_RATIO = 1.1
"""A call-count ratio is called "more" ("fewer") when its interval excludes 1 and it is beyond this factor."""

_CALL_WORDS: Mapping[Kind, str] = {
    Kind.DATABASE: "queries",
    Kind.CACHE: "commands",
    Kind.HTTP: "calls",
    Kind.DNS: "lookups",
    Kind.QUEUE: "waits",
    Kind.TEMPLATE: "renders",
}

FloatArray = npt.NDArray[np.float64]


class Change(Enum):
    """How a figure changed from old to new (see the module docstring for the rule)."""

    SLOWER = "slower"
    FASTER = "faster"
    UNCHANGED = "unchanged"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class TraceSample:
    """One side's traces. ``chosen``: how the source chose them (one phrase, stated in the sampling note, e.g.
    "40 of 1,200 indexed root spans, evenly spread over the window"). ``unavailable``: why no traces could be
    read (one line; then ``traces`` is empty)."""

    traces: tuple[TraceBreakdown, ...] = ()
    skipped: tuple[SkippedTrace, ...] = ()
    chosen: str = ""
    unavailable: str | None = None


@dataclass(frozen=True)
class RequestChange:
    """The whole request: mean root-span duration (ms) per side, the difference new − old with its interval."""

    old_ms: float
    new_ms: float
    diff_ms: float
    diff_low_ms: float
    diff_high_ms: float
    change: Change


@dataclass(frozen=True)
class ComponentChange:
    """One component old vs new.

    ``label``: its name in sentences (``postgres``, ``app code``, ``app code in billing``, ``postgres via
    billing``; unique in the explanation). ``service``: the span's service (the new side's name when the
    endpoint's own service was renamed); ``own_service``: it is the endpoint's own service. Times are ms per
    request (means over the traces); ``diff_*`` new − old with its interval. Calls are spans per request;
    ``calls_ratio`` new / old (None when the old side has no call of it) with its interval (None when a side
    has none). ``share``: this component's share of the regression (diff / request diff), None when the
    sampled requests are not slower on average."""

    label: str
    service: str
    own_service: bool
    kind: Kind
    name: str
    old_ms: float
    new_ms: float
    diff_ms: float
    diff_low_ms: float
    diff_high_ms: float
    change: Change
    old_calls: float
    new_calls: float
    calls_ratio: float | None
    calls_ratio_low: float | None
    calls_ratio_high: float | None
    share: float | None


@dataclass(frozen=True)
class Sampling:
    """What the explanation rests on: traces used and skipped per side, how they were chosen, what was
    repaired (spans with a missing parent re-attached to the root), the interval method; ``statement`` says
    it in plain words."""

    old_traces: int
    new_traces: int
    old_skipped: int
    new_skipped: int
    old_chosen: str
    new_chosen: str
    orphans: int
    excluded: int
    confidence: float
    component_confidence: float
    statement: str


@dataclass(frozen=True)
class Explanation:
    """Why ``endpoint`` is slower (or not), from sampled traces of both sides.

    ``available`` False: no explanation (``reason`` says why; ``sentence`` is ``no explanation: <reason>``;
    no figures). Otherwise ``sentence`` is the plain "why" line, ``components`` are ordered with the ones
    ``named`` (explaining >= ``EXPLAIN_SHARE`` of the regression) first, then by size of change;
    ``explained_share`` is the share of the regression the named components explain (None when the sampled
    requests are not slower on average; above 1 when other components got faster)."""

    endpoint: str
    available: bool
    sentence: str
    reason: str | None = None
    request: RequestChange | None = None
    components: tuple[ComponentChange, ...] = ()
    named: tuple[str, ...] = ()
    explained_share: float | None = None
    sampling: Sampling | None = None


def trace_sample(spans: Iterable[Span], *, roots: Mapping[str, str] | None = None, chosen: str = "") -> TraceSample:
    """One side's :class:`TraceSample` from its fetched spans (all traces mixed): each trace broken down by
    :func:`parity.explain.breakdown.breakdown_traces` (``roots``: trace id -> the sampled request's span id),
    the ones that cannot be kept as skipped with their reasons; ``chosen`` says how the traces were picked."""
    traces, skipped = breakdown_traces(spans, roots=roots)
    return TraceSample(traces=traces, skipped=skipped, chosen=chosen)


# --- helpers ---------------------------------------------------------------------------------------------


def no_explanation(endpoint: str, reason: str, sampling: Sampling | None = None) -> Explanation:
    """An explanation that is not there: ``reason`` (one line) is stated, nothing else is claimed."""
    return Explanation(
        endpoint=endpoint, available=False, sentence=f"no explanation: {reason}", reason=reason, sampling=sampling
    )


def _key(component: Component, root_service: str) -> Component:
    """The cross-side key: the endpoint's own service becomes ``""`` (it may be renamed between sides)."""
    if component.service == root_service:
        return Component("", component.kind, component.name)
    return component


def _matrix(traces: Sequence[TraceBreakdown], keys: Sequence[Component]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per trace (rows) and component (columns): time ms and calls; and the root durations (ms)."""
    index = {k: i for i, k in enumerate(keys)}
    time = np.zeros((len(traces), len(keys)))
    calls = np.zeros((len(traces), len(keys)))
    for row, t in enumerate(traces):
        for c in t.components:
            col = index[_key(c.component, t.root_service)]
            time[row, col] += c.time_ms
            calls[row, col] += c.calls
    duration = np.array([t.duration_ms for t in traces], dtype=float)
    return time, calls, duration


def _welch_df(va: FloatArray, vb: FloatArray, na: int, nb: int) -> FloatArray:
    """Welch–Satterthwaite degrees of freedom from the variances of the two means (inf when both are 0)."""
    den = va**2 / (na - 1) + vb**2 / (nb - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, (va + vb) ** 2 / np.where(den > 0, den, 1.0), np.inf)
    return np.asarray(df, dtype=float)


def _t(df: FloatArray, confidence: float | FloatArray) -> FloatArray:
    """Two-sided Student t critical value."""
    return np.asarray(special.stdtrit(df, 1.0 - (1.0 - np.asarray(confidence)) / 2.0), dtype=float)


def _diff_interval(a: FloatArray, b: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Welch interval of mean(b) − mean(a) per column (rows are traces, >= 2 per side)."""
    na, nb = a.shape[0], b.shape[0]
    va, vb = a.var(axis=0, ddof=1) / na, b.var(axis=0, ddof=1) / nb
    half = _t(_welch_df(va, vb, na, nb), confidence) * np.sqrt(va + vb)
    d = b.mean(axis=0) - a.mean(axis=0)
    return np.asarray(d - half, dtype=float), np.asarray(d + half, dtype=float)


def _ratio_interval(a: FloatArray, b: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Interval of mean(b) / mean(a) per column, Welch on the log scale (delta method); NaN where a mean is 0."""
    na, nb = a.shape[0], b.shape[0]
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        va = a.var(axis=0, ddof=1) / na / ma**2
        vb = b.var(axis=0, ddof=1) / nb / mb**2
        half = _t(_welch_df(va, vb, na, nb), confidence) * np.sqrt(va + vb)
        ratio = mb / ma
        ok = (ma > 0) & (mb > 0)
        low = np.where(ok, ratio * np.exp(-half), np.nan)
        high = np.where(ok, ratio * np.exp(half), np.nan)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def _change(estimate: float, low: float, high: float, threshold: float) -> Change:
    """The two-gate rule of the module docstring (ms)."""
    if low > 0 and estimate >= threshold:
        return Change.SLOWER
    if high < 0 and estimate <= -threshold:
        return Change.FASTER
    if -threshold < low and high < threshold:
        return Change.UNCHANGED
    return Change.UNDECIDED


def _labels(keys: Sequence[Component], services: Mapping[Component, str]) -> dict[Component, str]:
    """Unique plain names: ``app code`` / ``postgres`` for the endpoint's own service, ``app code in billing``
    or ``postgres via billing`` for another (``postgres`` alone when the service is named after it, e.g.
    ``web-postgres``); a clash gets the service added (``postgres via web``, ``postgres via web-postgres``)."""
    labels: dict[Component, str] = {}
    for k in keys:
        if k.kind is Kind.APP:
            labels[k] = APP_LABEL if k.service == "" else f"{APP_LABEL} in {k.service}"
        elif k.service == "" or k.name in k.service:
            labels[k] = k.name
        else:
            labels[k] = f"{k.name} via {k.service}"
    counts = Counter(labels.values())
    for k in keys:
        if counts[labels[k]] > 1:
            labels[k] = f"{k.name} via {services[k]}"
    return labels


def _ms(value: float) -> str:
    """A ms figure for sentences: 38, 4.2, 0.35."""
    a = abs(value)
    if a >= 10:
        return f"{value:.0f}"
    if a >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "−") + _ms(abs(value))


def calls_text(value: float) -> str:
    """Calls per request as the sentence and the report write them: 8.0, 24.0; a rare call two significant digits
    (0.033: 1 request in 30), never 0.0 for a call that was made."""
    return f"{value:.1f}" if value == 0 or value >= 0.95 else f"{value:.2g}"


def _detail(c: ComponentChange) -> str:
    """The parenthesis after a component in the sentence: what happened to its calls."""
    if c.kind is Kind.APP:
        return ""
    word = _CALL_WORDS.get(c.kind, "calls")
    if c.old_calls == 0:
        return f" (new: {calls_text(c.new_calls)} {word} per request)"
    if c.new_calls == 0:
        return f" (gone: {calls_text(c.old_calls)} {word} per request before)"
    ratio, low, high = c.calls_ratio, c.calls_ratio_low, c.calls_ratio_high
    if ratio is not None and low is not None and low > 1 and ratio >= CALLS_MIN_RATIO:
        return f" ({ratio:.1f}× more {word}: {calls_text(c.old_calls)} → {calls_text(c.new_calls)} per request)"
    if ratio is not None and high is not None and high < 1 and ratio <= 1 / CALLS_MIN_RATIO:
        return f" ({ratio:.2f}× the {word}: {calls_text(c.old_calls)} → {calls_text(c.new_calls)} per request)"
    per_old = c.old_ms / c.old_calls
    per_new = c.new_ms / c.new_calls
    return f" ({calls_text(c.new_calls)} {word} per request, {_ms(per_old)} → {_ms(per_new)} ms each)"


def _sentence(request: RequestChange, ordered: Sequence[ComponentChange], named: Sequence[str]) -> str:
    """The plain "why" line, e.g. "+38 ms per request in postgres (3.0× more queries: 12.0 → 36.0 per
    request), +4.0 ms in redis; app code unchanged"."""
    slower = [c for c in ordered if c.change is Change.SLOWER]
    faster = [c for c in ordered if c.change is Change.FASTER]
    parts: list[str] = []
    for i, c in enumerate([*slower, *faster]):
        unit = " ms per request in " if i == 0 else " ms in "
        parts.append(f"{_signed(c.diff_ms)}{unit}{c.label}{_detail(c)}")
    head = ", ".join(parts)
    tails: list[str] = []
    if request.change is Change.SLOWER and not slower:
        tails.append(
            f"{_signed(request.diff_ms)} ms per request in all, but no single component is shown slower "
            "(spread over several, or too few traces to tell)"
        )
    elif request.change is not Change.SLOWER:
        word = {
            Change.FASTER: "faster",
            Change.UNCHANGED: "not slower",
            Change.UNDECIDED: "not shown slower",
        }[request.change]
        requests = (
            f"the sampled requests are {word} ({_signed(request.diff_ms)} ms, "
            f"{_signed(request.diff_low_ms)}…{_signed(request.diff_high_ms)})"
        )
        if not head and request.change is Change.UNCHANGED:  # nothing moved, and the request is shown unchanged
            requests = f"nothing changed: {requests}"
        elif not head and request.change is Change.UNDECIDED:
            requests = f"no change shown: {requests}, no component slower or faster"
        tails.append(requests)
    elif named and request.diff_ms > 0:
        share = sum(c.diff_ms for c in ordered if c.label in named) / request.diff_ms
        if share < EXPLAIN_SHARE:
            tails.append(f"these explain {share:.0%} of the {_signed(request.diff_ms)} ms")
    # what did not change, the endpoint's own app code first: "app code unchanged", "postgres and redis unchanged"
    unchanged = sorted(
        (c for c in ordered if c.change is Change.UNCHANGED),
        key=lambda c: (not (c.kind is Kind.APP and c.own_service), -c.old_ms, c.label),
    )
    if unchanged:
        tails.append(_and([c.label for c in unchanged]) + " unchanged")
    undecided = [c.label for c in ordered if c.change is Change.UNDECIDED]
    if undecided:
        more = f" and {len(undecided) - 3} more" if len(undecided) > 3 else ""
        tails.append("not decided: " + ", ".join(undecided[:3]) + more)
    if not head:
        return "; ".join(tails) if tails else "no component changed"
    return "; ".join([head, *tails])


def _and(labels: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c", "a, b and 3 others"."""
    if len(labels) == 1:
        return labels[0]
    if len(labels) <= 3:
        return ", ".join(labels[:-1]) + " and " + labels[-1]
    return f"{labels[0]}, {labels[1]} and {len(labels) - 2} others"


def _skip_note(side: str, skipped: Sequence[SkippedTrace]) -> str:
    if not skipped:
        return ""
    reasons = Counter(s.reason.split(" (")[0] for s in skipped)
    top = "; ".join(f"{n}× {r}" for r, n in reasons.most_common(2))
    return f" {len(skipped)} {side} trace(s) skipped ({top})."


def _sampling(old: TraceSample, new: TraceSample, confidence: float, components: int, endpoints: int = 1) -> Sampling:
    """Count and state what the explanation rests on. ``confidence``: the family's (every interval of the
    ``components`` of the ``endpoints`` explained together)."""
    orphans = sum(t.orphans for t in (*old.traces, *new.traces))
    excluded = sum(t.excluded for t in (*old.traces, *new.traces))
    chosen = ""
    if old.chosen or new.chosen:
        chosen = f" Old: {old.chosen or 'not stated'}; new: {new.chosen or 'not stated'}."
    statement = (
        f"From {len(old.traces)} old and {len(new.traces)} new sampled traces.{chosen} Indexed spans are a "
        "sample of the traffic, not all of it: per-request figures are means over these traces"
        + (
            f", intervals Welch's t, simultaneous at {confidence:.0%} over the {components} components"
            + (f" and the {endpoints} endpoints explained together." if endpoints > 1 else ".")
            if components
            else "."
        )
        + _skip_note("old", old.skipped)
        + _skip_note("new", new.skipped)
    )
    if orphans:
        statement += f" {orphans} span(s) with a missing parent were re-attached to their trace's root."
    if excluded:
        statement += f" {excluded} span(s) outside the request's tree were left out."
    return Sampling(
        old_traces=len(old.traces),
        new_traces=len(new.traces),
        old_skipped=len(old.skipped),
        new_skipped=len(new.skipped),
        old_chosen=old.chosen,
        new_chosen=new.chosen,
        orphans=orphans,
        excluded=excluded,
        confidence=_component_confidence(confidence, endpoints),
        component_confidence=_component_confidence(confidence, components * max(1, endpoints)),
        statement=statement,
    )


def _unusable(side: str, sample: TraceSample) -> str | None:
    """Why a side cannot be explained, or None."""
    if sample.unavailable:
        return f"{side} side: {sample.unavailable}"
    if not sample.traces:
        if sample.skipped:
            first = sample.skipped[0].reason
            return f"{side} side: none of its {len(sample.skipped)} traces could be broken down ({first})"
        return f"no traces on the {side} side"
    if len(sample.traces) < MIN_TRACES:
        return f"only {len(sample.traces)} usable trace(s) on the {side} side (at least {MIN_TRACES} needed)"
    return None


# --- the judgement ---------------------------------------------------------------------------------------


def explain(
    endpoint: str,
    old: TraceSample,
    new: TraceSample,
    *,
    confidence: float = CONFIDENCE,
    endpoints: int = 1,
) -> Explanation:
    """Judge the breakdown of ``endpoint``'s sampled traces, old vs new (method: module docstring); ``endpoints``:
    how many endpoints are explained together (the intervals are simultaneous over all of them).

    Deterministic; the input order of the traces does not matter. Missing data: a side that is unavailable,
    has no usable traces or fewer than ``MIN_TRACES`` gives a :func:`no_explanation` with the reason — no
    figure is made up."""
    for side, sample in (("old", old), ("new", new)):
        reason = _unusable(side, sample)
        if reason is not None:
            return no_explanation(endpoint, reason, _sampling(old, new, confidence, 0, endpoints))

    old_traces = sorted(old.traces, key=lambda t: (t.trace_id, t.root_span_id))
    new_traces = sorted(new.traces, key=lambda t: (t.trace_id, t.root_span_id))
    services: dict[Component, str] = {}
    for t in (*old_traces, *new_traces):  # the new side's service name wins (it is written last)
        for c in t.components:
            services[_key(c.component, t.root_service)] = c.component.service
    keys = sorted(services)
    sampling = _sampling(old, new, confidence, len(keys), endpoints)
    t_old, c_old, d_old = _matrix(old_traces, keys)
    t_new, c_new, d_new = _matrix(new_traces, keys)

    req_low, req_high = _diff_interval(d_old[:, None], d_new[:, None], sampling.confidence)
    low, high = _diff_interval(t_old, t_new, sampling.component_confidence)
    r_low, r_high = _ratio_interval(c_old, c_new, sampling.component_confidence)

    old_mean = float(d_old.mean())
    threshold = max(MIN_EFFECT_MS, MIN_EFFECT_SHARE * old_mean)
    req_diff = float(d_new.mean()) - old_mean
    request = RequestChange(
        old_ms=old_mean,
        new_ms=float(d_new.mean()),
        diff_ms=req_diff,
        diff_low_ms=float(req_low[0]),
        diff_high_ms=float(req_high[0]),
        change=_change(req_diff, float(req_low[0]), float(req_high[0]), threshold),
    )
    # the sample's mean regression, significant or not: the endpoint's verdict rests on far more requests than
    # the traces, and the components' own intervals decide what is named
    regressed = req_diff > 0
    labels = _labels(keys, services)
    changes: list[ComponentChange] = []
    for i, key in enumerate(keys):
        o_ms, n_ms = float(t_old[:, i].mean()), float(t_new[:, i].mean())
        o_calls, n_calls = float(c_old[:, i].mean()), float(c_new[:, i].mean())
        d = n_ms - o_ms
        lo, hi = float(low[i]), float(high[i])
        has_ratio = o_calls > 0
        changes.append(
            ComponentChange(
                label=labels[key],
                service=services[key],
                own_service=key.service == "",
                kind=key.kind,
                name=key.name,
                old_ms=o_ms,
                new_ms=n_ms,
                diff_ms=d,
                diff_low_ms=lo,
                diff_high_ms=hi,
                change=_change(d, lo, hi, threshold),
                old_calls=o_calls,
                new_calls=n_calls,
                calls_ratio=n_calls / o_calls if has_ratio else None,
                calls_ratio_low=_finite(r_low[i]) if has_ratio else None,
                calls_ratio_high=_finite(r_high[i]) if has_ratio else None,
                share=d / req_diff if regressed else None,
            )
        )

    slower = sorted((c for c in changes if c.change is Change.SLOWER), key=lambda c: (-c.diff_ms, c.label))
    named: list[ComponentChange] = []
    explained = 0.0
    for s in slower:
        if regressed and explained >= EXPLAIN_SHARE * req_diff:
            break
        named.append(s)
        explained += s.diff_ms
    rest = sorted((c for c in changes if c not in named), key=lambda c: (-abs(c.diff_ms), c.label))
    ordered = (*named, *rest)
    names = tuple(c.label for c in named)
    return Explanation(
        endpoint=endpoint,
        available=True,
        sentence=_sentence(request, ordered, names),
        request=request,
        components=ordered,
        named=names,
        explained_share=explained / req_diff if regressed else None,
        sampling=sampling,
    )


def _finite(value: float) -> float | None:
    """A bound, or None when there is none (no call on one side)."""
    return float(value) if math.isfinite(value) else None


def _component_confidence(confidence: float, components: int) -> float:
    """Bonferroni: each of ``components`` intervals at this level makes them simultaneous at ``confidence``."""
    return 1.0 - (1.0 - confidence) / max(1, components)


# --- plain JSON ------------------------------------------------------------------------------------------


def to_json(explanation: Explanation) -> dict[str, Any]:
    """The explanation as plain JSON (dicts, lists, str, numbers, bool, None; enums as their values;
    non-finite floats as None). Field names are the dataclasses'."""
    out = _plain(explanation)
    assert isinstance(out, dict)
    return out


def _plain(value: object) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    raise TypeError(f"not JSON: {type(value).__name__}")

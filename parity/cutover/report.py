"""The cutover's reports: ``index.html``, ``summary.md``, ``cutover.json``, the Datadog event and the terminal
lines, all from one :class:`parity.cutover.model.CutoverRun` (built from the journal, so a resumed run's
reports see every check).

What a reader must see at a glance, in this order: the outcome (completed, stopped, held, aborted) and the
final weight to the new environment; at which step, after how many checks and why it stopped or held; whether
the rollback was applied (a failed rollback is shouted: the new environment still takes traffic); per step the
weight, the hold (checks and time), the observed split against the weight; per endpoint and metric the
decision with its anytime-valid bounds (new/old ratio) over the checks, against the tolerance. Plain
sentences come first, the statistics behind them in ``<details>``.

``index.html`` is one self-contained file in the parity report's style: the parity report's own stylesheet
(read from ``parity/report/templates/report.html`` at render time, not copied) plus a few rules of its own,
the charts as inline SVG drawn here (no script, no external resource). Rendered by Jinja2 with
``autoescape=True`` and ``StrictUndefined`` (:func:`parity.report.html.load_template`); endpoint names and
reasons are data, escaped. ``summary.md`` escapes them like the parity summary (no mentions, no markup).
``cutover.json`` follows ``parity/schemas/cutover.schema.json``.

Units: weights are percent to the new environment; instants are Unix seconds (float); latencies ms; bounds
are new/old ratios. Missing data stays missing: a check without APM data is listed with its reason and has
no decision (never zeros); a bound that is unknown is None (``null``), an unbounded upper bound is ``null``
with a finding other than ``no_data``.

Pure except :func:`write_cutover_reports`, which writes the three files, each atomically (temporary sibling,
fsync, rename: :func:`parity.report.write.write_atomic`), after all three were rendered in memory.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from parity.cutover.journal import encode_explanation
from parity.cutover.model import CheckRecord, CutoverRun, Outcome, StepRecord, StopExplanation
from parity.judge.sequential import Action, CutoverPolicy, Finding, MetricDecision, StepDecision
from parity.report.ci import _md, _md_name, json_value
from parity.report.context import format_duration, format_time
from parity.report.text import cut, encodable, no_mentions, one_line

__all__ = [
    "CUTOVER_FILES",
    "FORMAT",
    "MAX_CHARTED_ENDPOINTS",
    "MAX_CHART_POINTS",
    "MAX_MARKERS",
    "MAX_SUMMARY_ENDPOINTS",
    "TEMPLATE",
    "VERSION",
    "CutoverEvent",
    "cutover_event",
    "cutover_json",
    "headline",
    "render_cutover_html",
    "summary_lines",
    "summary_md",
    "why_lines",
    "write_cutover_reports",
]

#: ``cutover.json``'s ``format`` and ``version``.
FORMAT = "parity-cutover"
VERSION = 1
#: The files :func:`write_cutover_reports` writes, in the order it writes them.
CUTOVER_FILES = ("cutover.json", "summary.md", "index.html")
#: Package-relative path (in ``parity.report``) of the cutover page's template.
TEMPLATE = "templates/cutover.html"
#: The parity report's template, whose stylesheet the cutover page reuses.
_PARITY_TEMPLATE = "templates/report.html"
#: Checks drawn per bounds chart at most (evenly thinned, the newest always kept).
MAX_CHART_POINTS = 240
#: Checks per bounds chart with a marker and its tooltip at most (the lines keep ``MAX_CHART_POINTS``).
MAX_MARKERS = 48
#: Endpoints whose bounds are charted at most (worst first; every endpoint stays in the tables and the JSON):
#: a chart is ~10 kB of SVG per metric, so 300 endpoints would make a page of tens of MB.
MAX_CHARTED_ENDPOINTS = 40
#: Endpoints in summary.md's table at most (worst first): a pull-request comment holds 65,536 characters.
MAX_SUMMARY_ENDPOINTS = 20
#: Reasons listed in the terminal after the headline (the rest counted).
MAX_TERMINAL_REASONS = 5
#: Checks without APM data listed one by one in summary.md and the terminal (the rest counted).
MAX_LISTED_MISSING = 5

_OUTCOME_CSS = {
    Outcome.COMPLETED: "verdict-pass",
    Outcome.STOPPED: "verdict-fail",
    Outcome.HELD: "verdict-marginal",
    Outcome.ABORTED: "verdict-inconclusive",
}
_ACTION_CSS = {
    Action.GO: "verdict-pass",
    Action.STOP: "verdict-fail",
    Action.HOLD: "verdict-marginal",
    Action.WAIT: "verdict-inconclusive",
}
_FINDING_CSS = {
    Finding.WORSE: "verdict-fail",
    Finding.WITHIN: "verdict-pass",
    Finding.OPEN: "verdict-marginal",
    Finding.NO_DATA: "verdict-inconclusive",
}
_FINDING_LABEL = {
    Finding.WORSE: "WORSE",
    Finding.WITHIN: "WITHIN",
    Finding.OPEN: "OPEN",
    Finding.NO_DATA: "NO DATA",
}
_FINDING_RANK = {Finding.WORSE: 0, Finding.OPEN: 1, Finding.NO_DATA: 2, Finding.WITHIN: 3}
_METRIC_LABEL = {"error_rate": "error rate", "avg_ms": "avg"}
_ALERT_TYPE = {
    Outcome.COMPLETED: "success",
    Outcome.STOPPED: "error",
    Outcome.HELD: "warning",
    Outcome.ABORTED: "warning",
}


#: An endpoint's or metric's decision (cutover.json's ``decision``) when nothing is shown worse and what is not
#: shown within could not be at this weight (``MetricDecision.decidable`` False): neutral, never a pass.
NOT_DECIDABLE = "not_decidable"
_NOT_DECIDABLE_LABEL = "NOT DECIDABLE"
_NOT_DECIDABLE_CSS = "verdict-inconclusive"


def _finding_css(finding: Finding) -> str:
    """The colour of a finding (one the page does not know, e.g. added to the decision core later: neutral)."""
    return _FINDING_CSS.get(finding, "verdict-inconclusive")


def _finding_label(finding: Finding) -> str:
    return _FINDING_LABEL.get(finding) or finding.value.replace("_", " ").upper()


def _undecidable(m: MetricDecision) -> bool:
    """The gate said this metric cannot be shown within tolerance at this weight (it did not hold the GO back);
    a WORSE finding is still worse (decidability never hides a regression)."""
    return not m.decidable and m.finding is not Finding.WORSE


def _cell_css(m: MetricDecision) -> str:
    return _NOT_DECIDABLE_CSS if _undecidable(m) else _finding_css(m.finding)


def _cell_label(m: MetricDecision) -> str:
    return _NOT_DECIDABLE_LABEL if _undecidable(m) else _finding_label(m.finding)


# --- small formatting ----------------------------------------------------------------------------------


def _weight(w: float | None) -> str:
    """``10%``; None → ``unknown``."""
    return "unknown" if w is None else f"{w:g}%"


def _when(ts: float | None) -> str:
    """A Unix instant as ``2026-06-01 09:00:00 UTC``; None → ``—``."""
    return "—" if ts is None else format_time(datetime.fromtimestamp(ts, UTC))


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _ratio(x: float | None) -> str:
    """A new/old ratio as ``x1.05``; None → ``—``; infinity → ``∞``; 0 → ``x0``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if math.isinf(x):
        return "∞"
    return f"x{x:.3g}" if x < 10 else f"x{x:.0f}"


def _bounds(m: MetricDecision) -> str:
    """``x0.98–x1.07`` (the confidence sequence); ``—`` when there is none."""
    if m.lower is None and m.upper is None:
        return "—"
    return f"{_ratio(m.lower)}–{_ratio(m.upper)}"


def _metric_label(metric: str) -> str:
    return _METRIC_LABEL.get(metric, metric.removesuffix("_ms"))


def _metric_order(run: CutoverRun) -> tuple[str, ...]:
    """error rate first, then the judged latency metrics in the settings' order (those seen in decisions
    when the settings do not say)."""
    seen: list[str] = []
    for step in run.steps:
        for record in step.checks:
            if record.decision is not None:
                for m in record.decision.metrics:
                    if m.metric not in seen:
                        seen.append(m.metric)
    latency = [str(m) for m in _setting_list(run, "latency_metrics")] or [m for m in seen if m != "error_rate"]
    order = ["error_rate", *latency]
    return tuple(order + [m for m in seen if m not in order])


def _setting_list(run: CutoverRun, key: str) -> list[object]:
    value = run.settings.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def _go_metrics(run: CutoverRun) -> tuple[str, ...]:
    listed = [str(m) for m in _setting_list(run, "go_metrics")]
    return tuple(listed) if listed else CutoverPolicy().go_metrics


def _number(run: CutoverRun, key: str) -> float | None:
    value = run.settings.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- what happened ---------------------------------------------------------------------------------------


def _last_step(run: CutoverRun) -> StepRecord | None:
    return run.steps[-1] if run.steps else None


def _data_checks(step: StepRecord) -> int:
    return sum(1 for c in step.checks if c.decision is not None)


def _missing(step: StepRecord) -> list[CheckRecord]:
    return [c for c in step.checks if c.missing is not None]


def _step_label(run: CutoverRun, step: StepRecord) -> str:
    total = len(_setting_list(run, "steps")) or len(run.steps)
    return f"step {step.index + 1} of {max(total, step.index + 1)} ({_weight(step.weight_pct)})"


def _action_label(run: CutoverRun, step: StepRecord) -> str:
    """What the step ended with, as a reader says it."""
    if step is _last_step(run):
        if run.outcome is Outcome.COMPLETED:
            return "COMPLETED"
        if run.outcome is Outcome.ABORTED and step.action is None:
            return "INTERRUPTED"
        if run.outcome is Outcome.HELD and step.action is not Action.HOLD:
            return "HOLD"
    if step.action is None:
        return "RUNNING" if step.ended_s is None else "—"
    return step.action.name


def _action_css(run: CutoverRun, step: StepRecord) -> str:
    label = _action_label(run, step)
    if label == "COMPLETED":
        return "verdict-pass"
    if label == "HOLD":
        return "verdict-marginal"
    return _ACTION_CSS.get(step.action, "verdict-inconclusive") if step.action else "verdict-inconclusive"


def _stop_decision(step: StepRecord) -> StepDecision | None:
    for record in reversed(step.checks):
        if record.decision is not None and record.decision.action is Action.STOP:
            return record.decision
    return None


def _rollback_sentence(run: CutoverRun) -> str | None:
    rb = run.rollback
    if rb is None:
        return None if run.outcome is not Outcome.STOPPED else "No rollback was recorded."
    if rb.applied:
        return f"The new environment's weight was set back to {_weight(rb.weight_pct)} and verified."
    why = f" ({rb.reason})" if rb.reason else ""
    return (
        f"ROLLBACK FAILED: the weight could not be set back to {_weight(rb.weight_pct)}{why}; the new environment "
        f"still takes {_weight(run.final_weight_pct)} of the traffic. Set the weights by hand."
    )


def _why_step(run: CutoverRun) -> str:
    """``step 3 (50%)`` — the step whose traces explain the stop (the last one); at 100 % the old side served
    nothing and was read over the previous checked step (:func:`parity.cutover.explain.stop_windows`), said so."""
    step = _last_step(run)
    if step is None:
        return "the stop"
    text = f"step {step.index + 1} ({_weight(step.weight_pct)})"
    if step.weight_pct >= 100.0:
        earlier = [s for s in run.steps if s.index < step.index and s.checks]
        if earlier:
            text += f", the old side over step {earlier[-1].index + 1} ({_weight(earlier[-1].weight_pct)})"
    return text


def why_lines(run: CutoverRun) -> list[str]:
    """The stop's explanation as plain lines: ``<endpoint> (<what stopped it>): <why sentence>`` per endpoint, or
    ``no explanation: <reason>`` (``explain.json not saved: <reason>`` after the why lines when only the file could
    not be written); empty when the run was not explained. Pure."""
    e = run.explanation
    if e is None:
        return []
    lines = [f"{w.endpoint} ({', '.join(w.metrics) or 'stopped'}): {w.sentence}" for w in e.why]
    if (skipped := _skipped_line(e)) is not None:
        lines.append(skipped)
    return lines


def _skipped_line(e: StopExplanation) -> str | None:
    """``no explanation: <reason>``; ``explain.json not saved: <reason>`` when the stop was explained (``why``) but
    its file could not be written; None when nothing was skipped."""
    if e.skipped is None:
        return None
    return f"{'explain.json not saved' if e.why else 'no explanation'}: {e.skipped}"


def headline(run: CutoverRun) -> str:
    """The run in one plain sentence (the outcome, the final weight, where and why it ended). Pure."""
    step = _last_step(run)
    final = _weight(run.final_weight_pct)
    duration = format_duration(max(run.ended_s - run.started_s, 0.0))
    first = run.reasons[0] if run.reasons else None
    if run.outcome is Outcome.COMPLETED:
        return (
            f"COMPLETED: {final} of the traffic goes to the new environment ({run.new.env}) after "
            f"{len(run.steps)} step(s) in {duration}."
        )
    if step is None:
        why = f": {first}" if first else ""
        return f"{run.outcome.name} before the first step{why}. Weights unchanged ({final} to the new environment)."
    where = f"{_step_label(run, step)} after {len(step.checks)} check(s)"
    if run.outcome is Outcome.STOPPED:
        kind = (
            "a guardrail was breached on the new side" if run.guardrail else "a regression beyond tolerance was shown"
        )
        detail = f" ({first})" if first else ""
        return f"STOPPED at {where}: {kind}{detail}. {_rollback_sentence(run)}"
    kept = f"The new environment keeps {final} of the traffic"
    if run.outcome is Outcome.HELD:
        return f"HELD at {where}: {first or 'undecided'}. {kept}; a person decides."
    return f"ABORTED during {where}: {first or 'interrupted'}. {kept}."


# --- decisions per endpoint ------------------------------------------------------------------------------


def _plain_metric(m: MetricDecision) -> str:
    """One sentence for one endpoint's metric at one check."""
    label = _metric_label(m.metric)
    if _undecidable(m):
        seen = "no usable intervals yet" if m.finding is Finding.NO_DATA else f"{_ratio(m.lower)} to {_ratio(m.upper)}"
        return (
            f"{label} is not decidable at this weight ({seen} the old, tolerance {_ratio(m.threshold)}): the traffic "
            "of this step cannot show it within tolerance by the maximum hold. Not a pass: nothing was shown worse, "
            "and its evidence carries into the next, heavier step."
        )
    if m.finding is Finding.NO_DATA:
        return f"{label}: not enough data yet ({m.reason})."
    if m.finding is Finding.WORSE:
        return (
            f"{label} is worse: the new environment is {_ratio(m.lower)} to {_ratio(m.upper)} the old "
            f"(estimate {_ratio(m.estimate)}), beyond the tolerance {_ratio(m.threshold)}."
        )
    if m.finding is Finding.WITHIN:
        return (
            f"{label} is shown within tolerance: at most {_ratio(m.upper)} the old (tolerance {_ratio(m.threshold)})."
        )
    return (
        f"{label} is not decided yet: {_ratio(m.lower)} to {_ratio(m.upper)} the old, straddling the tolerance "
        f"{_ratio(m.threshold)}."
    )


def _endpoint_finding(metrics: Sequence[MetricDecision], go_metrics: Sequence[str]) -> Finding | str:
    """One endpoint's decision from its metrics: worse when any is worse; within when every GO metric is
    within (the others can only stop); ``NOT_DECIDABLE`` when every GO metric not within is not decidable at
    this weight (the gate let it go; neutral, not a pass); no data when none has data; else open."""
    if any(m.finding is Finding.WORSE for m in metrics):
        return Finding.WORSE
    go = [m for m in metrics if m.metric in go_metrics]
    if go and all(m.finding is Finding.WITHIN for m in go):
        return Finding.WITHIN
    if go and all(m.finding is Finding.WITHIN or _undecidable(m) for m in go):
        return NOT_DECIDABLE
    if all(m.finding is Finding.NO_DATA for m in metrics):
        return Finding.NO_DATA
    return Finding.OPEN


def _decision_css(finding: Finding | str) -> str:
    return _finding_css(finding) if isinstance(finding, Finding) else _NOT_DECIDABLE_CSS


def _decision_label(finding: Finding | str) -> str:
    return _finding_label(finding) if isinstance(finding, Finding) else _NOT_DECIDABLE_LABEL


def _decision_value(finding: Finding | str) -> str:
    return finding.value if isinstance(finding, Finding) else finding


def _by_endpoint(decision: StepDecision | None) -> dict[str, dict[str, MetricDecision]]:
    out: dict[str, dict[str, MetricDecision]] = {}
    if decision is not None:
        for m in decision.metrics:
            out.setdefault(m.endpoint, {})[m.metric] = m
    return out


def _traffic(run: CutoverRun) -> dict[str, int]:
    """Requests seen per endpoint over the run (both sides, checks with data)."""
    out: dict[str, int] = {}
    for step in run.steps:
        for record in step.checks:
            if record.check is None:
                continue
            for item in record.check.endpoints:
                hits = sum(s.hits for s in (item.old, item.new) if s is not None and s.hits > 0)
                out[item.endpoint] = out.get(item.endpoint, 0) + hits
    return out


def _final_decision(run: CutoverRun) -> StepDecision | None:
    """The newest decision of the run (None when no check brought data)."""
    for step in reversed(run.steps):
        if step.last_decision is not None:
            return step.last_decision
    return None


def _endpoint_rows(run: CutoverRun, decision: StepDecision | None, traffic: Mapping[str, int]) -> list[dict[str, Any]]:
    """Per endpoint (worst first, then by traffic): the decision and each metric's finding and bounds."""
    metrics = _metric_order(run)
    go = _go_metrics(run)
    table = _by_endpoint(decision)
    total = sum(traffic.get(k, 0) for k in run.endpoints) or 1
    rows: list[dict[str, Any]] = []
    for position, key in enumerate(run.endpoints):
        own = table.get(key, {})
        found = [own[m] for m in metrics if m in own]
        finding = _endpoint_finding(found, go) if found else Finding.NO_DATA
        cells = []
        for metric in metrics:
            m = own.get(metric)
            cells.append(
                {
                    "metric": metric,
                    "css": _cell_css(m) if m else "verdict-inconclusive",
                    "label": _cell_label(m) if m else "—",
                    "bounds": _bounds(m) if m else "—",
                    "threshold": _ratio(m.threshold) if m else "—",
                    "title": m.reason if m else "no decision",
                }
            )
        rows.append(
            {
                "key": key,
                "position": position,
                "finding": finding,
                "css": _decision_css(finding),
                "label": _decision_label(finding),
                "requests": f"{traffic.get(key, 0):,}",
                "share": f"{traffic.get(key, 0) / total:.1%}",
                "cells": cells,
                "sentences": [{"css": _cell_css(m), "label": _cell_label(m), "text": _plain_metric(m)} for m in found],
                "_traffic": traffic.get(key, 0),
            }
        )
    rows.sort(key=lambda r: (_FINDING_RANK.get(r["finding"], 2), -r["_traffic"], r["position"]))
    return rows


_PERSON_ACTION = {
    "watch": "watch the step for another maximum hold",
    "go": "go on to the next step",
    "rollback": "roll back now",
}


def _person_sentences(run: CutoverRun) -> list[str]:
    """One sentence per decision a person took on a hold (who, when, at which step and weight, what)."""
    steps = _setting_list(run, "steps")
    out = []
    for d in run.person_decisions:
        step = f"step {d.step_index + 1}" if d.step_index >= 0 else "before the first step"
        what = _PERSON_ACTION.get(d.action, d.action)
        if d.action == "go" and steps and d.step_index == len(steps) - 1:
            what = "complete the cutover"
        who = d.user or "someone (user unknown)"
        out.append(f"{_when(d.at_s)}: {who} decided at {step} ({_weight(d.weight_pct)}): {what}.")
    return out


def _unjudged(run: CutoverRun) -> list[str]:
    """Endpoints seen in the checks that are not in the judged family (they appeared after discovery)."""
    family = set(run.endpoints)
    seen: dict[str, None] = {}
    for step in run.steps:
        for record in step.checks:
            if record.check is not None:
                for item in record.check.endpoints:
                    if item.endpoint not in family:
                        seen[item.endpoint] = None
    return sorted(seen)


# --- the split -------------------------------------------------------------------------------------------


def _split_text(step: StepRecord) -> tuple[str, str]:
    """(short figure, sentence) of the step's observed split against its weight (from its newest decision)."""
    decision = step.last_decision
    if decision is None:
        return "—", "no check of this step brought data: the split is unknown."
    s = decision.split
    if s.observed_pct is None or s.matches is None:
        return "—", f"too few requests so far to compare the split ({s.hits:,} seen)."
    figure = f"{s.observed_pct:.3g}%"
    if s.matches:
        return (
            figure,
            f"{figure} of {s.hits:,} requests went to the new environment (weight {_weight(s.weight_pct)}): matches.",
        )
    return (
        figure + " ≠",
        f"{figure} of {s.hits:,} requests went to the new environment, but the weight is {_weight(s.weight_pct)}: "
        "the split does NOT match (the DNS change may not be in effect, or resolvers cache past the TTL).",
    )


# --- inline SVG charts -----------------------------------------------------------------------------------

#: SVG user units of the split chart (wide) and of one bounds chart (three side by side).
_WIDE, _NARROW, _H = 900.0, 380.0, 200.0
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 44.0, 10.0, 14.0, 26.0
#: Candidate y ticks of a bounds chart (new/old ratios); those closer than ``_TICK_GAP`` units are dropped.
_RATIO_TICKS = (1 / 16, 0.1, 0.25, 0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 4.0, 8.0, 16.0)
_TICK_GAP = 16.0


def _thin(points: list[Any], limit: int = MAX_CHART_POINTS) -> list[Any]:
    if len(points) <= limit:
        return points
    step = len(points) / (limit - 1)
    return [points[int(i * step)] for i in range(limit - 1)] + [points[-1]]


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _svg_open(label: str, width: float) -> str:
    return (
        f'<svg class="plot" viewBox="0 0 {width:.0f} {_H:.0f}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
    )


def _x_scale(t0: float, t1: float, width: float) -> Any:
    span = max(t1 - t0, 1e-9)
    return lambda t: _PAD_L + (width - _PAD_L - _PAD_R) * (t - t0) / span


def _ticks(y: Any, lo: float, hi: float) -> list[float]:
    """The candidate ratio ticks inside (lo, hi), x1 always, none closer than ``_TICK_GAP`` to a kept one."""
    kept: list[float] = [1.0]
    for tick in sorted((t for t in _RATIO_TICKS if lo < t < hi and t != 1.0), key=lambda t: abs(math.log(t))):
        if all(abs(y(tick) - y(k)) >= _TICK_GAP for k in kept):
            kept.append(tick)
    return sorted(kept)


def _tick_label(t: float) -> str:
    return f"x{t:g}" if t >= 0.1 else f"x1/{1 / t:.0f}"


def _log_scale(lo: float, hi: float) -> Any:
    a, b = math.log(lo), math.log(hi)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return _PAD_T + (_H - _PAD_T - _PAD_B) * (b - math.log(v)) / (b - a)

    return y


def _step_marks(run: CutoverRun, x: Any) -> list[str]:
    """A dotted vertical line at each step's start, labelled with its weight."""
    out = []
    for step in run.steps:
        px = x(step.started_s)
        out.append(f'<line class="stepline" x1="{_fmt(px)}" y1="{_PAD_T}" x2="{_fmt(px)}" y2="{_H - _PAD_B}"/>')
        out.append(f'<text class="steplabel" x="{_fmt(px + 3)}" y="{_H - 8}">{escape(_weight(step.weight_pct))}</text>')
    return out


def _span(run: CutoverRun) -> tuple[float, float]:
    t0 = run.steps[0].started_s if run.steps else run.started_s
    ends = [c.end_s for s in run.steps for c in s.checks] + [s.ended_s or s.started_s for s in run.steps]
    t1 = max([t0 + 1.0, *ends])
    return t0, t1


_Point = tuple[float, StepRecord, MetricDecision]


def _series(run: CutoverRun) -> dict[tuple[str, str], list[_Point]]:
    """(endpoint, metric) → its decision at every check with data: (the check's end, its step, the decision)."""
    out: dict[tuple[str, str], list[_Point]] = {}
    for step in run.steps:
        for record in step.checks:
            if record.decision is not None:
                for m in record.decision.metrics:
                    out.setdefault((m.endpoint, m.metric), []).append((float(record.end_s), step, m))
    return out


def _bounds_chart(run: CutoverRun, endpoint: str, metric: str, points: Sequence[_Point]) -> Markup | None:
    """The confidence sequence of one endpoint's metric over the run's checks (``points``, from
    :func:`_series`): the band (lower–upper), the estimate, the tolerance (dashed, red) and no change (x1), on a
    log scale; step starts as vertical lines. None when no check gave this metric any bounds."""
    drawn = [p for p in points if p[2].lower is not None or p[2].upper is not None]
    if not drawn:
        return None
    drawn = _thin(drawn)
    values = [1.0] + [p[2].threshold for p in drawn]
    for _, _, m in drawn:
        values += [v for v in (m.lower, m.upper, m.estimate) if v is not None and 0 < v < math.inf]
    lo = min(max(min(values) / 1.15, 1 / 16), 0.9)
    hi = max(min(max(values) * 1.15, 16.0), 1.1)
    t0, t1 = _span(run)
    x, y = _x_scale(t0, t1, _NARROW), _log_scale(lo, hi)
    parts = [_svg_open(f"{endpoint} {metric}: bounds over time", _NARROW)]
    for tick in _ticks(y, lo, hi):
        py = y(tick)
        parts.append(f'<line class="grid" x1="{_PAD_L}" y1="{_fmt(py)}" x2="{_NARROW - _PAD_R}" y2="{_fmt(py)}"/>')
        parts.append(
            f'<text class="tick" x="{_PAD_L - 4}" y="{_fmt(py + 4)}" text-anchor="end">{_tick_label(tick)}</text>'
        )
    parts += _step_marks(run, x)
    upper_pts = [(x(t), y(m.upper if m.upper is not None else hi)) for t, _, m in drawn]
    lower_pts = [(x(t), y(m.lower if m.lower not in (None, 0.0) else lo)) for t, _, m in drawn]
    band = " ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in upper_pts + lower_pts[::-1])
    parts.append(f'<polygon class="band" points="{band}"/>')
    threshold = " ".join(f"{_fmt(x(t))},{_fmt(y(m.threshold))}" for t, _, m in drawn)
    parts.append(f'<polyline class="threshold" points="{threshold}"/>')
    estimate = " ".join(
        f"{_fmt(x(t))},{_fmt(y(m.estimate))}" for t, _, m in drawn if m.estimate and m.estimate < math.inf
    )
    if estimate:
        parts.append(f'<polyline class="estimate" points="{estimate}"/>')
    for t, step, m in _thin(drawn, MAX_MARKERS):
        css = _cell_css(m)
        tip = (
            f"{_when(t)} · step {step.index + 1} ({_weight(step.weight_pct)}): {_bounds(m)}, estimate "
            f"{_ratio(m.estimate)}, tolerance {_ratio(m.threshold)} — {_cell_label(m)}"
        )
        py = y(m.estimate) if m.estimate and m.estimate < math.inf else y(m.upper or hi)
        parts.append(
            f'<circle class="pt {css}" cx="{_fmt(x(t))}" cy="{_fmt(py)}" r="2.5"><title>{escape(tip)}</title></circle>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # every piece of data in it escaped above


def _split_chart(run: CutoverRun) -> Markup | None:
    """The weight per step (a staircase) and the observed share of the new side at each check (dots: the
    step's requests so far), on a log scale of percent; missing checks as grey ticks at the bottom."""
    if not run.steps:
        return None
    t0, t1 = _span(run)
    x, y = _x_scale(t0, t1, _WIDE), _log_scale(0.5, 100.0)
    parts = [_svg_open("weight and observed split over time", _WIDE)]
    for tick in (1, 5, 10, 50, 100):
        py = y(float(tick))
        parts.append(f'<line class="grid" x1="{_PAD_L}" y1="{_fmt(py)}" x2="{_WIDE - _PAD_R}" y2="{_fmt(py)}"/>')
        parts.append(f'<text class="tick" x="{_PAD_L - 4}" y="{_fmt(py + 4)}" text-anchor="end">{tick}%</text>')
    stairs = []
    for step in run.steps:
        end = step.ended_s if step.ended_s is not None else max([step.started_s, *(c.end_s for c in step.checks)])
        py = y(max(step.weight_pct, 0.5))
        stairs += [f"{_fmt(x(step.started_s))},{_fmt(py)}", f"{_fmt(x(end))},{_fmt(py)}"]
    parts.append(f'<polyline class="weight" points="{" ".join(stairs)}"/>')
    for step in run.steps:
        for record in step.checks:
            px = x(float(record.end_s))
            if record.decision is None:
                tip = f"{_when(record.end_s)}: no APM data ({record.missing or 'missing'})"
                parts.append(
                    f'<rect class="missing" x="{_fmt(px - 1.5)}" y="{_H - _PAD_B - 8}" width="3" height="8">'
                    f"<title>{escape(tip)}</title></rect>"
                )
                continue
            s = record.decision.split
            if s.observed_pct is None:
                continue
            css = "verdict-fail" if s.matches is False else "verdict-pass"
            tip = (
                f"{_when(record.end_s)}: {s.observed_pct:.3g}% observed of {s.hits:,} requests, "
                f"weight {_weight(s.weight_pct)}"
            )
            parts.append(
                f'<circle class="pt {css}" cx="{_fmt(px)}" cy="{_fmt(y(max(s.observed_pct, 0.5)))}" r="2.5">'
                f"<title>{escape(tip)}</title></circle>"
            )
    if run.rollback is not None and run.steps:
        px = x(t1)
        label = f"rollback to {_weight(run.rollback.weight_pct)}" + ("" if run.rollback.applied else " FAILED")
        parts.append(
            f'<text class="rollback" x="{_fmt(px - 4)}" y="{_PAD_T + 10}" text-anchor="end">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # every piece of data in it escaped above


# --- the page ---------------------------------------------------------------------------------------------


@cache
def _parity_css() -> Markup:
    """The parity report's stylesheet, read from its template (one look for both reports)."""
    text = files("parity.report").joinpath(_PARITY_TEMPLATE).read_text(encoding="utf-8")
    found = re.search(r"<style>(.*?)</style>", text, re.DOTALL)
    if found is None or "</" in found.group(1) or "{{" in found.group(1) or "{%" in found.group(1):
        raise ValueError(f"{_PARITY_TEMPLATE} has no plain <style> block to reuse")
    return Markup(found.group(1))  # the package's own stylesheet, checked above


def _hold_text(step: StepRecord) -> str:
    """``8 check(s) in 8 min 30 s``: the step's checks and the time from its start to its end (or newest check)."""
    end = step.ended_s if step.ended_s is not None else (step.checks[-1].end_s if step.checks else step.started_s)
    return f"{len(step.checks)} check(s) in {format_duration(max(end - step.started_s, 0.0))}"


def _step_reasons(step: StepRecord) -> list[str]:
    """What the gate's newest decision of the step said. At 100 % there is no old side to compare: only the
    new side's guardrails act, so the comparison's reasons (nothing on both sides) are replaced by that."""
    decision = step.last_decision
    if decision is None:
        return []
    if step.weight_pct >= 100.0 and decision.action is not Action.STOP:
        return [
            f"no old side to compare at 100%: the new side's guardrails were watched for {_data_checks(step)} "
            "check(s) with data, without a breach"
        ]
    return list(decision.reasons)


def _step_view(run: CutoverRun, step: StepRecord, traffic: Mapping[str, int]) -> dict[str, Any]:
    decision = step.last_decision
    split_figure, split_sentence = _split_text(step)
    breaches = [g for c in step.checks if c.decision for g in c.decision.guardrails]
    last = step is _last_step(run)
    return {
        "index": step.index + 1,
        "weight": _weight(step.weight_pct),
        "label": _step_label(run, step),
        "action": _action_label(run, step),
        "css": _action_css(run, step),
        "started": _when(step.started_s),
        "ended": _when(step.ended_s) if step.ended_s is not None else "— (not ended)",
        "hold": _hold_text(step),
        "checks": len(step.checks),
        "with_data": _data_checks(step),
        "missing": [
            {"index": c.index, "window": f"{_when(c.start_s)} – {_when(c.end_s)}", "reason": c.missing}
            for c in _missing(step)
        ],
        "split": split_figure,
        "split_sentence": split_sentence,
        "split_mismatch": bool(decision and decision.split.matches is False),
        "reasons": _step_reasons(step),
        "guardrails": [{"endpoint": g.endpoint, "kind": g.kind, "reason": g.reason} for g in dict.fromkeys(breaches)],
        "endpoints": _endpoint_rows(run, decision, traffic),
        "open": last,
    }


def _settings_rows(run: CutoverRun) -> list[dict[str, str]]:
    rows = [
        {"name": "old environment", "value": _selector(run.old)},
        {"name": "new environment", "value": _selector(run.new)},
    ]
    for key, value in run.settings.items():
        rows.append({"name": key, "value": json.dumps(json_value(value), ensure_ascii=False)})
    return rows


def _selector(s: Any) -> str:
    tags = f" [{', '.join(s.tags)}]" if s.tags else ""
    return f"service {s.service}, env {s.env}, span {s.span}{tags}"


def _context(run: CutoverRun) -> dict[str, Any]:
    traffic = _traffic(run)
    final = _final_decision(run)
    metrics = _metric_order(run)
    series = _series(run)
    charts = []
    rows = _endpoint_rows(run, final, traffic)
    for row in rows[:MAX_CHARTED_ENDPOINTS]:
        drawn = []
        for metric in metrics:
            svg = _bounds_chart(run, row["key"], metric, series.get((row["key"], metric), []))
            drawn.append({"metric": _metric_label(metric), "svg": svg})
        charts.append(
            {
                "key": row["key"],
                "css": row["css"],
                "label": row["label"],
                "sentences": row["sentences"],
                "charts": drawn,
                "open": row["finding"] is Finding.WORSE,
            }
        )
    step = _last_step(run)
    missing_total = sum(len(_missing(s)) for s in run.steps)
    rb = run.rollback
    return {
        "title": f"Cutover {run.outcome.value.upper()}: {run.new.service} {run.old.env} → {run.new.env}",
        "outcome": run.outcome.name,
        "css": _OUTCOME_CSS[run.outcome],
        "headline": headline(run),
        "final_weight": _weight(run.final_weight_pct),
        "at_step": _step_label(run, step) if step else "before the first step",
        "reasons": list(run.reasons[1:]),  # the first one is in the headline
        "guardrail": run.guardrail,
        "rollback": None
        if rb is None
        else {
            "weight": _weight(rb.weight_pct),
            "applied": rb.applied,
            "reason": rb.reason,
            "sentence": _rollback_sentence(run),
        },
        "started": _when(run.started_s),
        "ended": _when(run.ended_s),
        "duration": format_duration(max(run.ended_s - run.started_s, 0.0)),
        "split_chart": _split_chart(run),
        "steps": [_step_view(run, s, traffic) for s in run.steps],
        "metric_columns": [_metric_label(m) for m in metrics],
        "endpoints": rows,
        "charts": charts,
        "uncharted": max(len(rows) - MAX_CHARTED_ENDPOINTS, 0),
        "unjudged": _unjudged(run),
        "person_decisions": [{"sentence": s} for s in _person_sentences(run)],
        "explanation": _explanation_view(run),
        "missing_total": missing_total,
        "settings": _settings_rows(run),
        "parity_css": _parity_css(),
    }


def _explanation_view(run: CutoverRun) -> dict[str, Any] | None:
    """The page's "why it is slower" section (None: the run was not explained)."""
    e = run.explanation
    if e is None:
        return None
    return {
        "step": _why_step(run),
        "sides": f"{run.old.service} in {run.old.env} vs {run.new.service} in {run.new.env}",
        "rows": [{"endpoint": w.endpoint, "metrics": ", ".join(w.metrics), "sentence": w.sentence} for w in e.why],
        "skipped": _skipped_line(e),
        "file": e.file,
    }


def render_cutover_html(run: CutoverRun) -> str:
    """The cutover page as one self-contained HTML document (no script, no external resource). Pure."""
    from parity.report.html import load_template  # jinja2 (~35 ms): only when a page is rendered

    return load_template("parity.report", TEMPLATE).render(_context(run))


# --- cutover.json ----------------------------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _metric_json(m: MetricDecision) -> dict[str, Any]:
    return {
        "finding": m.finding.value,
        "estimate": _num(m.estimate),
        "lower": _num(m.lower),
        "upper": _num(m.upper),
        "threshold": _num(m.threshold),
        "intervals": m.intervals,
        "reason": m.reason,
        "decidable": m.decidable,
    }


def _step_decision_value(run: CutoverRun, step: StepRecord) -> str | None:
    """``steps[].decision``: how the step ended, as the page says it. The driver holds on missing APM data
    without a decision record (no decision is taken on missing data), so the held run's last step has no
    action: it is ``hold`` there (as :func:`_action_label` says), null only while running or interrupted."""
    if step.action is not None:
        return step.action.value
    if step is _last_step(run) and run.outcome is Outcome.HELD:
        return Action.HOLD.value
    return None


def _step_json(run: CutoverRun, step: StepRecord) -> dict[str, Any]:
    decision = step.last_decision
    go = _go_metrics(run)
    endpoints = []
    for key, metrics in _by_endpoint(decision).items():
        endpoints.append(
            {
                "endpoint": key,
                "decision": _decision_value(_endpoint_finding(list(metrics.values()), go)),
                "metrics": {name: _metric_json(m) for name, m in metrics.items()},
            }
        )
    split = decision.split if decision else None
    return {
        "index": step.index,
        "weight": step.weight_pct,
        "decision": _step_decision_value(run, step),
        "started": step.started_s,
        "ended": step.ended_s,
        "checks": len(step.checks),
        "checks_with_data": _data_checks(step),
        "missing_checks": [
            {"index": c.index, "start": c.start_s, "end": c.end_s, "reason": c.missing} for c in _missing(step)
        ],
        "split": None
        if split is None
        else {
            "weight": split.weight_pct,
            "observed": _num(split.observed_pct),
            "hits": split.hits,
            "matches": split.matches,
        },
        "reasons": _step_reasons(step),
        "guardrails": [
            {"endpoint": g.endpoint, "kind": g.kind, "observed": _num(g.observed), "limit": g.limit, "reason": g.reason}
            for g in dict.fromkeys(g for c in step.checks if c.decision for g in c.decision.guardrails)
        ],
        "endpoints": endpoints,
    }


def cutover_json(run: CutoverRun) -> dict[str, Any]:
    """``cutover.json`` as plain JSON values (see ``parity/schemas/cutover.schema.json``). Pure."""
    step = _last_step(run)
    rb = run.rollback
    return {
        "format": FORMAT,
        "version": VERSION,
        "outcome": run.outcome.value,
        "final_weight": run.final_weight_pct,
        "headline": headline(run),
        "reasons": list(run.reasons),
        "at_step": step.index if step else None,
        "at_weight": step.weight_pct if step else None,
        "guardrail": run.guardrail,
        "rollback": None if rb is None else {"weight": rb.weight_pct, "applied": rb.applied, "reason": rb.reason},
        "started": run.started_s,
        "ended": run.ended_s,
        "started_utc": _iso(run.started_s),
        "ended_utc": _iso(run.ended_s),
        "old": {"service": run.old.service, "env": run.old.env, "span": run.old.span, "tags": list(run.old.tags)},
        "new": {"service": run.new.service, "env": run.new.env, "span": run.new.span, "tags": list(run.new.tags)},
        "endpoints": list(run.endpoints),
        "unjudged_endpoints": _unjudged(run),
        "person_decisions": [
            {"at": d.at_s, "step": d.step_index, "weight": d.weight_pct, "action": d.action, "user": d.user}
            for d in run.person_decisions
        ],
        "steps": [_step_json(run, s) for s in run.steps],
        "settings": json_value(dict(run.settings)),
        "explanation": None if run.explanation is None else encode_explanation(run.explanation),
    }


# --- summary.md and the terminal -------------------------------------------------------------------------


def summary_md(run: CutoverRun, *, report_link: str | None = "index.html") -> str:
    """The run as Markdown (a pull-request comment, a chat message): headline, steps, why, rollback, the
    endpoints at the end. Data text escaped (:func:`parity.report.ci._md`). Pure."""
    lines = [
        f"## Cutover {run.outcome.value.upper()}: {_md_name(run.new.service)} "
        f"{_md_name(run.old.env)} → {_md_name(run.new.env)}",
        "",
        f"**{_md(headline(run))}**",
        "",
        f"Final weight to the new environment: **{_weight(run.final_weight_pct)}**. "
        f"From {_when(run.started_s)} to {_when(run.ended_s)}.",
    ]
    rb = run.rollback
    if rb is not None and not rb.applied:
        lines += ["", f"> **{_md(_rollback_sentence(run) or '')}**"]
    if run.reasons:
        lines += ["", "Why:"] + [f"- {_md(r)}" for r in run.reasons]
    why = why_lines(run)
    if why:
        lines += ["", f"Why it is slower (APM traces of both environments over {_why_step(run)}):"]
        lines += [f"- {_md(w)}" for w in why]
    if run.steps:
        lines += [
            "",
            "| Step | Weight | Decision | Hold | Checks (with data / missing) | Observed split |",
            "|---:|---:|---|---|---|---:|",
        ]
        for step in run.steps:
            figure, _ = _split_text(step)
            lines.append(
                f"| {step.index + 1} | {_weight(step.weight_pct)} | {_action_label(run, step)} | "
                f"{_hold_text(step)} | {_data_checks(step)} / {len(_missing(step))} | {figure} |"
            )
        mismatched = [s for s in run.steps if s.last_decision and s.last_decision.split.matches is False]
        for step in mismatched:
            lines += ["", f"Split mismatch at step {step.index + 1}: {_md(_split_text(step)[1])}"]
    missing = [c for s in run.steps for c in _missing(s)]
    if missing:
        lines += ["", f"Checks without APM data: {len(missing)}"]
        lines += [f"- check {c.index + 1}: {_md(c.missing or '')}" for c in missing[:MAX_LISTED_MISSING]]
        if len(missing) > MAX_LISTED_MISSING:
            lines.append(f"- …and {len(missing) - MAX_LISTED_MISSING} more")
    final = _final_decision(run)
    if final is not None:
        metrics = _metric_order(run)
        lines += [
            "",
            "Endpoints at the last decision (new/old bounds vs tolerance):",
            "",
            "| Endpoint | Decision | " + " | ".join(_metric_label(m) for m in metrics) + " |",
            "|---|---|" + "---|" * len(metrics),
        ]
        rows = _endpoint_rows(run, final, _traffic(run))
        for row in rows[:MAX_SUMMARY_ENDPOINTS]:
            cells = [
                c["label"] if c["bounds"] == "—" else f"{c['label']} {c['bounds']} vs {c['threshold']}"
                for c in row["cells"]
            ]
            lines.append(f"| {_md_name(row['key'])} | {row['label']} | " + " | ".join(_md(c) for c in cells) + " |")
        if len(rows) > MAX_SUMMARY_ENDPOINTS:
            lines += ["", f"…and {len(rows) - MAX_SUMMARY_ENDPOINTS} more endpoint(s): see the full report."]
    person = _person_sentences(run)
    if person:
        lines += ["", "Decisions by a person (the gate had held):"] + [f"- {_md(p)}" for p in person]
    unjudged = _unjudged(run)
    if unjudged:
        lines += ["", "Seen but not judged (appeared after discovery): " + ", ".join(_md_name(k) for k in unjudged)]
    if report_link:
        lines += ["", f"Full report: [{report_link}]({report_link})"]
    return "\n".join(lines) + "\n"


def summary_lines(run: CutoverRun) -> list[str]:
    """The run for the terminal, one plain line each (data text on one line, no escapes): headline, the
    rollback when it failed, one line per step, the reasons. Pure."""
    out = [one_line(headline(run))]
    rb = run.rollback
    if rb is not None and not rb.applied:
        out.append(one_line(f"!!! {_rollback_sentence(run)}"))
    for step in run.steps:
        figure, _ = _split_text(step)
        missing = len(_missing(step))
        extra = f", {missing} without APM data" if missing else ""
        out.append(
            f"  step {step.index + 1}  {_weight(step.weight_pct):>5}  {_action_label(run, step):<11} "
            f"{_hold_text(step)}{extra}; split {figure}"
        )
    out += [one_line(f"  person: {p}") for p in _person_sentences(run)]
    more = run.reasons[1 : 1 + MAX_TERMINAL_REASONS]
    out += [one_line(f"  - {r}") for r in more]
    if len(run.reasons) > 1 + MAX_TERMINAL_REASONS:
        out.append(f"  - …and {len(run.reasons) - 1 - MAX_TERMINAL_REASONS} more (see the report)")
    out += [one_line(f"  why: {w}") for w in why_lines(run)]
    return out


# --- the Datadog event -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutoverEvent:
    """The event a cutover sends: title (≤ 100 characters), text (≤ 4000), alert type (error | warning |
    success | info), tags, aggregation key (one per service: a cutover's events group together)."""

    title: str
    text: str
    alert_type: str
    tags: tuple[str, ...]
    aggregation_key: str


def cutover_event(run: CutoverRun, *, report_url: str | None = None, tags: Sequence[str] = ()) -> CutoverEvent:
    """The run's Datadog event: plain text (``@`` and ``#`` broken by a zero-width space: an endpoint named
    ``@oncall`` pages nobody), cut to Datadog's limits. Alert type: completed success, stopped error, held and
    aborted warning (aborted before any shift: info). Pure."""
    from parity.datadog import MAX_EVENT_TEXT, MAX_EVENT_TITLE, datadog_tag  # the API client: only when sending

    service = run.new.service
    sides = f"{service} {run.old.env} → {run.new.env}"
    title = f"Cutover {run.outcome.value.upper()}: {sides} at {_weight(run.final_weight_pct)}"
    lines = [headline(run)]
    lines += [f"- {r}" for r in run.reasons[1:5]]
    lines += [f"Why: {w}" for w in why_lines(run)]
    for step in run.steps:
        figure, _ = _split_text(step)
        lines.append(
            f"Step {step.index + 1} {_weight(step.weight_pct)}: {_action_label(run, step)}, "
            f"{_hold_text(step)}, split {figure}"
        )
    report_line = encodable(f"Report: {report_url}" if report_url else "Report: not published")
    body = no_mentions(encodable("\n".join(lines)))
    limit = MAX_EVENT_TEXT - len(report_line) - 1
    text = cut(body, limit) + "\n" + report_line
    alert = _ALERT_TYPE[run.outcome]
    if run.outcome is Outcome.ABORTED and not run.steps:
        alert = "info"
    own = [
        datadog_tag("service", service),
        datadog_tag("env", run.new.env),
        datadog_tag("old_env", run.old.env),
        datadog_tag("cutover_outcome", run.outcome.value),
    ]
    if run.final_weight_pct is not None:
        own.append(datadog_tag("cutover_weight", f"{run.final_weight_pct:g}"))
    if run.rollback is not None and not run.rollback.applied:
        own.append("cutover_rollback:failed")
    return CutoverEvent(
        title=cut(no_mentions(encodable(title)), MAX_EVENT_TITLE),
        text=text,
        alert_type=alert,
        tags=(*own, *(t for t in tags if t not in own)),
        aggregation_key=cut(datadog_tag("parity_cutover", service), 100),
    )


# --- writing ---------------------------------------------------------------------------------------------


def write_cutover_reports(run: CutoverRun, out: Path) -> None:
    """Write ``out/cutover.json``, ``out/summary.md`` and ``out/index.html`` (``out`` created if needed). All
    three are rendered first; each is then written atomically (temporary sibling, fsync, rename), so a file is
    either its previous version or the new one, never half-written; other files in ``out`` (the journal) are
    not touched. Raises OSError when ``out`` cannot be written."""
    from parity.report.write import write_atomic

    rendered = {
        "cutover.json": json.dumps(cutover_json(run), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        "summary.md": summary_md(run),
        "index.html": render_cutover_html(run),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name in CUTOVER_FILES:
        write_atomic(out / name, rendered[name])

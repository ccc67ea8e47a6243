"""Short terminal summaries: a ParityResult (what ``parity compare`` and ``parity demo`` print) and a
Calibration (``parity calibrate``). Figures are formatted by :mod:`parity.report.context`'s helpers, as in the HTML
report and summary.md (counts with thousands separators, durations, ratios ``x1.23``, extra time per minute)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parity.judge.calibrate import Calibration
from parity.judge.compare import describe_looks_worse
from parity.judge.planning import EndpointNeeds, SamplePlan
from parity.judge.result import ParityResult, Verdict
from parity.report.context import (
    format_count,
    format_duration,
    format_extra_errors,
    format_extra_time,
    format_ratio,
    other_reasons,
)
from parity.report.explain import why as explain_why
from parity.report.text import cut, one_line

__all__ = ["calibration_summary", "sample_plan_summary", "terminal_summary"]

#: Bottlenecks and regressions listed in the terminal at most.
MAX_ROWS = 8
#: Characters of one terminal line at most (the rest as ``…``): names come from traffic and may be huge.
MAX_LINE_CHARS = 4000


def _lines(lines: list[str]) -> str:
    """The lines as one text, each on one line (data can neither forge a line nor send escape sequences nor
    a lone surrogate that cannot be printed: :func:`parity.report.text.one_line`) and at most
    :data:`MAX_LINE_CHARS` long."""
    return "\n".join(cut(one_line(line), MAX_LINE_CHARS) for line in lines)


def _not_judged(result: ParityResult) -> list[str]:
    """The not-judged lines: endpoints that look worse first (with the requests that would decide them), then
    the others with their first reason; those held by the run's incomparability (latency of another kind than
    the baseline's, as junit's ``<skipped>`` tells them too) in one line."""
    lines = [f"  not judged, {describe_looks_worse(e)}: {cut(e.endpoint.key)}" for e in result.unjudged_looking_worse]
    inc = result.incomparable
    rest = [e for e in result.endpoints if e.verdict is Verdict.INCONCLUSIVE and not e.looks_worse]
    held = [e for e in rest if inc is not None and any(not m.comparable for m in e.metrics)]
    lines += [f"  not judged: {cut(e.endpoint.key)}: {e.reasons[0]}" for e in rest if e not in held]
    lines = lines[:MAX_ROWS]
    if held:
        lines.append(f"  not judged: {len(held)} endpoint(s): latency not comparable (see above)")
    return lines


def terminal_summary(
    result: ParityResult, report: Path | None = None, explanations: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    """A few lines: verdict (``(PARTIAL RUN)`` when a side holds only part of its run: its reasons lead) and why;
    when the sides' latencies do not compare, why and the numbered commands
    that get a comparable side; counts, top bottlenecks, the endpoints not judged (those that look worse
    first), notes, where the report is. ``explanations`` (endpoint key → explain.json entry): a ``why:`` line under
    each bottleneck that has one."""
    counts = result.counts()
    inc = result.incomparable
    reasons = other_reasons(result)
    why = "; ".join(reasons) if reasons or inc is None else f"latency not comparable: {inc.reason}"
    partial = " (PARTIAL RUN)" if result.partial else ""
    lines = [f"parity: {result.verdict.value.upper()}{partial} - {why}"]
    if inc is not None:
        if reasons:
            lines.append(f"  latency not comparable: {inc.reason}")
        lines.append("  for a latency verdict, run one of (capitals are placeholders):")
        lines += [f"    {i}. {remedy}" for i, remedy in enumerate(inc.remedies, start=1)]
    lines += [
        f"  comparison: {result.mode.value}; endpoints: " + ", ".join(f"{counts[v]} {v.value}" for v in Verdict),
        f"  baseline:  {result.baseline.name} ({format_count(result.baseline.requests)} requests, "
        f"{format_duration(result.baseline.duration_s)})",
        f"  candidate: {result.candidate.name} ({format_count(result.candidate.requests)} requests, "
        f"{format_duration(result.candidate.duration_s)})",
    ]
    if result.bottlenecks:
        lines.append(f"  bottlenecks ({'extra server time' if inc is None else 'extra errors'} at baseline traffic):")
        width = max(len(cut(b.endpoint.key)) for b in result.bottlenecks[:MAX_ROWS])
        for b in result.bottlenecks[:MAX_ROWS]:
            if inc is None:
                impact = format_extra_time(b.extra_ms_per_min)
                ratios = f"avg {format_ratio(b.avg_ratio)}  p95 {format_ratio(b.p95_ratio)}"
            else:  # latency of different kinds: only the errors say anything
                impact, ratios = format_extra_errors(b.extra_errors_per_min), "latency incomparable"
            lines.append(f"    {b.rank}. {cut(b.endpoint.key):<{width}}  {impact:>14}  {ratios}")
            if (w := explain_why((explanations or {}).get(b.endpoint.key))) is not None:
                lines.append(f"       why: {w}")
    lines += _not_judged(result)
    for note in result.notes:
        lines.append(f"  note: {note}")
    if report is not None:
        lines.append(f"  report: {report}")
    return _lines(lines)


def _rule(tolerance: float, min_delta: float, unit: str) -> str:
    floor = f"{min_delta * 100:g} pp" if unit == "ratio" else f"{min_delta:g} {unit}"
    return f"{tolerance:.0%} / {floor}"


def _noise(relative: float | None, absolute: float | None, unit: str) -> str:
    if relative is None or absolute is None:
        return "n/a"
    rel = "inf" if relative == float("inf") else f"{relative:.1%}"
    floor = f"{absolute * 100:.2f} pp" if unit == "ratio" else f"{absolute:.2f} {unit}"
    return f"{rel} / {floor}"


def calibration_summary(cal: Calibration) -> str:
    """The calibration as a table: per metric the A/A noise, the significant changes, current and
    suggested tolerances; the false-alarm rate before and after."""
    failed = f": {', '.join(cal.false_alarm_endpoints[:MAX_ROWS])}" if cal.false_alarm_endpoints else ""
    more = len(cal.false_alarm_endpoints) - MAX_ROWS
    lines = [
        f"parity calibrate: {cal.runs} A/A runs, {cal.pairs} pairs compared with the current policy",
        f"  false alarms: {cal.false_alarms}/{cal.pairs} pairs failed ({cal.false_alarm_rate:.1%})"
        + failed
        + (f" and {more} more" if more > 0 else ""),
        f"  {'metric':<11}{'obs':>6}  {'median':>7}  {'noise p99 rel / abs':<22}{'signif.':>7}  "
        f"{'largest significant':<22}{'current':<16}suggested",
    ]
    for f in cal.floors:
        median = "n/a" if f.median_relative is None else f"{f.median_relative:.1%}"
        largest = _noise(f.max_significant_relative, f.max_significant_absolute, f.unit) if f.significant else "-"
        current = _rule(f.current.tolerance, f.current.min_delta, f.unit)
        suggested = _rule(f.suggested.tolerance, f.suggested.min_delta, f.unit)
        changed = suggested if f.suggested != f.current else "(keep)"
        lines.append(
            f"  {f.metric:<11}{f.observations:>6}  {median:>7}  {_noise(f.relative, f.absolute, f.unit):<22}"
            f"{f.significant:>7}  {largest:<22}{current:<16}{changed}"
        )
    lines.append(
        f"  with the suggested tolerances: {cal.suggested_false_alarms}/{cal.pairs} pairs fail "
        f"({cal.suggested_false_alarm_rate:.1%}; measured on the same runs: confirm with fresh A/A runs)"
    )
    if cal.inconclusive_pairs:
        lines.append(f"  {cal.inconclusive_pairs} pair(s) inconclusive: too few requests to judge enough traffic")
    return "\n".join(lines)


def _count(n: float | int | None) -> str:
    return "?" if n is None else f"{round(n):,}"


def _need(e: EndpointNeeds, metric: str) -> str:
    need = e.need(metric)
    return "-" if need is None else _count(need.requests)


def sample_plan_summary(plan: SamplePlan, what: str, *, rate_scale: float = 1.0, rows: int | None = None) -> str:
    """The sample-size plan as a table: per endpoint its share, the requests the run plans to send, and the
    requests per side a verdict needs (typical latency, p95, p99, error rate, throughput); then which
    endpoints with meaningful traffic the run cannot judge and the -t / --rate-scale / --min-endpoint-rps that
    would. ``what`` names the run (e.g. ``baselines/web.json replayed for 600 s at rate scale 1``);
    ``rate_scale`` is the run's (for the suggested one); ``rows``: the busiest endpoints shown at most."""
    total = sum(e.planned for e in plan.endpoints)
    sent = sum(1 for e in plan.endpoints if e.planned > 0)
    lines = [
        f"parity plan: {what}: ~{_count(total)} requests on {sent} endpoints",
        f"  requests per side that catch a change of each metric's tolerance with {plan.power:.0%} power at "
        f"alpha {plan.alpha:g} over ~{plan.tests} tests ('verdict': typical latency, what a pass or a fail needs)",
    ]
    shown = (
        sorted(plan.endpoints, key=lambda e: -e.share)[:rows]
        if rows
        else sorted(plan.endpoints, key=lambda e: -e.share)
    )
    width = max([len(e.endpoint.key) for e in shown] + [8])
    lines.append(
        f"  {'endpoint':<{width}}  {'share':>6}  {'planned':>9}  {'verdict':>8}  {'p95':>8}  {'p99':>8}  "
        f"{'errors':>8}  {'rps':>7}"
    )
    for e in shown:
        mark = "ok" if e.judgeable else ("short" if e.endpoint.key in plan.meaningful else "rare: may go unjudged")
        oversampled = f"  (x{e.load_factor:.3g} oversampled)" if e.load_factor != 1.0 else ""
        lines.append(
            f"  {e.endpoint.key:<{width}}  {e.share:>6.1%}  {_count(e.planned):>9}  {_count(e.verdict_requests):>8}  "
            f"{_need(e, 'p95_ms'):>8}  {_need(e, 'p99_ms'):>8}  {_need(e, 'error_rate'):>8}  {_need(e, 'rps'):>7}  "
            f"{mark}{oversampled}"
        )
    if rows and len(plan.endpoints) > rows:
        lines.append(f"  ... and {len(plan.endpoints) - rows} more endpoints")
    short = plan.unjudgeable
    if not short:
        lines.append(
            "  every endpoint with meaningful traffic gets enough requests for a verdict on its typical latency"
        )
        return "\n".join(lines)
    share = sum(e.share for e in short)
    lines.append(
        f"  {len(short)} endpoint(s) with {share:.1%} of the traffic will get fewer requests than it takes to catch "
        "a change of their tolerance: "
        + ", ".join(f"{e.endpoint.key} ({_count(e.planned)} of {_count(e.verdict_requests)})" for e in short[:4])
        + (f" and {len(short) - 4} more" if len(short) > 4 else "")
    )
    if plan.scale is not None:
        options = [f"-t {math.ceil(plan.run_time_s * plan.scale)}s", f"--rate-scale {rate_scale * plan.scale:.3g}"]
        if plan.min_endpoint_rps is not None:
            options.append(
                f"--min-endpoint-rps {math.ceil(plan.min_endpoint_rps * 10) / 10:g} (oversamples the rare ones)"
            )
        lines.append("  to judge them all: " + ", or ".join(options))
    return "\n".join(lines)

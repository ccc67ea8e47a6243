"""Short terminal summaries: a ParityResult (what ``parity compare`` and ``parity demo`` print) and a
Calibration (``parity calibrate``)."""

from __future__ import annotations

from pathlib import Path

from parity.judge.calibrate import Calibration
from parity.judge.result import ParityResult, Verdict

__all__ = ["calibration_summary", "terminal_summary"]

#: Bottlenecks and regressions listed in the terminal at most.
MAX_ROWS = 8


def _per_minute(ms: float) -> str:
    return f"+{ms / 1000:.1f} s/min" if ms >= 1000 else f"+{ms:.0f} ms/min"


def _ratio(r: float | None) -> str:
    return "n/a" if r is None else f"x{r:.2f}"


def terminal_summary(result: ParityResult, report: Path | None = None) -> str:
    """A few lines: verdict and why, counts, top bottlenecks, where the report is."""
    counts = result.counts()
    lines = [
        f"parity: {result.verdict.value.upper()} - {'; '.join(result.reasons)}",
        f"  comparison: {result.mode.value}; endpoints: " + ", ".join(f"{counts[v]} {v.value}" for v in Verdict),
        f"  baseline:  {result.baseline.name} ({result.baseline.requests} requests, {result.baseline.duration_s:g} s)",
        f"  candidate: {result.candidate.name} ({result.candidate.requests} requests, "
        f"{result.candidate.duration_s:g} s)",
    ]
    if result.bottlenecks:
        lines.append("  bottlenecks (extra server time at baseline traffic):")
        width = max(len(b.endpoint.key) for b in result.bottlenecks[:MAX_ROWS])
        for b in result.bottlenecks[:MAX_ROWS]:
            lines.append(
                f"    {b.rank}. {b.endpoint.key:<{width}}  {_per_minute(b.extra_ms_per_min):>14}  "
                f"avg {_ratio(b.avg_ratio)}  p95 {_ratio(b.p95_ratio)}"
            )
    inconclusive = [e for e in result.endpoints if e.verdict is Verdict.INCONCLUSIVE]
    for e in inconclusive[:MAX_ROWS]:
        lines.append(f"  not judged: {e.endpoint.key}: {e.reasons[0]}")
    for note in result.notes:
        lines.append(f"  note: {note}")
    if report is not None:
        lines.append(f"  report: {report}")
    return "\n".join(lines)


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

"""Short terminal summary of a ParityResult (what ``parity compare`` and ``parity demo`` print)."""

from __future__ import annotations

from pathlib import Path

from parity.judge.result import ParityResult, Verdict

__all__ = ["terminal_summary"]

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

"""The reports' view of ``parity explain``'s explanations (an ``explain.json``; see :mod:`parity.explain.command`).

:func:`explanations_beside` reads the explain.json in a report directory and keeps it only when it explains
*this* comparison: its old/new windows are the result's baseline/candidate windows (whole seconds, as
``parity explain`` wrote them), so an explain.json left by an earlier comparison in the same directory is never
shown beside another's verdicts. :func:`why` is the one line the bottleneck tables, summary.md and the terminal
show; :func:`detail` the HTML endpoint detail (a stacked bar of time per request by component, old vs new, and
the table of the components that changed). Nothing here changes a verdict; without explanations every report is
byte for byte what it was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from parity.explain.judge import calls_text
from parity.judge.result import ParityResult, SideInfo
from parity.report.text import cut

__all__ = [
    "BAR_COMPONENTS",
    "BAR_LABEL_CHARS",
    "EXPLAIN_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "Explanations",
    "detail",
    "explanations_beside",
    "load_explain_json",
    "read_explain_json",
    "why",
]

FORMAT = "parity-explain"
"""``explain.json``'s ``format``."""
FORMAT_VERSION = 1
"""``explain.json``'s ``version`` this parity writes and reads."""
EXPLAIN_FILE = "explain.json"
"""The file name beside ``parity.json`` the reports read explanations from."""

Explanations = Mapping[str, Mapping[str, Any]]
"""Endpoint key → its entry of explain.json (the fields of :func:`parity.explain.judge.to_json`)."""

BAR_COMPONENTS = 7
"""Components drawn one by one in the stacked bar (the largest); the rest are summed as "other"."""
BAR_LABEL_CHARS = 40
"""A component's name in the stacked bar's legend at most (cut with "…": a legend entry cannot wrap, a longer one is
clipped and loses its colour box); the changed-components table names it whole."""


def read_explain_json(path: Path) -> dict[str, Any]:
    """The whole ``explain.json`` document. ValueError (one line naming the file) when it cannot be read or is
    not an explain.json this version reads."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("explanations"), list):
        raise ValueError(f"{path}: not a parity explain.json (format {FORMAT!r})")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: explain.json version {doc.get('version')!r}, this parity reads {FORMAT_VERSION}")
    return doc


def load_explain_json(path: Path) -> dict[str, dict[str, Any]]:
    """The explanations of an ``explain.json`` by endpoint key ({} when the file does not exist). ValueError
    (one line naming the file) when it exists but is not an explain.json this version reads
    (:func:`read_explain_json`)."""
    if not path.exists():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for e in read_explain_json(path)["explanations"]:
        if isinstance(e, dict) and isinstance(e.get("endpoint"), str) and isinstance(e.get("sentence"), str):
            out[e["endpoint"]] = e
    return out


def _window(side: SideInfo) -> list[int]:
    def whole(t: datetime, up: bool) -> int:
        s = t.timestamp()
        return math.ceil(s) if up else math.floor(s)

    return [whole(side.window_start, False), whole(side.window_end, True)]


def explanations_beside(directory: Path, result: ParityResult) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The explanations of ``directory/explain.json`` for ``result``'s endpoints, and a one-line note when a file
    is there but not used (unreadable, another comparison's windows). ({}, None) when there is none."""
    path = directory / EXPLAIN_FILE
    if not path.exists():
        return {}, None
    try:
        doc = read_explain_json(path)
    except ValueError as exc:
        return {}, f"{exc}: not shown in the report"
    old, new = (side if isinstance(side := doc.get(name), Mapping) else {} for name in ("old", "new"))
    if old.get("window") != _window(result.baseline) or new.get("window") != _window(result.candidate):
        return (
            {},
            f"{path}: explains other windows than this comparison's: not shown in the report (re-run parity explain)",
        )
    keys = {e.endpoint.key for e in result.endpoints}
    return {k: v for k, v in load_explain_json(path).items() if k in keys}, None


def why(entry: Mapping[str, Any] | None) -> str | None:
    """The one-line why of an explanation (``no explanation: <reason>`` when there is none), None without one."""
    if not entry:
        return None
    sentence = entry.get("sentence")
    return sentence if isinstance(sentence, str) and sentence else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _ms(value: float) -> str:
    a = abs(value)
    return f"{value:.0f}" if a >= 10 else f"{value:.1f}" if a >= 1 else f"{value:.2f}"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "−") + _ms(abs(value))


def _ratio(value: float) -> str:
    """A calls ratio: 3.0, 0.45."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _calls(c: Mapping[str, Any]) -> str:
    old, new, ratio = _num(c.get("old_calls")), _num(c.get("new_calls")), _num(c.get("calls_ratio"))
    if old is None or new is None:
        return "—"
    text = f"{calls_text(old)} → {calls_text(new)}"
    low, high = _num(c.get("calls_ratio_low")), _num(c.get("calls_ratio_high"))
    if ratio is not None:
        bounds = f", {_ratio(low)}–{_ratio(high)}" if low is not None and high is not None else ""
        text += f" ({_ratio(ratio)}×{bounds})"
    return text


def _reads_line(reads: Any) -> str | None:
    """What reading the traces cost, in one sentence: Spans API requests per side, rate-limit waits and the last
    ``X-RateLimit-*`` state seen (the new side's when it was read). None when no side was read."""
    if not isinstance(reads, Mapping):
        return None
    sides = [(name, r) for name, r in (("old", reads.get("old")), ("new", reads.get("new"))) if isinstance(r, Mapping)]
    if not sides:
        return None
    counts = [(name, r.get("requests")) for name, r in sides]
    total = sum(n for _, n in counts if isinstance(n, int))
    per = ", ".join(f"{name} {n}" for name, n in counts if isinstance(n, int))
    text = f"{total} Spans API request{'' if total == 1 else 's'} ({per})"
    listed = [r.get("waits_s") for _, r in sides]
    waits = [w for ws in listed if isinstance(ws, list) for w in ws if isinstance(w, int | float)]
    if waits:
        text += f"; waited {sum(waits):g} s for its rate limit"
    seen = [r.get("rate_limit") for _, r in sides if isinstance(r.get("rate_limit"), str)]
    text += f"; rate limit last seen: {seen[-1]}" if seen else "; no rate-limit headers in the answers"
    return text + " (span search allows 300 requests per hour for the whole org)."


def detail(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The HTML detail of one explanation (short keys, pre-formatted): ``w`` the why line, ``ok`` explained (False:
    ``w`` is "no explanation: ..."), ``bar`` ``[[label, old ms, new ms], ...]`` (labels cut at
    :data:`BAR_LABEL_CHARS`; largest first, the rest summed as "other"; None without figures), ``t`` the changed
    components (slower/faster) as ``[label, change, old ms, new ms, difference with its interval, calls per request
    old → new (ratio, interval)]``, ``sm`` the sampling statement, ``rl`` what the reads cost (Spans API requests,
    rate-limit waits, the rate limit last seen; absent when no side was read)."""
    out: dict[str, Any] = {"w": why(entry) or "", "ok": bool(entry.get("available"))}
    sampling = entry.get("sampling")
    if isinstance(sampling, Mapping) and isinstance(sampling.get("statement"), str):
        out["sm"] = sampling["statement"]
    cost = _reads_line(entry.get("reads"))
    if cost:
        out["rl"] = cost
    listed = entry.get("components")
    comps = [c for c in listed if isinstance(c, Mapping)] if isinstance(listed, list) else []
    if not out["ok"] or not comps:
        return out
    sized = sorted(comps, key=lambda c: -max(_num(c.get("old_ms")) or 0.0, _num(c.get("new_ms")) or 0.0))
    bar: list[tuple[str, float | None, float | None]] = [
        (cut(str(c.get("label")), BAR_LABEL_CHARS), _num(c.get("old_ms")), _num(c.get("new_ms")))
        for c in sized[:BAR_COMPONENTS]
    ]
    rest = sized[BAR_COMPONENTS:]
    if rest:
        bar.append(
            (f"other ({len(rest)})", sum(_num(c.get("old_ms")) or 0.0 for c in rest),
             sum(_num(c.get("new_ms")) or 0.0 for c in rest))
        )  # fmt: skip
    out["bar"] = [
        [label, None if o is None else round(o, 3), None if n is None else round(n, 3)] for label, o, n in bar
    ]
    table = []
    for c in comps:
        if c.get("change") not in ("slower", "faster"):
            continue
        o, n, d = _num(c.get("old_ms")), _num(c.get("new_ms")), _num(c.get("diff_ms"))
        lo, hi = _num(c.get("diff_low_ms")), _num(c.get("diff_high_ms"))
        diff = (
            "—"
            if d is None
            else f"{_signed(d)} ms" + (f" ({_signed(lo)}…{_signed(hi)})" if lo is not None and hi is not None else "")
        )
        table.append(
            [str(c.get("label")), str(c.get("change")), "—" if o is None else _ms(o), "—" if n is None else _ms(n),
             diff, _calls(c)]
        )  # fmt: skip
    out["t"] = table
    return out

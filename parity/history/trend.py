"""The trend page across nights: ``build_trend`` (view-model) and ``render_trend`` (HTML). Pure: no I/O.

Like :mod:`parity.report.html`, every figure is formatted here and the Jinja2 template
(``parity/history/templates/trend.html``, ``autoescape=True``, ``StrictUndefined``) only loops and prints.
Chart data goes into the page as JSON inside ``<script type="application/json">`` (Jinja's ``tojson``
escapes ``<``, ``>``, ``&`` and quotes), and the chart library's source is inlined by the caller, so the page
makes no network request. Endpoint names come from real traffic: they are only ever printed escaped, or
drawn on a canvas by the chart library.

The page: run verdicts over time (endpoints per verdict per night), the change points worst first, one
collapsible trend chart per endpoint (judged ratios p50/p95/avg/throughput on one axis, the candidate's
error rate in % on another, change points drawn as large points; a night without a figure is a gap, never
0), and the nights with links to their reports. Missing figures print as ``n/a``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import jinja2

from parity.history.changepoints import TRACKED, ChangePoint, Movement, Scale, trend_value
from parity.history.store import History
from parity.judge.result import Verdict
from parity.report.context import (
    MISSING,
    VERDICT_ORDER,
    format_ratio,
    format_time,
    iso_utc,
    mode_label,
    verdict_css,
    verdict_label,
)
from parity.report.html import load_template

__all__ = ["TEMPLATE", "build_trend", "format_change", "format_level", "render_trend", "report_href"]

#: Package-relative path of the trend page template.
TEMPLATE: Final = "templates/trend.html"
#: Endpoints whose chart is open when the page loads (those with change points, worst first).
OPEN_CHARTS: Final = 10
#: Link schemes a recorded report location may use; anything else (``javascript:``…) prints as text.
_SAFE_SCHEMES: Final = frozenset({"http", "https"})
_SCALES = {t.metric: t.scale for t in TRACKED}


def format_level(value: float | None, scale: Scale) -> str:
    """A trended level: a ratio ``x1.23``, an error rate ``1.25%``; ``n/a`` when missing."""
    if value is None:
        return MISSING
    return format_ratio(value) if scale is Scale.RELATIVE else f"{value * 100:.2f}%"


def format_change(c: ChangePoint) -> str:
    """A change point's size: ``+15.3%`` for ratios, ``+1.20 pp`` for error rates."""
    if _SCALES.get(c.metric, Scale.RELATIVE) is Scale.ABSOLUTE or c.relative_change is None:
        return f"{(c.after - c.before) * 100:+.2f} pp"
    return f"{c.relative_change * 100:+.1f}%"


def report_href(report: str | None, out_dir: Path) -> str | None:
    """The link to a recorded report from a page written in ``out_dir``: an http(s) URL as is, a path
    made relative to ``out_dir`` (both read against the same working folder) and URL-quoted. None when
    there is no report or its scheme is not allowed (it is then shown as text only)."""
    if not report:
        return None
    scheme = urlsplit(report).scheme.lower()
    if scheme in _SAFE_SCHEMES:
        return report
    if len(scheme) > 1:  # javascript:, data:, file: … (one letter is a Windows drive)
        return None
    relative = os.path.relpath(report, out_dir).replace(os.sep, "/")
    return quote(relative)


#: Significant digits of every charted value (the tables print from the full figures).
CHART_DIGITS: Final = 4


def _charted(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else float(f"{v:.{CHART_DIGITS}g}") for v in values]


def _verdict(v: Verdict | None) -> dict[str, str]:
    if v is None:
        return {"label": MISSING, "css": "verdict-none"}
    return {"label": verdict_label(v), "css": verdict_css(v)}


def _p_text(p: float) -> str:
    return "< 1e-6" if p < 1e-6 else f"{p:.2g}"


def build_trend(
    history: History,
    changes: Sequence[ChangePoint],
    *,
    out_dir: Path,
    generated_at: datetime,
    min_segment: int,
    chart_js: bool,
) -> dict[str, Any]:
    """The view-model of the trend page for ``history`` and its ``changes`` (worst first, as
    :func:`~parity.history.changepoints.change_points` returns them).

    ``out_dir``: where the page is written (report links are relative to it). ``min_segment``: the
    detector's minimum segment, for the "needs N nights" note. ``chart_js``: whether the chart library is
    inlined (without it the page says so and shows tables only).
    """
    runs = history.runs
    labels = [r.run_at.strftime("%Y-%m-%d %H:%M") for r in runs]
    needed = 2 * min_segment
    endpoint_ids = {e.endpoint: f"ep-{i}" for i, e in enumerate(history.endpoints)}
    for s in history.series:  # metrics without an endpoint row (not expected) still get an anchor
        endpoint_ids.setdefault(s.endpoint, f"ep-{len(endpoint_ids)}")

    change_rows = [
        {
            "endpoint": c.endpoint,
            "anchor": endpoint_ids[c.endpoint],
            "metric": c.label,
            "night": format_time(c.at),
            "index": c.index + 1,
            "before": format_level(c.before, _SCALES.get(c.metric, Scale.RELATIVE)),
            "after": format_level(c.after, _SCALES.get(c.metric, Scale.RELATIVE)),
            "change": format_change(c),
            "movement": c.movement.value,
            "css": "change-worse" if c.movement is Movement.WORSE else "change-better",
            "p": _p_text(c.p_value),
            "nights": f"{c.nights_before} / {c.nights_after}",
        }
        for c in changes
    ]

    by_endpoint: dict[str, list[ChangePoint]] = {}
    for c in changes:
        by_endpoint.setdefault(c.endpoint, []).append(c)
    series_of: dict[str, dict[str, list[float | None]]] = {}
    for s in history.series:
        if s.metric in _SCALES:
            series_of.setdefault(s.endpoint, {})[s.metric] = _charted(trend_value(s))
    latest: dict[str, Verdict | None] = {}
    for e in history.endpoints:
        latest[e.endpoint] = next((v for v in reversed(e.verdicts) if v is not None), None)

    def rank(name: str) -> tuple[int, float, int, str]:
        found = by_endpoint.get(name, [])
        worst = found[0] if found else None  # changes come worst first
        group = 2 if worst is None else 0 if worst.movement is Movement.WORSE else 1
        verdict = latest.get(name)
        return (group, -(worst.size if worst else 0.0), -(verdict.severity if verdict else -1), name)

    names = sorted(set(endpoint_ids) & (set(series_of) | set(latest)), key=rank)
    endpoints = []
    charts: dict[str, Any] = {}
    for i, name in enumerate(names):
        anchor = endpoint_ids[name]
        found = by_endpoint.get(name, [])
        endpoints.append(
            {
                "name": name,
                "anchor": anchor,
                "latest": _verdict(latest.get(name)),
                "changes": len(found),
                "worse": sum(c.movement is Movement.WORSE for c in found),
                "open": bool(found) and i < OPEN_CHARTS,
                "summary": "; ".join(f"{c.label} {format_change(c)} from {format_time(c.at)[:10]}" for c in found),
            }
        )
        charts[anchor] = {
            "series": [
                {
                    "metric": t.metric,
                    "label": t.label,
                    "axis": "ratio" if t.scale is Scale.RELATIVE else "rate",
                    "values": series_of.get(name, {}).get(t.metric, [None] * len(runs)),
                }
                for t in TRACKED
                if t.metric in series_of.get(name, {})
            ],
            "marks": [{"metric": c.metric, "index": c.index, "movement": c.movement.value} for c in found],
        }

    nights = [
        {
            "number": i + 1,
            "at": format_time(r.run_at),
            "verdict": _verdict(r.verdict),
            "counts": [
                {"label": verdict_label(v), "css": verdict_css(v), "n": r.counts.get(v, 0)}
                for v in VERDICT_ORDER
                if r.counts.get(v, 0)
            ],
            "mode": mode_label(r.mode),
            "harness": r.harness_version,
            "commit": (r.commit or MISSING)[:12],
            "report": r.report or "",
            "href": report_href(r.report, out_dir),
        }
        for i, r in enumerate(runs)
    ]
    worse = sum(c.movement is Movement.WORSE for c in changes)
    return {
        "title": "Parity history",
        "store": history.store,
        "generated_at": format_time(generated_at),
        "generated_iso": iso_utc(generated_at),
        "nights": len(runs),
        "first": format_time(runs[0].run_at) if runs else MISSING,
        "last": format_time(runs[-1].run_at) if runs else MISSING,
        "latest": _verdict(runs[-1].verdict if runs else None),
        "enough": len(runs) >= needed,
        "needed": needed,
        "min_segment": min_segment,
        "worse": worse,
        "better": len(changes) - worse,
        "changes": change_rows,
        "endpoints": endpoints,
        "runs": list(reversed(nights)),  # newest first in the table
        "chart_js": chart_js,
        "data": {
            "labels": labels,
            "verdicts": [
                {
                    "label": verdict_label(v),
                    "css": v.value,
                    "counts": [r.counts.get(v, 0) for r in runs],
                }
                for v in VERDICT_ORDER
            ],
            "run_verdicts": [r.verdict.value for r in runs],
            "charts": charts,
        },
    }


def _template() -> jinja2.Template:
    return load_template("parity.history", TEMPLATE)


def render_trend(context: dict[str, Any], chart_js_source: str | None) -> str:
    """The trend page for ``context`` (from :func:`build_trend`) as one self-contained HTML document.

    ``chart_js_source``: the chart library's JavaScript to inline (None: tables only). Raises ValueError
    if that source contains a closing ``</script`` (it could not be inlined safely).
    """
    if chart_js_source is not None and "</script" in chart_js_source.lower():
        raise ValueError("the chart library contains '</script' and cannot be inlined")
    return _template().render({**context, "chart_js_source": chart_js_source or ""})

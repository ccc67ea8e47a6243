"""``parity history`` and the nightly job's ``record_run``: the I/O around the history store and trend page.

For ``parity/cli.py``::

    from parity.history.command import add_history_parser, run_history
    add_history_parser(sub)                      # defines `parity history` and its options
    handlers["history"] = lambda args, _argv: run_history(args)

``parity history [--store PATH] --out DIR [--min-segment 3] [--last N]`` reads the store, finds the change
points and writes ``DIR/trend.html`` (self-contained) and ``DIR/changepoints.json`` (the change points,
worst first, for scripts). Exit codes: **0** the page was written and the history is long enough for
trends (at least 2 × min-segment nights); **3** (inconclusive) the page was written but the history is
too short for any change point yet; **2** bad input (BadInput: missing, locked or damaged store, bad
option, unwritable DIR). Change points do not change the exit code: each night's ``compare`` already
fails on a regression; the trend page is for reading.

The chart library is the vendored Chart.js of the HTML report (``parity/report/static``) when present,
else Debian's ``libjs-chart.js`` (``/usr/share/javascript/chart.js``); without either the page is written
with tables only and says so.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from parity.errors import EXIT_INCONCLUSIVE, EXIT_OK, BadInput
from parity.history.changepoints import MIN_SEGMENT, ChangePoint, change_points
from parity.history.store import DEFAULT_STORE, append, load
from parity.judge.result import ParityResult
from parity.report.context import RunMeta, iso_utc
from parity.report.write import write_atomic

__all__ = [
    "CHART_JS_CANDIDATES",
    "TREND_HTML",
    "TREND_JSON",
    "TrendOutcome",
    "add_history_parser",
    "load_chart_js",
    "record_run",
    "run_history",
    "write_trend",
]

#: Files written into ``--out``.
TREND_HTML: Final = "trend.html"
TREND_JSON: Final = "changepoints.json"
#: ``--out`` when not given: next to the default store.
DEFAULT_OUT: Final = Path("reports/history")
#: Where the chart library is looked for, in order: the report's vendored copy, then Debian's package.
CHART_JS_CANDIDATES: Final = (
    "package:parity.report/static/chart.umd.min.js",
    "/usr/share/javascript/chart.js/chart.min.js",
)


@dataclass(frozen=True)
class TrendOutcome:
    """What ``write_trend`` wrote: the page, the change points (worst first), the nights it covered and
    whether that was enough for trends (``nights >= 2 × min_segment``)."""

    page: Path
    changes: tuple[ChangePoint, ...]
    nights: int
    enough: bool
    charts: bool


def load_chart_js(candidates: Sequence[str] = CHART_JS_CANDIDATES) -> str | None:
    """The first readable chart library of ``candidates`` (``package:<pkg>/<path>`` or a file path) that is
    safe to inline (no ``</script`` or ``<!--``); None when there is none."""
    for candidate in candidates:
        try:
            if candidate.startswith("package:"):
                package, _, inner = candidate.removeprefix("package:").partition("/")
                text = files(package).joinpath(inner).read_text(encoding="utf-8")
            else:
                text = Path(candidate).read_text(encoding="utf-8")
        except (OSError, ModuleNotFoundError, UnicodeDecodeError):
            continue
        lowered = text.lower()
        if "</script" not in lowered and "<!--" not in lowered:
            return text
    return None


def record_run(
    store: Path,
    result: ParityResult,
    meta: RunMeta,
    report: str | Path | None,
    *,
    run_at: datetime | None = None,
) -> int:
    """Append one night to the history store at ``store`` (created if missing); returns its run id.

    ``report``: the night's report — a URL, a path to its ``index.html``, or its directory (recorded as
    ``DIR/index.html``). ``run_at``: when the night ran (default: ``meta.generated_at``). Raises BadInput
    (one line, naming the store) when the store cannot be written; nothing is half-written.
    """
    location: str | None
    if report is None:
        location = None
    elif isinstance(report, Path) or "://" not in report:
        path = Path(report)
        location = str(path / "index.html" if path.is_dir() else path)
    else:
        location = report
    return append(store, result, meta, run_at=run_at or meta.generated_at, report=location)


def _changes_json(changes: Sequence[ChangePoint]) -> list[dict[str, Any]]:
    return [
        {
            "endpoint": c.endpoint,
            "metric": c.metric,
            "night_index": c.index,  # 0-based position in the nights (the page numbers nights from 1)
            "at": iso_utc(c.at),
            "before": c.before,
            "after": c.after,
            "relative_change": c.relative_change,
            "movement": c.movement.value,
            "p_value": c.p_value,
            "nights_before": c.nights_before,
            "nights_after": c.nights_after,
        }
        for c in changes
    ]


def write_trend(
    store: Path,
    out: Path,
    *,
    min_segment: int = MIN_SEGMENT,
    last: int | None = None,
    now: datetime | None = None,
    chart_js: str | None = None,
) -> TrendOutcome:
    """Read ``store``, find change points over the last ``last`` nights (all: None) and write
    ``out/trend.html`` and ``out/changepoints.json``. ``chart_js``: the library to inline (default:
    :func:`load_chart_js`). Raises BadInput for an unusable store, bad options or an unwritable ``out``."""
    from parity.history.trend import build_trend, render_trend  # jinja2: only when a page is drawn, not at CLI start

    if min_segment < 1:
        raise BadInput(f"--min-segment must be at least 1 night, got {min_segment}")
    if last is not None and last < 1:
        raise BadInput(f"--last must be at least 1 night, got {last}")
    history = load(store)
    if last is not None:
        history = history.last(last) if history.runs else history
    changes = change_points(history, min_segment=min_segment)
    library = chart_js if chart_js is not None else load_chart_js()
    context = build_trend(
        history,
        changes,
        out_dir=out,
        generated_at=now or datetime.now(UTC),
        min_segment=min_segment,
        chart_js=library is not None,
    )
    page = out / TREND_HTML
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / TREND_JSON, json.dumps(_changes_json(changes), indent=2, allow_nan=False) + "\n")
        write_atomic(page, render_trend(context, library))
    except OSError as exc:
        raise BadInput(f"{out}: cannot write the trend page: {exc.strerror or exc}") from None
    return TrendOutcome(page, changes, len(history.runs), bool(context["enough"]), library is not None)


def add_history_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``parity history`` to ``subparsers`` (the object ``ArgumentParser.add_subparsers`` returns)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history",
        help="trend page across nights from the history store, with change points",
        description="Read the history store the nightly job appends to and write DIR/trend.html (verdicts "
        "over time, per-endpoint trends of the judged ratios with change points, links to each night's "
        "report) and DIR/changepoints.json. A change point is a new level that holds for at least "
        "--min-segment nights. Exits 0, 3 when the history is shorter than 2 x --min-segment nights "
        "(the page is still written), 2 on bad input.",
        epilog="examples:\n  parity history -o reports/history\n"
        "  parity history --store /var/lib/parity/history.sqlite --last 60 --min-segment 5 -o reports/trend",
    )
    parser.add_argument(
        "--store", type=Path, default=DEFAULT_STORE, metavar="PATH", help=f"history store (default: {DEFAULT_STORE})"
    )
    parser.add_argument(
        "-o",
        "--out",
        dest="out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"directory for trend.html and changepoints.json (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--min-segment",
        type=int,
        default=MIN_SEGMENT,
        metavar="N",
        help="fewest nights a level must hold to count as a change (default: %(default)s)",
    )
    parser.add_argument("--last", type=int, default=None, metavar="N", help="only the last N nights (default: all)")
    return parser


def run_history(args: argparse.Namespace) -> int:
    """``parity history``: write the trend page; prints two lines; the exit code (module docstring).
    Raises BadInput (the CLI prints it and exits 2)."""
    outcome = write_trend(args.store, args.out, min_segment=args.min_segment, last=args.last)
    worse = sum(c.movement.value == "worse" for c in outcome.changes)
    print(
        f"parity history: {outcome.nights} nights, {len(outcome.changes)} change points "
        f"({worse} for the worse) -> {outcome.page}"
    )
    if not outcome.enough:
        print(f"  trends need at least {2 * args.min_segment} nights; the page shows what there is")
        return EXIT_INCONCLUSIVE
    return EXIT_OK

"""``write_reports(result, out_dir, meta, measurements=None)``: the one function of ``parity.report`` that
touches the disk.

Writes ``index.html``, ``parity.json``, ``junit.xml`` and ``summary.md`` into ``out_dir`` (created if
needed). Everything is rendered before anything is written, and each file is written atomically — to a
temporary file in the same directory, flushed and fsynced, then renamed over the target — so an
interrupted or failed run leaves either the previous file or the new one, never half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.report.ci import junit_xml, parity_json, summary_md
from parity.report.context import RunMeta
from parity.report.html import render_html

__all__ = ["FILE_MODE", "ReportPaths", "write_atomic", "write_reports"]

#: Permissions of written reports (a temporary file starts as owner-only).
FILE_MODE = 0o644


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_reports` put each report."""

    index_html: Path
    parity_json: Path
    junit_xml: Path
    summary_md: Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary sibling and a rename; on any error the
    temporary file is removed and ``path`` is left as it was."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(FILE_MODE)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_reports(
    result: ParityResult,
    out_dir: Path,
    meta: RunMeta,
    *,
    measurements: tuple[Measurement, Measurement] | None = None,
) -> ReportPaths:
    """Render every report for ``result`` and write them into ``out_dir``; returns their paths.

    ``measurements`` = (baseline, candidate), the Measurements ``result`` compared: with them the HTML
    report also charts each endpoint's latency distribution and its latency and request rate over time
    (without them it renders all the rest). The Markdown summary links to ``index.html`` next to it.
    """
    paths = ReportPaths(
        index_html=out_dir / "index.html",
        parity_json=out_dir / "parity.json",
        junit_xml=out_dir / "junit.xml",
        summary_md=out_dir / "summary.md",
    )
    rendered = {
        paths.index_html: render_html(result, meta, measurements),
        paths.parity_json: json.dumps(parity_json(result, meta), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        paths.junit_xml: junit_xml(result),
        paths.summary_md: summary_md(result, meta, report_link=paths.index_html.name),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, text in rendered.items():
        write_atomic(path, text)
    return paths

"""``write_reports(result, out_dir, meta, measurements=None)``: the one function of ``parity.report`` that
touches the disk.

Writes ``index.html``, ``parity.json``, ``junit.xml`` and ``summary.md`` into ``out_dir`` (created if
needed) **as one set**: a reader of ``out_dir`` finds either the whole previous set or the whole new one, never
a mix of the two and never half a file, whenever the writer is killed (SIGKILL, power loss after the fsyncs).

How. The directory may hold other files (a nightly's night directory keeps its Measurements and
``locust.log`` there; ``parity ab --out`` its Locust log; ``--out`` may name any directory of the user's), so
the directory itself cannot be swapped. Instead the four names are fixed symbolic links through one pointer::

    out_dir/index.html   -> .parity-report/index.html        (and parity.json, junit.xml, summary.md)
    out_dir/.parity-report -> .parity-report-<id>            (the current set)
    out_dir/.parity-report-<id>/index.html ...               (the files)

A new set is rendered in memory, written into a fresh ``.parity-report-<id>/`` (every file fsynced, then the
directory), and made current by replacing the ``.parity-report`` link with one ``rename`` — the only step a
reader can see, and it is atomic: before it every name resolves into the old set, after it into the new one.
The old set's directory is removed afterwards (a reader that already opened a file keeps reading it).
Before the first set exists the four links dangle (no report, as before any run); a directory written by an
older version (four plain files) is first turned into the same layout around its *old* files (hard links),
so even that migration shows the old set until the swap.

Writers of one directory take turns (``flock`` on the directory); each first removes what a killed writer
left: ``.parity-report-<id>`` directories that are not current (only when they hold nothing but report
files), ``.parity-report.tmp-*`` links and the ``.<name>.*.tmp`` files of older versions. Nothing else in
the directory is touched. Linux/POSIX only (symbolic links, ``flock``).

:func:`write_atomic` writes one file the same way (temporary sibling, fsync, rename).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.report.ci import junit_xml, parity_json, summary_md
from parity.report.context import RunMeta
from parity.report.html import render_html
from parity.report.text import encodable

__all__ = ["CURRENT", "FILE_MODE", "REPORT_FILES", "SET_PREFIX", "ReportPaths", "write_atomic", "write_reports"]

#: Permissions of written reports (a temporary file starts as owner-only).
FILE_MODE = 0o644
#: The four files of a report set, in the order they are written.
REPORT_FILES = ("index.html", "parity.json", "junit.xml", "summary.md")
#: The link naming the current set, and the prefix of the sets' directories and of temporary links.
CURRENT = ".parity-report"
SET_PREFIX = CURRENT + "-"
_TMP_LINK_PREFIX = CURRENT + ".tmp-"


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_reports` put each report."""

    index_html: Path
    parity_json: Path
    junit_xml: Path
    summary_md: Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8; a lone surrogate, which UTF-8 cannot hold, as U+FFFD) to ``path`` via a temporary
    sibling and a rename; on any error the temporary file is removed and ``path`` is left as it was."""
    text = encodable(text)
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


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` (released when the process dies, however it dies)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _link(directory: Path, name: str, target: str) -> None:
    """Make ``directory/name`` a symbolic link to ``target`` atomically (a temporary link renamed over it)."""
    path = directory / name
    if path.is_symlink() and str(path.readlink()) == target:
        return
    tmp = directory / f"{_TMP_LINK_PREFIX}{uuid.uuid4().hex}"
    tmp.symlink_to(target)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _current(directory: Path) -> str | None:
    """The current set's directory name (None: no set yet)."""
    link = directory / CURRENT
    return str(link.readlink()) if link.is_symlink() else None


def _is_leftover_set(path: Path) -> bool:
    """A set directory of ours: named so and holding nothing but report files (never a user's directory)."""
    if not path.name.startswith(SET_PREFIX) or path.is_symlink() or not path.is_dir():
        return False
    return all(p.name in REPORT_FILES and p.is_file() and not p.is_symlink() for p in path.iterdir())


def _clean(directory: Path, keep: str | None) -> None:
    """Remove what killed writers left in ``directory`` (see the module docstring); ``keep``: the current set."""
    for path in directory.iterdir():
        name = path.name
        if name.startswith(SET_PREFIX) and name != keep and _is_leftover_set(path):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(_TMP_LINK_PREFIX) and path.is_symlink():
            path.unlink(missing_ok=True)
        elif name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in REPORT_FILES) and path.is_file():
            path.unlink(missing_ok=True)  # an older version's per-file temporary file


def _write_set(directory: Path, rendered: dict[str, str]) -> str:
    """Write ``rendered`` (file name → text) into a fresh set directory, fsynced; returns its name."""
    name = f"{SET_PREFIX}{uuid.uuid4().hex[:16]}"
    target = directory / name
    target.mkdir()
    for file, text in rendered.items():
        with (target / file).open("w", encoding="utf-8", newline="\n") as f:
            f.write(encodable(text))
            f.flush()
            os.fsync(f.fileno())
        (target / file).chmod(FILE_MODE)
    _fsync_dir(target)
    return name


def _adopt_plain_files(directory: Path) -> None:
    """Turn a directory written by an older version (the report files as plain files, no set yet) into the
    set layout around those same files: hard links into a set directory, which becomes current, then each
    plain file is replaced by its link (it shows the same content throughout)."""
    plain = [f for f in REPORT_FILES if (directory / f).is_file() and not (directory / f).is_symlink()]
    if not plain or _current(directory) is not None:
        return
    name = f"{SET_PREFIX}{uuid.uuid4().hex[:16]}"
    (directory / name).mkdir()
    for f in plain:
        os.link(directory / f, directory / name / f)
    _fsync_dir(directory / name)
    _link(directory, CURRENT, name)


def write_reports(
    result: ParityResult,
    out_dir: Path,
    meta: RunMeta,
    *,
    measurements: tuple[Measurement, Measurement] | None = None,
) -> ReportPaths:
    """Render every report for ``result`` and make them ``out_dir``'s current set (see the module docstring:
    a reader sees the old set or the new one, never a mix); returns their paths.

    ``measurements`` = (baseline, candidate), the Measurements ``result`` compared: with them the HTML
    report also charts each endpoint's latency distribution and its latency and request rate over time
    (without them it renders all the rest). The Markdown summary links to ``index.html`` next to it.
    Raises OSError when the directory cannot be written (or a report name in it is a directory).
    """
    paths = ReportPaths(*(out_dir / f for f in REPORT_FILES))
    rendered = {
        "index.html": render_html(result, meta, measurements),
        "parity.json": json.dumps(parity_json(result, meta), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        "junit.xml": junit_xml(result),
        "summary.md": summary_md(result, meta, report_link=paths.index_html.name),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        _clean(out_dir, _current(out_dir))
        _adopt_plain_files(out_dir)
        old = _current(out_dir)
        new = _write_set(out_dir, rendered)
        for f in REPORT_FILES:  # the fixed links (dangling until the first set is current)
            _link(out_dir, f, f"{CURRENT}/{f}")
        _link(out_dir, CURRENT, new)  # the swap: one rename
        _fsync_dir(out_dir)
        if old is not None and old != new and _is_leftover_set(out_dir / old):
            shutil.rmtree(out_dir / old, ignore_errors=True)
    return paths

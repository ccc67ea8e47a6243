"""Source: Locust per-request CSV logs (``locust.contrib.csv_request_logger``) → Measurement.

Columns: timestamp (Unix s, send time), request_type, name, response_time_ms, response_length,
status_code (0 = no response), exception (empty = success). A row is an error when ``exception`` is set;
latency counts only for rows that got a response (status_code > 0). Endpoint = request_type + name.
The window runs from the first send to just after the last one; the latency is client-side service time.
A leading byte-order mark is skipped. Timestamps must lie between 1970 and 2100 and within ``MAX_SPAN_S`` of
each other, latencies between 0 and ``parity.bounds.MAX_LATENCY_MS``, status codes between 0 and 999; anything
else (NaN, inf, negative) is BadInput naming the line and column.

**Several Locust processes** (``--processes N``, master + workers): ``CsvRequestLogger(path)`` created at import
and registered in ``events.init`` opens ``path`` with mode "w" in *every* process after the fork: each
truncates the file and writes at its own offset, so rows overwrite each other (measured with Locust 2.47,
``--processes 2``: torn rows such as ``...,200,11796075209.06,GET,/,...``, rows lost). Such a file cannot be
repaired. It is refused: a record with a field count other than 7, a header repeated mid-file, or NUL bytes
(a hole left by a truncation) is BadInput naming the line. Rows that are only out of time order are fine.
Log one file per process instead (create the logger inside the ``init`` listener with the process id in its
name) and pass the directory, or a quoted glob, to ``parity compare``: :func:`read_locust_csvs` merges them
(a master's file with only a header adds nothing).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source, SourceKind
from parity.replay.recorder import Recorder, timeline_interval
from parity.sources import LOCUST_CSV_COLUMNS

__all__ = ["COLUMNS", "read_locust_csv", "read_locust_csvs"]

COLUMNS = LOCUST_CSV_COLUMNS
#: Added to the last send time to close the window (s), so a one-request log has a non-empty window.
WINDOW_TAIL_S = 0.001
#: Longest span of send times accepted, s: a log covers one run (mixed-up files would make a huge timeline).
MAX_SPAN_S = 31 * 86400.0
#: Said after every refusal of a damaged log: the usual cause and the fix.
SEVERAL_WRITERS = (
    "several Locust processes wrote this one file (--processes / workers) and their rows overwrote each other; "
    "log one file per process and pass their directory (README: Locust request logs)"
)


def _numeric(frame: pd.DataFrame, column: str, path: Path, lo: float, hi: float, what: str) -> pd.Series:
    """The column as floats, each finite and in ``[lo, hi]``; BadInput naming the first bad line otherwise."""
    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    array = values.to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(array) & (array >= lo) & (array <= hi))
    if bad.any():
        row = int(bad.argmax())
        shown = str(frame[column].iloc[row])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise BadInput(f"{path}: line {row + 2}: {column}: expected {what}, got {shown!r}")
    return values


def _records(data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Fields per CSV record of ``data`` and each record's first physical line (1-based), quote-aware and
    vectorised (a ``"`` toggles quoting; ``""`` inside quotes toggles twice). A final empty record is dropped."""
    b = np.frombuffer(data, dtype=np.uint8)
    quoted = np.cumsum(b == ord('"'), dtype=np.uint8) & 1  # parity survives the uint8 wrap-around
    newline = b == ord("\n")
    ends = np.flatnonzero(newline & (quoted == 0))
    starts = np.concatenate(([0], ends + 1))
    if starts[-1] >= len(b):
        starts = starts[:-1]
    commas = np.flatnonzero((b == ord(",")) & (quoted == 0))
    fields = np.bincount(np.searchsorted(starts, commas, side="right") - 1, minlength=len(starts)) + 1
    lines = np.cumsum(newline, dtype=np.int64)[np.maximum(starts - 1, 0)] * (starts > 0) + 1
    return fields.astype(np.int64), lines.astype(np.int64)


def _check_intact(data: bytes, p: Path) -> None:
    """BadInput naming the first line damaged by concurrent writers: NUL bytes, or a record with a field count
    other than ``len(COLUMNS)`` (a torn or glued row)."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise BadInput(f"{p}: line {line}: NUL bytes (a hole left by a truncation); {SEVERAL_WRITERS}")
    fields, lines = _records(data)
    bad = fields != len(COLUMNS)
    if bad.any():
        i = int(bad.argmax())
        raise BadInput(f"{p}: line {lines[i]}: {fields[i]} fields, expected {len(COLUMNS)}; {SEVERAL_WRITERS}")


def _frame(p: Path) -> pd.DataFrame:
    """The log's rows as strings, after checking that no row is torn; BadInput otherwise."""
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read: {exc.strerror or exc}") from None
    _check_intact(data, p)
    try:
        frame = pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", index_col=False
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"{p}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
    again = (frame["timestamp"].str.strip() == "timestamp").to_numpy()
    if again.any():
        raise BadInput(f"{p}: line {int(again.argmax()) + 2}: the header again, mid-file; {SEVERAL_WRITERS}")
    return frame


def read_locust_csv(path: str | Path) -> Measurement:
    """Read a Locust request log; raises BadInput naming the file, line and column of a bad value."""
    return read_locust_csvs([Path(path)])


def read_locust_csvs(paths: Sequence[Path], name: str | None = None) -> Measurement:
    """Read the request logs of one run (one file per Locust process) as one Measurement; ``name`` describes
    them (default: the one file's name). BadInput names the file, line and column of a bad value; a file
    with a header and no rows (a master's) adds nothing, but the run as a whole needs a request."""
    frames = []
    for p in paths:
        frame = _frame(p)
        if frame.empty:
            continue
        _numeric(frame, "timestamp", p, MIN_UNIX_S, MAX_UNIX_S, "a Unix time in seconds (1970 to 2100)")
        _numeric(frame, "response_time_ms", p, 0.0, MAX_LATENCY_MS, f"a latency in ms (0 to {MAX_LATENCY_MS:g})")
        _numeric(frame, "status_code", p, 0.0, 999.0, "an HTTP status code (0 = no response)")
        for column in ("request_type", "name"):
            empty = (frame[column].str.strip() == "").to_numpy()
            if empty.any():
                raise BadInput(f"{p}: line {int(empty.argmax()) + 2}: {column}: empty")
        frames.append(frame[list(COLUMNS)])
    where = name or (paths[0].name if len(paths) == 1 else f"{len(paths)} files")
    shown = Path(name) if name else paths[0]
    if not frames:
        raise BadInput(f"{shown}: no requests in the log")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    sent = pd.to_numeric(frame["timestamp"]).astype("float64")
    latency = pd.to_numeric(frame["response_time_ms"]).astype("float64")
    status = pd.to_numeric(frame["status_code"]).astype("float64")
    start, last = float(sent.min()), float(sent.max())
    if last - start > MAX_SPAN_S:
        raise BadInput(
            f"{shown}: timestamps span {(last - start) / 86400:.0f} days; a Locust request log covers one run of at "
            f"most {MAX_SPAN_S / 86400:.0f} days"
        )
    recorder = Recorder(timeline_interval(last - start))
    errors = (frame["exception"].str.strip() != "").to_numpy()
    keys = pd.MultiIndex.from_arrays([frame["request_type"].str.strip(), frame["name"].str.strip()])
    number, endpoints = pd.factorize(keys)
    recorder.record_many(
        list(endpoints),
        number.astype(np.int64),
        np.asarray(sent, dtype=np.float64),
        np.where(status.to_numpy() > 0, latency.to_numpy(dtype=np.float64), np.nan).astype(np.float64),
        errors,
    )
    files = f" ({len(paths)} files, one per process)" if len(paths) > 1 else ""
    return recorder.to_measurement(
        source=Source(SourceKind.LOCUST_CSV, description=f"Locust request log {where}{files}"),
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(last + WINDOW_TAIL_S, UTC),
        latency_kind=LatencyKind.SERVICE_TIME,
    )

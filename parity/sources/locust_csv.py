"""Source: Locust per-request CSV logs (``locust.contrib.csv_request_logger``) → Measurement.

Columns: timestamp (Unix s, send time), request_type, name, response_time_ms, response_length,
status_code (0 = no response), exception (empty = success). A row is an error when ``exception`` is set;
latency counts only for rows that got a response (status_code > 0). Endpoint = request_type + name.
The window runs from the first send to just after the last one; the latency is client-side service time.
A leading byte-order mark is skipped. Timestamps must lie between 1970 and 2100 and within ``MAX_SPAN_S`` of
each other, latencies between 0 and ``parity.bounds.MAX_LATENCY_MS``, status codes between 0 and 999; anything
else (NaN, inf, negative) is BadInput naming the line and column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source, SourceKind
from parity.replay.recorder import Recorder, timeline_interval
from parity.sources import LOCUST_CSV_COLUMNS

__all__ = ["COLUMNS", "read_locust_csv"]

COLUMNS = LOCUST_CSV_COLUMNS
#: Added to the last send time to close the window (s), so a one-request log has a non-empty window.
WINDOW_TAIL_S = 0.001
#: Longest span of send times accepted, s: a log covers one run (mixed-up files would make a huge timeline).
MAX_SPAN_S = 31 * 86400.0


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


def read_locust_csv(path: str | Path) -> Measurement:
    """Read a Locust request log; raises BadInput naming the file, line and column of a bad value."""
    p = Path(path)
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"{p}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
    if frame.empty:
        raise BadInput(f"{p}: no requests in the log")
    sent = _numeric(frame, "timestamp", p, MIN_UNIX_S, MAX_UNIX_S, "a Unix time in seconds (1970 to 2100)")
    latency = _numeric(frame, "response_time_ms", p, 0.0, MAX_LATENCY_MS, f"a latency in ms (0 to {MAX_LATENCY_MS:g})")
    status = _numeric(frame, "status_code", p, 0.0, 999.0, "an HTTP status code (0 = no response)")
    for column in ("request_type", "name"):
        empty = (frame[column].str.strip() == "").to_numpy()
        if empty.any():
            raise BadInput(f"{p}: line {int(empty.argmax()) + 2}: {column}: empty")
    start, last = float(sent.min()), float(sent.max())
    if last - start > MAX_SPAN_S:
        raise BadInput(
            f"{p}: timestamps span {(last - start) / 86400:.0f} days (lines {int(sent.argmin()) + 2} and "
            f"{int(sent.argmax()) + 2}); a Locust request log covers one run of at most {MAX_SPAN_S / 86400:.0f} days"
        )
    recorder = Recorder(timeline_interval(last - start))
    errors = frame["exception"].str.strip() != ""
    for method, name, t, ms, code, err in zip(
        frame["request_type"], frame["name"], sent, latency, status, errors, strict=True
    ):
        recorder.record(method.strip(), name.strip(), float(t), float(ms) if code > 0 else None, bool(err))
    return recorder.to_measurement(
        source=Source(SourceKind.LOCUST_CSV, description=f"Locust request log {p.name}"),
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(last + WINDOW_TAIL_S, UTC),
        latency_kind=LatencyKind.SERVICE_TIME,
    )

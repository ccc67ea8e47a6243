"""Source: Locust per-request CSV logs (``locust.contrib.csv_request_logger``) → Measurement.

Columns: timestamp (Unix s, send time), request_type, name, response_time_ms, response_length,
status_code (0 = no response), exception (empty = success). A row is an error when ``exception`` is set;
latency counts only for rows that got a response (status_code > 0). Endpoint = request_type + name.
The window runs from the first send to just after the last one; the latency is client-side service time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source, SourceKind
from parity.replay.recorder import Recorder, timeline_interval
from parity.sources import LOCUST_CSV_COLUMNS

__all__ = ["COLUMNS", "read_locust_csv"]

COLUMNS = LOCUST_CSV_COLUMNS
#: Added to the last send time to close the window (s), so a one-request log has a non-empty window.
WINDOW_TAIL_S = 0.001


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = (values.isna() | (values < 0)).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise BadInput(
            f"{path}: line {row + 2}: {column}: expected a non-negative number, got {frame[column].iloc[row]!r}"
        )
    return values


def read_locust_csv(path: str | Path) -> Measurement:
    """Read a Locust request log; raises BadInput naming the file, line and column of a bad value."""
    p = Path(path)
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False, na_filter=False)
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"{p}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
    if frame.empty:
        raise BadInput(f"{p}: no requests in the log")
    sent = _numeric(frame, "timestamp", p)
    latency = _numeric(frame, "response_time_ms", p)
    status = _numeric(frame, "status_code", p)
    for column in ("request_type", "name"):
        empty = (frame[column].str.strip() == "").to_numpy()
        if empty.any():
            raise BadInput(f"{p}: line {int(empty.argmax()) + 2}: {column}: empty")
    start, last = float(sent.min()), float(sent.max())
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

"""Source: Locust's own ``--csv PREFIX`` output (``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``,
``PREFIX_failures.csv``) → Measurement. Summary level and closed-loop (``SourceKind.LOCUST_CSV``).

**Which files.** ``parity compare`` takes one path per side. Given ``X_stats.csv``, ``X_stats_history.csv`` and
``X_failures.csv`` next to it are read too when present. Given ``X_stats_history.csv`` and ``X_stats.csv`` exists
next to it, that is read (with the history); alone, the history is read on its own (below). Locust 0.x wrote
``X_requests.csv`` (``"# requests"`` header, ``"None","Total"`` row, no percentiles; its ``# requests`` counts
successes only — Locust's 0.x docs show ``"/does_not_exist",0,56`` — so count = requests + failures): read the same
way.

**Per endpoint** (a row per Type + Name): count = ``Request Count``, errors = ``Failure Count``, latency a
``LatencySummary``: ``avg_ms`` = ``Average Response Time`` (Locust's exact mean over requests with a response
time), ``max_ms`` = ``Max Response Time`` (exact), ``p50…p99`` from the ``50%``, ``75%``, ``90%``, ``95%``, ``99%``
columns (``Median Response Time`` when there is no ``50%``); columns Locust did not report (it writes the
percentiles of ``locust.stats.PERCENTILES_TO_REPORT``) stay None. The ``Aggregated`` row (0.x: ``Total``) is not an
endpoint: it is used only to check that the file is whole (its count is the endpoints' sum) and for the run time.

**Rounding.** Locust keeps response times in buckets rounded to whole ms below 100 ms and to 2 significant digits
above (``locust.stats.bucket_response_time``) and reports as a percentile the bucket of the ⌊n·q⌋+1-th smallest
request (``calculate_response_time_percentile``): a reported 150 ms p95 is anything in [145, 155] ms, up to ±5%
(±0.5 ms below 100 ms). The summaries carry it (``LatencySummary.quantile_digits = 2``) and the judge does not
decide a percentile that the rounding alone could move across its tolerance (inconclusive instead), whether the
other side is a summary or request-level data. ``avg_ms`` and ``max_ms`` are exact. A locustfile that replaces
``bucket_response_time`` is not visible in the file.

**Window.** ``Requests/s`` is ``Request Count / (last request − stats start)`` (``StatsEntry.total_rps``, the same
denominator on every row), so the run time is ``count / Requests/s`` of the Aggregated row: the window's
duration, hence each endpoint's throughput (shown, never judged: closed loop). The file has no timestamps: the
window ends at the last ``Timestamp`` of the history + 1 s when it is there, else at the file's modification time
(Locust rewrites the file until it quits; a copy may have lost that time — the description says which).
A run whose Aggregated ``Requests/s`` is 0 has no known duration: BadInput.

**History alone** (``X_stats_history.csv`` without ``X_stats.csv``): needs per-endpoint rows (Locust's
``--csv-full-history``; without it only the Aggregated row is written: BadInput). Per endpoint its last row's
``Total …`` figures: count, failures, average, median (rounded), max; the ``50%…`` columns of a full history
cover only the last 10 s (``get_current_response_time_percentile``), so p75…p99 are None. Window: first
``Timestamp`` to the last + 1 s.

**Timelines** (per endpoint, only from a full history): per interval (``timeline_interval`` of the window) the
increase of ``Total Request Count`` / ``Total Failure Count``. Under ``--processes`` the master's history moves in
the workers' 3-second reports.

**Failures.** ``X_failures.csv`` (Method, Name, Error, Occurrences[, First Seen, Last Seen]) breaks the failure
counts down by message; the model has no place for messages, so it is read only to check that its occurrences
add up to each endpoint's ``Failure Count`` (files from different runs: BadInput). Errors come from the stats.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyKind,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.replay.recorder import timeline_interval

__all__ = ["LOCUST_QUANTILE_DIGITS", "read_locust_stats", "read_locust_stats_history", "siblings"]

#: Significant digits of Locust's bucketed response times above 100 ms (whole ms below): ``bucket_response_time``.
LOCUST_QUANTILE_DIGITS = 2
#: Column names, lower case, by what they hold: Locust 1.0+ first, then 0.x.
_ALIASES: dict[str, tuple[str, ...]] = {
    "type": ("type", "method"),
    "name": ("name",),
    "count": ("request count", "# requests"),
    "failures": ("failure count", "# failures"),
    "median": ("median response time", "median response time"),
    "avg": ("average response time",),
    "max": ("max response time",),
    "rps": ("requests/s",),
}
_HISTORY_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp",),
    "type": ("type",),
    "name": ("name",),
    "count": ("total request count",),
    "failures": ("total failure count",),
    "median": ("total median response time",),
    "avg": ("total average response time",),
    "max": ("total max response time",),
}
#: Percentile columns mapped to the model's quantiles.
_QUANTILE_COLUMNS = {"50%": "p50_ms", "75%": "p75_ms", "90%": "p90_ms", "95%": "p95_ms", "99%": "p99_ms"}
_AGGREGATED = ("aggregated", "total")
_PERCENT = re.compile(r"^\d+(\.\d+)?%$")


def siblings(path: Path) -> tuple[Path | None, Path | None, Path | None]:
    """(stats, history, failures) files of the ``--csv`` prefix ``path`` belongs to, each None when absent."""
    name = path.name
    for suffix in ("_stats_history.csv", "_stats.csv", "_requests.csv", "_failures.csv"):
        if name.endswith(suffix):
            prefix = name[: -len(suffix)]
            break
    else:
        return (path, None, None)
    found = [path.with_name(prefix + s) for s in ("_stats.csv", "_stats_history.csv", "_failures.csv")]
    if not found[0].exists() and path.with_name(prefix + "_requests.csv").exists():
        found[0] = path.with_name(prefix + "_requests.csv")
    return tuple(f if f.exists() else None for f in found)  # type: ignore[return-value]


def _read(p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", index_col=False)
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable CSV: {str(exc).splitlines()[0]}") from None


def _columns(
    frame: pd.DataFrame, p: Path, aliases: dict[str, tuple[str, ...]], need: tuple[str, ...]
) -> dict[str, str]:
    """Our name → the file's column; BadInput naming what is missing."""
    lower = {c.strip().lower(): c for c in frame.columns}
    out = {key: lower[a] for key, names in aliases.items() for a in names if a in lower}
    missing = [aliases[k][0] for k in need if k not in out]
    if missing:
        raise BadInput(f"{p}: missing column(s) {', '.join(repr(m) for m in missing)} of a Locust --csv file")
    return out


def _numbers(frame: pd.DataFrame, column: str, p: Path, hi: float, what: str, *, na: bool = False) -> np.ndarray:
    """The column as floats in [0, hi] (NaN for "N/A" or empty when ``na``); BadInput naming the first bad line."""
    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", copy=True)
    missing = raw.isin(["N/A", ""]).to_numpy() if na else np.zeros(len(raw), dtype=bool)
    with np.errstate(invalid="ignore"):
        bad = ~missing & ~(np.isfinite(values) & (values >= 0) & (values <= hi))
    if bad.any():
        row = int(bad.argmax())
        raise BadInput(f"{p}: line {row + 2}: {column}: expected {what}, got {frame[column].iloc[row][:40]!r}")
    values[missing] = np.nan
    return values


def _counts(frame: pd.DataFrame, column: str, p: Path) -> np.ndarray:
    values = _numbers(frame, column, p, 1e15, "a whole number of requests")
    fractional = values != np.floor(values)
    if fractional.any():
        row = int(fractional.argmax())
        raise BadInput(f"{p}: line {row + 2}: {column}: expected a whole number, got {frame[column].iloc[row]!r}")
    return values.astype(np.int64)


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _summary(values: dict[str, float], *, rounded: bool) -> LatencySummary:
    return LatencySummary(
        avg_ms=_opt(values.get("avg_ms", math.nan)),
        max_ms=_opt(values.get("max_ms", math.nan)),
        p50_ms=_opt(values.get("p50_ms", math.nan)),
        p75_ms=_opt(values.get("p75_ms", math.nan)),
        p90_ms=_opt(values.get("p90_ms", math.nan)),
        p95_ms=_opt(values.get("p95_ms", math.nan)),
        p99_ms=_opt(values.get("p99_ms", math.nan)),
        quantile_digits=LOCUST_QUANTILE_DIGITS if rounded else None,
    )


def _is_aggregated(types: pd.Series, names: pd.Series) -> np.ndarray:
    t = types.str.strip().str.lower()
    return (names.str.strip().str.lower().isin(_AGGREGATED) & t.isin(["", "none"])).to_numpy()


def _keys(types: pd.Series, names: pd.Series) -> pd.Series:
    return types.str.strip() + " " + names.str.strip()


def read_locust_stats(path: str | Path) -> Measurement:
    """A Locust ``X_stats.csv`` (with ``X_stats_history.csv`` and ``X_failures.csv`` when next to it) as a
    summary-level, closed-loop Measurement; BadInput (one line, naming the file and line) otherwise."""
    p = Path(path)
    frame = _read(p)
    cols = _columns(frame, p, _ALIASES, ("type", "name", "count", "failures", "avg", "max", "rps"))
    agg = _is_aggregated(frame[cols["type"]], frame[cols["name"]])
    if agg.sum() != 1:
        raise BadInput(f"{p}: expected one 'Aggregated' row (Locust writes it last), found {int(agg.sum())}")
    count = _counts(frame, cols["count"], p)
    failures = _counts(frame, cols["failures"], p)
    if cols["count"].strip().lower() == "# requests":  # 0.x counted successes only (its docs: 0 requests, 56 failures)
        count = count + failures
    over = failures > count
    if over.any():
        raise BadInput(f"{p}: line {int(over.argmax()) + 2}: more failures than requests")
    ms = {k: _numbers(frame, cols[k], p, MAX_LATENCY_MS, "a latency in ms", na=True) for k in ("avg", "max")}
    quantiles = {
        field: _numbers(frame, column, p, MAX_LATENCY_MS, "a latency in ms", na=True)
        for column, field in _QUANTILE_COLUMNS.items()
        if column in frame.columns
    }
    if "p50_ms" not in quantiles and "median" in cols:
        quantiles["p50_ms"] = _numbers(frame, cols["median"], p, MAX_LATENCY_MS, "a latency in ms", na=True)
    rounded = any(_PERCENT.match(c.strip()) for c in frame.columns) or "median" in cols
    rps = _numbers(frame, cols["rps"], p, 1e12, "requests per second")
    total = int(count[agg][0])
    if int(count[~agg].sum()) != total:
        raise BadInput(
            f"{p}: the endpoints' requests add up to {int(count[~agg].sum())}, the Aggregated row says {total} "
            "(a truncated or edited file?)"
        )
    if total == 0:
        raise BadInput(f"{p}: no requests in the Locust stats")
    agg_rps = float(rps[agg][0])
    if not agg_rps > 0:
        raise BadInput(f"{p}: the Aggregated row's Requests/s is {agg_rps:g}: the run time is unknown")
    duration_s = total / agg_rps
    keys = _keys(frame[cols["type"]], frame[cols["name"]])
    dup = keys[~agg].duplicated().to_numpy()
    if dup.any():
        line = int(np.flatnonzero(~agg)[dup.argmax()]) + 2
        raise BadInput(f"{p}: line {line}: {keys[~agg].iloc[dup.argmax()]!r} twice")
    _, history_path, failures_path = siblings(p)
    if failures_path is not None:
        _check_failures(failures_path, dict(zip(keys[~agg], failures[~agg], strict=True)))
    history = _history(history_path) if history_path is not None else None
    if history is not None:
        end = datetime.fromtimestamp(float(history["_t"].max()) + 1.0, UTC)
        placed = f"ends at the last row of {history_path.name if history_path else ''} + 1 s"
    else:
        end = datetime.fromtimestamp(p.stat().st_mtime, UTC)
        placed = f"ends at {p.name}'s modification time (no stats history next to it)"
    start = end - timedelta(seconds=duration_s)
    timelines = _timelines(history, start.timestamp(), duration_s) if history is not None else {}
    endpoints = []
    for i in np.flatnonzero(~agg):
        figures = {"avg_ms": ms["avg"][i], "max_ms": ms["max"][i]} | {f: v[i] for f, v in quantiles.items()}
        endpoints.append(
            EndpointStats(
                endpoint=Endpoint(frame[cols["type"]].iloc[i].strip(), frame[cols["name"]].iloc[i].strip()),
                count=int(count[i]),
                errors=int(failures[i]),
                latency=_summary(figures, rounded=rounded) if count[i] > 0 else None,
                timeline=timelines.get(keys.iloc[i]),
            )
        )
    return _measurement(p, endpoints, start, end, f"run time {duration_s:.1f} s from Requests/s; window {placed}")


def _measurement(p: Path, endpoints: list[EndpointStats], start: datetime, end: datetime, note: str) -> Measurement:
    if not end > start:
        end = start + timedelta(seconds=1)
    return Measurement(
        source=Source(SourceKind.LOCUST_CSV, description=f"Locust --csv stats {p.name} (summary, closed loop; {note})"),
        window=Window(start, end),
        endpoints=tuple(endpoints),
        latency_kind=LatencyKind.SERVICE_TIME,
    )


def _check_failures(p: Path, expected: dict[str, int]) -> None:
    """BadInput when the failures file's occurrences do not add up to the stats' Failure Count per endpoint."""
    frame = _read(p)
    aliases: dict[str, tuple[str, ...]] = {"type": ("method",), "name": ("name",), "occurrences": ("occurrences",)}
    cols = _columns(frame, p, aliases, ("type", "name", "occurrences"))
    occurrences = pd.Series(_counts(frame, cols["occurrences"], p))
    sums = occurrences.groupby(_keys(frame[cols["type"]], frame[cols["name"]]).to_numpy()).sum()
    for key in sorted(set(sums.index) | {k for k, v in expected.items() if v}):
        got, want = int(sums.get(key, 0)), int(expected.get(key, 0))
        if got != want:
            raise BadInput(f"{p}: {key}: {got} failures, the stats next to it say {want} (files from different runs?)")


def _history(p: Path) -> pd.DataFrame:
    """The history's rows with parsed ``_t`` (Unix s), ``_key``, ``_agg``, ``_count``, ``_failures``."""
    frame = _read(p)
    cols = _columns(frame, p, _HISTORY_ALIASES, ("timestamp", "type", "name", "count", "failures"))
    if frame.empty:
        raise BadInput(f"{p}: no rows in the Locust stats history")
    t = _numbers(frame, cols["timestamp"], p, MAX_UNIX_S, "a Unix time in seconds")
    early = t < MIN_UNIX_S
    if early.any():
        raise BadInput(f"{p}: line {int(early.argmax()) + 2}: Timestamp before 1970")
    out = pd.DataFrame(
        {
            "_t": t,
            "_key": _keys(frame[cols["type"]], frame[cols["name"]]),
            "_agg": _is_aggregated(frame[cols["type"]], frame[cols["name"]]),
            "_count": _counts(frame, cols["count"], p),
            "_failures": _counts(frame, cols["failures"], p),
        }
    )
    for k in ("median", "avg", "max"):
        if k in cols:
            out["_" + k] = _numbers(frame, cols[k], p, MAX_LATENCY_MS, "a latency in ms", na=True)
    return out


def _timelines(history: pd.DataFrame, start_s: float, duration_s: float) -> dict[str, Timeline]:
    """Per endpoint (full history only): requests and failures per interval, from the increase of the
    cumulative totals (column operations: bucket, last value per bucket, forward fill, difference)."""
    rows = history[~history["_agg"]]
    if rows.empty:
        return {}
    interval = timeline_interval(max(duration_s, 1.0))
    n = max(1, math.ceil(duration_s / interval))
    bucket = np.clip(np.floor((rows["_t"].to_numpy() - start_s) / interval), 0, n - 1).astype(np.int64)
    out: dict[str, Timeline] = {}
    columns = {}
    for column in ("_count", "_failures"):
        cum = (
            rows.assign(_b=bucket)
            .pivot_table(index="_b", columns="_key", values=column, aggfunc="max")
            .reindex(range(n))
            .ffill()
            .fillna(0)
            .cummax()
        )
        columns[column] = cum.diff().fillna(cum.iloc[:1]).astype(np.int64)
    for key in columns["_count"].columns:
        counts = columns["_count"][key].to_numpy()
        errors = columns["_failures"][key].to_numpy()
        out[key] = Timeline(
            start_s=start_s,
            interval_s=interval,
            counts=tuple(int(c) for c in counts),
            errors=tuple(int(e) for e in errors),
        )
    return out


def read_locust_stats_history(path: str | Path) -> Measurement:
    """A Locust ``X_stats_history.csv``: through ``X_stats.csv`` when that is next to it, else on its own (needs
    ``--csv-full-history``); BadInput otherwise."""
    p = Path(path)
    stats, _, _ = siblings(p)
    if stats is not None and stats != p:
        return read_locust_stats(stats)
    history = _history(p)
    rows = history[~history["_agg"]]
    if rows.empty:
        raise BadInput(
            f"{p}: only the Aggregated row (Locust writes per-endpoint rows with --csv-full-history); "
            "pass the X_stats.csv of the run instead"
        )
    last = rows.sort_values("_t", kind="stable").groupby("_key", sort=True).tail(1)
    start_s = float(history["_t"].min())
    end_s = float(history["_t"].max()) + 1.0
    timelines = _timelines(history, start_s, end_s - start_s)
    endpoints = []
    for _, row in last.iterrows():  # one row per endpoint
        method, _, name = str(row["_key"]).partition(" ")
        figures = {"avg_ms": row.get("_avg", math.nan), "max_ms": row.get("_max", math.nan)}
        figures["p50_ms"] = row.get("_median", math.nan)
        count = int(row["_count"])
        failures = int(row["_failures"])
        if failures > count:
            raise BadInput(f"{p}: {row['_key']}: more failures than requests")
        endpoints.append(
            EndpointStats(
                endpoint=Endpoint(method, name),
                count=count,
                errors=failures,
                latency=_summary(figures, rounded=True) if count > 0 else None,
                timeline=timelines.get(str(row["_key"])),
            )
        )
    if sum(e.count for e in endpoints) == 0:
        raise BadInput(f"{p}: no requests in the Locust stats history")
    start = datetime.fromtimestamp(start_s, UTC)
    note = "history alone: p75…p99 not known, window from its timestamps"
    return _measurement(p, endpoints, start, datetime.fromtimestamp(end_s, UTC), note)

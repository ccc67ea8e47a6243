"""The history store: every night's parity figures in one append-only SQLite file (stdlib ``sqlite3``).

Default location :data:`DEFAULT_STORE` (``reports/history/parity-history.sqlite``). Tables (schema
:data:`SCHEMA_VERSION`, recorded in ``meta``):

- ``meta(key, value)``: ``format`` = ``parity-history``, ``schema_version``.
- ``runs``: one row per recorded comparison — ``run_at`` (ISO-8601 UTC, ``Z``), run ``verdict``, ``mode``,
  harness version / commit / config / command, per side name, source kind, service, env and window
  (ISO UTC), the report's location (path or URL, may be NULL), ``alpha`` and the number of ``tests``.
- ``endpoints``: per run and endpoint key, the endpoint verdict, critical flag and request counts.
- ``metrics``: per run, endpoint and metric — unit, direction, baseline, candidate, ratio, delta (metric
  unit), verdict, change, ``p_value``, ``adjusted_p`` and the sample counts of both sides.

Missing figures are NULL (never 0); non-finite numbers are stored as NULL. Rows are never changed or
deleted: triggers refuse UPDATE and DELETE on the data tables, and :func:`append` writes one run in a
single transaction (all rows or none). The file stays one file (rollback journal, not WAL).

Every open runs SQLite's ``PRAGMA integrity_check`` first: a damaged store (a page overwritten, a truncated
file) is refused before anything is read or written. Faults become one-line :class:`~parity.errors.BadInput`
naming the path: a missing file (on load), a directory, a file that is not a history store or is damaged, a
store written by a newer schema, a store locked by another writer for longer than ``timeout_s``.

Reading gives a :class:`History`: runs in time order, and per endpoint and metric a :class:`MetricSeries`
whose points are aligned with the runs (None: that night had no row for it).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from parity.errors import BadInput
from parity.judge.result import Change, ComparisonMode, Direction, ParityResult, SideInfo, Verdict
from parity.report.context import RunMeta

__all__ = [
    "DEFAULT_STORE",
    "FORMAT",
    "LOCK_TIMEOUT_S",
    "SCHEMA_VERSION",
    "EndpointSeries",
    "History",
    "MetricPoint",
    "MetricSeries",
    "RunRecord",
    "SideRecord",
    "append",
    "load",
]

#: Where the nightly job keeps its history unless told otherwise.
DEFAULT_STORE = Path("reports/history/parity-history.sqlite")
#: ``meta.format`` of a history store.
FORMAT: Final = "parity-history"
#: Schema written by this version. Older stores are migrated on append; newer ones are refused.
SCHEMA_VERSION: Final = 1
#: How long to wait for another writer's lock before giving up (s).
LOCK_TIMEOUT_S = 30.0

_SCHEMA: Final = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_at TEXT NOT NULL,
    verdict TEXT NOT NULL,
    mode TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    git_commit TEXT,
    config TEXT,
    command TEXT,
    generated_at TEXT NOT NULL,
    baseline_name TEXT NOT NULL,
    baseline_source TEXT NOT NULL,
    baseline_service TEXT,
    baseline_env TEXT,
    baseline_start TEXT NOT NULL,
    baseline_end TEXT NOT NULL,
    candidate_name TEXT NOT NULL,
    candidate_source TEXT NOT NULL,
    candidate_service TEXT,
    candidate_env TEXT,
    candidate_start TEXT NOT NULL,
    candidate_end TEXT NOT NULL,
    report TEXT,
    alpha REAL NOT NULL,
    tests INTEGER NOT NULL
);
CREATE INDEX runs_by_time ON runs (run_at, id);
CREATE TABLE endpoints (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    endpoint TEXT NOT NULL,
    verdict TEXT NOT NULL,
    critical INTEGER NOT NULL,
    baseline_count INTEGER,
    candidate_count INTEGER,
    PRIMARY KEY (run_id, endpoint)
);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    endpoint TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    direction TEXT NOT NULL,
    baseline REAL,
    candidate REAL,
    ratio REAL,
    delta REAL,
    verdict TEXT NOT NULL,
    change TEXT NOT NULL,
    p_value REAL,
    adjusted_p REAL,
    samples_baseline INTEGER NOT NULL,
    samples_candidate INTEGER NOT NULL,
    PRIMARY KEY (run_id, endpoint, metric)
);
"""
_DATA_TABLES: Final = ("runs", "endpoints", "metrics")
_APPEND_ONLY: Final = "".join(
    f"CREATE TRIGGER {t}_no_{op.lower()} BEFORE {op} ON {t} "
    f"BEGIN SELECT RAISE(ABORT, 'the parity history is append-only'); END;\n"
    for t in _DATA_TABLES
    for op in ("UPDATE", "DELETE")
)
#: Migrations from schema N to N + 1 (SQL run in the append transaction). None yet.
_MIGRATIONS: Final[Mapping[int, str]] = {}


# --- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideRecord:
    """One side of a recorded run: file name, source kind, service/env (None: unknown), window (UTC)."""

    name: str
    source_kind: str
    service: str | None
    env: str | None
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class RunRecord:
    """One recorded comparison (a night). ``report``: where its report lives (path or URL; None: not kept).
    ``counts``: endpoints per verdict (every verdict, zeros included)."""

    id: int
    run_at: datetime
    verdict: Verdict
    mode: ComparisonMode
    harness_version: str
    commit: str | None
    config: str | None
    command: str | None
    generated_at: datetime
    baseline: SideRecord
    candidate: SideRecord
    report: str | None
    alpha: float
    tests: int
    counts: Mapping[Verdict, int]


@dataclass(frozen=True)
class MetricPoint:
    """One metric of one endpoint on one night, as judged then (units as in ``MetricResult``)."""

    baseline: float | None
    candidate: float | None
    ratio: float | None
    delta: float | None
    verdict: Verdict
    change: Change
    p_value: float | None
    adjusted_p: float | None
    samples: tuple[int, int]


@dataclass(frozen=True)
class MetricSeries:
    """One endpoint's metric across nights: ``points[i]`` belongs to ``History.runs[i]`` (None: no figure
    recorded that night — the endpoint or the metric was absent)."""

    endpoint: str
    metric: str
    unit: str
    direction: Direction
    points: tuple[MetricPoint | None, ...]


@dataclass(frozen=True)
class EndpointSeries:
    """One endpoint's verdict per night, aligned with ``History.runs`` (None: not in that night's run)."""

    endpoint: str
    verdicts: tuple[Verdict | None, ...]


@dataclass(frozen=True)
class History:
    """Everything in a store: runs in time order (``run_at``, then insertion), per-endpoint verdicts and
    per endpoint + metric series (sorted by endpoint, then metric), all aligned with ``runs``."""

    store: str
    runs: tuple[RunRecord, ...]
    endpoints: tuple[EndpointSeries, ...]
    series: tuple[MetricSeries, ...]

    def last(self, nights: int) -> History:
        """The same history limited to its last ``nights`` runs (all when ``nights`` ≥ the count)."""
        if nights < 1:
            raise ValueError("nights must be at least 1")
        if nights >= len(self.runs):
            return self
        cut = len(self.runs) - nights

        def keep_e(e: EndpointSeries) -> EndpointSeries:
            return replace(e, verdicts=e.verdicts[cut:])

        def keep_m(m: MetricSeries) -> MetricSeries:
            return replace(m, points=m.points[cut:])

        endpoints = tuple(e for e in map(keep_e, self.endpoints) if any(v is not None for v in e.verdicts))
        series = tuple(m for m in map(keep_m, self.series) if any(p is not None for p in m.points))
        return History(self.store, self.runs[cut:], endpoints, series)


# --- conversions ---------------------------------------------------------------------------------


def _utc(t: datetime, what: str) -> str:
    if t.tzinfo is None:
        raise ValueError(f"{what} must carry a time zone")
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _side_columns(side: SideInfo, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}_name": side.name,
        f"{prefix}_source": side.source_kind,
        f"{prefix}_service": side.service,
        f"{prefix}_env": side.env,
        f"{prefix}_start": _utc(side.window_start, f"{prefix} window start"),
        f"{prefix}_end": _utc(side.window_end, f"{prefix} window end"),
    }


def _side_record(row: sqlite3.Row, prefix: str) -> SideRecord:
    return SideRecord(
        name=row[f"{prefix}_name"],
        source_kind=row[f"{prefix}_source"],
        service=row[f"{prefix}_service"],
        env=row[f"{prefix}_env"],
        window_start=_parse_time(row[f"{prefix}_start"]),
        window_end=_parse_time(row[f"{prefix}_end"]),
    )


# --- I/O -----------------------------------------------------------------------------------------


@contextmanager
def _faults(path: Path, timeout_s: float) -> Iterator[None]:
    """sqlite3 errors while using the store at ``path`` → one-line BadInput naming it."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise BadInput(
                f"{path}: history store is locked by another process (waited {timeout_s:g} s); try again later"
            ) from None
        if "unable to open" in text:
            raise BadInput(f"{path}: cannot open the history store ({text})") from None
        if "readonly" in text or "read-only" in text:
            raise BadInput(f"{path}: history store is read-only ({text})") from None
        if "no such table" in text or "no such column" in text:
            raise BadInput(f"{path}: not a parity history store ({text})") from None
        raise BadInput(f"{path}: history store error: {text}") from None
    except sqlite3.IntegrityError as exc:  # a duplicate endpoint in one run, an UPDATE/DELETE refused
        raise BadInput(f"{path}: the run was not recorded: {exc}") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        raise BadInput(f"{path}: not a parity history store, or damaged ({exc})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot use the history store: {exc.strerror or exc}") from None
    except (KeyError, ValueError) as exc:  # a row whose verdict, time ... this version cannot read
        raise BadInput(f"{path}: history store holds a row this parity cannot read ({exc})") from None


def _open(path: Path, *, read_only: bool, timeout_s: float) -> sqlite3.Connection:
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, expected a history store file")
    if read_only:
        if not path.exists():
            raise BadInput(f"{path}: no such history store (no run recorded yet?)")
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=timeout_s)
    conn.isolation_level = None  # transactions are explicit
    conn.row_factory = sqlite3.Row
    try:
        _check_integrity(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """BadInput naming ``path`` when SQLite's ``PRAGMA integrity_check`` finds the store damaged (a page
    overwritten, a truncated file, an index out of step with its table): a damaged store is never read or
    written. Cost: it reads every page and cross-checks the indexes, measured at 6 ms for 100 nights of 20
    endpoints (0.8 MB) and 0.3 s for a year of 50 endpoints × 8 metrics (18 MB; loading that store takes 4 s)."""
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            raise
        rows = [(str(exc),)]
    problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise BadInput(
            f"{path}: history store is damaged (SQLite integrity_check: {problems[0][:200]}{more}); it was not read or "
            "written: restore it from a backup, or move it aside to start a new history"
        )


def _schema_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The store's schema version; None for an empty file (no tables yet)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "meta" not in tables:
        raise BadInput(f"{path}: not a parity history store (no meta table)")
    meta = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}
    if meta.get("format") != FORMAT:
        raise BadInput(f"{path}: not a parity history store (format {meta.get('format')!r})")
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise BadInput(f"{path}: history store has no valid schema_version") from None
    if version > SCHEMA_VERSION:
        raise BadInput(
            f"{path}: history store has schema {version}, newer than this parity reads ({SCHEMA_VERSION}): "
            "upgrade parity"
        )
    return version


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty store, or migrate an older one (inside the caller's transaction)."""
    version = _schema_version(conn, path)
    if version is None:
        for statement in (_SCHEMA + _APPEND_ONLY).split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)", [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))]
        )
        return
    while version < SCHEMA_VERSION:
        conn.executescript(_MIGRATIONS[version])
        version += 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def append(
    store: Path,
    result: ParityResult,
    meta: RunMeta,
    *,
    run_at: datetime,
    report: str | None,
    timeout_s: float = LOCK_TIMEOUT_S,
) -> int:
    """Record one comparison in the store at ``store`` (created with its folders if missing); its run id.

    ``run_at``: when the night ran (time-zone aware; stored in UTC). ``report``: where its report lives
    (a path or URL, as the trend page should link it; None: not kept). One transaction: on any error
    nothing is written. Raises BadInput for a store that is not usable (see module docstring).
    """
    run_at_text = _utc(run_at, "run_at")
    run = {
        "run_at": run_at_text,
        "verdict": result.verdict.value,
        "mode": result.mode.value,
        "harness_version": meta.harness_version,
        "git_commit": meta.commit,
        "config": meta.config,
        "command": meta.command,
        "generated_at": _utc(meta.generated_at, "generated_at"),
        **_side_columns(result.baseline, "baseline"),
        **_side_columns(result.candidate, "candidate"),
        "report": report,
        "alpha": result.alpha,
        "tests": result.tests,
    }
    endpoints = [
        (e.endpoint.key, e.verdict.value, int(e.critical), e.baseline_count, e.candidate_count)
        for e in result.endpoints
    ]
    metrics = [
        (
            e.endpoint.key,
            m.metric,
            m.unit,
            m.direction.value,
            _num(m.baseline),
            _num(m.candidate),
            _num(m.ratio),
            _num(m.delta),
            m.verdict.value,
            m.change.value,
            None if m.statistics is None else _num(m.statistics.p_value),
            None if m.statistics is None else _num(m.statistics.adjusted_p),
            m.samples[0],
            m.samples[1],
        )
        for e in result.endpoints
        for m in e.metrics
    ]
    with _faults(store, timeout_s):
        conn = _open(store, read_only=False, timeout_s=timeout_s)
        with closing(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                _prepare(conn, store)
                columns = ", ".join(run)
                marks = ", ".join("?" * len(run))
                cursor = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", tuple(run.values()))
                run_id = int(cursor.lastrowid or 0)
                conn.executemany(
                    "INSERT INTO endpoints (run_id, endpoint, verdict, critical, baseline_count, candidate_count) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, *row) for row in endpoints],
                )
                conn.executemany(
                    "INSERT INTO metrics (run_id, endpoint, metric, unit, direction, baseline, candidate, ratio, "
                    "delta, verdict, change, p_value, adjusted_p, samples_baseline, samples_candidate) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *row) for row in metrics],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    return run_id


def load(store: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> History:
    """Everything in the store at ``store`` (opened read-only; never created). Raises BadInput for a missing,
    damaged, foreign or newer-schema store. An empty store (created, no run) gives a History without runs."""
    with _faults(store, timeout_s):
        conn = _open(store, read_only=True, timeout_s=timeout_s)
        with closing(conn):
            conn.execute("BEGIN")  # one consistent snapshot
            try:
                if _schema_version(conn, store) is None:
                    return History(str(store), (), (), ())
                return _read(conn, store)
            finally:
                conn.execute("ROLLBACK")


def _read(conn: sqlite3.Connection, store: Path) -> History:
    run_rows = conn.execute("SELECT * FROM runs ORDER BY run_at, id").fetchall()
    position = {row["id"]: i for i, row in enumerate(run_rows)}
    n = len(run_rows)
    counts: dict[int, dict[Verdict, int]] = {row["id"]: dict.fromkeys(Verdict, 0) for row in run_rows}
    verdicts: dict[str, list[Verdict | None]] = {}
    for row in conn.execute("SELECT run_id, endpoint, verdict FROM endpoints"):
        verdict = Verdict(row["verdict"])
        counts[row["run_id"]][verdict] += 1
        verdicts.setdefault(row["endpoint"], [None] * n)[position[row["run_id"]]] = verdict
    series: dict[tuple[str, str], tuple[str, Direction, list[MetricPoint | None]]] = {}
    for row in conn.execute("SELECT * FROM metrics"):
        key = (row["endpoint"], row["metric"])
        if key not in series:
            series[key] = (row["unit"], Direction(row["direction"]), [None] * n)
        series[key][2][position[row["run_id"]]] = MetricPoint(
            baseline=row["baseline"],
            candidate=row["candidate"],
            ratio=row["ratio"],
            delta=row["delta"],
            verdict=Verdict(row["verdict"]),
            change=Change(row["change"]),
            p_value=row["p_value"],
            adjusted_p=row["adjusted_p"],
            samples=(row["samples_baseline"], row["samples_candidate"]),
        )
    runs = tuple(
        RunRecord(
            id=row["id"],
            run_at=_parse_time(row["run_at"]),
            verdict=Verdict(row["verdict"]),
            mode=ComparisonMode(row["mode"]),
            harness_version=row["harness_version"],
            commit=row["git_commit"],
            config=row["config"],
            command=row["command"],
            generated_at=_parse_time(row["generated_at"]),
            baseline=_side_record(row, "baseline"),
            candidate=_side_record(row, "candidate"),
            report=row["report"],
            alpha=row["alpha"],
            tests=row["tests"],
            counts=counts[row["id"]],
        )
        for row in run_rows
    )
    return History(
        store=str(store),
        runs=runs,
        endpoints=tuple(EndpointSeries(k, tuple(v)) for k, v in sorted(verdicts.items())),
        series=tuple(
            MetricSeries(endpoint, metric, unit, direction, tuple(points))
            for (endpoint, metric), (unit, direction, points) in sorted(series.items())
        ),
    )

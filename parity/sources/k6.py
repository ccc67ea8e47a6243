"""Source: k6 result files → Measurement.

**``k6 run --out json=FILE``** (newline-delimited JSON, gzip-compressed when FILE ends in ``.gz``): one
``{"type":"Metric",...,"metric":NAME}`` line per metric, one ``{"type":"Point","metric":NAME,"data":{"time":
RFC 3339,"value":...,"tags":{...}}}`` line per sample (k6 ``internal/output/json``). Request level: each
``http_req_duration`` Point is one request (redirect hops are requests of their own in k6). Its ``value`` is the
service time in ms (sending + waiting + receiving); its ``time`` is when the request *ended*, so the send time
is ``time - value``. Endpoint = the ``method`` tag + the ``name`` tag (k6 sets ``name`` to the URL unless the
script set it; URLs and paths are templated like the access-log readers do, see ``parity.sources.load_tool``).
Error = k6's own verdict, the ``expected_response`` tag (the script's response callback; by default 200–399 is
expected) — the same verdict k6's ``http_req_failed`` Points carry; without that tag (callback disabled), status
0 or ≥ 400. Status ``0`` means no response (connection refused, timeout, ...): the request counts as an error
with no latency. Every line must be JSON (a malformed line is BadInput naming its line).

**``k6 run --summary-export=FILE``** and the data object ``handleSummary(data)`` receives (``JSON.stringify
(data)``): summary level only (avg, min, med, max, p(90), p(95), and p(75)/p(99) when ``summaryTrendStats``
asked for them). A summary holds per-endpoint figures only where the script's thresholds created submetrics
(``http_req_duration{name:/api/x}`` with ``http_reqs{name:/api/x}`` for its count); those become endpoints.
Without them the whole test is ONE aggregate endpoint, ``ALL_REQUESTS_ENDPOINT``, and the source description
says so: that is not per-endpoint parity (use ``--out json`` for that). Counts come from ``http_reqs.count``,
errors from ``http_req_failed`` (a rate metric whose ``passes`` counts the *failed* requests: value 1 = failed).
The export holds no timestamps: the window ends at the file's modification time and lasts ``count / rate`` of
``http_reqs`` (or ``state.testRunDurationMs`` in handleSummary data).

Both are client-side service time and closed-loop as far as the file tells (the files do not say when an
arrival-rate executor ran; see ``SourceKind.closed_loop``). Times must lie between 1970 and 2100, latencies
between 0 and ``parity.bounds.MAX_LATENCY_MS``.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S, check_count, check_number, load_json
from parity.errors import BadInput, reading
from parity.model import (
    LABEL_AGGREGATE,
    Endpoint,
    EndpointStats,
    LatencyKind,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Window,
)
from parity.sources.load_tool import request_measurement, route_of

__all__ = ["ALL_REQUESTS_ENDPOINT", "read_k6_json", "read_k6_summary", "sniff"]

#: The one endpoint of a k6 summary without per-endpoint submetrics (a bare name: no method, not replayable).
ALL_REQUESTS_ENDPOINT = "ALL (k6 summary: all requests)"
_GZIP_MAGIC = b"\x1f\x8b"
_NDJSON_LINE = re.compile(
    r'^\s*\{.*"type"\s*:\s*"(?:Metric|Point)".*"metric"\s*:|^\s*\{.*"metric"\s*:.*"type"\s*:\s*"(?:Metric|Point)"'
)
_SUMMARY_KEYS = re.compile(r'"(?:root_group|http_req_duration|http_reqs|iterations|vus_max|data_received)"\s*:')
_K6_CSV_HEADER = "metric_name,timestamp,metric_value"
_SUBMETRIC = re.compile(r"^(?P<metric>[a-z_]+)\{(?P<tags>.*)\}$")
_TREND_KEYS = {"avg": "avg_ms", "max": "max_ms", "med": "p50_ms", "p(50)": "p50_ms", "p(75)": "p75_ms",
               "p(90)": "p90_ms", "p(95)": "p95_ms", "p(99)": "p99_ms"}  # fmt: skip

Reader = Callable[[Path], Measurement]


def sniff(path: Path, head: str) -> Reader | None:
    """The reader for a k6 file, recognised by content (``head``: the file's first characters as text), or
    None. A gzip file is recognised by its magic bytes and its decompressed first line. k6's ``--out csv``
    output is refused here, naming what is read instead."""
    with reading(path, "a k6 result file"), path.open("rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace") as gz:
                head = gz.read(4096)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadInput(f"{path}: gzip-compressed, but cannot be decompressed: {exc}") from None
        if not _NDJSON_LINE.match(head.splitlines()[0] if head else ""):
            raise BadInput(
                f"{path}: a gzip-compressed file that is not k6 JSON output (accepted gzip: k6 --out json=FILE.gz)"
            )
        return read_k6_json
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if _NDJSON_LINE.match(first):
        return read_k6_json
    if first.startswith(_K6_CSV_HEADER):
        raise BadInput(
            f"{path}: k6 CSV output (--out csv) is not read: run k6 with --out json=FILE (request level) "
            "or --summary-export=FILE"
        )
    if head.lstrip().startswith("{") and '"parity-measurement"' not in head and _SUMMARY_KEYS.search(head):
        return read_k6_summary
    return None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-empty line, gzip or plain."""
    with path.open("rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    try:
        with gzip.open(path, "rt", encoding="utf-8-sig") if compressed else path.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield number, line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BadInput(f"{path}: gzip stream broken: {exc}") from None


def _point(path: Path, number: int, line: str) -> dict[str, Any] | None:
    """The ``data`` of an ``http_req_duration`` Point line, None for any other line; BadInput for a line
    that is not a k6 JSON object."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise BadInput(f"{path}: line {number}: not valid JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(obj, dict) or obj.get("type") not in ("Metric", "Point"):
        raise BadInput(f'{path}: line {number}: not a k6 JSON output line (expected "type": "Metric" or "Point")')
    if obj["type"] != "Point" or obj.get("metric") != "http_req_duration":
        return None
    data = obj.get("data")
    if not isinstance(data, dict):
        raise BadInput(f'{path}: line {number}: http_req_duration Point without a "data" object')
    return data


def read_k6_json(path: str | Path) -> Measurement:
    """Read ``k6 run --out json=FILE`` output (plain or gzip); see the module docstring. BadInput (one line
    naming the file and line) on a malformed line, a bad value, or a file without ``http_req_duration``
    Points."""
    p = Path(path)
    lines: list[int] = []
    times: list[str] = []
    values: list[float] = []
    methods: list[str] = []
    routes: list[str] = []
    no_response: list[bool] = []
    errors: list[bool] = []
    with reading(p, "k6 JSON output"):
        for number, line in _lines(p):
            data = _point(p, number, line)
            if data is None:
                continue
            tags = data.get("tags") or {}
            try:
                value = check_number(data.get("value"), "value", lo=0.0, hi=MAX_LATENCY_MS)
                if not isinstance(tags, dict) or not isinstance(data.get("time"), str):
                    raise ValueError('expected "time" (RFC 3339 text) and a "tags" object')
                method, name = tags.get("method"), tags.get("name") or tags.get("url")
                if not isinstance(method, str) or not method.strip() or not isinstance(name, str) or not name.strip():
                    raise ValueError(
                        'tags: need "method" and "name" (or "url"): k6 sets both unless system tags are cut'
                    )
            except ValueError as exc:
                raise BadInput(f"{p}: line {number}: http_req_duration: {exc}") from None
            status = str(tags.get("status", ""))
            expected = tags.get("expected_response")
            lines.append(number)
            times.append(data["time"])
            values.append(value)
            methods.append(method.strip().upper())
            routes.append(route_of(name))
            no_response.append(status == "0")
            if expected is not None:
                errors.append(str(expected).lower() != "true")
            else:
                errors.append(status == "0" or (status.isdigit() and int(status) >= 400))
    if not lines:
        raise BadInput(f"{p}: k6 JSON output without http_req_duration Points (no HTTP requests to read)")
    import pandas as pd  # heavy: imported only when a file is read

    ended = pd.to_datetime(pd.Series(times), utc=True, format="ISO8601", errors="coerce")
    ended_s = ended.astype("int64").to_numpy() / 1e9
    with np.errstate(invalid="ignore"):
        bad = ended.isna().to_numpy() | ~((ended_s >= MIN_UNIX_S) & (ended_s <= MAX_UNIX_S))
    if bad.any():
        i = int(bad.argmax())
        raise BadInput(
            f"{p}: line {lines[i]}: time: expected an RFC 3339 time between 1970 and 2100, got {times[i][:40]!r}"
        )
    latency = np.asarray(values, dtype=np.float64)
    sent = np.maximum(ended_s - latency / 1000.0, MIN_UNIX_S)
    latency[np.asarray(no_response, dtype=np.bool_)] = np.nan
    return request_measurement(
        p,
        source=Source(
            SourceKind.K6,
            description=f"k6 JSON output {p.name} (request level; closed-loop assumed: no executor in the file)",
        ),
        methods=methods,
        routes=routes,
        sent_s=sent,
        latency_ms=latency,
        errors=np.asarray(errors, dtype=np.bool_),
        lines=np.asarray(lines, dtype=np.int64),
        labels={"format": "k6-json"},
    )


def _values(metric: Any) -> dict[str, Any] | None:
    """The figures of one summary metric: ``--summary-export`` keeps them flat, handleSummary data under
    ``values``; None when the entry is not an object."""
    if not isinstance(metric, dict):
        return None
    inner = metric.get("values")
    return inner if isinstance(inner, dict) else metric


def _submetric_tags(name: str) -> tuple[str, str] | None:
    """(metric, canonical tag text) of ``metric{tag:value,...}``; None for a plain metric name."""
    found = _SUBMETRIC.match(name)
    if found is None:
        return None
    tags = sorted(part.strip() for part in found.group("tags").split(",") if part.strip())
    return found.group("metric"), ",".join(tags)


def _endpoint_of(tags: str) -> tuple[str, str] | None:
    """(method, route) for a submetric's tags that name an endpoint (``name`` or ``url``, optional ``method``);
    None for tags that do not (``expected_response:true``, ``status:200``, ...)."""
    parsed = dict(part.partition(":")[::2] for part in tags.split(","))
    name = parsed.get("name") or parsed.get("url")
    if not name:
        return None
    return parsed.get("method", "").strip().upper(), route_of(name)


def _summary_stats(
    p: Path, key: str, method: str, route: str, trend: dict[str, Any], reqs: Any, failed: Any
) -> EndpointStats:
    """One endpoint of a summary: latency figures (ms) from the trend, count from ``http_reqs``, errors from
    ``http_req_failed`` (None when the summary has no such metric)."""
    try:
        figures: dict[str, Any] = {  # LatencySummary field → ms
            field: check_number(trend[stat], f"{key}.{stat}", lo=0.0, hi=MAX_LATENCY_MS)
            for stat, field in _TREND_KEYS.items()
            if stat in trend and trend[stat] is not None
        }
        count = check_count((_values(reqs) or {}).get("count"), f"{key}: http_reqs count")
        errors = None
        failed_values = _values(failed)
        if failed_values is not None:
            errors = check_count(failed_values.get("passes"), f"{key}: http_req_failed passes (failed requests)")
    except ValueError as exc:
        raise BadInput(f"{p}: {exc}") from None
    if errors is not None and errors > count:
        raise BadInput(f"{p}: {key}: {errors} failed requests but only {count} requests")
    latency = LatencySummary(**figures) if figures and count else None
    return EndpointStats(endpoint=Endpoint(method, route), count=count, errors=errors, latency=latency)


def read_k6_summary(path: str | Path) -> Measurement:
    """Read a k6 ``--summary-export`` file or handleSummary data (JSON); see the module docstring. BadInput
    (one line) when the file has no ``http_req_duration`` / ``http_reqs`` or a figure is out of bounds."""
    p = Path(path)
    with reading(p, "a k6 summary export"):
        text = p.read_text("utf-8")
        mtime = p.stat().st_mtime
    data = load_json(text, str(p))
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise BadInput(f'{p}: JSON without a "metrics" object: not a k6 summary export (nor a Measurement file)')
    trend, reqs = _values(metrics.get("http_req_duration")), metrics.get("http_reqs")
    if trend is None or _values(reqs) is None:
        raise BadInput(f"{p}: k6 summary without http_req_duration and http_reqs (no HTTP requests to read)")
    by_tags: dict[str, dict[str, Any]] = {}
    for name, metric in metrics.items():
        split = _submetric_tags(str(name))
        if split is not None:
            by_tags.setdefault(split[1], {})[split[0]] = metric
    endpoints = []
    for tags, found in sorted(by_tags.items()):
        ep = _endpoint_of(tags)
        sub_trend = _values(found.get("http_req_duration"))
        if ep is None or sub_trend is None or "http_reqs" not in found:
            continue  # a submetric that names no endpoint, or one without its request count
        key = f"http_req_duration{{{tags}}}"
        endpoints.append(_summary_stats(p, key, *ep, sub_trend, found["http_reqs"], found.get("http_req_failed")))
    scope = f"{len(endpoints)} endpoint(s) from threshold submetrics"
    labels = {"format": "k6-summary"}
    if not endpoints:
        endpoints = [
            _summary_stats(
                p, "http_req_duration", "", ALL_REQUESTS_ENDPOINT, trend, reqs, metrics.get("http_req_failed")
            )
        ]
        scope = "all requests as ONE aggregate endpoint: not per-endpoint parity (per-endpoint needs k6 --out json)"
        labels[LABEL_AGGREGATE] = "all requests of a k6 summary (per-endpoint figures need k6 --out json)"
    duration_s = _duration_s(p, data, _values(reqs) or {})
    end = datetime.fromtimestamp(min(max(mtime, MIN_UNIX_S + duration_s), MAX_UNIX_S), UTC)
    return Measurement(
        source=Source(
            SourceKind.K6,
            description=f"k6 summary {p.name} (summary level, {scope}; window ends at the file's modification time)",
        ),
        window=Window(end - timedelta(seconds=duration_s), end),
        endpoints=tuple(endpoints),
        latency_kind=LatencyKind.SERVICE_TIME,
        labels=labels,
    )


def _duration_s(p: Path, data: dict[str, Any], reqs: dict[str, Any]) -> float:
    """The test's duration in s: ``state.testRunDurationMs`` (handleSummary data) or ``http_reqs`` count / rate
    (``--summary-export`` drops ``state``); BadInput when neither is usable."""
    state = data.get("state")
    try:
        if isinstance(state, dict) and state.get("testRunDurationMs") is not None:
            return (
                check_number(
                    state["testRunDurationMs"], "state.testRunDurationMs", lo=0.0, hi=MAX_LATENCY_MS, lo_open=True
                )
                / 1000
            )
        count = check_count(reqs.get("count"), "http_reqs.count")
        rate = check_number(reqs.get("rate"), "http_reqs.rate", lo=0.0, lo_open=True)
    except ValueError as exc:
        raise BadInput(f"{p}: {exc}") from None
    duration = count / rate
    if not 0 < duration <= MAX_LATENCY_MS / 1000:
        raise BadInput(f"{p}: http_reqs count / rate gives a test of {duration:g} s")
    return duration

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
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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
from parity.sources.load_tool import PY_WHITESPACE, LinedChunk, RequestChunk, endpoint_codes, fold_requests, route_of

__all__ = ["ALL_REQUESTS_ENDPOINT", "read_k6_json", "read_k6_summary", "sniff"]

#: The one endpoint of a k6 summary without per-endpoint submetrics (a bare name: no method, not replayable).
ALL_REQUESTS_ENDPOINT = "ALL (k6 summary: all requests)"
_GZIP_MAGIC = b"\x1f\x8b"
#: Bytes of whole lines parsed at once (memory per block: a few times this).
BLOCK_BYTES = 16 << 20
_READ_BYTES = 1 << 20  # gzip: decompressed at a time (a break loses no earlier line)
_JSON_BLOCK_BYTES = 4 << 20
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
    """(line number, text) of each non-empty line, gzip or plain: the exact per-line reading (used for a file
    the fast path cannot read byte for byte, e.g. one that is not UTF-8, so messages stay the same)."""
    with path.open("rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    try:
        with gzip.open(path, "rt", encoding="utf-8-sig") if compressed else path.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield number, line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BadInput(f"{path}: gzip stream broken: {exc}") from None


def _blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes (gunzipped as a stream when gzip) in blocks of whole lines of about ``BLOCK_BYTES``
    (the last block may lack its final newline), the UTF-8 BOM dropped. A broken gzip stream: the whole lines
    read before the break, then BadInput."""
    with path.open("rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    tail = b""
    first = True
    with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
        while True:
            pieces, size = [tail], len(tail)
            try:
                while size < BLOCK_BYTES:
                    piece = fh.read(_READ_BYTES if compressed else BLOCK_BYTES)
                    if not piece:
                        break
                    pieces.append(piece)
                    size += len(piece)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                data = b"".join(pieces)
                cut = data.rfind(b"\n") + 1
                if cut:
                    yield data[:cut]
                raise BadInput(f"{path}: gzip stream broken: {exc}") from None
            data = b"".join(pieces) if len(pieces) > 1 else tail
            if first and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            first = False
            if size < BLOCK_BYTES:  # the end of the file
                if data:
                    yield data
                return
            cut = data.rfind(b"\n") + 1
            if not cut:  # one line longer than a block: read on
                tail = data
                continue
            tail = data[cut:]
            yield data[:cut] if cut < len(data) else data


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


@dataclass
class _Rows:
    """The http_req_duration Points of a block, column-wise (tags text as in the file; ``name`` is the ``name``
    tag or, when that is empty, ``url``)."""

    lines: npt.NDArray[np.int64]
    time: Any  # pyarrow string array
    value: npt.NDArray[np.float64]
    method: Any
    name: Any
    status: Any
    expected: Any


def _slow_rows(p: Path, numbered: Iterable[tuple[int, str]]) -> _Rows:
    """The exact per-line reading of some lines (BadInput naming the first bad line, as ever)."""
    import pyarrow as pa

    cols: dict[str, list[Any]] = {k: [] for k in ("line", "time", "value", "method", "name", "status", "expected")}
    for number, line in numbered:
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
                raise ValueError('tags: need "method" and "name" (or "url"): k6 sets both unless system tags are cut')
            expected = tags.get("expected_response")
            texts = {"time": data["time"], "method": method, "name": name, "status": str(tags.get("status", ""))}
            texts["expected_response"] = str(expected)
            for what, text in texts.items():
                if not text.isascii():
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        raise ValueError(f"{what}: holds a lone surrogate escape (\\ud800-\\udfff), not text") from None
        except ValueError as exc:
            raise BadInput(f"{p}: line {number}: http_req_duration: {exc}") from None
        for key, item in (("line", number), ("time", data["time"]), ("value", value), ("method", method),
                          ("name", name), ("status", str(tags.get("status", ""))),
                          ("expected", None if expected is None else str(expected))):  # fmt: skip
            cols[key].append(item)
    return _Rows(
        lines=np.asarray(cols["line"], dtype=np.int64),
        time=pa.array(cols["time"], pa.string()),
        value=np.asarray(cols["value"], dtype=np.float64),
        method=pa.array(cols["method"], pa.string()),
        name=pa.array(cols["name"], pa.string()),
        status=pa.array(cols["status"], pa.string()),
        expected=pa.array(cols["expected"], pa.string()),
    )


def _fast_rows(block: bytes, first_line: int, newlines: int) -> _Rows | None:
    """The http_req_duration Points of a block parsed at once (pyarrow.json: no Python per line), or None when
    anything in the block needs the exact per-line reading (a malformed or unusual line, a bad value, a blank
    line, a lone CR, a BOM): then the caller reads the block line by line. CRLF line ends are read here (the CR
    is JSON whitespace; a raw CR inside a string is no JSON, so pyarrow refuses it as the per-line reading
    does)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    if b"\xef\xbb\xbf" in block or (b"\r" in block and block.count(b"\r") != block.count(b"\r\n")):
        return None  # a CR that ends a line without LF: the per-line reading counts it as a line end
    if not block.isascii():
        try:
            block.decode("utf-8")  # pyarrow does not check the fields it skips
        except UnicodeDecodeError:
            return None
    try:
        table = pj.read_json(
            io.BytesIO(block),
            read_options=pj.ReadOptions(block_size=_JSON_BLOCK_BYTES),
            parse_options=pj.ParseOptions(explicit_schema=_schema(), unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError, ValueError):
        return None
    lines = newlines + (not block.endswith(b"\n"))
    if table.num_rows != lines:  # a blank line, or two JSON values on a line
        return None
    kind = table.column("type")
    if kind.null_count or not pc.all(pc.is_in(kind, value_set=pa.array(["Metric", "Point"]))).as_py():
        return None
    pick = pc.and_(pc.equal(kind, "Point"), pc.fill_null(pc.equal(table.column("metric"), "http_req_duration"), False))
    rows = table.filter(pick)
    data = rows.column("data").combine_chunks()
    if data.null_count:
        return None
    tags = pc.struct_field(data, "tags")
    value = pc.struct_field(data, "value")
    time = pc.struct_field(data, "time")
    if tags.null_count or value.null_count or time.null_count:
        return None
    values = value.to_numpy(zero_copy_only=False)
    if not bool(np.all((values >= 0.0) & (values <= MAX_LATENCY_MS))):
        return None
    method, name, url = (pc.struct_field(tags, f) for f in ("method", "name", "url"))
    name = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(name), 0), False), name, url)
    for column in (method, name):
        if (
            column.null_count
            or pc.any(pc.equal(pc.utf8_length(pc.utf8_trim(column, characters=PY_WHITESPACE)), 0)).as_py()
        ):
            return None  # a blank name or method (str.strip() leaves nothing)
    index = np.flatnonzero(pick.to_numpy(zero_copy_only=False))
    return _Rows(
        lines=first_line + index.astype(np.int64),
        time=time,
        value=values.astype(np.float64),
        method=method,
        name=name,
        status=pc.struct_field(tags, "status"),
        expected=pc.struct_field(tags, "expected_response"),
    )


def _schema() -> Any:
    """The part of a k6 JSON output line read (other fields ignored)."""
    import pyarrow as pa

    tags = pa.struct([(f, pa.string()) for f in ("method", "name", "url", "status", "expected_response")])
    data = pa.struct([("time", pa.string()), ("value", pa.float64()), ("tags", tags)])
    return pa.schema([("type", pa.string()), ("metric", pa.string()), ("data", data)])


def _verdict(status: str | None, expected: str | None) -> tuple[bool, bool]:
    """(no response, error) of a request from its ``status`` and ``expected_response`` tags (see the module
    docstring)."""
    status = "" if status is None else status
    if expected is not None:
        error = expected.lower() != "true"
    else:
        error = status == "0" or (status.isdigit() and int(status) >= 400)
    return status == "0", error


def _encode(column: Any, *, listed: bool = True) -> tuple[Any, npt.NDArray[np.int64]]:
    """(distinct values, index of each row's value) of a pyarrow column (null is a value of its own); the
    distinct values as a list, or as a pyarrow array when not ``listed``."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column, null_encoding="encode")
    if hasattr(encoded, "combine_chunks"):
        encoded = encoded.combine_chunks()
    distinct = encoded.dictionary.to_pylist() if listed else encoded.dictionary
    return distinct, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _chunk(rows: _Rows) -> LinedChunk | tuple[int, str]:
    """Checked rows → a chunk of requests; (line, time text) of the first bad time instead when there is one."""
    import pandas as pd  # heavy: imported only when a file is read

    times = rows.time.to_pylist() if len(rows.lines) < 64 else rows.time.to_pandas()
    ended = pd.to_datetime(pd.Series(times, dtype=object), utc=True, format="ISO8601", errors="coerce")
    ended_s = ended.astype("int64").to_numpy() / 1e9
    with np.errstate(invalid="ignore"):
        bad = ended.isna().to_numpy() | ~((ended_s >= MIN_UNIX_S) & (ended_s <= MAX_UNIX_S))
    if bad.any():
        i = int(bad.argmax())
        return int(rows.lines[i]), str(rows.time[i].as_py())
    methods, method_index = _encode(rows.method)
    names, name_index = _encode(rows.name, listed=False)
    methods = [method.strip().upper() for method in methods]
    keys, endpoint = endpoint_codes(methods, method_index, names, name_index, labels=False)
    statuses, status_index = _encode(rows.status)
    expects, expect_index = _encode(rows.expected)
    pair = status_index * len(expects) + expect_index
    distinct, inverse = np.unique(pair, return_inverse=True)
    verdicts = np.asarray(
        [_verdict(statuses[c // len(expects)], expects[c % len(expects)]) for c in distinct.tolist()], dtype=np.bool_
    ).reshape(-1, 2)
    inverse = inverse.reshape(-1)
    no_response, errors = verdicts[inverse, 0], verdicts[inverse, 1]
    latency = rows.value.copy()
    sent = np.maximum(ended_s - latency / 1000.0, MIN_UNIX_S)
    latency[no_response] = np.nan
    return LinedChunk(RequestChunk(keys, endpoint, sent, latency, errors), rows.lines)


class _NotUtf8(Exception):
    """A block that is not UTF-8: the file is read by the exact per-line path (for its message)."""


def _chunks(p: Path, bad_time: list[tuple[int, str]]) -> Iterator[LinedChunk]:
    """Chunks of the file's requests, a block at a time: the fast parse, or the exact per-line one for a block
    it cannot take. The first bad time is put in ``bad_time`` (no chunk is yielded from then on: the rest is
    only checked, as a malformed line later in the file is reported before a bad time)."""
    line = 1
    for block in _blocks(p):
        newlines = block.count(b"\n")
        rows = _fast_rows(block, line, newlines)
        if rows is None:
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError:
                raise _NotUtf8 from None
            numbered = enumerate(io.StringIO(text, newline=None), line)
            rows = _slow_rows(p, ((n, t) for n, t in numbered if t.strip()))
            line += text.count("\n") + text.count("\r") - text.count("\r\n")
            line += not text.endswith(("\n", "\r"))
        else:
            line += newlines
        if bad_time or not len(rows.lines):
            continue
        chunk = _chunk(rows)
        if isinstance(chunk, tuple):
            bad_time.append(chunk)
        else:
            yield chunk


def read_k6_json(path: str | Path) -> Measurement:
    """Read ``k6 run --out json=FILE`` output (plain or gzip, streamed in blocks); see the module docstring.
    BadInput (one line naming the file and line) on a malformed line, a bad value, or a file without
    ``http_req_duration`` Points."""
    p = Path(path)
    bad_time: list[tuple[int, str]] = []
    seen = False

    def checked() -> Iterator[LinedChunk]:
        nonlocal seen
        for chunk in _chunks(p, bad_time):
            seen = True
            yield chunk
        if bad_time:
            line, text = bad_time[0]
            raise BadInput(
                f"{p}: line {line}: time: expected an RFC 3339 time between 1970 and 2100, got {text[:40]!r}"
            )
        if not seen:
            raise BadInput(f"{p}: k6 JSON output without http_req_duration Points (no HTTP requests to read)")

    source = Source(
        SourceKind.K6,
        description=f"k6 JSON output {p.name} (request level; closed-loop assumed: no executor in the file)",
    )
    try:
        with reading(p, "k6 JSON output"):
            return fold_requests(p, checked()).measurement(source=source, labels={"format": "k6-json"})
    except _NotUtf8:
        with reading(p, "k6 JSON output"):
            for number, line in _lines(p):  # raises the same BadInput as the per-line reading always did
                _point(p, number, line)
        raise BadInput(f"{p}: not UTF-8 text") from None


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

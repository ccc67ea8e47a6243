"""A fake Datadog API: a real HTTP server on 127.0.0.1 that speaks the wire format of the endpoints we use.

Endpoints (shapes as in ``/work/shared/reference/datadog.md`` and the client's models):

- ``GET /api/v1/query?from=<s>&to=<s>&query=<q>`` — v1 timeseries. Understands
  ``<aggr>:<metric>{<tags>} [by {resource_name}][.as_count()][.rollup(<aggr>, <s>)|.rollup(<s>)]`` for
  ``trace.<span>.hits`` / ``.errors`` (counts) and ``trace.<span>`` (latency distribution, seconds). Buckets
  are aligned to multiples of the interval and run from the bucket holding ``from`` to the one holding
  ``to`` (inclusive, so the bucket *starting* at ``to`` is returned too). A series holds at most
  :data:`MAX_POINTS` points: when a query would need more (a week at ``.rollup(sum, 60)``), the interval is
  raised to the next of :data:`NICE_INTERVALS` that fits and the series' ``interval`` says so — the real
  API coarsens the same way rather than failing, so a client must check ``interval``.
  A per-minute value of 0 is served as *no point*, None as a *null point*.
- ``POST /api/v2/query/scalar`` — v2 scalar, data source ``metrics``: one number column per formula
  (each formula naming one query), rows = ``resource_name`` groups with data in ``[from, to)``, sorted by
  value (descending) and cut at the formula's ``limit.count`` (default assumed to be 10). Distribution
  statistics: ``count``/``sum`` (aggregator ``sum``), ``avg`` (``avg``), ``max`` (``max``), ``pNN``
  (``percentile``, anything else → 400). Latency is stationary in the dataset (one distribution per
  resource), so a window statistic is the resource's value whatever the window.
- ``POST /api/v2/series`` (API key only; gzip/deflate bodies) → 202 ``{"errors": []}``; a body over
  :data:`MAX_SERIES_BYTES` as sent (or :data:`MAX_SERIES_DECODED_BYTES` decompressed) → 413, as the real
  intake documents. ``RecordedRequest.size`` is the body's size as sent.
- ``POST /api/v1/events`` (API key only) → 202 ``{"status": "ok", "event": {...}}``.

Keys: a wrong or missing ``DD-API-KEY`` → 401; a wrong or missing ``DD-APPLICATION-KEY`` on a query → 403
(the real service may answer 403 for a bad API key as well). Every request is recorded (method, path,
query, lower-cased headers, decoded body) before any fault applies.

Fault switches: :meth:`FakeDatadog.fail` (any status for N requests or always, e.g. 401, 403, 500),
:meth:`FakeDatadog.rate_limit` (429 with ``X-RateLimit-*`` headers for N requests, then OK),
:meth:`FakeDatadog.delay` (answer late, for client time-outs), ``empty`` (every query answers no data),
``null_minutes`` (those minutes of the dataset are served as null points), ``null_stats``
(those scalar statistics answer null), ``latency_unit`` (the unit latency answers come in: a name of
:data:`UNITS`, values converted from the dataset's seconds; None: ``"unit": null`` and seconds) and
``untagged`` (those resources' series come without the ``resource_name`` tag: v1 ``tag_set: []`` and a scope
without it; their scalar rows are left out).

Unit blocks are in Datadog's wire format, as in the client's recorded answers: ``"unit": [unit, per_unit]``
(v1 ``series[].unit``, v2 scalar ``columns[].meta.unit``), each null or
``{"family", "name", "plural", "scale_factor", "short_name"}``; ``scale_factor`` is seconds per unit for time.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MAX_POINTS",
    "MAX_SERIES_BYTES",
    "MAX_SERIES_DECODED_BYTES",
    "NICE_INTERVALS",
    "UNITS",
    "FakeDatadog",
    "FakeDataset",
    "FakeResource",
    "RecordedRequest",
    "fake_datadog",
]

MAX_POINTS = 1500
#: ``POST /api/v2/series`` limits (the client's docstring): 512,000 bytes as sent, 5 MiB decompressed → 413.
MAX_SERIES_BYTES = 512_000
MAX_SERIES_DECODED_BYTES = 5_242_880
NICE_INTERVALS = (60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200, 86400)
#: Groups a scalar formula returns when the request sets no limit (an assumption about the real API).
DEFAULT_SCALAR_LIMIT = 10
RATE_LIMIT = 1600
RATE_PERIOD_S = 3600
_SECOND_UNIT = {"family": "time", "name": "second", "plural": "seconds", "scale_factor": 1.0, "short_name": "s"}
#: Unit objects the fake can answer latency in (``FakeDatadog.latency_unit``); percent as recorded by the client.
UNITS: Mapping[str, Mapping[str, Any]] = {
    "second": _SECOND_UNIT,
    "millisecond": {"family": "time", "name": "millisecond", "plural": "milliseconds", "scale_factor": 0.001,
                    "short_name": "ms"},
    "microsecond": {"family": "time", "name": "microsecond", "plural": "microseconds", "scale_factor": 1e-06,
                    "short_name": "µs"},
    "nanosecond": {"family": "time", "name": "nanosecond", "plural": "nanoseconds", "scale_factor": 1e-09,
                   "short_name": "ns"},
    "percent": {"family": "percentage", "name": "percent", "plural": "percent", "scale_factor": 1.0, "short_name": "%",
                "id": 17},
}  # fmt: skip
_QUERY = re.compile(
    r"^(?P<aggr>[a-z0-9]+):(?P<metric>[A-Za-z0-9_.]+)\{(?P<tags>[^{}]*)\}"
    r"(?: by \{(?P<by>[^{}]*)\})?(?P<funcs>(?:\.[a-z_]+\([^()]*\))*)$"
)
_FUNC = re.compile(r"\.([a-z_]+)\(([^()]*)\)")
_PERCENTILE = re.compile(r"p\d{1,2}")


@dataclass
class FakeResource:
    """One APM resource. Per-minute lists start at the dataset's ``start_s``; latency in SECONDS.

    ``latency_s`` keys: avg, max, p50, p75, p90, p95, p99; a missing key → the resource has no value for
    that statistic (it is left out of that query's answer).
    """

    hits: Sequence[int | None]
    errors: Sequence[int | None] = ()
    latency_s: Mapping[str, float] = field(default_factory=dict)


@dataclass
class FakeDataset:
    start_s: int
    resources: Mapping[str, FakeResource]
    env: str = "ec2"
    service: str = "web"
    span: str = "rack.request"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    body: Any = None
    size: int = 0  # bytes of the body as sent (compressed, if it was)


@dataclass
class _Fault:
    status: int
    remaining: int | None  # None: always
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    path: str | None = None  # only requests to this path (None: any)


class _BadQuery(Exception):
    pass


@dataclass(frozen=True)
class _Parsed:
    aggr: str
    metric: str
    tags: frozenset[str]
    by: str | None
    as_count: bool
    rollup: tuple[str | None, int] | None


def _parse_query(text: str) -> _Parsed:
    m = _QUERY.match(text.strip())
    if m is None:
        raise _BadQuery(f"Error parsing query: {text}")
    as_count, rollup = False, None
    for name, args in _FUNC.findall(m["funcs"] or ""):
        parts = [a.strip() for a in args.split(",") if a.strip()]
        if name == "as_count" and not parts:
            as_count = True
        elif name == "rollup" and len(parts) == 2 and parts[1].isdigit():
            rollup = (parts[0], int(parts[1]))
        elif name == "rollup" and len(parts) == 1 and parts[0].isdigit():
            rollup = (None, int(parts[0]))
        else:
            raise _BadQuery(f"Error parsing query: unsupported function {name}({args})")
    tags = frozenset(t.strip() for t in m["tags"].split(",") if t.strip() and t.strip() != "*")
    by = (m["by"] or "").strip() or None
    if by not in (None, "resource_name"):
        raise _BadQuery(f"Error parsing query: the fake groups by resource_name only, got {by}")
    return _Parsed(m["aggr"], m["metric"], tags, by, as_count, rollup)


@dataclass
class FakeDatadog:
    """State of a running fake: dataset, keys, switches, recorded requests. ``url`` is its base URL."""

    dataset: FakeDataset
    api_key: str
    app_key: str
    url: str = ""
    empty: bool = False
    max_points: int = MAX_POINTS  # lower it to make the fake coarsen answers sooner than the real API
    null_minutes: set[int] = field(default_factory=set)
    null_stats: set[str] = field(default_factory=set)
    latency_unit: str | None = "second"
    untagged: set[str] = field(default_factory=set)
    requests: list[RecordedRequest] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _delays: list[list[float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _events: int = 0

    # -- switches --

    def fail(
        self,
        status: int,
        times: int | None = 1,
        *,
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (None: every request) with ``status``; with ``path``, only
        requests to that path (e.g. ``/api/v1/events``) count and fail."""
        body = {"errors": [{401: "Unauthorized", 403: "Forbidden"}.get(status, "Internal Server Error")]}
        with self._lock:
            self._faults.append(_Fault(status, times, dict(headers or {}), body, path))

    def rate_limit(self, times: int, reset_s: int, *, name: str = "query") -> None:
        """Answer the next ``times`` requests 429 with ``X-RateLimit-Reset: reset_s``, then normally."""
        headers = {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Period": str(RATE_PERIOD_S),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_s),
            "X-RateLimit-Name": name,
        }
        with self._lock:
            self._faults.append(_Fault(429, times, headers, {"errors": ["Too many requests"]}))

    def delay(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` answers for ``seconds`` (a client with a shorter time-out gives up)."""
        with self._lock:
            self._delays.append([seconds, float(times)])

    # -- inspection --

    def queries(self, path: str = "/api/v1/query") -> list[str]:
        """The query texts received on ``path`` (v1: the ``query`` parameter; v2: each query's text)."""
        out: list[str] = []
        for r in self.recorded(path):
            if r.method == "GET":
                out.append(r.query.get("query", ""))
            else:
                out.extend(q.get("query", "") for q in r.body["data"]["attributes"]["queries"])
        return out

    def recorded(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def posted(self, path: str) -> list[Any]:
        """Decoded bodies received on ``path`` (``/api/v2/series``, ``/api/v1/events``)."""
        return [r.body for r in self.recorded(path)]

    # -- serving (called from the handler threads) --

    def _next_fault(self, path: str = "") -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.path is not None and fault.path != path:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.pop(0)
            return fault

    def _next_delay(self) -> float:
        with self._lock:
            if not self._delays:
                return 0.0
            entry = self._delays[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._delays.pop(0)
            return entry[0]

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _minutes(self, name: str, resource: FakeResource) -> list[int | None]:
        """Per-minute counts of ``name`` (hits | errors), with the null switch applied."""
        values = list(resource.hits if name == "hits" else resource.errors)
        values += [0] * (len(resource.hits) - len(values))
        return [None if i in self.null_minutes else v for i, v in enumerate(values)]

    def _matches(self, tags: frozenset[str], resource: str) -> bool:
        d = self.dataset
        have = {f"env:{d.env}", f"service:{d.service}", f"resource_name:{resource}"}
        return tags <= have

    def _unit_block(self) -> list[Any] | None:
        """The ``[unit, per_unit]`` block latency answers carry (None: no unit block)."""
        return None if self.latency_unit is None else [dict(UNITS[self.latency_unit]), None]

    def _in_unit(self, seconds: float) -> float:
        """A latency of the dataset (s) in :attr:`latency_unit` (a non-time unit: the number unchanged)."""
        unit = UNITS.get(self.latency_unit or "second", _SECOND_UNIT)
        return seconds / float(unit["scale_factor"]) if unit["family"] == "time" else seconds

    def _metric_kind(self, metric: str) -> str | None:
        span = self.dataset.span
        return {f"trace.{span}.hits": "hits", f"trace.{span}.errors": "errors", f"trace.{span}": "latency"}.get(metric)

    # -- v1 timeseries --

    def v1_query(self, params: Mapping[str, str]) -> tuple[int, Any]:
        try:
            start, end = int(params["from"]), int(params["to"])
            text = params["query"]
        except (KeyError, ValueError):
            return 400, {"errors": ["from, to and query are required"]}
        try:
            q = _parse_query(text)
        except _BadQuery as exc:
            return 400, {"errors": [str(exc)]}
        if end <= start:
            return 400, {"errors": ["The 'to' timestamp must be after the 'from' timestamp"]}
        kind = self._metric_kind(q.metric)
        wanted = q.rollup[1] if q.rollup else TIMELINE_DEFAULT
        interval = _fit_interval(start, end, wanted, self.max_points)
        series = []
        if kind is not None and not self.empty:
            for name, resource in sorted(self.dataset.resources.items()):
                if not self._matches(q.tags, name):
                    continue
                points = self._v1_points(kind, q, resource, start, end, interval)
                if points:
                    series.append(self._v1_series(q, name, points, interval))
        return 200, {
            "status": "ok",
            "res_type": "time_series",
            "resp_version": 1,
            "query": text,
            "from_date": start * 1000,
            "to_date": end * 1000,
            "group_by": [q.by] if q.by else [],
            "message": "",
            "times": [],
            "values": [],
            "series": series,
        }

    def _v1_points(
        self, kind: str, q: _Parsed, resource: FakeResource, start: int, end: int, interval: int
    ) -> list[list[float | None]]:
        d = self.dataset
        hits = self._minutes("hits", resource)
        values = self._minutes(kind, resource) if kind != "latency" else hits
        points: list[list[float | None]] = []
        for bucket in range(start - start % interval, end + 1, interval):
            lo = max(0, (bucket - d.start_s) // 60)
            hi = min(len(hits), (bucket + interval - d.start_s) // 60)
            if hi <= lo:
                continue
            window = values[lo:hi]
            known = [v for v in window if v is not None]
            if kind == "latency":
                value = _latency_value(q.aggr, resource, sum(known))
                if not sum(known) or value is None:
                    continue
                points.append([bucket * 1000.0, value if q.aggr == "count" else self._in_unit(value)])
                continue
            if not any(known):  # no data: a null point if the minute was null, else no point
                if any(v is None for v in window):
                    points.append([bucket * 1000.0, None])
                continue
            total = float(sum(known))
            points.append([bucket * 1000.0, total if q.as_count else total / interval])
        return points

    def _v1_series(self, q: _Parsed, name: str, points: list[list[float | None]], interval: int) -> dict[str, Any]:
        d = self.dataset
        tagged = name not in self.untagged
        scope = ",".join(sorted({f"env:{d.env}", f"service:{d.service}", *([f"resource_name:{name}"] * tagged)}))
        unit = self._unit_block() if self._metric_kind(q.metric) == "latency" else [None, None]
        first, last = points[0][0], points[-1][0]
        assert first is not None
        assert last is not None
        return {
            "metric": q.metric,
            "display_name": q.metric,
            "aggr": q.aggr,
            "scope": scope,
            "tag_set": [f"resource_name:{name}"] if q.by and tagged else [],
            "expression": f"{q.aggr}:{q.metric}{{{scope}}}",
            "query_index": 0,
            "interval": interval,
            "length": len(points),
            "start": int(first),
            "end": int(last) + interval * 1000 - 1000,
            "attributes": {},
            "pointlist": points,
            "unit": unit,
        }

    # -- v2 scalar --

    def v2_scalar(self, body: Any) -> tuple[int, Any]:
        try:
            attributes = body["data"]["attributes"]
            start_s, end_s = int(attributes["from"]) // 1000, int(attributes["to"]) // 1000
            queries = {q["name"]: q for q in attributes["queries"]}
            formulas = attributes.get("formulas") or [{"formula": n} for n in queries]
        except (KeyError, TypeError, ValueError):
            return 400, {"errors": ["malformed scalar request"]}
        columns: list[dict[str, Any]] = []
        rows: dict[str, list[float | None]] = {}
        for i, formula in enumerate(formulas):
            name = str(formula.get("formula", "")).strip()
            if name not in queries:
                return 400, {"errors": [f"formula {name!r}: the fake evaluates single-query formulas only"]}
            try:
                values = self._scalar_values(queries[name], start_s, end_s)
            except _BadQuery as exc:
                return 400, {"errors": [str(exc)]}
            limit = int((formula.get("limit") or {}).get("count", DEFAULT_SCALAR_LIMIT))
            kept = sorted(values.items(), key=lambda kv: (-(kv[1] if kv[1] is not None else -math.inf), kv[0]))
            for resource, value in kept[:limit]:
                rows.setdefault(resource, [None] * len(formulas))[i] = value
        names = list(rows)
        if names:
            columns.append({"name": "resource_name", "type": "group", "values": [[n] for n in names]})
        for i, formula in enumerate(formulas):
            unit = self._unit_block() if "trace." in queries[formula["formula"]]["query"] else None
            columns.append(
                {
                    "name": formula.get("alias") or formula["formula"],
                    "type": "number",
                    "values": [rows[n][i] for n in names],
                    "meta": {"unit": unit},
                }
            )
        return 200, {"data": {"type": "scalar_response", "attributes": {"columns": columns}}}

    def _scalar_values(self, query: Mapping[str, Any], start_s: int, end_s: int) -> dict[str, float | None]:
        if query.get("data_source") != "metrics":
            raise _BadQuery(f"data_source {query.get('data_source')!r}: the fake serves metrics only")
        q = _parse_query(str(query.get("query", "")))
        aggregator = str(query.get("aggregator", "avg"))
        if _PERCENTILE.fullmatch(q.aggr) and aggregator != "percentile":
            raise _BadQuery(f"{q.aggr} queries take the aggregator 'percentile', got {aggregator!r}")
        kind = self._metric_kind(q.metric)
        out: dict[str, float | None] = {}
        if kind is None or self.empty:
            return out
        d = self.dataset
        lo, hi = max(0, (start_s - d.start_s) // 60), max(0, (end_s - d.start_s) // 60)
        for name, resource in sorted(d.resources.items()):
            if not self._matches(q.tags, name) or name in self.untagged:
                continue
            hits = sum(v for v in self._minutes("hits", resource)[lo:hi] if v is not None)
            if kind != "latency":
                total = sum(v for v in self._minutes(kind, resource)[lo:hi] if v is not None)
                if total and aggregator == "sum":
                    out[name] = float(total)
                continue
            if not hits:
                continue
            if (q.aggr, aggregator) not in {("count", "sum"), ("sum", "sum"), ("avg", "avg"), ("max", "max")} and (
                aggregator != "percentile"
            ):
                raise _BadQuery(f"the fake does not reduce {q.aggr}:{q.metric} with {aggregator!r}")
            value = _latency_value(q.aggr, resource, hits)
            if value is not None and q.aggr != "count":
                value = self._in_unit(value)
            if value is not None:
                out[name] = None if q.aggr in self.null_stats else value
        return out

    # -- intake --

    def intake(self, path: str, body: Any, serial: int) -> tuple[int, Any]:
        if path == "/api/v2/series":
            if not isinstance(body, dict) or not isinstance(body.get("series"), list):
                return 400, {"errors": ["series: expected a list"]}
            return 202, {"errors": []}
        if not isinstance(body, dict) or not body.get("title") or not body.get("text"):
            return 400, {"errors": ["title and text are required"]}
        return 202, {
            "status": "ok",
            "event": {
                "id": serial,
                "id_str": str(serial),
                "title": body["title"],
                "text": body["text"],
                "date_happened": int(time.time()),
                "tags": body.get("tags", []),
                "url": f"{self.url}/event/event?id={serial}",
            },
        }


TIMELINE_DEFAULT = 60


def _fit_interval(start: int, end: int, wanted: int, max_points: int = MAX_POINTS) -> int:
    """The smallest interval ≥ ``wanted`` whose buckets over ``[start, end]`` number at most ``max_points``."""
    for interval in (wanted, *(n for n in NICE_INTERVALS if n > wanted)):
        if end // interval - start // interval + 1 <= max_points:
            return interval
    return NICE_INTERVALS[-1]


def _latency_value(aggr: str, resource: FakeResource, hits: int) -> float | None:
    """A distribution statistic over ``hits`` requests of a resource's stationary latency (seconds)."""
    stats = resource.latency_s
    if aggr == "count":
        return float(hits)
    if aggr == "sum":
        return stats["avg"] * hits if "avg" in stats else None
    return stats.get(aggr)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet: the base class prints
        return None

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _body(self) -> tuple[Any, int, int]:
        """The decoded body, its size as sent and its size decompressed (bytes)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sent = len(raw)
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return (json.loads(raw) if raw else None), sent, len(raw)

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body, size, decoded = self._body() if method == "POST" else (None, 0, 0)
        except (ValueError, OSError, zlib.error):
            self._send(400, {"errors": ["malformed body"]})
            return
        serial = fake._record(RecordedRequest(method, split.path, query, headers, body, size))
        if split.path == "/api/v2/series" and (size > MAX_SERIES_BYTES or decoded > MAX_SERIES_DECODED_BYTES):
            self._send(413, {"errors": ["Payload too large"]})
            return
        delay = fake._next_delay()
        if delay:
            time.sleep(delay)
        fault = fake._next_fault(split.path)
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return
        routes = {
            ("GET", "/api/v1/query"): True,
            ("POST", "/api/v2/query/scalar"): True,
            ("POST", "/api/v2/series"): False,
            ("POST", "/api/v1/events"): False,
        }
        needs_app_key = routes.get((method, split.path))
        if needs_app_key is None:
            self._send(404, {"errors": ["Not found"]})
            return
        if headers.get("dd-api-key") != fake.api_key:
            self._send(401, {"errors": ["Unauthorized"]})
            return
        if needs_app_key and headers.get("dd-application-key") != fake.app_key:
            self._send(403, {"errors": ["Forbidden"]})
            return
        if split.path == "/api/v1/query":
            status, answer = fake.v1_query(query)
        elif split.path == "/api/v2/query/scalar":
            status, answer = fake.v2_scalar(body)
        else:
            status, answer = fake.intake(split.path, body, serial)
        remaining = max(0, RATE_LIMIT - serial)
        self._send(
            status,
            answer,
            {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Period": str(RATE_PERIOD_S),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(RATE_PERIOD_S),
                "X-RateLimit-Name": "query",
            },
        )

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out tests)
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeDatadog

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        return None  # a client that hung up mid-answer is expected in the time-out tests


@contextmanager
def fake_datadog(dataset: FakeDataset, *, api_key: str, app_key: str) -> Iterator[FakeDatadog]:
    """Run a fake Datadog on 127.0.0.1 (a free port) for the ``with`` block; yields its state (``.url``)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    fake = FakeDatadog(dataset, api_key, app_key)
    server.fake = fake
    host, port = server.server_address[:2]
    fake.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-datadog", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""A live fake Datadog for the cutover demo and the tests: span intake on one side, the query API the live
APM reader uses on the other, in Datadog's wire format, on 127.0.0.1.

:class:`DemoDatadog` is a real threaded HTTP server (port 0 by default; ``start()``/``close()`` or a context
manager). Endpoints:

- ``POST /api/parity-demo/spans`` (no keys, like a local agent) takes one batch of spans as JSON
  ``{"env": str, "service": str, "span": str, "tags": [str, ...] (optional), "spans": [[resource, start_s,
  duration_ms, error], ...]}`` (``start_s`` Unix s, float; ``duration_ms`` ≥ 0; ``error`` 0 or 1) and answers
  202 ``{"accepted": n}``; a malformed batch is refused whole (400, nothing stored), a body over
  :data:`MAX_INTAKE_BYTES` is 413. ``resource_name`` tag values are normalised as Datadog does
  (:func:`parity.sources.routes.normalise_resource`: ``EmployeesController#show`` →
  ``employeescontroller_show``); env, service and tags are lower-cased. :func:`post_spans` sends a batch.
- ``POST /api/v2/query/scalar`` (``DD-API-KEY`` → else 401, ``DD-APPLICATION-KEY`` → else 403): data source
  ``metrics``, queries ``<aggr>:<metric>{<tags>} [by {resource_name}][.as_count()]`` over the spans whose
  start is in ``[from, to)`` (ms in the request), one number column per formula (a formula names one query;
  ``limit.count`` groups at most, default 10, largest first), one ``resource_name`` group column (values
  ``[[name], ...]``), rows sorted by the first formula (largest first, then name). Metrics and their exact
  statistics per resource (spans of every series the tag filter matches, merged):

  * ``trace.<span>.hits`` / ``trace.<span>.errors`` with ``.as_count()`` and the reducer ``sum``: the number
    of spans / of error spans (no value when 0: Datadog writes no point then);
  * ``trace.<span>`` (a distribution in SECONDS, each latency column with the unit block
    ``[second, null]``; :attr:`DemoDatadog.latency_unit` converts): ``count``/``sum`` (reducer ``sum``),
    ``avg`` (``avg``), ``max`` (``max``), ``pNN`` (``percentile``: the nearest-rank percentile, the smallest
    duration with at least NN % of the spans at or below it — numpy's ``inverted_cdf``). Any other pairing,
    query or data source is a 400 in Datadog's ``{"errors": [...]}`` shape.
- ``POST /api/v1/events`` and ``POST /api/v2/series`` (API key only): recorded, 202 in Datadog's shape.
- Whole traces (spans with parent ids) for ``parity explain``: ``POST /api/parity-demo/traces`` (intake, no keys)
  and ``POST /api/v2/spans/events/search`` (the v2 Spans API, both keys, its own rate limit): see
  :mod:`parity.demo.apm_traces`; :attr:`DemoDatadog.traces` is the store, :attr:`DemoDatadog.traces_url` the intake.

Fault switches (query side only; the span intake never fails): :meth:`DemoDatadog.fail` (a status for N
requests or always), :meth:`DemoDatadog.rate_limit` (429 with ``X-RateLimit-*`` headers), :meth:`DemoDatadog.delay`
(answer late: client time-outs), :attr:`DemoDatadog.null_stats` (those statistics answer null). Requests to the
query side are recorded (:meth:`DemoDatadog.recorded`, the newest :data:`MAX_RECORDED`).

Memory is bounded: each (series, resource) keeps its spans in numpy arrays that grow by doubling, and spans
that started more than ``horizon_s`` before the newest span received are dropped when an array grows; at most
:data:`MAX_SERIES` (series, resource) pairs. A query over a window older than the horizon sees what is left.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

import numpy as np

from parity.demo.apm_traces import SEARCH_PATH, TRACES_INTAKE_PATH, SearchError, TraceStore, parse_spans
from parity.sources.routes import normalise_resource

__all__ = [
    "DEMO_API_KEY",
    "DEMO_APP_KEY",
    "HORIZON_S",
    "INTAKE_PATH",
    "MAX_INTAKE_BYTES",
    "MAX_RECORDED",
    "MAX_SERIES",
    "DemoDatadog",
    "RecordedRequest",
    "post_spans",
]

#: The keys the demo's fake accepts (not secrets: the demo's own reader sends them).
DEMO_API_KEY = "parity-demo-api-key"
DEMO_APP_KEY = "parity-demo-app-key"
INTAKE_PATH = "/api/parity-demo/spans"
#: Spans that started this long before the newest span received are dropped (s).
HORIZON_S = 900.0
#: Largest span batch accepted (bytes of JSON).
MAX_INTAKE_BYTES = 16 * 1024 * 1024
#: Most (series, resource) pairs stored; a batch that would add more is refused.
MAX_SERIES = 10_000
#: Query-side requests kept for :meth:`DemoDatadog.recorded` (the newest ones).
MAX_RECORDED = 2000
#: Groups a scalar formula returns when the request sets no limit.
DEFAULT_SCALAR_LIMIT = 10
RATE_LIMIT = 1600
RATE_PERIOD_S = 3600
_MIN_CAPACITY = 256
#: Unit objects latency may be answered in (:attr:`DemoDatadog.latency_unit`), as Datadog sends them.
UNITS: Final[Mapping[str, Mapping[str, Any]]] = {
    "second": {"family": "time", "name": "second", "plural": "seconds", "scale_factor": 1.0, "short_name": "s",
               "id": 11},
    "millisecond": {"family": "time", "name": "millisecond", "plural": "milliseconds", "scale_factor": 0.001,
                    "short_name": "ms", "id": 12},
    "microsecond": {"family": "time", "name": "microsecond", "plural": "microseconds", "scale_factor": 1e-06,
                    "short_name": "µs", "id": 13},
    "nanosecond": {"family": "time", "name": "nanosecond", "plural": "nanoseconds", "scale_factor": 1e-09,
                   "short_name": "ns", "id": 14},
}  # fmt: skip
_QUERY = re.compile(
    r"^(?P<aggr>[a-z0-9]+):(?P<metric>[A-Za-z0-9_.]+)\{(?P<tags>[^{}]*)\}"
    r"(?: by \{(?P<by>[^{}]*)\})?(?P<funcs>(?:\.[a-z_]+\([^()]*\))*)$"
)
_FUNC = re.compile(r"\.([a-z_]+)\(([^()]*)\)")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)")
#: (query aggregator, reducer) pairs served for the latency distribution (pNN: with ``percentile``).
_LATENCY_PAIRS: Final = {("count", "sum"), ("sum", "sum"), ("avg", "avg"), ("max", "max")}


class _BadRequest(Exception):
    """A request the fake refuses with 400 (the message goes into ``errors``)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One query-side request: method, path, headers (names lower-cased), decoded JSON body, arrival (Unix s)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    at_s: float


@dataclass
class _Fault:
    status: int
    remaining: int | None  # None: always
    headers: Mapping[str, str]
    body: Any
    path: str | None


class _Spans:
    """The spans of one (series, resource): start (Unix s), duration (ms), error, in arrival order."""

    __slots__ = ("dur", "err", "n", "start")

    def __init__(self) -> None:
        self.start = np.empty(_MIN_CAPACITY)
        self.dur = np.empty(_MIN_CAPACITY)
        self.err = np.zeros(_MIN_CAPACITY, dtype=bool)
        self.n = 0

    def add(self, start: np.ndarray, dur: np.ndarray, err: np.ndarray, cutoff_s: float) -> None:
        """Append a batch; when it does not fit, drop spans that started before ``cutoff_s`` and regrow."""
        k = len(start)
        if self.n + k > len(self.start):
            keep = self.start[: self.n] >= cutoff_s
            kept = int(keep.sum())
            size = max(_MIN_CAPACITY, 2 * (kept + k))
            start_new, dur_new, err_new = np.empty(size), np.empty(size), np.zeros(size, dtype=bool)
            start_new[:kept] = self.start[: self.n][keep]
            dur_new[:kept] = self.dur[: self.n][keep]
            err_new[:kept] = self.err[: self.n][keep]
            self.start, self.dur, self.err, self.n = start_new, dur_new, err_new, kept
        self.start[self.n : self.n + k] = start
        self.dur[self.n : self.n + k] = dur
        self.err[self.n : self.n + k] = err
        self.n += k

    def window(self, lo_s: float, hi_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Durations (ms) and error flags of the spans that started in ``[lo_s, hi_s)`` (copies)."""
        start = self.start[: self.n]
        mask = (start >= lo_s) & (start < hi_s)
        return self.dur[: self.n][mask], self.err[: self.n][mask]


@dataclass(frozen=True)
class _Query:
    aggr: str
    kind: str  # hits | errors | latency
    span: str
    tags: frozenset[str]
    by: bool
    as_count: bool
    text: str


def _parse_query(text: str) -> _Query:
    m = _QUERY.match(text.strip())
    if m is None:
        raise _BadRequest(f"Error parsing query: {text[:200]}")
    as_count = False
    for name, args in _FUNC.findall(m["funcs"] or ""):
        if name == "as_count" and not args.strip():
            as_count = True
        else:
            raise _BadRequest(f"Error parsing query: the demo's Datadog does not serve {name}({args})")
    by = (m["by"] or "").strip()
    if by not in ("", "resource_name"):
        raise _BadRequest(f"Error parsing query: the demo's Datadog groups by resource_name only, got {by}")
    metric = m["metric"]
    if not metric.startswith("trace."):
        raise _BadRequest(f"the demo's Datadog serves trace.* metrics only, got {metric}")
    kind, span = "latency", metric.removeprefix("trace.")
    for suffix in ("hits", "errors"):
        if metric.endswith("." + suffix):
            kind, span = suffix, metric.removeprefix("trace.").removesuffix("." + suffix)
    tags = frozenset(t.strip().lower() for t in m["tags"].split(",") if t.strip() and t.strip() != "*")
    return _Query(m["aggr"], kind, span, tags, bool(by), as_count, text)


def _percentile(values: np.ndarray, aggr: str) -> float:
    """The nearest-rank ``pNN`` of ``values`` (non-empty)."""
    m = _PERCENTILE.fullmatch(aggr)
    assert m is not None
    q = float(m.group(1)) / 100.0
    return float(np.quantile(values, q, method="inverted_cdf"))


class DemoDatadog:
    """The fake's state and server. ``url`` (base URL) and ``intake_url`` are set by :meth:`start`.

    ``horizon_s``: spans kept (see the module docstring); ``latency_unit``: the unit latency columns come in (a
    name of :data:`UNITS`; None: no unit block, values in seconds); ``null_stats``: statistics answered null
    (query aggregator names: ``hits``, ``errors``, ``count``, ``sum``, ``avg``, ``max``, ``p99`` …).
    """

    def __init__(
        self,
        *,
        api_key: str = DEMO_API_KEY,
        app_key: str = DEMO_APP_KEY,
        horizon_s: float = HORIZON_S,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"host {host!r}: the demo's Datadog serves loopback only")
        self.api_key, self.app_key, self.horizon_s = api_key, app_key, float(horizon_s)
        self.latency_unit: str | None = "second"
        self.null_stats: set[str] = set()
        self.url = ""
        self.intake_url = ""
        self.traces_url = ""
        #: Whole traces and the Spans search over them (:mod:`parity.demo.apm_traces`).
        self.traces = TraceStore(self.horizon_s)
        self._host, self._port = host, port
        self._store_lock = threading.Lock()
        self._series: dict[tuple[str, str, str, frozenset[str]], dict[str, _Spans]] = {}
        self._pairs = 0
        self._newest_s = -math.inf
        self._received = 0
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._delays: list[list[float]] = []
        self._recorded: deque[RecordedRequest] = deque(maxlen=MAX_RECORDED)
        self._events: list[Any] = []
        self._serial = 0
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> DemoDatadog:
        """Bind and serve in a background thread; sets :attr:`url` and :attr:`intake_url`."""
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.intake_url = self.url + INTAKE_PATH
        self.traces_url = self.url + TRACES_INTAKE_PATH
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="demo-datadog", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (delayed answers are woken and dropped) and free the port. Idempotent."""
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoDatadog:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- fault switches --

    def fail(self, status: int, times: int | None = 1, *, path: str | None = None, body: Any = None) -> None:
        """Answer the next ``times`` query-side requests (None: all of them) with ``status`` (401, 403, 500,
        503 …) and Datadog's ``{"errors": [...]}`` body, or ``body`` when given (e.g. 200 with a malformed
        answer); with ``path``, only requests to that path count and fail."""
        message = {401: "Unauthorized", 403: "Forbidden", 404: "Not found"}.get(status, "Internal Server Error")
        answer = {"errors": [message]} if body is None else body
        with self._lock:
            self._faults.append(_Fault(status, times, {}, answer, path))

    def rate_limit(self, times: int, reset_s: int, *, name: str = "query_scalar") -> None:
        """Answer the next ``times`` query-side requests 429 with ``X-RateLimit-Reset: reset_s`` (seconds)."""
        headers = {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Period": str(RATE_PERIOD_S),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_s),
            "X-RateLimit-Name": name,
        }
        with self._lock:
            self._faults.append(_Fault(429, times, headers, {"errors": ["Too many requests"]}, None))

    def delay(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` query-side answers for ``seconds`` (a client with a shorter time-out gives up)."""
        with self._lock:
            self._delays.append([float(seconds), float(times)])

    def clear_faults(self) -> None:
        """Drop every pending fault and delay."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    # -- inspection --

    def recorded(self, path: str | None = None) -> list[RecordedRequest]:
        """Query-side requests received (newest :data:`MAX_RECORDED`), optionally only those to ``path``."""
        with self._lock:
            return [r for r in self._recorded if path is None or r.path == path]

    def events(self) -> list[Any]:
        """Bodies of the events accepted (``POST /api/v1/events``), in order."""
        with self._lock:
            return list(self._events)

    @property
    def spans_received(self) -> int:
        """Spans accepted by the intake since the start."""
        with self._store_lock:
            return self._received

    # -- intake --

    def add_spans(
        self, env: str, service: str, span: str, spans: Sequence[Sequence[Any]], tags: Iterable[str] = ()
    ) -> int:
        """Store one batch (the intake's body, already decoded); returns how many spans. ValueError naming the
        first bad span (nothing stored) for a malformed batch."""
        for what, value in (("env", env), ("service", service), ("span", span)):
            if not isinstance(value, str) or not value or len(value) > 200:
                raise ValueError(f"{what}: expected a non-empty string of at most 200 characters")
        tag_list = list(tags)
        if not all(isinstance(t, str) and t and "," not in t for t in tag_list):
            raise ValueError("tags: expected strings without commas")
        if not isinstance(spans, list | tuple):
            raise ValueError("spans: expected a list of [resource, start_s, duration_ms, error]")
        by_resource: dict[str, tuple[list[float], list[float], list[bool]]] = {}
        for i, item in enumerate(spans):
            if not isinstance(item, list | tuple) or len(item) != 4:
                raise ValueError(f"spans[{i}]: expected [resource, start_s, duration_ms, error]")
            resource, start, duration, error = item
            if not isinstance(resource, str) or not normalise_resource(resource):
                raise ValueError(f"spans[{i}]: resource: expected a non-empty name")
            if not _is_number(start) or not 0.0 <= start <= 4102444800.0:
                raise ValueError(f"spans[{i}]: start_s: expected Unix seconds")
            if not _is_number(duration) or not 0.0 <= duration <= 1e10:
                raise ValueError(f"spans[{i}]: duration_ms: expected a duration in ms, at least 0")
            if error not in (0, 1) or isinstance(error, float):
                raise ValueError(f"spans[{i}]: error: expected 0 or 1")
            lists = by_resource.setdefault(normalise_resource(resource), ([], [], []))
            lists[0].append(float(start))
            lists[1].append(float(duration))
            lists[2].append(bool(error))
        key = (env.lower(), service.lower(), span, frozenset(t.lower() for t in tag_list))
        with self._store_lock:
            series = self._series.get(key, {})
            new = sum(1 for r in by_resource if r not in series)
            if self._pairs + new > MAX_SERIES:
                raise ValueError(f"more than {MAX_SERIES} series: refused")
            self._series[key] = series
            self._pairs += new
            for lists in by_resource.values():
                self._newest_s = max(self._newest_s, float(np.max(lists[0])))
            cutoff = self._newest_s - self.horizon_s
            for resource, (starts, durations, errors) in by_resource.items():
                column = series.setdefault(resource, _Spans())
                column.add(np.asarray(starts), np.asarray(durations), np.asarray(errors, dtype=bool), cutoff)
            self._received += len(spans)
        return len(spans)

    # -- the query side --

    def scalar(self, body: Any) -> tuple[int, Any]:
        """``POST /api/v2/query/scalar``: (status, answer JSON). Exact statistics (module docstring)."""
        try:
            attributes = body["data"]["attributes"]
            lo_s, hi_s = int(attributes["from"]) / 1000.0, int(attributes["to"]) / 1000.0
            queries = {str(q["name"]): q for q in attributes["queries"]}
            formulas = attributes.get("formulas") or [{"formula": n} for n in queries]
        except (KeyError, TypeError, ValueError):
            return 400, {"errors": ["malformed scalar request: data.attributes from, to and queries are required"]}
        if hi_s <= lo_s:
            return 400, {"errors": ["The 'to' timestamp must be after the 'from' timestamp"]}
        try:
            windows: dict[tuple[str, frozenset[str]], dict[str, tuple[np.ndarray, np.ndarray]]] = {}
            columns_values: list[dict[str, float | None]] = []
            for formula in formulas:
                name = str(formula.get("formula", "")).strip()
                if name not in queries:
                    raise _BadRequest(f"formula {name!r}: the demo's Datadog evaluates single-query formulas only")
                values = self._values(queries[name], lo_s, hi_s, windows)
                limit = int((formula.get("limit") or {}).get("count", DEFAULT_SCALAR_LIMIT))
                kept = sorted(values.items(), key=lambda kv: (-(kv[1] if kv[1] is not None else -math.inf), kv[0]))
                columns_values.append(dict(kept[: max(limit, 0)]))
        except _BadRequest as exc:
            return 400, {"errors": [str(exc)]}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return 400, {"errors": [f"malformed scalar request: {type(exc).__name__}: {exc}"]}
        groups: set[str] = set().union(*columns_values) if columns_values else set()
        first = columns_values[0] if columns_values else {}
        rows = sorted(groups, key=lambda r: (-(v if (v := first.get(r)) is not None else -math.inf), r))
        columns: list[dict[str, Any]] = []
        if rows:
            columns.append({"name": "resource_name", "type": "group", "values": [[r] for r in rows]})
        for formula, values in zip(formulas, columns_values, strict=True):
            query = _parse_query(str(queries[str(formula["formula"]).strip()]["query"]))
            latency = query.kind == "latency" and query.aggr != "count"
            columns.append(
                {
                    "name": formula.get("alias") or str(formula["formula"]).strip(),
                    "type": "number",
                    "values": [values.get(r) for r in rows],
                    "meta": {"unit": self._unit_block() if latency else None},
                }
            )
        return 200, {"data": {"type": "scalar_response", "attributes": {"columns": columns}}}

    def _unit_block(self) -> list[Any] | None:
        return None if self.latency_unit is None else [dict(UNITS[self.latency_unit]), None]

    def _select(
        self, q: _Query, lo_s: float, hi_s: float, cache: dict[tuple[str, frozenset[str]], Any]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per resource, durations (ms) and error flags of the matching spans that started in the window."""
        key = (q.span, q.tags)
        if key in cache:
            return cache[key]  # type: ignore[no-any-return]
        merged: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        with self._store_lock:
            for (env, service, span, tags), series in self._series.items():
                if span != q.span:
                    continue
                have = {f"env:{env}", f"service:{service}", *tags}
                for resource, column in series.items():
                    if q.tags <= have | {f"resource_name:{resource}"}:
                        merged.setdefault(resource, []).append(column.window(lo_s, hi_s))
        out = {}
        for resource, parts in merged.items():
            dur = np.concatenate([p[0] for p in parts])
            if len(dur):
                out[resource] = (dur, np.concatenate([p[1] for p in parts]))
        cache[key] = out
        return out

    def _values(
        self, query: Mapping[str, Any], lo_s: float, hi_s: float, cache: dict[tuple[str, frozenset[str]], Any]
    ) -> dict[str, float | None]:
        """One query's value per resource (a resource with no value is left out)."""
        if query.get("data_source") != "metrics":
            raise _BadRequest(f"data_source {query.get('data_source')!r}: the demo's Datadog serves metrics only")
        q = _parse_query(str(query.get("query", "")))
        reducer = str(query.get("aggregator", "avg"))
        if q.kind != "latency":
            if q.aggr != "sum" or reducer != "sum" or not q.as_count:
                raise _BadRequest(f"{q.text[:200]}: the demo's Datadog serves sum:….as_count() reduced by sum only")
        elif _PERCENTILE.fullmatch(q.aggr):
            if reducer != "percentile":
                raise _BadRequest(f"{q.aggr} queries take the aggregator 'percentile', got {reducer!r}")
        elif (q.aggr, reducer) not in _LATENCY_PAIRS:
            raise _BadRequest(f"the demo's Datadog does not reduce {q.aggr}:trace.{q.span} with {reducer!r}")
        if not q.by:
            raise _BadRequest("the demo's Datadog answers queries grouped by {resource_name} only")
        selected = self._select(q, lo_s, hi_s, cache)
        stat = q.kind if q.kind != "latency" else q.aggr
        out: dict[str, float | None] = {}
        for resource, (dur, err) in selected.items():
            value = self._statistic(q, dur, err)
            if value is not None:
                out[resource] = None if stat in self.null_stats else value
        return out

    def _statistic(self, q: _Query, dur_ms: np.ndarray, err: np.ndarray) -> float | None:
        """One resource's statistic over its spans in the window (None: no point, e.g. 0 errors)."""
        if q.kind == "hits":
            return float(len(dur_ms)) or None
        if q.kind == "errors":
            return float(np.count_nonzero(err)) or None
        if q.aggr == "count":
            return float(len(dur_ms))
        if q.aggr == "sum":
            seconds = float(np.sum(dur_ms)) / 1000.0
        elif q.aggr == "avg":
            seconds = float(np.mean(dur_ms)) / 1000.0
        elif q.aggr == "max":
            seconds = float(np.max(dur_ms)) / 1000.0
        else:
            seconds = _percentile(dur_ms, q.aggr) / 1000.0
        unit = UNITS.get(self.latency_unit or "second", UNITS["second"])
        return seconds / float(unit["scale_factor"])

    def intake(self, path: str, body: Any) -> tuple[int, Any]:
        """``POST /api/v1/events`` and ``/api/v2/series``: recorded, 202."""
        if path == "/api/v2/series":
            if not isinstance(body, dict) or not isinstance(body.get("series"), list):
                return 400, {"errors": ["series: expected a list"]}
            return 202, {"errors": []}
        if not isinstance(body, dict) or not body.get("title") or not body.get("text"):
            return 400, {"errors": ["title and text are required"]}
        with self._lock:
            self._serial += 1
            serial = self._serial
            self._events.append(body)
        event = {
            "id": serial,
            "id_str": str(serial),
            "title": body["title"],
            "text": body["text"],
            "date_happened": int(time.time()),
            "tags": body.get("tags", []),
            "url": f"{self.url}/event/event?id={serial}",
        }
        return 202, {"status": "ok", "event": event}

    # -- serving helpers (handler threads) --

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._recorded.append(request)

    def _next_fault(self, path: str) -> _Fault | None:
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: Loopback calls never go through a proxy (``urlopen`` would take ``HTTP_PROXY`` from the environment).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_spans(
    intake_url: str,
    *,
    env: str,
    service: str,
    span: str,
    spans: Sequence[Sequence[Any]],
    tags: Sequence[str] = (),
    timeout_s: float = 2.0,
) -> int:
    """POST one batch of spans (``[resource, start_s, duration_ms, error]`` each) to a :class:`DemoDatadog`
    intake (directly, never through a proxy of the environment); returns how many it accepted. OSError (or
    ValueError for a refused batch) on failure: the caller decides whether to drop the batch."""
    data = json.dumps({"env": env, "service": service, "span": span, "tags": list(tags), "spans": spans}).encode()
    request = urllib.request.Request(intake_url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with _DIRECT.open(request, timeout=timeout_s) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise ValueError(f"the span intake refused the batch (HTTP {exc.code})") from None
    return int(answer.get("accepted", 0))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet: the base class prints
        return None

    def do_GET(self) -> None:
        self._send(404, {"errors": ["Not found"]})

    def do_POST(self) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_INTAKE_BYTES:
            self.close_connection = True
            self._send(413, {"errors": ["Payload too large"]})
            return
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"errors": ["malformed JSON body"]})
            return
        if path == INTAKE_PATH:
            self._intake(body)
            return
        if path == TRACES_INTAKE_PATH:
            self._traces_intake(body)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake._record(RecordedRequest("POST", path, headers, body, time.time()))
        delay = fake._next_delay()
        if delay and fake._closing.wait(delay):
            self.close_connection = True
            return
        fault = fake._next_fault(path)
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
            return
        needs_app_key = {
            "/api/v2/query/scalar": True,
            SEARCH_PATH: True,
            "/api/v1/events": False,
            "/api/v2/series": False,
        }.get(path)
        if needs_app_key is None:
            self._send(404, {"errors": ["Not found"]})
            return
        if headers.get("dd-api-key") != fake.api_key:
            self._send(401, {"errors": ["Unauthorized"]})
            return
        if needs_app_key and headers.get("dd-application-key") != fake.app_key:
            self._send(403, {"errors": ["Forbidden"]})
            return
        if path == SEARCH_PATH:
            allowed, limits = fake.traces.rate()
            if not allowed:
                self._send(429, {"errors": ["Too many requests"]}, limits)
                return
            try:
                status, answer = fake.traces.search(body, fake.url)
            except SearchError as exc:
                status, answer = 400, {"errors": [str(exc)]}
            self._send(status, answer, limits)
            return
        status, answer = fake.scalar(body) if needs_app_key else fake.intake(path, body)
        rate = {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Period": str(RATE_PERIOD_S),
            "X-RateLimit-Remaining": str(RATE_LIMIT - 1),
            "X-RateLimit-Reset": str(RATE_PERIOD_S),
            "X-RateLimit-Name": "query_scalar" if needs_app_key else "events",
        }
        self._send(status, answer, rate)

    def _intake(self, body: Any) -> None:
        try:
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            env: Any = body.get("env")
            service: Any = body.get("service")
            span: Any = body.get("span")
            spans: Any = body.get("spans")
            accepted = self.server.fake.add_spans(env, service, span, spans, body.get("tags") or ())
        except (ValueError, TypeError) as exc:
            self._send(400, {"errors": [str(exc)]})
            return
        self._send(202, {"accepted": accepted})

    def _traces_intake(self, body: Any) -> None:
        try:
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            accepted = self.server.fake.traces.add(parse_spans(body.get("env"), body.get("spans")))
        except (ValueError, TypeError) as exc:
            self._send(400, {"errors": [str(exc)]})
            return
        self._send(202, {"accepted": accepted})

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
    fake: DemoDatadog

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        return None  # a client that hung up mid-answer is expected in the time-out tests

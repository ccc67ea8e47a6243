"""The demo HR/payroll service as a real HTTP server, one process per deployment profile.

``python -m parity.demo.server --profile old|new|new-cutover [--profile ...] [--host 127.0.0.1] [--port 0]
[--seed 1] [--add-latency '[N:]METHOD ROUTE=MS' ...] [--apm-url URL [--apm-env ENV ...] [--trace-rate N]]``
binds a loopback address, prints one line ``listening on http://HOST:PORT`` and serves every endpoint of
``parity.demo.catalog.CATALOG`` until SIGTERM or SIGINT (exit code 0). Non-loopback hosts (and intakes) and
unknown ``--add-latency`` endpoints are refused with one line (exit code 2).

``--profile`` given N times serves N independent services (pools, CPU worker, statistics, seed ``seed + i``)
from this one process, one port each (consecutive from ``--port``, or free ones), with one ``listening on``
line each, in order; ``--add-latency 'N:...'`` applies to the N-th only (1-based; without ``N:`` to all). Old
and new in one process share its fate: a busy machine that holds the process back delays both alike, where
two processes can be held back unequally (an A/A comparison of two processes on a loaded 2-core machine differed
by ×1.5 for seconds at a time).

Each request costs what its ``CostModel`` says: app time, then ``queries`` database round trips on one
connection checked out of the profile's pool ``cost.pool`` (each query also holds one slot of the shared
database), all scaled by a per-request factor that is a deterministic function of the request times a
small random jitter; ``--add-latency`` adds a fixed wait (ms) to every request of one endpoint. The report
export charges the CPU time of its CSV rows (``CPU_MS_PER_ROW`` each, times the request's factor) to a
simulated single-core export worker (``CpuWorker``), throttled by ``CpuQuota`` when the profile sets
``export_cpu_quota`` (a Kubernetes CPU limit): the worker *sleeps* for that CPU time instead of computing, so
the bottleneck limits the export's capacity without taking real CPU from other endpoints, or from another
profile on the same machine. The CSV body itself is rendered once and cached. Waits use gevent primitives in
one OS thread; nothing is monkey-patched.

APM spans (``--apm-url URL``, a loopback intake of the demo's fake Datadog, ``parity.demo.apm``): every
catalogue request becomes one span ``[resource, start (Unix s), duration (ms), error 0|1]`` (error: HTTP
status >= 500, as Datadog APM counts errors), queued in memory and POSTed as JSON
``{"env", "service", "span", "spans": [...]}`` in batches every ``SPAN_FLUSH_S`` by a background OS thread
(``SpanReporter``); ``--apm-env`` names each service's environment (default: its profile's name). The queue is
bounded (the oldest spans are dropped beyond ``MAX_PENDING_SPANS``, counted), a failed POST drops its batch
(counted, one stderr line for the first), and the last spans are flushed on exit.

``GET /__demo/stats`` returns the requests received per catalogue endpoint key, counted on arrival (so a
test can check a load generator's counts against what the server saw), and per endpoint the server's own
accounting: ``requests``, ``cpu_ms`` (simulated CPU charged), ``cpu_throttled_ms`` (time the CPU limit
held its work back), ``pool_waits`` (requests that found their connection pool empty) and ``pool_wait_ms``
(time spent waiting for a connection); plus ``added_latency_ms`` per endpoint, and with ``--apm-url`` the span
reporter's ``apm`` counts (``recorded``, ``sent``, ``dropped``, ``failed_posts``).

Whole traces (also with ``--apm-url``): requests are traced as Datadog's tracer would trace a Rails app, and
posted by a ``TraceReporter`` (batched and bounded like the spans) to the same fake's trace intake
(``parity.demo.apm_traces``, path ``/api/parity-demo/traces``): a root ``rack.request`` (type ``web``, resource
the endpoint's), a ``postgres.query`` child (type ``sql``, tag ``db.system:postgresql``) per database query
(from before it waits for a database slot to its end), a ``connection_pool.wait`` (type ``queue``: queueing,
resource the pool's name) when the request found its connection pool empty, from asking to getting a connection
or giving up (then ``error``): a request that finds a free connection has none, as a tracer timing only waits,
a ``redis.command`` (type ``redis``) or ``http.request`` (type ``http``, tag ``peer.service``) per traced call of
the endpoint's ``CostModel.calls``; everything else — app time, the export's CPU (throttling included),
``--add-latency`` — is the root's own time: app code. All spans carry the service ``hr-payroll`` (client spans
name their peer in tags, as inferred services do). Traces are kept at most ``--trace-rate`` per second and
endpoint (default ``TRACE_RATE_PER_S``; 0: none), chosen at the request's start. The stats' ``traces`` counts
them (``traces``, ``unsampled``, and spans ``recorded``/``sent``/``dropped``, ``failed_posts``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import io
import ipaddress
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.request
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from statistics import NormalDist
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

import gevent
import gevent.event
import gevent.lock
import gevent.pool
import gevent.queue
from gevent.pywsgi import WSGIServer

from parity.demo.apm_traces import TRACES_INTAKE_PATH
from parity.demo.catalog import CATALOG, CPU_MS_PER_ROW, PROFILES, Call, CostModel, DemoEndpoint, Profile

__all__ = [
    "CFS_PERIOD_S",
    "EXPORT_CHUNK_ROWS",
    "INJECTED_ERROR",
    "MAX_PENDING_SPANS",
    "POOL_TIMEOUT_ERROR",
    "POOL_WAIT_SPAN",
    "POOL_WAIT_TYPE",
    "SPAN_FLUSH_S",
    "STATS_PATH",
    "TRACE_RATE_PER_S",
    "CpuQuota",
    "CpuWorker",
    "DemoService",
    "RequestCost",
    "Route",
    "Router",
    "SpanReporter",
    "TraceReporter",
    "apm_url_problem",
    "export_csv",
    "is_loopback",
    "main",
    "parse_added_latency",
    "render_export_rows",
    "request_cost",
    "traces_url",
]

#: Length of one CFS bandwidth-control period, in seconds (the Kubernetes default, 100 ms).
CFS_PERIOD_S = 0.100
#: CSV rows per chunk of export work on the CPU worker (exports in progress share the core chunk by chunk).
EXPORT_CHUNK_ROWS = 100
#: Seconds of the simulated CPU's schedule a chunk may catch up when the event loop woke the worker late (its
#: timers fire up to ~1 ms late); a longer stall of the process is not made up for.
CPU_CATCH_UP_S = 0.002
#: Departments whose export body is cached (rendered once each); others are rendered per request.
EXPORT_CACHE_SIZE = 64
#: Spread (sigma of the log) of the random per-request jitter multiplied onto the deterministic factor.
JITTER_SIGMA = 0.05
#: Spread (sigma of the log) of the deterministic variation between the queries of one request.
QUERY_SIGMA = 0.10
#: Largest request body accepted, in bytes; larger bodies get HTTP 413.
MAX_BODY_BYTES = 1 << 20
#: Seconds in-flight requests get to finish after SIGTERM/SIGINT before they are cancelled.
STOP_TIMEOUT_S = 2.0
#: The statistics endpoint (not part of the catalogue, not counted).
STATS_PATH = "/__demo/stats"
#: Error a request gets when no pool connection frees up within ``Profile.checkout_timeout_s``.
POOL_TIMEOUT_ERROR = "ActiveRecord::ConnectionTimeoutError"
#: Error a request gets when it draws one of its endpoint's ``error_rate`` failures.
INJECTED_ERROR = "ActiveRecord::Deadlocked"
#: Seconds between two batches of spans POSTed to the APM intake (``--apm-url``).
SPAN_FLUSH_S = 0.5
#: Spans waiting for the next batch at most (about a minute at 500 req/s); beyond it the oldest are dropped.
MAX_PENDING_SPANS = 30_000
#: Spans in one POST at most (a backlog goes out in several).
MAX_SPANS_PER_POST = 5_000
#: Timeout of one POST to the APM intake, in seconds.
SPAN_POST_TIMEOUT_S = 2.0
#: Seconds the span reporter's thread gets to send the last spans on exit.
SPAN_CLOSE_TIMEOUT_S = 3.0
#: APM service and span (operation) names the demo's spans carry, as a Rails app's do.
APM_SERVICE = "hr-payroll"
APM_SPAN = "rack.request"
#: Whole traces kept per second and endpoint (a token bucket per resource, like a tracer's ingestion rate
#: limiter): bounds what ``--apm-url`` sends to the trace intake whatever the load. ``--trace-rate`` overrides.
TRACE_RATE_PER_S = 2.0
#: Most trace spans waiting for the next batch; beyond it the oldest are dropped (counted).
MAX_PENDING_TRACE_SPANS = 20_000

_NORMAL = NormalDist()
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

Payload = dict[str, Any]
Response = tuple[int, Payload]


# --------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Route:
    """A catalogue endpoint with its route template compiled to a regex (``{name}`` → ``[^/]+``)."""

    endpoint: DemoEndpoint
    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, endpoint: DemoEndpoint) -> Route:
        """Compile ``endpoint.route``; literal parts are matched verbatim."""
        parts: list[str] = []
        last = 0
        for match in _PLACEHOLDER.finditer(endpoint.route):
            parts.append(re.escape(endpoint.route[last : match.start()]))
            parts.append(f"(?P<{match.group(1)}>[^/]+)")
            last = match.end()
        parts.append(re.escape(endpoint.route[last:]))
        return cls(endpoint, re.compile("".join(parts)))


@dataclass(frozen=True)
class Router:
    """Maps (method, path) to a catalogue endpoint and its path parameters."""

    routes: tuple[Route, ...]

    @classmethod
    def from_catalog(cls, catalog: Iterable[DemoEndpoint] = CATALOG) -> Router:
        """A router over ``catalog`` (by default the demo service's)."""
        return cls(tuple(Route.compile(endpoint) for endpoint in catalog))

    def resolve(self, method: str, path: str) -> tuple[DemoEndpoint, dict[str, str]] | list[str] | None:
        """The endpoint and path parameters for ``method path``.

        Returns the list of allowed methods when the path is known but the method is not (HTTP 405), and
        None for an unknown path (HTTP 404).
        """
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.endpoint.method == method:
                return route.endpoint, match.groupdict()
            allowed.append(route.endpoint.method)
        return allowed or None


# ------------------------------------------------------------------------------------------------ cost


def _uniforms(digest: bytes) -> list[float]:
    """Uniforms in the open interval (0, 1), one per 8 bytes of ``digest``."""
    return [(int.from_bytes(digest[i : i + 8], "big") + 0.5) / 2.0**64 for i in range(0, len(digest), 8)]


@dataclass(frozen=True)
class RequestCost:
    """The deterministic cost of one request, before jitter.

    ``factor`` multiplies the endpoint's median ``app_ms`` and ``query_ms`` (lognormal with spread
    ``sigma``, times ``slow_factor`` on the slow path); ``query_factors`` vary the queries of the request
    a little around it (one per query, median 1).
    """

    factor: float
    slow: bool
    query_factors: tuple[float, ...]


def request_cost(endpoint: DemoEndpoint, path: str, query_string: str, body: bytes) -> RequestCost:
    """The cost of a request, from a stable hash of (resource, path, sorted query string, raw body).

    The same request always gets the same cost, like a real database answering the same query.
    """
    query = urlencode(sorted(parse_qsl(query_string, keep_blank_values=True)))
    key = b"\0".join((endpoint.resource.encode(), path.encode(), query.encode(), body))
    digest = hashlib.blake2b(key, digest_size=16).digest()
    u1, u2 = _uniforms(digest)
    cost = endpoint.cost
    factor = math.exp(cost.sigma * _NORMAL.inv_cdf(u1))
    slow = u2 < cost.slow_share
    if slow:
        factor *= cost.slow_factor
    query_factors = tuple(
        math.exp(
            QUERY_SIGMA * _NORMAL.inv_cdf(_uniforms(hashlib.blake2b(digest + bytes([i]), digest_size=8).digest())[0])
        )
        for i in range(cost.queries)
    )
    return RequestCost(factor=factor, slow=slow, query_factors=query_factors)


@dataclass(eq=False)
class CpuQuota:
    """A Kubernetes CPU limit as CFS bandwidth control enforces it, for the exports of one process.

    Every ``period_s`` (100 ms) the exports together may use ``share × period_s`` seconds of CPU. Each
    export charges the CPU time of every chunk it renders; once the period's quota is used up, the export
    sleeps until the next period boundary. CPU used beyond the quota (a chunk that overran it) is a debt
    paid from the next period's quota, as the kernel does. ``share`` None means no limit. ``clock``
    (seconds) and ``sleep`` are injectable for tests.
    """

    share: float | None
    period_s: float = CFS_PERIOD_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = gevent.sleep
    _period: int = field(default=-1, init=False)
    _used_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.share is not None and not self.share > 0:
            msg = f"CPU share must be positive or None, got {self.share}"
            raise ValueError(msg)
        if not self.period_s > 0:
            msg = f"period must be positive, got {self.period_s} s"
            raise ValueError(msg)

    @property
    def quota_s(self) -> float | None:
        """CPU seconds allowed per period, or None without a limit."""
        return None if self.share is None else self.share * self.period_s

    def charge(self, cpu_s: float) -> float:
        """Charge ``cpu_s`` seconds of CPU; sleep while the quota is used up. Returns the seconds slept."""
        quota_s = self.quota_s
        if quota_s is None:
            return 0.0
        self._refill()
        self._used_s += cpu_s
        slept = 0.0
        while self._used_s >= quota_s:
            now = self.clock()
            wait_s = (math.floor(now / self.period_s) + 1) * self.period_s - now
            self.sleep(wait_s)
            slept += wait_s
            self._refill()
        return slept

    def _refill(self) -> None:
        """Start a new period's quota when the clock has crossed one or more period boundaries."""
        quota_s = self.quota_s
        assert quota_s is not None
        period = math.floor(self.clock() / self.period_s)
        if period > self._period:
            elapsed = period - self._period if self._period >= 0 else 1
            self._used_s = max(0.0, self._used_s - quota_s * elapsed)
            self._period = period


class CpuWorker:
    """The export worker: one simulated CPU core that runs the exports' work one chunk at a time under a ``CpuQuota``.

    A chunk is ``cpu_s`` seconds of CPU: the worker *waits* that long (nothing is computed, so the process's
    real CPU stays free for other requests), then charges it to the quota. Exports hand it their chunks
    (:meth:`run`) and wait; concurrent exports share it chunk by chunk, like processes sharing one CPU. Chunks
    handed over back to back (within ``CPU_CATCH_UP_S`` of the worker asking for one) run back to back on the
    worker's own schedule, so the event loop's late wake-ups do not add up over an export (a chunk that ended
    late is followed by a shorter wait, by up to ``CPU_CATCH_UP_S``).
    When the quota is used up the worker sleeps until the next period: every export waits, as a throttled
    container's processes do. ``clock`` (seconds) and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        quota: CpuQuota,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = gevent.sleep,
    ) -> None:
        self.quota = quota
        self.clock = clock
        self.sleep = sleep
        self._jobs: gevent.queue.Queue[tuple[float, gevent.event.AsyncResult]] = gevent.queue.Queue()
        self._greenlet = gevent.spawn(self._serve)

    def run(self, cpu_s: float) -> float:
        """Run a chunk of ``cpu_s`` seconds of CPU on the worker and wait for it; returns the seconds the CPU
        quota then held the worker back (0 without a limit)."""
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._jobs.put((cpu_s, result))
        throttled: float = result.get()
        return throttled

    def _serve(self) -> None:
        busy_until: float | None = None  # when the work handed out so far is done, on the worker's schedule
        while True:
            asked = self.clock()
            cpu_s, result = self._jobs.get()
            now = self.clock()
            # A chunk handed over right after the last one continues its schedule; after an idle spell it starts now.
            if busy_until is None or now - asked >= CPU_CATCH_UP_S:
                start = now
            else:
                start = max(busy_until, now - CPU_CATCH_UP_S)
            busy_until = start + cpu_s
            self.sleep(max(busy_until - self.clock(), 0.0))  # sleep(0) still lets others run
            throttled = self.quota.charge(cpu_s)
            if throttled > 0:
                busy_until = self.clock()  # the throttled time is not CPU time: the next chunk starts afresh
            result.set(throttled)


# ------------------------------------------------------------------------------------------------- APM


Span = list[Any]  # [resource, start (Unix s), duration (ms), error 0|1]: the intake's wire format


class SpanReporter:
    """Sends one service's requests as APM spans to the demo's fake Datadog intake (``parity.demo.apm``).

    :meth:`record` (called by the service, in the gevent thread) only appends to a bounded in-memory queue;
    a background OS thread POSTs the queue every ``flush_s`` seconds as ``{"env", "service", "span",
    "spans"}`` (at most ``MAX_SPANS_PER_POST`` spans a POST). Bounded everywhere: beyond ``max_pending``
    queued spans the oldest are dropped (``dropped``); a POST that fails or times out (``SPAN_POST_TIMEOUT_S``)
    drops its batch (``failed_posts``; one line on stderr for the first) and is not retried, like a tracer
    agent that sheds load. :meth:`close` stops the thread after a last flush. Missing spans mean missing APM
    data (the gate reads fewer hits), never invented ones.
    """

    def __init__(
        self,
        url: str,
        *,
        env: str,
        service: str = APM_SERVICE,
        span: str = APM_SPAN,
        flush_s: float = SPAN_FLUSH_S,
        max_pending: int = MAX_PENDING_SPANS,
    ) -> None:
        if not flush_s > 0 or max_pending < 1:
            raise ValueError(f"flush_s must be > 0 and max_pending >= 1, got {flush_s}, {max_pending}")
        self.url = url
        self.env = env
        self.service = service
        self.span = span
        self.flush_s = flush_s
        self.max_pending = max_pending
        self.recorded = 0
        self.sent = 0
        self.dropped = 0
        self.failed_posts = 0
        self._pending: deque[Any] = deque()
        self._stop = threading.Event()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        self._thread = threading.Thread(target=self._run, name=f"spans-{env}", daemon=True)

    def start(self) -> Self:
        """Start the sending thread; returns self."""
        self._thread.start()
        return self

    def record(self, resource: str, start_s: float, duration_ms: float, error: bool) -> None:
        """Queue one span: ``resource`` (e.g. ``EmployeesController#show``), its start (Unix s), duration (ms)."""
        self.recorded += 1
        if len(self._pending) >= self.max_pending:
            with contextlib.suppress(IndexError):  # the sender may have emptied it meanwhile
                self._pending.popleft()
                self.dropped += 1
        self._pending.append([resource, round(start_s, 6), round(duration_ms, 3), int(error)])

    def counts(self) -> dict[str, int]:
        """Spans recorded, sent, dropped (queue full or failed POST) and failed POSTs so far."""
        return {
            "recorded": self.recorded,
            "sent": self.sent,
            "dropped": self.dropped,
            "failed_posts": self.failed_posts,
        }

    def flush(self) -> None:
        """POST every queued span now (in batches); called by the thread, and by tests."""
        while self._pending:
            batch: list[Any] = []
            with contextlib.suppress(IndexError):
                while len(batch) < MAX_SPANS_PER_POST:
                    batch.append(self._pending.popleft())
            if batch:
                self._post(batch)

    def _payload(self, batch: list[Any]) -> Payload:
        """The JSON body of one POST."""
        return {"env": self.env, "service": self.service, "span": self.span, "spans": batch}

    def _post(self, batch: list[Any]) -> None:
        body = json.dumps(self._payload(batch), separators=(",", ":")).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=SPAN_POST_TIMEOUT_S) as response:
                response.read()
        except (OSError, ValueError) as exc:  # URLError/HTTPError/time-outs are OSErrors
            self.failed_posts += 1
            self.dropped += len(batch)
            if self.failed_posts == 1:
                print(f"warning: APM intake {self.url}: {exc} (spans of this batch dropped)", file=sys.stderr)
            return
        self.sent += len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()
        self.flush()

    def close(self, timeout_s: float = SPAN_CLOSE_TIMEOUT_S) -> None:
        """Stop the thread after a last flush (waits at most ``timeout_s`` seconds for it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)


def traces_url(apm_url: str) -> str:
    """The trace intake of the fake Datadog whose span intake is ``apm_url`` (same host and port)."""
    parts = urlsplit(apm_url)
    return f"{parts.scheme}://{parts.netloc}{TRACES_INTAKE_PATH}"


class TraceReporter(SpanReporter):
    """Sends one service's whole traces to the fake Datadog's trace intake (``parity.demo.apm_traces``).

    The same bounded, batched sending as :class:`SpanReporter` (a background OS thread, ``flush_s``, the oldest
    spans dropped beyond ``max_pending``, a failed POST drops its batch), with span objects of the trace intake's
    format. :meth:`keep` decides at a request's start whether it is traced: a token bucket per resource refilled
    at ``rate_per_s`` (burst ``max(1, rate_per_s)``); ``rate_per_s`` 0 traces nothing. ``clock`` (s) injectable.
    """

    def __init__(
        self,
        url: str,
        *,
        env: str,
        rate_per_s: float = TRACE_RATE_PER_S,
        flush_s: float = SPAN_FLUSH_S,
        max_pending: int = MAX_PENDING_TRACE_SPANS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_s >= 0 or not math.isfinite(rate_per_s):
            raise ValueError(f"rate_per_s must be a number >= 0, got {rate_per_s}")
        super().__init__(url, env=env, flush_s=flush_s, max_pending=max_pending)
        self._thread.name = f"traces-{env}"
        self.rate_per_s = rate_per_s
        self.clock = clock
        self.traces = 0
        self.unsampled = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # resource -> (tokens, at)
        self._ids = random.Random()  # ids need not repeat across runs; never the service's seeded RNG

    def keep(self, resource: str) -> bool:
        """Whether to trace a request of ``resource`` starting now (takes a token; counts both answers)."""
        burst = max(1.0, self.rate_per_s)
        now = self.clock()
        tokens, at = self._buckets.get(resource, (burst, now))
        tokens = min(burst, tokens + (now - at) * self.rate_per_s)
        kept = self.rate_per_s > 0 and tokens >= 1.0
        self._buckets[resource] = (tokens - 1.0 if kept else tokens, now)
        if kept:
            self.traces += 1
        else:
            self.unsampled += 1
        return kept

    def new_id(self) -> str:
        """A fresh 63-bit span/trace id, in decimal like Datadog's."""
        return str(self._ids.getrandbits(63) or 1)

    def record_trace(self, spans: Sequence[Payload]) -> None:
        """Queue every span of one trace (objects of the trace intake's format)."""
        for span in spans:
            self.recorded += 1
            if len(self._pending) >= self.max_pending:
                with contextlib.suppress(IndexError):
                    self._pending.popleft()
                    self.dropped += 1
            self._pending.append(span)

    def counts(self) -> dict[str, int]:
        """Traces kept and not (rate limit), spans recorded, sent, dropped, and failed POSTs so far."""
        return {"traces": self.traces, "unsampled": self.unsampled, **super().counts()}

    def _payload(self, batch: list[Any]) -> Payload:
        return {"env": self.env, "spans": batch}


class _Trace:
    """The spans of one traced request, on one clock: instants are the root's wall-clock start ``wall0`` (Unix s)
    plus the ``perf_counter`` time elapsed since ``perf0``, so every child lies within the root as measured."""

    def __init__(self, reporter: TraceReporter, resource: str, wall0: float, perf0: float) -> None:
        self.reporter = reporter
        self.resource = resource
        self.trace_id = reporter.new_id()
        self.root_id = reporter.new_id()
        self.wall0 = wall0
        self.perf0 = perf0
        self.children: list[Payload] = []

    def now_s(self) -> float:
        """Now, Unix s, on the trace's clock."""
        return self.wall0 + (time.perf_counter() - self.perf0)

    def child(
        self, name: str, type_: str, resource: str, start_s: float, meta: Mapping[str, str], error: bool = False
    ) -> None:
        """A child of the root from ``start_s`` (the trace's clock) to now."""
        self.children.append(
            {
                "trace_id": self.trace_id,
                "span_id": self.reporter.new_id(),
                "parent_id": self.root_id,
                "service": APM_SERVICE,
                "name": name,
                "resource": resource,
                "type": type_,
                "start_s": round(start_s, 6),
                "duration_ms": round(max(self.now_s() - start_s, 0.0) * 1000.0, 3),
                "error": int(error),
                "meta": dict(meta),
            }
        )

    def finish(self, status: int, method: str, route: str) -> None:
        """Close the root now and hand the whole trace to the reporter."""
        root = {
            "trace_id": self.trace_id,
            "span_id": self.root_id,
            "parent_id": "0",
            "service": APM_SERVICE,
            "name": APM_SPAN,
            "resource": self.resource,
            "type": "web",
            "start_s": round(self.wall0, 6),
            "duration_ms": round((time.perf_counter() - self.perf0) * 1000.0, 3),
            "error": int(status >= 500),
            "meta": {"http.method": method, "http.route": route, "http.status_code": str(status)},
        }
        self.reporter.record_trace([root, *self.children])


# ---------------------------------------------------------------------------------------------- export

_YEN = Decimal(1)
_SEN = Decimal("0.01")
_HEALTH_RATE = Decimal("0.04985")
_PENSION_RATE = Decimal("0.0915")
_EMPLOYMENT_RATE = Decimal("0.006")
_OVERTIME_PREMIUM = Decimal("1.25")
_MONTHLY_HOURS = Decimal(160)
_RESIDENT_TAX_RATE = Decimal("0.10")
_MONTHS_PER_YEAR = Decimal(12)
#: Monthly withholding brackets: (upper bound of taxable pay in yen, rate, deduction in yen).
_TAX_BRACKETS = (
    (Decimal(162_500), Decimal("0.05"), Decimal(0)),
    (Decimal(275_000), Decimal("0.10"), Decimal(8_125)),
    (Decimal(579_166), Decimal("0.20"), Decimal(35_625)),
    (Decimal(750_000), Decimal("0.23"), Decimal(53_000)),
    (Decimal(1_500_000), Decimal("0.33"), Decimal(128_000)),
)
_TOP_BRACKET = (Decimal("0.40"), Decimal(203_000))
EXPORT_HEADER = (
    "employee_id,name,department,base_pay,overtime_hours,overtime_pay,commute_allowance,gross_pay,"
    "health_insurance,pension,employment_insurance,income_tax,resident_tax,net_pay\n"
)


def _income_tax(taxable: Decimal) -> Decimal:
    """Monthly income-tax withholding in whole yen for ``taxable`` yen."""
    rate, deduction = _TOP_BRACKET
    for upper, bracket_rate, bracket_deduction in _TAX_BRACKETS:
        if taxable <= upper:
            rate, deduction = bracket_rate, bracket_deduction
            break
    return max(Decimal(0), taxable * rate - deduction).quantize(_YEN, ROUND_DOWN)


def render_export_rows(department: str, start: int, stop: int) -> str:
    """CSV rows ``start``…``stop - 1`` of the payroll export of ``department`` (real CPU work, about 7 µs a row).

    Pay figures are computed with ``Decimal`` in whole yen, deterministically from the row; the department is
    a column (so every department's body is one rendering with the column filled in: see ``export_csv``).
    """
    seed = _stable_int("export")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in range(start, stop):
        employee_id = 1001 + 7 * row
        base = Decimal(200_000 + (seed * 7919 + row * 104_729) % 450_000)
        overtime_hours = Decimal((seed + row * 37) % 4000) / 100
        hourly = (base / _MONTHLY_HOURS).quantize(_SEN, ROUND_HALF_UP)
        overtime = (hourly * _OVERTIME_PREMIUM * overtime_hours).quantize(_YEN, ROUND_HALF_UP)
        commute = Decimal(5000 + (row * 131) % 25_000)
        gross = base + overtime + commute
        health = (gross * _HEALTH_RATE).quantize(_YEN, ROUND_HALF_UP)
        pension = (gross * _PENSION_RATE).quantize(_YEN, ROUND_HALF_UP)
        employment = (gross * _EMPLOYMENT_RATE).quantize(_YEN, ROUND_HALF_UP)
        taxable = gross - commute - health - pension - employment
        income_tax = _income_tax(taxable)
        resident_tax = (taxable * _RESIDENT_TAX_RATE / _MONTHS_PER_YEAR).quantize(_YEN, ROUND_DOWN)
        net = gross - health - pension - employment - income_tax - resident_tax
        writer.writerow(
            (
                employee_id,
                _employee_name(employee_id),
                department,
                base,
                overtime_hours,
                overtime,
                commute,
                gross,
                health,
                pension,
                employment,
                income_tax,
                resident_tax,
                net,
            )
        )
    return buffer.getvalue()


#: Placeholder of the department column in the cached rendering (never part of a cacheable department name).
_DEPARTMENT_MARK = "\x00"
_CACHEABLE_DEPARTMENT = re.compile(r"[\w-]{1,64}")


@functools.cache
@functools.cache
def _export_template(rows: int) -> str:
    """Every department's rows, rendered once per row count, with a mark where the department goes."""
    return render_export_rows(_DEPARTMENT_MARK, 0, rows)


@functools.lru_cache(maxsize=EXPORT_CACHE_SIZE)
def _cached_export(department: str, rows: int) -> bytes:
    return (EXPORT_HEADER + _export_template(rows).replace(_DEPARTMENT_MARK, department)).encode()


def export_csv(department: str, rows: int) -> bytes:
    """The export's CSV body (header + ``rows`` rows) for ``department``: the rows are rendered once per process
    and the body cached per department (plain names such as ``d7``; any other name is rendered each time)."""
    if _CACHEABLE_DEPARTMENT.fullmatch(department):
        return _cached_export(department, rows)
    return (EXPORT_HEADER + render_export_rows(department, 0, rows)).encode()


# ------------------------------------------------------------------------------------- response bodies

_FIRST_NAMES = ("Aiko", "Daiki", "Emi", "Haruto", "Kenji", "Mei", "Ren", "Sakura", "Sota", "Yui", "Yuto")
_LAST_NAMES = ("Abe", "Fujita", "Ito", "Kato", "Kobayashi", "Mori", "Sato", "Suzuki", "Tanaka", "Yamada")
_DEPARTMENTS = (
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Human Resources",
    "Legal",
    "Support",
    "Operations",
)
_DEPARTMENT_COUNT = 24
_EMPLOYEE_COUNT = 2800
_LEAVE_KINDS = ("paid", "sick", "special")


class _NotFoundError(Exception):
    """The request names a record that does not exist (HTTP 404)."""


class _UnprocessableError(Exception):
    """The request body lacks a required field (HTTP 422)."""


def _stable_int(text: str) -> int:
    """A stable 32-bit integer for ``text`` (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def _record_id(value: str | None) -> int:
    if value is None or not value.isdigit():
        raise _NotFoundError
    return int(value)


def _employee_name(employee_id: int) -> str:
    return f"{_FIRST_NAMES[employee_id % len(_FIRST_NAMES)]} {_LAST_NAMES[employee_id // 7 % len(_LAST_NAMES)]}"


def _department(number: int) -> Payload:
    return {"id": f"d{number}", "name": f"{_DEPARTMENTS[(number - 1) % len(_DEPARTMENTS)]} {number}"}


def _employee_summary(employee_id: int) -> Payload:
    return {
        "id": employee_id,
        "name": _employee_name(employee_id),
        "department_id": f"d{employee_id % _DEPARTMENT_COUNT + 1}",
    }


def _employee(employee_id: int, phone: str | None = None) -> Payload:
    name = _employee_name(employee_id)
    return {
        **_employee_summary(employee_id),
        "email": f"{name.lower().replace(' ', '.')}.{employee_id}@acme.example",
        "phone": phone or f"+81-3-5550-{employee_id % 10_000:04d}",
        "title": ("Associate", "Specialist", "Manager", "Director")[employee_id % 4],
        "hired_on": f"{2010 + employee_id % 15}-{employee_id % 12 + 1:02d}-01",
        "employment_type": "full_time" if employee_id % 9 else "part_time",
    }


def _month(value: str | None) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", value or "")
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise _UnprocessableError("month must be YYYY-MM")
    return int(match.group(1)), int(match.group(2))


def _yen(value: Decimal) -> int:
    return int(value.quantize(_YEN, ROUND_HALF_UP))


def _health(_params: Mapping[str, str], _query: Mapping[str, str], _body: Any) -> Response:
    return 200, {"status": "ok"}


def _session(_params: Mapping[str, str], _query: Mapping[str, str], body: Any) -> Response:
    email = _body_field(body, "email")
    token = hashlib.blake2b(f"{email}:{time.time_ns()}".encode(), digest_size=16).hexdigest()
    return 201, {"token": token, "token_type": "Bearer", "expires_in": 3600, "user": {"email": email}}


def _employees(_params: Mapping[str, str], query: Mapping[str, str], _body: Any) -> Response:
    try:
        page = max(1, int(query.get("page", "1")))
        per_page = min(100, max(1, int(query.get("per_page", "50"))))
    except ValueError as exc:
        raise _UnprocessableError("page and per_page must be integers") from exc
    first = (page - 1) * per_page
    ids = [1001 + 7 * i for i in range(first, min(first + per_page, _EMPLOYEE_COUNT))]
    return 200, {
        "page": page,
        "per_page": per_page,
        "total": _EMPLOYEE_COUNT,
        "employees": [_employee_summary(employee_id) for employee_id in ids],
    }


def _employee_show(params: Mapping[str, str], _query: Mapping[str, str], _body: Any) -> Response:
    return 200, _employee(_record_id(params.get("id")))


def _employee_update(params: Mapping[str, str], _query: Mapping[str, str], body: Any) -> Response:
    employee_id = _record_id(params.get("id"))
    phone = _body_field(_body_field(body, "employee"), "phone")
    return 200, _employee(employee_id, phone=str(phone))


def _attendance(params: Mapping[str, str], query: Mapping[str, str], _body: Any) -> Response:
    employee_id = _record_id(params.get("id"))
    year, month = _month(query.get("month"))
    days = []
    for day in range(1, 29):
        if (day + month) % 7 in (0, 1):  # weekend
            continue
        seed = employee_id + day * 31 + month
        clock_in = 8 * 60 + 30 + seed % 60
        clock_out = clock_in + 8 * 60 + seed % 120
        days.append(
            {
                "date": f"{year}-{month:02d}-{day:02d}",
                "clock_in": f"{clock_in // 60:02d}:{clock_in % 60:02d}",
                "clock_out": f"{clock_out // 60:02d}:{clock_out % 60:02d}",
                "hours": round((clock_out - clock_in - 60) / 60, 2),
            }
        )
    return 200, {"employee_id": employee_id, "month": f"{year}-{month:02d}", "days": days}


def _clock_in(_params: Mapping[str, str], _query: Mapping[str, str], body: Any) -> Response:
    employee_id = _record_id(str(_body_field(body, "employee_id")))
    now = time.gmtime()
    return 201, {
        "id": time.time_ns() // 1000,
        "employee_id": employee_id,
        "kind": "clock_in",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
    }


def _leave_requests(_params: Mapping[str, str], query: Mapping[str, str], _body: Any) -> Response:
    employee_id = _record_id(query.get("employee_id"))
    requests = [
        {
            "id": employee_id * 10 + i,
            "kind": _LEAVE_KINDS[(employee_id + i) % len(_LEAVE_KINDS)],
            "starts_on": f"2026-{(employee_id + 3 * i) % 12 + 1:02d}-{(employee_id + i) % 20 + 1:02d}",
            "days": 1 + (employee_id + i) % 3,
            "status": ("approved", "pending", "rejected")[(employee_id * i) % 3],
        }
        for i in range(1 + employee_id % 3)
    ]
    return 200, {"employee_id": employee_id, "leave_requests": requests}


def _departments(_params: Mapping[str, str], _query: Mapping[str, str], _body: Any) -> Response:
    departments = [{**_department(n), "headcount": 40 + n * 17 % 120} for n in range(1, _DEPARTMENT_COUNT + 1)]
    return 200, {"departments": departments}


def _payslip(params: Mapping[str, str], _query: Mapping[str, str], _body: Any) -> Response:
    payslip_id = _record_id(params.get("id"))
    gross = Decimal(220_000 + payslip_id * 7919 % 480_000)
    health = (gross * _HEALTH_RATE).quantize(_YEN, ROUND_HALF_UP)
    pension = (gross * _PENSION_RATE).quantize(_YEN, ROUND_HALF_UP)
    employment = (gross * _EMPLOYMENT_RATE).quantize(_YEN, ROUND_HALF_UP)
    income_tax = _income_tax(gross - health - pension - employment)
    net = gross - health - pension - employment - income_tax
    return 200, {
        "id": payslip_id,
        "employee_id": 1001 + 7 * (payslip_id % 400),
        "period": f"2026-{payslip_id % 11 + 1:02d}",
        "currency": "JPY",
        "gross_pay": _yen(gross),
        "deductions": {
            "health_insurance": _yen(health),
            "pension": _yen(pension),
            "employment_insurance": _yen(employment),
            "income_tax": _yen(income_tax),
        },
        "net_pay": _yen(net),
    }


def _payroll_calculation(_params: Mapping[str, str], _query: Mapping[str, str], body: Any) -> Response:
    company = str(_body_field(body, "company_id"))
    year, month = _month(str(_body_field(body, "period")))
    seed = _stable_int(f"{company}:{year}-{month}")
    employees = 80 + seed % 900
    gross = Decimal(employees) * Decimal(310_000 + seed % 90_000)
    deductions = (gross * Decimal("0.2315")).quantize(_YEN, ROUND_HALF_UP)
    return 201, {
        "id": seed,
        "company_id": company,
        "period": f"{year}-{month:02d}",
        "status": "completed",
        "employees": employees,
        "gross_total": _yen(gross),
        "deductions_total": _yen(deductions),
        "net_total": _yen(gross - deductions),
    }


def _body_field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or body.get(name) in (None, ""):
        raise _UnprocessableError(f"missing field {name!r}")
    return body[name]


_HANDLERS: Mapping[str, Callable[[Mapping[str, str], Mapping[str, str], Any], Response]] = {
    "HealthController#show": _health,
    "SessionsController#create": _session,
    "EmployeesController#index": _employees,
    "EmployeesController#show": _employee_show,
    "EmployeesController#update": _employee_update,
    "AttendanceController#index": _attendance,
    "ClockEventsController#create": _clock_in,
    "LeaveRequestsController#index": _leave_requests,
    "DepartmentsController#index": _departments,
    "PayslipsController#show": _payslip,
    "PayrollCalculationsController#create": _payroll_calculation,
}
_EXPORT_RESOURCE = "ReportsController#export"
_POSTGRES_META: Mapping[str, str] = {"db.system": "postgresql"}
#: Operation and span type of a wait for a pool connection (classified as queueing by ``parity.explain``).
POOL_WAIT_SPAN, POOL_WAIT_TYPE = "connection_pool.wait", "queue"


_N_PLUS_ONE_STATEMENT = "SELECT employees.* FROM employees WHERE employees.id = $1"


@functools.cache
def _statement(resource: str) -> str:
    """The SQL resource of an endpoint's own queries, on the table of its controller
    (``PayrollCalculationsController#create`` -> ``payroll_calculations``)."""
    controller = resource.split("#", 1)[0].removesuffix("Controller")
    table = re.sub(r"(?<!^)(?=[A-Z])", "_", controller).lower() or "records"
    return f"SELECT {table}.* FROM {table} WHERE {table}.id = $1"


# --------------------------------------------------------------------------------------------- service


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_reply(status: int, payload: Payload, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(payload, separators=(",", ":")).encode(), headers=headers)


_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


@dataclass
class _Account:
    """The server's own accounting of one endpoint (see the module docstring); times in ms."""

    requests: int = 0
    cpu_ms: float = 0.0
    cpu_throttled_ms: float = 0.0
    pool_waits: int = 0
    pool_wait_ms: float = 0.0
    queries: int = 0

    def to_dict(self) -> Payload:
        return {
            "requests": self.requests,
            "queries": self.queries,
            "cpu_ms": round(self.cpu_ms, 3),
            "cpu_throttled_ms": round(self.cpu_throttled_ms, 3),
            "pool_waits": self.pool_waits,
            "pool_wait_ms": round(self.pool_wait_ms, 3),
        }


@dataclass(eq=False)
class DemoService:
    """The WSGI application of one profile: routing, request costs, pools, the CPU quota and statistics.

    ``seed`` seeds the per-process random jitter and injected errors. ``added_latency_ms`` maps endpoint keys
    to a fixed wait (ms) added to each of their requests. ``spans``: where each catalogue request is reported
    as an APM span (None: nowhere); ``traces``: where sampled requests are sent as whole traces (None: nowhere).
    Not thread-safe: run it under gevent in one OS thread.
    """

    profile: Profile
    seed: int = 1
    added_latency_ms: Mapping[str, float] = field(default_factory=dict)
    spans: SpanReporter | None = None
    traces: TraceReporter | None = None
    router: Router = field(default_factory=Router.from_catalog)
    rng: random.Random = field(init=False)
    pools: dict[str, Any] = field(init=False)
    database: Any = field(init=False)
    cpu_quota: CpuQuota = field(init=False)
    export_worker: CpuWorker = field(init=False)
    counts: Counter[str] = field(init=False, default_factory=Counter)
    accounts: defaultdict[str, _Account] = field(init=False, default_factory=lambda: defaultdict(_Account))

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.pools = {name: gevent.lock.BoundedSemaphore(size) for name, size in self.profile.pools.items()}
        self.database = gevent.lock.BoundedSemaphore(self.profile.db_capacity)
        self.cpu_quota = CpuQuota(self.profile.export_cpu_quota)
        self.export_worker = CpuWorker(self.cpu_quota)
        for route in self.router.routes:
            cost = route.endpoint.cost
            if cost.queries > 0 and cost.pool not in self.pools:
                msg = f"profile {self.profile.name!r} has no pool {cost.pool!r} for {route.endpoint.key}"
                raise ValueError(msg)

    def stats(self) -> Payload:
        """Requests received per catalogue endpoint key, counted on arrival, and each endpoint's accounting."""
        stats: Payload = {
            "profile": self.profile.name,
            "total": sum(self.counts.values()),
            "requests": dict(self.counts),
            "endpoints": {key: account.to_dict() for key, account in self.accounts.items()},
            "added_latency_ms": dict(self.added_latency_ms),
        }
        if self.spans is not None:
            stats["apm"] = {"env": self.spans.env, **self.spans.counts()}
        if self.traces is not None:
            stats["traces"] = {"env": self.traces.env, **self.traces.counts()}
        return stats

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (WSGI); a catalogue request is reported as a span when ``spans`` is set."""
        started_s, started = time.time(), time.perf_counter()
        resolved: list[DemoEndpoint] = []
        traced: list[_Trace] = []
        try:
            reply = self._handle(environ, resolved, traced, (started_s, started))
        except Exception:  # a bug in a handler: answer like Rails would, keep the traceback
            traceback.print_exc(file=sys.stderr)
            reply = _json_reply(500, {"error": "internal server error"})
        if self.spans is not None and resolved:
            duration_ms = (time.perf_counter() - started) * 1000.0
            self.spans.record(resolved[0].resource, started_s, duration_ms, reply.status >= 500)
        if traced and resolved:
            traced[0].finish(reply.status, resolved[0].method, resolved[0].route)
        headers = [
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(reply.body))),
            *reply.headers,
        ]
        start_response(f"{reply.status} {_REASONS.get(reply.status, '')}".rstrip(), headers)
        return [reply.body]

    def _handle(
        self,
        environ: WSGIEnvironment,
        found: list[DemoEndpoint],
        traced: list[_Trace],
        started: tuple[float, float] = (0.0, 0.0),
    ) -> _Reply:
        """The reply to one request; appends the catalogue endpoint to ``found`` once it is known, and its trace to
        ``traced`` when the request is traced (``started``: its wall-clock and ``perf_counter`` start, s)."""
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "")) or "/"
        if path == STATS_PATH:
            if method != "GET":
                return _json_reply(405, {"error": "method not allowed"}, (("Allow", "GET"),))
            return _json_reply(200, self.stats())
        match = self.router.resolve(method, path)
        if match is None:
            return _json_reply(404, {"error": "not found", "path": path})
        if isinstance(match, list):
            allow = ", ".join(sorted(set(match)))
            return _json_reply(405, {"error": "method not allowed", "allow": allow}, (("Allow", allow),))
        endpoint, params = match
        found.append(endpoint)
        trace = self._trace(endpoint, started, traced)
        self.counts[endpoint.key] += 1
        account = self.accounts[endpoint.key]
        account.requests += 1
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json_reply(400, {"error": "invalid Content-Length"})
        if length > MAX_BODY_BYTES:
            return _json_reply(413, {"error": "request body too large", "limit_bytes": MAX_BODY_BYTES})
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        body: Any = None
        if method in ("POST", "PATCH", "PUT"):
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return _json_reply(400, {"error": "request body is not valid JSON"})
        query_string = str(environ.get("QUERY_STRING", ""))
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        cost = request_cost(endpoint, path, query_string, raw)
        factor = cost.factor * self.rng.lognormvariate(0.0, JITTER_SIGMA)
        extra = self.profile.n_plus_one.get(endpoint.resource, 0)
        if not self._spend(endpoint, factor, cost.query_factors, account, trace, extra):
            return _json_reply(500, {"error": POOL_TIMEOUT_ERROR})
        added_ms = self.added_latency_ms.get(endpoint.key)
        if added_ms:
            gevent.sleep(added_ms / 1000.0)
        if endpoint.resource == _EXPORT_RESOURCE:
            reply = self._export(endpoint.cost, factor, query.get("department", "all"), account)
        else:
            try:
                status, payload = _HANDLERS[endpoint.resource](params, query, body)
                reply = _json_reply(status, payload)
            except _NotFoundError:
                reply = _json_reply(404, {"error": "record not found", "path": path})
            except _UnprocessableError as exc:
                reply = _json_reply(422, {"error": str(exc)})
        if self.rng.random() < endpoint.cost.error_rate:
            return _json_reply(500, {"error": INJECTED_ERROR})
        return reply

    def _trace(self, endpoint: DemoEndpoint, started: tuple[float, float], traced: list[_Trace]) -> _Trace | None:
        """A trace for a request of ``endpoint`` (appended to ``traced``) when it is traced (the reporter's rate
        limit), else None."""
        if self.traces is None or not self.traces.keep(endpoint.resource):
            return None
        trace = _Trace(self.traces, endpoint.resource, *started)
        traced.append(trace)
        return trace

    def _spend(
        self,
        endpoint: DemoEndpoint,
        factor: float,
        query_factors: Sequence[float],
        account: _Account,
        trace: _Trace | None = None,
        extra_queries: int = 0,
    ) -> bool:
        """Wait out the app time and the queries (holding a connection of ``cost.pool`` for the queries, or from
        the start with ``Profile.checkout_per_request``); False when no connection freed up in time.
        ``extra_queries`` (N+1, ``Profile.n_plus_one``) run after the endpoint's own, each costing one of them
        (their factors reused in turn). ``trace``: where the queries and traced calls become spans."""
        cost = endpoint.cost
        app_s = cost.app_ms * factor / 1000.0
        if cost.queries <= 0:
            self._app_time(app_s, cost.calls, trace)
            return True
        pool = self.pools[cost.pool]
        early = self.profile.checkout_per_request
        if not early:
            self._app_time(app_s, cost.calls, trace)
        if not self._checkout(pool, account, trace, cost.pool):
            return False
        try:
            if early:
                self._app_time(app_s, cost.calls, trace)
            own = len(query_factors)
            for i in range(own + extra_queries):
                started = trace.now_s() if trace is not None else 0.0
                with self.database:
                    gevent.sleep(cost.query_ms * factor * query_factors[i % own] / 1000.0)
                account.queries += 1
                if trace is not None:
                    statement = _statement(endpoint.resource) if i < own else _N_PLUS_ONE_STATEMENT
                    trace.child("postgres.query", "sql", statement, started, _POSTGRES_META)
        finally:
            pool.release()
        return True

    @staticmethod
    def _app_time(app_s: float, calls: Sequence[Call], trace: _Trace | None) -> None:
        """Wait out ``app_s`` seconds of app time, of which ``calls`` take their shares as traced calls (the same
        waits whether the request is traced or not)."""
        rest_s = app_s
        for call in calls:
            each_s = app_s * call.share / call.count
            for _ in range(call.count):
                started = trace.now_s() if trace is not None else 0.0
                gevent.sleep(each_s)
                if trace is None:
                    continue
                if call.kind == "cache":
                    trace.child("redis.command", "redis", call.resource or "GET", started, {"db.system": "redis"})
                else:
                    meta = {"peer.service": call.peer, "out.host": call.peer, "span.kind": "client"}
                    trace.child("http.request", "http", call.resource or "GET", started, meta)
            rest_s -= app_s * call.share
        gevent.sleep(max(rest_s, 0.0))

    def _checkout(self, pool: Any, account: _Account, trace: _Trace | None = None, name: str = "") -> bool:
        """Take a connection of ``pool`` (called ``name``), waiting at most the profile's checkout timeout
        (accounted; a wait of a traced request is its ``POOL_WAIT_SPAN`` span, an error when it gave up)."""
        if not pool.locked():
            return bool(pool.acquire(timeout=self.profile.checkout_timeout_s))
        account.pool_waits += 1  # no connection free: this request waits for one
        asked = time.monotonic()
        started = trace.now_s() if trace is not None else 0.0
        acquired = bool(pool.acquire(timeout=self.profile.checkout_timeout_s))
        account.pool_wait_ms += (time.monotonic() - asked) * 1000.0
        if trace is not None:
            meta = {"db.pool.name": name}
            trace.child(POOL_WAIT_SPAN, POOL_WAIT_TYPE, name, started, meta, error=not acquired)
        return acquired

    def _export(self, cost: CostModel, factor: float, department: str, account: _Account) -> _Reply:
        """Charge the CPU of ``cost.cpu_rows`` CSV rows (``CPU_MS_PER_ROW`` ms × ``factor`` each) chunk by chunk to
        the export worker (which the CPU quota throttles), then answer the department's CSV."""
        for start in range(0, cost.cpu_rows, EXPORT_CHUNK_ROWS):
            rows = min(EXPORT_CHUNK_ROWS, cost.cpu_rows - start)
            cpu_s = rows * CPU_MS_PER_ROW * factor / 1000.0
            throttled_s = self.export_worker.run(cpu_s)
            account.cpu_ms += cpu_s * 1000.0
            account.cpu_throttled_ms += throttled_s * 1000.0
        safe = department if _CACHEABLE_DEPARTMENT.fullmatch(department) else "export"
        filename = f"employees-{safe}.csv"
        return _Reply(
            200,
            export_csv(department, cost.cpu_rows),
            content_type="text/csv; charset=utf-8",
            headers=(("Content-Disposition", f'attachment; filename="{filename}"'),),
        )


# ------------------------------------------------------------------------------------------------- CLI


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _disable_nagle(server: Any) -> None:
    """Send every response without waiting (TCP_NODELAY on each accepted connection).

    pywsgi writes the headers and the body in two sends; with Nagle's algorithm the body of a keep-alive
    response then waits for the client's delayed ACK, adding ~40 ms to every request after the first.
    """
    handle = server.handle

    def handle_without_nagle(sock: Any, address: Any) -> None:
        with contextlib.suppress(OSError):  # the client may already be gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handle(sock, address)

    server.set_handle(handle_without_nagle)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        msg = f"port must be 0..65535, got {port}"
        raise argparse.ArgumentTypeError(msg)
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parity.demo.server", description="Serve the demo HR/payroll service."
    )
    parser.add_argument(
        "--profile",
        required=True,
        action="append",
        choices=sorted(PROFILES),
        help="deployment profile; repeat to serve several services from this process, one port each",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=0, help="TCP port (the next ones for more profiles); 0 picks free ones (default)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the random jitter and errors")
    parser.add_argument(
        "--add-latency",
        action="append",
        default=[],
        metavar="'[N:]METHOD ROUTE=MS'",
        help="add MS milliseconds to every request of one catalogue endpoint, e.g. 'GET /api/employees/{id}=30' "
        "(repeatable; N: only for the N-th --profile)",
    )
    parser.add_argument(
        "--apm-url",
        default=None,
        metavar="URL",
        help="report every request as an APM span to this loopback intake (parity.demo.apm), batched",
    )
    parser.add_argument(
        "--apm-env",
        action="append",
        default=[],
        metavar="ENV",
        help="the spans' env, once per --profile in order (default: the profile's name)",
    )
    parser.add_argument(
        "--trace-rate",
        type=float,
        default=TRACE_RATE_PER_S,
        metavar="N",
        help=f"with --apm-url: whole traces sent per second and endpoint at most (default {TRACE_RATE_PER_S:g}; "
        "0: none)",
    )
    return parser


def apm_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a span intake (not http on a loopback host), or None when it can."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return f"--apm-url {url!r}: expected http://127.0.0.1:PORT/..."
    if not is_loopback(parts.hostname):
        return f"--apm-url {url!r}: only loopback hosts are allowed"
    return None


_LISTENER_PREFIX = re.compile(r"(\d+):(.*)", re.DOTALL)


def parse_added_latency(specs: Sequence[str], services: int = 1) -> list[dict[str, float]]:
    """Per service (``services`` of them), the ms added to its endpoints: ``'GET /api/employees/{id}=30'`` adds to
    every service, ``'2:GET /health=5'`` to the second only; repeats add up. ValueError naming the bad spec (not
    ``[N:]KEY=MS``, no service N, an endpoint the catalogue does not have, or MS not a number >= 0)."""
    known = {endpoint.key for endpoint in CATALOG}
    added: list[dict[str, float]] = [{} for _ in range(services)]
    for spec in specs:
        targets = range(services)
        text = spec
        prefixed = _LISTENER_PREFIX.fullmatch(spec)
        if prefixed is not None:
            number = int(prefixed.group(1))
            if not 1 <= number <= services:
                raise ValueError(f"--add-latency {spec!r}: there is no service {number} (1..{services})")
            targets, text = range(number - 1, number), prefixed.group(2)
        key, sep, value = text.rpartition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--add-latency {spec!r}: expected 'METHOD ROUTE=MS', e.g. 'GET /health=30'")
        if key not in known:
            raise ValueError(f"--add-latency {spec!r}: no endpoint {key!r} (known: {', '.join(sorted(known))})")
        try:
            ms = float(value)
        except ValueError:
            ms = math.nan
        if not (ms >= 0 and math.isfinite(ms)):
            raise ValueError(f"--add-latency {spec!r}: expected milliseconds >= 0, got {value!r}")
        for i in targets:
            added[i][key] = added[i].get(key, 0.0) + ms
    return added


def _apm_problem(args: argparse.Namespace, services: int) -> str | None:
    """What is wrong with the APM options (one line), or None."""
    envs: list[str] = args.apm_env
    if args.apm_url and (problem := apm_url_problem(args.apm_url)) is not None:
        return problem
    if len(envs) > services:
        return f"--apm-env given {len(envs)} times for {services} --profile"
    if envs and not args.apm_url:
        return "--apm-env needs --apm-url"
    if not (args.trace_rate >= 0 and math.isfinite(args.trace_rate)):
        return f"--trace-rate {args.trace_rate:g}: expected traces per second >= 0"
    return None


def _reporters(args: argparse.Namespace, env: str) -> tuple[SpanReporter | None, TraceReporter | None]:
    """The started span and trace reporters of one service (None without ``--apm-url`` / with ``--trace-rate 0``)."""
    if not args.apm_url:
        return None, None
    spans = SpanReporter(args.apm_url, env=env).start()
    if args.trace_rate <= 0:
        return spans, None
    return spans, TraceReporter(traces_url(args.apm_url), env=env, rate_per_s=args.trace_rate).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns the process exit code (0, or 2 on bad usage)."""
    args = _parser().parse_args(argv)
    host = str(args.host).strip("[]")
    if not is_loopback(host):
        print(f"error: refusing to bind {args.host!r}: only loopback hosts are allowed", file=sys.stderr)
        return 2
    profiles: list[str] = args.profile
    try:
        added = parse_added_latency(args.add_latency, len(profiles))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.port and args.port + len(profiles) - 1 > 65535:
        print(f"error: ports {args.port}..{args.port + len(profiles) - 1} are not all valid", file=sys.stderr)
        return 2
    envs: list[str] = args.apm_env
    problem = _apm_problem(args, len(profiles))
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    stop = gevent.event.Event()
    watchers = [gevent.signal_handler(signum, stop.set) for signum in (signal.SIGTERM, signal.SIGINT)]
    servers: list[WSGIServer] = []
    reporters: list[SpanReporter] = []  # trace reporters too
    try:
        for i, name in enumerate(profiles):
            port = args.port + i if args.port else 0
            spans, traces = _reporters(args, envs[i] if i < len(envs) else name)
            reporters += [r for r in (spans, traces) if r is not None]
            service = DemoService(
                PROFILES[name], seed=args.seed + i, added_latency_ms=added[i], spans=spans, traces=traces
            )
            server = WSGIServer(
                (host, port),
                service,
                spawn=gevent.pool.Pool(service.profile.web_concurrency),
                log=None,
                error_log="default",
            )
            _disable_nagle(server)
            try:
                server.start()
            except OSError as exc:
                print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            servers.append(server)
        for server in servers:
            bound_host, bound_port = server.address[:2]
            shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
            print(f"listening on http://{shown}:{bound_port}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop(timeout=STOP_TIMEOUT_S)
        for reporter in reporters:  # after the servers: the last requests' spans go out too
            reporter.close()
        for watcher in watchers:
            watcher.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Measurement model: what one side of a comparison knows about a service over a time window.

Every source (Datadog pull, access logs, Locust replay, Locust request CSV) produces a ``Measurement``;
the replay planner, the judge and the renderers only read it. Times are milliseconds, rates are requests
per second, timestamps are UTC. Missing data is ``None`` — never zero.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from parity.sketch import LatencySketch

__all__ = [
    "LABEL_AGGREGATE",
    "LABEL_REPLAY_OF",
    "LABEL_SCHEDULE",
    "LABEL_WITHOUT_BODY",
    "SATURATED_CPU_PERCENT",
    "SUMMARY_QUANTILES",
    "WRITE_METHODS",
    "Endpoint",
    "EndpointStats",
    "GeneratorHealth",
    "LatencyDistribution",
    "LatencyKind",
    "LatencySummary",
    "LoadStage",
    "Measurement",
    "QueryShape",
    "RequestTemplate",
    "Source",
    "SourceKind",
    "Timeline",
    "Window",
    "fingerprint",
]

#: Quantiles an APM summary can carry (Datadog's distribution aggregators p50…p99).
SUMMARY_QUANTILES = (0.50, 0.75, 0.90, 0.95, 0.99)
#: CPU of one load-generator process, % of one core, above which it counts as saturated: its own
#: queueing then inflates the latency it measures.
SATURATED_CPU_PERCENT = 90.0
#: Label of a Measurement whose traffic replays another one: the :func:`fingerprint` of that baseline. A replay
#: sets it; a server-side Measurement taken over a replay's window (APM, access log) copies it.
LABEL_REPLAY_OF = "replay_of"
#: Label identifying the open-model arrival schedule a replay sent (baseline fingerprint, seed, shape, run time,
#: rate scale, oversampling): two Measurements with the same value saw the same offered load.
LABEL_SCHEDULE = "schedule"
#: Label of a replay's Measurement listing the write endpoints it sent WITHOUT a request body (no body template;
#: the replay ran with ``--allow-empty-bodies``): a JSON array of endpoint keys. Their verdicts say little — a
#: server answers an empty POST with a fast 4xx — and the reports flag them.
LABEL_WITHOUT_BODY = "replayed_without_body"
#: HTTP methods whose requests carry a body the server needs (a replay refuses to send them without one).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Label of a Measurement whose one endpoint aggregates all requests (a k6 summary without per-endpoint
#: submetrics): its value says what it aggregates. The judge notes that such a comparison is not per endpoint.
LABEL_AGGREGATE = "aggregate"


class SourceKind(Enum):
    """Where a Measurement came from."""

    DATADOG = "datadog"
    ACCESS_LOG = "access-log"
    LOCUST_REPLAY = "locust-replay"
    LOCUST_CSV = "locust-csv"
    SYNTHETIC = "synthetic"
    K6 = "k6"  # k6 --out json (request level) or --summary-export / handleSummary JSON (summary level)
    JMETER = "jmeter"  # JMeter JTL results, CSV or XML

    @property
    def closed_loop(self) -> bool:
        """True for a closed-loop load (a locustfile's users wait for each response before the next request):
        its throughput follows its latency, so per-endpoint throughput says nothing about the target. k6 and
        JMeter files count as closed loop: their default executors / thread groups are, and their result files
        do not say when an open-model (arrival-rate) executor ran, so their throughput is never gated."""
        return self in (SourceKind.LOCUST_CSV, SourceKind.K6, SourceKind.JMETER)


class LatencyKind(Enum):
    """What a latency number measures."""

    SERVER = "server"  # server-side span duration (APM, access-log target time)
    SERVICE_TIME = "service-time"  # client: from the actual send to the last response byte
    INTENDED = "intended"  # client: from the planned send time (corrects coordinated omission)

    @property
    def client_side(self) -> bool:
        """True for latency measured by the client (includes the network, TLS and queueing in the client);
        False for server-side latency. Only latencies on the same side are comparable."""
        return self is not LatencyKind.SERVER


@dataclass(frozen=True, order=True)
class Endpoint:
    """Endpoint identity: HTTP method + route template, e.g. ``GET /api/employees/{id}``.

    An APM resource that no route map could resolve keeps its raw name as ``route`` and an empty method.
    """

    method: str
    route: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.route}" if self.method else self.route

    @property
    def mapped(self) -> bool:
        """True when the endpoint is a method + route (replayable), not a bare resource name."""
        return bool(self.method)

    @classmethod
    def parse(cls, key: str) -> Endpoint:
        """Inverse of :attr:`key`: ``"GET /x"`` → (GET, /x); a key without a method stays a bare name."""
        method, sep, route = key.partition(" ")
        if sep and method.isupper() and method.isalpha() and route:
            return cls(method, route)
        return cls("", key)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class LatencySummary:
    """Summary statistics in ms, as an APM backend reports them; any may be None (not reported).

    ``quantile_digits``: the source rounded its percentiles (p50…p99, not avg or max) to this many significant
    digits, and to whole ms below ``10**quantile_digits`` ms (Locust's stats: 2); None when they are as exact
    as the source's own accuracy. :meth:`quantile_bounds` gives the range a rounded figure stands for.
    """

    avg_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p75_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    quantile_digits: int | None = None

    def quantile_bounds(self, q: float) -> tuple[float, float] | None:
        """(lo, hi) in ms that the reported ``q`` quantile stands for after the source's rounding (half a
        rounding step either side; 0.5 ms below ``10**quantile_digits``); None when not rounded or not reported."""
        value = self.quantile(q)
        if value is None or self.quantile_digits is None or q == 1.0:
            return None
        exponent = math.floor(math.log10(value)) - self.quantile_digits + 1 if value > 0 else 0
        half = 0.5 * 10.0 ** max(0, exponent)
        return (max(0.0, value - half), value + half)

    def quantile(self, q: float) -> float | None:
        """The reported ``q`` quantile in ms (q in SUMMARY_QUANTILES, or 1.0 for max); else None."""
        reported = {
            0.50: self.p50_ms,
            0.75: self.p75_ms,
            0.90: self.p90_ms,
            0.95: self.p95_ms,
            0.99: self.p99_ms,
            1.0: self.max_ms,
        }
        return reported.get(q)

    @property
    def mean(self) -> float | None:
        return self.avg_ms

    @property
    def maximum(self) -> float | None:
        return self.max_ms


@dataclass(frozen=True)
class LatencyDistribution:
    """Latency in ms of individually seen requests, as a mergeable sketch (read-only once built)."""

    sketch: LatencySketch = field(compare=False, repr=False)

    @property
    def samples(self) -> int:
        return int(self.sketch.count)

    def quantile(self, q: float) -> float | None:
        """Any quantile in ms (±1% relative); None when the sketch is empty."""
        return self.sketch.quantile(q)

    @property
    def mean(self) -> float | None:
        return float(self.sketch.avg) if self.sketch.count else None

    @property
    def maximum(self) -> float | None:
        return self.sketch.max if self.sketch.count else None


Latency = LatencySummary | LatencyDistribution


def _same_length(name: str, column: tuple[Any, ...] | None, length: int) -> None:
    if column is not None and len(column) != length:
        raise ValueError(f"timeline.{name} has {len(column)} points, counts has {length}")


@dataclass(frozen=True)
class Timeline:
    """Per-interval figures: interval ``i`` covers ``[start_s + i*interval_s, start_s + (i+1)*interval_s)``.

    ``start_s`` is a Unix time in seconds. Columns other than ``counts`` are optional (None = not
    recorded); inside a column None marks an interval with no data, which is not the same as zero.
    """

    start_s: float
    interval_s: float
    counts: tuple[int | None, ...]
    errors: tuple[int | None, ...] | None = None
    avg_ms: tuple[float | None, ...] | None = None
    p95_ms: tuple[float | None, ...] | None = None
    max_ms: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and math.isfinite(self.interval_s)):
            raise ValueError(f"timeline.interval_s must be > 0, got {self.interval_s}")
        for name in ("errors", "avg_ms", "p95_ms", "max_ms"):
            _same_length(name, getattr(self, name), len(self.counts))

    @property
    def duration_s(self) -> float:
        return self.interval_s * len(self.counts)

    @property
    def total(self) -> int:
        """Requests over the intervals that have data."""
        return sum(c for c in self.counts if c is not None)


@dataclass(frozen=True)
class QueryShape:
    """One query-string shape of an endpoint, as seen in a log: its parameters in order, as ``(name, value
    template)`` pairs (a None template is a bare ``name`` without ``=``; ``()`` is a request without a query
    string), and its ``weight`` (requests seen with this shape; only the ratios between an endpoint's shapes
    matter). Names and templates are decoded text: the replay percent-encodes them."""

    params: tuple[tuple[str, str | None], ...] = ()
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"query shape weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class RequestTemplate:
    """How to send one endpoint's requests during a replay.

    ``path`` and ``query`` values may hold ``{name}`` placeholders, filled from ``params`` (a pool of
    values per name, drawn uniformly). ``body`` is JSON; string values inside it may hold placeholders.
    ``query_shapes`` (access-log baselines): the query strings seen, each request draws one by weight and fills
    its templates from ``params``; when it is not empty, ``query`` is not used.
    """

    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query_shapes: tuple[QueryShape, ...] = ()


@dataclass(frozen=True)
class EndpointStats:
    """What is known about one endpoint over the window.

    ``errors`` None means the source does not know the error count. ``latency`` None means no latency
    was observed (e.g. every request failed without a response); its kind is the Measurement's
    ``latency_kind``. ``intended`` is latency measured from each request's *planned* send time (an
    open-model replay records it: it includes the time a request waited to be sent, so a target that
    slows the sender down cannot hide it); None when not recorded. ``load_factor``: this endpoint's requests
    were sent at ``load_factor`` × the Measurement's ``rate_scale`` (a rare endpoint oversampled by a replay so
    that it can be judged; 1.0 otherwise): its throughput compares per unit of that load.
    """

    endpoint: Endpoint
    count: int
    errors: int | None = None
    latency: Latency | None = None
    intended: Latency | None = None
    timeline: Timeline | None = None
    request: RequestTemplate | None = None
    resource: str | None = None  # APM resource name the endpoint came from, when known
    load_factor: float = 1.0

    def __post_init__(self) -> None:
        if not (self.load_factor > 0 and math.isfinite(self.load_factor)):
            raise ValueError(f"load_factor must be > 0, got {self.load_factor}")
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.errors is not None and not 0 <= self.errors <= self.count:
            raise ValueError(f"errors must be between 0 and count ({self.count}), got {self.errors}")

    @property
    def error_rate(self) -> float | None:
        if self.errors is None or self.count == 0:
            return None
        return self.errors / self.count


@dataclass(frozen=True)
class Source:
    """Provenance of a Measurement."""

    kind: SourceKind
    description: str = ""
    service: str | None = None
    env: str | None = None
    target: str | None = None  # base URL a replay was sent to


@dataclass(frozen=True)
class Window:
    """The measured time span (UTC, end exclusive)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window start and end must carry a time zone")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class LoadStage:
    """A span of a shaped replay (one ramp step, a burst, ...) and what each endpoint did in it.

    ``start_s``/``end_s`` are Unix seconds (end exclusive); ``target_rps`` is the planned mean total rate in
    req/s. ``endpoints`` hold the counts, errors and latency of the requests *sent* during the span (no
    timelines); an endpoint that sent nothing in the span is absent.
    """

    name: str
    start_s: float
    end_s: float
    target_rps: float
    endpoints: tuple[EndpointStats, ...] = ()

    def __post_init__(self) -> None:
        if not self.end_s > self.start_s:
            raise ValueError(f"stage {self.name!r} ends at {self.end_s} s, not after its start {self.start_s} s")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def achieved_rps(self) -> float:
        """Requests sent per second during the stage, all endpoints."""
        return sum(e.count for e in self.endpoints) / self.duration_s


@dataclass(frozen=True)
class GeneratorHealth:
    """How the load generator itself fared during a replay, per interval of ``interval_s`` seconds from
    Unix time ``start_s``.

    ``cpu_percent[i]`` is the CPU of the busiest generator process over interval ``i`` in % of one core
    (None: not sampled). ``late[i]`` counts sends that started more than ``late_after_ms`` after their
    planned time (the generator or its concurrency limit could not keep up: it mixes the generator's own delay
    with waiting for a free sender behind a slow target). ``lag_ms[i]`` is the generator's own scheduling lag
    over interval ``i``: the longest a timer of the worst process woke after it was due (ms; None: not sampled;
    an empty tuple: not measured, as in files written before it existed). A process the OS does not give the
    CPU (a loaded machine) lags whatever its own CPU use; a slow target does not make it lag. Totals: ``processes`` that
    sent, requests ``sent`` (taken by a sender, which then starts the request: connects if needed and
    writes it; counted before the first byte, so a request whose connection fails is sent and errored),
    ``late_sends``, ``dropped`` (not sent: over the max-RPS cap), ``unsent`` (planned, but not started
    before the run ended: the generator or the target could not keep up) and ``in_flight`` (sent, but
    neither answered nor failed when the run ended; 0 in files written before it existed).

    Every request sent is accounted for, per target and over all lanes: ``sent`` equals the requests
    recorded in the Measurement (with a latency, or errors without one: timeouts, refused connections,
    bodies over the size cap) plus ``in_flight``.
    """

    start_s: float
    interval_s: float
    cpu_percent: tuple[float | None, ...]
    late: tuple[int, ...]
    processes: int = 1
    sent: int = 0
    late_sends: int = 0
    dropped: int = 0
    unsent: int = 0
    in_flight: int = 0
    late_after_ms: float = 100.0
    saturation_percent: float = SATURATED_CPU_PERCENT
    lag_ms: tuple[float | None, ...] = ()

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and math.isfinite(self.interval_s)):
            raise ValueError(f"generator.interval_s must be > 0, got {self.interval_s}")
        _same_length("late", self.late, len(self.cpu_percent))
        if self.lag_ms:
            _same_length("lag_ms", self.lag_ms, len(self.cpu_percent))

    @property
    def saturated(self) -> tuple[bool, ...]:
        """Per interval: was the busiest process above ``saturation_percent``? (False when not sampled.)"""
        return tuple(c is not None and c > self.saturation_percent for c in self.cpu_percent)

    def saturated_share(self, start_s: float | None = None, end_s: float | None = None) -> float | None:
        """Share of the sampled intervals overlapping ``[start_s, end_s)`` (Unix s; default: all) that were
        saturated; None when no interval there was sampled."""
        return self._share_over(self.cpu_percent, self.saturation_percent, start_s, end_s)

    def lagged_share(self, over_ms: float, start_s: float | None = None, end_s: float | None = None) -> float | None:
        """Share of the lag-sampled intervals overlapping ``[start_s, end_s)`` (Unix s; default: all) in which the
        generator lagged more than ``over_ms`` ms behind its schedule; None when no interval there was sampled
        (lag not measured: older files, sources without a generator of ours)."""
        return self._share_over(self.lag_ms, over_ms, start_s, end_s)

    def _share_over(
        self, samples: tuple[float | None, ...], limit: float, start_s: float | None, end_s: float | None
    ) -> float | None:
        """Share of the sampled intervals (``samples[i]`` not None) overlapping ``[start_s, end_s)`` whose sample is
        above ``limit``; None when none there was sampled."""
        lo = -math.inf if start_s is None else start_s
        hi = math.inf if end_s is None else end_s
        sampled = over = 0
        for i, value in enumerate(samples):
            t0 = self.start_s + i * self.interval_s
            if value is None or t0 + self.interval_s <= lo or t0 >= hi:
                continue
            sampled += 1
            over += value > limit
        return over / sampled if sampled else None

    @property
    def peak_lag_ms(self) -> float | None:
        """The longest scheduling lag seen in any interval (ms); None when not measured."""
        sampled = [x for x in self.lag_ms if x is not None]
        return max(sampled) if sampled else None

    @property
    def peak_cpu_percent(self) -> float | None:
        sampled = [c for c in self.cpu_percent if c is not None]
        return max(sampled) if sampled else None


@dataclass(frozen=True)
class Measurement:
    """One side of a comparison.

    ``rate_scale`` is the load relative to the traffic it reproduces (1.0 for observed production traffic;
    a replay at half the baseline's rate has 0.5), so throughputs compare as ``rps / rate_scale``.
    Two Measurements recorded at the same time against two targets share a ``pair_id`` (concurrent A/B).
    A shaped replay keeps per-stage results (``stages``, in time order) and its generator's health
    (``generator``; None for sources that had no generator of ours).
    """

    source: Source
    window: Window
    endpoints: tuple[EndpointStats, ...]
    latency_kind: LatencyKind = LatencyKind.SERVER
    rate_scale: float = 1.0
    pair_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    stages: tuple[LoadStage, ...] = ()
    generator: GeneratorHealth | None = None

    def __post_init__(self) -> None:
        if not (self.rate_scale > 0 and math.isfinite(self.rate_scale)):
            raise ValueError(f"rate_scale must be > 0, got {self.rate_scale}")
        seen: set[str] = set()
        for stats in self.endpoints:
            if stats.endpoint.key in seen:
                raise ValueError(f"endpoint {stats.endpoint.key!r} appears twice")
            seen.add(stats.endpoint.key)

    @property
    def total_count(self) -> int:
        return sum(e.count for e in self.endpoints)

    def by_key(self) -> dict[str, EndpointStats]:
        return {e.endpoint.key: e for e in self.endpoints}


def fingerprint(m: Measurement) -> str:
    """A short, stable identity of a Measurement's traffic: source kind, window and per-endpoint counts and
    errors (16 hex digits of SHA-256). It survives a JSON round trip; a replay labels its Measurement with
    its baseline's fingerprint (``LABEL_REPLAY_OF``) so the judge knows which traffic it reproduced."""
    parts = [m.source.kind.value, m.window.start.isoformat(), m.window.end.isoformat(), repr(m.rate_scale)]
    parts += [f"{e.endpoint.key}\t{e.count}\t{e.errors}" for e in sorted(m.endpoints, key=lambda e: e.endpoint.key)]
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]

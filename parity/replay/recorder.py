"""Run recorder: per-request results → per-endpoint sketches, timelines and stages → a Measurement.

Pure (no Locust import): the locustfile feeds it from ``events.request``. On Locust workers the recorder
hands out what it collected since the last hand-out (:meth:`Recorder.take_delta`, a JSON-safe dict sent
with the worker's report) and the master folds those in with :meth:`Recorder.merge_delta`; sketches merge
exactly, so the master's totals equal the sum over workers — nothing is counted twice.

Errors: a request is an error when Locust reports an exception for it (the replay marks no-response and
5xx as failures, 4xx as successes, like APM). Latency is recorded only for requests that got a response;
a request without one counts as an error with no latency. Timeline buckets are aligned on absolute
Unix time (``floor(send_time / interval_s)`` on whole microseconds: :func:`bucket_numbers`), so buckets from
different workers line up. A request belongs to the stage (:meth:`Recorder.set_stages`) its send time falls
in; sends after the last stage count in the last one.

Speed: :meth:`Recorder.record` only appends to a buffer (about a microsecond); the buffer is folded into
the sketches in vectorised batches whenever something reads the recorder, the buffer reaches
``FLUSH_EVERY`` requests or a request sent in a new timeline bucket arrives, so recording costs the load
generator little CPU. A flush runs on the generator's event loop and delays every response that arrives
meanwhile, so it is kept short: one bucket's worth of requests (about 1 ms) rather than many buckets at once
(4096 requests spread over 8 buckets took 20 ms before the flush was bounded by bucket and the sketch's
batch insert resized its store once per batch).

Generator health: :meth:`Recorder.record_cpu`, :meth:`Recorder.record_lag` and :meth:`Recorder.count_sends`
keep, per timeline bucket, the busiest process's CPU (% of one core), the worst process's scheduling lag (ms)
and the count of late sends, plus run totals of sent,
late, dropped (over a rate cap), unsent (could not start before the run ended) and in-flight (sent, but
neither answered nor failed when the run ended) requests; they travel in the deltas and merge as max and
sums — so a worker's counts reach the master even when the run is cut short. The replay keeps
``sent == recorded requests + in_flight`` exact per target (see ``GeneratorHealth``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from parity.model import (
    Endpoint,
    EndpointStats,
    GeneratorHealth,
    LatencyDistribution,
    LatencyKind,
    LoadStage,
    Measurement,
    Source,
    Timeline,
    Window,
)
from parity.sketch import LatencySketch

__all__ = [
    "FLUSH_EVERY",
    "NICE_INTERVALS_S",
    "GeneratorTotals",
    "RecentWindow",
    "Recorder",
    "StageSpan",
    "bucket_numbers",
    "choose_interval",
    "timeline_interval",
]

#: Timeline interval candidates, seconds; the recorder picks the smallest giving at most MAX_POINTS.
NICE_INTERVALS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_POINTS = 240
#: Buffered requests that trigger a flush into the sketches.
FLUSH_EVERY = 4096


def choose_interval(span_s: float, intervals: Sequence[float], max_points: int) -> float:
    """The smallest of ``intervals`` (ascending, s) giving a ``span_s`` timeline at most ``max_points`` points;
    the largest when none does."""
    for interval in intervals:
        if span_s / interval <= max_points:
            return float(interval)
    return float(intervals[-1])


def timeline_interval(run_time_s: float) -> float:
    """Smallest nice interval that keeps a run's timeline at or under ``MAX_POINTS`` points."""
    return choose_interval(run_time_s, NICE_INTERVALS_S, MAX_POINTS)


def bucket_numbers(sent_s: npt.NDArray[np.float64], interval_s: float) -> npt.NDArray[np.int64]:
    """Timeline bucket of each Unix send time (s): ``floor(t / interval)`` computed on whole microseconds, so
    that buckets of an interval are exactly unions of buckets of any interval dividing it (a file read in
    fine buckets and merged later lands where a recorder with the final interval puts it)."""
    micros = np.asarray(sent_s, dtype=np.float64) * 1e6
    np.round(micros, out=micros)
    buckets = micros.astype(np.int64)
    buckets //= round(interval_s * 1e6)
    return buckets


def _groups(ids: npt.NDArray[np.int64]) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """(id, positions of that id in ``ids``) for each distinct id, in ascending order."""
    order = np.argsort(ids, kind="stable")
    uniques, starts = np.unique(ids[order], return_index=True)
    ends = [*starts[1:].tolist(), len(order)]
    for group, lo, hi in zip(uniques.tolist(), starts.tolist(), ends, strict=True):
        yield group, order[lo:hi]


@dataclass(frozen=True)
class StageSpan:
    """A stage to record separately: Unix seconds ``[start_s, end_s)``, planned total req/s."""

    name: str
    start_s: float
    end_s: float
    target_rps: float


@dataclass(frozen=True)
class GeneratorTotals:
    """What :meth:`Recorder.to_measurement` needs besides the recorded counts to describe the load
    generator (see ``GeneratorHealth``): how many processes sent, and the lateness threshold in ms."""

    processes: int
    late_after_ms: float


class RecentWindow(NamedTuple):
    """Sends, recorded requests, their errors and their p95 (ms; None without latencies) over a span of the
    timeline (see :meth:`Recorder.window`)."""

    sent: int
    requests: int
    errors: int
    p95_ms: float | None


#: Send counters kept per recorder (see :meth:`Recorder.count_sends`).
SEND_COUNTERS = ("sent", "late", "dropped", "unsent", "in_flight")


@dataclass
class _Cell:
    """Counts and latency of one endpoint (over the run, in one timeline bucket or in one stage)."""

    count: int = 0
    errors: int = 0
    sketch: LatencySketch = field(default_factory=LatencySketch)
    intended: LatencySketch = field(default_factory=LatencySketch)

    def add_batch(
        self, latency_ms: npt.NDArray[np.float64], errors: npt.NDArray[np.bool_], intended_ms: npt.NDArray[np.float64]
    ) -> None:
        """Requests with their latencies (NaN = none) and error flags."""
        self.count += len(latency_ms)
        self.errors += int(errors.sum())
        self.sketch.add_many(latency_ms[~np.isnan(latency_ms)])
        self.intended.add_many(intended_ms[~np.isnan(intended_ms)])

    def merge(self, other: _Cell) -> None:
        self.count += other.count
        self.errors += other.errors
        self.sketch.merge(other.sketch)
        self.intended.merge(other.intended)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "sketch": self.sketch.to_dict(),
            "intended": self.intended.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Cell:
        return cls(
            int(d["count"]),
            int(d["errors"]),
            LatencySketch.from_dict(d["sketch"]),
            LatencySketch.from_dict(d["intended"]),
        )

    def stats(self, endpoint: Endpoint, timeline: Timeline | None = None, load_factor: float = 1.0) -> EndpointStats:
        return EndpointStats(
            endpoint=endpoint,
            count=self.count,
            errors=self.errors,
            latency=LatencyDistribution(self.sketch) if self.sketch.count else None,
            intended=LatencyDistribution(self.intended) if self.intended.count else None,
            timeline=timeline,
            load_factor=load_factor,
        )


@dataclass
class _EndpointRecord:
    total: _Cell = field(default_factory=_Cell)
    buckets: dict[int, _Cell] = field(default_factory=lambda: defaultdict(_Cell))
    stages: dict[int, _Cell] = field(default_factory=lambda: defaultdict(_Cell))

    def merge_dict(self, item: dict[str, Any]) -> None:
        self.total.merge(_Cell.from_dict(item["total"]))
        for b, cell in item["buckets"].items():
            self.buckets[int(b)].merge(_Cell.from_dict(cell))
        for s, cell in item.get("stages", {}).items():
            self.stages[int(s)].merge(_Cell.from_dict(cell))


@dataclass
class _Store:
    """Everything recorded (or, for deltas, recorded since the last hand-out)."""

    endpoints: dict[tuple[str, str], _EndpointRecord] = field(default_factory=lambda: defaultdict(_EndpointRecord))
    everything: dict[int, _Cell] = field(default_factory=lambda: defaultdict(_Cell))  # bucket → all endpoints
    cpu: dict[int, float] = field(default_factory=dict)  # bucket → busiest process's CPU %
    lag: dict[int, float] = field(default_factory=dict)  # bucket → worst process's scheduling lag, ms
    late: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # bucket → late sends
    sent: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # bucket → sends (live progress)
    sends: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEND_COUNTERS, 0))

    def add_cpu(self, bucket: int, percent: float) -> None:
        self.cpu[bucket] = max(self.cpu.get(bucket, 0.0), percent)

    def add_lag(self, bucket: int, lag_ms: float) -> None:
        self.lag[bucket] = max(self.lag.get(bucket, 0.0), lag_ms)

    def clear(self) -> None:
        self.endpoints.clear()
        self.everything.clear()
        self.cpu.clear()
        self.lag.clear()
        self.late.clear()
        self.sent.clear()
        self.sends = dict.fromkeys(SEND_COUNTERS, 0)


class Recorder:
    """Collects request results (ms) per endpoint; see module docstring."""

    def __init__(self, interval_s: float = 1.0, *, track_delta: bool = False) -> None:
        """``track_delta``: also keep what was recorded since the last :meth:`take_delta` (Locust workers);
        off, the recorder keeps one copy only and hands out empty deltas."""
        self.interval_s = interval_s
        self._all = _Store()
        self._pending = _Store()
        self._stores = (self._all, self._pending) if track_delta else (self._all,)
        self._stages: tuple[StageSpan, ...] = ()
        self._stage_starts: list[float] = []
        self._names: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str]] = []
        self._buf_endpoint: list[int] = []
        self._buf_sent: list[float] = []
        self._buf_latency: list[float] = []
        self._buf_error: list[bool] = []
        self._buf_intended: list[float] = []
        self._flush_at = -math.inf  # Unix s: a request sent from then on flushes the buffer (a new bucket)

    def set_stages(self, stages: Sequence[StageSpan]) -> None:
        """Record requests per stage from now on (stages in time order)."""
        self._flush()
        self._stages = tuple(stages)
        self._stage_starts = [s.start_s for s in self._stages]

    def record(
        self,
        method: str,
        name: str,
        sent_at_s: float,
        latency_ms: float | None,
        error: bool,
        intended_ms: float | None = None,
    ) -> None:
        """One finished request: Unix send time in s, latency in ms (None = no response), and the latency
        from its planned send time in ms when an open-model replay knows it."""
        index = self._index((method, name))
        self._buf_endpoint.append(index)
        self._buf_sent.append(sent_at_s)
        self._buf_latency.append(math.nan if latency_ms is None else latency_ms)
        self._buf_error.append(error)
        self._buf_intended.append(math.nan if intended_ms is None else intended_ms)
        if sent_at_s >= self._flush_at or len(self._buf_sent) >= FLUSH_EVERY:
            self._flush()
            self._flush_at = (math.floor(sent_at_s / self.interval_s) + 1) * self.interval_s

    def _index(self, key: tuple[str, str]) -> int:
        """The number of endpoint ``key`` (method, name), given on first sight."""
        index = self._names.get(key)
        if index is None:
            index = self._names[key] = len(self._keys)
            self._keys.append(key)
        return index

    def record_cpu(self, at_s: float, percent: float) -> None:
        """This process's CPU (% of one core) over the timeline interval holding Unix time ``at_s``."""
        bucket = math.floor(at_s / self.interval_s)
        for store in self._stores:
            store.add_cpu(bucket, percent)

    def record_lag(self, at_s: float, lag_ms: float) -> None:
        """This process's scheduling lag (ms: how late a timer due at Unix time ``at_s`` woke) in the timeline
        interval holding ``at_s``; the interval keeps the longest."""
        bucket = math.floor(at_s / self.interval_s)
        for store in self._stores:
            store.add_lag(bucket, lag_ms)

    def count_sends(
        self, at_s: float, *, sent: int = 0, late: int = 0, dropped: int = 0, unsent: int = 0, in_flight: int = 0
    ) -> None:
        """The load generator's sends at Unix time ``at_s``: requests sent, of which ``late`` started late;
        ``dropped`` (not sent: over a rate cap), ``unsent`` (not started before the run ended) and
        ``in_flight`` (sent, still unanswered when the run ended: never recorded)."""
        bucket = math.floor(at_s / self.interval_s)
        for store in self._stores:
            counts = store.sends
            counts["sent"] += sent
            counts["late"] += late
            counts["dropped"] += dropped
            counts["unsent"] += unsent
            counts["in_flight"] += in_flight
            if late:
                store.late[bucket] += late
            if sent:
                store.sent[bucket] += sent

    @property
    def sends(self) -> dict[str, int]:
        """Run totals of the send counters (see :meth:`count_sends`)."""
        return dict(self._all.sends)

    def _flush(self) -> None:
        """Fold the buffered requests into the sketches, grouped by endpoint × bucket and endpoint × stage."""
        if not self._buf_sent:
            return
        endpoint = np.asarray(self._buf_endpoint, dtype=np.int64)
        sent = np.asarray(self._buf_sent, dtype=np.float64)
        latency = np.asarray(self._buf_latency, dtype=np.float64)
        error = np.asarray(self._buf_error, dtype=np.bool_)
        intended = np.asarray(self._buf_intended, dtype=np.float64)
        for buf in (self._buf_endpoint, self._buf_sent, self._buf_latency, self._buf_error, self._buf_intended):
            buf.clear()
        self._fold(endpoint, sent, latency, error, intended)

    def _fold(
        self,
        endpoint: npt.NDArray[np.int64],
        sent: npt.NDArray[np.float64],
        latency: npt.NDArray[np.float64],
        error: npt.NDArray[np.bool_],
        intended: npt.NDArray[np.float64],
    ) -> None:
        """Fold requests (endpoint numbers, Unix send s, ms with NaN = none, error flags, intended ms) into the
        sketches, grouped by endpoint × bucket and endpoint × stage."""
        if not len(sent):
            return
        buckets = bucket_numbers(sent, self.interval_s)
        for bucket, pick in _groups(buckets):
            for store in self._stores:
                store.everything[bucket].add_batch(latency[pick], error[pick], intended[pick])
        groupings: list[tuple[str, npt.NDArray[np.int64]]] = [("buckets", buckets)]
        if self._stages:
            stage = np.searchsorted(np.asarray(self._stage_starts), sent, side="right") - 1
            groupings.append(("stages", np.clip(stage, 0, len(self._stages) - 1).astype(np.int64)))
        for ep, rows in _groups(endpoint):
            lat, err, intd = latency[rows], error[rows], intended[rows]
            records = [store.endpoints[self._keys[ep]] for store in self._stores]
            for rec in records:
                rec.total.add_batch(lat, err, intd)
            for attr, ids in groupings:
                for group, pick in _groups(ids[rows]):
                    for rec in records:
                        getattr(rec, attr)[group].add_batch(lat[pick], err[pick], intd[pick])

    @property
    def count(self) -> int:
        self._flush()
        return sum(r.total.count for r in self._all.endpoints.values())

    def totals_since(self, since_s: float) -> tuple[int, int, float | None]:
        """Requests, errors and p99 (ms; None without latencies) over all endpoints, from the timeline
        buckets that start at or after Unix time ``since_s``."""
        self._flush()
        first = math.floor(since_s / self.interval_s)
        total = _Cell()
        for bucket, cell in self._all.everything.items():
            if bucket >= first:
                total.merge(cell)
        return total.count, total.errors, total.sketch.quantile(0.99)

    @property
    def errors(self) -> int:
        """Failed requests recorded so far, over all endpoints."""
        self._flush()
        return sum(r.total.errors for r in self._all.endpoints.values())

    def window(self, since_s: float, until_s: float) -> RecentWindow:
        """What was sent and recorded in the timeline buckets from the one holding Unix time ``since_s`` to the last
        one ending at or before ``until_s`` (the live progress's recent window): sends counted by when they started,
        requests and errors by their send time, p95 (ms, service time; None without latencies) of those requests.
        Requests still in flight are not in it yet."""
        self._flush()
        first = math.floor(since_s / self.interval_s)
        stop = math.floor(until_s / self.interval_s)  # buckets [first, stop)
        cell = _Cell()
        for bucket, found in self._all.everything.items():
            if first <= bucket < stop:
                cell.merge(found)
        sent = sum(n for b, n in self._all.sent.items() if first <= b < stop)
        return RecentWindow(sent, cell.count, cell.errors, cell.sketch.quantile(0.95))

    def take_delta(self) -> dict[str, Any]:
        """What was recorded since the last call, JSON-safe, for a Locust worker's report."""
        self._flush()
        pending = self._pending
        delta = {
            "interval_s": self.interval_s,
            "endpoints": [
                {
                    "method": method,
                    "name": name,
                    "total": rec.total.to_dict(),
                    "buckets": {str(b): cell.to_dict() for b, cell in rec.buckets.items()},
                    "stages": {str(s): cell.to_dict() for s, cell in rec.stages.items()},
                }
                for (method, name), rec in pending.endpoints.items()
            ],
            "everything": {str(b): cell.to_dict() for b, cell in pending.everything.items()},
            "sends": dict(pending.sends),
            "cpu": {str(b): pct for b, pct in pending.cpu.items()},
            "lag": {str(b): ms for b, ms in pending.lag.items()},
            "late": {str(b): n for b, n in pending.late.items()},
            "sent": {str(b): n for b, n in pending.sent.items()},
        }
        pending.clear()
        return delta

    def merge_delta(self, delta: dict[str, Any]) -> None:
        """Fold in a worker's delta (from :meth:`take_delta`)."""
        if float(delta["interval_s"]) != self.interval_s:
            raise ValueError(f"worker timeline interval {delta['interval_s']} s differs from {self.interval_s} s")
        for item in delta["endpoints"]:
            self._all.endpoints[(item["method"], item["name"])].merge_dict(item)
        for b, pct in delta.get("cpu", {}).items():
            self._all.add_cpu(int(b), float(pct))
        for b, ms in delta.get("lag", {}).items():
            self._all.add_lag(int(b), float(ms))
        for b, n in delta.get("late", {}).items():
            self._all.late[int(b)] += int(n)
        for b, n in delta.get("sent", {}).items():
            self._all.sent[int(b)] += int(n)
        for b, cell in delta.get("everything", {}).items():
            self._all.everything[int(b)].merge(_Cell.from_dict(cell))
        for name, n in delta.get("sends", {}).items():
            self._all.sends[name] = self._all.sends.get(name, 0) + int(n)

    def _timeline(self, rec: _EndpointRecord, first: int, last: int) -> Timeline:
        cells = [rec.buckets.get(b) for b in range(first, last + 1)]
        empty = _Cell()
        filled = [c or empty for c in cells]
        return Timeline(
            start_s=first * self.interval_s,
            interval_s=self.interval_s,
            counts=tuple(c.count for c in filled),
            errors=tuple(c.errors for c in filled),
            avg_ms=tuple(float(c.sketch.avg) if c.sketch.count else None for c in filled),
            p95_ms=tuple(c.sketch.quantile(0.95) for c in filled),
            max_ms=tuple(c.sketch.max if c.sketch.count else None for c in filled),
        )

    def _generator(self, totals: GeneratorTotals, first: int, last: int) -> GeneratorHealth:
        cpu, late, lag = self._all.cpu, self._all.late, self._all.lag
        return GeneratorHealth(
            start_s=first * self.interval_s,
            interval_s=self.interval_s,
            cpu_percent=tuple(cpu.get(b) for b in range(first, last + 1)),
            late=tuple(late.get(b, 0) for b in range(first, last + 1)),
            processes=totals.processes,
            sent=self._all.sends["sent"],
            late_sends=self._all.sends["late"],
            dropped=self._all.sends["dropped"],
            unsent=self._all.sends["unsent"],
            in_flight=self._all.sends["in_flight"],
            late_after_ms=totals.late_after_ms,
            lag_ms=tuple(lag.get(b) for b in range(first, last + 1)),
        )

    def to_measurement(
        self,
        *,
        source: Source,
        start: datetime,
        end: datetime,
        latency_kind: LatencyKind = LatencyKind.SERVICE_TIME,
        rate_scale: float = 1.0,
        pair_id: str | None = None,
        labels: dict[str, str] | None = None,
        generator: GeneratorTotals | None = None,
        load_factors: Mapping[str, float] | None = None,
    ) -> Measurement:
        """Everything recorded so far as a Measurement over ``[start, end)`` (UTC); with ``generator``, the
        load generator's health per interval too. ``load_factors`` (endpoint key → factor) marks oversampled
        endpoints, in the run's totals and in every stage; endpoints not in it have 1."""
        self._flush()
        records = self._all.endpoints
        start_b = math.floor(start.timestamp() / self.interval_s)
        end_b = math.ceil(end.timestamp() / self.interval_s) - 1
        seen = [b for rec in records.values() for b in rec.buckets]
        first, last = min([start_b, *seen]), max([end_b, *seen])
        ordered = sorted(records.items())
        factors = load_factors or {}

        def factor(endpoint: Endpoint) -> float:
            return factors.get(endpoint.key, 1.0)

        endpoints = tuple(
            rec.total.stats(Endpoint(m, name), self._timeline(rec, first, last), factor(Endpoint(m, name)))
            for (m, name), rec in ordered
        )
        stages = tuple(
            LoadStage(
                name=span.name,
                start_s=span.start_s,
                end_s=span.end_s,
                target_rps=span.target_rps,
                endpoints=tuple(
                    rec.stages[i].stats(Endpoint(m, name), load_factor=factor(Endpoint(m, name)))
                    for (m, name), rec in ordered
                    if i in rec.stages
                ),
            )
            for i, span in enumerate(self._stages)
        )
        return Measurement(
            source=source,
            window=Window(start.astimezone(UTC), end.astimezone(UTC)),
            endpoints=endpoints,
            latency_kind=latency_kind,
            rate_scale=rate_scale,
            pair_id=pair_id,
            labels=labels or {},
            stages=stages,
            generator=None if generator is None else self._generator(generator, first, last),
        )

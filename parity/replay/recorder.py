"""Run recorder: per-request results → per-endpoint sketches and timelines → a Measurement.

Pure (no Locust import): the locustfile feeds it from ``events.request``. On Locust workers the recorder
hands out what it collected since the last hand-out (:meth:`Recorder.take_delta`, a JSON-safe dict sent
with the worker's report) and the master folds those in with :meth:`Recorder.merge_delta`; sketches merge
exactly, so the master's totals equal the sum over workers — nothing is counted twice.

Errors: a request is an error when Locust reports an exception for it (the replay marks no-response and
5xx as failures, 4xx as successes, like APM). Latency is recorded only for requests that got a response;
a request without one counts as an error with no latency. Timeline buckets are aligned on absolute
Unix time (``floor(send_time / interval_s)``), so buckets from different workers line up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    Measurement,
    Source,
    Timeline,
    Window,
)
from parity.sketch import LatencySketch

__all__ = ["NICE_INTERVALS_S", "Recorder", "timeline_interval"]

#: Timeline interval candidates, seconds; the recorder picks the smallest giving at most MAX_POINTS.
NICE_INTERVALS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_POINTS = 240


def timeline_interval(run_time_s: float) -> float:
    """Smallest nice interval that keeps a run's timeline at or under ``MAX_POINTS`` points."""
    for interval in NICE_INTERVALS_S:
        if run_time_s / interval <= MAX_POINTS:
            return float(interval)
    return float(NICE_INTERVALS_S[-1])


@dataclass
class _Cell:
    """Counts and latency of one endpoint (over the run, or in one timeline bucket)."""

    count: int = 0
    errors: int = 0
    sketch: LatencySketch = field(default_factory=LatencySketch)
    intended: LatencySketch = field(default_factory=LatencySketch)

    def add(self, latency_ms: float | None, error: bool, intended_ms: float | None = None) -> None:
        self.count += 1
        self.errors += error
        if latency_ms is not None:
            self.sketch.add(latency_ms)
        if intended_ms is not None:
            self.intended.add(intended_ms)

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


@dataclass
class _EndpointRecord:
    total: _Cell = field(default_factory=_Cell)
    buckets: dict[int, _Cell] = field(default_factory=lambda: defaultdict(_Cell))


class Recorder:
    """Collects request results (ms) per endpoint; see module docstring."""

    def __init__(self, interval_s: float = 1.0, *, track_delta: bool = False) -> None:
        """``track_delta``: also keep what was recorded since the last :meth:`take_delta` (Locust workers);
        off, the recorder keeps one copy only and hands out empty deltas."""
        self.interval_s = interval_s
        self._records: dict[tuple[str, str], _EndpointRecord] = defaultdict(_EndpointRecord)
        self._pending: dict[tuple[str, str], _EndpointRecord] = defaultdict(_EndpointRecord)
        self._stores = (self._records, self._pending) if track_delta else (self._records,)

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
        bucket = math.floor(sent_at_s / self.interval_s)
        for store in self._stores:
            rec = store[(method, name)]
            rec.total.add(latency_ms, error, intended_ms)
            rec.buckets[bucket].add(latency_ms, error, intended_ms)

    @property
    def count(self) -> int:
        return sum(r.total.count for r in self._records.values())

    def totals_since(self, since_s: float) -> tuple[int, int, float | None]:
        """Requests, errors and p99 (ms; None without latencies) over all endpoints, from the timeline
        buckets that start at or after Unix time ``since_s``."""
        first = math.floor(since_s / self.interval_s)
        total = _Cell()
        for rec in self._records.values():
            for bucket, cell in rec.buckets.items():
                if bucket >= first:
                    total.merge(cell)
        return total.count, total.errors, total.sketch.quantile(0.99)

    def take_delta(self) -> dict[str, Any]:
        """What was recorded since the last call, JSON-safe, for a Locust worker's report."""
        delta = {
            "interval_s": self.interval_s,
            "endpoints": [
                {
                    "method": method,
                    "name": name,
                    "total": rec.total.to_dict(),
                    "buckets": {str(b): cell.to_dict() for b, cell in rec.buckets.items()},
                }
                for (method, name), rec in self._pending.items()
            ],
        }
        self._pending.clear()
        return delta

    def merge_delta(self, delta: dict[str, Any]) -> None:
        """Fold in a worker's delta (from :meth:`take_delta`)."""
        if float(delta["interval_s"]) != self.interval_s:
            raise ValueError(f"worker timeline interval {delta['interval_s']} s differs from {self.interval_s} s")
        for item in delta["endpoints"]:
            rec = self._records[(item["method"], item["name"])]
            rec.total.merge(_Cell.from_dict(item["total"]))
            for b, cell in item["buckets"].items():
                rec.buckets[int(b)].merge(_Cell.from_dict(cell))

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
    ) -> Measurement:
        """Everything recorded so far as a Measurement over ``[start, end)`` (UTC)."""
        start_b = math.floor(start.timestamp() / self.interval_s)
        end_b = math.ceil(end.timestamp() / self.interval_s) - 1
        seen = [b for rec in self._records.values() for b in rec.buckets]
        first, last = min([start_b, *seen]), max([end_b, *seen])
        endpoints = tuple(
            EndpointStats(
                endpoint=Endpoint(method, name),
                count=rec.total.count,
                errors=rec.total.errors,
                latency=LatencyDistribution(rec.total.sketch) if rec.total.sketch.count else None,
                intended=LatencyDistribution(rec.total.intended) if rec.total.intended.count else None,
                timeline=self._timeline(rec, first, last),
            )
            for (method, name), rec in sorted(self._records.items())
        )
        return Measurement(
            source=source,
            window=Window(start.astimezone(UTC), end.astimezone(UTC)),
            endpoints=endpoints,
            latency_kind=latency_kind,
            rate_scale=rate_scale,
            pair_id=pair_id,
            labels=labels or {},
        )

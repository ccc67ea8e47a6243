"""Mergeable latency sketches (DDSketch) and their JSON form.

Latency is recorded in milliseconds into a DDSketch (Datadog's relative-error quantile sketch): every
quantile it returns is within ``RELATIVE_ACCURACY`` of the true sample quantile, and two sketches built
with the same accuracy merge exactly (Locust workers, time intervals). Count, sum, min and max are exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

__all__ = ["RELATIVE_ACCURACY", "LatencySketch"]

#: Relative accuracy of every quantile the harness reports (1%).
RELATIVE_ACCURACY = 0.01


class LatencySketch(BaseDDSketch):
    """A DDSketch of latencies in milliseconds with an exact JSON round trip.

    Negative values are clamped to 0 ms (clock steps); values that small land in the zero bucket.
    """

    def __init__(self, relative_accuracy: float = RELATIVE_ACCURACY) -> None:
        super().__init__(
            mapping=LogarithmicMapping(relative_accuracy),
            store=DenseStore(),
            negative_store=DenseStore(),
            zero_count=0.0,
        )

    @property
    def relative_accuracy(self) -> float:
        return float(self._relative_accuracy)

    def add(self, val: float, weight: float = 1.0) -> None:
        super().add(max(float(val), 0.0), weight)

    def add_many(self, values_ms: npt.ArrayLike) -> None:
        """Add many latencies (ms) at once: the same sketch as adding them one by one, with the key mapping
        vectorised (a recorder flushing a batch of requests costs well under a microsecond per value)."""
        v = np.maximum(np.asarray(values_ms, dtype=np.float64).ravel(), 0.0)
        if v.size == 0:
            return
        mapping = self._mapping
        positive = v[v > mapping.min_possible]
        if positive.size:
            keys = (np.ceil(np.log(positive) / math.log(2) * mapping._multiplier) + mapping._offset).astype(np.int64)
            lo, hi = int(keys.min()), int(keys.max())
            counts = np.bincount(keys - lo)
            # One resize for the whole batch (adding key by key grows the store once per new key, which made
            # this the recorder's slowest step), then the counts added to the bins' slice at once.
            store = self._store
            store._extend_range(lo, hi)
            first = lo - store.offset
            store.bins[first : first + len(counts)] = (
                np.asarray(store.bins[first : first + len(counts)]) + counts
            ).tolist()
            store.count += float(positive.size)
        self._zero_count += float(v.size - positive.size)
        self._count += float(v.size)
        self._sum += float(v.sum())
        self._min = min(self._min, float(v.min()))
        self._max = max(self._max, float(v.max()))

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile in ms (0 ≤ q ≤ 1), or None for an empty sketch."""
        if self.count == 0:
            return None
        value = self.get_quantile_value(q)
        return None if value is None else min(max(float(value), self.min), self.max)

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles in ms at once, each equal to :meth:`quantile` (one cumulative sum of the bins
        instead of a scan of them per quantile: the report samples ~60 per endpoint and side)."""
        if self.count == 0:
            return [None] * len(qs)
        if self._negative_store.count:  # never for latencies (clamped at 0), but keep the exact answer
            return [self.quantile(q) for q in qs]
        ranks = np.asarray(qs, dtype=np.float64) * (self._count - 1) - self._zero_count
        cumulative = np.cumsum(np.asarray(self._store.bins, dtype=np.float64))
        index = np.searchsorted(cumulative, ranks, side="right")  # first bin whose running count exceeds it
        out: list[float | None] = []
        for q, rank, i in zip(qs, ranks, index, strict=True):
            if not 0.0 <= q <= 1.0:
                out.append(None)
                continue
            if rank < 0:
                value = 0.0
            else:
                key = int(i) + self._store.offset if i < cumulative.size else self._store.max_key
                value = float(self._mapping.value(key))
            out.append(min(max(value, self.min), self.max))
        return out

    @property
    def min(self) -> float:
        return float(self._min)

    @property
    def max(self) -> float:
        return float(self._max)

    def merged(self, other: LatencySketch) -> LatencySketch:
        """A new sketch holding both; neither input changes."""
        out = LatencySketch(self.relative_accuracy)
        out.merge(self)
        out.merge(other)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: dense positive bins from ``offset`` plus exact count/sum/min/max."""
        store = self._store
        if store.count:
            lo, hi = store.min_key - store.offset, store.max_key - store.offset
            bins = [_compact(c) for c in store.bins[lo : hi + 1]]
            offset = store.min_key
        else:
            bins, offset = [], 0
        empty = self.count == 0
        return {
            "relative_accuracy": self.relative_accuracy,
            "count": _compact(self.count),
            "sum": self.sum,
            "min": None if empty else self.min,
            "max": None if empty else self.max,
            "zero_count": _compact(self._zero_count),
            "offset": offset,
            "bins": bins,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySketch:
        """Inverse of :meth:`to_dict`; raises ValueError when the parts disagree."""
        sketch = cls(float(data["relative_accuracy"]))
        offset = int(data["offset"])
        for i, weight in enumerate(data["bins"]):
            if weight:
                sketch._store.add(offset + i, float(weight))
        zero = float(data["zero_count"])
        sketch._zero_count = zero
        total = sketch._store.count + zero
        if not math.isclose(total, float(data["count"]), rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"count {data['count']} differs from the sum of the bins {total:g}")
        sketch._count = total
        sketch._sum = float(data["sum"])
        if total:
            if data["min"] is None or data["max"] is None:
                raise ValueError("min and max are required when count > 0")
            sketch._min, sketch._max = float(data["min"]), float(data["max"])
        return sketch


def _compact(x: float) -> float | int:
    """Whole weights as ints so the JSON stays small and exact."""
    return int(x) if float(x).is_integer() else float(x)

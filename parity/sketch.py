"""Mergeable latency sketches (DDSketch) and their JSON form.

Latency is recorded in milliseconds into a DDSketch (Datadog's relative-error quantile sketch): every
quantile it returns is within ``RELATIVE_ACCURACY`` of the true sample quantile, and two sketches built
with the same accuracy merge exactly (Locust workers, time intervals). Count, sum, min and max are exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

from parity.bounds import MAX_COUNT, MAX_LATENCY_MS, check_number

__all__ = [
    "MAX_RELATIVE_ACCURACY",
    "MIN_BIN_MS",
    "MIN_RELATIVE_ACCURACY",
    "RELATIVE_ACCURACY",
    "LatencySketch",
    "check_sketch_dict",
]

#: Relative accuracy of every quantile the harness reports (1%).
RELATIVE_ACCURACY = 0.01
#: Relative accuracies a sketch read from a file may have (finer: too many bins; coarser: no use for judging).
MIN_RELATIVE_ACCURACY = 1e-4
MAX_RELATIVE_ACCURACY = 0.5
#: Smallest positive latency a sketch read from a file may hold in a bin, ms (1 fs; smaller is the zero bucket).
MIN_BIN_MS = 1e-12


class LatencySketch(BaseDDSketch):
    """A DDSketch of latencies in milliseconds with an exact JSON round trip.

    Negative values are clamped to 0 ms (clock steps); they and values below ``MIN_BIN_MS`` land in the zero
    bucket.
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
        value = float(val)
        super().add(value if value >= MIN_BIN_MS else 0.0, weight)

    def add_many(self, values_ms: npt.ArrayLike) -> None:
        """Add many latencies (ms) at once: the same sketch as adding them one by one, with the key mapping
        vectorised (a recorder flushing a batch of requests costs well under a microsecond per value)."""
        v = np.asarray(values_ms, dtype=np.float64).ravel()
        v = np.where(v >= MIN_BIN_MS, v, 0.0)  # negative (clock steps) and sub-femtosecond: the zero bucket
        if v.size == 0:
            return
        positive = v[v > self._mapping.min_possible]
        if positive.size:
            keys = self.keys_of(positive)
            lo = int(keys.min())
            self._add_bins(lo, np.bincount(keys - lo))
        self._zero_count += float(v.size - positive.size)
        self._count += float(v.size)
        self._sum += float(v.sum())
        self._min = min(self._min, float(v.min()))
        self._max = max(self._max, float(v.max()))

    def keys_of(self, positive_ms: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """The bin key of each latency (ms, each above the zero bucket), vectorised: every path that fills a
        sketch (:meth:`add_many`, ``parity.sources.aggregate``) maps values with this one function."""
        mapping = self._mapping
        key = np.log(positive_ms)  # then, in place and in this order: / log 2, × multiplier, ceil, + offset
        key /= math.log(2)
        key *= mapping._multiplier
        np.ceil(key, out=key)
        key += mapping._offset
        return key.astype(np.int64)

    def _add_bins(self, lo: int, counts: npt.NDArray[np.int64]) -> None:
        """Add ``counts[i]`` values to the bin of key ``lo + i``: one resize for the whole batch (adding key by key
        grows the store once per new key), then the counts added to the bins' slice at once."""
        store = self._store
        store._extend_range(lo, lo + len(counts) - 1)
        first = lo - store.offset
        store.bins[first : first + len(counts)] = (
            np.asarray(store.bins[first : first + len(counts)]) + counts
        ).tolist()
        store.count += float(counts.sum())

    @classmethod
    def from_bins(
        cls,
        keys: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        *,
        zero_count: int,
        total_ms: float,
        min_ms: float,
        max_ms: float,
    ) -> LatencySketch:
        """A sketch (default accuracy) holding ``counts[i]`` values in the bin of ``keys[i]`` (ascending, distinct)
        and ``zero_count`` in the zero bucket, whose values sum to ``total_ms`` and span ``[min_ms, max_ms]``: the
        same sketch as :meth:`add_many` of those values (a file folded column-wise builds its sketches so)."""
        sketch = cls()
        if len(keys):
            lo = int(keys[0])
            dense = np.zeros(int(keys[-1]) - lo + 1, dtype=np.int64)
            dense[keys - lo] = counts
            sketch._add_bins(lo, dense)
        total = int(counts.sum()) + zero_count
        if total:
            sketch._zero_count = float(zero_count)
            sketch._count = float(total)
            sketch._sum = float(total_ms)
            sketch._min, sketch._max = float(min_ms), float(max_ms)
        return sketch

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
        """Inverse of :meth:`to_dict`; raises ValueError naming the part that is out of range or disagrees with
        the others (see :func:`check_sketch_dict`)."""
        check_sketch_dict(data)
        sketch = cls(float(data["relative_accuracy"]))
        offset = int(data["offset"])
        for i, weight in enumerate(data["bins"]):
            if weight:
                sketch._store.add(offset + i, float(weight))
        zero = float(data["zero_count"])
        sketch._zero_count = zero
        total = sketch._store.count + zero
        if not math.isclose(total, float(data["count"]), rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"count: {data['count']} differs from the sum of the bins {total:g}")
        sketch._count = total
        sketch._sum = float(data["sum"])
        if total:
            sketch._min, sketch._max = float(data["min"]), float(data["max"])
        return sketch


def check_sketch_dict(data: Mapping[str, Any]) -> None:
    """Check the numbers of a sketch's JSON form before anything is built from them; ValueError naming the
    part otherwise.

    ``relative_accuracy`` in [MIN_RELATIVE_ACCURACY, MAX_RELATIVE_ACCURACY]; every weight, count and latency
    finite and non-negative; min ≤ max ≤ MAX_LATENCY_MS; the bins' keys (``offset`` …) within those of
    MIN_BIN_MS … MAX_LATENCY_MS (so no huge store is allocated and every bin's value is a finite number of
    ms); count × min ≤ sum ≤ count × max; min and max inside (within a bin of) the lowest and highest
    non-empty bins. A sketch with count 0 needs no min or max.
    """
    accuracy = check_number(
        data["relative_accuracy"], "relative_accuracy", lo=MIN_RELATIVE_ACCURACY, hi=MAX_RELATIVE_ACCURACY
    )
    count = check_number(data["count"], "count", lo=0.0, hi=MAX_COUNT)
    zero = check_number(data["zero_count"], "zero_count", lo=0.0, hi=MAX_COUNT)
    total = check_number(data["sum"], "sum", lo=0.0)
    bins = data["bins"]
    if not isinstance(bins, Sequence):
        raise ValueError("bins: expected a list of weights")
    weights = [check_number(w, f"bins[{i}]", lo=0.0, hi=MAX_COUNT) for i, w in enumerate(bins)]
    weighed = math.fsum(weights) + zero
    if not math.isclose(weighed, count, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(f"count: {_compact(count)} differs from the sum of the bins {weighed:g}")
    mapping = LogarithmicMapping(accuracy)
    lowest, highest = mapping.key(MIN_BIN_MS), mapping.key(MAX_LATENCY_MS)
    offset = data["offset"]
    if isinstance(offset, float) and offset.is_integer():
        offset = int(offset)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise ValueError(f"offset: expected an integer, got {offset!r}")
    used = [i for i, w in enumerate(weights) if w]
    if used and not lowest <= offset + used[0] <= offset + used[-1] <= highest:
        raise ValueError(
            f"offset: bins from key {offset + used[0]} to {offset + used[-1]} lie outside the keys {lowest} to "
            f"{highest} of {MIN_BIN_MS:g} to {MAX_LATENCY_MS:g} ms at relative accuracy {accuracy:g}"
        )
    if not count:
        return
    if data.get("min") is None or data.get("max") is None:
        raise ValueError("min: min and max are required when count > 0")
    lo = check_number(data["min"], "min", lo=0.0, hi=MAX_LATENCY_MS)
    hi = check_number(data["max"], "max", lo=0.0, hi=MAX_LATENCY_MS)
    if lo > hi:
        raise ValueError(f"min: {lo:g} ms is above max {hi:g} ms")
    slack = 1e-6 * total + 1e-9
    if not count * lo - slack <= total <= count * hi + slack:
        raise ValueError(
            f"sum: {total:g} ms does not lie between count × min and count × max ({count:g} × [{lo:g}, {hi:g}])"
        )
    # Every value lies in its bin (to a bin's width of rounding): min in the lowest, max in the highest.
    edge = mapping.gamma**2
    if used:
        first, last = mapping.value(offset + used[0]), mapping.value(offset + used[-1])
        if not (lo <= first * edge and (zero or lo >= first / edge)):
            raise ValueError(f"min: {lo:g} ms is not in the lowest bin (about {first:g} ms)")
        if not last / edge <= hi <= last * edge:
            raise ValueError(f"max: {hi:g} ms is not in the highest bin (about {last:g} ms)")
    elif zero and hi > MIN_BIN_MS:
        raise ValueError(f"max: {hi:g} ms, but every value is in the zero bucket")


def _compact(x: float) -> float | int:
    """Whole weights as ints so the JSON stays small and exact."""
    return int(x) if float(x).is_integer() else float(x)

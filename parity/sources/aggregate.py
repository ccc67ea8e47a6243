"""Requests from files → per-endpoint sketches and timelines, folded column-wise in chunks.

Every request-level reader (Locust request logs, access logs, k6, JMeter) parses its file into
:class:`RequestChunk` columns and folds them into one :class:`RequestAggregator`; only the live replay records
row by row (:class:`parity.replay.recorder.Recorder`). Both give the same Measurement for the same requests:
the same sketch bins, counts, errors, minima and maxima, and the same timelines (sums, so means, agree to
floating-point rounding: the additions run in another order).

How: each request gets one integer code, endpoint × sketch bin × timeline bucket (:data:`SLOT_BITS` for the
bin, the zero bucket and "no latency"; the bucket lowest, so that merging buckets keeps the codes sorted), and a
chunk becomes the distinct codes with their counts (one vectorised sort) plus, per endpoint × bucket cell, the
requests, errors, latency count, sum, min and max (``bincount`` and ``ufunc.at`` over a dense index of the
chunk's cells). Both tables merge exactly by binary search and stay sorted; memory is bounded by the endpoints ×
timeline buckets × bins that occur, not by the rows. The tables are kept in segments of ``SEGMENT_ROWS`` codes and
the bin counts in int32 (widened to int64 if one ever exceeds it), so a merge copies one segment at a time and a bin
costs 12 bytes: a 5M-row request log holds about 2.4M bins, 29 MB, without a transient copy of them. At the end
each endpoint's bins are gathered, put in cell order (a sort of that endpoint's bins only) for its per-interval
p95.

The timeline interval of a file is chosen at the end from the span of its requests (``intervals``,
``max_points``: the smallest interval giving at most ``max_points`` points). Until then requests are kept in
buckets of a *base* interval that divides every interval the span could still lead to (the greatest common
divisor of the candidates from the current choice on, so at most about ``2 × max_points`` base buckets); when
the span grows, buckets are merged into a coarser base. All buckets are aligned on Unix time, counted in whole
microseconds (``floor(µs / interval µs)``), like the Recorder's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from typing import Any

import numpy as np
import numpy.typing as npt

from parity.bounds import MAX_LATENCY_MS
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
from parity.replay.recorder import MAX_POINTS, NICE_INTERVALS_S, bucket_numbers, choose_interval
from parity.sketch import MIN_BIN_MS, LatencySketch

__all__ = ["RequestAggregator", "RequestChunk"]

_SKETCH = LatencySketch()
#: Lowest and highest bin keys a latency can have (MIN_BIN_MS … MAX_LATENCY_MS, with a key of margin).
KEY_LO = int(_SKETCH.keys_of(np.array([MIN_BIN_MS]))[0]) - 1
KEY_HI = int(_SKETCH.keys_of(np.array([MAX_LATENCY_MS]))[0]) + 1
#: Code layout (low to high bits): slot, timeline bucket (biased), endpoint.
SLOT_BITS = 12
BUCKET_BITS = 24
ENDPOINT_BITS = 20
ZERO_SLOT = 0  # latencies below MIN_BIN_MS (and negative ones, clock steps)
NONE_SLOT = KEY_HI - KEY_LO + 2  # requests without a latency
BUCKET_BIAS = 1 << (BUCKET_BITS - 1)
MAX_ENDPOINTS = 1 << ENDPOINT_BITS
assert NONE_SLOT < 1 << SLOT_BITS
_BUCKET_MASK = (1 << BUCKET_BITS) - 1
_SLOT_MASK = (1 << SLOT_BITS) - 1
#: A chunk whose endpoints × buckets exceed this is grouped by sorting instead of a dense index.
DENSE_CELLS = 1 << 22
#: Codes per segment of a table (it holds 1 to 2 times this, 12 bytes each for the bins): merging a chunk in copies
#: a segment at a time, so the tables' transient memory is a few MB, not a copy of the table.
SEGMENT_ROWS = 1 << 17
_MICRO = 1_000_000


@dataclass(frozen=True)
class RequestChunk:
    """Requests read column-wise: request ``i`` is endpoint ``keys[endpoint[i]]`` = (method, name) (method may
    be ""), sent at Unix ``sent_s[i]`` s, latency ``latency_ms[i]`` ms (NaN: no response; the request counts,
    without a latency), error flag ``errors[i]``."""

    keys: tuple[tuple[str, str], ...]
    endpoint: npt.NDArray[np.int64]
    sent_s: npt.NDArray[np.float64]
    latency_ms: npt.NDArray[np.float64]
    errors: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.sent_s)
        if not len(self.endpoint) == len(self.latency_ms) == len(self.errors) == n:
            raise ValueError("RequestChunk columns differ in length")

    def __len__(self) -> int:
        return len(self.sent_s)


def _reduce_sorted(
    codes: npt.NDArray[np.int64], *columns: tuple[npt.NDArray[Any], np.ufunc]
) -> tuple[npt.NDArray[Any], ...]:
    """Collapse runs of equal ``codes`` (ascending): each column reduced over its run with its ufunc
    (``np.add``, ``np.minimum``, ``np.maximum``; integer sums in int64, so int32 counts cannot wrap). Returns
    (distinct codes, reduced columns...)."""
    if len(codes) < 2:
        return (codes, *(c for c, _ in columns))
    starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    if len(starts) == len(codes):
        return (codes, *(c for c, _ in columns))
    return (codes[starts], *(op.reduceat(c, starts, dtype=_wide(c.dtype)) for c, op in columns))


def _wide(dtype: np.dtype[Any]) -> type[np.generic] | None:
    """The dtype integer arithmetic on a column of ``dtype`` runs in (int64), None for other columns."""
    return np.int64 if dtype.kind in "iu" else None


def _fitted(values: npt.NDArray[Any], dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` when every one of ``values`` fits in it, else int64 (a narrow count column widens, exactly)."""
    if dtype.kind not in "iu" or dtype.itemsize >= 8 or not len(values):
        return dtype
    info = np.iinfo(dtype)
    if info.min <= int(values.min()) and int(values.max()) <= info.max:
        return dtype
    return np.dtype(np.int64)


def _recoded_cells(
    codes: npt.NDArray[np.int64], factor: int, shift: int = 0, numbers: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """Cell codes (endpoint, bucket) with each bucket moved by ``shift`` and merged ``factor`` to one, and
    endpoints renumbered through ``numbers``; ascending still unless endpoints were renumbered."""
    bucket = _moved(codes & _BUCKET_MASK, factor, shift)
    endpoint = codes >> BUCKET_BITS
    if numbers is not None:
        endpoint = numbers[endpoint]
    out: npt.NDArray[np.int64] = (endpoint << BUCKET_BITS) | bucket
    return out


def _recoded_bins(
    codes: npt.NDArray[np.int64], factor: int, shift: int = 0, numbers: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """Bin codes (endpoint, slot, bucket) likewise: the bucket is the lowest field, so merging buckets keeps the
    codes ascending (equal neighbours then combine) unless endpoints were renumbered."""
    bucket = _moved(codes & _BUCKET_MASK, factor, shift)
    high = codes >> BUCKET_BITS
    if numbers is not None:
        high = (numbers[high >> SLOT_BITS] << SLOT_BITS) | (high & _SLOT_MASK)
    out: npt.NDArray[np.int64] = (high << BUCKET_BITS) | bucket
    return out


def _moved(field: npt.NDArray[np.int64], factor: int, shift: int) -> npt.NDArray[np.int64]:
    """Biased bucket fields moved by ``shift`` buckets and merged ``factor`` to one (still biased)."""
    bucket = np.floor_divide(field - BUCKET_BIAS + shift, factor) + BUCKET_BIAS
    if len(bucket) and (int(bucket.min()) < 0 or int(bucket.max()) >= 1 << BUCKET_BITS):
        raise ValueError("requests span too many timeline buckets")
    return bucket


class _Table:
    """A sorted table of distinct int64 codes with columns combined by ufuncs (``np.add``, ``np.minimum``,
    ``np.maximum``). A chunk's codes are merged in with a binary search: codes already there combine in place,
    new ones are inserted, so merging costs one copy of the table at most, and no sort. An integer column may be
    narrower than int64 (int32 counts: 4 bytes less per bin); a value that does not fit widens that column to
    int64, so counts stay exact."""

    def __init__(self, ops: Sequence[np.ufunc], dtypes: Sequence[npt.DTypeLike]) -> None:
        self.ops = tuple(ops)
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        self.codes: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.columns: list[npt.NDArray[Any]] = [np.empty(0, dtype=d) for d in self.dtypes]

    def add(self, codes: npt.NDArray[np.int64], columns: Sequence[npt.NDArray[Any]]) -> None:
        """Merge distinct ascending ``codes`` with their columns into the table."""
        if not len(codes):
            return
        if not len(self.codes):
            self.codes = codes
            self.columns = [np.asarray(c, dtype=_fitted(c, d)) for c, d in zip(columns, self.dtypes, strict=True)]
            return
        at = np.searchsorted(self.codes, codes)
        found = self.codes[np.minimum(at, len(self.codes) - 1)] == codes
        there = at[found]
        for i, (value, op) in enumerate(zip(columns, self.ops, strict=True)):
            combined = op(self.columns[i][there], value[found], dtype=_wide(self.columns[i].dtype))
            wide = _fitted(combined, self.columns[i].dtype)
            if wide != self.columns[i].dtype:
                self.columns[i] = self.columns[i].astype(wide)
            self.columns[i][there] = combined
        if found.all():
            return
        new = ~found
        size = len(self.codes) + int(new.sum())
        placed = at[new] + np.arange(int(new.sum()))  # where the new codes land in the merged table
        old = np.ones(size, dtype=np.bool_)
        old[placed] = False
        merged = []
        for column, value in zip([self.codes, *self.columns], [codes, *columns], strict=True):
            inserted = value[new]
            out = np.empty(size, dtype=_fitted(inserted, column.dtype))
            out[placed] = inserted
            out[old] = column
            merged.append(out)
        self.codes, self.columns = merged[0], merged[1:]

    def recode(self, codes: npt.NDArray[np.int64]) -> None:
        """Replace the codes by ``codes`` (same length; maybe no longer distinct or ascending: coarser buckets
        interleave their bins)."""
        columns = self.columns
        if len(codes) > 1 and (codes[1:] < codes[:-1]).any():
            order = np.argsort(codes)  # any order within equal codes: their columns combine exactly (counts)
            codes, columns = codes[order], [c[order] for c in columns]
        merged = _reduce_sorted(codes, *zip(columns, self.ops, strict=True))
        self.codes = merged[0]
        self.columns = [c.astype(_fitted(c, d), copy=False) for c, d in zip(merged[1:], self.dtypes, strict=True)]

    def __len__(self) -> int:
        return len(self.codes)


class _Segments:
    """A :class:`_Table` kept as consecutive segments of about ``rows`` to ``2 × rows`` codes, cut only where
    ``code >> BUCKET_BITS`` changes (so a code never has a neighbour of the same endpoint and slot in another
    segment, and coarsening buckets keeps the segments apart). Merging a chunk in copies the segments it lands in,
    one at a time: the table's peak memory is itself plus a segment, not twice itself (a 5M-row request log
    holds about 2.4M bins)."""

    def __init__(self, ops: Sequence[np.ufunc], dtypes: Sequence[npt.DTypeLike], rows: int) -> None:
        self.ops, self.dtypes, self.rows = tuple(ops), tuple(np.dtype(d) for d in dtypes), rows
        self.segments: list[_Table] = []
        #: Per segment but the first, the lowest code of its first (endpoint, slot) run: codes from it on go there.
        self._floors: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)

    def _table(self, codes: npt.NDArray[np.int64], columns: Sequence[npt.NDArray[Any]]) -> _Table:
        table = _Table(self.ops, self.dtypes)
        table.codes, table.columns = codes, list(columns)
        return table

    def _cut(self, table: _Table) -> list[_Table]:
        """``table`` in pieces of about ``rows`` codes (copies, so the pieces free their memory one by one)."""
        if len(table) <= 2 * self.rows:
            return [table]
        high = table.codes >> BUCKET_BITS
        cuts = np.unique(np.searchsorted(high, high[self.rows :: self.rows], side="right"))
        bounds = [0, *(int(c) for c in cuts if c < len(table)), len(table)]
        return [
            self._table(table.codes[lo:hi].copy(), [c[lo:hi].copy() for c in table.columns])
            for lo, hi in itertools.pairwise(bounds)
        ]

    def _reindex(self, segments: list[_Table]) -> None:
        self.segments = segments
        firsts = np.array([int(s.codes[0]) for s in segments[1:]], dtype=np.int64)
        self._floors = (firsts >> BUCKET_BITS) << BUCKET_BITS

    def add(self, codes: npt.NDArray[np.int64], columns: Sequence[npt.NDArray[Any]]) -> None:
        """Merge distinct ascending ``codes`` with their columns in, segment by segment."""
        if not len(codes):
            return
        if not self.segments:
            table = _Table(self.ops, self.dtypes)
            table.add(codes, columns)
            self._reindex(self._cut(table))
            return
        bounds = np.searchsorted(codes, self._floors)
        starts, ends = np.concatenate(([0], bounds)), np.concatenate((bounds, [len(codes)]))
        cut = False
        for i in np.flatnonzero(ends > starts)[::-1].tolist():  # only the segments codes land in, last first
            segment, part = self.segments[i], slice(int(starts[i]), int(ends[i]))
            segment.add(codes[part], [c[part] for c in columns])
            if len(segment) > 2 * self.rows:
                self.segments[i : i + 1] = self._cut(segment)
                cut = True
        if cut:
            self._reindex(self.segments)

    def recode(self, recoded: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]]) -> None:
        """Each segment's codes replaced by ``recoded(codes)``, which must keep ``code >> BUCKET_BITS`` (it may
        merge buckets); segments that became small are joined."""
        segments: list[_Table] = []
        for segment in self.segments:
            segment.recode(recoded(segment.codes))
            if segments and len(segments[-1]) + len(segment) <= self.rows:
                last = segments[-1]
                segments[-1] = self._table(
                    np.concatenate([last.codes, segment.codes]),
                    [np.concatenate([a, b]) for a, b in zip(last.columns, segment.columns, strict=True)],
                )
            else:
                segments.append(segment)
        self._reindex(segments)

    def between(self, lo: int, hi: int) -> tuple[npt.NDArray[np.int64], list[npt.NDArray[Any]]]:
        """(codes ``lo <= code < hi``, their columns; integer columns as int64)."""
        first = max(int(np.searchsorted(self._floors, lo, side="right")), 0)
        last = int(np.searchsorted(self._floors, hi, side="left"))
        codes, columns = [], []
        for segment in self.segments[first : last + 1]:
            part = slice(*np.searchsorted(segment.codes, [lo, hi]).tolist())
            codes.append(segment.codes[part])
            columns.append([c[part].astype(_wide(c.dtype) or c.dtype, copy=False) for c in segment.columns])
        if not codes:
            return np.empty(0, dtype=np.int64), [np.empty(0, dtype=_wide(d) or d) for d in self.dtypes]
        if len(codes) == 1:
            return codes[0], columns[0]
        return np.concatenate(codes), [np.concatenate(c) for c in zip(*columns, strict=True)]

    def whole(self) -> _Table:
        """The table as one :class:`_Table` (a copy; integer columns as int64)."""
        codes, columns = self.between(0, 1 << (ENDPOINT_BITS + SLOT_BITS + BUCKET_BITS))
        table = _Table(self.ops, [_wide(d) or d for d in self.dtypes])
        table.codes, table.columns = codes, columns
        return table

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)


def _slots(
    latency: npt.NDArray[np.float64], answered: npt.NDArray[np.bool_] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Each request's latency as the sketch holds it (below ``MIN_BIN_MS``: 0, the zero bucket, as
    ``LatencySketch.add_many``) and its slot; ``answered`` None means every request has a latency."""
    if answered is None and float(latency.min()) >= MIN_BIN_MS:
        slot = _SKETCH.keys_of(latency)
        slot -= KEY_LO - 1
        return latency, slot
    value = np.where(latency >= MIN_BIN_MS, latency, 0.0)  # the zero bucket (NaN too: never read)
    slot = np.full(len(latency), NONE_SLOT, dtype=np.int64)
    positive = value > 0.0
    slot[~positive if answered is None else answered & ~positive] = ZERO_SLOT
    slot[positive] = _SKETCH.keys_of(value[positive]) - KEY_LO + 1
    return value, slot


class RequestAggregator:
    """Per-endpoint sketches and timelines of many requests (see the module docstring); picklable, and
    mergeable exactly (:meth:`merge`: another file read in another process).

    ``interval_s`` given (a known window): the timeline uses it. Otherwise the interval is chosen in
    :meth:`to_measurement` from ``end - start`` with ``intervals`` and ``max_points`` (as
    ``parity.replay.recorder.timeline_interval`` and ``parity.sources.access_log.timeline_interval_for`` do);
    that span must cover the requests' send times. ``segment_rows``: the tables' segment size (tests make it
    small to cut the tables often).
    """

    def __init__(
        self,
        intervals: Sequence[float] = NICE_INTERVALS_S,
        max_points: int = MAX_POINTS,
        *,
        interval_s: float | None = None,
        segment_rows: int = SEGMENT_ROWS,
    ) -> None:
        if interval_s is not None:
            intervals = (interval_s,)
        self.intervals = tuple(float(i) for i in intervals)
        self.max_points = max_points
        self.fixed = interval_s is not None
        ladder_us = [round(i * _MICRO) for i in self.intervals]
        if any(u <= 0 for u in ladder_us):
            raise ValueError(f"timeline intervals must be positive: {self.intervals}")
        self._ladder_us = ladder_us
        #: Unix µs that every base bucket boundary is aligned to (a multiple of every candidate interval).
        self._align_us = reduce(math.lcm, ladder_us)
        self._base_us = ladder_us[0] if self.fixed else self._base_for(0.0)
        self._origin_us: int | None = None  # a multiple of _align_us near the first request
        self._keys: list[tuple[str, str]] = []
        self._numbers: dict[tuple[str, str], int] = {}
        # (endpoint, slot, bucket) → requests (int32 while they fit: the bins are what grows with the rows)
        self._bins = _Segments((np.add,), (np.int32,), segment_rows)
        # (endpoint, bucket) → requests, errors, latencies, latency sum ms, min ms, max ms
        self._cells = _Segments(
            (np.add, np.add, np.add, np.add, np.minimum, np.maximum),
            (np.int64, np.int64, np.int64, np.float64, np.float64, np.float64),
            segment_rows,
        )
        self.count = 0
        self.first_s = math.nan
        self.last_s = math.nan

    # --- intervals -------------------------------------------------------------------------------------

    def _base_for(self, span_s: float) -> int:
        """Base interval (µs) for requests spanning ``span_s``: the gcd of the intervals the span can still
        lead to (the chosen one and all coarser ones)."""
        chosen = choose_interval(span_s, self.intervals, self.max_points)
        return reduce(math.gcd, [u for u, i in zip(self._ladder_us, self.intervals, strict=True) if i >= chosen])

    def _rebase(self, base_us: int) -> None:
        """Go on in ``base_us`` buckets (a multiple of the current base), merging those so far: the bucket is the
        lowest field of a code, so the tables stay sorted and only equal neighbours combine (no sort)."""
        factor = base_us // self._base_us
        self._bins.recode(lambda codes: _recoded_bins(codes, factor))
        self._cells.recode(lambda codes: _recoded_cells(codes, factor))
        self._base_us = base_us

    # --- folding ---------------------------------------------------------------------------------------

    def _numbers_of(self, keys: Sequence[tuple[str, str]]) -> npt.NDArray[np.int64]:
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            number = self._numbers.get(key)
            if number is None:
                if len(self._keys) >= MAX_ENDPOINTS:
                    raise ValueError(f"more than {MAX_ENDPOINTS} distinct endpoints")
                number = self._numbers[key] = len(self._keys)
                self._keys.append(key)
            out[i] = number
        return out

    def add(self, chunk: RequestChunk) -> None:
        """Fold a chunk in. ValueError when a send time is not finite or a latency is neither NaN nor within
        ``[-inf, MAX_LATENCY_MS]`` (negative latencies, clock steps, count in the zero bucket as 0 ms).

        Written for speed (a 5M-row file is ten chunks): the common chunk, every request answered in more than
        ``MIN_BIN_MS``, takes no masks, and the arrays are transformed in place."""
        n = len(chunk)
        if n == 0:
            return
        sent = np.asarray(chunk.sent_s, dtype=np.float64)
        latency = np.asarray(chunk.latency_ms, dtype=np.float64)
        lo, hi = float(sent.min()), float(sent.max())  # NaN when any is NaN
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("send times must be finite")
        top = float(latency.max())
        answered: npt.NDArray[np.bool_] | None = None  # None: every request has a latency
        if math.isnan(top):
            answered = ~np.isnan(latency)
            top = float(latency[answered].max()) if answered.any() else 0.0
        if top > MAX_LATENCY_MS:
            raise ValueError(f"latencies must be at most {MAX_LATENCY_MS:g} ms")
        endpoint = self._numbers_of(chunk.keys)[np.asarray(chunk.endpoint, dtype=np.int64)]
        self.first_s = lo if math.isnan(self.first_s) else min(self.first_s, lo)
        self.last_s = hi if math.isnan(self.last_s) else max(self.last_s, hi)
        self.count += n
        if self._origin_us is None:
            self._origin_us = (round(lo * _MICRO) // self._align_us) * self._align_us
        if not self.fixed:
            base = self._base_for(self.last_s - self.first_s)
            if base != self._base_us:
                self._rebase(base)
        base_s, shift = self._base_us / _MICRO, self._origin_us // self._base_us - BUCKET_BIAS
        first, last = (bucket_numbers(np.array([lo, hi]), base_s) - shift).tolist()  # monotone in the time
        if first < 0 or last >= 1 << BUCKET_BITS:
            raise ValueError("requests span too many timeline buckets")
        bucket = bucket_numbers(sent, base_s)
        bucket -= shift
        value, slot = _slots(latency, answered)
        codes = endpoint << SLOT_BITS
        codes |= slot
        codes <<= BUCKET_BITS
        codes |= bucket
        codes.sort()
        starts = np.flatnonzero(codes[1:] != codes[:-1])
        starts += 1
        starts = np.concatenate(([0], starts))
        self._bins.add(codes[starts], [np.diff(np.append(starts, n))])
        self._add_cells(endpoint, bucket, first, last, np.asarray(chunk.errors, dtype=np.bool_), answered, value)

    def _add_cells(
        self,
        endpoint: npt.NDArray[np.int64],
        bucket: npt.NDArray[np.int64],
        first: int,
        last: int,
        errors: npt.NDArray[np.bool_],
        answered: npt.NDArray[np.bool_] | None,
        value: npt.NDArray[np.float64],
    ) -> None:
        """Per endpoint × bucket cell of the chunk (buckets ``first`` … ``last``): requests, errors, latencies,
        their sum, min and max, grouped through a dense index (endpoint × the chunk's bucket range) when it is
        small enough, else by sorting. ``answered`` None: every request has a latency."""
        width = last - first + 1
        dense = len(self._keys) * width <= DENSE_CELLS
        if dense:
            index = endpoint * width
            index += bucket
            index -= first
            size = len(self._keys) * width
        else:
            uniques, index = np.unique((endpoint << BUCKET_BITS) | bucket, return_inverse=True)
            size = len(uniques)
        requests = np.bincount(index, minlength=size)
        seen = np.flatnonzero(requests)
        got, values = (index, value) if answered is None else (index[answered], value[answered])
        low = np.full(size, np.inf)
        high = np.full(size, -np.inf)
        np.minimum.at(low, got, values)
        np.maximum.at(high, got, values)
        columns = [
            requests[seen],
            np.bincount(index[errors], minlength=size)[seen],
            requests[seen] if answered is None else np.bincount(got, minlength=size)[seen],
            np.bincount(got, weights=values, minlength=size)[seen],
            low[seen],
            high[seen],
        ]
        codes = ((seen // width) << BUCKET_BITS) | (seen % width + first) if dense else uniques[seen]
        self._cells.add(codes.astype(np.int64), columns)

    def merge(self, other: RequestAggregator) -> None:
        """Fold in another aggregator's requests (same intervals and points)."""
        if (other.intervals, other.max_points) != (self.intervals, self.max_points):
            raise ValueError("aggregators with different timeline intervals cannot merge")
        if other._origin_us is None:
            return
        if self._origin_us is None:
            self._origin_us = other._origin_us
            self.first_s, self.last_s = other.first_s, other.last_s
        else:
            self.first_s, self.last_s = min(self.first_s, other.first_s), max(self.last_s, other.last_s)
        base = max(self._base_us, other._base_us)
        if not self.fixed:
            base = max(base, self._base_for(self.last_s - self.first_s))
        if base != self._base_us:
            self._rebase(base)
        numbers = self._numbers_of(other._keys)
        shift, factor = (other._origin_us - self._origin_us) // other._base_us, base // other._base_us
        for mine, theirs, recode in (
            (self._bins, other._bins, _recoded_bins),
            (self._cells, other._cells, _recoded_cells),
        ):
            for segment in theirs.segments:  # a segment at a time: their endpoints map one to one onto ours
                recoded = recode(segment.codes, factor, shift, numbers)
                order = np.argsort(recoded, kind="stable")
                merged = _reduce_sorted(
                    recoded[order], *((c[order], op) for c, op in zip(segment.columns, segment.ops, strict=True))
                )
                mine.add(merged[0], merged[1:])
        self.count += other.count

    # --- the Measurement -------------------------------------------------------------------------------

    def to_measurement(
        self,
        *,
        source: Source,
        start: datetime,
        end: datetime,
        latency_kind: LatencyKind = LatencyKind.SERVICE_TIME,
        labels: dict[str, str] | None = None,
    ) -> Measurement:
        """The requests as a Measurement over ``[start, end)`` (UTC), like ``Recorder.to_measurement``: endpoints
        in (method, name) order, each with its sketch and a timeline from the earlier of ``start`` and the first
        request's bucket to the later of ``end`` and the last one's."""
        interval_s = (
            self.intervals[0]
            if self.fixed
            else choose_interval((end - start).total_seconds(), self.intervals, self.max_points)
        )
        interval_us = round(interval_s * _MICRO)
        if interval_us % self._base_us:
            raise ValueError(f"the span {start} to {end} does not cover the requests' send times")
        origin = 0 if self._origin_us is None else self._origin_us // interval_us
        factor = interval_us // self._base_us
        cells = self._cells.whole()  # endpoints × buckets: small next to the bins, read one endpoint at a time
        cells.recode(_recoded_cells(cells.codes, factor))
        first_b = math.floor(start.timestamp() / interval_s)
        last_b = math.ceil(end.timestamp() / interval_s) - 1
        cell_endpoint = cells.codes >> BUCKET_BITS
        cell_bucket = (cells.codes & ((1 << BUCKET_BITS) - 1)) - BUCKET_BIAS + origin
        if len(cell_bucket):
            first_b, last_b = min(first_b, int(cell_bucket.min())), max(last_b, int(cell_bucket.max()))
        points = last_b - first_b + 1
        requests, errors, latencies, sums, lows, highs = cells.columns
        endpoints = []
        for number in sorted(range(len(self._keys)), key=lambda k: self._keys[k]):
            mine = slice(*np.searchsorted(cell_endpoint, [number, number + 1]))
            if mine.start == mine.stop:
                continue
            bins = _Table(self._bins.ops, (np.int64,))
            bins.codes, bins.columns = self._bins.between(
                *(n << (SLOT_BITS + BUCKET_BITS) for n in (number, number + 1))
            )
            bins.recode(_recoded_bins(bins.codes, factor))
            sketch_bins, by_cell = _endpoint_bins(bins.codes, bins.columns[0])
            endpoint_cells = _Table(cells.ops, cells.dtypes)
            endpoint_cells.codes, endpoint_cells.columns = cells.codes[mine], [c[mine] for c in cells.columns]
            p95 = _cell_quantiles(by_cell, endpoint_cells, 0.95)
            at = (cell_bucket[mine] - first_b).astype(np.intp)
            counts = np.zeros(points, dtype=np.int64)
            counts[at] = requests[mine]
            errs = np.zeros(points, dtype=np.int64)
            errs[at] = errors[mine]
            got = latencies[mine] > 0
            avg = np.full(points, None, dtype=object)
            avg[at[got]] = (sums[mine][got] / latencies[mine][got]).tolist()
            high = np.full(points, None, dtype=object)
            high[at[got]] = highs[mine][got].tolist()
            q95 = np.full(points, None, dtype=object)
            q95[at[got]] = p95[got].tolist()
            timeline = Timeline(
                start_s=first_b * interval_s,
                interval_s=interval_s,
                counts=tuple(counts.tolist()),
                errors=tuple(errs.tolist()),
                avg_ms=tuple(avg.tolist()),
                p95_ms=tuple(q95.tolist()),
                max_ms=tuple(high.tolist()),
            )
            sketch = _endpoint_sketch(*sketch_bins, sums[mine], lows[mine], highs[mine])
            endpoints.append(
                EndpointStats(
                    endpoint=Endpoint(*self._keys[number]),
                    count=int(requests[mine].sum()),
                    errors=int(errors[mine].sum()),
                    latency=LatencyDistribution(sketch) if sketch.count else None,
                    timeline=timeline,
                )
            )
        return Measurement(
            source=source,
            window=Window(start.astimezone(UTC), end.astimezone(UTC)),
            endpoints=tuple(endpoints),
            latency_kind=latency_kind,
            labels=labels or {},
        )


_SLOT_VALUES = np.array([0.0] + [_SKETCH._mapping.value(k) for k in range(KEY_LO, KEY_HI + 1)] + [math.nan])


def _cell_quantiles(bins: _Table, cells: _Table, q: float) -> npt.NDArray[np.float64]:
    """The ``q``-quantile (ms) of each cell's sketch exactly as ``LatencySketch.quantile`` computes it (NaN for a
    cell without latencies): with ``rank = q × (latencies - 1)``, 0 while the rank falls in the zero bucket, else
    the value of the first bin whose running count exceeds ``rank - zero count``; clamped to the cell's min and
    max. Running counts are integers, so "exceeds r" is "at least floor(r) + 1", compared exactly."""
    slot = bins.codes & ((1 << SLOT_BITS) - 1)
    keep = slot != NONE_SLOT
    cell_of, slot, counts = bins.codes[keep] >> SLOT_BITS, slot[keep], bins.columns[0][keep]
    in_store = np.where(slot == ZERO_SLOT, 0, counts)
    running = np.cumsum(in_store)
    first = np.searchsorted(cell_of, cells.codes, side="left")
    last = np.searchsorted(cell_of, cells.codes, side="right")
    if not len(slot):
        return np.full(len(cells.codes), np.nan)
    head = np.minimum(first, len(slot) - 1)
    zero = np.where((last > first) & (slot[head] == ZERO_SLOT), counts[head], 0).astype(np.float64)
    before = np.where(first > 0, running[np.maximum(first - 1, 0)], 0)
    latencies = cells.columns[2].astype(np.float64)
    rank = q * (latencies - 1.0)
    above = rank - zero  # as ddsketch: key_at_rank(rank - zero_count)
    threshold = before + np.floor(np.maximum(above, 0.0)).astype(np.int64) + 1
    at = np.minimum(np.searchsorted(running, threshold, side="left"), np.maximum(last - 1, 0))
    value = np.where(rank < zero, 0.0, _SLOT_VALUES[slot[np.minimum(at, len(slot) - 1)]])
    value = np.minimum(np.maximum(value, cells.columns[4]), cells.columns[5])
    return np.where(latencies > 0, value, np.nan)


def _endpoint_bins(
    codes: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]
) -> tuple[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]], _Table]:
    """One endpoint's bins (codes endpoint, slot, bucket; ascending) as (its slots with their counts over the
    whole window, ascending) and as a table in cell order (codes endpoint, bucket, slot) for the per-cell
    quantiles."""
    slot = (codes >> BUCKET_BITS) & _SLOT_MASK
    starts = np.flatnonzero(np.concatenate(([True], slot[1:] != slot[:-1]))) if len(slot) else slot
    per_slot = (slot[starts], np.add.reduceat(counts, starts) if len(slot) else counts)
    by_cell = _Table((np.add,), (np.int64,))
    cell_order = (((codes >> (SLOT_BITS + BUCKET_BITS)) << BUCKET_BITS | (codes & _BUCKET_MASK)) << SLOT_BITS) | slot
    order = np.argsort(cell_order)
    by_cell.codes, by_cell.columns = cell_order[order], [counts[order]]
    return per_slot, by_cell


def _endpoint_sketch(
    slot: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    sums: npt.NDArray[np.float64],
    lows: npt.NDArray[np.float64],
    highs: npt.NDArray[np.float64],
) -> LatencySketch:
    """An endpoint's sketch over the whole window from its slots' counts (ascending slots) and its cells' sums
    and extremes."""
    keep = (slot != NONE_SLOT) & (slot != ZERO_SLOT)
    zero = int(counts[slot == ZERO_SLOT].sum())
    if not keep.any() and not zero:
        return LatencySketch()
    return LatencySketch.from_bins(
        slot[keep] + KEY_LO - 1,
        counts[keep],
        zero_count=zero,
        total_ms=float(sums.sum()),
        min_ms=float(lows.min()),
        max_ms=float(highs.max()),
    )

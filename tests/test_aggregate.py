"""RequestAggregator (files, column-wise) against the Recorder (live replay, row by row): the same
Measurement for the same requests, whatever the chunking, order, span or process split."""

from __future__ import annotations

import itertools
import math
import pickle
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from parity.model import LatencyKind, Source, SourceKind
from parity.replay.recorder import NICE_INTERVALS_S, bucket_numbers, timeline_interval
from parity.sources.aggregate import BUCKET_BITS, RequestAggregator, RequestChunk, _Segments, _Table
from tests.aggregate_support import assert_same_measurement, row_path_measurement

T0 = 1_760_000_123.25
SOURCE = Source(SourceKind.LOCUST_CSV, description="test")
KEYS = (("GET", "/a"), ("POST", "/b"), ("GET", "/c/{id}"), ("", "login"))


def _chunks(seed: int, n: int, span_s: float, pieces: int) -> list[RequestChunk]:
    """``n`` requests over ``span_s`` seconds, unsorted, cut into ``pieces`` chunks whose key tables differ."""
    rng = np.random.default_rng(seed)
    sent = T0 + rng.uniform(0.0, span_s, n)
    latency = rng.lognormal(3.0, 1.2, n)
    latency[rng.random(n) < 0.03] = np.nan  # no response
    latency[rng.random(n) < 0.01] = 0.0  # the zero bucket
    latency[rng.random(n) < 0.01] = -2.0  # a clock step: the zero bucket too
    latency[rng.random(n) < 0.01] = 1e-13  # below MIN_BIN_MS
    errors = np.isnan(latency) | (rng.random(n) < 0.02)
    endpoint = rng.integers(0, len(KEYS), n)
    out = []
    for part in np.array_split(np.arange(n), pieces):
        order = rng.permutation(len(KEYS))  # each chunk numbers the endpoints its own way
        keys = tuple(KEYS[i] for i in order)
        local = np.argsort(order)[endpoint[part]]
        out.append(RequestChunk(keys, local.astype(np.int64), sent[part], latency[part], errors[part]))
    return out


def _window(span_s: float) -> tuple[datetime, datetime]:
    return datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + span_s, UTC)


@pytest.mark.parametrize(
    ("seed", "n", "span_s", "pieces"),
    [(1, 5000, 90.0, 1), (2, 20000, 3000.0, 7), (3, 12000, 7 * 3600.0, 5), (4, 300, 0.5, 3), (5, 9000, 86400.0, 9)],
)
def test_same_measurement_as_row_at_a_time(seed: int, n: int, span_s: float, pieces: int) -> None:
    """Unsorted requests in several chunks, spans that make the base interval coarsen while reading (the first
    chunk spans a fraction of the whole): identical bins, counts, errors, min/max and timelines."""
    chunks = _chunks(seed, n, span_s, pieces)
    start, end = _window(span_s)
    aggregator = RequestAggregator()
    for chunk in chunks:
        aggregator.add(chunk)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end, "latency_kind": LatencyKind.SERVICE_TIME}
    got = aggregator.to_measurement(**kw)
    assert got.endpoints[0].timeline is not None
    interval = timeline_interval(span_s)
    assert got.endpoints[0].timeline.interval_s == interval
    assert_same_measurement(got, row_path_measurement(chunks, interval, **kw))
    assert aggregator.count == n == got.total_count


def test_growing_span_in_time_order() -> None:
    """Chunks in time order over a day: every coarsening step (1 s … 600 s bases) keeps the result exact."""
    chunks = _chunks(6, 24000, 86400.0, 1)
    one = chunks[0]
    order = np.argsort(one.sent_s)
    parts = [
        RequestChunk(one.keys, one.endpoint[p], one.sent_s[p], one.latency_ms[p], one.errors[p])
        for p in np.array_split(order, 40)
    ]
    aggregator = RequestAggregator()
    for part in parts:
        aggregator.add(part)
    start, end = _window(86400.0)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end}
    assert_same_measurement(
        aggregator.to_measurement(**kw), row_path_measurement(parts, timeline_interval(86400.0), **kw)
    )


def test_merge_equals_one_reader_and_survives_pickling() -> None:
    """Files read by separate aggregators (in other processes: pickled) and merged in order equal one
    aggregator that read them all, whatever their spans and origins."""
    first = _chunks(7, 6000, 500.0, 2)
    later = [
        RequestChunk(c.keys, c.endpoint, c.sent_s + 20000.0, c.latency_ms, c.errors)
        for c in _chunks(8, 7000, 9000.0, 3)
    ]
    whole = RequestAggregator()
    parts = [RequestAggregator(), RequestAggregator()]
    for chunk in first:
        whole.add(chunk)
        parts[0].add(chunk)
    for chunk in later:
        whole.add(chunk)
        parts[1].add(chunk)
    start, end = _window(29000.0)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end}
    for ordered in (parts, parts[::-1]):  # the finer-based part first, then last
        merged = RequestAggregator()
        for part in ordered:
            merged.merge(pickle.loads(pickle.dumps(part)))
        assert_same_measurement(merged.to_measurement(**kw), whole.to_measurement(**kw))
    assert_same_measurement(
        merged.to_measurement(**kw), row_path_measurement([*first, *later], timeline_interval(29000.0), **kw)
    )


def test_fixed_interval_and_the_access_log_ladder() -> None:
    """A known window's interval is used as given; the access logs' ladder (multiples of 60 s) is honoured."""
    from parity.sources.access_log import MAX_TIMELINE_POINTS, TIMELINE_INTERVALS_S, timeline_interval_for

    chunks = _chunks(9, 8000, 5 * 86400.0, 4)
    start, end = _window(5 * 86400.0)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end, "latency_kind": LatencyKind.SERVER}
    ladder = RequestAggregator(TIMELINE_INTERVALS_S, MAX_TIMELINE_POINTS)
    fixed = RequestAggregator(interval_s=600.0)
    for chunk in chunks:
        ladder.add(chunk)
        fixed.add(chunk)
    interval = timeline_interval_for(5 * 86400.0)
    assert interval == 120.0
    assert_same_measurement(ladder.to_measurement(**kw), row_path_measurement(chunks, interval, **kw))
    assert_same_measurement(fixed.to_measurement(**kw), row_path_measurement(chunks, 600.0, **kw))


def test_bucket_boundaries_on_whole_microseconds() -> None:
    """A send time on a bucket boundary opens the bucket; one microsecond earlier stays in the previous one,
    for every nice interval, so coarse buckets are unions of fine ones."""
    edge = 1_760_000_400.0
    for interval in NICE_INTERVALS_S:
        boundary = math.floor(edge / interval) * interval
        got = bucket_numbers(np.array([boundary - 1e-6, boundary]), float(interval))
        assert got.tolist() == [boundary // interval - 1, boundary // interval]


def test_bad_values_are_refused() -> None:
    aggregator = RequestAggregator()
    bad_time = RequestChunk(
        (("GET", "/"),), np.zeros(1, np.int64), np.array([np.inf]), np.array([1.0]), np.zeros(1, bool)
    )
    with pytest.raises(ValueError, match="finite"):
        aggregator.add(bad_time)
    bad_latency = RequestChunk(
        (("GET", "/"),), np.zeros(1, np.int64), np.array([T0]), np.array([1e11]), np.zeros(1, bool)
    )
    with pytest.raises(ValueError, match="at most"):
        aggregator.add(bad_latency)
    with pytest.raises(ValueError, match="length"):
        RequestChunk((("GET", "/"),), np.zeros(2, np.int64), np.array([T0]), np.array([1.0]), np.zeros(1, bool))


def test_merging_many_files_keeps_one_table_of_bins() -> None:
    """Merged aggregators of overlapping files (several servers' logs of the same hour) hold their bins in one
    table, as one aggregator reading every file does: memory bounded by the distinct bins, not by the files."""
    chunks = _chunks(10, 3000, 3600.0, 1)
    merged, whole = RequestAggregator(), RequestAggregator()
    for _ in range(12):
        part = RequestAggregator()
        part.add(chunks[0])
        merged.merge(pickle.loads(pickle.dumps(part)))
        whole.add(chunks[0])

    assert len(merged._bins) <= len(whole._bins)
    start, end = _window(3600.0)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end}
    assert_same_measurement(merged.to_measurement(**kw), whole.to_measurement(**kw))


@pytest.mark.parametrize("seed", range(24))
def test_edge_cases_randomized_against_the_recorder(seed: int) -> None:
    """Small random files made of edge cases (a single request, a cell of 21 latencies whose p95 rank is
    19.000000000000004, latencies 0 / MIN_BIN_MS / MAX_LATENCY_MS / none / negative / few distinct values, every
    request in the zero bucket, send times on bucket boundaries, windows wider than the data) read by one
    aggregator, or by two whose coarsenings differ and are merged: the same Measurement as the Recorder."""
    from parity.bounds import MAX_LATENCY_MS
    from parity.sketch import MIN_BIN_MS

    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 21, 21, 200]))
    span = float(rng.choice([0.0, 480.0, 2400.0, 3600.0, 86400.0]))
    grid = float(rng.choice([0.0, 1.0, 15.0, 60.0]))
    sent = T0 + rng.uniform(0.0, span, n)
    if grid:
        sent = np.floor(sent / grid) * grid
    kind = seed % 4
    if kind == 0:
        latency = rng.choice([0.0, MIN_BIN_MS, MAX_LATENCY_MS, np.nan, -1.0, 5e-13, 1.0], n)
    elif kind == 1:
        latency = rng.choice(rng.lognormal(2.0, 1.0, 2), n)  # ties: ranks on bin boundaries
    elif kind == 2:
        latency = np.where(rng.random(n) < 0.5, 0.0, np.nan)  # the zero bucket, or no latency at all
    else:
        latency = rng.lognormal(2.0, 2.0, n)
    endpoint = rng.integers(0, len(KEYS), n)
    errors = rng.random(n) < 0.3
    order = np.argsort(sent, kind="stable")
    chunks = [
        RequestChunk(KEYS, endpoint[p], sent[p], latency[p], errors[p])
        for p in np.array_split(order, min(n, int(rng.integers(1, 5))))
    ]
    start = datetime.fromtimestamp(float(sent.min()) - float(rng.choice([0.0, 30.0])), UTC)
    end = datetime.fromtimestamp(float(sent.max()) + float(rng.choice([0.001, 7200.0])), UTC)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end}
    first, second = RequestAggregator(), RequestAggregator()
    for i, chunk in enumerate(chunks):
        (first if i < len(chunks) / 2 else second).add(chunk)
    merged = RequestAggregator()
    for part in (second, first) if seed % 2 else (first, second):
        merged.merge(pickle.loads(pickle.dumps(part)))
    one = RequestAggregator()
    for chunk in chunks:
        one.add(chunk)
    want = row_path_measurement(chunks, timeline_interval((end - start).total_seconds()), **kw)
    assert_same_measurement(one.to_measurement(**kw), want)
    assert_same_measurement(merged.to_measurement(**kw), want)


def test_p95_rank_exactly_at_the_zero_count() -> None:
    """41 latencies, 38 of them 0 ms: the p95 rank 0.95 × 40 is 38.0, equal to the zero count, so (as in
    LatencySketch.quantile) the p95 is the first bin above zero (~10 ms), not 0."""
    n = 41
    latency = np.array([0.0] * 38 + [10.0] * 3)
    chunk = RequestChunk(KEYS[:1], np.zeros(n, np.int64), np.full(n, T0), latency, np.zeros(n, bool))
    aggregator = RequestAggregator()
    aggregator.add(chunk)
    start, end = _window(60.0)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end}
    got = aggregator.to_measurement(**kw)
    assert_same_measurement(got, row_path_measurement([chunk], timeline_interval(60.0), **kw))
    timeline = got.endpoints[0].timeline
    assert timeline is not None
    assert timeline.p95_ms is not None
    assert [x for x in timeline.p95_ms if x is not None] == [pytest.approx(10.0, rel=0.011)]


def test_small_segments_give_the_same_measurement() -> None:
    """Tables cut into segments of a few codes (split as chunks land, joined after the base interval coarsens,
    merged segment by segment) give the very Measurement of the default ones (which equal the row-at-a-time path:
    the tests above)."""
    chunks = _chunks(11, 3000, 7 * 3600.0, 5)
    start, end = _window(7 * 3600.0)
    kw: dict[str, Any] = {"source": SOURCE, "start": start, "end": end}
    small, default, merged = RequestAggregator(segment_rows=8), RequestAggregator(), RequestAggregator(segment_rows=20)
    for i, chunk in enumerate(chunks):
        small.add(chunk)
        default.add(chunk)
        part = RequestAggregator(segment_rows=6)
        part.add(chunk)
        merged.merge(part if i % 2 else pickle.loads(pickle.dumps(part)))
    assert len(small._bins.segments) > 10
    for table in (small._bins, small._cells, merged._bins):
        highs = [(s.codes[0] >> BUCKET_BITS, s.codes[-1] >> BUCKET_BITS) for s in table.segments]
        assert all(a[1] < b[0] for a, b in itertools.pairwise(highs))  # an endpoint-slot run is never split
    want = default.to_measurement(**kw)
    assert_same_measurement(small.to_measurement(**kw), want)
    assert_same_measurement(merged.to_measurement(**kw), want)


def test_segments_against_a_plain_count() -> None:
    """Known answer: codes added in random batches (some repeated, some new) and then coarsened (the bucket field
    merged 3 to 1) hold, in order, each distinct code with the sum of its counts."""
    rng = np.random.default_rng(12)
    table = _Segments((np.add,), (np.int32,), rows=4)
    every: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for _ in range(30):
        codes = np.unique((rng.integers(0, 6, 40) << BUCKET_BITS) | rng.integers(0, 9, 40))
        values = rng.integers(1, 1000, len(codes))
        table.add(codes, [values])
        every.append(codes)
        counts.append(values)
    allcodes, allcounts = np.concatenate(every), np.concatenate(counts)
    want, at = np.unique(allcodes, return_inverse=True)
    whole = table.whole()
    assert whole.codes.tolist() == want.tolist()
    assert whole.columns[0].tolist() == np.bincount(at, weights=allcounts).astype(np.int64).tolist()
    table.recode(lambda c: ((c >> BUCKET_BITS) << BUCKET_BITS) | ((c & ((1 << BUCKET_BITS) - 1)) // 3))
    coarse = ((allcodes >> BUCKET_BITS) << BUCKET_BITS) | ((allcodes & ((1 << BUCKET_BITS) - 1)) // 3)
    want, at = np.unique(coarse, return_inverse=True)
    whole = table.whole()
    assert whole.codes.tolist() == want.tolist()
    assert whole.columns[0].tolist() == np.bincount(at, weights=allcounts).astype(np.int64).tolist()
    low, high = (3 << BUCKET_BITS), (5 << BUCKET_BITS)
    inside = (want >= low) & (want < high)
    got_codes, (got_counts,) = table.between(low, high)
    assert got_codes.tolist() == want[inside].tolist()
    assert got_counts.dtype == np.int64


def test_int32_counts_widen_instead_of_wrapping() -> None:
    """Counts are held in int32 while they fit: a sum, an inserted count or a coarsening beyond 2**31 - 1 widens
    the column to int64 with the exact value (never wraps)."""
    top = 2**31 - 1
    table = _Table((np.add,), (np.int32,))
    table.add(np.array([10, 50]), [np.array([top - 5, 7])])
    assert table.columns[0].dtype == np.int32
    table.add(np.array([10, 30]), [np.array([20, 1])])  # a sum beyond int32
    assert table.columns[0].dtype == np.int64
    assert table.codes.tolist() == [10, 30, 50]
    assert table.columns[0].tolist() == [top + 15, 1, 7]
    fresh = _Table((np.add,), (np.int32,))
    fresh.add(np.array([1]), [np.array([3])])
    fresh.add(np.array([0, 2]), [np.array([top + 2, 4])])  # an inserted count beyond int32
    assert fresh.columns[0].tolist() == [top + 2, 3, 4]
    segments = _Segments((np.add,), (np.int32,), rows=2)
    segments.add(np.array([0, 1, 2]), [np.array([top, top, 5], dtype=np.int32)])  # both int32: no wrap either
    segments.add(np.array([2]), [np.array([top - 5], dtype=np.int32)])
    segments.recode(lambda c: c // 2)  # buckets 0 and 1 merge: 2 × top
    codes, (counts,) = segments.between(0, 10)
    assert codes.tolist() == [0, 1]
    assert counts.tolist() == [2 * top, top]

"""Test helpers: the row-at-a-time path (the live replay's Recorder) over the same requests as a reader's
chunks, and the comparison of two Measurements bucket for bucket."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pytest

from parity.model import LatencyDistribution, Measurement
from parity.replay.recorder import Recorder
from parity.sources.aggregate import RequestChunk


def row_path_measurement(chunks: Iterable[RequestChunk], interval_s: float, **to_measurement: Any) -> Measurement:
    """The chunks' requests recorded one at a time, as a live replay records them, then ``to_measurement``."""
    recorder = Recorder(interval_s)
    for chunk in chunks:
        for i in range(len(chunk)):
            method, name = chunk.keys[int(chunk.endpoint[i])]
            latency = float(chunk.latency_ms[i])
            recorder.record(
                method, name, float(chunk.sent_s[i]), None if math.isnan(latency) else latency, bool(chunk.errors[i])
            )
    return recorder.to_measurement(**to_measurement)


def assert_same_measurement(a: Measurement, b: Measurement) -> None:
    """Same endpoints, counts, errors, window, timelines and sketches bin for bin; sums (so means) equal to
    float rounding (the two paths add in another order)."""
    assert (a.window, a.latency_kind, a.source, a.labels) == (b.window, b.latency_kind, b.source, b.labels)
    assert [e.endpoint for e in a.endpoints] == [e.endpoint for e in b.endpoints]
    for ea, eb in zip(a.endpoints, b.endpoints, strict=True):
        assert (ea.endpoint, ea.count, ea.errors) == (eb.endpoint, eb.count, eb.errors)
        assert ea.timeline is not None
        assert eb.timeline is not None
        ta, tb = dict(vars(ea.timeline)), dict(vars(eb.timeline))
        avg_a, avg_b = ta.pop("avg_ms"), tb.pop("avg_ms")
        assert [x is None for x in avg_a] == [x is None for x in avg_b], ea.endpoint
        assert [x for x in avg_a if x is not None] == pytest.approx([x for x in avg_b if x is not None], rel=1e-12)
        assert ta == tb, ea.endpoint  # counts, errors, p95 and max per interval
        if ea.latency is None or eb.latency is None:
            assert ea.latency is eb.latency is None, ea.endpoint
            continue
        assert isinstance(ea.latency, LatencyDistribution)
        assert isinstance(eb.latency, LatencyDistribution)
        da, db = ea.latency.sketch.to_dict(), eb.latency.sketch.to_dict()
        assert da.pop("sum") == pytest.approx(db.pop("sum"), rel=1e-12), ea.endpoint
        assert da == db, ea.endpoint  # every bin, the zero bucket, count, min and max
        assert ea.intended is None
        assert eb.intended is None

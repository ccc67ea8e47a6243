"""Benchmark: how long the judge and the renderers take for many endpoints (prints figures).

Builds two made-up Measurements with N endpoints of 2,000 lognormal requests each (fixed seed), then
times compare() and the four report renderers. Not part of `make test`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from parity.judge.compare import compare
from parity.model import Endpoint, EndpointStats, LatencyDistribution, Measurement, Source, SourceKind, Window
from parity.report.context import RunMeta
from parity.report.write import write_reports
from parity.sketch import LatencySketch

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def side(n_endpoints: int, seed: int, slow_every: int = 0) -> Measurement:
    rng = np.random.default_rng(seed)
    endpoints = []
    for i in range(n_endpoints):
        median = 5.0 + (i % 50) * 4.0
        if slow_every and i % slow_every == 0:
            median *= 1.5
        sketch = LatencySketch()
        for v in rng.lognormal(np.log(median), 0.4, 2000):
            sketch.add(float(v))
        endpoints.append(EndpointStats(Endpoint("GET", f"/api/r{i}/{{id}}"), 2000, 2, LatencyDistribution(sketch)))
    return Measurement(Source(SourceKind.SYNTHETIC), Window(T0, T0 + timedelta(minutes=10)), tuple(endpoints))


def main() -> int:
    meta = RunMeta("bench", None, datetime.now(UTC), None, None)
    print(f"{'endpoints':>9} {'compare s':>10} {'reports s':>10} {'index.html KB':>14} {'verdict':>8}")
    for n in (10, 100, 1000):
        base, cand = side(n, 1), side(n, 2, slow_every=10)
        t = time.perf_counter()
        result = compare(base, cand)
        t_compare = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            paths = write_reports(result, Path(tmp), meta)
            t_reports = time.perf_counter() - t
            size_kb = paths.index_html.stat().st_size / 1024
        print(f"{n:>9} {t_compare:>10.3f} {t_reports:>10.3f} {size_kb:>14.0f} {result.verdict.value:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

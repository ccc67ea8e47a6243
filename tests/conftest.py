"""Shared test helpers: made-up Measurements with known latency distributions (fixed seeds)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    Measurement,
    Source,
    SourceKind,
    Window,
)
from parity.sketch import LatencySketch

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
REPLAY_LOCUSTFILE = ROOT / "loadtests" / "replay.py"


def run_parity(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real ``parity`` command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "parity.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else dict(env),
        check=False,
    )


def run_replay(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``locust -f loadtests/replay.py --headless --only-summary ARGS`` as the README shows it."""
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPLAY_LOCUSTFILE), "--headless", "--only-summary", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def sketch_of(values: np.ndarray | list[float]) -> LatencySketch:
    sketch = LatencySketch()
    for v in values:
        sketch.add(float(v))
    return sketch


def lognormal_side(
    medians: Mapping[str, float],
    *,
    n: int = 2000,
    errors: Mapping[str, int] | None = None,
    seed: int = 1,
    sigma: float = 0.3,
    duration_s: float = 60.0,
    pair_id: str | None = None,
) -> Measurement:
    """A Measurement with one lognormal endpoint per ``medians`` key (``"GET /x"`` → median ms)."""
    rng = np.random.default_rng(seed)
    endpoints = []
    for key, median in medians.items():
        values = rng.lognormal(np.log(median), sigma, n)
        endpoints.append(
            EndpointStats(
                endpoint=Endpoint.parse(key),
                count=n,
                errors=(errors or {}).get(key, 0),
                latency=LatencyDistribution(sketch_of(values)),
            )
        )
    return Measurement(
        source=Source(SourceKind.SYNTHETIC, "test"),
        window=Window(T0, T0 + timedelta(seconds=duration_s)),
        endpoints=tuple(endpoints),
        latency_kind=LatencyKind.SERVICE_TIME,
        pair_id=pair_id,
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)

"""Shared test helpers: made-up Measurements with known latency distributions (fixed seeds), and how many
pytest-xdist workers a run gets (``pytest_xdist_auto_num_workers``)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Generator, Mapping
from contextlib import ExitStack
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
from parity.replay.process import free_loopback_port
from parity.sketch import LatencySketch

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
REPLAY_LOCUSTFILE = ROOT / "loadtests" / "replay.py"

#: pytest-xdist workers for a run of more than one test file (pyproject's addopts say ``-n auto``). Three on a
#: 2-core machine: most of the suite's wall time is spent WAITING (fixed-length Locust runs, servers starting;
#: the serial suite uses ~0.4 of one core), so three files at a time overlap well without starving the CPU.
XDIST_WORKERS = 3


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: XDIST_WORKERS when the run names a folder or several files; 0 (an ordinary serial run, ``-s``
    and live output as usual) when it names one file or tests of one file. An explicit ``-n N`` wins."""
    files = set()
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        if not path.is_file():
            return XDIST_WORKERS
        files.add(path.resolve())
    return XDIST_WORKERS if len(files) > 1 else 0


def _flock(stack: ExitStack, path: Path, mode: int) -> None:
    """Hold ``fcntl.flock(mode)`` on ``path`` until ``stack`` closes (the OS drops it if this process dies)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    stack.callback(os.close, fd)
    fcntl.flock(fd, mode)
    stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, None]:
    """Under pytest-xdist, a test marked ``alone`` (it judges latency measured on this machine) runs, with its
    fixtures, while no other test of this run does: the other workers finish the test they are in and wait.
    Every other test runs beside any other. A readers-writer lock shared by the workers: ``gate`` (held by an
    ``alone`` test while it waits and runs; others only pass through it, so it is never starved) and ``run``
    (exclusive for ``alone``, shared by the rest). A run without workers takes no lock."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    shared = item.config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]  # pytest-N/, one per run
    alone = item.get_closest_marker("alone") is not None
    with ExitStack() as held:
        with ExitStack() as gate:
            _flock(gate, shared / "alone.gate.lock", fcntl.LOCK_EX)
            _flock(held, shared / "alone.run.lock", fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            if alone:
                held.enter_context(gate.pop_all())  # keep the gate shut until this test is done
        yield


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the OS picks it)."""
    return free_loopback_port()


def locust_master_env() -> dict[str, str]:
    """This process's environment plus Locust's master port settings on a free loopback port, for a child that
    runs the replay locustfile itself with ``--processes N``: its master listens on 127.0.0.1 (the replay's
    default) but on Locust's port 5557, so two such runs at once (pytest-xdist workers, or several engineers'
    suites on one machine) would collide, or one's workers join the other's master. The forked workers connect
    to ``--master-port``, the master binds ``--master-bind-port``: both are set. (``parity ab`` and
    ``parity nightly`` pick a free port themselves: ``parity.replay.process.run_replay``.)"""
    port = str(free_port())
    return dict(os.environ) | {"LOCUST_MASTER_BIND_PORT": port, "LOCUST_MASTER_NODE_PORT": port}


def _uses_processes(args: tuple[str, ...]) -> bool:
    return any(a == "--processes" or a.startswith("--processes=") for a in args)


def run_parity(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real ``parity`` command line in a child process (with ``--processes`` its Locust master picks a free
    loopback port by itself)."""
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
    """``locust -f loadtests/replay.py --headless --only-summary ARGS`` as the README shows it (with
    ``--processes``: its master on a free loopback port, see ``locust_master_env``)."""
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPLAY_LOCUSTFILE), "--headless", "--only-summary", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=locust_master_env() if _uses_processes(args) else None,
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

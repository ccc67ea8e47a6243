"""Run the replay locustfile as a child process (``parity ab``, the demo and the nightly job do; tests do too).

Locust monkey-patches the process it is imported into (gevent), so the harness never imports it: it
starts ``python -m locust -f <parity/replay/locustfile.py> ...`` and reads the Measurement(s) it writes.
:class:`ReplayRun` says what to replay and :func:`replay_args` turns it into the locustfile's command line —
the one place those arguments are built.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from parity.replay.rails import Rails

__all__ = [
    "REPLAY_STATUS",
    "STOP_GRACE_S",
    "ReplayRun",
    "locust_process",
    "locustfile_path",
    "log_tail",
    "planned_run_s",
    "replay_args",
    "run_replay",
]

#: Seconds a Locust process gets to exit after SIGINT before it is killed.
STOP_GRACE_S = 10.0
#: Exit codes of the replay locustfile that leave Measurements to judge, and what they mean.
REPLAY_STATUS = {0: "complete", 3: "incomplete", 4: "aborted by a safety rail"}


@dataclass(frozen=True)
class ReplayRun:
    """A headless replay of ``baseline`` against ``host`` (and ``old_host`` at the same time: concurrent A/B),
    as the locustfile's options (``locust -f loadtests/replay.py --help``). ``run_time_s`` None: the ramp's
    steps × step duration. Shape options apply to their shape only. ``rails`` become options (the child also
    reads a parity.toml in its working directory). ``extra``: more Locust arguments, appended last."""

    baseline: Path
    host: str
    out: Path
    run_time_s: float | None = None
    rate_scale: float = 1.0
    seed: int = 1
    old_host: str | None = None
    old_out: Path | None = None
    target_env: str | None = None
    old_env: str | None = None
    service: str | None = None
    pair_id: str | None = None
    shape: str = "replay"
    rps: float | None = None
    steps: str | None = None
    step_duration_s: float | None = None
    burst_multiplier: float | None = None
    burst_start_s: float | None = None
    burst_duration_s: float | None = None
    min_endpoint_rps: float | None = None
    processes: int = 1
    rails: Rails = field(default_factory=Rails)
    extra: tuple[str, ...] = ()


def locustfile_path() -> str:
    """Path of the replay locustfile, found without importing it (importing Locust patches the process)."""
    spec = importlib.util.find_spec("parity.replay.locustfile")
    assert spec is not None
    assert spec.origin is not None
    return spec.origin


def replay_args(run: ReplayRun) -> list[str]:
    """The Locust command line (after ``python -m locust``) of ``run``: headless, summary only."""
    args = ["-f", locustfile_path(), "--headless", "--only-summary", "--host", run.host,
            "--baseline", str(run.baseline), "--parity-out", str(run.out), "--seed", str(run.seed),
            "--rate-scale", f"{run.rate_scale:g}", "--shape", run.shape]  # fmt: skip
    if run.run_time_s is not None:
        args += ["-t", f"{run.run_time_s:g}s"]
    texts = (
        ("--old-host", run.old_host),
        ("--target-env", run.target_env),
        ("--old-env", run.old_env),
        ("--service", run.service),
        ("--pair-id", run.pair_id),
        ("--steps", run.steps),
        ("--old-out", None if run.old_out is None else str(run.old_out)),
    )
    args += [token for flag, value in texts if value for token in (flag, value)]
    rails = run.rails
    numbers = (
        ("--rps", run.rps),
        ("--step-duration", run.step_duration_s),
        ("--burst-multiplier", run.burst_multiplier),
        ("--burst-start", run.burst_start_s),
        ("--burst-duration", run.burst_duration_s),
        ("--min-endpoint-rps", run.min_endpoint_rps),
        ("--max-rps", rails.max_rps),
        ("--abort-error-ratio", rails.abort_error_ratio),
        ("--abort-p99-ms", rails.abort_p99_ms),
        ("--abort-window", rails.abort_window_s if rails.watches else None),
    )
    args += [token for flag, value in numbers if value is not None for token in (flag, f"{value:g}")]
    for host in rails.allow_hosts:
        args += ["--allow-host", host]
    if run.processes > 1:
        args += ["--processes", str(run.processes)]
    return args + list(run.extra)


@contextmanager
def locust_process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m locust ARGS`` with its output in ``log_path``; interrupted (SIGINT, then kill after
    ``STOP_GRACE_S``) if still running when the block exits."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()


def planned_run_s(run: ReplayRun) -> float:
    """Seconds the replay sends for: its run time, or a ramp's steps × step duration (0 when unknown)."""
    if run.run_time_s is not None:
        return run.run_time_s
    if run.steps and run.step_duration_s is not None:
        return len([p for p in run.steps.split(",") if p.strip()]) * run.step_duration_s
    return 0.0


def run_replay(run: ReplayRun, log_path: Path, timeout_s: float) -> int | None:
    """Run ``run`` in a child Locust process (output in ``log_path``) and wait for it: its exit code, or None when
    it did not finish within ``timeout_s`` seconds (it is then interrupted like Ctrl-C, which writes what was
    recorded, marked partial)."""
    with locust_process(replay_args(run), log_path) as proc:
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None


def log_tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log, joined with `` | `` (empty when unreadable)."""
    try:
        return " | ".join(path.read_text("utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""

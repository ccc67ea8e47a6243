"""Run the replay locustfile as a child process (``parity ab``, the demo and the nightly job do; tests do too).

Locust monkey-patches the process it is imported into (gevent), so the harness never imports it: it
starts ``python -m locust -f <parity/replay/locustfile.py> ...`` and reads the Measurement(s) it writes.
:class:`ReplayRun` says what to replay and :func:`replay_args` turns it into the locustfile's command line —
the one place those arguments are built.

Stopping: while the child runs, SIGINT and SIGTERM to this process are forwarded to it (it runs in its own
session, so a terminal's Ctrl-C reaches it once, through us): the replay stops sending, waits a bounded grace
for its requests in flight and writes its Measurement(s) marked incomplete (``stopped`` label, exit code 3);
the child is killed if it has not exited ``STOP_GRACE_S`` later. A second signal is forwarded too (the replay
then writes what it has and exits at once) and raises :class:`parity.errors.Interrupted` here. The child also
stops by itself when this process disappears (``PARENT_PID_ENV``, e.g. after kill -9).

Least privilege: the child's environment is this one without secrets (:func:`child_environment`): no Datadog
variables, nothing named like a key, token, secret or password.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from parity.errors import Interrupted
from parity.replay.progress import ReplayProgress, read_snapshot
from parity.replay.rails import Rails

#: What receives a replay's live progress (None: not started yet).
ProgressSink = Callable[[ReplayProgress | None], None]

__all__ = [
    "KILL_GRACE_S",
    "PARENT_PID_ENV",
    "PROGRESS_POLL_S",
    "REPLAY_STATUS",
    "STOP_GRACE_S",
    "LocustChild",
    "ProgressSink",
    "ReplayExit",
    "ReplayRun",
    "child_environment",
    "free_loopback_port",
    "locust_process",
    "locustfile_path",
    "log_tail",
    "planned_run_s",
    "replay_args",
    "run_path",
    "run_replay",
]

#: Seconds a Locust child gets, after a stop (SIGTERM), to wait for its requests in flight (at most 5 s, see
#: ``parity.replay.locustfile.SIGNAL_GRACE_S``), collect its workers' last reports and write its Measurement(s),
#: before it is killed.
STOP_GRACE_S = 20.0
#: Seconds a Locust child gets after a second signal (it writes what it has and exits at once) before it is killed.
KILL_GRACE_S = 5.0
#: Environment variable telling the child which process started it (its master watches that parent).
PARENT_PID_ENV = "PARITY_PARENT_PID"
#: A child never gets environment variables whose names start with one of these (Datadog keys and settings)...
SECRET_PREFIXES = ("DD_", "DATADOG_")
#: ... or contain one of these words (case-insensitive), except Locust's own ``LOCUST_*`` settings.
SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL")
#: Seconds between two looks at the replay's progress snapshot (``--parity-progress-file``) while it runs.
PROGRESS_POLL_S = 0.25
#: Name of the progress snapshot file in a temporary directory of the parent.
PROGRESS_FILE = "progress.json"
#: Exit codes of the replay locustfile that leave Measurements to judge, and what they mean.
REPLAY_STATUS = {0: "complete", 3: "incomplete", 4: "aborted by a safety rail"}


@dataclass(frozen=True)
class ReplayRun:
    """A headless replay of ``baseline`` against ``host`` (and ``old_host`` at the same time: concurrent A/B),
    as the locustfile's options (``locust -f loadtests/replay.py --help``). ``run_time_s`` None: the ramp's
    steps × step duration. Shape options apply to their shape only. ``rails`` become options (the child also
    reads a parity.toml in its working directory). ``master_port``: with ``processes`` > 1, the loopback port
    its Locust master listens on and its forked workers connect to (None: Locust's 5557; :func:`run_replay`
    picks a free one). ``extra``: more Locust arguments, appended last. ``progress``: called with the replay's live
    progress (``parity.replay.progress.ReplayProgress``; None until the run has started) about every
    ``PROGRESS_POLL_S`` while :func:`run_replay` waits (``parity.progress.replay_progress`` draws it), once more
    when the replay has ended, and then closed if it has a ``close()`` method; None: none."""

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
    master_port: int | None = None
    rails: Rails = field(default_factory=Rails)
    extra: tuple[str, ...] = ()
    progress: ProgressSink | None = field(default=None, compare=False, repr=False)


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
    if rails.bodies:
        args += ["--bodies", rails.bodies]
    if rails.allow_empty_bodies:
        args.append("--allow-empty-bodies")
    if run.processes > 1:
        args += ["--processes", str(run.processes)]
        if run.master_port is not None:  # the master binds the port (on loopback: the replay's default) ...
            port = str(run.master_port)  # ... and its forked workers connect to it: both must be told
            args += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return args + list(run.extra)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; another process may take it before
    it is used, which Locust then reports as a bind error)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _secret(name: str) -> bool:
    upper = name.upper()
    if upper.startswith(SECRET_PREFIXES):
        return True
    return not upper.startswith("LOCUST_") and any(word in upper for word in SECRET_WORDS)


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without what a replay child must not hold: every ``DD_*`` / ``DATADOG_*`` variable (the
    nightly's Datadog keys and site) and every variable named like a key, secret, token, password or credential
    (``SECRET_WORDS``; ``LOCUST_*`` settings are kept). The replay needs none of them."""
    return {name: value for name, value in environ.items() if not _secret(name)}


@dataclass(frozen=True)
class ReplayExit:
    """How a replay child ended: its exit code (None: it did not finish in time and was stopped, or killed), and
    the signal that stopped this process while it ran (forwarded to the child; None when there was none)."""

    code: int | None
    signal: int | None = None

    def nothing_recorded(self, what: str, log_path: Path) -> Interrupted:
        """The error when a signal stopped ``what`` (``the replay``) before it wrote any Measurement."""
        assert self.signal is not None
        name = signal.Signals(self.signal).name
        return Interrupted(self.signal, f"{name}: {what} stopped before it recorded anything (log: {log_path})")


class LocustChild:
    """A running Locust child (``proc``) and the SIGINT/SIGTERM this process received while it ran (each
    forwarded to it; see the module docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.signals: list[int] = []
        self.stopped_at: float | None = None  # time.monotonic() of the first signal

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: pass ``signum`` on to the child; the second one also raises Interrupted."""
        self.signals.append(signum)
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        if self.proc.returncode is None:
            with suppress(OSError):  # already gone
                self.proc.send_signal(signum)
        if len(self.signals) > 1:
            raise Interrupted(signum, f"{signal.Signals(signum).name} again: the replay was told to exit at once")

    def wait(self, timeout_s: float, tick: Callable[[], None] | None = None) -> int | None:
        """Wait for the child's exit code: at most ``timeout_s`` seconds, and at most ``STOP_GRACE_S`` after a
        forwarded stop; None when it has not exited by then. ``tick`` is called about every ``PROGRESS_POLL_S``
        meanwhile (and once more at the end)."""
        deadline = time.monotonic() + timeout_s
        step = 0.5 if tick is None else PROGRESS_POLL_S
        try:
            while True:
                if self.stopped_at is not None:
                    deadline = min(deadline, self.stopped_at + STOP_GRACE_S)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if tick is not None:
                    tick()
                try:
                    return self.proc.wait(timeout=min(remaining, step))
                except subprocess.TimeoutExpired:
                    continue
        finally:
            if tick is not None:
                tick()

    @property
    def signal(self) -> int | None:
        """The first signal received while the child ran, or None."""
        return self.signals[0] if self.signals else None


@contextmanager
def _forwarding(child: LocustChild) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``child.forward`` inside the block (main thread only: elsewhere signals cannot
    be caught, and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    for caught in (signal.SIGINT, signal.SIGTERM):
        previous[caught] = signal.signal(caught, child.forward)
    try:
        yield
    finally:
        for caught, handler in previous.items():
            signal.signal(caught, handler)


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM ``proc`` (the replay then stops and writes its Measurement), kill it after ``grace_s``; reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


@contextmanager
def locust_process(args: list[str], log_path: Path) -> Iterator[LocustChild]:
    """``python -m locust ARGS`` with its output in ``log_path``, in its own session, with ``child_environment``;
    SIGINT/SIGTERM to this process are forwarded to it inside the block. Stopped (SIGTERM, then killed after
    ``STOP_GRACE_S``, or ``KILL_GRACE_S`` after a second signal) if still running when the block exits."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**child_environment(os.environ), PARENT_PID_ENV: str(os.getpid())},
        start_new_session=True,
    )
    child = LocustChild(proc)
    try:
        with _forwarding(child):
            yield child
    finally:
        _stop(proc, KILL_GRACE_S if child.signals else STOP_GRACE_S)  # after a stop, SIGTERM is its second signal
        log_file.close()


def planned_run_s(run: ReplayRun) -> float:
    """Seconds the replay sends for: its run time, or a ramp's steps × step duration (0 when unknown)."""
    if run.run_time_s is not None:
        return run.run_time_s
    if run.steps and run.step_duration_s is not None:
        return len([p for p in run.steps.split(",") if p.strip()]) * run.step_duration_s
    return 0.0


def run_replay(run: ReplayRun, log_path: Path, timeout_s: float) -> ReplayExit:
    """Run ``run`` in a child Locust process (output in ``log_path``) and wait for it, at most ``timeout_s``
    seconds (then it is stopped like on SIGTERM, which writes what was recorded, marked partial, and the code is
    None). A SIGINT/SIGTERM to this process meanwhile is forwarded and reported in ``ReplayExit.signal``; a
    second one raises Interrupted. With ``processes`` > 1 and no ``master_port``, its master gets a free loopback
    port, so runs on one host never share (or collide on) Locust's 5557."""
    if run.processes > 1 and run.master_port is None:
        run = replace(run, master_port=free_loopback_port())
    sink = run.progress
    if sink is None:
        with locust_process(replay_args(run), log_path) as child:
            return ReplayExit(child.wait(timeout_s), child.signal)
    with tempfile.TemporaryDirectory(prefix="parity-progress-") as tmp:
        snapshot = Path(tmp) / PROGRESS_FILE
        with locust_process([*replay_args(run), "--parity-progress-file", str(snapshot)], log_path) as child:
            tick = _ticker(sink, snapshot)
            code = child.wait(timeout_s, tick=tick)
            tick()  # the last snapshot the child wrote
            close = getattr(sink, "close", None)  # a display with an end (parity.progress): ended with the replay
            if callable(close):
                with contextlib.suppress(OSError):  # its terminal or pipe is gone: nothing more to show
                    close()
            return ReplayExit(code, child.signal)


def _ticker(sink: ProgressSink, snapshot: Path) -> Callable[[], None]:
    """Hand ``sink`` the latest snapshot in ``snapshot`` at each call; a sink that cannot write (OSError: e.g. its
    terminal or pipe is gone) gets no more calls — the replay goes on."""
    broken = False

    def tick() -> None:
        nonlocal broken
        if broken:
            return
        try:
            sink(read_snapshot(snapshot))
        except OSError:
            broken = True

    return tick


def log_tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log, joined with `` | `` (empty when unreadable)."""
    try:
        return " | ".join(path.read_text("utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def run_path(path: str | Path, run: int) -> Path:
    """Where run number ``run`` (1-based) of one replay process (Locust's web UI can start several) writes
    ``path``'s Measurement: the path itself for the first run, ``<stem>-<run><suffix>`` for the next ones
    (``reports/new.json`` -> ``reports/new-2.json``, ``new.old.json`` -> ``new.old-2.json``)."""
    path = Path(path)
    return path if run <= 1 else path.with_name(f"{path.stem}-{run}{path.suffix}")

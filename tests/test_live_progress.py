"""Live progress of a replay (issue 15, Build 2): the line's text (known answers), the snapshot taken from the
recorders, the renderer on a terminal and on a plain stream, and three short real runs: a direct Locust replay
in a pseudo-terminal (redrawn in place at least about once a second), ``parity ab`` piped (a plain line every
``PARITY_PROGRESS_EVERY`` seconds) and a direct replay with ``--quiet`` (none). Every child is killed in a
``finally`` and none is left behind."""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from parity.cli import build_parser
from parity.demo.processes import Service, running_servers
from parity.progress import PLAIN_EVERY_ENV, PLAIN_EVERY_S, ProgressLine, plain_every_s, replay_progress
from parity.replay.progress import (
    ReplayProgress,
    SideProgress,
    format_ms,
    format_progress,
    planned_rate,
    read_snapshot,
    take_snapshot,
    write_snapshot,
)
from parity.replay.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "baselines" / "demo.json"
LOCUSTFILE = ROOT / "loadtests" / "replay.py"
#: Seconds of the replays below (short: Locust's start-up and drain come on top).
RUN_S = 5
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROGRESS = re.compile(r"replay (\d+\.\d) s / (\d+) s")


def _side(name: str = "", **kw: object) -> SideProgress:
    values: dict[str, object] = {
        "name": name,
        "sent": 1204,
        "recorded": 1200,
        "errors": 0,
        "late": 3,
        "rate_rps": 99.84,
        "p95_ms": 12.4,
    }
    values.update(kw)
    return SideProgress(**values)  # type: ignore[arg-type]


def _progress(*sides: SideProgress, elapsed_s: float = 12.04, stopping: str | None = None) -> ReplayProgress:
    return ReplayProgress(
        elapsed_s=elapsed_s,
        planned_s=60.0,
        planned_requests=6000.4,
        plan_rps=100.0,
        window_s=10.0,
        sides=sides or (_side(),),
        stopping=stopping,
    )


# --- the line (known answers) ---


def test_a_single_target_line() -> None:
    assert format_progress(_progress()) == (
        "replay 12.0 s / 60 s · sent 1,204 of ~6,000 · 99.8/s (plan 100.0/s) · errors 0 · late 3 · p95 12 ms"
    )


def test_errors_show_their_share_of_the_recorded_requests() -> None:
    line = format_progress(_progress(_side(errors=30, p95_ms=4.25, rate_rps=None)))
    assert line == (
        "replay 12.0 s / 60 s · sent 1,204 of ~6,000 · - (plan 100.0/s) · errors 30 (2.5%) · late 3 · p95 4.2 ms"
    )


def test_an_ab_line_shows_the_plan_once_and_each_side_by_name() -> None:
    line = format_progress(_progress(_side("old"), _side("new", errors=2, p95_ms=1250.0, rate_rps=None)))
    assert line == (
        "replay 12.0 s / 60 s · plan 100.0/s, ~6,000 each · "
        "old: sent 1,204, 99.8/s, errors 0, late 3, p95 12 ms · "
        "new: sent 1,204, -, errors 2 (0.2%), late 3, p95 1,250 ms"
    )


def test_before_the_start_past_the_end_and_stopping() -> None:
    assert format_progress(None) == "replay: starting Locust"
    assert format_progress(_progress(elapsed_s=-0.8)) == "replay starting in 1 s (60 s, ~6,000 requests planned)"
    late = format_progress(_progress(elapsed_s=61.3, stopping="SIGINT after 59.0 s of 60 s"))
    assert late.startswith("replay 60.0 s / 60 s · finishing (waiting for answers in flight) · sent 1,204")
    assert late.endswith(" · stopping: SIGINT after 59.0 s of 60 s")


def test_latencies_are_written_for_a_glance() -> None:
    assert [format_ms(v) for v in (None, float("nan"), 0.04, 9.96, 10.0, 437.4, 1250.0, 61234.0)] == [
        "-",
        "-",
        "0.0 ms",
        "10.0 ms",
        "10 ms",
        "437 ms",
        "1,250 ms",
        "61,234 ms",
    ]


def test_planned_rate_averages_the_schedule_over_the_span() -> None:
    cells = [10.0, 20.0, 30.0, 40.0]  # 4 cells of 15 s over a 60 s run
    assert planned_rate(cells, 60.0, 0.0, 15.0) == pytest.approx(10.0)
    assert planned_rate(cells, 60.0, 10.0, 20.0) == pytest.approx((5 * 10 + 5 * 20) / 10)
    assert planned_rate(cells, 60.0, 0.0, 60.0) == pytest.approx(25.0)
    assert planned_rate(cells, 60.0, 50.0, 70.0) == pytest.approx(10 * 40 / 20)  # nothing planned after the end
    assert planned_rate(cells, 60.0, 5.0, 5.0) is None
    assert planned_rate([], 60.0, 0.0, 10.0) is None


# --- the snapshot from the recorders ---


def _recorded(start: float) -> Recorder:
    """1 s buckets: 10 sends a second from start+0.5 to start+11.5, and a request per send with latency 1..N ms
    (every 20th an error)."""
    recorder = Recorder(1.0)
    n = 0
    for second in range(12):
        at = start + second + 0.5
        recorder.count_sends(at, sent=10, late=1 if second == 3 else 0)
        for _ in range(10):
            n += 1
            recorder.record("GET", "/a", at, float(n), n % 20 == 0)
    return recorder


def test_a_snapshot_takes_the_recent_window_and_the_run_totals() -> None:
    start = 1000.0
    recorder = _recorded(start)
    snap = take_snapshot(
        {"new": recorder}, now_s=start + 12.6, start_s=start, run_time_s=60.0, cell_rates=[10.0] * 60, lag_s=1.0
    )
    # window: whole buckets [1001, 1011) (ends 1 s before now, 10 s long)
    assert snap.window_s == pytest.approx(10.0)
    assert snap.elapsed_s == pytest.approx(12.6)
    assert snap.planned_requests == pytest.approx(600.0)
    assert snap.plan_rps == pytest.approx(10.0)
    (side,) = snap.sides
    assert side.name == ""
    assert (side.sent, side.recorded, side.errors, side.late) == (120, 120, 6, 1)
    assert side.rate_rps == pytest.approx(10.0)
    # the window's requests have latencies 11..110 ms: p95 is about 105 ms (sketch: ~1% relative accuracy)
    assert side.p95_ms == pytest.approx(105.0, rel=0.03)


def test_a_snapshot_has_no_window_at_the_start_and_puts_old_first() -> None:
    start = 1000.0
    recorders = {"new": Recorder(1.0), "old": Recorder(1.0)}
    snap = take_snapshot(recorders, now_s=start + 1.5, start_s=start, run_time_s=60.0, cell_rates=[5.0], lag_s=1.0)
    assert [s.name for s in snap.sides] == ["old", "new"]
    assert snap.plan_rps is None
    assert snap.window_s == 0.0
    assert all(s.rate_rps is None and s.p95_ms is None for s in snap.sides)


def test_a_master_sees_its_workers_sends_in_the_window() -> None:
    """Master/worker: the sends per bucket travel with the workers' deltas, so the master's window is the
    aggregate of every lane."""
    start = 1000.0
    master = Recorder(1.0)
    for _ in range(2):  # two workers, each its own lane
        worker = Recorder(1.0, track_delta=True)
        for second in range(12):
            worker.count_sends(start + second + 0.5, sent=5)
            worker.record("GET", "/a", start + second + 0.5, 20.0, False)
        master.merge_delta(worker.take_delta())
    snap = take_snapshot(
        {"new": master}, now_s=start + 15.2, start_s=start, run_time_s=60.0, cell_rates=[10.0], lag_s=4.0
    )
    (side,) = snap.sides
    assert side.sent == 120
    assert side.rate_rps == pytest.approx(10.0)  # [1001, 1011): 2 workers x 5 sends a second
    assert side.p95_ms == pytest.approx(20.0, rel=0.02)


def test_a_snapshot_file_round_trips_and_a_bad_one_is_none(tmp_path: Path) -> None:
    snap = _progress(_side("old"), _side("new", p95_ms=None), stopping="SIGTERM")
    path = tmp_path / "progress.json"
    assert read_snapshot(path) is None
    write_snapshot(snap, path)
    assert read_snapshot(path) == snap
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]  # the temporary file was renamed
    path.write_text('{"elapsed_s": 1', "utf-8")
    assert read_snapshot(path) is None
    path.write_text('{"elapsed_s": 1}', "utf-8")
    assert read_snapshot(path) is None


# --- the renderer ---


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_plain_stream_gets_a_line_every_interval_and_the_last_at_close() -> None:
    stream, clock = io.StringIO(), _Clock()
    with ProgressLine(stream, every_s=10.0, terminal=False, clock=clock) as line:
        for t in range(26):
            clock.now = float(t)
            line.update(f"at {t}")
    assert stream.getvalue() == "at 0\nat 10\nat 20\nat 25\n"


def test_a_terminal_redraws_the_line_in_place_at_every_update() -> None:
    stream = io.StringIO()
    with ProgressLine(stream, terminal=True) as line:
        for t in range(5):
            line.update(f"replay {t}.0 s / 5 s")
    out = stream.getvalue()
    drawn = [m.group(1) for m in PROGRESS.finditer(out)]
    assert drawn == ["0.0", "1.0", "2.0", "3.0", "4.0", "4.0"]  # stopping draws the last line once more
    assert "\x1b[2K" in out  # each redraw erases the previous line: not a new line per update
    assert ANSI.sub("", out).count("\n") <= 1


def test_the_plain_interval_is_10_s_unless_the_environment_says_otherwise() -> None:
    assert PLAIN_EVERY_S == 10.0
    assert plain_every_s({}) == 10.0
    assert plain_every_s({PLAIN_EVERY_ENV: "2.5"}) == 2.5
    for bad in ("", "x", "0", "-1", "inf", "nan"):
        assert plain_every_s({PLAIN_EVERY_ENV: bad}) == 10.0


# --- real runs ---


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[str, str]]:
    with running_servers([Service("old"), Service("new")]) as (old, new):
        yield old, new


def _left_behind(marker: str) -> list[str]:
    """Command lines of processes still running that mention ``marker`` (a test's own temporary directory)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if marker in cmdline and proc.pid != os.getpid():
            found.append(cmdline)
    return found


def _no_child_left(marker: str) -> None:
    deadline = time.monotonic() + 15
    while _left_behind(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _left_behind(marker)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End ``proc``'s whole session (its Locust workers too) if it is still running; reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.e2e
def test_a_replay_in_a_terminal_redraws_its_progress_about_every_second(
    targets: tuple[str, str], tmp_path: Path
) -> None:
    """``locust -f loadtests/replay.py --headless`` with its stdout and stderr on a pseudo-terminal: the progress
    line is redrawn in place, at least RUN_S - 2 distinct times during the RUN_S seconds (every half second
    unloaded), and Locust's log lines scroll above it instead of breaking it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    args = ["--host", targets[1], "--baseline", str(BASELINE), "-t", f"{RUN_S}s", "--parity-out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary", *args,
         str(tmp_path / "run.json")],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True, cwd=tmp_path,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
        os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    shown = [float(m.group(1)) for m in PROGRESS.finditer(out)]
    running = sorted({s for s in shown if 0.0 <= s < RUN_S})
    assert len(running) >= RUN_S - 2, out
    assert "\x1b[2K" in out  # redrawn in place (erase line), not printed line after line
    plain = ANSI.sub("", out)
    for text in plain.replace("\r", "\n").splitlines():
        if "replay " in text and " s / " in text:  # a progress line holds nothing but progress
            assert "INFO" not in text, text
            assert "WARNING" not in text, text
    assert "parity: recorded" in plain  # Locust's log went through, above the line
    _no_child_left(str(tmp_path))


def _ab(targets: tuple[str, str], out: Path, run_s: int, every_s: str) -> tuple[int, list[tuple[float, str]]]:
    """``parity ab`` of the bundled baseline for ``run_s`` seconds with stderr piped: its exit code and stderr's lines,
    each with the time it was read (s since the start)."""
    env = {**os.environ, PLAIN_EVERY_ENV: every_s}
    old, new = targets
    proc = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "ab", str(BASELINE), "--old", old, "--new", new, "-t", f"{run_s}s",
         "--out", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    try:
        deadline = started + 150
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if not ready:
                continue
            line = proc.stderr.readline()
            if not line:
                break
            lines.append((time.monotonic() - started, line.decode("utf-8", "replace")))
        code = proc.wait(timeout=30)
    finally:
        _stop(proc)
        proc.stderr.close()
    return code, lines


@pytest.mark.e2e
def test_parity_ab_piped_prints_a_plain_progress_line_every_interval(targets: tuple[str, str], tmp_path: Path) -> None:
    """Not a terminal: plain lines (no control codes), one per PARITY_PROGRESS_EVERY seconds (here 1 s; 10 s by
    default) from the run's start on, each with both sides."""
    code, lines = _ab(targets, tmp_path / "ab", 3, every_s="1")
    assert code in (0, 1, 3), lines
    progress = [(t, text) for t, text in lines if PROGRESS.match(text)]
    assert len(progress) >= 2, lines
    assert all("\x1b" not in text and "\r" not in text for _, text in lines)
    assert all(" old: sent " in text and " new: sent " in text for _, text in progress)
    times = [t for t, _ in progress]
    assert max(b - a for a, b in itertools.pairwise(times)) < 6.0, progress  # 1 s, with load's slack
    _no_child_left(str(tmp_path))


def test_quiet_commands_get_no_progress_sink() -> None:
    """``parity ab --quiet`` / ``parity demo --quiet``: no sink, so the replay child gets no progress file and
    parity draws nothing (the child's own stderr is its log)."""
    parser = build_parser()
    ab = ["ab", str(BASELINE), "--old", "http://127.0.0.1:1", "--new", "http://127.0.0.1:2"]
    assert parser.parse_args([*ab, "--quiet"]).quiet
    assert not parser.parse_args(ab).quiet
    assert parser.parse_args(["demo", "--quiet"]).quiet
    with replay_progress(True) as sink:
        assert sink is None
    stream = io.StringIO()
    with replay_progress(False, stream, {PLAIN_EVERY_ENV: "10"}) as sink:
        assert sink is not None
        sink(None)  # not started yet: a plain stream gets no "starting" line
        sink(_progress())
    assert stream.getvalue() == format_progress(_progress()) + "\n"


@pytest.mark.e2e
def test_a_quiet_replay_prints_no_progress(targets: tuple[str, str], tmp_path: Path) -> None:
    """``locust -f loadtests/replay.py --headless --quiet``: Locust's output only, no progress line."""
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary", "--quiet",
         "--host", targets[1], "--baseline", str(BASELINE), "-t", "2s", "--parity-out", str(tmp_path / "run.json")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, PLAIN_EVERY_ENV: "0.5"},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "parity: recorded" in done.stderr
    assert not PROGRESS.search(done.stderr), done.stderr
    _no_child_left(str(tmp_path))


@pytest.mark.e2e
def test_the_progress_display_ends_with_the_replay(targets: tuple[str, str], tmp_path: Path) -> None:
    """``run_replay`` hands its sink the last snapshot once the child has ended and then closes it: what a command
    prints next (``parity demo``'s "compared new against old") comes after the last progress line, not before."""
    from parity.replay.process import ReplayRun, run_replay

    events: list[str] = []

    class Sink:
        def __call__(self, snapshot: ReplayProgress | None) -> None:
            events.append("draw" if snapshot is None else f"draw {snapshot.elapsed_s:.1f}")

        def close(self) -> None:
            events.append("close")

    run = ReplayRun(baseline=BASELINE, host=targets[1], out=tmp_path / "run.json", run_time_s=2, progress=Sink())
    ended = run_replay(run, tmp_path / "locust.log", timeout_s=120)
    assert ended.code == 0, (tmp_path / "locust.log").read_text()
    assert events[-1] == "close", events
    assert events.count("close") == 1, events
    last = events[-2]
    assert last.startswith("draw "), events
    assert float(last.split()[1]) >= 2.0, events  # the snapshot of the ended run
    _no_child_left(str(tmp_path))

"""Locust request CSV source and the content-sniffing loader."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity import measurement_json
from parity.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput
from parity.model import LatencyDistribution, LatencyKind, SourceKind
from parity.sources import load_measurement
from parity.sources.locust_csv import COLUMNS, read_locust_csv
from tests.conftest import lognormal_side

#: Linux's tgkill system call number (a signal to one thread of a process), per machine.
SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)

HEADER = ",".join(COLUMNS)


def _write(tmp_path: Path, rows: list[str], name: str = "requests.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_locust_csv_counts_errors_and_latency(tmp_path: Path) -> None:
    rows = []
    for i in range(100):
        t = 1_800_000_000 + i * 0.5
        rows.append(f"{t},GET,/api/employees/[id],{10 + i % 10},120,200,")
    rows.append(f"{1_800_000_000 + 10.2},GET,/api/employees/[id],999,0,0,ConnectionRefusedError(111)")
    rows.append(f"{1_800_000_000 + 11.0},POST,/api/login,55.5,10,500,\"HTTPError('500 Server Error')\"")
    rows.append(f"{1_800_000_000 + 12.0},POST,/api/login,45.5,10,401,")
    m = read_locust_csv(_write(tmp_path, rows))
    assert m.source.kind is SourceKind.LOCUST_CSV
    assert m.latency_kind is LatencyKind.SERVICE_TIME
    by = m.by_key()
    get = by["GET /api/employees/[id]"]
    assert (get.count, get.errors) == (101, 1)
    assert isinstance(get.latency, LatencyDistribution)
    assert get.latency.samples == 100  # the request without a response has no latency
    assert get.latency.mean == pytest.approx(14.5)
    assert get.latency.maximum == 19
    login = by["POST /api/login"]
    assert (login.count, login.errors) == (2, 1)  # 401 without an exception is not an error
    assert m.window.duration_s == pytest.approx(49.5 + 0.001)
    assert get.timeline is not None
    assert get.timeline.total == 101


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            ["1800000000,GET,/a,abc,1,200,"],
            "line 2: response_time_ms: expected a latency in ms (0 to 1e+10), got 'abc'",
        ),
        (["1800000000,GET,/a,1,1,200,", "inf,GET,/a,1,1,200,"], "line 3: timestamp: expected a Unix time"),
        (["1800000000,GET,/a,-0.5,1,200,"], "line 2: response_time_ms"),
        (["1800000000,GET,/a,nan,1,200,"], "line 2: response_time_ms"),
        (["1800000000,GET,/a,1e400,1,200,"], "line 2: response_time_ms"),
        (["1800000000,GET,/a,1,1,1e30,"], "line 2: status_code"),
        (["1800000000,GET,/a,1,1,200,", "1000,GET,/a,1,1,200,"], "timestamps span"),
        (["1800000000,GET,/a,1,1,200,", "x,GET,/a,1,1,200,"], "line 3: timestamp"),
        (["1800000000,GET,,1,1,200,"], "line 2: name: empty"),
        ([], "no requests in the log"),
    ],
)
def test_bad_csv_rows_name_the_line_and_column(tmp_path: Path, rows: list[str], message: str) -> None:
    path = _write(tmp_path, rows)
    with pytest.raises(BadInput) as err:
        read_locust_csv(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_loader_sniffs_the_format(tmp_path: Path) -> None:
    json_path = measurement_json.write(lognormal_side({"GET /a": 5}), tmp_path / "m.json")
    assert load_measurement(json_path).total_count == 2000
    csv_path = _write(tmp_path, ["1800000000,GET,/a,1,1,200,"])
    assert load_measurement(csv_path).total_count == 1
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(BadInput, match=r"unrecognised content, first line 'hello'; accepted: a Measurement file"):
        load_measurement(other)
    with pytest.raises(BadInput, match="no such file"):
        load_measurement(tmp_path / "nope.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no Locust request logs"):  # a directory: the request logs of one run
        load_measurement(tmp_path / "empty")
    wrong_header = tmp_path / "wrong.csv"
    wrong_header.write_text("a,b\n1,2\n")
    with pytest.raises(BadInput, match="unrecognised CSV header 'a,b'; accepted: a Measurement file"):
        load_measurement(wrong_header)


def _compare_process(tmp_path: Path, baseline: Path, candidate: Path) -> subprocess.Popen[str]:
    """``parity compare baseline candidate`` as a subprocess (stderr captured)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            # a known signal state whatever the test process holds (an ignored or blocked SIGINT is inherited)
            "import signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM}); "
            "signal.signal(signal.SIGINT, signal.default_int_handler); from parity.cli import main; sys.exit(main())",
            "compare",
            str(baseline),
            str(candidate),
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_compare_reports_the_baseline_error_without_waiting_for_the_candidate(tmp_path: Path) -> None:
    """The two sides are read in threads; a bad baseline is reported at once (exit 2), even when the candidate's
    read never ends (a named pipe nobody writes: opening it blocks)."""
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\n1700000000,GET,/a,-1,1,200,\n")
    pipe = tmp_path / "never.csv"
    os.mkfifo(pipe)
    proc = _compare_process(tmp_path, bad, pipe)
    try:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_BAD_INPUT
        assert "bad.csv: line 2: response_time_ms" in err
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.wait()


def _signal_state(pid: int) -> str:
    """What a hung child's threads are doing (signal masks, pending signals, state and kernel wait channel per
    thread), for the failure message."""
    lines = []
    try:
        tasks = sorted(Path(f"/proc/{pid}/task").iterdir())
    except OSError as exc:
        return f"no /proc entry ({exc.strerror})"
    for task in tasks:
        try:
            status = (task / "status").read_text()
            wchan = (task / "wchan").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        picked = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
        lines.append(
            f"{task.name} " + " ".join(f"{k}={fields.get(k, '?').strip()}" for k in picked) + f" wchan={wchan}"
        )
    return "; ".join(lines)


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send ``signum`` to one thread ``tid`` of process ``pid`` (Linux tgkill: the kernel may hand a process's
    signal to any of its threads; this picks the thread)."""
    if SYS_TGKILL is None:
        pytest.skip(f"no tgkill number known for {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


@pytest.mark.alone
@pytest.mark.parametrize("to_a_reading_thread", [False, True], ids=["to-the-process", "to-a-reading-thread"])
def test_compare_stops_on_ctrl_c_while_reading(tmp_path: Path, to_a_reading_thread: bool) -> None:
    """Ctrl-C while both sides are being read stops the command (exit 130, one line), not after the reads end;
    also when the kernel hands the signal to a thread blocked reading a side rather than to the main thread
    (which then waited on the reads without waking: it hung, 2 of 3 full clean-clone runs on a busy day)."""
    pipes = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for p in pipes:
        os.mkfifo(p)
    proc = _compare_process(tmp_path, *pipes)
    writers: list[int] = []
    try:
        # A pipe opens for writing without blocking only once a reader holds it: then the command is past its start
        # (its SIGINT handler installed, which a fixed sleep could not promise on a loaded machine) and reading
        deadline = time.monotonic() + 60
        while len(writers) < len(pipes) and time.monotonic() < deadline and proc.poll() is None:
            try:
                writers.append(os.open(pipes[len(writers)], os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                time.sleep(0.05)
        assert len(writers) == len(pipes), "the command never opened both pipes"
        if to_a_reading_thread:
            threads = [int(t.name) for t in Path(f"/proc/{proc.pid}/task").iterdir() if int(t.name) != proc.pid]
            assert threads, "the command reads in threads"
            _tgkill(proc.pid, threads[0], signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"compare did not stop within 60 s of SIGINT: {_signal_state(proc.pid)}")
        assert proc.returncode == EXIT_INTERRUPTED
        assert "Traceback" not in err
    finally:
        for fd in writers:
            os.close(fd)
        proc.kill()
        proc.wait()

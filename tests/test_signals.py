"""Signals and kills: real Locust replays (one process, ``--processes 2``) and a real ``parity nightly`` against the
demo server, stopped by SIGINT/SIGTERM or kill -9 while they send.

What must hold: a stopped replay writes its Measurement marked incomplete with the reason (exit 3); no worker
outlives its master by more than a few seconds; a lost worker ends the run within seconds, naming its lane; the
nightly forwards the stop and keeps the partial Measurement; the replay child holds no keys. Bounds are generous
(a busy 2-core machine); every process started here is killed in ``finally``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from parity import measurement_json
from parity.demo.processes import running_server
from parity.replay.process import child_environment
from tests.conftest import REPLAY_LOCUSTFILE, ROOT, free_port, run_parity

BASELINE = ROOT / "baselines" / "demo.json"
LOCUST = [sys.executable, "-m", "locust", "-f", str(REPLAY_LOCUSTFILE), "--headless", "--only-summary"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server("old", seed=1) as url:
        yield url


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.1)


def _connected(pids: list[int], url: str) -> bool:
    """True when one of ``pids`` has a TCP connection to ``url``'s port (it is sending to the target)."""
    port = urllib.parse.urlsplit(url).port
    for pid in pids:
        try:
            if any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections(kind="tcp")):
                return True
        except psutil.NoSuchProcess:
            pass
    return False


def _sending(log: Path, senders: list[int], url: str) -> Callable[[], bool]:
    """True once the replay's lanes have been sending for a moment: Locust started the shape's users 2.5 s ago
    and one of ``senders`` (its worker processes, or the replay process itself) is connected to the target. On
    a busy machine a lane can take longer than that to start its first user: the connection is the evidence."""
    started: list[float] = []

    def check() -> bool:
        if not started and "Shape test updating" in log.read_text("utf-8", errors="replace"):
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] > 2.5 and _connected(senders, url)

    return check


def _gone(pids: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                pass
        return True

    return check


def _kill_all(procs: list[subprocess.Popen[bytes]], pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for proc in procs:
        proc.kill()
        proc.wait()


def _children(parent: subprocess.Popen[bytes], count: int) -> list[int]:
    """The pids of ``parent``'s ``count`` child processes, once it has started them."""
    found: list[int] = []

    def check() -> bool:
        found[:] = [child.pid for child in psutil.Process(parent.pid).children()]
        return len(found) >= count

    _wait(check, 30, f"{count} child process(es) started")
    return found


def _locust_child(parent: subprocess.Popen[bytes]) -> int:
    """The pid of ``parent``'s ``python -m locust`` child once it runs (other children, e.g. the ``git`` that
    names the harness's commit, are not it)."""
    found: list[int] = []

    def check() -> bool:
        for child in psutil.Process(parent.pid).children():
            with contextlib.suppress(psutil.Error):  # ended meanwhile
                args = child.cmdline()
                if any(a == "-m" and b == "locust" for a, b in itertools.pairwise(args)):
                    found[:] = [child.pid]
                    return True
        return False

    _wait(check, 30, "the Locust child started")
    return found[0]


def test_child_environment_keeps_no_keys() -> None:
    env = {"PATH": "/bin", "DD_API_KEY": "k", "DD_APP_KEY": "a", "DD_SITE": "datadoghq.eu", "DATADOG_API_KEY": "x",
           "GITHUB_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "s", "DB_PASSWORD": "p", "LOCUST_TLS_KEY": "k.pem",
           "PYTHONPATH": "/src", "HOME": "/root"}  # fmt: skip
    assert child_environment(env) == {"PATH": "/bin", "LOCUST_TLS_KEY": "k.pem", "PYTHONPATH": "/src", "HOME": "/root"}


def test_sigint_to_a_replay_started_with_sigint_ignored_writes_a_partial_measurement(
    server: str, tmp_path: Path
) -> None:
    """A background job of a shell starts with SIGINT ignored: the replay still stops on it, gracefully."""
    out, log = tmp_path / "run.json", tmp_path / "locust.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*LOCUST, "--host", server, "--baseline", str(BASELINE), "-t", "60s", "--parity-out", str(out)],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509 - no threads here
        )  # fmt: skip
        try:
            _wait(_sending(log, [proc.pid], server), 60, "the replay started sending")
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
        finally:
            _kill_all([proc], [])
    assert code == 3, log.read_text()[-3000:]
    m = measurement_json.read(out)
    assert m.labels["complete"] == "no"
    assert m.labels["stopped"].startswith("SIGINT after ")
    assert m.labels["stopped"].endswith(" s of 60 s")
    assert m.total_count > 0
    assert m.window.duration_s < 60
    assert m.generator is not None
    assert m.generator.sent == m.total_count + m.generator.in_flight  # every request sent is accounted for


def test_sigterm_and_kills_with_two_worker_processes(server: str, tmp_path: Path) -> None:
    """Three --processes 2 replays at once: SIGTERM to one master, kill -9 of another, kill -9 of a worker."""
    runs = {name: (tmp_path / f"{name}.json", tmp_path / f"{name}.log") for name in ("lost", "term", "kill")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    workers: dict[str, list[int]] = {}
    pids: list[int] = []

    def start(name: str) -> None:
        """Start replay ``name`` and wait until it sends (one start-up at a time: they are the CPU-hungry part)."""
        out, log = runs[name]
        port = str(free_port())  # several masters at once: each on its own port
        with log.open("wb") as sink:
            procs[name] = subprocess.Popen(
                [*LOCUST, "--host", server, "--baseline", str(BASELINE), "-t", "60s", "--rate-scale", "0.5",
                 "--processes", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                 "--master-host", "127.0.0.1", "--master-port", port, "--parity-out", str(out)],
                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        workers[name] = _children(procs[name], 2)
        pids.extend(workers[name])
        _wait(_sending(log, workers[name], server), 60, f"{name}: the replay started sending")

    try:
        start("lost")  # first: its master needs the longest to notice
        os.kill(workers["lost"][1], signal.SIGKILL)
        lost_at = time.monotonic()
        start("term")
        procs["term"].send_signal(signal.SIGTERM)
        start("kill")
        procs["kill"].kill()
        _wait(_gone(workers["kill"]), 15, "the workers of a killed master exited")
        assert procs["term"].wait(timeout=40) == 3, runs["term"][1].read_text()[-3000:]
        _wait(_gone(workers["term"]), 15, "the workers of a stopped master exited")
        assert procs["lost"].wait(timeout=40) == 3, runs["lost"][1].read_text()[-3000:]
        assert time.monotonic() - lost_at < 40  # about 15 s; Locust alone waited out the run's grace (65 s)
        _wait(_gone(workers["lost"]), 15, "the other worker of a run with a lost worker exited")
    finally:
        _kill_all(list(procs.values()), pids)
    stopped = measurement_json.read(runs["term"][0])
    assert stopped.labels["complete"] == "no"
    assert stopped.labels["stopped"].startswith("SIGTERM after ")
    assert stopped.total_count > 0
    assert stopped.generator is not None
    assert stopped.generator.sent == stopped.total_count + stopped.generator.in_flight
    assert not runs["kill"][0].exists()
    lost = measurement_json.read(runs["lost"][0])
    assert lost.labels["complete"] == "no"
    assert lost.labels["lost_lanes"] in ("0", "1")
    assert f"worker lane {lost.labels['lost_lanes']} of 2 lost" in lost.labels["stopped"]
    assert lost.total_count > 0


def _nightly_config(tmp_path: Path, target: str) -> Path:
    baseline = tmp_path / "baselines" / "demo.json"
    baseline.parent.mkdir(exist_ok=True)
    baseline.write_text(BASELINE.read_text())
    config = tmp_path / "parity.toml"
    config.write_text(
        "[nightly]\n"
        f'baseline = "{baseline}"\ntarget = "{target}"\nduration_s = 60\nmax_baseline_age_days = 36500\n'
        f'out = "{tmp_path / "nightly"}"\nhistory = "{tmp_path / "history.sqlite"}"\n'
    )
    return config


def test_nightly_refuses_a_target_off_the_allow_list_with_exit_4(tmp_path: Path) -> None:
    done = run_parity("nightly", "--config", str(_nightly_config(tmp_path, "http://parity-target.invalid:8080")))
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.startswith("parity: refused: target http://parity-target.invalid:8080 is not allow-listed")
    assert len(done.stderr.strip().splitlines()) == 1


def test_sigterm_to_nightly_keeps_the_partial_replay_and_leaves_no_locust(server: str, tmp_path: Path) -> None:
    """The replay child gets the stop, writes its partial Measurement, and holds no Datadog key meanwhile."""
    config = _nightly_config(tmp_path, server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env |= {"DD_API_KEY": "dd-api-secret-1234", "DD_APP_KEY": "dd-app-secret-5678", "DD_SITE": "datadoghq.eu"}
    nightly = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "nightly", "--config", str(config)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    locust: list[int] = []
    try:
        locust = [_locust_child(nightly)]
        environ = Path(f"/proc/{locust[0]}/environ").read_bytes()
        assert b"DD_" not in environ
        assert b"secret" not in environ
        (night,) = (tmp_path / "nightly").iterdir()
        _wait(_sending(night / "locust.log", locust, server), 60, "the replay started sending")
        nightly.send_signal(signal.SIGTERM)
        stdout, stderr = nightly.communicate(timeout=60)
    finally:
        _kill_all([nightly], locust)
    assert nightly.returncode == 128 + signal.SIGTERM, (stdout + stderr).decode()[-3000:]
    assert not psutil.pid_exists(locust[0]) or psutil.Process(locust[0]).status() == psutil.STATUS_ZOMBIE
    m = measurement_json.read(night / "candidate.measurement.json")
    assert m.labels["complete"] == "no"
    assert m.labels["stopped"].startswith("SIGTERM after ")
    assert m.total_count > 0
    summary = (night / "nightly.json").read_text()
    assert '"interrupted": "SIGTERM"' in summary
    assert '"replay": "incomplete"' in summary
    assert (night / "locust.log").is_file()
    assert (night / "index.html").is_file()

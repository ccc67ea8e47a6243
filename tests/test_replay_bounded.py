"""The replay's send path against real misbehaving targets and a real Locust web UI: total request deadlines, the
response-size cap, no redirect followed, every request sent accounted for, and the allow-list holding when the
host comes from the web UI's start form."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from parity import measurement_json
from parity.model import Endpoint, EndpointStats, Measurement, RequestTemplate, Source, SourceKind, Window
from tests.conftest import REPLAY_LOCUSTFILE, ROOT, T0
from tests.fakes.misbehaving_server import CountingListener, misbehaving_server

pytestmark = pytest.mark.e2e

PATHS = ("/trickle", "/slow-headers", "/endless", "/redirect", "/ok")
MISBEHAVING = ("/trickle", "/slow-headers", "/endless")
#: A TEST-NET-1 address (RFC 5737): never routed, never allow-listed; the refusal comes before any connection.
OFF_BOX = "http://192.0.2.1"


def _baseline(path: Path) -> Path:
    """Two requests per second on each of PATHS over a one-minute window."""
    endpoints = tuple(
        EndpointStats(Endpoint("GET", p), count=120, errors=0, request=RequestTemplate(path=p)) for p in PATHS
    )
    m = Measurement(
        source=Source(SourceKind.SYNTHETIC, "misbehaving targets"),
        window=Window(T0, T0 + timedelta(seconds=60)),
        endpoints=endpoints,
    )
    return measurement_json.write(m, path)


def _locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(REPLAY_LOCUSTFILE), *args]


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_misbehaving_targets_give_errors_bounded_memory_and_every_request_accounted_for(tmp_path: Path) -> None:
    """Trickling body, headers after 10 s, endless chunked body and a redirect off the target, in one short run:
    each misbehaviour is an error within the total deadline, memory stays bounded, the redirect is the answer and
    nothing reaches where it points, and sent = recorded + in flight exactly."""
    out = tmp_path / "run.json"
    baseline = _baseline(tmp_path / "baseline.json")
    elsewhere = CountingListener()
    try:
        with misbehaving_server(redirect_to=f"http://127.0.0.1:{elsewhere.port}/moved") as server:
            proc = subprocess.Popen(
                _locust("--headless", "--only-summary", "--host", server.url, "--baseline", str(baseline),
                        "-t", "3s", "--request-timeout", "1.5", "--max-response-bytes", "1000000",
                        "--parity-out", str(out)),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                peak_rss, watched = 0, psutil.Process(proc.pid)
                deadline = time.monotonic() + 60
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        peak_rss = max(peak_rss, watched.memory_info().rss)
                    except psutil.NoSuchProcess:
                        break
                    time.sleep(0.1)
                stdout, stderr = proc.communicate(timeout=30)
            finally:
                proc.kill()
                proc.wait()
    finally:
        elsewhere.close()
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    m = measurement_json.read(out)
    by = m.by_key()
    for path in MISBEHAVING:
        e = by[f"GET {path}"]
        assert e.count >= 2, (path, e)
        assert e.errors == e.count, (path, e)  # every one an error: none vanished, none "answered" late
        assert e.latency is None  # no whole response: no latency
    redirect = by["GET /redirect"]
    assert redirect.count >= 2
    assert redirect.errors == 0  # the 302 is the answer
    assert redirect.latency is not None
    assert elsewhere.connections == 0  # and nothing went where it pointed
    assert by["GET /ok"].errors == 0
    g = m.generator
    assert g is not None
    assert g.sent == m.total_count + g.in_flight
    assert g.sent >= 10
    output = stdout + stderr
    assert "RequestTimeout" in output
    assert "ResponseTooLarge" in output
    # reading endless bodies is capped (the uncapped read grew the generator to 2.3 GB)
    assert peak_rss < 400 * 1024 * 1024, f"peak RSS {peak_rss / 2**20:.0f} MiB"


def _listening_ips(pid: int, port: int) -> set[str]:
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


@contextmanager
def _web_ui(host: str, out: Path, stats: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A replay in Locust's web UI mode (no --headless, no --web-host), once it listens: (process, UI URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        _locust("--web-port", str(port), "--host", host, "--baseline", "baselines/demo.json", "-t", "2s",
                "--request-timeout", "1", "--parity-out", str(out), "--json-file", str(stats)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _listening_ips(proc.pid, port):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the web UI did not start listening"
            time.sleep(0.1)
        assert _listening_ips(proc.pid, port) == {"127.0.0.1"}  # loopback only, not every interface
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _start(ui: str, host: str) -> None:
    """Start a test from the web UI's form, with ``host`` in its host field."""
    form = urllib.parse.urlencode({"user_count": "1", "spawn_rate": "1", "host": host}).encode()
    with urllib.request.urlopen(f"{ui}/swarm", data=form, timeout=10) as answer:
        assert json.loads(answer.read())["success"] is True


def _refused_exit(proc: subprocess.Popen[str]) -> str:
    """Wait (bounded) for the refused process to exit 4, watching that it never connects off the box; its stderr."""
    attempted: set[str] = set()
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            attempted |= {c.raddr.ip for c in psutil.Process(proc.pid).net_connections(kind="tcp") if c.raddr}
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 4, stderr[-3000:]
    assert "192.0.2.1" not in attempted
    refused = [line for line in stderr.splitlines() if "parity: refused:" in line]
    assert len(refused) == 1, stderr[-3000:]
    assert refused[0].endswith(f"parity: refused: target {OFF_BOX} is not allow-listed: only loopback unless "
                               "--allow-host or [replay] allow_hosts in parity.toml names it")  # fmt: skip
    assert "Traceback" not in stderr
    return stderr


def test_web_ui_binds_loopback_and_a_start_form_host_off_the_allow_list_sends_nothing(tmp_path: Path) -> None:
    """Without --headless, Locust's web UI listens on 127.0.0.1 only; a start from its form with a host that is
    not allow-listed is refused before any connection: exit 4, one line, zero requests in Locust's stats, no
    Measurement."""
    out, stats = tmp_path / "run.json", tmp_path / "stats"
    with _web_ui("http://127.0.0.1:9", out, stats) as (proc, ui):
        _start(ui, OFF_BOX)
        _refused_exit(proc)
    assert sum(row["num_requests"] for row in json.loads(Path(f"{stats}.json").read_text())) == 0
    assert not out.exists()


def test_a_second_web_ui_start_with_another_host_is_refused_and_the_first_run_is_kept(tmp_path: Path) -> None:
    """A first start from the web UI replays against the allowed loopback target; a second start whose form
    names a host off the allow-list is refused (exit 4, nothing sent there) and the first run's Measurement is
    still written."""
    out, stats = tmp_path / "run.json", tmp_path / "stats"
    with misbehaving_server() as server, _web_ui(server.url, out, stats) as (proc, ui):
        _start(ui, server.url)
        deadline = time.monotonic() + 30
        # each web-UI run writes its Measurement when it ends (Locust's own state can still read "stopped" just
        # after a Start, before the run begins: a second Start then would land in the middle of the first run)
        while not out.exists():
            assert time.monotonic() < deadline, "the first run did not end"
            time.sleep(0.2)
        _start(ui, OFF_BOX)
        _refused_exit(proc)
        received = server.requests
    m = measurement_json.read(out)
    assert m.total_count == received > 0
    assert m.source.target == server.url
    assert m.generator is not None
    assert m.generator.sent == m.total_count + m.generator.in_flight

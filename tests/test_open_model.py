"""Open-model pacing end to end: a target that stalls for a second. The replay keeps its schedule, so
requests queue behind the stall; latency from the planned send time shows the stall, service time hides it
(coordinated omission)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from parity import measurement_json
from parity.model import Endpoint, EndpointStats, LatencyDistribution, Measurement, Source, SourceKind, Window
from tests.conftest import T0, run_replay

pytestmark = pytest.mark.e2e

#: Seconds after the target's first request when it stalls, and for how long.
STALL_AT_S, STALL_S = 1.5, 1.0

SERVER = f"""
import socket, sys, time
import gevent
from gevent.pywsgi import WSGIServer
first = []
def app(environ, start_response):
    now = time.monotonic()
    first.append(now) if not first else None
    stall_from = first[0] + {STALL_AT_S}
    if stall_from <= now < stall_from + {STALL_S}:
        gevent.sleep(stall_from + {STALL_S} - now)
    gevent.sleep(0.002)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
class Server(WSGIServer):
    def handle(self, sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle(sock, address)
server = Server(("127.0.0.1", 0), app, log=None)
server.start()
print(f"listening on http://127.0.0.1:{{server.server_port}}", flush=True)
gevent.sleep(60)
"""


@contextmanager
def _serving(code: str) -> Iterator[str]:
    """A gevent WSGI server from ``code`` in a child process; yields its URL (it prints "listening on URL")."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def stalling_target() -> Iterator[str]:
    with _serving(SERVER) as url:
        yield url


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_intended_time_latency_shows_a_stall_that_service_time_hides(stalling_target: str, tmp_path: Path) -> None:
    baseline = Measurement(
        source=Source(SourceKind.SYNTHETIC),
        window=Window(T0, T0 + timedelta(seconds=60)),
        endpoints=(EndpointStats(Endpoint("GET", "/x"), count=6000, errors=0),),  # 100 req/s, no timeline
    )
    path = measurement_json.write(baseline, tmp_path / "baseline.json")
    out = tmp_path / "run.json"
    done = run_replay("--host", stalling_target, "--baseline", str(path), "-t", "5s", "--max-in-flight", "2",
                      "--parity-out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    e = measurement_json.read(out).endpoints[0]
    assert isinstance(e.latency, LatencyDistribution)
    assert isinstance(e.intended, LatencyDistribution)
    assert e.count > 300
    service_p99, intended_p99 = e.latency.quantile(0.99) or 0, e.intended.quantile(0.99) or 0
    # two requests hang in the stall; the ~100 queued behind them are served fast once it ends
    assert service_p99 < 200
    assert intended_p99 > 600
    assert (e.intended.quantile(0.5) or 0) >= (e.latency.quantile(0.5) or 0)


ROUTING_SERVER = """
import gevent
from gevent.pywsgi import WSGIServer
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/base/ok":
        status, headers = "200 OK", []
    elif path == "/base/fail":
        status, headers = "503 Service Unavailable", []
    elif path == "/base/moved":
        status, headers = "302 Found", [("Location", "/elsewhere")]
    else:  # the prefix was dropped, or a redirect was followed
        status, headers = "500 Internal Server Error", []
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "2"), *headers])
    return [b"ok"]
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
gevent.sleep(60)
"""


@pytest.fixture
def routing_target() -> Iterator[str]:
    with _serving(ROUTING_SERVER) as url:
        yield url


def _three_endpoints(tmp_path: Path) -> Path:
    endpoints = tuple(
        EndpointStats(Endpoint("GET", f"/{name}"), count=3600, errors=0) for name in ("ok", "fail", "moved")
    )
    baseline = Measurement(Source(SourceKind.SYNTHETIC), Window(T0, T0 + timedelta(seconds=60)), endpoints)
    return measurement_json.write(baseline, tmp_path / "baseline.json")


def test_sends_keep_the_base_path_count_5xx_as_errors_and_do_not_follow_redirects(
    routing_target: str, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    done = run_replay("--host", f"{routing_target}/base/", "--baseline", str(_three_endpoints(tmp_path)), "-t", "2s",
                      "--parity-out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    by = measurement_json.read(out).by_key()
    assert by["GET /ok"].count > 60  # 60 req/s each: ~120 expected
    assert by["GET /ok"].errors == 0  # sent under /base/: anything else answers 500
    assert by["GET /fail"].errors == by["GET /fail"].count > 60  # 503 is an error
    assert by["GET /moved"].errors == 0  # the 302 is the answer: /elsewhere (500) was never asked


def test_a_refused_connection_is_an_error_for_every_request(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    done = run_replay("--host", "http://127.0.0.1:9", "--baseline", str(_three_endpoints(tmp_path)), "-t", "2s",
                      "--parity-out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    m = measurement_json.read(out)
    assert m.total_count > 180
    assert all(e.errors == e.count for e in m.endpoints)


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_over_capacity_the_rest_of_the_schedule_is_counted_unsent(stalling_target: str, tmp_path: Path) -> None:
    baseline = Measurement(
        source=Source(SourceKind.SYNTHETIC),
        window=Window(T0, T0 + timedelta(seconds=60)),
        endpoints=(EndpointStats(Endpoint("GET", "/x"), count=120_000, errors=0),),  # 2,000 req/s
    )
    path = measurement_json.write(baseline, tmp_path / "baseline.json")
    out = tmp_path / "run.json"
    # one request in flight against a target that takes >= 2 ms (and stalls 1 s): at most ~500 req/s
    done = run_replay("--host", stalling_target, "--baseline", str(path), "-t", "3s", "--max-in-flight", "1",
                      "--parity-out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    m = measurement_json.read(out)
    g = m.generator
    assert g is not None
    assert g.sent == m.total_count  # every request handed to a sender was recorded
    assert g.unsent > 2000  # most of the schedule could not start before the run's end
    planned = g.sent + g.unsent + g.dropped
    assert abs(planned - 6000) < 4 * 6000**0.5  # the whole schedule is accounted for (Poisson around 6,000)
    assert "could not send" in done.stderr

"""The demo server as a real process on loopback: routes, statistics, CLI behaviour, planted bottlenecks.

The planted bottlenecks are checked through the server's own accounting (``/__demo/stats``: CPU-throttled ms,
pool waits), which does not depend on how fast or busy the machine is; the one latency check compares medians
of the ``old`` and ``new`` profiles measured interleaved in the same test with a wide margin.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import selectors
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from parity.demo.catalog import CATALOG, NEW, OLD, PAYROLL_N_PLUS_ONE, DemoEndpoint
from parity.demo.processes import (
    LISTENING_PREFIX,
    Service,
    child_env,
    fetch_stats,
    running_server,
    running_servers,
    server_command,
    stop_process,
)
from parity.demo.server import (
    EXPORT_HEADER,
    INJECTED_ERROR,
    CpuQuota,
    CpuWorker,
    export_csv,
    is_loopback,
    parse_added_latency,
    render_export_rows,
    request_cost,
)

#: Timeout of one HTTP request from the tests, in seconds.
REQUEST_TIMEOUT_S = 30.0
#: Seconds a server process started by a test gets to print its listening line or to exit.
PROCESS_TIMEOUT_S = 20.0
#: Attempts per request when the server injects one of the endpoint's ``error_rate`` failures.
MAX_ATTEMPTS = 3

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Reply:
    """One response as the test client saw it; ``elapsed_ms`` from send to last body byte."""

    status: int
    body: bytes
    content_type: str
    elapsed_ms: float

    def json(self) -> Any:
        return json.loads(self.body)


def send(base_url: str, method: str, target: str, body: Any = None) -> Reply:
    """Send one request on a fresh connection (no proxy, no retries)."""
    url = urlsplit(base_url)
    assert url.hostname is not None
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT_S)
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    try:
        started = time.perf_counter()
        connection.request(method, target, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return Reply(response.status, payload, response.getheader("Content-Type", ""), elapsed_ms)
    finally:
        connection.close()


def fill(template: Any, values: Mapping[str, str]) -> Any:
    """``template`` with every ``{name}`` replaced by ``values[name]`` (recursively in dicts and lists)."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    return template


def first_values(endpoint: DemoEndpoint) -> dict[str, str]:
    """The first value of each of the endpoint's parameter pools."""
    return {name: pool[0] for name, pool in endpoint.params.items()}


def target_of(endpoint: DemoEndpoint, values: Mapping[str, str]) -> str:
    """Path and query string of the endpoint's request template, filled from ``values``."""
    path = fill(endpoint.route, values)
    query = {name: fill(value, values) for name, value in endpoint.query.items()}
    return f"{path}?{urlencode(query)}" if query else str(path)


def endpoint_named(resource: str) -> DemoEndpoint:
    return next(endpoint for endpoint in CATALOG if endpoint.resource == resource)


def send_until_not_injected(base_url: str, method: str, target: str, body: Any = None) -> list[Reply]:
    """Send until a reply is not an injected ``error_rate`` failure (at most ``MAX_ATTEMPTS`` times)."""
    replies: list[Reply] = []
    for _ in range(MAX_ATTEMPTS):
        reply = send(base_url, method, target, body)
        replies.append(reply)
        if not (reply.status == 500 and reply.json().get("error") == INJECTED_ERROR):
            break
    return replies


def assert_worked(replies: list[Reply]) -> None:
    """Every reply is a success or an injected failure that happened after the work (not a pool timeout)."""
    for reply in replies:
        assert reply.status < 300 or reply.json() == {"error": INJECTED_ERROR}, reply


@pytest.fixture(scope="module")
def old_server() -> Iterator[str]:
    with running_server("old") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def new_server() -> Iterator[str]:
    with running_server("new") as base_url:
        yield base_url


def wait_listening(proc: subprocess.Popen[str], timeout_s: float = PROCESS_TIMEOUT_S) -> str:
    """The base URL a server started by the test announces on stdout."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), "server printed nothing"
    line = proc.stdout.readline()
    assert line.startswith(LISTENING_PREFIX), line
    return line[len(LISTENING_PREFIX) :].strip()


# ------------------------------------------------------------------------------- pure parts, in-process


@dataclass
class FakeClock:
    """A clock in seconds that only moves when something sleeps or runs."""

    now_s: float = 0.0

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds


def test_cpu_quota_throttles_until_the_next_period() -> None:
    # Binary fractions keep the arithmetic exact: period 1/8 s, quota 1/4 of it = 1/32 s, chunks 1/256 s.
    clock = FakeClock(now_s=10.0)  # a period boundary
    quota = CpuQuota(0.25, period_s=0.125, clock=clock, sleep=clock.sleep)
    slept = []
    for _ in range(16):
        clock.now_s += 1 / 256  # the chunk ran
        slept.append(quota.charge(1 / 256))
    # 8 chunks use up the first period's quota, then wait for its end; the same in the second period.
    assert slept == ([0.0] * 7 + [0.125 - 8 / 256]) * 2
    assert clock.now_s == 10.25


def test_cpu_quota_carries_an_overrun_into_the_next_period() -> None:
    clock = FakeClock(now_s=5.0)
    quota = CpuQuota(0.25, period_s=0.125, clock=clock, sleep=clock.sleep)  # 1/32 s per period
    clock.now_s += 3 / 64
    assert quota.charge(3 / 64) == 0.125 - 3 / 64  # 1/64 s over the quota: the next period has 1/64 left
    clock.now_s += 1 / 128
    assert quota.charge(1 / 128) == 0.0
    clock.now_s += 1 / 128
    assert quota.charge(1 / 128) == 0.125 - 1 / 64


def test_cpu_quota_without_a_limit_never_sleeps() -> None:
    clock = FakeClock()
    quota = CpuQuota(None, clock=clock, sleep=clock.sleep)
    assert all(quota.charge(1.0) == 0.0 for _ in range(5))
    with pytest.raises(ValueError, match="positive"):
        CpuQuota(0.0)


def test_cpu_worker_charges_simulated_cpu_to_the_quota() -> None:
    # The worker waits out each chunk's CPU time (nothing computed) and charges it: the same throttling as above.
    clock = FakeClock(now_s=10.0)
    quota = CpuQuota(0.25, period_s=0.125, clock=clock, sleep=clock.sleep)
    worker = CpuWorker(quota, clock=clock, sleep=clock.sleep)
    throttled = [worker.run(1 / 256) for _ in range(16)]
    assert throttled == ([0.0] * 7 + [0.125 - 8 / 256]) * 2
    assert clock.now_s == 10.25
    unlimited_clock = FakeClock(now_s=3.0)
    unlimited = CpuWorker(CpuQuota(None), clock=unlimited_clock, sleep=unlimited_clock.sleep)
    assert [unlimited.run(0.5) for _ in range(4)] == [0.0] * 4
    assert unlimited_clock.now_s == 5.0  # one core: the chunks ran one after the other


def test_export_body_is_rendered_once_and_filled_per_department() -> None:
    body = export_csv("d7", 250)
    assert body == (EXPORT_HEADER + render_export_rows("d7", 0, 250)).encode()
    assert export_csv("d7", 250) is body  # cached
    odd = export_csv("Sales, Tokyo", 3).decode()  # not cacheable: rendered, and CSV-quoted like any field
    assert '"Sales, Tokyo"' in odd
    assert len(odd.splitlines()) == 4


def test_added_latency_specs() -> None:
    assert parse_added_latency(["GET /api/employees/{id}=30", "GET /health=2.5", "GET /health=1"]) == [
        {"GET /api/employees/{id}": 30.0, "GET /health": 3.5}
    ]
    assert parse_added_latency(["2:GET /health=5", "GET /api/departments=1"], services=3) == [
        {"GET /api/departments": 1.0},
        {"GET /health": 5.0, "GET /api/departments": 1.0},
        {"GET /api/departments": 1.0},
    ]
    for spec, message in (
        ("GET /nope=3", "no endpoint 'GET /nope'"),
        ("GET /health", "expected 'METHOD ROUTE=MS'"),
        ("GET /health=-1", "milliseconds >= 0"),
        ("GET /health=soon", "milliseconds >= 0"),
        ("3:GET /health=1", "there is no service 3 (1..2)"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_added_latency([spec], services=2)


def test_request_cost_is_deterministic_and_ignores_query_order() -> None:
    endpoint = endpoint_named("EmployeesController#index")
    first = request_cost(endpoint, "/api/employees", "page=3&per_page=50", b"")
    assert request_cost(endpoint, "/api/employees", "per_page=50&page=3", b"") == first
    assert request_cost(endpoint, "/api/employees", "page=4&per_page=50", b"") != first
    assert len(first.query_factors) == endpoint.cost.queries
    factors = [request_cost(endpoint, "/api/employees", f"page={p}", b"").factor for p in range(400)]
    assert statistics.median(factors) == pytest.approx(1.0, abs=0.1)  # lognormal with median 1


# ------------------------------------------------------------------------------------------- routes


def test_every_endpoint_answers_2xx_and_stats_count_exactly() -> None:
    sent: Counter[str] = Counter()
    with running_server("old", seed=7) as base_url:
        for endpoint in CATALOG:
            values = first_values(endpoint)
            replies = send_until_not_injected(
                base_url, endpoint.method, target_of(endpoint, values), fill(endpoint.body, values)
            )
            sent[endpoint.key] += len(replies)
            reply = replies[-1]
            assert 200 <= reply.status < 300, (endpoint.key, reply)
            if endpoint.cost.cpu_rows:
                assert reply.content_type.startswith("text/csv")
                lines = reply.body.decode().splitlines()
                assert len(lines) == endpoint.cost.cpu_rows + 1  # header + rows
            else:
                assert reply.content_type == "application/json"
                assert isinstance(reply.json(), dict)
        # Not counted: unknown routes, wrong methods, the statistics endpoint itself.
        assert send(base_url, "GET", "/api/nope").status == 404
        assert send(base_url, "DELETE", "/api/employees/1001").status == 405
        fetch_stats(base_url)
        for _ in range(3):  # a few more of one endpoint
            sent["GET /api/employees/{id}"] += 1
            assert send(base_url, "GET", "/api/employees/1008").status == 200
        stats = fetch_stats(base_url)
    assert stats["profile"] == "old"
    assert stats["requests"] == dict(sent)
    assert stats["total"] == sum(sent.values())


def test_response_bodies_are_filled_from_the_request(old_server: str) -> None:
    employee = send(old_server, "GET", "/api/employees/1008").json()
    assert employee["id"] == 1008
    assert {"name", "email", "department_id"} <= employee.keys()
    page = send(old_server, "GET", "/api/employees?page=2&per_page=50").json()
    assert page["page"] == 2
    assert len(page["employees"]) == 50
    updated = send(old_server, "PATCH", "/api/employees/1008", {"employee": {"phone": "+81-3-5550-0042"}})
    assert updated.json()["phone"] == "+81-3-5550-0042"
    assert send(old_server, "GET", "/health").json() == {"status": "ok"}


def test_unknown_route_is_404_and_wrong_method_405(old_server: str) -> None:
    unknown = send(old_server, "GET", "/api/does-not-exist")
    assert unknown.status == 404
    assert unknown.content_type == "application/json"
    assert "error" in unknown.json()
    wrong = send(old_server, "DELETE", "/api/employees/1001")
    assert wrong.status == 405
    assert wrong.json()["allow"] == "GET, PATCH"


def test_keep_alive_responses_are_not_delayed(old_server: str) -> None:
    # Nagle's algorithm + delayed ACK would add ~40 ms to every keep-alive response after the first.
    url = urlsplit(old_server)
    assert url.hostname is not None
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT_S)
    latencies = []
    try:
        for _ in range(20):
            started = time.perf_counter()
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            latencies.append((time.perf_counter() - started) * 1000.0)
    finally:
        connection.close()
    assert statistics.median(latencies) < 20.0, latencies


def test_invalid_json_body_is_400(old_server: str) -> None:
    url = urlsplit(old_server)
    assert url.hostname is not None
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request("POST", "/api/session", body=b"{not json", headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 400
        assert "error" in json.loads(response.read())
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "192.168.1.20", "example.com"])
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3"])
def test_non_loopback_host_is_refused(host: str) -> None:
    done = subprocess.run(
        server_command("old", host=host),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    message = done.stderr.strip().splitlines()
    assert len(message) == 1, done.stderr
    assert host in message[0]
    assert "loopback" in message[0]


def test_unknown_added_latency_endpoint_is_refused_with_one_line() -> None:
    done = subprocess.run(
        [*server_command("old"), "--add-latency", "GET /api/nothing=30"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "GET /api/nothing" in done.stderr


def test_one_process_serves_several_services_and_adds_latency_to_one() -> None:
    added = {"GET /api/employees/{id}": 300.0}
    services = [Service("old"), Service("new"), Service("old", added)]
    with running_servers(services) as urls:
        assert len(set(urls)) == 3
        slow = send(urls[2], "GET", "/api/employees/1008")
        plain = send(urls[0], "GET", "/api/employees/1008")
        stats = [fetch_stats(url) for url in urls]
    assert slow.status == plain.status == 200
    assert slow.elapsed_ms >= 300.0  # a lower bound: holds however busy the machine is
    assert [s["profile"] for s in stats] == ["old", "new", "old"]
    assert [s["added_latency_ms"] for s in stats] == [{}, {}, added]
    assert [s["total"] for s in stats] == [1, 0, 1]  # each service counts its own requests
    assert stats[2]["endpoints"]["GET /api/employees/{id}"]["requests"] == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_cleanly(signum: signal.Signals) -> None:
    proc = subprocess.Popen(
        server_command("new"),
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = wait_listening(proc)
        assert send(base_url, "GET", "/health").status == 200
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        assert proc.returncode == 0
        assert "Traceback" not in stderr
    finally:
        stop_process(proc)


def test_running_server_reports_a_failed_start() -> None:
    with pytest.raises(RuntimeError, match="invalid choice"), running_server("no-such-profile"):
        pass


def test_running_server_stops_the_child_on_error() -> None:
    urls: list[str] = []

    def serve_then_fail() -> None:
        with running_server("old") as base_url:
            urls.append(base_url)
            assert send(base_url, "GET", "/health").status == 200
            raise KeyError(base_url)

    with pytest.raises(KeyError):
        serve_then_fail()
    with pytest.raises(ConnectionRefusedError):
        send(urls[0], "GET", "/health")


# ------------------------------------------------------------------------------ costs and bottlenecks


def test_unchanged_endpoint_costs_the_same(old_server: str, new_server: str) -> None:
    """An endpoint the profiles do not change costs the same on both: neither profile makes it wait for a pool
    connection or a CPU limit — the server's own accounting, not latencies (which a busy machine bends) — and
    the profiles differ in nothing else that could touch it."""
    endpoint = endpoint_named("EmployeesController#show")
    key = endpoint.key
    before = {url: fetch_stats(url)["endpoints"].get(key, {}) for url in (old_server, new_server)}
    sent = 0
    for employee_id in endpoint.params["id"][:30]:
        target = target_of(endpoint, {"id": employee_id})
        for base_url in (old_server, new_server):
            replies = send_until_not_injected(base_url, "GET", target)
            assert_worked(replies)
        sent += 1
    after = {url: fetch_stats(url)["endpoints"][key] for url in (old_server, new_server)}
    for url in (old_server, new_server):
        account = {k: after[url][k] - before[url].get(k, 0) for k in after[url]}
        assert account["requests"] >= sent  # (an injected error is retried: one or more per target)
        assert account["pool_waits"] == 0, account
        assert account["pool_wait_ms"] == 0, account
        assert account["cpu_throttled_ms"] == 0, account
    # the profiles differ only in the two planted mechanisms: the payroll calculation's N+1 and the export's CPU limit
    unplanted = dataclasses.replace(
        NEW,
        name=OLD.name,
        description=OLD.description,
        n_plus_one=OLD.n_plus_one,
        export_cpu_quota=OLD.export_cpu_quota,
    )
    assert unplanted == OLD
    assert dict(NEW.n_plus_one) == {"PayrollCalculationsController#create": PAYROLL_N_PLUS_ONE}
    assert not OLD.n_plus_one


def concurrent_latencies(base_url: str, method: str, target: str, body: Any, n: int) -> list[Reply]:
    """Send ``n`` copies of one request at once (released together by a barrier)."""
    barrier = threading.Barrier(n, timeout=REQUEST_TIMEOUT_S)

    def one(_: int) -> Reply:
        barrier.wait()
        return send(base_url, method, target, body)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_payroll_n_plus_one_bottleneck(old_server: str, new_server: str) -> None:
    # The same calculation 6 times at once: new runs PAYROLL_N_PLUS_ONE more queries per calculation (N+1: 3x old's
    # 8), on the same pool of 16 connections, so neither side waits for one: the time goes into the queries.
    endpoint = endpoint_named("PayrollCalculationsController#create")
    values = first_values(endpoint)
    target, body = target_of(endpoint, values), fill(endpoint.body, values)
    key = endpoint.key
    before = {url: fetch_stats(url)["endpoints"].get(key, {}) for url in (old_server, new_server)}
    old = concurrent_latencies(old_server, endpoint.method, target, body, 6)
    new = concurrent_latencies(new_server, endpoint.method, target, body, 6)
    assert_worked(old + new)
    after = {url: fetch_stats(url)["endpoints"][key] for url in (old_server, new_server)}

    def grew(url: str, field: str) -> float:
        return float(after[url][field]) - float(before[url].get(field, 0))

    assert grew(old_server, "requests") == grew(new_server, "requests") == 6
    assert grew(old_server, "queries") == 6 * endpoint.cost.queries
    assert grew(new_server, "queries") == 6 * (endpoint.cost.queries + PAYROLL_N_PLUS_ONE)
    assert grew(old_server, "pool_waits") == grew(new_server, "pool_waits") == 0  # 6 at once, 16 connections


def test_export_cpu_quota_bottleneck(old_server: str, new_server: str) -> None:
    # Every export needs ~40 ms of CPU; new's limit allows 25 ms per 100 ms period, so each export is throttled
    # (whatever else the machine does); old has no limit and never is. Both charge the same CPU.
    endpoint = endpoint_named("ReportsController#export")
    key = endpoint.key
    departments = endpoint.params["department"][:4]
    before = {url: fetch_stats(url)["endpoints"].get(key, {}) for url in (old_server, new_server)}
    targets = [target_of(endpoint, {"department": d}) for d in departments]
    replies = [send(url, "GET", target) for target in targets for url in (old_server, new_server)]
    assert_worked(replies)
    after = {url: fetch_stats(url)["endpoints"][key] for url in (old_server, new_server)}

    def grew(url: str, field: str) -> float:
        return float(after[url][field]) - float(before[url].get(field, 0))

    assert grew(old_server, "requests") == grew(new_server, "requests") == len(departments)
    assert grew(old_server, "cpu_ms") == pytest.approx(grew(new_server, "cpu_ms"), rel=0.2)  # jitter differs
    assert grew(old_server, "cpu_ms") > 20 * len(departments)
    assert grew(old_server, "cpu_throttled_ms") == 0
    assert grew(new_server, "cpu_throttled_ms") > 0
    for reply in replies:
        if reply.status == 200:
            assert reply.content_type.startswith("text/csv")
            assert len(reply.body.decode().splitlines()) == endpoint.cost.cpu_rows + 1

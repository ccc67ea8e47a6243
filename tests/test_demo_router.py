"""parity.demo.router: the weighted reverse proxy of the cutover demo, with real upstream servers on loopback and
its weights read from moto's Route 53 (parity.demo.dns) through Route53Shifter.read."""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from parity.cutover.model import ShiftError
from parity.demo.dns import DemoDns
from parity.demo.router import UPSTREAM_HEADER, WeightedRouter
from tests.conftest import free_port


class Upstream:
    """A loopback HTTP server that answers ``NAME METHOD PATH BODY`` and counts its requests."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes (see parity.demo.router)

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                upstream.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                data = f"{upstream.name} {self.command} {self.path} {body}".encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Upstream-Seen-Host", self.headers.get("Host", ""))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    old, new = Upstream("old"), Upstream("new")
    try:
        yield old, new
    finally:
        old.close()
        new.close()


def _send(router: WeightedRouter, n: int) -> Counter[str]:
    """``n`` GETs over one kept-alive connection; the upstream each answer names (body and header agree)."""
    seen: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", int(router.url.rsplit(":", 1)[1]), timeout=30)
    try:
        for i in range(n):
            conn.request("GET", f"/api/x?i={i}")
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == 200
            assert body.split()[0] == response.getheader(UPSTREAM_HEADER)
            seen[body.split()[0]] += 1
    finally:
        conn.close()
    return seen


def _within(count: int, n: int, weight_pct: float) -> bool:
    """``count`` of ``n`` within 5 binomial standard deviations of ``n × weight``."""
    p = weight_pct / 100
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def test_split_follows_the_weight_and_requests_pass_intact(upstreams: tuple[Upstream, Upstream]) -> None:
    old, new = upstreams
    with WeightedRouter(old.url, new.url, lambda: 20.0, poll_s=3600, seed=7) as router:
        seen = _send(router, 600)
        assert _within(seen["new"], 600, 20.0), seen
        assert (seen["old"], seen["new"]) == (old.hits, new.hits)
        counts = router.counts()
        assert (counts.old, counts.new, counts.errors) == (old.hits, new.hits, 0)
        conn = http.client.HTTPConnection("127.0.0.1", int(router.url.rsplit(":", 1)[1]), timeout=30)
        try:
            conn.request(
                "POST", "/api/employees", body=b'{"name": "Ada"}', headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            side, method, path, body = response.read().decode().split(" ", 3)
        finally:
            conn.close()
        assert (response.status, method, path, body) == (201, "POST", "/api/employees", '{"name": "Ada"}')
        assert response.getheader(UPSTREAM_HEADER) == side


def test_zero_and_hundred_send_everything_one_way(upstreams: tuple[Upstream, Upstream]) -> None:
    old, new = upstreams
    weight = [0.0]
    with WeightedRouter(old.url, new.url, lambda: weight[0], poll_s=3600) as router:
        assert _send(router, 200) == Counter(old=200)
        weight[0] = 100.0
        router.refresh()
        assert _send(router, 200) == Counter(new=200)


def test_weights_polled_from_route53_with_a_resolver_ttl(upstreams: tuple[Upstream, Upstream]) -> None:
    old, new = upstreams
    with DemoDns() as dns:
        shifter = dns.shifter(poll_s=0.01)
        with WeightedRouter(old.url, new.url, dns.shifter().read, poll_s=0.1, seed=3) as router:
            assert router.weight_pct == 0.0
            shifter.apply(50)
            deadline = time.monotonic() + 30
            while router.weight_pct != 50.0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert router.weight_pct == 50.0
            seen = _send(router, 300)
            assert _within(seen["new"], 300, 50.0), seen

        now = [0.0]
        cached = WeightedRouter(old.url, new.url, shifter.read, poll_s=3600, ttl_s=10, clock=lambda: now[0])
        with cached:
            shifter.apply(10)
            now[0] = 9.0
            cached.refresh()
            assert cached.weight_pct == 50.0  # the resolver's answer is still fresh
            now[0] = 10.0
            cached.refresh()
            assert cached.weight_pct == 10.0
            assert cached.counts().polls == 2


def test_failed_reads_keep_the_weight_and_a_dead_upstream_is_a_502(upstreams: tuple[Upstream, Upstream]) -> None:
    old, _ = upstreams
    answers: list[float | Exception] = [100.0, ShiftError("Throttling"), OSError("refused")]

    def read() -> float | None:
        answer = answers.pop(0) if answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    dead = f"http://127.0.0.1:{free_port()}"
    with WeightedRouter(old.url, dead, read, poll_s=3600) as router:
        router.refresh()
        router.refresh()
        router.refresh()  # None: unknown, kept
        assert router.weight_pct == 100.0
        counts = router.counts()
        assert (counts.polls, counts.poll_failures) == (4, 2)
        conn = http.client.HTTPConnection("127.0.0.1", int(router.url.rsplit(":", 1)[1]), timeout=30)
        try:
            conn.request("GET", "/api/x")
            response = conn.getresponse()
            assert response.status == 502
            assert response.getheader(UPSTREAM_HEADER) == "new"
            response.read()
        finally:
            conn.close()
        assert router.counts().errors == 1


def test_close_returns_with_a_client_connection_open(upstreams: tuple[Upstream, Upstream]) -> None:
    old, new = upstreams
    router = WeightedRouter(old.url, new.url, lambda: 50.0, poll_s=0.05).start()
    port = int(router.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/api/x")
        conn.getresponse().read()  # a kept-alive connection stays open in its handler thread
        before = threading.active_count()
        router.close()
        assert threading.active_count() < before
        assert conn.sock is not None
        assert conn.sock.recv(1) == b""  # the router shut the kept-alive connection
        with pytest.raises(ConnectionRefusedError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).request("GET", "/")
    finally:
        conn.close()
        router.close()


def test_malformed_or_stalled_requests_get_an_answer_not_a_traceback(
    upstreams: tuple[Upstream, Upstream], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import parity.demo.router as router_module

    monkeypatch.setattr(router_module, "CLIENT_IDLE_S", 0.5)  # a client that stalls mid-body is dropped sooner
    old, new = upstreams
    with WeightedRouter(old.url, new.url, lambda: 50.0, poll_s=3600) as router:
        port = int(router.url.rsplit(":", 1)[1])

        def exchange(head: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(head)
                chunks = []
                while chunk := s.recv(4096):
                    chunks.append(chunk)
                return b"".join(chunks)

        for length in (b"abc", b"-5"):
            answer = exchange(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
        assert exchange(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc") == b""  # dropped
        assert _send(router, 2).total() == 2  # still serving
        assert router.counts().old + router.counts().new == 2  # the bad requests went nowhere
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]

"""The cutover demo's weighted router: a small HTTP reverse proxy on loopback that plays the part of weighted DNS.

:class:`WeightedRouter` listens on 127.0.0.1 and sends each request to the old or the new upstream at random
(a seeded ``random.Random``), the new one with probability ``weight / 100``, where the weight (percent to the
new side) is read from Route 53 by a callable — :meth:`~parity.cutover.route53.Route53Shifter.read` against
moto's server in the demo — every ``poll_s`` seconds in a background thread. Like a resolver's cache, an answer
is kept ``ttl_s`` seconds before it is asked again (0: every poll); a failed read keeps the answer in use (a
resolver serves its stale answer) and is counted.

Proxying: one thread per client connection (``ThreadingHTTPServer``, HTTP/1.1 keep-alive to the client), each
with its own keep-alive ``http.client`` connection per upstream (a stale one is reopened once), request bodies
by ``Content-Length`` only (chunked request bodies are answered 501, a malformed length 400; a client that
stalls mid-body for ``CLIENT_IDLE_S`` or closes is dropped), the upstream's answer read whole and
returned with its status and headers (hop-by-hop ones dropped) plus ``X-Parity-Upstream: old|new``; an
upstream that cannot be reached or fails mid-answer gives 502 and counts as an error.
:meth:`WeightedRouter.counts` says how many requests went each way. :meth:`close` stops the poller, the
listener and every open client connection.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from parity.cutover.model import ShiftError

__all__ = ["UPSTREAM_HEADER", "RouterCounts", "WeightedRouter"]

#: Response header naming the upstream that answered (``old`` or ``new``).
UPSTREAM_HEADER = "X-Parity-Upstream"
#: Seconds an upstream gets to answer one request.
UPSTREAM_TIMEOUT_S = 30.0
#: Seconds an idle client connection is kept open.
CLIENT_IDLE_S = 30.0
#: Seconds close() waits for the poller and the connection threads.
JOIN_S = 5.0

# Headers of one hop only (RFC 9110 §7.6.1), never forwarded.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
     "upgrade", "proxy-connection"}
)  # fmt: skip
# Errors of a kept-alive upstream connection that the upstream closed meanwhile.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class RouterCounts:
    """Requests routed to each upstream (counted when chosen), requests that got a 502, weight reads made and
    failed (``ShiftError`` or a network error; the answer in use was kept)."""

    old: int
    new: int
    errors: int
    polls: int
    poll_failures: int

    @property
    def new_share(self) -> float | None:
        """Fraction (0-1) of routed requests sent to the new upstream; None before any request."""
        total = self.old + self.new
        return None if total == 0 else self.new / total


@dataclass(frozen=True)
class _Upstream:
    name: str
    host: str
    port: int


def _upstream(name: str, url: str) -> _Upstream:
    """``http://host:port`` → its host and port; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the {name} upstream must be an http://host:port URL, got {url!r}")
    return _Upstream(name, parts.hostname, parts.port or 80)


class WeightedRouter:
    """A weighted reverse proxy between ``old_url`` and ``new_url`` (see the module docstring).

    ``read_weight``: returns the percent to the new side (None: unknown, keep the answer in use); raises
    :class:`ShiftError` or ``OSError`` on failure. ``initial_weight_pct``: the weight before the first read
    (default: the first read, made by :meth:`start`, whose failure then propagates). ``clock``: monotonic s."""

    def __init__(
        self,
        old_url: str,
        new_url: str,
        read_weight: Callable[[], float | None],
        *,
        poll_s: float = 1.0,
        ttl_s: float = 0.0,
        seed: int = 1,
        port: int = 0,
        initial_weight_pct: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstreams = {"old": _upstream("old", old_url), "new": _upstream("new", new_url)}
        self._read_weight = read_weight
        self.poll_s = poll_s
        self.ttl_s = ttl_s
        self._port = port
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._weight = initial_weight_pct
        self._fetched_at: float | None = None
        self._routed = {"old": 0, "new": 0}
        self._errors = 0
        self._polls = 0
        self._poll_failures = 0
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()

    # -- weights ---------------------------------------------------------------------------------------------

    @property
    def weight_pct(self) -> float | None:
        """The weight in use (percent to the new upstream), None before any answer."""
        with self._lock:
            return self._weight

    def refresh(self) -> None:
        """Ask ``read_weight`` now unless the answer in use is younger than ``ttl_s``; a failure or None keeps
        the answer in use."""
        with self._lock:
            if self._fetched_at is not None and self._clock() - self._fetched_at < self.ttl_s:
                return
            self._polls += 1
        try:
            weight = self._read_weight()
        except (ShiftError, OSError):
            with self._lock:
                self._poll_failures += 1
            return
        if weight is None:
            return
        with self._lock:
            self._weight = weight
            self._fetched_at = self._clock()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def pick(self) -> str:
        """``"new"`` with probability weight / 100, else ``"old"`` (``"old"`` while no weight is known);
        counted."""
        with self._lock:
            weight = self._weight if self._weight is not None else 0.0
            side = "new" if self._rng.random() * 100.0 < weight else "old"
            self._routed[side] += 1
            return side

    def counts(self) -> RouterCounts:
        """The counters now."""
        with self._lock:
            return RouterCounts(
                self._routed["old"], self._routed["new"], self._errors, self._polls, self._poll_failures
            )

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the listener."""
        if self._server is None:
            raise RuntimeError("the router is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> WeightedRouter:
        """Read the weight (unless ``initial_weight_pct`` was given), start the listener and the poller."""
        if self._weight is None:
            weight = self._read_weight()
            with self._lock:
                self._polls += 1
                self._weight, self._fetched_at = weight, self._clock()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_class(self))
        server.daemon_threads = True
        self._server = server
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _track(self, client: socket.socket, *, active: bool) -> None:
        with self._lock:
            if active:
                self._clients.add(client)
            else:
                self._clients.discard(client)

    def close(self) -> None:
        """Stop the poller and the listener and shut every open client connection (idempotent)."""
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(JOIN_S)
        self._threads = []

    def __enter__(self) -> WeightedRouter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- proxying --------------------------------------------------------------------------------------------

    def forward(
        self, side: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes,
        connections: dict[str, http.client.HTTPConnection],
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:  # fmt: skip
        """Send one request to ``side``'s upstream over the caller's kept-alive ``connections`` (reopened once
        when stale); (status, reason, headers, body) of its answer. Raises OSError / HTTPException."""
        upstream = self._upstreams[side]
        for attempt in (1, 2):
            conn = connections.get(side)
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=UPSTREAM_TIMEOUT_S)
                connections[side] = conn
            try:
                conn.request(method, path, body=body or None, headers=dict(headers))
                response = conn.getresponse()
                data = response.read()
            except _STALE:
                conn.close()
                del connections[side]
                if reused and attempt == 1:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                conn.close()
                del connections[side]
                raise
            if response.will_close:
                conn.close()
                del connections[side]
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")  # pragma: no cover


def _handler_class(router: WeightedRouter) -> type[BaseHTTPRequestHandler]:
    """The request handler of ``router``: every method is proxied."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = CLIENT_IDLE_S
        # headers and body are two writes: without TCP_NODELAY, Nagle and the client's delayed ACK hold the body
        # back ~40 ms on every kept-alive answer
        disable_nagle_algorithm = True
        server_version = "parity-demo-router"

        def setup(self) -> None:
            super().setup()
            self.upstream_connections: dict[str, http.client.HTTPConnection] = {}
            router._track(self.connection, active=True)

        def finish(self) -> None:
            router._track(self.connection, active=False)
            for conn in self.upstream_connections.values():
                conn.close()
            with contextlib.suppress(OSError):
                super().finish()

        def handle(self) -> None:
            # a client that leaves before its answer (the demo's replay stopping) or stalls mid-body past the idle
            # time-out is not an error to print
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                super().handle()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the demo prints its own progress."""

        def _reply(self, status: int, message: str, upstream: str | None = None) -> None:
            data = message.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if upstream:
                self.send_header(UPSTREAM_HEADER, upstream)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _proxy(self) -> None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self.close_connection = True
                self._reply(501, "chunked request bodies are not supported by the demo router\n")
                return
            text = (self.headers.get("Content-Length") or "0").strip()
            if not text.isdigit():
                self.close_connection = True
                self._reply(400, "Content-Length is not a length in bytes\n")
                return
            length = int(text)
            body = self.rfile.read(length)
            if len(body) < length:  # the client closed mid-body: nothing to forward, nobody to answer
                self.close_connection = True
                return
            side = router.pick()
            forwarded = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            try:
                status, reason, headers, data = router.forward(
                    side, self.command, self.path, forwarded, body, self.upstream_connections
                )
            except (OSError, http.client.HTTPException) as exc:
                router._count_error()
                self._reply(502, f"the {side} upstream failed: {type(exc).__name__}\n", side)
                return
            self.send_response(status, reason)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header(UPSTREAM_HEADER, side)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy  # noqa: N815

    return Handler

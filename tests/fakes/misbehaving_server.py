"""A deliberately misbehaving HTTP target on loopback, for the replay's bounded-resource tests.

One threaded server answers by path (every answer is bounded in time, so a test can never hang on it):

- ``/trickle``: headers at once, then a declared 1000-byte body at 1 byte per second;
- ``/slow-headers``: nothing for 10 s, then a small answer;
- ``/endless``: a chunked body of 64 KiB chunks that never ends (until the client goes or 30 s pass);
- ``/redirect``: 302 to the ``redirect_to`` URL given at start-up (a counting listener in the test);
- anything else: a small 200.

``requests`` counts the requests it read (every path).

``CountingListener`` accepts TCP connections and only counts them: the place a followed redirect would go.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CountingListener", "misbehaving_server"]

#: No answer of the server lasts longer than this many seconds.
MAX_ANSWER_S = 30.0
CHUNK = b"x" * 65536


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except OSError:  # the client went away: the point of several paths here
            return

    def _one_request(self) -> bool:
        line = self.rfile.readline(65537)
        if not line:
            return False
        length = 0
        while (header := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        self.rfile.read(length)  # a request body (POST, PATCH) is read and dropped
        path = line.split(b" ")[1].decode("latin-1") if len(line.split(b" ")) > 1 else "/"
        with self.server.lock:
            self.server.requests += 1
        stop = self.server.stopping
        if path.startswith("/trickle"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(int(MAX_ANSWER_S)):
                if stop.wait(1.0):
                    return False
                self.wfile.write(b"x")
            return False
        if path.startswith("/slow-headers"):
            if stop.wait(10.0):
                return False
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        if path.startswith("/endless"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
            until = time.monotonic() + MAX_ANSWER_S
            while time.monotonic() < until and not stop.is_set():
                self.wfile.write(chunk)
            return False
        if path.startswith("/redirect"):
            location = self.server.redirect_to.encode("latin-1")
            self.wfile.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 5\r\n\r\nmoved")
            return True
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, redirect_to: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.redirect_to = redirect_to
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def misbehaving_server(redirect_to: str = "http://127.0.0.1:9/") -> Iterator[_Server]:
    """Run the server in a thread; yields it (``url``: its base URL; ``requests``: requests read so far); stops
    it (and every answer under way) on exit."""
    server = _Server(redirect_to)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class CountingListener:
    """A TCP listener on loopback that accepts and counts connections (and closes them)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

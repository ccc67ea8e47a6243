"""Run the demo server (``parity.demo.server``) as a child process, and read its statistics.

Free of gevent and Locust imports: the caller may be a plain Python process (a test, the CLI).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LISTENING_PREFIX",
    "Service",
    "child_env",
    "fetch_stats",
    "running_server",
    "running_servers",
    "server_command",
    "stop_process",
]

#: The start of the one line the server prints once it accepts connections.
LISTENING_PREFIX = "listening on "
#: Seconds a child gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 5.0
#: Timeout of the statistics request, in seconds.
STATS_TIMEOUT_S = 5.0
#: Characters of the child's stderr quoted when it fails to start.
STDERR_TAIL_CHARS = 2000
#: Seconds to wait for the stdout reader thread once the child is gone.
READER_JOIN_S = 1.0

# The folder that holds the ``parity`` package, so the child imports this same code.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Service:
    """One demo service of a server process: its profile, ms added to every request of some endpoints, and the
    ``env`` its APM spans carry when the process reports spans (None: the profile's name)."""

    profile: str
    add_latency: Mapping[str, float] = field(default_factory=dict)
    apm_env: str | None = None


def server_command(
    profile: str | Sequence[Service],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 1,
    add_latency: Mapping[str, float] | None = None,
    apm_url: str | None = None,
    trace_rate: float | None = None,
) -> list[str]:
    """The argv that starts a demo server with this interpreter: one service of ``profile`` (``add_latency`` maps
    endpoint keys to ms added to each of their requests), or several ``Service`` s in one process. ``apm_url``:
    the span intake every service reports its requests to (``parity.demo.apm``), each with its ``apm_env``;
    ``trace_rate``: whole traces per second and endpoint sent with them (None: the server's default)."""
    services = [Service(profile, add_latency or {})] if isinstance(profile, str) else list(profile)
    chosen = [token for service in services for token in ("--profile", service.profile)]
    added = [
        token
        for i, service in enumerate(services, start=1)
        for key, ms in service.add_latency.items()
        for token in ("--add-latency", f"{i}:{key}={ms:g}")
    ]
    apm: list[str] = []
    if apm_url is not None:
        apm = ["--apm-url", apm_url]
        for service in services:
            apm += ["--apm-env", service.apm_env or service.profile]
        if trace_rate is not None:
            apm += ["--trace-rate", f"{trace_rate:g}"]
    return [
        sys.executable,
        "-m",
        "parity.demo.server",
        *chosen,
        "--host",
        host,
        "--port",
        str(port),
        "--seed",
        str(seed),
        *added,
        *apm,
    ]


def child_env() -> dict[str, str]:
    """This process's environment with the source root first on PYTHONPATH and unbuffered output."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_SOURCE_ROOT) if not path else os.pathsep.join((str(_SOURCE_ROOT), path))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process(proc: subprocess.Popen[Any], grace_s: float = TERMINATE_GRACE_S) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``grace_s`` seconds) and reap it.

    Also kills and reaps it when interrupted (KeyboardInterrupt) while waiting.
    """
    if proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Forward ``stream``'s lines to ``lines`` until EOF, then put an empty string."""
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):  # the stream was closed under us
        pass
    finally:
        lines.put("")


def _tail(stderr: IO[bytes]) -> str:
    stderr.flush()
    stderr.seek(0)
    text = stderr.read().decode("utf-8", errors="replace").strip()
    return text[-STDERR_TAIL_CHARS:] or "(no stderr output)"


def _await_listening(
    proc: subprocess.Popen[str], lines: queue.Queue[str], stderr: IO[bytes], timeout_s: float, count: int = 1
) -> list[str]:
    """The ``count`` base URLs the child announces, or RuntimeError if it exits or stays silent for ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    urls: list[str] = []
    while len(urls) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"demo server did not start within {timeout_s:g} s; stderr:\n{_tail(stderr)}"
            raise RuntimeError(msg)
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line.startswith(LISTENING_PREFIX):
            urls.append(line[len(LISTENING_PREFIX) :].strip())
            continue
        if line == "":
            code = proc.wait(timeout=TERMINATE_GRACE_S)
            msg = f"demo server exited with code {code} before listening; stderr:\n{_tail(stderr)}"
            raise RuntimeError(msg)
    return urls


@contextmanager
def running_server(
    profile: str,
    *,
    seed: int = 1,
    startup_timeout_s: float = 20.0,
    add_latency: Mapping[str, float] | None = None,
) -> Iterator[str]:
    """Run a demo server for ``profile`` on a free loopback port (``add_latency``: see ``server_command``);
    yields its base URL. See ``running_servers``."""
    with running_servers([Service(profile, add_latency or {})], seed=seed, startup_timeout_s=startup_timeout_s) as urls:
        yield urls[0]


@contextmanager
def running_servers(
    services: Sequence[Service],
    *,
    seed: int = 1,
    startup_timeout_s: float = 20.0,
    apm_url: str | None = None,
    trace_rate: float | None = None,
) -> Iterator[list[str]]:
    """Run ``services`` in ONE demo server process, each on a free loopback port (seeds ``seed``, ``seed + 1``, ...);
    yields their base URLs in order. Services in one process share its fate on a busy machine (see
    ``parity.demo.server``). ``apm_url``: every service reports its requests as APM spans there (and sampled
    whole traces, at most ``trace_rate`` per second and endpoint; None: the server's default).

    The child is terminated and reaped on every exit path (normal, exception, KeyboardInterrupt).
    Raises RuntimeError, quoting the child's stderr, when it does not announce itself within
    ``startup_timeout_s`` seconds.
    """
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            server_command(services, seed=seed, apm_url=apm_url, trace_rate=trace_rate),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=child_env(),
            text=True,
            encoding="utf-8",
        )
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
        try:
            reader.start()
            yield _await_listening(proc, lines, stderr, startup_timeout_s, len(services))
        finally:
            try:
                stop_process(proc)
            finally:
                reader.join(timeout=READER_JOIN_S)
                proc.stdout.close()


def fetch_stats(base_url: str) -> dict[str, Any]:
    """The server's ``GET /__demo/stats``: profile, total and requests per endpoint key, and per endpoint key the
    server's accounting (``endpoints``: requests, cpu_ms, cpu_throttled_ms, pool_waits, pool_wait_ms)."""
    url = f"{base_url.rstrip('/')}/__demo/stats"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    with opener.open(url, timeout=STATS_TIMEOUT_S) as response:
        payload = json.load(response)
    if not isinstance(payload, dict):
        msg = f"{url} did not return a JSON object"
        raise RuntimeError(msg)
    return payload

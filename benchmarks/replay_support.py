"""Shared parts of the replay benchmarks (not a benchmark itself: ``make bench`` skips it).

- loopback targets: nginx (``return 200``, for generator throughput) and a small asyncio HTTP/1.1 server that
  holds each response for a delay given in its path and can stall (for latency truth and stalls); both run as
  child processes on a free 127.0.0.1 port and are stopped on every exit path;
- Locust runs in child processes (this process never imports Locust or gevent), with the CPU of every
  process of the run (master and workers) sampled with psutil;
- baselines built with parity's model, and small helpers for figures and PASS/MISS lines.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from parity import measurement_json
from parity.model import (
    Endpoint,
    EndpointStats,
    Measurement,
    RequestTemplate,
    Source,
    SourceKind,
    Window,
)

ROOT = Path(__file__).resolve().parent.parent
REPLAY_LOCUSTFILE = ROOT / "loadtests" / "replay.py"
#: The replay locustfile the benchmarks measure; a script's ``--locustfile`` replaces it (to try a change).
_LOCUSTFILE = [REPLAY_LOCUSTFILE]
DEMO_BASELINE = ROOT / "baselines" / "demo.json"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
#: Seconds between CPU samples of the Locust processes.
CPU_SAMPLE_S = 0.25
#: Seconds a target gets to come up.
STARTUP_S = 15.0

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "ok"; }}
    }}
}}
"""

# A keep-alive HTTP/1.1 server: GET /sleep/<ms> answers "ok" after <ms> milliseconds (any other path: at
# once). The hold time of each /sleep/ response (request parsed -> response written, ms) is kept; GET /__holds
# returns them as JSON and clears them. With STALL_EVERY_S > 0 every response due in [k*EVERY + AT, +STALL_S) s
# after the first request is held until the stall ends (a target that freezes for STALL_S seconds).
DELAY_SERVER = r"""
import asyncio, json, socket, sys, time

STALL_AT_S, STALL_S, STALL_EVERY_S = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
holds = []
first = []

def stall_end(now):
    if STALL_EVERY_S <= 0 or not first:
        return None
    t = now - first[0] - STALL_AT_S
    if t < 0:
        return None
    k, r = divmod(t, STALL_EVERY_S)
    return now + (STALL_S - r) if r < STALL_S else None

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.request(head.split(" ", 2)[1])

    def request(self, path):
        now = time.perf_counter()
        if not first:
            first.append(now)
        if path == "/__holds":
            body = json.dumps(holds).encode()
            holds.clear()
            return self.respond(body, None)
        delay = float(path[7:]) / 1000.0 if path.startswith("/sleep/") else 0.0
        due = now + delay
        until = stall_end(due)
        if until is not None:
            due = until
        loop = asyncio.get_running_loop()
        held = now if path.startswith("/sleep/") else None
        loop.call_at(loop.time() + (due - time.perf_counter()), self.respond, b"ok", held)

    def respond(self, body, started):
        if self.t.is_closing():
            return
        self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if started is not None:
            holds.append((time.perf_counter() - started) * 1000.0)

async def main():
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0, backlog=1024)
    print("listening on http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {STARTUP_S:g} s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        raise SystemExit("nginx is not installed: `make bench` installs it (apt-get install -y nginx)")
    return found


@contextlib.contextmanager
def nginx() -> Iterator[tuple[str, int]]:
    """nginx on a free loopback port answering 200 "ok" to every request; yields (base URL, master pid)."""
    binary = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""  # workers need the 0700 temp dir
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, user=user), encoding="utf-8")
        proc = subprocess.Popen(
            [binary, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            try:
                _wait_port(port, proc, "nginx")
            except RuntimeError as exc:
                log = Path(tmp) / "error.log"
                raise RuntimeError(f"{exc}: {log.read_text()[-1500:] if log.exists() else ''}") from None
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            _stop(proc)


@contextlib.contextmanager
def delay_server(stall_at_s: float = 0.0, stall_s: float = 0.0, stall_every_s: float = 0.0) -> Iterator[str]:
    """The asyncio delay server (see DELAY_SERVER) on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DELAY_SERVER, str(stall_at_s), str(stall_s), str(stall_every_s)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"delay server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        _stop(proc)


def fetch_holds(base_url: str) -> list[float]:
    """The delay server's response hold times (ms) since the last call."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/__holds")
        holds: list[float] = json.loads(conn.getresponse().read())
        return holds
    finally:
        conn.close()


def loopback_rtt_ms(base_url: str, path: str = "/sleep/0", n: int = 2000) -> list[float]:
    """Round trips (ms) of ``n`` sequential keep-alive GETs from a plain blocking client (no generator)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            conn.request("GET", path)
            conn.getresponse().read()
            out.append((time.perf_counter() - t) * 1000.0)
    finally:
        conn.close()
    return out


# ---------------------------------------------------------------------------------------------- Locust runs


@dataclass
class CpuSamples:
    """CPU seconds sampled over time: per process of the Locust run (``master``, ``worker1``...), per process
    of the target (``target``...), and the machine's busy core-seconds."""

    samples: list[tuple[float, float, dict[int, tuple[str, float]]]] = field(default_factory=list)

    def _ends(
        self, start_s: float, end_s: float
    ) -> tuple[tuple[float, float, dict[int, tuple[str, float]]], tuple[float, float, dict[int, tuple[str, float]]]]:
        inside = [s for s in self.samples if start_s <= s[0] <= end_s]
        if len(inside) < 2:
            raise ValueError("fewer than two CPU samples in the window")
        return inside[0], inside[-1]

    def percent(self, start_s: float, end_s: float) -> dict[int, tuple[str, float]]:
        """CPU % of one core per process over ``[start_s, end_s]`` (Unix s; the samples inside)."""
        (t0, _, a), (t1, _, b) = self._ends(start_s, end_s)
        return {pid: (name, 100.0 * (cpu - a[pid][1]) / (t1 - t0)) for pid, (name, cpu) in b.items() if pid in a}

    def generator(self, start_s: float, end_s: float) -> list[float]:
        """CPU % of each Locust process over the window, busiest first."""
        pcts = [pct for name, pct in self.percent(start_s, end_s).values() if not name.startswith("target")]
        return sorted(pcts, reverse=True)

    def target(self, start_s: float, end_s: float) -> float:
        return sum(pct for name, pct in self.percent(start_s, end_s).values() if name.startswith("target"))

    def background(self, start_s: float, end_s: float) -> float:
        """CPU % (of one core) used over the window by processes that are neither the run nor its target."""
        (t0, busy0, a), (t1, busy1, b) = self._ends(start_s, end_s)
        ours = sum(cpu - a[pid][1] for pid, (_, cpu) in b.items() if pid in a)
        return max(0.0, 100.0 * (busy1 - busy0 - ours) / (t1 - t0))


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _sample_cpu(pid: int, target_pids: Sequence[int], out: CpuSamples, stop: threading.Event) -> None:
    while not stop.is_set():
        now = time.time()
        busy = psutil.cpu_times()
        snap: dict[int, tuple[str, float]] = {}
        groups = [("master", "worker", pid)] + [("target", "target", t) for t in target_pids]
        for first_name, child_name, root in groups:
            for i, p in enumerate(_tree(root)):
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    snap[p.pid] = (first_name if i == 0 else f"{child_name}{i}", t.user + t.system)
        out.samples.append((now, busy.user + busy.system + busy.nice + busy.irq + busy.softirq, snap))
        stop.wait(CPU_SAMPLE_S)


@dataclass
class LocustRun:
    returncode: int
    stdout: str
    stderr: str
    cpu: CpuSamples
    csv_prefix: Path

    def aggregated(self) -> dict[str, str]:
        """Locust's own Aggregated row of ``_stats.csv`` (empty when missing)."""
        path = self.csv_prefix.parent / (self.csv_prefix.name + "_stats.csv")
        if not path.exists():
            return {}
        with path.open(newline="", encoding="utf-8") as f:
            return next((row for row in csv.DictReader(f) if row["Name"] == "Aggregated"), {})

    def history(self) -> list[tuple[float, int]]:
        """(Unix time, total requests so far) rows of ``_stats_history.csv``."""
        path = self.csv_prefix.parent / (self.csv_prefix.name + "_stats_history.csv")
        if not path.exists():
            return []
        with path.open(newline="", encoding="utf-8") as f:
            return [
                (float(r["Timestamp"]), int(r["Total Request Count"]))
                for r in csv.DictReader(f)
                if r["Name"] == "Aggregated"
            ]


def run_locust(
    locustfile: Path,
    args: Sequence[str],
    workdir: Path,
    *,
    timeout_s: float,
    interrupt_after_s: float | None = None,
    target_pids: Sequence[int] = (),
    prefix_cmd: Sequence[str] = (),
) -> LocustRun:
    """``locust -f LOCUSTFILE --headless --only-summary --csv PREFIX ARGS`` in a child, CPU sampled (also of the
    ``target_pids`` process trees). ``interrupt_after_s``: Ctrl-C (SIGINT) it that many seconds after launch
    if it still runs (a replay over capacity keeps sending its schedule past ``-t``); killed at ``timeout_s``."""
    prefix = workdir / f"locust-{time.monotonic_ns()}"
    cmd = [*prefix_cmd, sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
           "--csv", str(prefix), "--loglevel", "WARNING", *args]  # fmt: skip
    cpu = CpuSamples()
    stop = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        sampler = threading.Thread(target=_sample_cpu, args=(proc.pid, target_pids, cpu, stop), daemon=True)
        sampler.start()
        launched = time.monotonic()
        try:
            if interrupt_after_s is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=interrupt_after_s)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=max(1.0, timeout_s - (time.monotonic() - launched)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
        finally:
            stop.set()
            sampler.join(timeout=2)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return LocustRun(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), cpu, prefix)


def use_locustfile(path: Path) -> None:
    _LOCUSTFILE[0] = path.resolve()


def replay_locustfile() -> Path:
    return _LOCUSTFILE[0]


def add_locustfile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--locustfile", type=Path, default=REPLAY_LOCUSTFILE, help="replay locustfile to measure (loadtests/replay.py)"
    )


def replay_args(host: str, baseline: Path, out: Path, run_s: float, *extra: str) -> list[str]:
    return ["--host", host, "--baseline", str(baseline), "-t", f"{run_s:g}s", "--parity-out", str(out),
            "--request-timeout", "5", *extra]  # fmt: skip


def per_second(m: Measurement) -> dict[int, int]:
    """Requests per absolute Unix second (timeline buckets; the replay records 1 s buckets for short runs)."""
    counts: dict[int, int] = {}
    for e in m.endpoints:
        if e.timeline is None:
            continue
        tl = e.timeline
        for i, c in enumerate(tl.counts):
            key = math.floor(tl.start_s + i * tl.interval_s + 1e-6)
            counts[key] = counts.get(key, 0) + (c or 0)
    return counts


def window_rate(counts: dict[int, int], start_s: float, end_s: float) -> float:
    """Requests/s over the whole seconds inside ``[start_s, end_s)`` (Unix s)."""
    secs = range(math.ceil(start_s), math.floor(end_s))
    return sum(counts.get(s, 0) for s in secs) / max(len(secs), 1)


def history_rate(rows: list[tuple[float, int]], start_s: float, end_s: float) -> float | None:
    """Requests/s between the first and last history rows inside ``[start_s, end_s]``."""
    inside = [r for r in rows if start_s <= r[0] <= end_s]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


# ---------------------------------------------------------------------------------------------- baselines


def synthetic_baseline(path: Path, endpoints: dict[str, RequestTemplate], shares: dict[str, float]) -> Path:
    """A one-minute SYNTHETIC baseline (no timelines: each endpoint spread evenly) with the given mix."""
    stats = tuple(
        EndpointStats(Endpoint.parse(key), count=max(1, round(60_000 * shares[key])), errors=0, request=template)
        for key, template in endpoints.items()
    )
    baseline = Measurement(Source(SourceKind.SYNTHETIC, "benchmark"), Window(T0, T0 + timedelta(minutes=1)), stats)
    return measurement_json.write(baseline, path)


# ---------------------------------------------------------------------------------------------- figures


def quantile(values: Sequence[float], q: float) -> float:
    """Sample quantile (linear interpolation, like numpy's default)."""
    s = sorted(values)
    if not s:
        return math.nan
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """``median [min–max]`` of repeats."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(quantile(values, 0.5))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def git_state() -> str:
    """Commit and whether parity/ has uncommitted changes (the figures measure the working tree)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "parity"], cwd=ROOT, capture_output=True, text=True,
                               check=False).stdout.strip()  # fmt: skip
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted parity/ changes' if dirty else ''}"


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs before the runs"


def wait_quiet(max_wait_s: float = 10.0, busy_percent: float = 25.0) -> float:
    """Wait (at most ``max_wait_s``) until the machine's CPU use over one second is under ``busy_percent`` of
    one core — other work on a 2-core machine skews throughput figures. Returns the last busy %."""
    deadline = time.monotonic() + max_wait_s
    while True:
        a = psutil.cpu_times()
        time.sleep(1.0)
        b = psutil.cpu_times()
        busy = 100.0 * sum(float(getattr(b, k) - getattr(a, k)) for k in ("user", "system", "nice", "irq", "softirq"))
        if busy < busy_percent or time.monotonic() > deadline:
            return busy


def sends(m: Measurement) -> tuple[int | None, int | None]:
    """(sent, late sends) of a replay: from its generator health where recorded, else from its labels (older
    replays); None when unknown."""
    gen = getattr(m, "generator", None)
    if gen is not None:
        return int(gen.sent), int(gen.late_sends)
    sent, late = m.labels.get("sent"), m.labels.get("late_sends")
    return (None if sent is None else int(sent)), (None if late is None else int(late))

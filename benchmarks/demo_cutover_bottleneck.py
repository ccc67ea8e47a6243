"""Benchmark: the planted bottleneck of ``parity demo cutover`` is load-dependent (prints a table; not a test).

The cutover demo's new side (profile ``new-cutover``: the old deployment with a primary-database pool of ONE
connection, ``parity.demo.catalog.NEW_CUTOVER``) must be within tolerance while it carries a few percent of the
demo's traffic and clearly slower once it carries half. This measures it the way the gate sees it: the old and
new services run in one server process, both report every request as an APM span (``--apm-url``) to a small
intake here, and one open-model A/B replay (the bundled baseline's production mix, ``--shape steady``) sends the
same schedule to both at the new side's request rate at each step, ``weight × --rate`` req/s. Per step: the
server-side avg latency per endpoint on each side (from the spans, as the fake Datadog would sum them), the
hits-weighted mean of ln(new/old) of the judged endpoints, and the pool's own accounting (``pool_wait_ms`` per
request, from ``/__demo/stats``).

    .venv/bin/python benchmarks/demo_cutover_bottleneck.py                    # rate 80 req/s, steps 5,10,50 %
    .venv/bin/python benchmarks/demo_cutover_bottleneck.py --rate 80 --steps 10,50 --seconds 30

Utilisation of the pool is ρ = λ × E[hold] (E[hold] ≈ 12.8 ms of queries per request in the mix), and an
M/G/1 queue waits ρ E[S²] / (2 E[S] (1 - ρ)) on average: ρ ≈ 0.05 at 5 %, 0.10 at 10 %, 0.51 at 50 % of 80 req/s.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from parity.demo.catalog import CATALOG
from parity.demo.processes import Service, fetch_stats, running_servers
from parity.demo.runner import bundled_baseline
from parity.replay.process import ReplayRun, run_replay

#: Endpoints whose share of the mix is at least this are summarised (the gate's ``min_traffic_share`` of the demo).
MIN_SHARE = 0.04


class _Intake(BaseHTTPRequestHandler):
    spans: ClassVar[dict[str, list[list[Any]]]] = defaultdict(list)
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.spans[body["env"]].extend(body["spans"])
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def _avg_by_resource(spans: list[list[Any]]) -> dict[str, tuple[int, float]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for resource, _start, duration_ms, _error in spans:
        sums[resource][0] += 1
        sums[resource][1] += duration_ms
    return {r: (int(n), total / n) for r, (n, total) in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=80.0, help="the demo's total rate, req/s (default 80)")
    parser.add_argument("--steps", default="5,10,50", help="weights to the new side, percent (default 5,10,50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="replay seconds per step (default 30)")
    args = parser.parse_args()
    baseline = bundled_baseline()
    assert baseline is not None, "run from the source tree (baselines/demo.json)"
    resource_key = {e.resource: e.key for e in CATALOG}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Intake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/parity-demo/spans"
    rows = []
    try:
        services = [Service("old", apm_env="old"), Service("new-cutover", apm_env="new")]
        with running_servers(services, apm_url=url) as (old_url, new_url), tempfile.TemporaryDirectory() as tmp:
            for weight in (float(w) for w in args.steps.split(",")):
                rps = args.rate * weight / 100.0
                before = fetch_stats(new_url)["endpoints"]
                with _Intake.lock:
                    _Intake.spans.clear()
                run = ReplayRun(
                    baseline=baseline,
                    host=new_url,
                    out=Path(tmp) / "new.json",
                    old_host=old_url,
                    old_out=Path(tmp) / "old.json",
                    run_time_s=args.seconds,
                    shape="steady",
                    rps=rps,
                    seed=int(weight),
                )
                ended = run_replay(run, Path(tmp) / "locust.log", args.seconds + 60)
                after = fetch_stats(new_url)["endpoints"]
                threading.Event().wait(1.5)  # the last batch of spans
                with _Intake.lock:
                    old, new = _avg_by_resource(_Intake.spans["old"]), _avg_by_resource(_Intake.spans["new"])
                requests = sum(a["requests"] - before.get(k, {}).get("requests", 0) for k, a in after.items())
                waited = sum(a["pool_wait_ms"] - before.get(k, {}).get("pool_wait_ms", 0.0) for k, a in after.items())
                total = sum(n for n, _ in new.values())
                print(f"\n--- {weight:g} % of {args.rate:g} req/s: new side {rps:g} req/s, replay exit {ended.code}")
                print(f"{'endpoint':38s} {'hits':>5s} {'old avg':>8s} {'new avg':>8s} {'new/old':>8s}")
                log_sum = weight_sum = 0.0
                for resource in sorted(new, key=lambda r: -new[r][0]):
                    n, avg_new = new[resource]
                    if resource not in old:
                        continue
                    avg_old = old[resource][1]
                    ratio = avg_new / avg_old
                    print(f"{resource_key[resource]:38s} {n:5d} {avg_old:8.2f} {avg_new:8.2f} {ratio:8.3f}")
                    if n / total >= MIN_SHARE:
                        log_sum += n * math.log(ratio)
                        weight_sum += n
                mean_ratio = math.exp(log_sum / weight_sum) if weight_sum else math.nan
                wait_ms = waited / requests if requests else math.nan
                print(f"pool wait per request {wait_ms:.2f} ms; hits-weighted mean ratio {mean_ratio:.3f}")
                rows.append((weight, rps, requests, wait_ms, mean_ratio))
    finally:
        server.shutdown()
    print(f"\n{'weight %':>8s} {'new req/s':>9s} {'requests':>8s} {'pool wait ms':>12s} {'mean new/old':>12s}")
    for weight, rps, requests, wait_ms, mean_ratio in rows:
        print(f"{weight:8g} {rps:9.2f} {requests:8d} {wait_ms:12.2f} {mean_ratio:12.3f}")


if __name__ == "__main__":
    main()

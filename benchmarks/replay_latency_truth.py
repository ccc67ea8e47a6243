"""Benchmark: does the replay measure latency truly? (prints figures; not part of `make test`)

1. Latency truth. Target: a small asyncio HTTP/1.1 server (``replay_support.DELAY_SERVER``) that answers
   ``GET /sleep/<ms>`` after <ms> milliseconds and records how long it actually held each response. The
   baseline's main endpoint, ``GET /sleep/{ms}`` (90% of requests), has a pool of 1,000 delays drawn from a
   lognormal (median 10 ms, sigma 0.6: p99 ≈ 35 ms); the replay draws one per request (``--shape steady``).
   *Truth* of a request = the server's measured hold time (the injected delay plus its timer and event-loop
   slop) + the loopback round trip at zero delay (median of 2,000 sequential keep-alive ``GET /sleep/0`` from
   a plain blocking client, measured just before — no load generator involved). The truth's p50 and p99 are
   compared with the replay's service-time and intended-time p50 and p99 (DDSketch, ±1%): acceptance is
   within max(1 ms, 2%) of the truth while the generator stays below 50% CPU (psutil, busiest process).
   A control endpoint, ``GET /zero`` (10% of requests, no delay), shows in the same run what the generator,
   loopback and server add to a request that the target answers at once.
2. Stall. The same server freezes for 1 s every 4 s (responses due in a stall are held until it ends);
   ``GET /sleep/2`` at a steady rate with a small ``--max-in-flight`` (requests queue in the generator) and
   a large one (they queue in the target). Expected p99s come from a simulation of the same schedule: FIFO
   sends through ``max-in-flight`` slots, 2 ms + the zero-delay round trip per request, stalls as the server
   applies them. Intended-time p99 must show the stall (≥ 90% of the simulated value) in both cases; with
   queueing in the generator the service-time p99 must not (≤ 10% of the intended p99: coordinated omission).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import replay_support as rs

from parity import measurement_json
from parity.model import LatencyDistribution, Measurement, RequestTemplate
from parity.replay import shapes
from parity.replay.plan import build_plan
from parity.replay.schedule import iter_arrivals

#: The delay pool: lognormal median and sigma (ms), pool size, seed.
DELAY_MEDIAN_MS, DELAY_SIGMA, POOL_SIZE, POOL_SEED = 10.0, 0.6, 1000, 7
#: Generator CPU (% of one core, busiest process) under which the latency acceptance applies.
CPU_LIMIT = 50.0
#: Stall: the server freezes STALL_S every STALL_EVERY_S from STALL_AT_S after its first request.
STALL_AT_S, STALL_S, STALL_EVERY_S = 2.0, 1.0, 4.0
STALL_BASE_MS = 2.0
#: Share of the latency-truth traffic sent to GET /zero (no delay): a control for the generator's own overhead.
CONTROL_SHARE = 0.1


def tolerance(truth_ms: float) -> float:
    return max(1.0, 0.02 * truth_ms)


def delay_pool() -> tuple[str, ...]:
    rng = np.random.default_rng(POOL_SEED)
    values = np.round(rng.lognormal(math.log(DELAY_MEDIAN_MS), DELAY_SIGMA, POOL_SIZE), 1)
    return tuple(f"{max(v, 0.1):.1f}" for v in values)


def run_replay(url: str, baseline: Path, tmp: Path, run_s: float, rps: float, *extra: str) -> tuple[Measurement, float]:
    """Replay ``baseline`` steadily at ``rps``; the Measurement and the busiest generator process's CPU %."""
    out = tmp / f"run-{time.monotonic_ns()}.json"
    args = rs.replay_args(url, baseline, out, run_s, "--shape", "steady", "--rps", f"{rps:g}", *extra)
    run = rs.run_locust(rs.replay_locustfile(), args, tmp, timeout_s=run_s + 60)
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"replay failed ({run.returncode}): {run.stderr[-1500:]}")
    m = measurement_json.read(out)
    start = m.window.start.timestamp()
    cpu = run.cpu.generator(start + 1, start + run_s - 0.5)
    return m, cpu[0] if cpu else math.nan


def sketches(m: Measurement, key: str) -> tuple[LatencyDistribution, LatencyDistribution]:
    """Service-time and intended-time sketches of endpoint ``key``."""
    e = m.by_key()[key]
    if not isinstance(e.latency, LatencyDistribution) or not isinstance(e.intended, LatencyDistribution):
        raise RuntimeError(f"the replay recorded no latency sketches for {key}")
    if e.errors:
        print(f"  ({e.errors} errors of {e.count} requests on {key})")
    return e.latency, e.intended


@dataclass(frozen=True)
class Row:
    figure: str
    truth: float
    service: float
    intended: float
    injected: float  # the schedule's delay quantile (no server slop, no round trip)

    @property
    def service_ok(self) -> bool:
        return abs(self.service - self.truth) <= tolerance(self.truth)

    @property
    def intended_ok(self) -> bool:
        return abs(self.intended - self.truth) <= tolerance(self.truth)


@dataclass(frozen=True)
class TruthRound:
    rps: float
    count: int
    cpu: float
    rtt0: float  # plain client, zero delay, idle target: median ms
    control: tuple[float, float]  # the replay's service-time p50, p99 of GET /zero (no delay) in the same run
    rows: list[Row]


def latency_truth(tmp: Path, run_s: float, rps: float) -> TruthRound:
    sleep_key, zero_key = "GET /sleep/{ms}", "GET /zero"
    baseline = rs.synthetic_baseline(
        tmp / "sleep.json",
        {sleep_key: RequestTemplate("/sleep/{ms}", params={"ms": delay_pool()}), zero_key: RequestTemplate("/zero")},
        {sleep_key: 1.0 - CONTROL_SHARE, zero_key: CONTROL_SHARE},
    )
    with rs.delay_server() as url:
        rs.loopback_rtt_ms(url, n=200)  # warm up
        rtt0 = rs.quantile(rs.loopback_rtt_ms(url), 0.5)
        rs.fetch_holds(url)  # clear
        rs.wait_quiet()
        m, cpu = run_replay(url, baseline, tmp, run_s, rps)
        holds = rs.fetch_holds(url)
    service, intended = sketches(m, sleep_key)
    control, _ = sketches(m, zero_key)
    # the delays the schedule asked for (same plan, shape and seed as the replay), to show the server's slop
    shaped = shapes.steady(build_plan(measurement_json.read(baseline)), run_s, rps)
    nominal = [float(a.url.rsplit("/", 1)[1]) for a in iter_arrivals(shaped.plan, run_s, seed=1) if a.name != "/zero"]
    rows = [
        Row(
            f"p{q * 100:g}",
            rs.quantile(holds, q) + rtt0,
            service.quantile(q) or math.nan,
            intended.quantile(q) or math.nan,
            rs.quantile(nominal, q),
        )
        for q in (0.5, 0.99)
    ]
    return TruthRound(
        rps, m.by_key()[sleep_key].count, cpu, rtt0, (control.quantile(0.5) or 0, control.quantile(0.99) or 0), rows
    )


def print_truth(label: str, rnd: TruthRound) -> bool:
    ok = rnd.cpu < CPU_LIMIT
    for row in rnd.rows:
        ok &= row.service_ok and row.intended_ok
        print(
            f"  {label:<12} {row.figure:<5} {row.injected:>8.2f} {row.truth:>8.2f} {row.service:>8.2f} "
            f"{row.service - row.truth:>+6.2f} {row.intended:>8.2f} {row.intended - row.truth:>+6.2f} "
            f"{tolerance(row.truth):>5.2f}  {rs.verdict(row.service_ok):<4} {rs.verdict(row.intended_ok)}"
        )
        label = ""
    print(
        f"  {'':<12} {rnd.count} requests; generator CPU {rnd.cpu:.0f}% (< {CPU_LIMIT:g}%: "
        f"{rs.verdict(rnd.cpu < CPU_LIMIT)}); zero delay: plain client {rnd.rtt0:.2f} ms, replay's GET /zero "
        f"service p50 {rnd.control[0]:.2f} p99 {rnd.control[1]:.2f} ms"
    )
    return ok


def simulate_stall(arrivals: list[float], slots: int, service_ms: float) -> tuple[list[float], list[float]]:
    """Service-time and intended-time latencies (ms) of FIFO sends through ``slots`` concurrent requests
    against a server that holds responses due in a stall until it ends (stalls timed from the first send)."""
    free = [0.0] * slots
    first = None
    svc, intd = [], []
    for at in arrivals:
        slot = min(range(slots), key=free.__getitem__)
        start = max(at, free[slot])
        first = start if first is None else first
        due = start + service_ms / 1000.0
        t = due - first - STALL_AT_S
        if t >= 0 and t % STALL_EVERY_S < STALL_S:
            due += STALL_S - t % STALL_EVERY_S
        free[slot] = due
        svc.append((due - start) * 1000.0)
        intd.append((due - at) * 1000.0)
    return svc, intd


def stall(tmp: Path, run_s: float, rps: float, in_flight: int) -> list[tuple[str, float, float]]:
    baseline = rs.synthetic_baseline(
        tmp / "stall.json", {"GET /fixed": RequestTemplate(f"/sleep/{STALL_BASE_MS:g}")}, {"GET /fixed": 1.0}
    )
    with rs.delay_server() as probe:
        rtt0 = rs.quantile(rs.loopback_rtt_ms(probe, n=500), 0.5)
    with rs.delay_server(STALL_AT_S, STALL_S, STALL_EVERY_S) as url:
        rs.wait_quiet()
        m, _ = run_replay(url, baseline, tmp, run_s, rps, "--max-in-flight", str(in_flight))
    service, intended = sketches(m, "GET /fixed")
    shaped = shapes.steady(build_plan(measurement_json.read(baseline)), run_s, rps)
    arrivals = [a.at_s for a in iter_arrivals(shaped.plan, run_s, seed=1)]
    sim_svc, sim_int = simulate_stall(arrivals, in_flight, STALL_BASE_MS + rtt0)
    rows: list[tuple[str, float, float]] = []
    for sim, sketch in ((sim_svc, service), (sim_int, intended)):
        rows += [(f"p{q * 100:g}", rs.quantile(sim, q), sketch.quantile(q) or math.nan) for q in (0.5, 0.99)]
    return rows


def stall_table(tmp: Path, run_s: float, rps: float) -> bool:
    print(
        f"\n2. stall: GET /sleep/{STALL_BASE_MS:g} at {rps:g}/s for {run_s:g} s; the target freezes {STALL_S:g} s "
        f"every {STALL_EVERY_S:g} s; expected = simulation of the same schedule"
    )
    print(f"  {'max-in-flight':<14} {'latency':<9} {'figure':<6} {'expected':>9} {'measured':>9}")
    ok_all = True
    for mif in (2, 256):
        rows = stall(tmp, run_s, rps, mif)
        for i, (name, expected, measured) in enumerate(rows):
            kind = "service" if i < 2 else "intended"
            print(f"  {mif if i == 0 else '':<14} {kind if i % 2 == 0 else '':<9} {name:<6} {expected:>9.1f} "
                  f"{measured:>9.1f}")  # fmt: skip
        svc_p99, int_p99_exp, int_p99 = rows[1][2], rows[3][1], rows[3][2]
        shows = int_p99 >= 0.9 * int_p99_exp
        hides = svc_p99 <= 0.1 * int_p99 if mif == 2 else True
        ok_all &= shows and hides
        what = "intended p99 shows the stall" + ("; service p99 hides it" if mif == 2 else "")
        print(f"  {'':<14} {what}: {rs.verdict(shows and hides)}")
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=20.0, help="seconds per latency-truth run (20)")
    parser.add_argument("--rps", type=float, nargs="+", default=[200.0, 500.0], help="latency-truth rates (200 500)")
    parser.add_argument("--repeats", type=int, default=2, help="latency-truth runs per rate (2)")
    parser.add_argument("--stall-run-s", type=float, default=16.0, help="seconds per stall run (16)")
    parser.add_argument("--stall-rps", type=float, default=200.0, help="stall runs' rate (200)")
    parser.add_argument("--no-stall", action="store_true", help="skip the stall runs")
    rs.add_locustfile_option(parser)
    args = parser.parse_args()
    rs.use_locustfile(args.locustfile)
    print(f"latency truth and stalls of {rs.replay_locustfile()}; {rs.load_note()}")
    print(f"code: {rs.git_state()}")
    ok_all = True
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp_name:
        tmp = Path(tmp_name)
        print(
            f"\n1. latency truth: GET /sleep/{{ms}}, delays lognormal(median {DELAY_MEDIAN_MS:g} ms, sigma "
            f"{DELAY_SIGMA:g}); truth = server hold + zero-delay round trip; tolerance max(1 ms, 2%)"
        )
        print(
            f"  {'run':<12} {'':<5} {'injected':>8} {'truth':>8} {'service':>8} {'error':>6} {'intended':>8} "
            f"{'error':>6} {'tol':>5}  {'service/intended'}"
        )
        for rps in args.rps:
            for r in range(args.repeats):
                ok_all &= print_truth(f"{rps:g}/s #{r + 1}", latency_truth(tmp, args.run_s, rps))
        if not args.no_stall:
            ok_all &= stall_table(tmp, args.stall_run_s, args.stall_rps)
    print(f"\noverall: {rs.verdict(ok_all)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how many requests/s the replay generator sends, against a bare Locust user (prints figures).

Target: nginx on loopback answering ``200 "ok"`` to every path (one worker; fast enough that the generator, not
the target, is the bottleneck). Both sides send ``GET /ok`` only:
- bare: a FastHttpUser locustfile written here (one ``GET /ok`` task, no wait), ``-u 50`` (one connection per
  user; ``--users 1 10 50 200`` tries several and counts the best: on a 2-core machine they are within noise);
- replay: ``loadtests/replay.py --shape steady --rps 20000`` over a one-endpoint baseline built here (``GET /ok``),
  far above what one process can send, so it sends flat out (and marks most sends late); ``--max-in-flight 256``
  (``--in-flight 256 50`` tries several). Over capacity the replay keeps sending its schedule past ``-t``; the
  benchmark stops it with Ctrl-C (SIGINT) a few seconds after.

Figures are taken over the steady part of each run, ``[start + 2 s, start + run - 1 s]``: the replay's from its
recorded per-second timeline (requests by send time), the bare user's from Locust's stats history (requests by
completion). Locust's own whole-run Requests/s is shown beside them. CPU is sampled with psutil over the same
window, per Locust process (% of one core); ``bg`` is CPU used meanwhile by anything else on the machine.
Acceptance (issue 4): replay / bare >= 0.90 in one process; ``--processes 2`` >= 1.7 x one process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import replay_support as rs

from parity import measurement_json
from parity.model import RequestTemplate

BARE_LOCUSTFILE = """\
from locust import FastHttpUser, constant, task


class Bare(FastHttpUser):
    wait_time = constant(0)

    @task
    def ok(self):
        self.client.get("/ok")
"""
#: Seconds of a run's start and end left out of the steady window.
WARMUP_S, COOLDOWN_S = 2.0, 1.0
EFFICIENCY_TARGET, SCALING_TARGET = 0.90, 1.7
#: A run during which other processes used more CPU than this (% of one core) is noisy (marked *); rounds with a
#: noisy run are left out of the summary when at least one round is clean.
NOISY_BACKGROUND = 40.0


@dataclass(frozen=True)
class Result:
    label: str
    rps: float  # steady window
    locust_rps: float  # Locust's own Aggregated Requests/s over the whole run
    cpu: list[float]  # per Locust process, % of one core, busiest first
    target_cpu: float
    background: float
    late: str = ""

    @property
    def cpu_us(self) -> float:
        """Generator CPU per request, µs (all Locust processes)."""
        return sum(self.cpu) * 1e4 / self.rps if self.rps else float("nan")

    @property
    def noisy(self) -> bool:
        return self.background > NOISY_BACKGROUND

    def row(self) -> str:
        cpu = "+".join(f"{c:.0f}" for c in self.cpu)
        return (
            f"  {self.label:<30} {self.rps:>7.0f} {self.locust_rps:>8.0f}  {cpu:>10} {self.cpu_us:>6.0f}"
            f"  {self.target_cpu:>5.0f}  {self.background:>4.0f}{'*' if self.noisy else ' '} {self.late}"
        )


def _pinned(core: int | None) -> list[str]:
    """``taskset -c CORE`` (a side-by-side run gives each generator a core of its own)."""
    return [] if core is None else ["taskset", "-c", str(core)]


def bare(
    url: str, nginx_pid: int, tmp: Path, users: int, run_s: float, processes: int, core: int | None = None
) -> Result:
    extra = ["--processes", str(processes)] if processes > 1 else []
    run = rs.run_locust(
        tmp / "bare.py",
        ["--host", url, "-u", str(users), "-r", "10000", "-t", f"{run_s:g}s", *extra],
        tmp,
        timeout_s=run_s + 60,
        target_pids=[nginx_pid],
        prefix_cmd=_pinned(core),
    )
    history = run.history()
    if run.returncode != 0 or not history:
        raise RuntimeError(f"bare run failed ({run.returncode}): {run.stderr[-1500:]}")
    start = history[0][0]
    lo, hi = start + WARMUP_S, start + run_s - COOLDOWN_S
    rate = rs.history_rate(history, lo, hi) or 0.0
    agg = run.aggregated()
    return Result(
        f"bare -u {users}" + (f" --processes {processes}" if processes > 1 else ""),
        rate,
        float(agg.get("Requests/s") or 0),
        run.cpu.generator(lo, hi),
        run.cpu.target(lo, hi),
        run.cpu.background(lo, hi),
    )


def replay(
    url: str,
    nginx_pid: int,
    tmp: Path,
    baseline: Path,
    run_s: float,
    rps: float,
    processes: int,
    in_flight: int,
    core: int | None = None,
) -> Result:
    out = tmp / f"replay-{time.monotonic_ns()}.json"
    extra = ["--shape", "steady", "--rps", f"{rps:g}", "--max-in-flight", str(in_flight)]
    if processes > 1:
        extra += ["--processes", str(processes)]
    run = rs.run_locust(
        rs.replay_locustfile(),
        rs.replay_args(url, baseline, out, run_s, *extra),
        tmp,
        timeout_s=run_s + 90,
        interrupt_after_s=run_s + 10 + 2 * processes,  # start-up, the synchronised start, the final reports
        target_pids=[nginx_pid],
        prefix_cmd=_pinned(core),
    )
    if not out.exists():
        raise RuntimeError(f"replay wrote no Measurement ({run.returncode}): {run.stderr[-1500:]}")
    m = measurement_json.read(out)
    errors = sum(e.errors or 0 for e in m.endpoints)
    if errors:
        print(f"  (replay recorded {errors} errors of {m.total_count})")
    start = m.window.start.timestamp()
    lo, hi = start + WARMUP_S, start + run_s - COOLDOWN_S
    sent, late = rs.sends(m)
    return Result(
        f"replay mif {in_flight}" + (f" --processes {processes}" if processes > 1 else ""),
        rs.window_rate(rs.per_second(m), lo, hi),
        float(run.aggregated().get("Requests/s") or 0),
        run.cpu.generator(lo, hi),
        run.cpu.target(lo, hi),
        run.cpu.background(lo, hi),
        f"late {late}/{sent}" if late is not None else "",
    )


def best(results: list[Result]) -> Result:
    return max(results, key=lambda r: r.rps)


def summarize(rounds: list[dict[str, Result]], users: list[int], in_flight: list[int], *, processes: bool) -> None:
    clean = [g for g in rounds if not any(r.noisy for r in g.values())]
    if clean and len(clean) < len(rounds):
        print(f"\n({len(rounds) - len(clean)} of {len(rounds)} rounds left out: other processes used > "
              f"{NOISY_BACKGROUND:g}% CPU during a run)")  # fmt: skip
    rounds = clean or rounds
    bares = [best([g[f"bare{u}"] for u in users]) for g in rounds]
    replays = [best([g[f"replay{m}"] for m in in_flight]) for g in rounds]
    eff = [rp.rps / b.rps for rp, b in zip(replays, bares, strict=True)]
    eff_cpu = [b.cpu_us / rp.cpu_us for rp, b in zip(replays, bares, strict=True)]
    print("\nsummary: median [min-max] over rounds; per round the best -u of bare and --max-in-flight of replay")
    print(f"  bare req/s, one process            {rs.spread([b.rps for b in bares])}")
    for mif in in_flight:
        print(f"  replay req/s, --max-in-flight {mif:<4} {rs.spread([g[f'replay{mif}'].rps for g in rounds])}")
    print(f"  bare CPU per request, us           {rs.spread([b.cpu_us for b in bares])}")
    print(f"  replay CPU per request, us         {rs.spread([rp.cpu_us for rp in replays])}")
    print(f"  replay/bare per CPU-second         {rs.spread(eff_cpu, '{:.2f}')}  (robust to CPU stolen by others)")
    scale: list[float] = []
    if processes:
        scale = [g["replay2"].rps / g[f"replay{in_flight[0]}"].rps for g in rounds]
        print(f"  replay req/s, --processes 2        {rs.spread([g['replay2'].rps for g in rounds])}")
        print(f"  bare req/s, --processes 2          {rs.spread([g['bare2'].rps for g in rounds])}")
        bare_scale = [g["bare2"].rps / b.rps for g, b in zip(rounds, bares, strict=True)]
        print(f"  bare scaling, 2 processes / 1      {rs.spread(bare_scale, '{:.2f}')}  (what this machine allows)")
        # requests per generator CPU-second, 2 processes vs 1, times 2: the scaling two whole cores would give
        per_cpu = [2 * g[f"replay{in_flight[0]}"].cpu_us / g["replay2"].cpu_us for g in rounds]
        print(f"  replay scaling at equal CPU, x2    {rs.spread(per_cpu, '{:.2f}')}  (2 x per-CPU throughput ratio)")
    print(f"\n  {'acceptance':<34} {'figure':>18}  {'target':>8}  result")
    print(
        f"  {'replay / bare req/s, one process':<34} {rs.spread(eff, '{:.2f}'):>18}  {'>= 0.90':>8}  "
        f"{rs.verdict(statistics.median(eff) >= EFFICIENCY_TARGET)}"
    )
    if scale:
        print(
            f"  {'--processes 2 / one process':<34} {rs.spread(scale, '{:.2f}'):>18}  {'>= 1.7':>8}  "
            f"{rs.verdict(statistics.median(scale) >= SCALING_TARGET)}"
        )
    print(f"  ({len(rounds)} rounds; bg% = CPU used by other processes during the run, * = noisy)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all runs, interleaved (3)")
    parser.add_argument("--rps", type=float, default=20_000.0, help="replay's steady rate, req/s (20000)")
    parser.add_argument(
        "--in-flight", type=int, nargs="+", default=[256], help="replay --max-in-flight values (256; the best counts)"
    )
    parser.add_argument("--users", type=int, nargs="+", default=[50], help="bare -u values (the best counts)")
    parser.add_argument("--no-processes", action="store_true", help="skip the --processes 2 runs")
    parser.add_argument("--no-side-by-side", action="store_true", help="skip the side-by-side runs")
    parser.add_argument("--side-by-side-only", action="store_true", help="only the side-by-side runs")
    rs.add_locustfile_option(parser)
    args = parser.parse_args()
    rs.use_locustfile(args.locustfile)
    print(f"generator efficiency of {rs.replay_locustfile()}: nginx on loopback, {args.run_s:g} s runs, "
          f"{args.repeats} rounds; {rs.load_note()}")  # fmt: skip
    print(f"code: {rs.git_state()}")
    header = f"  {'run':<30} {'req/s':>7} {'locust/s':>8}  {'cpu%':>10} {'us/req':>6}  {'nginx':>5}  {'bg%':>4}"
    rounds: list[dict[str, Result]] = []
    with tempfile.TemporaryDirectory(prefix="bench-eff-") as tmp_name, rs.nginx() as (url, nginx_pid):
        tmp = Path(tmp_name)
        (tmp / "bare.py").write_text(BARE_LOCUSTFILE, encoding="utf-8")
        baseline = rs.synthetic_baseline(tmp / "ok.json", {"GET /ok": RequestTemplate("/ok")}, {"GET /ok": 1.0})
        for r in range(0 if args.side_by_side_only else args.repeats):
            print(f"round {r + 1}\n{header}")
            got: dict[str, Result] = {}

            def measure(key: str, run: Callable[[], Result], got: dict[str, Result] = got) -> None:
                rs.wait_quiet()
                result = run()
                print(result.row(), flush=True)
                got[key] = result

            for users in args.users:
                measure(f"bare{users}", partial(bare, url, nginx_pid, tmp, users, args.run_s, 1))
            for mif in args.in_flight:
                measure(f"replay{mif}", partial(replay, url, nginx_pid, tmp, baseline, args.run_s, args.rps, 1, mif))
            if not args.no_processes:
                mif = args.in_flight[0]
                measure("replay2", partial(replay, url, nginx_pid, tmp, baseline, args.run_s, args.rps, 2, mif))
                measure("bare2", partial(bare, url, nginx_pid, tmp, max(args.users), args.run_s, 2))
            rounds.append(got)
        pairs = [] if args.no_side_by_side else side_by_side(url, nginx_pid, tmp, baseline, args)
    if rounds:
        summarize(rounds, args.users, args.in_flight, processes=not args.no_processes)
    if pairs:
        ratios = [rp.rps / b.rps for b, rp in pairs]
        print(
            f"  {'replay / bare, side by side':<34} {rs.spread(ratios, '{:.2f}'):>18}  {'>= 0.90':>8}  "
            f"{rs.verdict(statistics.median(ratios) >= EFFICIENCY_TARGET)}  (same seconds, one core each)"
        )
    return 0


def side_by_side(
    url: str, nginx_pid: int, tmp: Path, baseline: Path, args: argparse.Namespace
) -> list[tuple[Result, Result]]:
    """Bare and replay at the same time, each pinned to its own core (swapped every round): both see the same
    machine, so this VM's CPU-speed swings cancel out of the ratio."""
    print(f"\nside by side: bare -u {max(args.users)} and replay mif {args.in_flight[0]} at once, one core each")
    pairs = []
    for r in range(args.repeats):
        rs.wait_quiet()
        bare_core, replay_core = (0, 1) if r % 2 == 0 else (1, 0)
        got: dict[str, Result] = {}
        runs = {
            "bare": partial(bare, url, nginx_pid, tmp, max(args.users), args.run_s, 1, bare_core),
            "replay": partial(
                replay, url, nginx_pid, tmp, baseline, args.run_s, args.rps, 1, args.in_flight[0], replay_core
            ),
        }
        threads = [threading.Thread(target=lambda k=k, f=f, got=got: got.__setitem__(k, f())) for k, f in runs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"  round {r + 1} (bare on core {bare_core}):")
        print(got["bare"].row())
        print(got["replay"].row(), flush=True)
        pairs.append((got["bare"], got["replay"]))
    return pairs


if __name__ == "__main__":
    sys.exit(main())

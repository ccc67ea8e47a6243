"""Benchmark: `parity compare` of two Locust request logs, and `parity baseline from-logs` of an nginx log, against
plain pandas scripts on the same files (prints walls, peak RSS and ratios). Not part of `make test`.

Generates, under a temporary directory (deleted at the end unless ``--keep``), two Locust request logs per size
(1M and 5M rows per side by default; 300 endpoints with Zipf-like shares, the same endpoints on both sides,
about 1% errors, some exceptions quoted because they hold a comma, as Locust writes them) and one nginx access
log (combined format + ``$request_time``) of the largest size. Each command runs as a subprocess (so both pay
interpreter start-up), interleaved with its pandas counterpart, ``--repeat`` times; the peak RSS of each
subprocess comes from ``os.wait4`` (that child's own maximum, not the largest of all children).

The pandas scripts: request logs: ``read_csv`` (C engine), group by (request_type, name), count / mean / max of
response_time_ms and quantiles 0.5 / 0.95 / 0.99. nginx: ``read_csv`` with a space separator, ids in the path
replaced by ``{id}`` (vectorised regex), the same group-by on request_time.

Targets (issue 14): compare ≤ 1.5× pandas and ≤ 1 GiB at 5M rows per side, RSS flat (±20%) from 1M to 5M;
from-logs ≤ 2× pandas and ≤ 1 GiB on 5M nginx lines.

    .venv/bin/python benchmarks/analysis_speed.py                 # 1M and 5M rows/side (0.6 GB of files at most)
    .venv/bin/python benchmarks/analysis_speed.py --rows 200000   # a quick run at one size

The from-logs part times whatever access-log reader is installed (parity.sources.access_log).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parity.sources.locust_csv import COLUMNS

ENDPOINTS = 300
T0 = 1_800_000_000.0
#: Seconds the generated runs cover (a one-hour test).
SPAN_S = 3600.0
PARITY = [sys.executable, "-m", "parity.cli"]

PANDAS_LOCUST = """
import sys, pandas as pd
for f in sys.argv[1:]:
    df = pd.read_csv(f)
    g = df.groupby(["request_type", "name"])["response_time_ms"]
    r = g.agg(["count", "mean", "max"]).join(g.quantile([0.5, 0.95, 0.99]).unstack())
print(len(r))
"""
PANDAS_NGINX = r"""
import sys, pandas as pd
for f in sys.argv[1:]:
    df = pd.read_csv(f, sep=" ", header=None, usecols=[5, 6, 10], names=["request", "status", "rt"],
                     quotechar='"', engine="c", index_col=False,
                     dtype={"request": str, "status": "int64", "rt": "float64"})
    key = df["request"].str.replace(r"/\d+(?= |$)", "/{id}", regex=True)
    g = df.groupby(key)["rt"]
    r = g.agg(["count", "mean", "max"]).join(g.quantile([0.5, 0.95, 0.99]).unstack())
print(len(r))
"""


@dataclass(frozen=True)
class Run:
    """One subprocess: wall time (s), peak RSS (MiB), exit code."""

    wall_s: float
    rss_mib: float
    code: int


def run(cmd: list[str], cwd: Path) -> Run:
    """Run ``cmd`` (stdout and stderr discarded) and measure its wall time and its own peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1, 3):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()[-400:]}")
    if proc.stderr:
        proc.stderr.close()
    return Run(wall, usage.ru_maxrss / 1024, proc.returncode)


def _shares(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Zipf-like traffic shares of the endpoints, in an order drawn from ``rng``."""
    weights = 1.0 / np.arange(1, ENDPOINTS + 1, dtype=np.float64) ** 0.9
    rng.shuffle(weights)
    shares: npt.NDArray[np.float64] = weights / weights.sum()
    return shares


def locust_log(path: Path, rows: int, seed: int, slower: float) -> None:
    """A Locust request log of ``rows`` requests over ``SPAN_S``, written as csv.writer writes it (a field is
    quoted only when it holds a comma); endpoints ``i % 10 == 0`` are ``slower``×."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    shares = _shares(np.random.default_rng(0))  # the same endpoints and mix on both sides
    endpoint = rng.choice(ENDPOINTS, rows, p=shares)
    sent = np.round(T0 + np.sort(rng.uniform(0, SPAN_S, rows)), 6)
    median = 20.0 + (np.arange(ENDPOINTS) % 17) * 6.0
    median = np.where(np.arange(ENDPOINTS) % 10 == 0, median * slower, median)
    latency = np.round(rng.lognormal(np.log(median[endpoint]), 0.5), 2)
    roll = rng.random(rows)
    status = np.where(roll < 0.005, 0, np.where(roll < 0.01, 500, 200))
    exception = np.where(
        status == 0,
        "\"ConnectionResetError(104, 'Connection reset by peer')\"",  # a comma: csv.writer quotes it
        np.where(status == 500, "HTTPError('500 Server Error: INTERNAL SERVER ERROR')", ""),
    )
    keys = pa.array([f"{'POST' if i % 3 == 0 else 'GET'},/api/v1/resource{i}/{{id}}" for i in range(ENDPOINTS)]).take(
        pa.array(endpoint)
    )
    parts = [
        pa.array(sent).cast(pa.string()),
        keys,
        pa.array(latency).cast(pa.string()),
        "1234",
        pa.array(status).cast(pa.string()),
        pa.array(exception),
    ]
    lines = pc.binary_join_element_wise(*parts, ",")
    _write_lines(path, ",".join(COLUMNS), lines)


def _write_lines(path: Path, header: str | None, lines: Any) -> None:
    """Write a pyarrow string array as lines (``\n``), after ``header`` when given, a million at a time."""
    with path.open("wb") as fh:
        if header is not None:
            fh.write((header + "\n").encode())
        for start in range(0, len(lines), 1_000_000):
            fh.write(("\n".join(lines.slice(start, 1_000_000).to_pylist()) + "\n").encode())


def nginx_log(path: Path, rows: int, seed: int) -> None:
    """An nginx access log (combined + ``$request_time`` in s) of ``rows`` lines with numeric ids in paths."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    endpoint = rng.choice(ENDPOINTS, rows, p=_shares(np.random.default_rng(0)))
    when = pa.array(((T0 + np.sort(rng.uniform(0, SPAN_S, rows))) * 1e6).astype(np.int64))
    seconds_since_epoch = pc.divide(when, 1_000_000).cast(pa.timestamp("s", tz="UTC"))
    stamp = pc.strftime(seconds_since_epoch, format="%d/%b/%Y:%H:%M:%S", locale="C")
    median = 0.020 + (np.arange(ENDPOINTS) % 17) * 0.006
    seconds = np.round(rng.lognormal(np.log(median[endpoint]), 0.5), 3)
    method = np.where(np.arange(ENDPOINTS) % 3 == 0, "POST", "GET")[endpoint]
    ids = rng.integers(1, 100_000, rows).astype(str)
    status = np.where(rng.random(rows) < 0.01, "500", "200")
    parts = [
        "10.0.0.1 - - [",
        stamp,
        ' +0000] "',
        pa.array(method),
        " /api/v1/resource",
        pa.array(endpoint.astype(str)),
        "/",
        pa.array(ids),
        ' HTTP/1.1" ',
        pa.array(status),
        ' 1234 "-" "bench/1" ',
        pa.array(np.char.mod("%.3f", seconds)),
    ]
    _write_lines(path, None, pc.binary_join_element_wise(*parts, ""))


def generate(kind: str, path: Path, rows: int, seed: int, slower: float) -> None:
    """Write a generated file in a child process: this one stays small, and a child's peak RSS counts the
    memory of its parent at the fork (Linux keeps the larger of the two), so the measured ones must not
    inherit the generator's."""
    cmd = [sys.executable, __file__, "--generate", kind, str(path), str(rows), str(seed), str(slower)]
    subprocess.run(cmd, check=True)


def precompile() -> None:
    """Write the bytecode of the ``parity`` package (``__pycache__``, git-ignored) before timing, as ``pip install``
    does: pandas and the other installed packages come with theirs, but an editable install run with
    ``PYTHONDONTWRITEBYTECODE=1`` (CI images, containers) compiles ~90 modules from source in every process
    (~0.3 s of CPU), which a user's installed ``parity`` does not. Stale files are ignored by Python."""
    import compileall

    import parity

    root = Path(parity.__file__).parent
    ok = compileall.compile_dir(root, quiet=1)
    print(f"  parity bytecode compiled under {root} ({'ok' if ok else 'some files failed'}; --no-precompile: not)")


def summary(runs: list[Run]) -> tuple[float, float]:
    """(median wall s, max peak RSS MiB) of repeated runs."""
    return statistics.median(r.wall_s for r in runs), max(r.rss_mib for r in runs)


def compare_bench(work: Path, sizes: list[int], repeat: int) -> dict[int, tuple[float, float, float, float]]:
    """Per size: (parity wall, parity RSS, pandas wall, pandas RSS), each as in :func:`summary`."""
    script = work / "pandas_locust.py"
    script.write_text(PANDAS_LOCUST)
    results = {}
    for rows in sizes:
        a, b = work / f"a{rows}.csv", work / f"b{rows}.csv"
        t = time.perf_counter()
        generate("locust", a, rows, 1, 1.0)
        generate("locust", b, rows, 2, 1.3)
        size = a.stat().st_size / 2**20
        print(f"  generated 2 × {rows:,} rows ({size:.0f} MiB each) in {time.perf_counter() - t:.1f} s")
        ours, theirs = [], []
        for _ in range(repeat):  # interleaved: a load spike hits both
            ours.append(run([*PARITY, "compare", str(a), str(b), "--out", str(work / "report")], work))
            theirs.append(run([sys.executable, str(script), str(a), str(b)], work))
        results[rows] = (*summary(ours), *summary(theirs))
        wall, rss, pd_wall, pd_rss = results[rows]
        print(
            f"  compare {rows:>10,} rows/side: parity {wall:6.2f} s {rss:6.0f} MiB | pandas {pd_wall:6.2f} s "
            f"{pd_rss:6.0f} MiB | wall ratio {wall / pd_wall:.2f}× (target ≤ 1.5×)"
        )
        a.unlink()
        b.unlink()
    return results


def logs_bench(work: Path, rows: int, repeat: int) -> None:
    script = work / "pandas_nginx.py"
    script.write_text(PANDAS_NGINX)
    log = work / "access.log"
    t = time.perf_counter()
    generate("nginx", log, rows, 3, 1.0)
    print(f"  generated {rows:,} nginx lines ({log.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f} s")
    ours, theirs = [], []
    command = [*PARITY, "baseline", "from-logs", "--format", "nginx", str(log), "-o", str(work / "base.json")]
    for _ in range(repeat):
        ours.append(run([*command, "--timing-field", "-1"], work))
        theirs.append(run([sys.executable, str(script), str(log)], work))
    (wall, rss), (pd_wall, pd_rss) = summary(ours), summary(theirs)
    print(
        f"  from-logs {rows:>8,} lines: parity {wall:6.2f} s {rss:6.0f} MiB | pandas {pd_wall:6.2f} s "
        f"{pd_rss:6.0f} MiB | wall ratio {wall / pd_wall:.2f}× (target ≤ 2×)"
    )
    log.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000], help="rows per side")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command per size (median wall)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--skip-logs", action="store_true", help="skip the nginx from-logs part")
    parser.add_argument(
        "--no-precompile", action="store_true", help="time parity compiling its own sources (see precompile)"
    )
    parser.add_argument(
        "--generate", nargs=5, metavar=("KIND", "PATH", "ROWS", "SEED", "SLOWER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.generate:
        kind, path, rows, seed, slower = args.generate
        if kind == "locust":
            locust_log(Path(path), int(rows), int(seed), float(slower))
        else:
            nginx_log(Path(path), int(rows), int(seed))
        return 0
    work = Path(tempfile.mkdtemp(prefix="analysis_speed_", dir=args.dir))
    try:
        print(f"files under {work}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
        if not args.no_precompile:
            precompile()
        results = compare_bench(work, sorted(args.rows), args.repeat)
        if len(results) > 1:
            low, high = min(results), max(results)
            growth = results[high][1] / results[low][1]
            print(f"  parity peak RSS {high:,} vs {low:,} rows: ×{growth:.2f} (target within ×0.8-1.2)")
        if not args.skip_logs:
            logs_bench(work, max(args.rows), args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

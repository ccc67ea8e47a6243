"""Locust's own ``--csv`` output, request logs of several processes, and the content-sniffing dispatcher.

Fixture headers are copied from files Locust 2.47 wrote (``StatsCSV.requests_csv_columns``,
``stats_history_csv_columns``, ``failures_columns``); the 0.x file is the example in Locust's 0.x docs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.demo.processes import fetch_stats, running_server
from parity.errors import BadInput
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import MetricResult
from parity.judge.stats import Outcome, Tolerance, decide, latency_evidence
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Window,
)
from parity.sketch import LatencySketch
from parity.sources import LOCUST_CSV_COLUMNS, load_measurement
from tests.conftest import ROOT, free_port, run_parity

FIXTURES = ROOT / "tests" / "fixtures" / "locust"


def _copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(FIXTURES / name, tmp_path / name)
    return tmp_path / names[0]


def test_stats_csv_known_answer_with_history_and_failures(tmp_path: Path) -> None:
    stats = _copy(tmp_path, "run_stats.csv", "run_stats_history.csv", "run_failures.csv")
    m = load_measurement(stats)
    assert m.source.kind is SourceKind.LOCUST_CSV
    assert m.source.kind.closed_loop
    assert "summary, closed loop" in m.source.description
    assert set(m.by_key()) == {"GET /api/items", "POST /api/orders"}  # "Aggregated" is not an endpoint
    items = m.by_key()["GET /api/items"]
    assert (items.count, items.errors) == (200, 10)
    assert items.latency == LatencySummary(
        avg_ms=152.5, max_ms=1234.5, p50_ms=140, p75_ms=160, p90_ms=190, p95_ms=210, p99_ms=300, quantile_digits=2
    )
    assert items.latency.quantile_bounds(0.95) == (205.0, 215.0)
    assert items.latency.quantile_bounds(1.0) is None  # max is exact
    assert m.by_key()["POST /api/orders"].latency.quantile_bounds(0.99) == (98.5, 99.5)  # type: ignore[union-attr]
    # run time = Aggregated count / Requests/s = 250 / 25 = 10 s, ending at the last history row + 1 s
    assert m.window.duration_s == pytest.approx(10.0)
    assert m.window.end.timestamp() == 1796000010
    # per-endpoint timeline from the full history's cumulative totals
    assert items.timeline is not None
    assert items.timeline.total == 200
    assert sum(e for e in items.timeline.errors or () if e) == 10
    again = measurement_json.read(measurement_json.write(m, tmp_path / "m.json"))  # the rounding survives JSON
    assert again.by_key()["GET /api/items"].latency == items.latency
    # the history alone reads through the stats next to it
    assert load_measurement(tmp_path / "run_stats_history.csv").by_key()["GET /api/items"].latency == items.latency


def test_history_alone_and_failures_that_do_not_add_up(tmp_path: Path) -> None:
    history = _copy(tmp_path, "run_stats_history.csv")
    m = load_measurement(history)
    items = m.by_key()["GET /api/items"]
    assert (items.count, items.errors) == (200, 10)
    assert items.latency == LatencySummary(avg_ms=152.5, max_ms=1234.5, p50_ms=140, quantile_digits=2)
    assert m.window.duration_s == pytest.approx(10.0)
    aggregated_only = tmp_path / "agg_stats_history.csv"
    lines = history.read_text().splitlines()
    aggregated_only.write_text("\n".join([lines[0], *(ln for ln in lines if ",Aggregated," in ln)]) + "\n")
    with pytest.raises(BadInput, match=r"only the Aggregated row.*--csv-full-history"):
        load_measurement(aggregated_only)
    stats = _copy(tmp_path, "run_stats.csv", "run_failures.csv")
    failures = tmp_path / "run_failures.csv"
    failures.write_text(failures.read_text().replace(",3,", ",4,"))
    with pytest.raises(BadInput, match=r"GET /api/items: 11 failures, the stats next to it say 10"):
        load_measurement(stats)


def test_locust_0x_requests_csv_counts_failures_as_requests(tmp_path: Path) -> None:
    m = load_measurement(_copy(tmp_path, "old_requests.csv"))
    assert {k: (e.count, e.errors) for k, e in m.by_key().items()} == {
        "GET /": (51, 0),
        "GET /does_not_exist": (56, 56),
        "GET /stats/requests": (58, 0),
    }
    assert m.by_key()["GET /"].latency == LatencySummary(avg_ms=3, max_ms=6, p50_ms=4, quantile_digits=2)
    assert m.window.duration_s == pytest.approx(165 / 1.89)


def _p95(base: Measurement, cand: Measurement) -> MetricResult:
    result = compare(base, cand, Policy())
    endpoint = next(e for e in result.endpoints if e.endpoint.key == "GET /api/items")
    return next(m for m in endpoint.metrics if m.metric == "p95_ms")


def test_rounding_alone_never_decides_a_summary_percentile(tmp_path: Path) -> None:
    """Locust p95 210 vs 230 ms stands for 205-215 vs 225-235: +4.7% … +14.6%, across the 5% tolerance."""
    base = load_measurement(_copy(tmp_path, "run_stats.csv"))
    text = (tmp_path / "run_stats.csv").read_text()
    slower = tmp_path / "slower_stats.csv"
    slower.write_text(text.replace(",190,210,260,300,", ",190,230,260,300,"))
    p95 = _p95(base, load_measurement(slower))
    assert p95.verdict.value == "inconclusive"
    assert "rounding decides it" in p95.reason
    assert p95.needs is None  # more requests would not resolve the rounding
    much = tmp_path / "much_stats.csv"
    much.write_text(text.replace(",190,210,260,300,", ",190,420,260,300,"))  # ×2: no rounding hides that
    assert _p95(base, load_measurement(much)).verdict.value == "fail"
    same = tmp_path / "same_stats.csv"
    same.write_text(text.replace("GET,/api/items,200,10,", "GET,/api/items,200,9,"))
    same.write_text(same.read_text().replace(",Aggregated,250,10,", ",Aggregated,250,9,"))
    assert _p95(base, load_measurement(same)).verdict.value == "pass"


def _sketch_p95(p95_ms: float, n: int = 5000) -> LatencyDistribution:
    """``n`` requests whose p95 is ``p95_ms`` (95% spread evenly from 20 ms up to it, 5% above it)."""
    sketch = LatencySketch()
    sketch.add_many(
        np.concatenate([np.linspace(20.0, p95_ms, round(n * 0.95)), np.linspace(p95_ms, p95_ms * 1.2, n // 20)])
    )
    return LatencyDistribution(sketch)


@pytest.mark.parametrize(
    ("reported", "sketch_p95", "sketch_is_candidate", "expected"),
    [
        # Locust reports 100 for a p95 anywhere in 99.5-105: a candidate at 106.4 may be 1% slower (was WORSE)
        (100.0, 106.4, True, Outcome.INCONCLUSIVE),
        # 110 stands for 105-115: a candidate at 115 may be 9.5% slower (was SAME: a pass)
        (110.0, 115.0, True, Outcome.INCONCLUSIVE),
        (100.0, 130.0, True, Outcome.WORSE),  # beyond any value the rounding allows
        (100.0, 100.0, True, Outcome.INCONCLUSIVE),  # 95-105 vs 100: the rounding spans the 5% tolerance
        (150.0, 150.0, True, Outcome.SAME),  # 145-155 vs 150: within 5% whatever the true value
        # the other way round: a request-level baseline at 100, Locust stats candidate 110 (105-115; was WORSE)
        (110.0, 100.0, False, Outcome.INCONCLUSIVE),
    ],
)
def test_rounded_locust_percentile_against_a_sketch(
    reported: float, sketch_p95: float, sketch_is_candidate: bool, expected: Outcome
) -> None:
    """A Locust stats p95 (rounded to 2 digits) judged against request-level data: the rounding range, not the
    rounded figure, decides; the p95 tolerance is the policy's default (+5% and 2 ms)."""
    summary = LatencySummary(avg_ms=60.0, max_ms=300.0, p95_ms=reported, quantile_digits=2)
    sketch = _sketch_p95(sketch_p95)
    counts = (100_000, 5000) if sketch_is_candidate else (5000, 100_000)
    if sketch_is_candidate:
        evidence = latency_evidence(summary, sketch, counts)["p95_ms"]
    else:
        evidence = latency_evidence(sketch, summary, counts)["p95_ms"]
    decision = decide(evidence, Tolerance(0.05, 2.0), evidence.p_value)
    assert decision.outcome is expected, decision.reason
    if expected is Outcome.INCONCLUSIVE:  # through compare: no "N requests would decide" (was 5001 for 106.4)
        latencies: tuple[LatencySummary | LatencyDistribution, ...] = (
            (summary, sketch) if sketch_is_candidate else (sketch, summary)
        )
        window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 10, tzinfo=UTC))
        sides = [
            Measurement(
                source=Source(SourceKind.LOCUST_CSV),
                window=window,
                endpoints=(EndpointStats(Endpoint("GET", "/api/items"), n, 0, latency),),
                latency_kind=LatencyKind.SERVICE_TIME,
            )
            for n, latency in zip(counts, latencies, strict=True)
        ]
        p95 = _p95(*sides)
        assert (p95.verdict.value, p95.needs) == ("inconclusive", None), p95.reason


def _log(rows: list[str]) -> str:
    return ",".join(LOCUST_CSV_COLUMNS) + "\n" + "".join(r + "\n" for r in rows)


def test_request_logs_one_per_process_merge_and_torn_files_are_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "requests-100.csv").write_text(_log([]))  # the master logs nothing
    (logs / "requests-101.csv").write_text(
        _log(["1796000001.5,GET,/a,12.5,10,200,", "1796000000.5,GET,/b,3,10,0,boom"])
    )
    (logs / "requests-102.csv").write_text(_log(["1796000001.0,GET,/a,20,10,500,\"HTTPError('500, x')\""]))
    m = load_measurement(logs)
    assert {k: (e.count, e.errors) for k, e in m.by_key().items()} == {"GET /a": (2, 1), "GET /b": (1, 1)}
    assert "3 files, one per process" in m.source.description
    assert load_measurement(str(logs / "requests-10[12].csv")).total_count == 3  # a quoted glob
    torn = tmp_path / "torn.csv"  # what two processes writing one file left (Locust 2.47, --processes 2)
    torn.write_text(
        _log(
            [
                "1796075209.030831,GET,/nope,24.75,335,404,x",
                "1796075209.055979,GET,/,4.96,585,200,1796075209.061119,GET,/,6.02,585,200,",
            ]
        )
    )
    with pytest.raises(BadInput, match=r"torn.csv: line 3: 13 fields, expected 7; several Locust processes"):
        load_measurement(torn)
    short = tmp_path / "short.csv"
    short.write_text(_log(["1796075209.0,GET,/,4.96,585,200,", "9,585,200,"]))
    with pytest.raises(BadInput, match=r"line 3: 4 fields, expected 7"):
        load_measurement(short)
    twice = tmp_path / "twice.csv"
    twice.write_text(_log(["1796075209.0,GET,/,4.96,585,200,", ",".join(LOCUST_CSV_COLUMNS)]))
    with pytest.raises(BadInput, match=r"line 3: the header again, mid-file"):
        load_measurement(twice)
    hole = tmp_path / "hole.csv"
    hole.write_bytes(_log(["1796075209.0,GET,/,4.96,585,200,"]).encode() + b"\0\0\0,GET,/,1,1,200,\n")
    with pytest.raises(BadInput, match=r"line 3: NUL bytes"):
        load_measurement(hole)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(FIXTURES / "run_stats.csv", mixed / "run_stats.csv")
    with pytest.raises(BadInput, match="no Locust request logs"):
        load_measurement(mixed)  # Locust's --csv files next to request logs are skipped, not read as logs
    (mixed / "notes.csv").write_text("a,b\n")
    with pytest.raises(BadInput, match=r"notes.csv: not a Locust request log \(unrecognised CSV header 'a,b'\)"):
        load_measurement(mixed)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ((FIXTURES / "run_failures.csv").read_text(), "looks like a Locust failures CSV"),
        ("Count,Message,Traceback,Nodes\n", "looks like a Locust exceptions CSV"),
        ("a,b,c\n1,2,3\n", "unrecognised CSV header 'a,b,c'"),
        ("", "an empty file"),
    ],
)
def test_refusals_say_what_was_seen_and_what_is_accepted(tmp_path: Path, content: str, said: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(BadInput) as info:
        load_measurement(path)
    message = str(info.value)
    assert said in message
    assert "Locust --csv PREFIX_stats.csv" in message
    assert "\n" not in message


def test_cli_refusal_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = _copy(tmp_path, "run_failures.csv")
    done = run_parity("compare", str(bad), str(FIXTURES / "run_stats.csv"), "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "looks like a Locust failures CSV" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


LOCUSTFILE = """\
import os
from locust import FastHttpUser, constant, events, task
from locust.contrib.csv_request_logger import CsvRequestLogger

@events.init.add_listener
def _init(environment, **kw):  # one log per process: the README's recipe
    CsvRequestLogger(os.path.join(os.environ["LOGS"], f"requests-{os.getpid()}.csv")).register(environment)

class U(FastHttpUser):
    wait_time = constant(0.05)
    @task
    def health(self):
        self.client.get("/health")
        self.client.get("/api/departments")
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server("old", seed=1) as url:
        yield url


@pytest.mark.e2e
def test_locust_csv_runs_with_and_without_processes_compare_directly(server: str, tmp_path: Path) -> None:
    locustfile = tmp_path / "plain.py"
    locustfile.write_text(LOCUSTFILE)
    before = fetch_stats(server)["total"]
    procs = []
    port = str(free_port())  # a port of our own: other tests' Locust masters run at the same time
    loopback = ["--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-host", "127.0.0.1"]
    for name, extra in (("one", []), ("two", ["--processes", "2", *loopback, "--master-port", port])):
        (tmp_path / name).mkdir()
        csv = str(tmp_path / name / "run")
        cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary", "--host", server,
               "-u", "4", "-r", "20", "-t", "3s", "--stop-timeout", "5", "--csv", csv, *extra]  # fmt: skip
        env = {**os.environ, "LOGS": str(tmp_path / name)}
        procs.append(  # cwd: away from the repo's own Locust config
            subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    try:
        outputs = [p.communicate(timeout=90)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-1500:] for o in outputs)
    sent = fetch_stats(server)["total"] - before
    one, two = (load_measurement(tmp_path / n / "run_stats.csv") for n in ("one", "two"))
    logs = [load_measurement(tmp_path / n) for n in ("one", "two")]  # directories of per-process request logs
    assert sum(m.total_count for m in logs) == sent  # the request logs, one per process, hold every request
    # Locust's own stats may miss requests that end after its last CSV write (seen: 218 of 234): never more
    assert 0 < one.total_count <= logs[0].total_count
    assert 0 < two.total_count <= logs[1].total_count
    assert set(one.by_key()) == set(two.by_key()) == {"GET /health", "GET /api/departments"}
    assert len(list((tmp_path / "two").glob("requests-*.csv"))) == 3  # master + 2 workers
    out = tmp_path / "report"
    done = run_parity("compare", str(tmp_path / "one" / "run_stats.csv"), str(tmp_path / "two" / "run_stats.csv"),
                      "--out", str(out))  # fmt: skip
    assert "Traceback" not in done.stderr
    verdict = json.loads((out / "parity.json").read_text())
    assert done.returncode == {"pass": 0, "marginal": 0, "fail": 1, "inconclusive": 3}[verdict["verdict"]], done.stderr
    assert {e["endpoint"] for e in verdict["endpoints"]} == {"GET /health", "GET /api/departments"}
    table = (out / "index.html").read_text()  # the verdict table (summary.md lists only what is not green)
    assert "GET /health" in table
    assert "GET /api/departments" in table
    rps = verdict["endpoints"][0]["metrics"]["rps"]
    assert rps["verdict"] != "fail"  # closed loop: throughput is shown, never judged

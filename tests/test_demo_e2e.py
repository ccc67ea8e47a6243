"""End to end: `parity demo` — the old and new demo services, ONE Locust run sending every request to both at
once, compare, reports. Asserts behaviour (which endpoints fail, counts), never a timing ratio."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest

from parity.explain import Kind
from tests.conftest import run_parity

pytestmark = pytest.mark.e2e

PLANTED = {"POST /api/payroll/calculations", "GET /api/reports/employees.csv"}
PAYROLL, EXPORT = "POST /api/payroll/calculations", "GET /api/reports/employees.csv"


def _component(entry: dict[str, Any], label: str) -> dict[str, Any]:
    return next(c for c in entry["components"] if c["label"] == label)


def _assert_explained(out: Path) -> dict[str, dict[str, Any]]:
    """The demo's explain.json: every endpoint explained from the services' traces (read back with the real client
    from the fake Datadog); the planted bottlenecks named by component and kind, the others nothing changed.
    Decided from server-side traces (call counts, large planted effects), not from this machine's timing."""
    document = json.loads((out / "explain.json").read_text())
    assert (document["old"]["env"], document["new"]["env"]) == ("old", "new")
    assert document["old"]["service"] == document["new"]["service"] == "hr-payroll"
    entries = {e["endpoint"]: e for e in document["explanations"]}
    assert len(entries) == 12, sorted(entries)
    for key, e in entries.items():
        assert e["available"], (key, e["sentence"])
        assert e["reads"]["old"]["traces"] >= 5, (key, e["reads"])
        assert e["reads"]["new"]["traces"] >= 5, (key, e["reads"])
    # the N+1: postgres, 3x the queries, named first; app code not blamed
    payroll = entries[PAYROLL]
    assert payroll["request"]["change"] == "slower", payroll["sentence"]
    assert payroll["named"][0] == "postgres", payroll["sentence"]
    postgres = _component(payroll, "postgres")
    assert (postgres["kind"], postgres["change"]) == (Kind.DATABASE.value, "slower")
    assert (postgres["old_calls"], postgres["new_calls"]) == (8.0, 24.0)
    assert postgres["calls_ratio"] == pytest.approx(3.0)
    assert "3.0× more queries" in payroll["sentence"], payroll["sentence"]
    assert _component(payroll, "app code")["change"] != "slower", payroll["sentence"]
    # the CPU-bound export: app code (the service's own time), its queries unchanged in number
    export = entries[EXPORT]
    assert export["request"]["change"] == "slower", export["sentence"]
    assert export["named"][0] == "app code", export["sentence"]
    app = _component(export, "app code")
    assert (app["kind"], app["own_service"], app["change"]) == (Kind.APP.value, True, "slower")
    export_pg = _component(export, "postgres")
    assert export_pg["change"] != "slower", export["sentence"]
    assert export_pg["old_calls"] == export_pg["new_calls"], export["sentence"]
    # every other endpoint: nothing changed (nothing named, nothing shown slower or faster, request not slower)
    for key, e in entries.items():
        if key in PLANTED:
            continue
        moved = [c["label"] for c in e["components"] if c["change"] in ("slower", "faster")]
        assert e["named"] == [], (key, e["sentence"])
        assert moved == [], (key, e["sentence"])
        assert e["request"]["change"] != "slower", (key, e["sentence"])
        assert e["sentence"].startswith(("nothing changed: ", "no change shown: ")), (key, e["sentence"])
    return entries


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_demo_pipeline_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # The default policy: a 45 s run sees ~100 exports and payroll calculations each, and a clear regression
    # fails at any sample size (no min_samples cut-off needed for it).
    done = run_parity("demo", "--duration", "45", "--out", str(out), timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("index.html", "parity.json", "junit.xml", "summary.md", "old.measurement.json",
                 "new.measurement.json"):  # fmt: skip
        assert (out / name).is_file(), name
    result = json.loads((out / "parity.json").read_text())
    assert result["mode"] == "concurrent-a/b"
    verdicts = {e["endpoint"]: e["verdict"] for e in result["endpoints"]}
    why = {e["endpoint"]: (e["verdict"], e["reasons"]) for e in result["endpoints"] if e["endpoint"] in PLANTED}
    assert len(verdicts) == 12
    # The planted bottlenecks take no real CPU and both services share one process: nothing else regresses.
    assert [k for k, v in verdicts.items() if v == "fail" and k not in PLANTED] == [], verdicts
    entries = _assert_explained(out)
    assert f"explanations: {out / 'explain.json'}" in done.stdout
    assert "no explanation" not in done.stdout + done.stderr
    if "load generator" in json.dumps(result):
        # The machine starved the replay's generator (its lag would inflate every latency): the judge leaves latency
        # unjudged, which is never a pass; seen with two CPU hogs and other suites beside this one on 2 cores
        assert result["verdict"] in ("fail", "inconclusive"), result["reasons"]
        assert all(verdicts[k] in ("fail", "inconclusive") for k in PLANTED), why
        return
    assert result["verdict"] == "fail", result["reasons"]
    assert all(verdicts[k] == "fail" for k in PLANTED), why
    assert {b["endpoint"] for b in result["bottlenecks"][:2]} == PLANTED
    assert "parity: FAIL" in done.stdout
    assert f"report: {out / 'index.html'}" in done.stdout
    # the why lines: under each bottleneck in the terminal, in summary.md and in the report
    summary, html = (out / "summary.md").read_text(), (out / "index.html").read_text()
    for key in PLANTED:
        why = entries[key]["sentence"]
        assert f"why: {why}" in done.stdout, done.stdout
        assert f"- {key}: {why}" in summary, summary
    assert "per request in postgres (3.0× more queries" in html
    old = json.loads((out / "old.measurement.json").read_text())
    new = json.loads((out / "new.measurement.json").read_text())
    assert old["pair_id"] == new["pair_id"] is not None
    # one schedule, both targets: the same requests
    assert {e["endpoint"]: e["count"] for e in old["endpoints"]} == {
        e["endpoint"]: e["count"] for e in new["endpoints"]
    }
    assert old["labels"]["schedule"] == new["labels"]["schedule"]
    assert (old["source"]["env"], new["source"]["env"]) == ("old", "new")
    assert (out / "locust.log").is_file()


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_a_short_demo_never_passes_while_the_bottlenecks_are_planted(tmp_path: Path) -> None:
    """15 s: ~30 exports and payroll calculations per side. It used to print a green PASS with both planted
    endpoints "not judged"; now they fail (decided on few requests), or at worst the run is inconclusive.

    Also: an explanation that fails never fails the demo nor changes its verdicts (explain.json cannot be written
    here: a directory holds its name): one ``no explanation:`` line, the reports without why lines."""
    out = tmp_path / "demo"
    (out / "explain.json").mkdir(parents=True)
    done = run_parity("demo", "--duration", "15", "--out", str(out), timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if "no explanation" in line] == [
        f"parity: no explanation: {out / 'explain.json'}: cannot write it: Is a directory"
    ], done.stderr
    assert "why:" not in done.stdout
    assert "Traceback" not in done.stderr
    assert "**Why**" not in (out / "summary.md").read_text()
    result = json.loads((out / "parity.json").read_text())
    assert result["verdict"] in ("fail", "inconclusive"), result["reasons"]
    for e in result["endpoints"]:
        if e["endpoint"] in PLANTED:
            # marginal (beyond tolerance, p <= 0.1 but not significant) is flagged too: seen once in ~30 requests
            # per side when 6 test suites shared the 2 cores and the contention slowed both sides alike
            assert e["verdict"] in ("fail", "marginal", "inconclusive"), e
            assert e["verdict"] in ("fail", "marginal") or e["looks_worse"], e  # never a quiet unjudged
        else:
            assert e["verdict"] != "fail", e


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Children started in the block get SIGINT's default action, as in a terminal: a suite started in the
    background (a CI runner, ``cmd &``) inherits SIGINT ignored, and an ignored signal stays ignored across
    exec while a handler does not."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _is_locust(process: psutil.Process) -> bool:
    """A running ``python -m locust`` (not any process whose paths merely contain "locust", e.g. a checkout's)."""
    try:
        args = process.cmdline()
    except psutil.Error:  # ended meanwhile
        return False
    return any(a == "-m" and b == "locust" for a, b in pairwise(args))


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    with _sigint_not_ignored():
        proc = subprocess.Popen(
            [sys.executable, "-m", "parity.cli", "demo", "--duration", "120", "--out", str(tmp_path / "demo")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    children: list[psutil.Process] = []
    while time.monotonic() < deadline:  # wait until the server and the Locust run are up
        children = parent.children(recursive=True)
        if sum(_is_locust(c) for c in children) >= 1:
            break
        time.sleep(0.5)
    assert len(children) >= 2
    time.sleep(3)
    assert proc.poll() is None, "the demo ended before it was interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]

"""Locust features on the replay: ``--tags`` refused with one line naming the replay's own endpoint filter,
``--endpoints``/``--exclude-endpoints`` (known answers on the plan, one short run judged as a filtered run), and
Locust's web UI starting a second run that writes its own Measurement."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import psutil
import pytest

from parity import measurement_json
from parity.demo.processes import fetch_stats, running_server
from parity.judge.compare import compare
from parity.judge.result import Verdict
from parity.model import Endpoint, RequestTemplate
from parity.replay.endpoint_filter import EndpointFilter, filter_plan, no_match_message, parse_globs
from parity.replay.plan import PlannedEndpoint, ReplayPlan, SkippedEndpoint
from parity.replay.process import run_path
from parity.replay.schedule import schedule_fingerprint
from tests.conftest import REPLAY_LOCUSTFILE, ROOT, free_port, run_replay

BASELINE = ROOT / "baselines" / "demo.json"


def _plan() -> ReplayPlan:
    keys = ("GET /api/employees", "GET /api/employees/{id}", "POST /api/session", "GET /health")
    endpoints = tuple(PlannedEndpoint(Endpoint.parse(k), RequestTemplate(path=k.split(" ")[1])) for k in keys)
    rates = np.array([[4.0, 4.0], [3.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    skipped = (
        SkippedEndpoint(Endpoint("", "employeescontroller_index"), 0.1, "unmapped"),
        SkippedEndpoint(Endpoint("GET", "/api/payslips/{id}"), 0.05, "no pool"),
    )
    return ReplayPlan(endpoints, rates, 60.0, skipped)


def test_globs_split_on_commas_and_repeats_and_match_key_or_route() -> None:
    assert parse_globs(["GET /api/*, /health", " ", "/health"]) == ("GET /api/*", "/health")
    f = EndpointFilter(include=("GET /api/employees*", "/health"), exclude=("*/{id}",))
    assert [f.keeps(Endpoint.parse(k)) for k in ("GET /api/employees", "GET /api/employees/{id}", "GET /health")] == [
        True,
        False,
        True,
    ]
    assert not f.keeps(Endpoint.parse("POST /api/employees"))  # a glob with a method matches the whole key
    assert EndpointFilter(include=("/api/*",)).keeps(Endpoint.parse("POST /api/session"))  # route only: any method


def test_filter_keeps_matching_rows_at_their_own_rates_and_drops_unasked_skipped() -> None:
    plan = _plan()
    result = filter_plan(plan, EndpointFilter(include=("GET /api/*",), exclude=("*/{id}",)))
    assert [p.endpoint.key for p in result.plan.endpoints] == ["GET /api/employees"]
    assert result.plan.rates.tolist() == [[4.0, 4.0]]  # not rescaled to the whole traffic
    assert (result.kept, result.total) == (1, 4)
    assert result.kept_share == pytest.approx(8.0 / 15.0)
    assert [s.endpoint.key for s in result.plan.skipped] == []  # payslips was filtered out, the unmapped name too
    whole = filter_plan(plan, EndpointFilter())
    assert whole.plan is plan
    assert whole.kept_share == 1.0
    none = filter_plan(plan, EndpointFilter(include=("GET /nothing",)))
    assert none.plan.endpoints == ()
    assert none.plan.rates.shape == (0, 2)
    message = no_match_message(plan, EndpointFilter(include=("GET /nothing",)), "b.json")
    assert message == (
        "--endpoints 'GET /nothing' keeps no replayable endpoint of b.json; endpoint keys are METHOD /route, e.g. "
        "GET /api/employees, GET /api/employees/{id}, GET /health, POST /api/session"
    )
    assert EndpointFilter(exclude=("/x", "GET /health")).unmatched([p.endpoint for p in plan.endpoints]) == ("/x",)


def test_schedule_fingerprint_names_the_filter_and_run_paths_number_the_runs() -> None:
    common = {"baseline": "b", "seed": 1, "shape": {"kind": "replay"}, "run_time_s": 6.0, "rate_scale": 1.0}
    whole = schedule_fingerprint(**common, load_factors={})  # type: ignore[arg-type]
    assert whole == schedule_fingerprint(**common, load_factors={}, endpoints=())  # type: ignore[arg-type]
    assert whole != schedule_fingerprint(**common, load_factors={}, endpoints=["GET /health"])  # type: ignore[arg-type]
    assert run_path("reports/new.json", 1) == Path("reports/new.json")
    assert run_path("reports/new.json", 2) == Path("reports/new-2.json")
    assert run_path("r/new.old.json", 3) == Path("r/new.old-3.json")


@pytest.mark.e2e
def test_tags_end_at_once_with_one_line_naming_the_endpoint_filter(tmp_path: Path) -> None:
    """Before: Locust filtered the replay's only task away and looped on "No tasks defined" (112 MB of log in
    30 s, -t ignored, no Measurement). Now: exit 2 at start-up, one line, nothing written."""
    out = tmp_path / "run.json"
    for tags in (["--tags", "X"], ["--exclude-tags", "a", "b"]):
        started = time.monotonic()
        done = run_replay(
            "--host", "http://127.0.0.1:9", "--baseline", str(BASELINE), "-t", "3s", "--parity-out", str(out), *tags,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr[-2000:]
        assert time.monotonic() - started < 45
        errors = [line for line in done.stderr.splitlines() if "parity: error:" in line]
        assert len(errors) == 1, done.stderr[-2000:]
        assert "--endpoints GLOB / --exclude-endpoints GLOB" in errors[0]
        assert "No tasks defined" not in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr) < 5000
        assert not out.exists()
    nothing = run_replay(
        "--host", "http://127.0.0.1:9", "--baseline", str(BASELINE), "-t", "3s", "--endpoints", "GET /x"
    )
    assert nothing.returncode == 2
    assert "keeps no replayable endpoint" in nothing.stderr
    assert "GET /api/departments" in nothing.stderr


@pytest.mark.e2e
def test_filtered_replay_sends_only_the_kept_endpoints_and_cannot_pass(tmp_path: Path) -> None:
    """One short run with a filter: the server receives only the kept endpoints, the Measurement says what was
    filtered, and judged against the whole baseline the run is never a pass (nor a fail from the missing ones)."""
    out = tmp_path / "run.json"
    with running_server("old", seed=1) as url:
        before = fetch_stats(url)["requests"]
        done = run_replay(
            "--host", url, "--baseline", str(BASELINE), "-t", "2s", "--parity-out", str(out),
            "--endpoints", "GET /api/employees*,/health", "--exclude-endpoints", "*/attendance",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        after = fetch_stats(url)["requests"]
    received = {k for k in after if after[k] - before.get(k, 0) > 0}
    assert received == {"GET /api/employees", "GET /api/employees/{id}", "GET /health"}
    m = measurement_json.read(out)
    assert {e.endpoint.key for e in m.endpoints} == received
    assert (
        m.labels["endpoints"]
        == "--endpoints 'GET /api/employees*' --endpoints '/health' --exclude-endpoints '*/attendance'"
    )
    assert m.labels["incomplete"].startswith("endpoint filter --endpoints 'GET /api/employees*'")
    assert "3 of 12 replayable endpoints" in m.labels["incomplete"]
    result = compare(measurement_json.read(BASELINE), m)
    assert result.verdict is not Verdict.PASS
    assert any("endpoint filter" in r for r in result.reasons)
    missing = [r for r in result.endpoints if r.endpoint.key not in received]
    assert missing
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in missing)


def _post(ui: str, path: str, form: dict[str, str] | None = None) -> dict[str, object]:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(f"{ui}{path}", data=data, timeout=10) as answer:
        return dict(json.loads(answer.read()))


@pytest.fixture(params=[1, 2], ids=["one-process", "processes-2"])
def web_ui(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Path, subprocess.Popen[str]]]:
    """A demo server and a replay in Locust's web UI mode listening on loopback, in one process or with
    ``--processes 2`` (its master on a port of its own): (target, UI URL, out, process), once every worker
    is connected."""
    port, processes = free_port(), int(request.param)
    master = str(free_port())
    more = ["--processes", "2", "--master-bind-port", master, "--master-port", master] if processes > 1 else []
    out = tmp_path / "run.json"
    with running_server("new", seed=1) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(REPLAY_LOCUSTFILE), "--web-port", str(port), "--host", url,
             "--baseline", str(BASELINE), "-t", "2s", "--request-timeout", "2", "--parity-out", str(out), *more],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            ui = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the web UI did not start listening, or its workers connect"
                try:
                    with urllib.request.urlopen(f"{ui}/stats/requests", timeout=5) as answer:
                        if processes == 1 or json.loads(answer.read()).get("worker_count") == processes:
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            yield url, ui, out, proc
        finally:
            proc.kill()
            proc.wait()


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path.name} was not written"
        time.sleep(0.1)


@pytest.mark.e2e
def test_web_ui_start_stop_start_gives_two_measurements(web_ui: tuple[str, str, Path, subprocess.Popen[str]]) -> None:
    """Start, Stop, Start again from the web UI's form (as its JavaScript posts it): two Measurements, run 1
    (stopped: partial) in --parity-out and run 2 (complete) in <stem>-2.json, each on its own schedule from time
    zero; the form's user count and ramp-up do not change what is sent. With --processes 2 too (the workers
    report ready again after the Stop: the second Start gives both their lane), and every listening socket of
    the master (web UI, workers' port) is on loopback."""
    url, ui, out, proc = web_ui
    listening = [c.laddr for c in psutil.Process(proc.pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert listening
    assert {a.ip for a in listening} == {"127.0.0.1"}
    form = {"user_count": "50", "spawn_rate": "7", "host": url}
    before = fetch_stats(url)["total"]
    assert _post(ui, "/swarm", form)["success"] is True
    deadline = time.monotonic() + 30
    while fetch_stats(url)["total"] == before:  # stopped once it sends (a worker's lane starts 1 s after Start)
        assert time.monotonic() < deadline, "run 1 sent nothing"
        time.sleep(0.1)
    assert _post(ui, "/stop")["success"] is True
    _wait_for(out, proc)
    assert _post(ui, "/swarm", form)["success"] is True
    second = run_path(out, 2)
    _wait_for(second, proc)
    first, again = measurement_json.read(out), measurement_json.read(second)
    assert first.labels["complete"] == "no"
    assert first.labels["stopped"].startswith("stopped from Locust (web UI)")
    assert again.labels["complete"] == "yes"
    assert again.labels["run"] == "2"
    assert "stopped" not in again.labels
    assert again.window.start >= first.window.end  # its own schedule, from its own time zero
    assert again.window.end - again.window.start == timedelta(seconds=2)
    assert first.labels["schedule"] == again.labels["schedule"]
    assert again.total_count > first.total_count > 0
    assert again.generator is not None
    assert isinstance(proc.args, list)
    assert again.generator.processes == (2 if "--processes" in proc.args else 1)
    assert "lost_lanes" not in again.labels
    assert again.generator.sent == again.total_count + again.generator.in_flight

"""`parity baseline from-logs` (and, end to end, a log-made baseline driving a replay and a compare)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.demo.processes import running_server
from tests.conftest import run_parity, run_replay


def alb_line(t: datetime, method: str, path: str, seconds: float, status: int = 200) -> str:
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"http {stamp} app/lb/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 {seconds:.3f} 0.000 "
        f'{status} {status} 34 366 "{method} http://www.example.com:80{path} HTTP/1.1" "curl/7.46.0" - - '
        "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "
        f'"Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 {stamp} "forward" "-" "-" "10.0.0.1:80" '
        f'"{status}" "-" "-" TID_1234abcd5678ef90'
    )


def make_log(path: Path, n: int = 1200, malformed: int = 0) -> dict[str, list[float]]:
    """An ALB log over 20 minutes: employee detail (ids), health, departments; returns latencies (ms)."""
    rng = np.random.default_rng(9)
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    kinds = [("GET", "/api/employees/{}", 12.0), ("GET", "/health", 1.0), ("GET", "/api/departments", 5.0)]
    truth: dict[str, list[float]] = {}
    lines = []
    for i in range(n):
        method, template, median = kinds[i % 3]
        ms = float(np.round(rng.lognormal(np.log(median), 0.4), 0))  # ALB logs milliseconds resolution
        concrete = template.format(1001 + 7 * (i % 50))
        key = f"{method} {template.format('{id}')}"
        truth.setdefault(key, []).append(ms)
        lines.append(alb_line(start + timedelta(seconds=i), method, concrete, ms / 1000))
    lines += ["not an alb line"] * malformed
    path.write_text("\n".join(lines) + "\n")
    return truth


def test_from_logs_writes_a_baseline_with_the_right_mix(tmp_path: Path) -> None:
    log = tmp_path / "alb.log"
    truth = make_log(log)
    out = tmp_path / "logs.json"
    done = run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out), "--service", "web")
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: 1200 requests on 3 endpoints" in done.stdout
    m = measurement_json.read(out)
    assert m.source.service == "web"
    counts = {e.endpoint.key: e.count for e in m.endpoints}
    assert counts == {k: len(v) for k, v in truth.items()}
    employee = m.by_key()["GET /api/employees/{id}"]
    assert employee.latency is not None
    assert employee.latency.mean == pytest.approx(np.mean(truth["GET /api/employees/{id}"]))
    assert employee.request is not None
    assert len(employee.request.params["id"]) == 50


def test_from_logs_records_the_time_zone_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    log = tmp_path / "alb.log"
    make_log(log)
    out = tmp_path / "logs.json"
    command = ("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out), "--timezone")
    bad = run_parity(*command, "Mars/Base")
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]  # argparse's usage, then the error
    assert last.endswith("not a time zone: 'Mars/Base' (expected e.g. Europe/Berlin or +02:00)")
    assert not out.exists()
    done = run_parity(*command, "Europe/Berlin")
    assert done.returncode == 0, done.stderr
    assert measurement_json.read(out).labels["timezone"] == "Europe/Berlin"  # the report's charts read it


def test_from_logs_with_an_annotate_route_map_prints_the_skipped_lines(tmp_path: Path) -> None:
    routes = Path(__file__).parent / "fixtures" / "routes" / "engines_routes.rb"
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    requests = [("DELETE", "/blazer/checks/5"), ("GET", "/api/v1/employees/1042"), ("GET", "/pghero/space")] * 4
    log = tmp_path / "alb.log"
    log.write_text("\n".join(alb_line(start + timedelta(seconds=i), m, p, 0.01) for i, (m, p) in enumerate(requests)))
    out = tmp_path / "logs.json"
    done = run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out), "--routes", str(routes))
    assert done.returncode == 0, done.stderr
    assert {e.endpoint.key: e.count for e in measurement_json.read(out).endpoints} == {
        "DELETE /blazer/checks/{id}": 4,  # the engine's mount prefix is applied
        "GET /api/v1/employees/{id}": 4,
        "GET /pghero/space": 4,
    }
    assert (
        "  route map annotate Route Map engines_routes.rb: 151 routes; 15 lines skipped: 12 mounts (engine or Rack "
        "app), 2 redirects, 1 targets not controller#action (e.g. line "
    ) in done.stdout


def test_from_logs_refuses_too_many_malformed_lines_and_writes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "alb.log"
    make_log(log, n=300, malformed=10)
    out = tmp_path / "logs.json"
    done = run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out))
    assert done.returncode == 2
    assert done.stderr.startswith(f"parity: error: {log}: 10 of 310 lines")
    assert done.stderr.count("\n") == 1
    assert not out.exists()
    ok = run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out), "--max-malformed", "0.05")
    assert ok.returncode == 0, ok.stderr
    assert "malformed 10" in ok.stdout
    bad_share = run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out), "--max-malformed", "2")
    assert bad_share.returncode == 2


@pytest.mark.e2e
def test_log_baseline_drives_replay_and_compare(tmp_path: Path) -> None:
    log = tmp_path / "alb.log"
    make_log(log)
    baseline = tmp_path / "logs.json"
    assert run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(baseline)).returncode == 0
    run = tmp_path / "run.json"
    with running_server("old") as url:
        replay = run_replay(
            "--host", url, "--baseline", str(baseline), "-t", "4s", "--rate-scale", "20", "--parity-out", str(run)
        )
    assert replay.returncode == 0, replay.stderr[-2000:]
    m = measurement_json.read(run)
    assert set(m.by_key()) == {"GET /api/employees/{id}", "GET /health", "GET /api/departments"}
    assert all(e.errors == 0 for e in m.endpoints)  # the pooled ids exist on the demo service
    done = run_parity("compare", str(baseline), str(run), "--out", str(tmp_path / "report"))
    assert done.returncode in (0, 1, 3), done.stderr
    result = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert result["mode"] == "before/after"
    assert {e["endpoint"] for e in result["endpoints"]} == set(m.by_key())


# --- from-logs --window-of: the candidate's own access log over a replay's window --------------------------

LOG_START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # make_log: one request a second from here, 20 minutes


def _replay_file(tmp_path: Path, start: datetime, duration_s: float) -> Path:
    from tests.test_replay_window import replay_measurement

    replay = replay_measurement(
        start,
        duration_s,
        counts={"GET /api/employees/{id}": 100, "GET /health": 5},
        rate_scale=2.5,
        load_factors={"GET /health": 3.0},
    )
    return measurement_json.write(replay, tmp_path / "run.json")


def test_from_logs_window_of_keeps_the_replays_window_and_labels_it(tmp_path: Path) -> None:
    from parity.model import LABEL_REPLAY_OF, LABEL_SCHEDULE, LatencyKind, SourceKind, fingerprint
    from parity.sources.replay_window import LABEL_WINDOW_OF

    log = tmp_path / "alb.log"
    make_log(log)  # request i created at LOG_START + i s, i = 0..1199, endpoints cycling employee/health/departments
    replay_path = _replay_file(tmp_path, LOG_START + timedelta(seconds=300.25), 120.0)  # 300.25 s to 420.25 s
    out = tmp_path / "run.log.json"
    done = run_parity(
        "baseline", "from-logs", "--format", "alb", str(log), "--window-of", str(replay_path), "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    # kept: created from 299.25 s to 421.25 s (± 1 s slack) → requests 300 … 421 = 122 of 1200
    assert "wrote" in done.stdout
    assert f"{out}: 122 requests on 3 endpoints" in done.stdout
    assert "outside the replay's window (± 1 s): 1078 requests dropped (300 before, 778 after)" in done.stdout
    assert "not replayable" not in done.stdout
    m = measurement_json.read(out)
    replay = measurement_json.read(replay_path)
    counts = {e.endpoint.key: e.count for e in m.endpoints}
    assert counts == {"GET /api/employees/{id}": 41, "GET /health": 41, "GET /api/departments": 40}
    assert m.window == replay.window
    assert m.rate_scale == 2.5
    assert (m.latency_kind, m.source.kind) == (LatencyKind.SERVER, SourceKind.ACCESS_LOG)
    assert m.labels[LABEL_REPLAY_OF] == replay.labels[LABEL_REPLAY_OF]
    assert m.labels[LABEL_SCHEDULE] == replay.labels[LABEL_SCHEDULE]
    assert m.labels[LABEL_WINDOW_OF] == fingerprint(replay)
    assert m.labels["outside_window"] == "1078"
    assert m.by_key()["GET /health"].load_factor == 3.0
    assert m.by_key()["GET /api/departments"].load_factor == 1.0
    assert (m.source.service, m.source.env) == ("web", "eks")  # from the replay: the logs name none


def _one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("parity: error: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


def test_from_logs_window_of_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    log = tmp_path / "alb.log"
    make_log(log, n=30)
    out = tmp_path / "out.json"

    def from_logs(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_parity("baseline", "from-logs", "--format", "alb", str(log), "-o", str(out), *extra)

    _one_line_error(from_logs("--window-of", str(tmp_path / "missing.json")), "missing.json: no such file")
    (tmp_path / "broken.json").write_text('{"format": "parity-measurement"')
    _one_line_error(from_logs("--window-of", str(tmp_path / "broken.json")), "broken.json: not valid JSON")
    baseline = tmp_path / "baseline.json"
    assert from_logs().returncode == 0
    out.rename(baseline)
    _one_line_error(from_logs("--window-of", str(baseline)), "baseline.json: not a replay (source kind access-log)")
    later = _replay_file(tmp_path, LOG_START + timedelta(hours=2), 60.0)
    _one_line_error(
        from_logs("--window-of", str(later)),
        "alb.log: no request in the window 2026-11-01T11:00:00+00:00 to 2026-11-01T11:01:00+00:00 (± 1 s)",
        "(30 before, 0 after)",
    )
    _one_line_error(from_logs("--window-slack", "2"), "--window-slack applies to --window-of")
    assert not out.exists()

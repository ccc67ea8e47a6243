"""`parity baseline from-logs` (and, end to end, a log-made baseline driving a replay and a compare)."""

from __future__ import annotations

import json
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

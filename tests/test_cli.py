"""The `parity compare` command: exit codes, one-line errors, the four report files."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from tests.conftest import lognormal_side, run_parity


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    base = lognormal_side({"GET /a": 20, "POST /b": 150}, seed=1)
    same = lognormal_side({"GET /a": 20, "POST /b": 150}, seed=2)
    slow = lognormal_side({"GET /a": 20, "POST /b": 300}, seed=3)
    tiny = lognormal_side({"GET /a": 20, "POST /b": 150}, n=5, seed=4)
    return {
        name: measurement_json.write(m, tmp_path / f"{name}.json")
        for name, m in {"base": base, "same": same, "slow": slow, "tiny": tiny}.items()
    }


def test_compare_a_file_with_itself_exits_0_and_writes_four_reports(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_parity("compare", str(files["base"]), str(files["base"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html",
        "junit.xml",
        "parity.json",
        "summary.md",
    ]
    assert json.loads((out / "parity.json").read_text())["verdict"] == "pass"
    assert done.stdout.startswith("parity: PASS")
    assert f"report: {out / 'index.html'}" in done.stdout


def test_independent_runs_of_the_same_service_exit_0(files: dict[str, Path], tmp_path: Path) -> None:
    assert run_parity("compare", str(files["base"]), str(files["same"]), "--out", str(tmp_path / "r")).returncode == 0


def test_planted_regression_exits_1(files: dict[str, Path], tmp_path: Path) -> None:
    done = run_parity("compare", str(files["base"]), str(files["slow"]), "--out", str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr
    result = json.loads((tmp_path / "r" / "parity.json").read_text())
    assert result["verdict"] == "fail"
    assert {e["endpoint"]: e["verdict"] for e in result["endpoints"]} == {"POST /b": "fail", "GET /a": "pass"}
    assert result["bottlenecks"][0]["endpoint"] == "POST /b"
    assert "1. POST /b" in done.stdout


def test_a_reader_that_goes_away_changes_neither_the_exit_code_nor_the_reports(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """``parity compare ... | head -1``: the pipe's reader is gone before the first line; the verdict's exit code
    (0 here, where a broken pipe used to give a traceback and 1, "regression found") and the reports stand."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "parity.cli", "compare", str(files["base"]), str(files["same"]),
             "--out", str(tmp_path / "r")],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads((tmp_path / "r" / "parity.json").read_text())["verdict"] == "pass"


def test_not_enough_data_exits_3(files: dict[str, Path], tmp_path: Path) -> None:
    done = run_parity("compare", str(files["tiny"]), str(files["tiny"]), "--out", str(tmp_path / "r"))
    assert done.returncode == 3
    assert json.loads((tmp_path / "r" / "parity.json").read_text())["verdict"] == "inconclusive"


def test_missing_file_exits_2_with_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    done = run_parity("compare", str(files["base"]), str(missing), "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr == f"parity: error: {missing}: no such file\n"
    assert not (tmp_path / "r").exists()


def test_malformed_file_exits_2_naming_file_and_field(files: dict[str, Path], tmp_path: Path) -> None:
    data = json.loads(files["base"].read_text())
    data["endpoints"][1]["errors"] = -1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    done = run_parity("compare", str(bad), str(files["base"]), "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"parity: error: {bad}: endpoints[1].errors: ")
    assert "Traceback" not in done.stderr


def test_bad_config_exits_2(files: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "parity.toml"
    config.write_text("[compare]\ntolerance = 1\n")
    done = run_parity(
        "compare", str(files["base"]), str(files["base"]), "--out", str(tmp_path / "r"), "--config", str(config)
    )
    assert done.returncode == 2
    known = (
        "alpha, endpoints, fail_on, latency, marginal_alpha, max_generator_lag_ms, max_generator_saturated_share, "
        "max_inconclusive_share, metrics, min_samples, slo_p95_ms"
    )
    assert done.stderr == f"parity: error: {config}: compare.tolerance: unknown key (known: {known})\n"


def test_config_is_found_in_the_working_directory(files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "parity.toml").write_text(
        "[compare.metrics.p50_ms]\ntolerance = 2.0\n[compare.metrics.avg_ms]\n"
        "tolerance = 2.0\n[compare.metrics.p95_ms]\ntolerance = 2.0\n"
        "[compare.metrics.p99_ms]\ntolerance = 2.0\n[compare.metrics.shift]\ntolerance = 2.0\n"
    )
    done = run_parity("compare", str(files["base"]), str(files["slow"]), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout  # x2 is within a +200% tolerance
    meta = json.loads((tmp_path / "r" / "parity.json").read_text())["meta"]
    assert meta["config"].endswith("parity.toml")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_parity("compare", "only-one").returncode == 2
    assert run_parity("frobnicate").returncode == 2
    done = run_parity("demo", "--duration", "0")
    assert done.returncode == 2
    assert done.stderr == "parity: error: --duration must be > 0 seconds, got 0\n"


def test_plan_shows_what_each_endpoint_gets_and_needs(tmp_path: Path) -> None:
    done = run_parity(
        "plan", "baselines/demo.json", "-t", "75s", "--rate-scale", "1.5", cwd=Path(__file__).parent.parent
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0]
        == "parity plan: baselines/demo.json replayed for 75 s (replay shape, rate scale 1.5): ~8,731 requests on "
        "12 endpoints"
    )
    row = next(line for line in lines if line.strip().startswith("GET /health"))
    assert row.split()[2:4] == ["8.0%", "700"]  # share, planned requests
    assert row.rstrip().endswith("ok")
    assert any(line.strip().startswith("POST /api/payroll/calculations") and "rare" in line for line in lines)
    advice = lines[-1]
    assert advice.startswith("  to judge them all: -t ")
    assert "--rate-scale" in advice
    assert "--min-endpoint-rps" in advice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "soon"], "expected a duration such as 90, 90s, 2m or 1h30m"),
        (["-t", "60s", "--rate-scale", "0"], "expected a number > 0"),
    ],
)
def test_plan_rejects_bad_options_in_one_line(args: list[str], message: str) -> None:
    done = run_parity("plan", "baselines/demo.json", *args, cwd=Path(__file__).parent.parent)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_ab_keeps_what_follows_a_double_dash_for_locust() -> None:
    from parity.cli import build_parser

    parser = build_parser()
    common = ["ab", "b.json", "--old", "http://old.internal:8080", "--new", "http://new.internal:8080"]
    args = parser.parse_args([*common, "-t", "1m30s", "--", "--master", "--expect-workers", "2"])
    assert args.duration == 90.0
    assert args.locust_args == ["--master", "--expect-workers", "2"]
    assert parser.parse_args(common).locust_args == []
    assert parser.parse_args(["compare", "a", "b", "--out", "r"]).candidate == Path("b")  # others unaffected


def test_replay_command_line_is_built_in_one_place() -> None:
    from parity.replay.process import ReplayRun, replay_args
    from parity.replay.rails import Rails

    run = ReplayRun(
        baseline=Path("b.json"),
        host="http://new:8080",
        out=Path("out/new.json"),
        old_host="http://old:8080",
        old_out=Path("out/old.json"),
        run_time_s=30.0,
        shape="steady",
        rps=50.0,
        min_endpoint_rps=5.0,
        processes=2,
        rails=Rails(allow_hosts=("new", "old"), max_rps=100.0, abort_error_ratio=0.2),
        extra=("--master",),
    )
    args = replay_args(run)
    pairs = dict(itertools.pairwise(args))
    assert pairs["--host"] == "http://new:8080"
    assert pairs["--old-host"] == "http://old:8080"
    assert (pairs["--parity-out"], pairs["--old-out"]) == ("out/new.json", "out/old.json")
    assert (pairs["-t"], pairs["--shape"], pairs["--rps"], pairs["--min-endpoint-rps"]) == ("30s", "steady", "50", "5")
    assert (pairs["--max-rps"], pairs["--abort-error-ratio"], pairs["--abort-window"]) == ("100", "0.2", "30")
    assert [args[i + 1] for i, a in enumerate(args) if a == "--allow-host"] == ["new", "old"]
    assert pairs["--processes"] == "2"
    assert "--master-port" not in args  # Locust's 5557 (run_replay picks a free port when none is given)
    assert args[-1] == "--master"
    on_port = replay_args(replace(run, master_port=5601))
    on_pairs = dict(itertools.pairwise(on_port))
    assert (on_pairs["--master-bind-port"], on_pairs["--master-host"], on_pairs["--master-port"]) == (
        "5601",
        "127.0.0.1",
        "5601",
    )
    assert "--step-duration" not in args
    single = replay_args(ReplayRun(baseline=Path("b.json"), host="http://new:8080", out=Path("o.json")))
    assert "--old-host" not in single
    assert "-t" not in single  # a ramp's run time is its steps x step duration


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--old", "ftp://old"], "argument --old: expected a base URL"),
        (["--old", "http://old", "-t", "0"], "argument -t/--duration: duration must be > 0"),
        (["--old", "http://old", "--rate-scale", "-1"], "argument --rate-scale: expected a number > 0"),
    ],
)
def test_ab_bad_options_exit_2(extra: list[str], message: str, tmp_path: Path) -> None:
    done = run_parity("ab", "b.json", "--new", "http://new", *extra, "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _closed_loop_log(path: Path, medians: dict[str, float], requests: int, seed: int) -> Path:
    """A CsvRequestLogger file of a closed-loop run: ``requests`` per endpoint over 600 s, lognormal latency."""
    rng = np.random.default_rng(seed)
    rows = ["timestamp,request_type,name,response_time_ms,response_length,status_code,exception"]
    for key, median in medians.items():
        method, name = key.split(" ", 1)
        times, latencies = np.sort(rng.uniform(0, 600, requests)), rng.lognormal(np.log(median), 0.3, requests)
        for t, ms in zip(times, latencies, strict=True):
            rows.append(f"{1_790_000_000 + t:.3f},{method},{name},{ms:.2f},512,200,")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_closed_loop_request_logs_fail_only_the_slower_endpoint(tmp_path: Path) -> None:
    """Two runs of a user's own locustfile (users wait for each response): one endpoint x1.5 slower, and
    every endpoint has 20% fewer requests because the users waited longer — exactly that endpoint fails."""
    keys = {"GET /a": 20.0, "GET /b": 30.0, "POST /c": 50.0}
    before = _closed_loop_log(tmp_path / "before.csv", keys, 3000, seed=1)
    after = _closed_loop_log(tmp_path / "after.csv", {**keys, "GET /b": 45.0}, 2400, seed=2)
    out = tmp_path / "report"
    done = run_parity("compare", str(before), str(after), "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads((out / "parity.json").read_text())
    assert {e["endpoint"]: e["verdict"] for e in result["endpoints"]} == {
        "GET /b": "fail",
        "GET /a": "pass",
        "POST /c": "pass",
    }
    assert result["throughput"]["gated"] is False
    for e in result["endpoints"]:
        assert e["metrics"]["rps"]["gated"] is False  # x0.8 everywhere: shown, not judged
        assert e["metrics"]["rps"]["ratio"] < 0.85

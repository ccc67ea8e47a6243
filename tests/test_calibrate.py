"""``parity calibrate``: A/A noise floor, false-alarm rate and suggested tolerances (core and command line)."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest

from parity import measurement_json
from parity.config import load_config
from parity.judge.calibrate import SAFETY, calibrate
from parity.judge.compare import compare
from parity.judge.policy import DEFAULT_RULES, Policy
from parity.judge.result import Verdict
from parity.model import Measurement
from tests.conftest import lognormal_side, run_parity

ENDPOINTS = {"GET /a": 20.0, "GET /b": 50.0, "POST /c": 120.0}
#: Run-to-run drift of the same target (caches, neighbours): every latency of run i times DRIFT[i].
DRIFT = (1.00, 1.03, 0.98, 1.07)


def _runs(drift: tuple[float, ...] = DRIFT, n: int = 20_000) -> list[Measurement]:
    return [lognormal_side({k: v * f for k, v in ENDPOINTS.items()}, n=n, seed=10 + i) for i, f in enumerate(drift)]


def test_drift_between_runs_is_found_and_absorbed_by_the_suggested_tolerances() -> None:
    runs = _runs()
    cal = calibrate(runs)
    assert (cal.runs, cal.pairs) == (4, 12)  # ordered pairs
    assert cal.false_alarms > 0  # 0.98 -> 1.07 is +9%: significant and beyond the default 5%
    assert "GET /b" in cal.false_alarm_endpoints
    floors = {f.metric: f for f in cal.floors}
    avg = floors["avg_ms"]
    assert avg.observations == 12 * 3
    assert avg.significant > 0
    assert avg.max_significant_relative == pytest.approx(1.07 / 0.98 - 1, abs=0.02)
    assert avg.suggested.tolerance == pytest.approx(math.ceil(SAFETY * avg.max_significant_relative * 100) / 100)
    assert avg.suggested.tolerance > DEFAULT_RULES["avg_ms"].tolerance
    assert cal.suggested_false_alarms == 0
    assert compare(runs[2], runs[3], cal.suggested_policy(Policy())).verdict is not Verdict.FAIL
    errors = floors["error_rate"]
    assert errors.suggested == errors.current  # no errors: nothing to calibrate


def test_a_quiet_environment_keeps_the_current_tolerances() -> None:
    cal = calibrate(_runs((1.0, 1.0, 1.0)))
    assert cal.false_alarms == 0
    assert all(f.suggested == f.current for f in cal.floors if f.significant == 0)
    assert cal.suggested_false_alarms == 0


def test_one_run_is_not_a_calibration() -> None:
    with pytest.raises(ValueError, match="at least 2 runs"):
        calibrate(_runs((1.0,)))


def test_calibrate_command_writes_the_suggestions_into_the_config(tmp_path: Path) -> None:
    paths = [measurement_json.write(m, tmp_path / f"run{i}.json") for i, m in enumerate(_runs())]
    config = tmp_path / "parity.toml"
    config.write_text('# team settings\n[compare]\nfail_on = "any"  # keep this comment\n')
    out = tmp_path / "calibration.json"
    done = run_parity("calibrate", *map(str, paths), "--config", str(config), "--write", "--out", str(out), timeout=180)
    assert done.returncode == 0, done.stderr
    assert "parity calibrate: 4 A/A runs, 12 pairs" in done.stdout
    assert "with the suggested tolerances: 0/12 pairs fail" in done.stdout
    text = config.read_text()
    assert "# team settings" in text
    assert "# keep this comment" in text
    written = tomllib.loads(text)["compare"]["metrics"]
    doc = json.loads(out.read_text())
    suggested = {f["metric"]: f["suggested"] for f in doc["floors"]}
    assert written["avg_ms"]["tolerance"] == suggested["avg_ms"]["tolerance"] > 0.05
    assert load_config(config).policy.rule("avg_ms").tolerance == suggested["avg_ms"]["tolerance"]
    assert doc["false_alarms"] > 0


def test_calibrate_command_bad_input(tmp_path: Path) -> None:
    one = measurement_json.write(_runs((1.0,), n=100)[0], tmp_path / "one.json")
    done = run_parity("calibrate", str(one))
    assert done.returncode == 2
    assert done.stderr == "parity: error: calibrate needs at least 2 runs against the same target, got 1\n"
    missing = run_parity("calibrate", str(one), str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "nope.json: no such file" in missing.stderr

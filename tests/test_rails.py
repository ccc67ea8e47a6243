"""Safety rails: allow-listed targets, the rate cap, abort rules — unit and end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity import measurement_json
from parity.config import load_config
from parity.demo.processes import fetch_stats, running_server
from parity.errors import BadInput
from parity.replay.rails import Rails, RateCap, WindowStats, abort_reason, host_allowed, rails_from_mapping
from parity.replay.recorder import Recorder
from tests.conftest import ROOT, run_replay

BASELINE = ROOT / "baselines" / "demo.json"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.3.4.5", True),
        ("http://localhost:1", True),
        ("http://[::1]:80", True),
        ("https://staging.example.com", False),
        ("https://staging.example.com:8443", True),  # listed below
        ("https://api.internal.example.org", True),  # *.internal.example.org
        ("https://internal.example.org", False),
        ("http://10.0.0.1", False),
        ("not a url", False),
    ],
)
def test_host_allow_list(url: str, allowed: bool) -> None:
    hosts = ("STAGING.example.com", "*.internal.example.org") if url != "https://staging.example.com" else ()
    assert host_allowed(url, hosts) is allowed


def test_abort_rules() -> None:
    rails = Rails(abort_error_ratio=0.05, abort_p99_ms=500, abort_window_s=10)
    assert abort_reason(WindowStats(19, 19, 9000.0), rails) is None  # too few requests to judge
    assert abort_reason(WindowStats(100, 5, 100.0), rails) is None
    reason = abort_reason(WindowStats(100, 6, 100.0), rails)
    assert reason is not None
    assert "error ratio 6.0% (6 of 100 requests) over the last 10 s" in reason
    slow = abort_reason(WindowStats(100, 0, 501.0), rails)
    assert slow is not None
    assert "p99 501 ms" in slow
    assert abort_reason(WindowStats(100, 100, None), Rails()) is None  # no rule set


def test_rate_cap_token_bucket() -> None:
    cap = RateCap(10.0)
    assert sum(cap.take(0.0) for _ in range(15)) == 10  # one second's burst
    assert cap.take(0.05) is False
    assert cap.take(0.1) is True  # refilled one token in 0.1 s
    slow = RateCap(0.5)
    assert slow.take(0.0) is True
    assert slow.take(1.0) is False
    assert slow.take(2.0) is True


def test_recorder_window_totals() -> None:
    rec = Recorder(1.0)
    for i in range(100):
        rec.record("GET", "/a", 1000.0 + i * 0.1, float(i), i % 10 == 0)
    requests, errors, p99 = rec.totals_since(1000.0)
    assert (requests, errors) == (100, 10)
    assert p99 == pytest.approx(98.0, rel=0.02)
    requests, errors, _ = rec.totals_since(1005.0)
    assert (requests, errors) == (50, 5)


def test_replay_rails_from_config(tmp_path: Path) -> None:
    path = tmp_path / "parity.toml"
    path.write_text('[replay]\nallow_hosts = ["staging.example.com"]\nmax_rps = 200\nabort_error_ratio = 0.1\n')
    assert load_config(path).rails == Rails(allow_hosts=("staging.example.com",), max_rps=200, abort_error_ratio=0.1)
    with pytest.raises(ValueError, match=r"replay\.abort_error_ratio: expected a share"):
        rails_from_mapping({"abort_error_ratio": 2})
    path.write_text("[replay]\nmax_rsp = 3\n")
    with pytest.raises(BadInput, match=r"replay\.max_rsp: unknown key"):
        load_config(path)


@pytest.mark.e2e
def test_non_allow_listed_target_is_refused_before_any_request(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606): even a broken rail could not send anything anywhere.
    out = tmp_path / "run.json"
    done = run_replay("--host", "http://parity-target.invalid", "--baseline", str(BASELINE), "-t", "3s",
                      "--parity-out", str(out))  # fmt: skip
    assert done.returncode == 4
    assert "parity: refused: target http://parity-target.invalid is not allow-listed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.e2e
def test_abort_rule_stops_the_run_with_exit_4_and_a_partial_measurement(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with running_server("new") as url:
        done = run_replay("--host", url, "--baseline", str(BASELINE), "-t", "60s", "--abort-p99-ms", "1",
                          "--abort-window", "5", "--parity-out", str(out))  # fmt: skip
        received = fetch_stats(url)["total"]
    assert done.returncode == 4, done.stderr[-2000:]
    assert "parity: aborting the run: p99" in done.stderr
    m = measurement_json.read(out)  # a valid file
    assert m.labels["complete"] == "no"
    assert "above the 1 ms abort limit" in m.labels["aborted"]
    assert 20 <= m.total_count <= received
    assert m.window.duration_s < 30


@pytest.mark.e2e
def test_max_rps_caps_what_is_sent(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with running_server("old") as url:
        before = fetch_stats(url)["total"]
        done = run_replay("--host", url, "--baseline", str(BASELINE), "-t", "4s", "--max-rps", "5",
                          "--parity-out", str(out))  # fmt: skip
        received = fetch_stats(url)["total"] - before
    assert done.returncode == 0, done.stderr[-2000:]
    m = measurement_json.read(out)
    assert m.total_count == received
    assert received <= 5 * 4 + 5  # one second's burst, then 5 per second
    assert m.generator is not None
    assert m.generator.dropped > 100
    assert m.generator.sent == m.total_count

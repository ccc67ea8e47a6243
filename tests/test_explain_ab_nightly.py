"""``--explain`` on ``parity ab`` and ``parity nightly``.

In process, with known answers (:func:`parity.nightly.job.explain_night` against the fake Datadog of
``parity.demo.apm``, traces posted here: GET /users/{id}'s Rails resource ``UsersController#show`` runs 2 postgres
queries in ec2 and 6 in eks): which comparison of a night is explained and whose traces each side reads (the
server-side comparison as its Measurements name them; the replay's with ``[nightly.candidate_apm]``'s env and service
or skipped; the A/B's with ``[nightly.pull]`` / ``old_env`` / ``target_env`` / ``service``), that every endpoint is
searched by the resource the baseline recorded (a replay records none), and that every failure is one reason and no
changed verdict.

End to end (real Locust, the demo server's old and new profiles in one process sending whole traces to the fake
Datadog, read back with the real client): ``parity ab --explain`` and ``parity nightly --explain`` (A/B night) name
postgres with 3× the queries for the payroll calculation's N+1, in explain.json, the report, summary.md and the
terminal, and keep the verdict's exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from parity import measurement_json
from parity.ab import apm_named, with_replayed_resources
from parity.cli import main
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.processes import Service, running_servers
from parity.demo.server import APM_SERVICE
from parity.history.store import load as load_history
from parity.judge.compare import compare
from parity.judge.result import Incomparability, Verdict
from parity.model import Measurement, SourceKind
from parity.nightly.job import NO_CANDIDATE_APM, DatadogKeys, NightExplained, explain_night
from parity.nightly.settings import ApmSource, NightlySettings, nightly_from_mapping
from tests.conftest import ROOT, run_parity
from tests.test_explain_command import HEALTH, RAILS, USERS, _apm_side, _post, _trace

KEYS = DatadogKeys(DEMO_API_KEY, DEMO_APP_KEY)
#: GET /users/{id}'s why, from the posted traces: 2 → 6 queries of 4 ms.
WHY = "+16 ms per request in postgres (3.0× more queries: 2.0 → 6.0 per request)"


@pytest.fixture(scope="module")
def fake() -> Iterator[DemoDatadog]:
    """The Rails resource's traces in ec2 (2 queries) and eks (6 queries); none under the endpoint's key, so an
    endpoint searched by its key instead of the baseline's resource finds nothing."""
    with DemoDatadog() as dd:
        _post(dd, "ec2", [_trace(n, resource=RAILS, queries=2, app_ms=20) for n in range(10)])
        _post(dd, "eks", [_trace(100 + n, resource=RAILS, queries=6, app_ms=20) for n in range(10)])
        yield dd


def _replayed(env: str, medians: dict[str, float], seed: int, service: str | None = None) -> Measurement:
    """A replay's recording: env and service as the replay names them, no APM resource."""
    side = _apm_side(env, medians, seed)
    return replace(
        side,
        source=replace(side.source, kind=SourceKind.LOCUST_REPLAY, service=service),
        endpoints=tuple(replace(e, resource=None) for e in side.endpoints),
    )


BASELINE = _apm_side("ec2", {USERS: 50.0, HEALTH: 5.0}, 1)  # web in ec2, GET /users/{id} from UsersController#show


def _settings(fake: DemoDatadog, **fields: Any) -> NightlySettings:
    return NightlySettings(Path("b.json"), "http://127.0.0.1:9", dd_url=fake.url, explain=True, **fields)


def _why(explained: NightExplained) -> str:
    assert explained.skipped is None, explained.skipped
    assert explained.explanations is not None
    return str(explained.explanations[USERS]["sentence"])


def test_resources_come_from_the_replayed_baseline_and_apm_names_replace_the_sides() -> None:
    side = _replayed("candidate", {USERS: 80.0, HEALTH: 5.0, "GET /other": 5.0}, 2)
    got = {e.endpoint.key: e.resource for e in with_replayed_resources(side, BASELINE).endpoints}
    assert got == {USERS: RAILS, HEALTH: None, "GET /other": None}  # HEALTH: the baseline recorded none
    own = replace(side, endpoints=tuple(replace(e, resource="Own#show") for e in side.endpoints))
    assert {e.resource for e in with_replayed_resources(own, BASELINE).endpoints} == {"Own#show"}
    result = compare(BASELINE, side)
    named = apm_named(result, old=(None, None), new=("eks", "web"))
    assert (named.baseline.env, named.baseline.service) == ("ec2", "web")
    assert (named.candidate.env, named.candidate.service) == ("eks", "web")
    assert (named.verdict, named.endpoints, named.bottlenecks) == (result.verdict, result.endpoints, result.bottlenecks)


def test_settings_explain_key() -> None:
    table = {"baseline": "b.json", "target": "http://t"}
    assert nightly_from_mapping(table).explain is False
    assert nightly_from_mapping({**table, "explain": True}).explain is True
    with pytest.raises(ValueError, match=r"nightly\.explain: expected true or false"):
        nightly_from_mapping({**table, "explain": "yes"})


def test_replay_night_reads_the_candidates_apm_and_the_baselines_resources(fake: DemoDatadog, tmp_path: Path) -> None:
    candidate = _replayed("candidate", {USERS: 80.0, HEALTH: 5.0}, 2, service="web-replay")
    result = compare(BASELINE, candidate)
    assert result.verdict is Verdict.FAIL
    settings = _settings(fake, target_env="candidate", candidate_apm=ApmSource(service="web", env="eks"))
    explained = explain_night(settings, KEYS, result, None, (BASELINE, candidate), BASELINE, tmp_path)
    assert explained.comparison == "replay"
    assert explained.path == tmp_path / "explain.json"
    assert _why(explained).startswith(WHY)
    doc = json.loads((tmp_path / "explain.json").read_text())
    assert (doc["old"]["env"], doc["old"]["service"], doc["new"]["env"], doc["new"]["service"]) == (
        "ec2", "web", "eks", "web",
    )  # fmt: skip
    assert doc["explanations"][0]["reads"]["new"]["query"].endswith(f'resource_name:"{RAILS}"')
    assert explained.summary(tmp_path) == {
        "comparison": "replay", "file": "explain.json", "endpoints": [USERS], "explained": [USERS], "skipped": None,
    }  # fmt: skip
    assert result.verdict is Verdict.FAIL  # unchanged

    # without [nightly.candidate_apm] the replay side's traces are unknown: skipped, nothing read or written
    out = tmp_path / "none"
    explained = explain_night(_settings(fake), KEYS, result, None, (BASELINE, candidate), BASELINE, out)
    assert (explained.skipped, explained.path, explained.explanations) == (NO_CANDIDATE_APM, None, None)
    assert not out.exists()


def test_ab_night_reads_pull_or_the_side_names(fake: DemoDatadog, tmp_path: Path) -> None:
    old, new = _replayed("old", {USERS: 50.0}, 1), _replayed("eks", {USERS: 80.0}, 2)
    result = compare(old, new)
    ab = {"old_target": "http://127.0.0.1:8", "target_env": "eks"}
    # old side from [nightly.pull] (the old environment's APM), new side: target_env + service
    settings = _settings(fake, **ab, service="web", pull=ApmSource(service="web", env="ec2"))
    explained = explain_night(settings, KEYS, result, None, (old, new), BASELINE, tmp_path / "a")
    assert explained.comparison == "a/b"
    assert _why(explained).startswith(WHY)
    # no [nightly.pull]: old_env names the old side's APM env
    settings = _settings(fake, **ab, service="web", old_env="ec2")
    assert _why(explain_night(settings, KEYS, result, None, (old, new), BASELINE, tmp_path / "b")).startswith(WHY)
    # a wrong env is that endpoint's "no explanation", never a fabricated one
    settings = _settings(fake, **ab, service="web", old_env="old")
    explained = explain_night(settings, KEYS, result, None, (old, new), BASELINE, tmp_path / "c")
    assert explained.explanations is not None
    users = explained.explanations[USERS]
    assert (users["available"], users["sentence"][:32]) == (False, "no explanation: old side: traces")
    # no [nightly] service: the baseline's ("web") is the service both sides' traces are searched under
    settings = _settings(fake, **ab, old_env="ec2")
    assert _why(explain_night(settings, KEYS, result, None, (old, new), BASELINE, tmp_path / "d")).startswith(WHY)


def test_server_side_night_reads_both_apm_sides(fake: DemoDatadog, tmp_path: Path) -> None:
    replay = _replayed("candidate", {USERS: 80.0}, 2)
    result = replace(
        compare(BASELINE, replay), incomparable=Incomparability("server", "intended", "client-side replay", ())
    )
    apm = _apm_side("eks", {USERS: 80.0, HEALTH: 5.0}, 2)
    server_side = compare(BASELINE, apm)
    settings = _settings(fake, candidate_apm=ApmSource(service="web", env="eks"))
    explained = explain_night(settings, KEYS, result, server_side, (BASELINE, apm), BASELINE, tmp_path)
    assert explained.comparison == "server-side"
    assert _why(explained).startswith(WHY)

    # a baseline from access logs names no APM env, service or resource: [nightly.pull]'s env and service, and the
    # candidate APM's resource (the same application's name for the endpoint)
    logs = replace(
        BASELINE,
        source=replace(BASELINE.source, kind=SourceKind.ACCESS_LOG, env=None, service=None),
        endpoints=tuple(replace(e, resource=None) for e in BASELINE.endpoints),
    )
    server_side = compare(logs, apm)
    settings = _settings(
        fake, candidate_apm=ApmSource(service="web", env="eks"), pull=ApmSource(service="web", env="ec2")
    )
    explained = explain_night(settings, KEYS, result, server_side, (logs, apm), logs, tmp_path / "logs")
    assert explained.comparison == "server-side"
    assert _why(explained).startswith(WHY)


def test_failures_are_one_reason_and_change_no_verdict(fake: DemoDatadog, tmp_path: Path) -> None:
    candidate = _replayed("candidate", {USERS: 80.0}, 2)
    result = compare(BASELINE, candidate)
    settings = _settings(fake, candidate_apm=ApmSource(service="web", env="eks"))
    sides = (BASELINE, candidate)
    explained = explain_night(settings, None, result, None, sides, BASELINE, tmp_path / "a")
    assert explained.skipped is not None
    assert explained.skipped.startswith("DD_API_KEY and DD_APP_KEY not set")
    unchanged = compare(BASELINE, _replayed("candidate", {USERS: 50.0}, 1))
    assert unchanged.verdict is not Verdict.FAIL
    assert not unchanged.bottlenecks
    assert explain_night(settings, KEYS, unchanged, None, sides, BASELINE, tmp_path / "b").skipped == (
        "no endpoint regressed"
    )
    bad_url = replace(settings, dd_url="not a url")
    assert explain_night(bad_url, KEYS, result, None, sides, BASELINE, tmp_path / "c").skipped
    fake.fail(403, 1)  # the first read (the old side's) is refused
    explained = explain_night(settings, KEYS, result, None, sides, BASELINE, tmp_path / "d")
    assert explained.explanations is not None
    assert "403" in explained.explanations[USERS]["sentence"]
    # a failed read is the endpoint's reason (explain.json, why lines), not the night's: listed unexplained
    assert explained.skipped is None
    assert explained.summary(tmp_path / "d")["explained"] == []
    assert result.verdict is Verdict.FAIL


# --- end to end: parity ab --explain, parity nightly --explain ------------------------------------------------

PAYROLL = "POST /api/payroll/calculations"  # new: 8 → 24 queries (N+1)
DEPARTMENTS = "GET /api/departments"  # the same on both


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoDatadog, str, str, Path]]:
    """The fake Datadog, the demo's old (ec2) and new (eks) services in one process sending every request's trace
    to it, and the bundled baseline cut to the payroll calculation and the departments list."""
    bundled = measurement_json.read(ROOT / "baselines" / "demo.json")
    kept = tuple(e for e in bundled.endpoints if e.endpoint.key in (PAYROLL, DEPARTMENTS))
    baseline = measurement_json.write(replace(bundled, endpoints=kept), tmp_path_factory.mktemp("ab") / "two.json")
    with (
        DemoDatadog() as datadog,
        running_servers(
            [Service("old", apm_env="ec2"), Service("new", apm_env="eks")], apm_url=datadog.intake_url, trace_rate=1000
        ) as (old, new),
    ):
        yield datadog, old, new, baseline


def _env() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    return environ | {"DD_API_KEY": DEMO_API_KEY, "DD_APP_KEY": DEMO_APP_KEY}


def _payroll_explained(report: Path, stdout: str) -> None:
    """explain.json in ``report`` names postgres with 3× the queries for the payroll calculation; the report,
    summary.md and the terminal show its why line."""
    by = {e["endpoint"]: e for e in json.loads((report / "explain.json").read_text())["explanations"]}
    payroll = by[PAYROLL]
    assert payroll["available"] is True, payroll["sentence"]
    assert payroll["named"][0] == "postgres", payroll["sentence"]
    assert "3.0× more queries: 8.0 → 24.0 per request" in payroll["sentence"]
    assert f"why: {payroll['sentence']}" in stdout
    assert f"- {PAYROLL}: {payroll['sentence']}" in (report / "summary.md").read_text()
    assert "why: " in (report / "index.html").read_text()
    assert json.loads((report / "parity.json").read_text())["verdict"] == "fail"


@pytest.mark.e2e
def test_ab_explain_names_the_n_plus_one(demo: tuple[DemoDatadog, str, str, Path], tmp_path: Path) -> None:
    datadog, old, new, baseline = demo
    out = tmp_path / "ab"
    done = run_parity(
        "ab", str(baseline), "--old", old, "--new", new, "-t", "4s", "--shape", "steady", "--rps", "12",
        "--min-endpoint-rps", "4", "--old-env", "ec2", "--new-env", "eks", "--explain", "--dd-url", datadog.url,
        "--quiet", "-o", str(out), env=_env(), timeout=150,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # the verdict's exit code
    _payroll_explained(out, done.stdout)
    sides = [measurement_json.read(out / f"{s}.measurement.json") for s in ("old", "new")]
    assert {s.source.service for s in sides} == {APM_SERVICE}  # --service defaults to the baseline's
    assert "Traceback" not in done.stderr


def test_ab_explain_without_a_service_is_bad_input_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled = measurement_json.read(ROOT / "baselines" / "demo.json")
    nameless = replace(bundled, source=replace(bundled.source, service=None))
    baseline = measurement_json.write(nameless, tmp_path / "b.json")
    assert main(["ab", str(baseline), "--old", "http://127.0.0.1:9", "--new", "http://127.0.0.1:9", "--explain"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"parity: error: --explain needs the APM service both sides' traces are searched under: give --service "
        f"({baseline} names none)"
    ]


@pytest.mark.e2e
def test_ab_night_judges_the_target_against_the_old_target_and_explains_its_report(
    demo: tuple[DemoDatadog, str, str, Path], tmp_path: Path
) -> None:
    """With old_target the night replays the baseline against both at once and judges new against old; with
    --explain its report says why the payroll calculation is slower."""
    datadog, old, new, baseline = demo
    config = tmp_path / "parity.toml"
    config.write_text(
        "[nightly]\n"
        f'baseline = "{baseline}"\ntarget = "{new}"\nold_target = "{old}"\nold_env = "ec2"\ntarget_env = "eks"\n'
        f'service = "{APM_SERVICE}"\nmax_baseline_age_days = 36500\nduration_s = 4\nshape = "steady"\n'
        'locust_args = ["--rps", "12", "--min-endpoint-rps", "4"]\n'
        f'out = "{tmp_path / "nightly"}"\nhistory = "{tmp_path / "history.sqlite"}"\ndd_url = "{datadog.url}"\n'
    )
    done = run_parity("nightly", "--config", str(config), "--explain", "--quiet", env=_env(), timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    (night,) = (tmp_path / "nightly").iterdir()
    _payroll_explained(night, done.stdout)
    summary = json.loads((night / "nightly.json").read_text())
    assert summary["explain"]["comparison"] == "a/b"
    assert summary["explain"]["file"] == "explain.json"
    assert PAYROLL in summary["explain"]["explained"]
    assert summary["exit_code"] == 1
    assert summary["replay"] == "complete"
    assert "concurrent A/B" in done.stdout
    assert json.loads((night / "parity.json").read_text())["mode"] == "concurrent-a/b"
    old_side = measurement_json.read(night / "old.measurement.json")
    new_side = measurement_json.read(night / "candidate.measurement.json")
    assert old_side.pair_id == new_side.pair_id is not None
    assert (old_side.source.env, new_side.source.env) == ("ec2", "eks")
    counts = [{e.endpoint.key: e.count for e in side.endpoints} for side in (old_side, new_side)]
    assert counts[0] == counts[1]
    assert len(load_history(tmp_path / "history.sqlite").runs) == 1


@pytest.mark.e2e
def test_ab_explain_stopped_by_sigterm_reads_no_traces_and_keeps_the_report(
    demo: tuple[DemoDatadog, str, str, Path], tmp_path: Path
) -> None:
    """A stop (SIGTERM: a CI job cancelled, with a grace period before its kill) ends ``ab --explain`` without
    reading Datadog (up to 40 requests and 2 waits of 60 s per side and endpoint): one ``no explanation`` line,
    the report of what was recorded, the signal's exit code — as ``parity nightly`` does."""
    from tests.test_signals import _kill_all, _locust_child, _sending, _wait

    datadog, old, new, baseline = demo
    out = tmp_path / "ab"
    ab = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "ab", str(baseline), "--old", old, "--new", new, "-t", "60s", "--shape",
         "steady", "--rps", "12", "--min-endpoint-rps", "4", "--old-env", "ec2", "--new-env", "eks", "--explain",
         "--dd-url", datadog.url, "--quiet", "-o", str(out)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    locust: list[int] = []
    try:
        locust = [_locust_child(ab)]
        _wait((out / "locust.log").is_file, 30, "the Locust log")
        _wait(_sending(out / "locust.log", locust, new), 60, "the replay started sending")
        ab.send_signal(signal.SIGTERM)
        stdout, stderr = (text.decode() for text in ab.communicate(timeout=90))
    finally:
        _kill_all([ab], locust)
    assert ab.returncode == 128 + signal.SIGTERM, stdout + stderr
    assert "reading old traces" not in stderr
    assert "parity: no explanation: stopped by SIGTERM: not explained" in stderr.splitlines()
    assert not (out / "explain.json").exists()
    assert (out / "index.html").is_file()
    assert "Traceback" not in stderr

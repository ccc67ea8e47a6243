"""``parity nightly``: settings, and three nights end to end against the demo target and the fake Datadog server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parity import measurement_json
from parity.config import load_config
from parity.demo.processes import running_server
from parity.errors import BadInput
from parity.history.store import load as load_history
from parity.judge.result import Verdict
from parity.nightly.settings import nightly_from_mapping
from tests.conftest import run_parity
from tests.fakes.datadog_server import FakeDatadog, FakeDataset, FakeResource, fake_datadog
from tests.test_pull_cli import API_KEY, APP_KEY, ROUTES

MINUTES = 180


def test_settings_defaults_and_errors() -> None:
    s = nightly_from_mapping({"baseline": "b.json", "target": "http://127.0.0.1:8080"})
    assert (s.baseline, s.target, s.max_baseline_age_days, s.shape) == (
        Path("b.json"),
        "http://127.0.0.1:8080",
        7.0,
        "replay",
    )
    assert s.pull is None
    assert s.old_target is None
    ab = nightly_from_mapping({"baseline": "b.json", "target": "http://new:80", "old_target": "http://old:80"})
    assert (ab.old_target, ab.old_env) == ("http://old:80", "old")
    full = nightly_from_mapping(
        {
            "baseline": "b.json",
            "target": "http://t",
            "locust_args": ["--steps", "1,5"],
            "pull": {"service": "web", "env": "ec2", "window_hours": 2, "timezone": "America/New_York"},
        }
    )
    assert full.locust_args == ("--steps", "1,5")
    assert full.pull is not None
    assert (full.pull.service, full.pull.window_hours, full.pull.span) == ("web", 2.0, "rack.request")
    assert full.pull.timezone == "America/New_York"
    for table, message in (
        ({"target": "http://t"}, "nightly.baseline: required"),
        ({"baseline": "b", "target": "http://t", "duration_s": 0}, "nightly.duration_s: expected a number > 0"),
        ({"baseline": "b", "target": "http://t", "shape": "wave"}, "nightly.shape: expected one of replay"),
        ({"baseline": "b", "target": "http://t", "pull": {"service": "web"}}, "nightly.pull.env: required"),
        (
            {"baseline": "b", "target": "http://t", "pull": {"service": "w", "env": "e", "x": 1}},
            "nightly.pull.x: unknown",
        ),
        ({"baseline": "b", "target": "http://t", "processes": 1.5}, "nightly.processes: expected an integer"),
        (
            {"baseline": "b", "target": "http://t", "pull": {"service": "w", "env": "e", "timezone": "Mars/Base"}},
            "nightly.pull.timezone: expected a time zone",
        ),
        ({"baseline": "b", "target": "http://t", "report_url": "https://ci/{run}/x"}, "nightly.report_url: only"),
    ):
        with pytest.raises(ValueError, match=message):
            nightly_from_mapping(table)


def test_config_without_nightly_table_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "parity.toml"
    config.write_text("[compare]\nalpha = 0.01\n")
    done = run_parity("nightly", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr == f"parity: error: {config}: no [nightly] table: say what to replay and against which target\n"
    config.write_text('[nightly]\ntarget = "http://127.0.0.1:1"\n')
    with pytest.raises(BadInput, match=r"nightly\.baseline: required"):
        load_config(config)


def _dataset(now: datetime) -> FakeDataset:
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    latency = {"avg": 0.012, "max": 0.2, "p50": 0.011, "p75": 0.013, "p90": 0.016, "p95": 0.018, "p99": 0.03}
    return FakeDataset(
        start_s=int(start.timestamp()),
        resources={
            "healthcontroller_show": FakeResource(hits=[60] * MINUTES, latency_s={**latency, "avg": 0.001}),
            "api::employeescontroller_show": FakeResource(hits=[120] * MINUTES, latency_s=latency),
            "api::employeescontroller_index": FakeResource(hits=[30] * MINUTES, latency_s=latency),
        },
    )


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with fake_datadog(_dataset(datetime.now(UTC)), api_key=API_KEY, app_key=APP_KEY) as server:
        yield server


def _config(tmp_path: Path, fake: FakeDatadog, target: str, *, pull: bool = True) -> Path:
    (tmp_path / "routes.txt").write_text(ROUTES)
    params = tmp_path / "params"
    params.mkdir(exist_ok=True)
    (params / "id.csv").write_text("id\n1001\n1008\n1015\n")
    pull_table = (
        f'[nightly.pull]\nservice = "web"\nenv = "ec2"\nwindow_hours = 1\nroutes = "{tmp_path / "routes.txt"}"\n'
        f'params = "{params}"\ntimezone = "Europe/Berlin"\n'
        if pull
        else ""
    )
    config = tmp_path / "parity.toml"
    config.write_text(
        "[nightly]\n"
        f'baseline = "{tmp_path / "baselines" / "web-ec2.json"}"\n'
        f'target = "{target}"\n'
        "duration_s = 4\nrate_scale = 20\n"
        'service = "web"\ntarget_env = "eks"\n'
        f'out = "{tmp_path / "nightly"}"\n'
        f'history = "{tmp_path / "history" / "parity-history.sqlite"}"\n'
        f'dd_url = "{fake.url}"\n'
        "push_datadog = true\n"
        'datadog_tags = ["team:payroll"]\n' + pull_table
    )
    return config


def _env() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    return environ | {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}


@pytest.mark.e2e
def test_three_nights_end_to_end(fake: FakeDatadog, tmp_path: Path) -> None:
    with running_server("new") as url:
        config = _config(tmp_path, fake, url)
        runs = [run_parity("nightly", "--config", str(config), env=_env(), timeout=240) for _ in range(3)]
    for done in runs:
        # An unchanged target, an APM (server-side) baseline, a client-side replay and no candidate_apm: latency
        # is incomparable, never a regression — exit 3 with the commands that get a comparable side (the rare
        # injected 500 of the demo service may still fail the error rate: then only that fails).
        assert done.returncode in (1, 3), done.stdout + done.stderr
        assert "latency not comparable" in done.stdout
        assert "for a latency verdict" in done.stdout
        assert API_KEY not in done.stdout + done.stderr
        assert APP_KEY not in done.stdout + done.stderr
    assert "pulling web/ec2 from Datadog APM" in runs[0].stdout  # no baseline yet: pulled
    assert all("pulling" not in done.stdout for done in runs[1:])  # fresh: not pulled again
    baseline = measurement_json.read(tmp_path / "baselines" / "web-ec2.json")
    assert set(baseline.by_key()) == {"GET /health", "GET /api/employees/{id}", "GET /api/employees"}
    assert baseline.labels["timezone"] == "Europe/Berlin"  # [nightly.pull] timezone: the report's local clock
    nights = sorted((tmp_path / "nightly").iterdir())
    assert len(nights) == 3
    for night in nights:
        for name in (
            "index.html",
            "parity.json",
            "junit.xml",
            "summary.md",
            "nightly.json",
            "candidate.measurement.json",
        ):
            assert (night / name).is_file(), (night, name)
        summary = json.loads((night / "nightly.json").read_text())
        assert summary["replay"] == "complete"
        result = json.loads((night / "parity.json").read_text())
        assert result["incomparable"]["baseline_kind"] == "server"
        failed = {m for e in result["endpoints"] for m, v in e["metrics"].items() if v["verdict"] == "fail"}
        assert failed <= {"error_rate"}, failed  # latency is never failed across kinds
        assert summary["pushed_to_datadog"] is True
    history = load_history(tmp_path / "history" / "parity-history.sqlite")
    assert len(history.runs) == 3
    events = fake.posted("/api/v1/events")
    assert len(events) == 3
    assert fake.posted("/api/v2/series")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert API_KEY.encode() not in data, path
            assert APP_KEY.encode() not in data, path


@pytest.mark.e2e
def test_stale_baseline_without_pull_is_used_with_a_note_and_missing_one_is_bad_input(
    fake: FakeDatadog, tmp_path: Path
) -> None:
    config = _config(tmp_path, fake, "http://127.0.0.1:9", pull=False)
    done = run_parity("nightly", "--config", str(config), env=_env())
    assert done.returncode == 2
    assert "web-ec2.json: no such file, and no [nightly.pull] to make one from Datadog" in done.stderr


@pytest.mark.e2e
def test_a_failed_push_exits_2_and_keeps_the_night(fake: FakeDatadog, tmp_path: Path) -> None:
    with running_server("new") as url:
        config = _config(tmp_path, fake, url)
        fake.fail(403, None, path="/api/v2/series")  # refused: not retried
        done = run_parity("nightly", "--config", str(config), "--quiet", env=_env(), timeout=240)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("parity: error: ")  # --quiet: no progress lines before it
    assert len(done.stderr.strip().splitlines()) == 1
    (night,) = (tmp_path / "nightly").iterdir()
    summary = json.loads((night / "nightly.json").read_text())
    assert summary["pushed_to_datadog"] is False
    assert (night / "index.html").is_file()
    assert len(load_history(tmp_path / "history" / "parity-history.sqlite").runs) == 1
    assert API_KEY not in done.stdout + done.stderr


RESOURCE_OF = {
    "GET /health": "healthcontroller_show",
    "GET /api/employees/{id}": "api::employeescontroller_show",
    "GET /api/employees": "api::employeescontroller_index",
}


@pytest.mark.e2e
def test_candidate_apm_is_the_replays_server_side_record_and_compares_per_unit_of_its_load(tmp_path: Path) -> None:
    """The candidate's APM is judged per unit of the replay's offered load: with a fake Datadog that reports
    exactly the requests the replay sent, its throughput equals the replay's own (it used to be divided by
    the pulled whole minutes at rate scale 1)."""
    from dataclasses import replace

    from parity import version
    from parity.model import fingerprint
    from parity.nightly.job import DatadogKeys, run_nightly
    from parity.report.context import RunMeta
    from parity.sources.replay_window import LABEL_WINDOW_OF, apm_window

    now = datetime.now(UTC)
    data = _dataset(now)
    data = replace(
        data,
        resources={
            name: replace(r, hits=list(r.hits) + [r.hits[0]] * 30)  # minutes to come, for the replay's window
            for name, r in data.resources.items()
        },
    )
    slept: list[float] = []
    with fake_datadog(data, api_key=API_KEY, app_key=APP_KEY) as fake, running_server("new") as url:
        config_path = _config(tmp_path, fake, url)
        text = config_path.read_text().replace("push_datadog = true\n", "")
        config_path.write_text(
            text + f'[nightly.candidate_apm]\nservice = "web"\nenv = "ec2"\nroutes = "{tmp_path / "routes.txt"}"\n'
        )  # delay_s: the default 120 s, so the job always waits (here: serve_what_the_replay_sent)

        def serve_what_the_replay_sent(seconds: float) -> None:
            """Instead of waiting for ingestion: the fake's minutes of the replay's window hold its requests."""
            slept.append(seconds)
            (night,) = (tmp_path / "nightly").iterdir()
            replay = measurement_json.read(night / "candidate.measurement.json")
            start, end = apm_window(replay)
            first = int(start.timestamp() - data.start_s) // 60
            minutes = range(first, first + int((end - start).total_seconds()) // 60)
            sent = replay.by_key()
            resources = {}
            for key, name in RESOURCE_OF.items():
                hits, errors = list(data.resources[name].hits), [0] * len(data.resources[name].hits)
                for i in minutes:
                    hits[i] = 0
                hits[first], errors[first] = sent[key].count, sent[key].errors or 0
                resources[name] = replace(data.resources[name], hits=hits, errors=errors)
            fake.dataset = replace(data, resources=resources)

        config = load_config(config_path)
        assert config.nightly is not None
        meta = RunMeta(harness_version=version(), commit=None, generated_at=now, config=None, command="parity nightly")
        outcome = run_nightly(
            config.nightly,
            config,
            meta,
            now=now,
            keys=DatadogKeys(API_KEY, APP_KEY),
            sleep=serve_what_the_replay_sent,
        )
    assert outcome.server_side is not None
    assert len(slept) == 1  # waited for the replay's last minute to be ingested (here: served it)
    # like with like: the client-side replay is incomparable with the APM baseline; the candidate's own
    # server-side figures decide the night, and on an unchanged target they pass
    assert outcome.result.incomparable is not None
    assert outcome.decisive is outcome.server_side
    assert outcome.server_side.incomparable is None
    assert outcome.server_side.verdict in (Verdict.PASS, Verdict.MARGINAL)
    assert outcome.exit_code == 0
    night = json.loads((outcome.out_dir / "nightly.json").read_text())
    assert (night["verdict"], night["replay_verdict"]) == (outcome.server_side.verdict.value, "inconclusive")
    assert any("server-side figures against the baseline" in n for n in night["notes"])
    client = json.loads((outcome.out_dir / "parity.json").read_text())
    server = json.loads((outcome.out_dir / "server-side" / "parity.json").read_text())
    client_rps = {e["endpoint"]: e["metrics"]["rps"] for e in client["endpoints"]}
    server_rps = {e["endpoint"]: e["metrics"]["rps"] for e in server["endpoints"]}
    assert set(server_rps) == set(RESOURCE_OF)
    for key, rps in server_rps.items():
        assert rps["candidate"] == client_rps[key]["candidate"], key  # same requests, same offered load
        assert rps["baseline"] == client_rps[key]["baseline"], key
    replay = measurement_json.read(outcome.out_dir / "candidate.measurement.json")
    apm = measurement_json.read(outcome.out_dir / "candidate-apm.measurement.json")
    assert apm.window == replay.window
    assert apm.rate_scale == replay.rate_scale == 20.0
    assert apm.labels[LABEL_WINDOW_OF] == fingerprint(replay)
    assert {e.endpoint.key: e.count for e in apm.endpoints} == {e.endpoint.key: e.count for e in replay.endpoints}


def test_nights_started_in_the_same_second_get_directories_of_their_own(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from parity.nightly.job import claim_night

    now = datetime(2026, 11, 27, 3, 0, 0, 400_000, tzinfo=UTC)
    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(lambda _: claim_night(tmp_path / "nightly", now), range(8)))
    names = sorted(night for night, _ in claimed)
    assert names == sorted(["20261127T030000Z", *(f"20261127T030000Z-{n}" for n in range(2, 9))])
    assert all(path.is_dir() and path.name == night for night, path in claimed)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="cannot create the night's directory"):
        claim_night(tmp_path / "file", now)


@pytest.mark.e2e
def test_two_nightlies_at_the_same_second_keep_their_own_night_reports_and_history_rows(
    fake: FakeDatadog, tmp_path: Path
) -> None:
    """Two real nights (replays against the demo target) run at once with one clock: each gets its own night
    directory, reports and history row pointing at its own report."""
    from concurrent.futures import ThreadPoolExecutor

    from parity.nightly.job import DatadogKeys, run_nightly
    from parity.report.context import RunMeta

    with running_server("new") as url:
        config = load_config(_config(tmp_path, fake, url))
        assert config.nightly is not None
        settings = config.nightly
        now = datetime.now(UTC)
        meta = RunMeta("test", None, now, None, "parity nightly")
        keys = DatadogKeys(API_KEY, APP_KEY)

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda _: run_nightly(settings, config, meta, now=now, keys=keys), range(2)))
    nights = sorted(o.night for o in outcomes)
    first = now.strftime("%Y%m%dT%H%M%SZ")
    assert nights == [first, f"{first}-2"]
    history = load_history(settings.history)
    reports = sorted(r.report or "" for r in history.runs)
    assert reports == sorted(str(settings.out / n / "index.html") for n in nights)
    for n in nights:
        assert json.loads((settings.out / n / "nightly.json").read_text())["night"] == n
        assert (settings.out / n / "candidate.measurement.json").is_file()
        assert json.loads((settings.out / n / "parity.json").read_text())["verdict"] in ("fail", "inconclusive")

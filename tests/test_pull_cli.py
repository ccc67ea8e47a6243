"""`parity baseline pull` through the CLI, against the fake Datadog server on loopback.

The real datadog-api-client is used end to end through --dd-url; keys come from the environment and must
never show up in stdout, stderr or the written baseline.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parity import measurement_json
from parity.demo.processes import running_server
from tests.conftest import run_parity, run_replay
from tests.fakes.datadog_server import FakeDatadog, FakeDataset, FakeResource, fake_datadog

API_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
APP_KEY = "0f9e8d7c6b5a49382716a5b4c3d2e1f00f9e8d7c"
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
MINUTES = 7 * 1440  # a week: the per-minute timeline needs several queries
ROUTES = """\
           Prefix Verb  URI Pattern                     Controller#Action
           health GET   /health(.:format)               health#show
    api_employees GET   /api/employees(.:format)        api/employees#index
     api_employee GET   /api/employees/:id(.:format)    api/employees#show
              old GET   /old(.:format)                  redirect(301, /)
"""


def dataset() -> FakeDataset:
    latency = {"avg": 0.012, "max": 0.2, "p50": 0.011, "p75": 0.013, "p90": 0.016, "p95": 0.018, "p99": 0.03}
    return FakeDataset(
        start_s=int(START.timestamp()),
        resources={
            "healthcontroller_show": FakeResource(hits=[60] * MINUTES, latency_s={**latency, "avg": 0.001}),
            "api::employeescontroller_show": FakeResource(
                hits=[120 + (i % 7) for i in range(MINUTES)], errors=[1 if i % 60 == 0 else 0 for i in range(MINUTES)],
                latency_s=latency,
            ),
            "api::employeescontroller_index": FakeResource(hits=[30] * MINUTES, latency_s=latency),
            "legacycontroller_ping": FakeResource(hits=[6] * MINUTES, latency_s=latency),
        },
    )  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with fake_datadog(dataset(), api_key=API_KEY, app_key=APP_KEY) as server:
        yield server


def pull(
    fake: FakeDatadog, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "routes.txt").write_text(ROUTES)
    params = tmp_path / "params"
    params.mkdir(exist_ok=True)
    (params / "id.csv").write_text("id\n1001\n1008\n1015\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    environ.update({"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY} if env is None else env)
    args = [
        "baseline", "pull", "--service", "web", "--env", "ec2", "--from", START.isoformat(),
        "--to", (START + timedelta(minutes=MINUTES)).isoformat(), "--dd-url", fake.url,
        "--routes", str(tmp_path / "routes.txt"), "--params", str(params), "-o", str(tmp_path / "web-ec2.json"), *extra,
    ]  # fmt: skip
    return run_parity(*args, env=environ)


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert API_KEY not in text
        assert APP_KEY not in text


def test_pull_writes_the_baseline_and_lists_unmapped_resources(fake: FakeDatadog, tmp_path: Path) -> None:
    done = pull(fake, tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "web-ec2.json"
    m = measurement_json.read(out)
    counts = {e.endpoint.key: e.count for e in m.endpoints}
    assert counts == {
        "GET /health": 60 * MINUTES,
        "GET /api/employees/{id}": sum(120 + (i % 7) for i in range(MINUTES)),
        "GET /api/employees": 30 * MINUTES,
        "legacycontroller_ping": 6 * MINUTES,
    }
    show = m.by_key()["GET /api/employees/{id}"]
    assert show.errors == MINUTES // 60
    assert show.latency is not None
    assert show.latency.quantile(0.95) == pytest.approx(18.0)  # seconds → ms
    assert show.request is not None
    assert show.request.params == {"id": ("1001", "1008", "1015")}
    assert "legacycontroller_ping" in done.stdout
    assert "not mapped to a route" in done.stdout
    assert "route map rails routes routes.txt: 3 routes; 1 lines skipped: 1 redirects (e.g. line 5:" in done.stdout
    assert "pull: " in done.stderr  # the progress over the queries
    assert show.timeline is not None
    assert show.timeline.counts == tuple(120 + (i % 7) for i in range(MINUTES))  # per minute, whole week
    assert len(fake.queries()) >= 2 * 7  # hits and errors in day-sized chunks
    assert_no_key(done.stdout, done.stderr, out.read_text())
    assert all(r.headers.get("dd-api-key") == API_KEY for r in fake.recorded())


def test_refused_key_exits_2_naming_the_key_not_its_value(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.fail(401, times=None)
    done = pull(fake, tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("parity: error: ")
    assert "API key" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "web-ec2.json").exists()
    assert_no_key(done.stdout, done.stderr)


def test_forbidden_app_key_exits_2(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.fail(403, times=None)
    done = pull(fake, tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "application key" in last
    assert not (tmp_path / "web-ec2.json").exists()
    assert_no_key(done.stdout, done.stderr)


def test_empty_answer_exits_2_naming_query_and_filter_and_writes_nothing(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.empty = True
    done = pull(fake, tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "trace.rack.request.hits" in last
    assert "env:ec2,service:web" in last
    assert not (tmp_path / "web-ec2.json").exists()


def test_transient_server_errors_are_retried_visibly(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.fail(500, times=1)  # one retry after the first back-off (2 s)
    done = pull(fake, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "HTTP 500" in done.stderr
    assert "waiting 2 s before retry 1" in done.stderr


def test_rate_limit_wait_is_visible(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.rate_limit(times=1, reset_s=1)
    done = pull(fake, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "waiting 1 s" in done.stderr


def test_missing_keys_and_bad_windows_exit_2(fake: FakeDatadog, tmp_path: Path) -> None:
    no_keys = pull(fake, tmp_path, env={})
    assert no_keys.returncode == 2
    assert (
        no_keys.stderr
        == "parity: error: DD_API_KEY and DD_APP_KEY not set: export the Datadog key(s) in the environment\n"
    )
    future = pull(fake, tmp_path, "--to", (datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert future.returncode == 2
    assert "in the future" in future.stderr
    assert fake.recorded() == []


@pytest.mark.e2e
def test_pulled_baseline_drives_replay_and_compare(fake: FakeDatadog, tmp_path: Path) -> None:
    assert pull(fake, tmp_path).returncode == 0
    baseline = tmp_path / "web-ec2.json"
    run = tmp_path / "run.json"
    with running_server("old") as url:
        replay = run_replay(
            "--host", url, "--baseline", str(baseline), "-t", "4s", "--rate-scale", "5", "--parity-out", str(run)
        )
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert "legacycontroller_ping" in replay.stderr  # announced as not replayable, with its share
    m = measurement_json.read(run)
    assert set(m.by_key()) == {"GET /health", "GET /api/employees/{id}", "GET /api/employees"}
    done = run_parity("compare", str(baseline), str(run), "--out", str(tmp_path / "r"))
    assert done.returncode in (0, 1, 3), done.stderr
    result = json.loads((tmp_path / "r" / "parity.json").read_text())
    by = {e["endpoint"]: e for e in result["endpoints"]}
    assert "no candidate requests" in by["legacycontroller_ping"]["reasons"][0]


# --- pull --window-of: the candidate's own APM over a replay's window --------------------------------------

REPLAY_START = START + timedelta(days=2, hours=10, seconds=30.5)  # minute 3480 of the dataset, 30.5 s in
REPLAY_S = 200.0  # to 10:03:50.5: the APM minutes 10:00 … 10:03


def write_replay(tmp_path: Path, start: datetime = REPLAY_START, duration_s: float = REPLAY_S) -> Path:
    from tests.test_replay_window import replay_measurement

    replay = replay_measurement(
        start,
        duration_s,
        counts={"GET /api/employees/{id}": 900, "GET /health": 400, "GET /api/employees": 200},
        rate_scale=3.0,
        load_factors={"GET /api/employees": 5.0},
    )
    return measurement_json.write(replay, tmp_path / "run.json")


def pull_window(fake: FakeDatadog, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "routes.txt").write_text(ROUTES)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    environ.update({"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY})
    return run_parity(
        "baseline", "pull", "--service", "web", "--env", "ec2", "--dd-url", fake.url,
        "--routes", str(tmp_path / "routes.txt"), *args, env=environ,
    )  # fmt: skip


def test_pull_window_of_writes_the_replays_server_side_record(fake: FakeDatadog, tmp_path: Path) -> None:
    from parity.model import LABEL_REPLAY_OF, LABEL_SCHEDULE, LatencyKind, SourceKind, fingerprint
    from parity.sources.replay_window import LABEL_WINDOW_OF

    replay_path = write_replay(tmp_path)
    done = pull_window(fake, tmp_path, "--window-of", str(replay_path))  # default output: beside the replay
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run.apm.json"
    assert f"wrote {out}: " in done.stdout
    assert "APM minutes 10:00 to 10:04 UTC (the counts include any other traffic" in done.stdout
    assert "waiting" not in done.stderr  # ingested long ago
    m = measurement_json.read(out)
    replay = measurement_json.read(replay_path)
    minutes = range(3480, 3484)  # [10:00, 10:04) of the third day
    counts = {e.endpoint.key: e.count for e in m.endpoints}
    assert counts == {
        "GET /health": 60 * 4,
        "GET /api/employees/{id}": sum(120 + (i % 7) for i in minutes),
        "GET /api/employees": 30 * 4,
        "legacycontroller_ping": 6 * 4,
    }
    show = m.by_key()["GET /api/employees/{id}"]
    assert show.errors == 1  # minute 3480 is a whole hour
    assert show.timeline is not None
    assert show.timeline.counts == tuple(120 + (i % 7) for i in minutes)
    assert show.timeline.start_s == (START + timedelta(minutes=3480)).timestamp()
    assert show.latency is not None
    assert show.latency.quantile(0.95) == pytest.approx(18.0)
    assert m.window == replay.window  # exact: the counts are per the replay's window
    assert m.rate_scale == 3.0
    assert (m.latency_kind, m.source.kind, m.source.env) == (LatencyKind.SERVER, SourceKind.DATADOG, "ec2")
    assert m.labels[LABEL_REPLAY_OF] == replay.labels[LABEL_REPLAY_OF]
    assert m.labels[LABEL_SCHEDULE] == replay.labels[LABEL_SCHEDULE]
    assert m.labels[LABEL_WINDOW_OF] == fingerprint(replay)
    assert m.by_key()["GET /api/employees"].load_factor == 5.0
    assert show.load_factor == 1.0
    froms = {r.query.get("from") for r in fake.recorded("/api/v1/query")}
    assert froms == {str(int((START + timedelta(minutes=3480)).timestamp()))}  # the whole minutes, nothing before
    assert_no_key(done.stdout, done.stderr, out.read_text(), replay_path.read_text())


def test_pull_window_of_bad_input_exits_2_with_one_line_and_no_query(fake: FakeDatadog, tmp_path: Path) -> None:
    replay = write_replay(tmp_path)
    baseline = tmp_path / "web-ec2.json"
    assert pull(fake, tmp_path).returncode == 0
    queried = len(fake.recorded())
    future = write_replay(tmp_path / "future", datetime.now(UTC) + timedelta(minutes=5), 60.0)
    (tmp_path / "broken.json").write_text("[]")
    cases = [
        (("--window-of", str(replay), "--from", START.isoformat()), "--window-of replaces --from and --to"),
        (("--from", START.isoformat()), "give the window: --from and --to, or --window-of REPLAY.json"),
        (("--window-of", str(tmp_path / "missing.json")), "missing.json: no such file"),
        (("--window-of", str(tmp_path / "broken.json")), "broken.json: "),
        (("--window-of", str(baseline)), "web-ec2.json: not a replay (source kind datadog)"),
        (("--window-of", str(future)), "in the future: is the replay still running"),
        (("--window-of", str(replay), "--ingest-delay", "-1"), "--ingest-delay must be"),
        (("--from", START.isoformat(), "--to", START.isoformat(), "--ingest-delay", "5"), "--ingest-delay applies"),
    ]
    for args, message in cases:
        done = pull_window(fake, tmp_path, *args, "-o", str(tmp_path / "out.json"))
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("parity: error: "), args
        assert done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr, (message, done.stderr)
    assert len(fake.recorded()) == queried  # refused before asking Datadog
    assert not (tmp_path / "out.json").exists()


RECENT_MARGIN_S = 10  # seconds of ingestion delay left when the command starts (it only needs to start in time)


@pytest.mark.e2e
def test_pull_window_of_a_recent_replay_waits_for_ingestion(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    data = FakeDataset(
        start_s=int((minute - timedelta(minutes=10)).timestamp()),
        resources={"healthcontroller_show": FakeResource(hits=[60] * 20, latency_s={"avg": 0.001})},
    )
    replay = write_replay(tmp_path, minute - timedelta(seconds=90), 90.0)  # ended on the current minute
    delay = math.ceil((now - minute).total_seconds()) + RECENT_MARGIN_S
    with fake_datadog(data, api_key=API_KEY, app_key=APP_KEY) as recent:
        done = pull_window(recent, tmp_path, "--window-of", str(replay), "--ingest-delay", str(delay))
    assert done.returncode == 0, done.stderr
    assert "Datadog ingests with a delay: waiting" in done.stderr
    m = measurement_json.read(tmp_path / "run.apm.json")
    assert m.by_key()["GET /health"].count == 60 * 2  # the two whole minutes before the replay's end

"""``parity baseline pull`` core: the real datadog-api-client, end to end, against the fake Datadog on loopback.

Known answers come from the dataset the fake serves: per resource per-minute hits/errors and latency
statistics in seconds. Sleeps go to an injected recorder (no test waits for real, except one 0.4 s time-out).
"""

from __future__ import annotations

import gzip
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parity import measurement_json
from parity.datadog import (
    CHUNK_MINUTES,
    LATENCY_QUERIES,
    MAX_POINTS,
    MAX_RETRIES,
    UNTAGGED_RESOURCE,
    ApmPull,
    DatadogClient,
    DatadogError,
    PullProgress,
    ResourcePull,
    Unit,
    _coarse_answer,
    connect,
    errors_query,
    hits_query,
    latency_query,
    ms_per_unit,
    timeline_chunks,
)
from parity.errors import BadInput
from parity.model import Endpoint, LatencyKind, LatencySummary, RequestTemplate, SourceKind, Window
from parity.sources.datadog_apm import PulledBaseline, build_baseline, pull_baseline
from tests.fakes.datadog_server import FakeDatadog, FakeDataset, FakeResource, fake_datadog

API_KEY = "0123456789abcdef0123-api-SECRET"
APP_KEY = "fedcba9876543210fedc-app-SECRET"
START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
S0 = int(START.timestamp())
WEEK = 7 * 1440
TAGS = "env:ec2,service:web"
HITS_Q = hits_query("rack.request", TAGS)


def _minutes(f: Callable[[int], int]) -> list[int]:
    return [f(i) for i in range(WEEK)]


RESOURCES = {
    # mapped, steady traffic, errors now and then, every statistic
    "employeescontroller_show": FakeResource(
        hits=_minutes(lambda i: 4 + (i * 7) % 5),
        errors=_minutes(lambda i: 1 if i % 97 == 0 else 0),
        latency_s={
            "avg": 0.0121,
            "max": 0.139,
            "p50": 0.0108,
            "p75": 0.0132,
            "p90": 0.0155,
            "p95": 0.0178,
            "p99": 0.0303,
        },
    ),
    # mapped, sparse (a point every 10 minutes), no errors, no p75/p90 in the latency answers
    "employeescontroller_index": FakeResource(
        hits=_minutes(lambda i: 3 if i % 10 == 0 else 0),
        latency_s={"avg": 0.045, "max": 0.61, "p50": 0.04, "p95": 0.09, "p99": 0.2},
    ),
    # mapped, traffic on the last day only (absent from the first six daily chunks)
    "reportscontroller_export": FakeResource(
        hits=_minutes(lambda i: 2 if i >= 6 * 1440 else 0),
        errors=_minutes(lambda i: 1 if i >= 6 * 1440 and i % 30 == 0 else 0),
        latency_s={"avg": 1.2, "max": 9.5, "p50": 1.0, "p75": 1.4, "p90": 2.2, "p95": 3.1, "p99": 6.0},
    ),
    # unmapped
    "healthcontroller_check": FakeResource(hits=[1] * WEEK, latency_s={"avg": 0.001, "max": 0.004, "p99": 0.003}),
    "legacycontroller_export": FakeResource(
        hits=_minutes(lambda i: 1 if i % 60 == 0 else 0),
        errors=_minutes(lambda i: 1 if i % 120 == 0 else 0),
        latency_s={"avg": 0.3, "max": 0.9, "p50": 0.25, "p99": 0.8},
    ),
}
DATASET = FakeDataset(S0, RESOURCES)
ROUTES = {
    "employeescontroller_show": Endpoint("GET", "/api/employees/{id}"),
    "employeescontroller_index": Endpoint("GET", "/api/employees"),
    "reportscontroller_export": Endpoint("GET", "/api/reports/{month}/export"),
}
PARAMS = {"id": ("1001", "1008"), "month": ("2026-01", "2026-02"), "unused": ("x",)}


@dataclass
class FakeTime:
    """Injected sleep and clock: records every wait and advances the clock, never sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with fake_datadog(DATASET, api_key=API_KEY, app_key=APP_KEY) as server:
        yield server


def _client(url: str, t: FakeTime, *, api_key: str = API_KEY, app_key: str = APP_KEY, **kw: Any) -> DatadogClient:
    return connect(api_key=api_key, app_key=app_key, dd_url=url, sleep=t.sleep, clock=t.clock, **kw)


def _pull(
    url: str,
    *,
    days: int = 1,
    t: FakeTime | None = None,
    progress: Callable[[PullProgress], None] | None = None,
    service: str = "web",
    **kw: Any,
) -> PulledBaseline:
    with _client(url, t or FakeTime(), **kw) as client:
        return pull_baseline(
            client,
            service=service,
            env="ec2",
            start=START,
            end=START + timedelta(days=days),
            resolve=ROUTES.get,
            params=PARAMS,
            progress=progress,
        )


def _pull_and_write(url: str, out: Path, **kw: Any) -> PulledBaseline:
    """What the CLI does: pull, then write the Measurement — only when the pull succeeded."""
    result = _pull(url, **kw)
    measurement_json.write(result.measurement, out)
    return result


def _ms(r: FakeResource, stat: str) -> float | None:
    value = r.latency_s.get(stat)
    return None if value is None else value * 1000.0


def _errors(r: FakeResource, minutes: int) -> list[int | None]:
    return list(r.errors[:minutes]) if r.errors else [0] * minutes


def _total(values: Sequence[int | None]) -> int:
    return sum(v for v in values if v is not None)


# -- the pull -------------------------------------------------------------------------------------


def test_week_pull_equals_what_the_server_served(fake: FakeDatadog, tmp_path: Path) -> None:
    reports: list[PullProgress] = []
    result = _pull_and_write(fake.url, tmp_path / "baseline.json", days=7, progress=reports.append)
    m = result.measurement
    by = m.by_key()
    assert len(m.endpoints) == len(RESOURCES)
    for name, r in RESOURCES.items():
        endpoint = ROUTES.get(name, Endpoint("", name))
        stats = by[endpoint.key]
        assert stats.resource == name
        assert stats.count == _total(r.hits)
        assert stats.errors == _total(_errors(r, WEEK))
        assert stats.timeline is not None
        assert stats.timeline.start_s == S0
        assert stats.timeline.interval_s == 60
        assert stats.timeline.counts == tuple(r.hits)  # every minute of the week, across the 7 chunks
        assert stats.timeline.errors == tuple(_errors(r, WEEK))
        assert isinstance(stats.latency, LatencySummary)
        for stat in ("avg", "max", "p50", "p75", "p90", "p95", "p99"):
            expected = _ms(r, stat)
            got = getattr(stats.latency, f"{stat}_ms")
            assert got == (None if expected is None else pytest.approx(expected, rel=1e-12)), (name, stat)
    # a resource missing from a latency answer has that statistic missing, not 0
    index = by["GET /api/employees"].latency
    assert isinstance(index, LatencySummary)
    assert (index.p75_ms, index.p90_ms) == (None, None)

    assert by["GET /api/employees/{id}"].request == RequestTemplate(
        path="/api/employees/{id}", params={"id": ("1001", "1008")}
    )
    assert by["GET /api/reports/{month}/export"].request == RequestTemplate(
        path="/api/reports/{month}/export", params={"month": ("2026-01", "2026-02")}
    )
    assert by["GET /api/employees"].request == RequestTemplate(path="/api/employees")
    assert by["healthcontroller_check"].request is None
    assert not by["healthcontroller_check"].endpoint.mapped

    total = sum(_total(r.hits) for r in RESOURCES.values())
    assert [name for name, _ in result.unmapped] == ["healthcontroller_check", "legacycontroller_export"]
    assert [share for _, share in result.unmapped] == [
        pytest.approx(WEEK / total),
        pytest.approx(WEEK / 60 / total),
    ]

    assert m.source.kind is SourceKind.DATADOG
    assert (m.source.service, m.source.env) == ("web", "ec2")
    assert "trace.rack.request.hits" in m.source.description
    assert "trace.rack.request latency" in m.source.description
    assert m.latency_kind is LatencyKind.SERVER
    assert m.window == Window(START, START + timedelta(days=7))
    assert [e.count for e in m.endpoints] == sorted((e.count for e in m.endpoints), reverse=True)

    # the wire: 7 daily chunks per count metric, each ≤ 1500 points; 8 scalar queries over the exact window
    v1 = fake.recorded("/api/v1/query")
    assert [r.query["query"] for r in v1] == [HITS_Q] * 7 + [errors_query("rack.request", TAGS)] * 7
    spans = [(int(r.query["from"]), int(r.query["to"])) for r in v1[:7]]
    assert spans == [(S0 + d * 86400, S0 + (d + 1) * 86400) for d in range(7)]
    assert all((b - a) // 60 + 1 <= MAX_POINTS for a, b in spans)
    scalar = fake.recorded("/api/v2/query/scalar")
    assert fake.queries("/api/v2/query/scalar") == [latency_query("rack.request", TAGS, q) for q in LATENCY_QUERIES]
    for request in scalar:
        attributes = request.body["data"]["attributes"]
        assert (attributes["from"], attributes["to"]) == (S0 * 1000, (S0 + 7 * 86400) * 1000)
        assert attributes["formulas"][0]["limit"]["count"] >= len(RESOURCES)
    aggregators = [r.body["data"]["attributes"]["queries"][0]["aggregator"] for r in scalar]
    assert aggregators == ["sum", "sum", "max"] + ["percentile"] * 5
    for request in fake.recorded():
        assert request.headers["dd-api-key"] == API_KEY
        assert request.headers["dd-application-key"] == APP_KEY

    # progress: one report per query start, one at the end; never a wait here
    assert reports[-1].done == reports[-1].total == 22
    assert [p.done for p in reports] == sorted(p.done for p in reports)
    assert not any(p.waiting for p in reports)

    back = measurement_json.read(tmp_path / "baseline.json")
    assert back.by_key()["GET /api/employees/{id}"].count == by["GET /api/employees/{id}"].count
    assert back.source.kind is SourceKind.DATADOG


def test_chunks_and_a_week_in_one_query_comes_back_coarser(fake: FakeDatadog) -> None:
    week = timeline_chunks(S0, S0 + 7 * 86400)
    assert week == tuple((S0 + d * 86400, S0 + (d + 1) * 86400) for d in range(7))
    assert timeline_chunks(S0, S0 + 25 * 3600) == ((S0, S0 + 86400), (S0 + 86400, S0 + 25 * 3600))
    assert CHUNK_MINUTES + 1 <= MAX_POINTS  # a chunk plus the bucket starting at its end still fits
    # what one query for the whole week gets: the fake (like Datadog) raises the interval to fit 1500 points
    with _client(fake.url, FakeTime()) as client:
        series = client.timeseries(HITS_Q, S0, S0 + 7 * 86400)
    show = next(s for s in series if s.group == "employeescontroller_show")
    assert show.interval_s == 600
    assert len(show.points) <= MAX_POINTS
    assert sum(v for _, v in show.points if v is not None) == _total(RESOURCES["employeescontroller_show"].hits)


def test_a_coarsened_chunk_is_refused_not_misread(fake: FakeDatadog) -> None:
    fake.max_points = 1000  # a stricter server: one day at 60 s no longer fits
    with pytest.raises(DatadogError, match=r"with 120 s points instead of 60 s"):
        _pull(fake.url)


def test_the_points_hint_only_when_more_than_1500_points_were_asked_for(fake: FakeDatadog) -> None:
    fake.max_points = 1000  # a day at 60 s is 1,441 points: within Datadog's limit, so no ">1500" hint
    with pytest.raises(DatadogError) as caught:
        _pull(fake.url)
    message = str(caught.value)
    assert "1441 points asked for, within Datadog's 1500-point limit: Datadog chose that rollup" in message
    assert "more than" not in message
    # a week in one query does ask for more than 1500 points: then the hint is the reason
    assert _coarse_answer("q", 600, S0, S0 + 7 * 86400).endswith(
        "(10081 points asked for, more than the 1500 Datadog returns per series)"
    )
    assert "within" in _coarse_answer("q", 120, S0, S0 + (MAX_POINTS - 1) * 60)  # 1500 points: within the limit


@pytest.mark.parametrize("unit", ["millisecond", "microsecond", "nanosecond", None])
def test_latency_unit_blocks_are_converted_to_ms(fake: FakeDatadog, unit: str | None) -> None:
    fake.latency_unit = unit  # None: no unit block at all, read as seconds (trace.<span>'s documented unit)
    show = _pull(fake.url).measurement.by_key()["GET /api/employees/{id}"]
    truth = RESOURCES["employeescontroller_show"]
    assert isinstance(show.latency, LatencySummary)
    assert show.latency.p95_ms == pytest.approx(_ms(truth, "p95"))
    assert show.latency.max_ms == pytest.approx(_ms(truth, "max"))
    assert show.latency.avg_ms == pytest.approx(_ms(truth, "avg"))  # sum (in the unit) / count (spans)


def test_a_latency_in_a_unit_that_is_not_a_time_is_refused_naming_it(fake: FakeDatadog) -> None:
    fake.latency_unit = "percent"  # the unit block Datadog's recorded answers carry for system.cpu.*
    with pytest.raises(DatadogError, match=r"in percent \(percentage\), not a time unit"):
        _pull(fake.url)


def test_unit_blocks_known_answers() -> None:
    assert ms_per_unit(None, "q") == 1000.0
    assert ms_per_unit(Unit("second", "time", 1.0), "q") == 1000.0
    assert ms_per_unit(Unit("millisecond", "time", 0.001), "q") == 1.0
    assert ms_per_unit(Unit("microsecond", "time", 1e-6), "q") == pytest.approx(1e-3)
    assert ms_per_unit(Unit("nanosecond"), "q") == pytest.approx(1e-6)
    with pytest.raises(DatadogError, match=r"in second per hit \(time\)"):
        ms_per_unit(Unit("second", "time", 1.0, per_unit="hit"), "q")
    with pytest.raises(DatadogError, match=r"in minute \(time\)"):
        ms_per_unit(Unit("minute", "time", 60.0), "q")
    with pytest.raises(DatadogError, match=r"millisecond with scale_factor 1 \(a millisecond is 0.001 s\)"):
        ms_per_unit(Unit("millisecond", "time", 1.0), "q")


def test_series_without_the_resource_name_tag_are_named_not_called_no_series(fake: FakeDatadog) -> None:
    fake.untagged = set(RESOURCES)
    with pytest.raises(DatadogError) as caught:
        _pull(fake.url)
    message = str(caught.value)
    busy_first_day = sum(1 for r in RESOURCES.values() if _total(r.hits[:1440]))
    assert f"with {busy_first_day} series, none tagged resource_name (tag_set [])" in message
    assert "no series" not in message


def test_some_untagged_series_are_kept_as_one_unmapped_resource(fake: FakeDatadog) -> None:
    fake.untagged = {"healthcontroller_check", "legacycontroller_export"}
    result = _pull(fake.url)
    untagged = result.measurement.by_key()[UNTAGGED_RESOURCE]
    health, legacy = RESOURCES["healthcontroller_check"].hits, RESOURCES["legacycontroller_export"].hits
    hits = [(a or 0) + (b or 0) for a, b in zip(health, legacy, strict=True)]
    assert untagged.count == _total(hits[:1440])  # summed minute by minute, never dropped
    assert untagged.errors == _total(_errors(RESOURCES["legacycontroller_export"], 1440))
    assert UNTAGGED_RESOURCE in dict(result.unmapped)
    assert untagged.latency == LatencySummary()  # scalar rows without the tag name no resource
    assert result.measurement.by_key()["GET /api/employees/{id}"].count == _total(
        RESOURCES["employeescontroller_show"].hits[:1440]
    )


def test_null_points_stay_missing(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.null_minutes = {0, 1, 500}
    fake.null_stats = {"p99"}
    result = _pull_and_write(fake.url, tmp_path / "b.json")
    show = result.measurement.by_key()["GET /api/employees/{id}"]
    hits = RESOURCES["employeescontroller_show"].hits[:1440]
    assert show.timeline is not None
    assert show.timeline.errors is not None
    assert show.timeline.counts[:3] == (None, None, hits[2])
    assert show.timeline.counts[500] is None
    assert show.timeline.errors[0] is None  # minute 0 had an error, but the minute is not known
    assert show.count == _total(hits) - _total([hits[0], hits[1], hits[500]])
    assert show.errors == _total(_errors(RESOURCES["employeescontroller_show"], 1440)) - 1
    assert isinstance(show.latency, LatencySummary)
    assert show.latency.p99_ms is None
    assert show.latency.p95_ms == pytest.approx(17.8)
    saved = json.loads((tmp_path / "b.json").read_text())
    row = next(e for e in saved["endpoints"] if e["endpoint"] == "GET /api/employees/{id}")
    assert row["timeline"]["counts"][:2] == [None, None]
    assert row["latency"]["p99_ms"] is None


# -- faults ---------------------------------------------------------------------------------------


def test_refused_api_key_names_the_key_not_its_value(fake: FakeDatadog, tmp_path: Path) -> None:
    wrong = "wrong-api-key-value-0000"
    with pytest.raises(DatadogError) as caught:
        _pull_and_write(fake.url, tmp_path / "b.json", api_key=wrong)
    message = str(caught.value)
    assert "API key" in message
    assert "401" in message
    assert wrong not in message
    assert APP_KEY not in message
    assert isinstance(caught.value, BadInput)  # the CLI prints one line and exits 2
    assert "\n" not in message
    assert not (tmp_path / "b.json").exists()


def test_refused_app_key_names_the_key_and_the_permission(fake: FakeDatadog, tmp_path: Path) -> None:
    wrong = "wrong-app-key-value-0000"
    with pytest.raises(DatadogError) as caught:
        _pull_and_write(fake.url, tmp_path / "b.json", app_key=wrong)
    message = str(caught.value)
    assert "application key" in message
    assert "timeseries_query" in message
    assert wrong not in message
    assert API_KEY not in message
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize(("status", "words"), [(401, "API key"), (403, "application key")])
def test_auth_fault_modes(fake: FakeDatadog, status: int, words: str) -> None:
    fake.fail(status, times=None)
    t = FakeTime()
    with pytest.raises(DatadogError, match=words):
        _pull(fake.url, t=t)
    assert t.sleeps == []  # never retried
    assert len(fake.recorded()) == 1


def test_rate_limit_waits_as_the_reset_header_says(fake: FakeDatadog) -> None:
    fake.rate_limit(times=2, reset_s=7)
    t = FakeTime()
    reports: list[PullProgress] = []
    result = _pull(fake.url, t=t, progress=reports.append)
    assert t.sleeps == [7.0, 7.0]
    waits = [(p.wait_s, p.reason, p.attempt, p.query, p.done) for p in reports if p.waiting]
    assert waits == [(7.0, "rate limited (HTTP 429)", 1, HITS_Q, 0), (7.0, "rate limited (HTTP 429)", 2, HITS_Q, 0)]
    assert len(fake.recorded()) == 10 + 2
    assert result.measurement.by_key()["GET /api/employees/{id}"].count == _total(
        RESOURCES["employeescontroller_show"].hits[:1440]
    )


def test_rate_limit_gives_up_after_bounded_retries(fake: FakeDatadog) -> None:
    fake.rate_limit(times=100, reset_s=3)
    t = FakeTime()
    with pytest.raises(DatadogError, match=r"after 6 attempts \(last: rate limited \(HTTP 429\)\)") as caught:
        _pull(fake.url, t=t)
    assert t.sleeps == [3.0] * MAX_RETRIES
    assert HITS_Q in str(caught.value)


def test_rate_limit_waits_are_bounded_in_time(fake: FakeDatadog) -> None:
    fake.rate_limit(times=5, reset_s=500)  # a second 500 s wait would pass the 900 s budget of one query
    t = FakeTime()
    with pytest.raises(DatadogError, match="after 2 attempts"):
        _pull(fake.url, t=t)
    assert t.sleeps == [500.0]
    fake._faults.clear()
    fake.rate_limit(times=1, reset_s=4000)
    with pytest.raises(DatadogError, match="rate limit resets in 4000 s, too long to wait"):
        _pull(fake.url, t=t)
    assert t.sleeps == [500.0]


def test_server_errors_are_retried_with_backoff(fake: FakeDatadog) -> None:
    fake.fail(500, times=2)
    t = FakeTime()
    reports: list[PullProgress] = []
    result = _pull(fake.url, t=t, progress=reports.append)
    assert t.sleeps == [2.0, 4.0]
    assert [p.reason for p in reports if p.waiting] == ["HTTP 500", "HTTP 500"]
    assert result.measurement.total_count > 0


def test_server_errors_for_ever_name_the_query(fake: FakeDatadog) -> None:
    fake.fail(503, times=None)
    t = FakeTime()
    with pytest.raises(DatadogError, match="HTTP 503") as caught:
        _pull(fake.url, t=t)
    assert HITS_Q in str(caught.value)
    assert t.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert len(fake.recorded()) == 1 + MAX_RETRIES


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = FakeTime()
    with pytest.raises(DatadogError, match="cannot connect") as caught:
        _pull(f"http://127.0.0.1:{port}", t=t)
    assert HITS_Q in str(caught.value)
    assert len(t.sleeps) == MAX_RETRIES


def test_time_out_is_retried(fake: FakeDatadog) -> None:
    fake.delay(3.0, times=1)  # the client's 1 s leaves a loaded machine's normal answers time enough (0.15 s did not)
    t = FakeTime()
    reports: list[PullProgress] = []
    result = _pull(fake.url, t=t, progress=reports.append, timeout_s=1.0)
    assert [p.reason for p in reports if p.waiting] == ["no answer within 1 s"]
    assert t.sleeps == [2.0]
    assert result.measurement.total_count > 0


def test_no_hits_is_an_error_naming_the_query_and_the_tag_filter(fake: FakeDatadog, tmp_path: Path) -> None:
    fake.empty = True
    with pytest.raises(DatadogError) as caught:
        _pull_and_write(fake.url, tmp_path / "b.json")
    assert HITS_Q in str(caught.value)
    assert "tag filter env:ec2,service:web" in str(caught.value)
    assert len(fake.recorded()) == 1  # gave up before the errors and latency queries
    assert not (tmp_path / "b.json").exists()


def test_an_unknown_service_is_empty(fake: FakeDatadog) -> None:
    with pytest.raises(DatadogError, match="tag filter env:ec2,service:payroll"):
        _pull(fake.url, service="payroll")


def test_bad_names_and_windows_fail_before_any_request(fake: FakeDatadog) -> None:
    with _client(fake.url, FakeTime()) as client:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"span": "rack request"}, "span 'rack request'"),
            ({"service": "web}"}, "service 'web}'"),
            ({"start": START + timedelta(seconds=30)}, "not on a whole minute"),
            ({"start": START.replace(tzinfo=None)}, "no time zone"),
            ({"end": START}, "is not after start"),
        ]
        for change, message in cases:
            args: dict[str, Any] = {"service": "web", "env": "ec2", "start": START, "end": START + timedelta(hours=1)}
            with pytest.raises(DatadogError, match=message):
                pull_baseline(client, **(args | change))
    assert fake.recorded() == []


def test_connect_checks_its_arguments_and_ignores_the_environment(
    fake: FakeDatadog, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"api_key": ""}, "no Datadog API key"),
        ({"app_key": ""}, "no Datadog application key"),
        ({"site": "datadoghq.example"}, "Datadog site 'datadoghq.example'"),
        ({"dd_url": "127.0.0.1:8126"}, "expected http"),
    ]
    for kwargs, message in bad:
        with pytest.raises(DatadogError, match=message):
            connect(**({"api_key": API_KEY, "app_key": APP_KEY} | kwargs))
    monkeypatch.setenv("DD_API_KEY", "from-the-environment-api")
    monkeypatch.setenv("DD_APP_KEY", "from-the-environment-app")
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")
    with connect(api_key=API_KEY, app_key=APP_KEY) as client:
        assert client.host == "https://api.datadoghq.com"
    with connect(api_key=API_KEY, app_key=APP_KEY, site="datadoghq.eu") as client:
        assert client.host == "https://api.datadoghq.eu"
    _pull(fake.url)
    assert {r.headers["dd-api-key"] for r in fake.recorded()} == {API_KEY}
    assert {r.headers["dd-application-key"] for r in fake.recorded()} == {APP_KEY}


def test_no_key_value_appears_in_errors_progress_or_files(fake: FakeDatadog, tmp_path: Path) -> None:
    texts: list[str] = []
    reports: list[PullProgress] = []
    wrong_api, wrong_app = "not-the-api-key-1234567", "not-the-app-key-7654321"
    scenarios: list[tuple[Callable[[], object], dict[str, Any]]] = [
        (lambda: None, {"api_key": wrong_api}),
        (lambda: None, {"app_key": wrong_app}),
        (lambda: fake.fail(500, times=None), {}),
        (lambda: setattr(fake, "empty", True), {}),
    ]
    for setup, kwargs in scenarios:
        setup()
        with pytest.raises(DatadogError) as caught:
            _pull(fake.url, progress=reports.append, **kwargs)
        texts += [str(caught.value), repr(caught.value)]
        fake._faults.clear()
        fake.empty = False
    fake.rate_limit(times=1, reset_s=2)
    fake.fail(502, times=1)
    with _client(fake.url, FakeTime()) as client:
        texts.append(repr(client))
        result = pull_baseline(
            client, service="web", env="ec2", start=START, end=START + timedelta(days=1), progress=reports.append
        )
    assert any(p.waiting for p in reports)
    texts += [repr(p) for p in reports]
    out = measurement_json.write(result.measurement, tmp_path / "b.json")
    texts.append(out.read_text())
    texts.append(repr(result))
    assert fake.recorded()[-1].headers["dd-api-key"] == API_KEY  # the keys did travel, in headers only
    for secret in (API_KEY, APP_KEY, wrong_api, wrong_app):
        assert not any(secret in text for text in texts), secret


# -- the pure transform ---------------------------------------------------------------------------


def test_resources_on_one_endpoint_are_merged() -> None:
    def resource(name: str, hits: list[int | None], avg: float, p99: float) -> ResourcePull:
        return ResourcePull(name, tuple(hits), tuple(0 for _ in hits), LatencySummary(avg, avg * 10, p99_ms=p99))

    pull = ApmPull(
        "web",
        "ec2",
        "rack.request",
        START,
        START + timedelta(minutes=3),
        (resource("a_show", [1, 2, None], 10.0, 50.0), resource("b_show", [3, 0, 4], 20.0, 70.0)),
    )
    route = Endpoint("GET", "/x/{id}")
    result = build_baseline(pull, resolve=lambda _: route, params={"id": ("7",)})
    (stats,) = result.measurement.endpoints
    assert stats.count == 10  # each resource's known minutes
    assert stats.timeline is not None
    assert stats.timeline.counts == (4, 2, None)  # minute 3 is unknown on one side: unknown merged
    assert isinstance(stats.latency, LatencySummary)
    assert stats.latency.avg_ms == pytest.approx((10.0 * 3 + 20.0 * 7) / 10)
    assert stats.latency.max_ms == 200.0
    assert stats.latency.p99_ms is None  # percentiles do not merge from summaries
    assert stats.resource == "a_show, b_show"
    assert stats.request == RequestTemplate(path="/x/{id}", params={"id": ("7",)})
    assert result.unmapped == ()


def test_without_a_route_map_everything_is_kept_unmapped() -> None:
    pull = ApmPull(
        "web",
        "ec2",
        "rack.request",
        START,
        START + timedelta(minutes=2),
        (
            ResourcePull("a", (3, 1), (0, 0), LatencySummary(avg_ms=5.0)),
            ResourcePull("b", (0, 0), (0, 0), LatencySummary()),
        ),
    )
    result = build_baseline(pull)
    assert [e.endpoint for e in result.measurement.endpoints] == [Endpoint("", "a"), Endpoint("", "b")]
    assert result.unmapped == (("a", 1.0), ("b", 0.0))
    assert result.unmapped_share == 1.0


# -- the fake's other endpoints (for pushing results later) ----------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fake_accepts_gzipped_series_and_events(fake: FakeDatadog) -> None:
    payload = {"series": [{"metric": "parity.latency.p99", "type": 3, "points": [{"timestamp": S0, "value": 1.5}]}]}
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "DD-API-KEY": API_KEY}
    status, answer = _post(f"{fake.url}/api/v2/series", gzip.compress(json.dumps(payload).encode()), headers)
    assert (status, answer) == (202, {"errors": []})
    assert fake.posted("/api/v2/series") == [payload]
    event = {"title": "parity: FAIL", "text": "2 endpoints regressed", "tags": ["service:web"]}
    status, answer = _post(
        f"{fake.url}/api/v1/events",
        json.dumps(event).encode(),
        {"Content-Type": "application/json", "DD-API-KEY": API_KEY},
    )
    assert status == 202
    assert answer["status"] == "ok"
    assert answer["event"]["title"] == "parity: FAIL"
    status, _ = _post(f"{fake.url}/api/v1/events", json.dumps(event).encode(), {"DD-API-KEY": "nope"})
    assert status == 401

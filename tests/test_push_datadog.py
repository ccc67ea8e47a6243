"""``--push-datadog``: parity metrics and an event through the real datadog-api-client to the fake server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parity.datadog import (
    MAX_SERIES_PAYLOAD_BYTES,
    DatadogError,
    connect,
    connect_intake,
    datadog_tag,
    parity_event,
    parity_series,
    push_parity,
    push_result,
    series_batches,
)
from parity.history.command import record_run
from parity.history.store import load
from parity.judge.compare import compare
from parity.judge.result import Bottleneck, ParityResult, Verdict
from parity.model import Endpoint, LatencyKind
from parity.report.ci import parity_json, summary_md
from parity.report.context import RunMeta
from tests.conftest import lognormal_side
from tests.fakes.datadog_server import MAX_SERIES_BYTES, FakeDatadog, FakeDataset, fake_datadog
from tests.test_history import night

API_KEY = "api-key-0123456789abcdef-SECRET"
APP_KEY = "app-key-fedcba9876543210-SECRET"
AT = datetime(2026, 11, 3, 2, 30, 15, 750000, tzinfo=UTC)
AT_S = 1793673015  # AT in whole Unix seconds
META = RunMeta("0.1.0", "abc123", AT, None, "parity nightly")
REPORT = "https://ci.example.com/parity/2026-11-03/index.html"


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with fake_datadog(FakeDataset(start_s=0, resources={}), api_key=API_KEY, app_key=APP_KEY) as f:
        yield f


def _waits() -> tuple[list[float], Any]:
    waited: list[float] = []
    return waited, waited.append


def regressed_result() -> ParityResult:
    """A real comparison: /slow is 60% slower, /errors fails 8% of requests, /same is unchanged."""
    medians = {"GET /slow/{id}": 50.0, "POST /errors": 20.0, "GET /same": 10.0}
    base = lognormal_side(medians, seed=1, errors={"POST /errors": 2})
    cand = lognormal_side({**medians, "GET /slow/{id}": 80.0}, seed=2, errors={"POST /errors": 160})
    result = compare(base, cand, names=("baseline.json", "candidate.csv"))
    base_info = result.baseline.__class__(**{**result.baseline.__dict__, "service": "orders-api", "env": "ec2"})
    cand_info = result.candidate.__class__(**{**result.candidate.__dict__, "service": "orders-api", "env": "eks"})
    return ParityResult(**{**result.__dict__, "baseline": base_info, "candidate": cand_info})


def _series(fake: FakeDatadog) -> list[dict[str, Any]]:
    return [s for body in fake.posted("/api/v2/series") for s in body["series"]]


def _one(series: list[dict[str, Any]], metric: str, *tags: str) -> dict[str, Any]:
    found = [s for s in series if s["metric"] == metric and set(tags) <= set(s["tags"])]
    assert len(found) == 1, (metric, tags, found)
    return found[0]


def test_tag_normalisation() -> None:
    assert datadog_tag("endpoint", "GET /api/employees/{id}") == "endpoint:get_/api/employees/_id"
    assert datadog_tag("endpoint", "UsersController#show") == "endpoint:userscontroller_show"
    assert datadog_tag("endpoint", "GET /x<script>") == "endpoint:get_/x_script"
    assert datadog_tag("service", "Orders-API.v2") == "service:orders-api.v2"
    assert len(datadog_tag("endpoint", "GET /" + "a" * 500)) == 200


def test_push_sends_series_and_event(fake: FakeDatadog) -> None:
    result = regressed_result()
    assert result.verdict is Verdict.FAIL
    with connect_intake(api_key=API_KEY, dd_url=fake.url) as client:
        outcome = push_parity(client, result, at=AT, report_url=REPORT, tags=["team:payroll"])

    series = _series(fake)
    assert outcome.series == len(series) == len(parity_series(result, at_s=AT_S, tags=["team:payroll"]))
    assert outcome.batches == 1
    for request in fake.recorded("/api/v2/series") + fake.recorded("/api/v1/events"):
        assert request.headers["dd-api-key"] == API_KEY
        assert "dd-application-key" not in request.headers  # intake needs the API key only
    base_tags = {"service:orders-api", "env:eks", "baseline_env:ec2", "mode:before/after", "team:payroll"}
    for s in series:
        assert base_tags <= set(s["tags"])
        assert s["type"] == 3  # gauge
        assert s["points"] == [{"timestamp": AT_S, "value": s["points"][0]["value"]}]  # seconds, an integer
        assert isinstance(s["points"][0]["timestamp"], int)

    assert _one(series, "parity.run.verdict")["points"][0]["value"] == 3.0  # fail
    counts = {
        t.removeprefix("verdict:"): s["points"][0]["value"]
        for s in series
        if s["metric"] == "parity.endpoints"
        for t in s["tags"]
        if t.startswith("verdict:")
    }
    assert counts == {v.value: float(n) for v, n in result.counts().items()}

    slow = next(e for e in result.endpoints if e.endpoint.key == "GET /slow/{id}")
    p95 = slow.metric("p95_ms")
    assert p95 is not None
    assert p95.ratio is not None
    pushed = _one(series, "parity.latency.ratio", "endpoint:get_/slow/_id", "metric:p95_ms")
    assert pushed["points"][0]["value"] == pytest.approx(p95.ratio)
    assert p95.ratio > 1.4
    assert _one(series, "parity.endpoint.verdict", "endpoint:get_/slow/_id")["points"][0]["value"] == 3.0
    rps = _one(series, "parity.throughput.ratio", "endpoint:get_/slow/_id", "metric:rps")
    assert rps["points"][0]["value"] == pytest.approx(1.0)
    errors = next(e for e in result.endpoints if e.endpoint.key == "POST /errors").metric("error_rate")
    assert errors is not None
    assert errors.delta is not None
    delta = _one(series, "parity.error_rate.delta", "endpoint:post_/errors", "metric:error_rate")
    assert delta["points"][0]["value"] == pytest.approx(errors.delta)
    assert delta["points"][0]["value"] == pytest.approx(0.079)
    # the same endpoint's error-rate ratio is not pushed as a latency ratio
    assert not [s for s in series if s["metric"] == "parity.latency.ratio" and "metric:error_rate" in s["tags"]]

    (event,) = fake.posted("/api/v1/events")
    assert event["title"] == "Parity FAIL: orders-api eks vs ec2"
    assert event["alert_type"] == "error"
    assert event["date_happened"] == AT_S
    assert event["aggregation_key"] == "parity:orders-api"
    assert base_tags <= set(event["tags"])
    text = event["text"]
    assert text.startswith("Verdict: FAIL (before/after, 3 endpoints: 2 fail, 1 pass)")
    assert "Top regressions:\n1. GET /slow/{id} (fail): avg x1.5" in text  # ranked by extra time per minute
    assert "\n2. POST /errors (fail): " in text
    assert "+158.0 errors/min" in text
    assert text.endswith(f"Report: {REPORT}")
    assert outcome.event_id == 2  # the fake numbers requests: series first, then the event
    assert outcome.event_url is not None


def test_missing_figures_are_not_pushed_as_zero() -> None:
    result = night({"GET /a": {"p95_ms": None, "rps": 1.0, "error_rate": None}})
    series = parity_series(result, at_s=AT_S)
    names = [(s["metric"], next((t for t in s["tags"] if t.startswith("metric:")), "")) for s in series]
    assert ("parity.throughput.ratio", "metric:rps") in names
    assert not [n for n in names if n[1] in ("metric:p95_ms", "metric:error_rate")]


def test_incomparable_latency_is_not_pushed() -> None:
    """A client-side replay against a server-side baseline: no latency ratio (it would compare two different
    quantities); the verdicts, error deltas and throughput still go."""
    base = replace(lognormal_side({"GET /a": 20}), latency_kind=LatencyKind.SERVER)
    cand = lognormal_side({"GET /a": 26}, seed=2)  # service time: client-side
    result = compare(base, cand)
    assert result.incomparable is not None
    series = parity_series(result, at_s=AT_S)
    assert not [s for s in series if s["metric"] == "parity.latency.ratio"]
    assert {s["metric"] for s in series} >= {"parity.run.verdict", "parity.endpoint.verdict", "parity.error_rate.delta"}


def thousand_endpoints() -> ParityResult:
    figures = {
        f"GET /api/v1/customers/{{customer_id}}/orders/{i:04d}/items": {
            "avg_ms": 1.0 + i / 1e4,
            "p50_ms": 1.01,
            "p95_ms": 1.2,
            "p99_ms": 1.3,
            "max_ms": 2.0,
            "rps": 0.99,
            "error_rate": 0.012,
        }
        for i in range(1000)
    }
    return night(figures, Verdict.FAIL)


def test_one_thousand_endpoints_go_in_batches_under_the_size_limit(fake: FakeDatadog) -> None:
    result = thousand_endpoints()
    expected = parity_series(result, at_s=AT_S, tags=["team:payroll"])
    assert len(expected) == 1 + 4 + 1000 * 8  # run, counts, per endpoint: verdict + 6 ratios + error delta
    with connect_intake(api_key=API_KEY, dd_url=fake.url) as client:
        outcome = push_parity(client, result, at=AT, report_url=REPORT, tags=["team:payroll"])
    requests = fake.recorded("/api/v2/series")
    assert outcome.batches == len(requests) >= 5
    assert all(r.size <= MAX_SERIES_PAYLOAD_BYTES < MAX_SERIES_BYTES for r in requests)
    assert list(outcome.batch_bytes) == [r.size for r in requests]  # our size is what went on the wire
    assert _series(fake) == expected  # every series once, in order
    (event,) = fake.posted("/api/v1/events")
    assert len(event["text"]) <= 4000


def test_series_batches_known_sizes() -> None:
    item = {"metric": "m", "type": 3, "points": [{"timestamp": 1, "value": 1.0}], "tags": []}
    one = len(json.dumps({"series": [item]}))
    assert [len(b) for b in series_batches([item] * 5, max_bytes=one)] == [1] * 5
    two = len(json.dumps({"series": [item, item]}))
    assert [len(b) for b in series_batches([item] * 5, max_bytes=two)] == [2, 2, 1]
    assert [len(b) for b in series_batches([item] * 5, max_bytes=two - 1)] == [1] * 5
    assert series_batches([], max_bytes=100) == []
    with pytest.raises(DatadogError, match="larger than"):
        series_batches([item], max_bytes=one - 1)


def test_event_limits() -> None:
    long = "GET /" + "x" * 300
    base = night({f"{long}{i}": {"p95_ms": 2.0} for i in range(40)}, Verdict.FAIL)
    bottlenecks = tuple(
        Bottleneck(i + 1, Endpoint.parse(f"{long}{i}"), Verdict.FAIL, 9000.0, 0.0, 600.0, 2.0, 2.1, ("p95_ms",))
        for i in range(40)
    )
    reasons = tuple("a reason " * 100 for _ in range(5))
    result = ParityResult(**{**base.__dict__, "bottlenecks": bottlenecks, "reasons": reasons})
    event = parity_event(result, report_url=REPORT)
    assert len(event.title) <= 100
    assert len(event.text) <= 4000
    assert event.text.endswith(f"Report: {REPORT}")  # the report's location survives the cut
    assert event.text.count("\n1. ") == 1
    assert "\n6. " not in event.text  # top 5 only
    passing = parity_event(night({"GET /a": {"p95_ms": 1.0}}), report_url=None)
    assert passing.alert_type == "success"
    assert passing.text.endswith("Report: not published")


def test_server_error_is_one_line_and_loses_nothing(fake: FakeDatadog, tmp_path: Path) -> None:
    result = regressed_result()
    out = tmp_path / "night"
    out.mkdir()
    (out / "parity.json").write_text(json.dumps(parity_json(result, META)))
    store = tmp_path / "history.sqlite"
    record_run(store, result, META, out)
    fake.fail(500, times=None)
    waited, sleep = _waits()
    with (
        connect_intake(api_key=API_KEY, dd_url=fake.url, sleep=sleep, max_retries=2) as client,
        pytest.raises(DatadogError) as caught,
    ):
        push_parity(client, result, at=AT, report_url=REPORT)
    message = str(caught.value)
    assert "\n" not in message
    assert "HTTP 500" in message
    assert "0 of 1 metric batches accepted before" in message
    assert API_KEY not in message
    assert waited == [2.0, 4.0]  # retried with backoff, through the injected sleep
    assert len(fake.recorded("/api/v2/series")) == 3
    assert fake.recorded("/api/v1/events") == []
    # what was written before the push is intact
    assert json.loads((out / "parity.json").read_text())["verdict"] == "fail"
    assert len(load(store).runs) == 1


def test_event_failure_says_the_metrics_went_through(fake: FakeDatadog) -> None:
    fake.fail(503, times=None, path="/api/v1/events")
    with (
        connect_intake(api_key=API_KEY, dd_url=fake.url, max_retries=0) as client,
        pytest.raises(DatadogError, match=r"HTTP 503.*\(all 1 metric batches were accepted; the event was not\)"),
    ):
        push_parity(client, regressed_result(), at=AT, report_url=REPORT)
    assert len(fake.posted("/api/v2/series")) == 1


@pytest.mark.parametrize(("status", "text"), [(401, "HTTP 401"), (403, "HTTP 403")])
def test_refused_key(fake: FakeDatadog, status: int, text: str) -> None:
    fake.fail(status, times=None)
    with pytest.raises(DatadogError, match=f"refused the API key \\({text}\\)") as caught:
        push_result(regressed_result(), api_key=API_KEY, dd_url=fake.url, report_url=REPORT)
    assert API_KEY not in str(caught.value)


def test_no_key_no_push() -> None:
    with pytest.raises(DatadogError, match="no Datadog API key"):
        push_result(regressed_result(), api_key="", dd_url="http://127.0.0.1:9")


def test_api_key_appears_in_no_file_and_no_log(
    fake: FakeDatadog, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the client's and urllib3's debug logs included
    result = regressed_result()
    out = tmp_path / "reports" / "night"
    out.mkdir(parents=True)
    (out / "parity.json").write_text(json.dumps(parity_json(result, META)))
    (out / "summary.md").write_text(summary_md(result, META, REPORT))
    store = tmp_path / "reports" / "history" / "parity-history.sqlite"
    record_run(store, result, META, REPORT)
    outcome = push_result(result, api_key=API_KEY, dd_url=fake.url, report_url=REPORT, tags=["team:payroll"], at=AT)
    assert outcome.event_id is not None
    with connect(api_key=API_KEY, app_key=APP_KEY, dd_url=fake.url) as client:  # the pull client, for its repr
        logging.getLogger("test").debug("client %r", client)
    fake.fail(500, times=None)
    with pytest.raises(DatadogError) as caught:
        push_result(result, api_key=API_KEY, dd_url=fake.url, report_url=REPORT, sleep=lambda _: None)
    logging.getLogger("test").error("push failed: %s", caught.value)

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3
    for path in files:
        data = path.read_bytes()
        assert API_KEY.encode() not in data, path
        assert APP_KEY.encode() not in data, path
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, str(caught.value)):
        assert API_KEY not in text
        assert APP_KEY not in text
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # debug logging was really on
    # and the key did reach the server, as a header only
    assert all(r.headers["dd-api-key"] == API_KEY for r in fake.requests)
    assert all(API_KEY not in json.dumps(r.body) for r in fake.requests)


def test_push_result_defaults_to_now(fake: FakeDatadog) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    push_result(night({"GET /a": {"p95_ms": 1.0}}), api_key=API_KEY, dd_url=fake.url)
    after = datetime.now(UTC) + timedelta(seconds=1)
    (body,) = fake.posted("/api/v2/series")
    t = body["series"][0]["points"][0]["timestamp"]
    assert before.timestamp() <= t <= after.timestamp()

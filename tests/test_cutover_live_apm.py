"""The cutover's live APM reader (parity.cutover.live_apm) through the real datadog-api-client, end to end
against the demo's live fake Datadog (parity.demo.apm) on 127.0.0.1: exact known answers from spans sent
to its intake, one request per check, units, missing data kept missing, and every fault → ApmUnavailable
with its reason (no retry, no wait)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from parity.cutover.live_apm import DatadogLiveApm, queries_for, scalar_queries
from parity.cutover.model import ApmSelector, ApmUnavailable
from parity.datadog import DatadogError, connect
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, INTAKE_PATH, DemoDatadog, post_spans
from parity.errors import BadInput
from parity.judge.sequential import IntervalSummary
from tests.conftest import free_port

T0 = 1_800_000_000  # a window start (Unix s)
SCALAR = "/api/v2/query/scalar"
_ENVS = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[DemoDatadog]:
    with DemoDatadog() as dd:
        yield dd


@pytest.fixture
def dd(server: DemoDatadog) -> Iterator[DemoDatadog]:
    """The module's fake with its switches reset after each test (data is kept: tests use their own envs)."""
    yield server
    server.clear_faults()
    server.null_stats.clear()
    server.latency_unit = "second"


@pytest.fixture(scope="module")
def apm(server: DemoDatadog) -> Iterator[DatadogLiveApm]:
    with DatadogLiveApm.connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=server.url, timeout_s=10) as r:
        yield r


def send(
    dd: DemoDatadog, env: str, spans: list[list[object]], *, service: str = "web", tags: tuple[str, ...] = ()
) -> None:
    assert post_spans(dd.intake_url, env=env, service=service, span="rack.request", spans=spans, tags=tags) == len(
        spans
    )


def nearest_rank(values: list[float], q: float) -> float:
    """The smallest value with at least q of the values at or below it (computed without numpy)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_exact_statistics_per_resource_over_the_window(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    rng = np.random.default_rng(16)
    inside: dict[str, list[tuple[float, int]]] = {"EmployeesController#show": [], "PayslipsController#index": []}
    spans: list[list[object]] = []
    for resource, n, scale in (("EmployeesController#show", 500, 40.0), ("PayslipsController#index", 37, 300.0)):
        for i in range(n):
            start = T0 + 10 * i / n  # spread over [T0, T0 + 10)
            duration = round(float(rng.lognormal(math.log(scale), 0.6)), 3)
            error = int(rng.random() < 0.1)
            spans.append([resource, start, duration, error])
            inside[resource].append((duration, error))
    # outside the window [T0, T0 + 10): before it, at its end (excluded), another env, another service
    spans += [["EmployeesController#show", T0 - 0.001, 9999.0, 1], ["EmployeesController#show", T0 + 10, 9999.0, 1]]
    send(dd, "known", spans)
    send(dd, "known-other", [["EmployeesController#show", T0 + 1, 9999.0, 1]])
    send(dd, "known", [["EmployeesController#show", T0 + 1, 9999.0, 1]], service="other")
    before = len(dd.recorded(SCALAR))

    got = apm.interval(ApmSelector("web", "known"), T0, T0 + 10)

    assert len(dd.recorded(SCALAR)) == before + 1  # one request for the whole check
    assert set(got) == {"employeescontroller_show", "payslipscontroller_index"}  # Datadog's tag values
    for resource, rows in inside.items():
        durations = [d for d, _ in rows]
        summary = got[resource.lower().replace("#", "_")]
        assert summary.hits == len(rows)
        assert summary.errors == sum(e for _, e in rows)
        assert summary.avg_ms == pytest.approx(sum(durations) / len(durations), rel=1e-12)
        assert summary.max_ms == pytest.approx(max(durations), rel=1e-12)
        for name, q in (("p50", 0.5), ("p75", 0.75), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
            assert getattr(summary, f"{name}_ms") == pytest.approx(nearest_rank(durations, q), rel=1e-12), name


def test_a_sub_window_an_extra_tag_and_no_errors(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    send(dd, "tagged", [["HealthController#show", T0 + i, 2.0 + i, 0] for i in range(6)], tags=("cluster:blue",))
    send(dd, "tagged", [["HealthController#show", T0 + 1, 500.0, 1]], tags=("cluster:green",))

    blue = apm.interval(ApmSelector("web", "tagged", tags=("cluster:blue",)), T0 + 2, T0 + 5)
    both = apm.interval(ApmSelector("web", "tagged"), T0, T0 + 2)

    assert blue == {
        "healthcontroller_show": IntervalSummary(
            hits=3, errors=0, avg_ms=5.0, p50_ms=5.0, p75_ms=6.0, p90_ms=6.0, p95_ms=6.0, p99_ms=6.0, max_ms=6.0
        )
    }  # errors had no value (no error spans): 0 for a resource with hits
    assert both["healthcontroller_show"].hits == 3
    assert both["healthcontroller_show"].errors == 1
    assert both["healthcontroller_show"].max_ms == pytest.approx(500.0)


@pytest.mark.parametrize("unit", ["millisecond", "nanosecond", None])
def test_latency_units_are_honoured(dd: DemoDatadog, apm: DatadogLiveApm, unit: str | None) -> None:
    send(dd, f"unit-{unit}", [["A#b", T0 + 0.5, 12.5, 0], ["A#b", T0 + 0.6, 7.5, 0]])
    dd.latency_unit = unit
    got = apm.interval(ApmSelector("web", f"unit-{unit}"), T0, T0 + 1)["a_b"]
    assert (got.avg_ms, got.max_ms, got.p50_ms) == pytest.approx((10.0, 12.5, 7.5))


def test_missing_statistics_stay_none(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    send(dd, "nulls", [["A#b", T0 + 0.5, 12.5, 1], ["A#b", T0 + 0.6, 7.5, 0]])
    selector = ApmSelector("web", "nulls")
    dd.null_stats = {"p99", "max"}
    got = apm.interval(selector, T0, T0 + 1)["a_b"]
    assert (got.hits, got.errors, got.p99_ms, got.max_ms) == (2, 1, None, None)
    assert got.p50_ms == pytest.approx(7.5)

    dd.null_stats = {"count", "sum", "max", "p50", "p75", "p90", "p95", "p99"}  # hits but no latency rows
    got = apm.interval(selector, T0, T0 + 1)["a_b"]
    assert got == IntervalSummary(hits=2, errors=1)  # every latency None, never 0

    dd.null_stats = {"hits"}  # latency and errors but no hits: cannot be read as 0 hits
    with pytest.raises(ApmUnavailable, match=r"no hits for 'a_b'.*ingestion delay"):
        apm.interval(selector, T0, T0 + 1)


def test_an_empty_answer_is_unavailable_not_zero(apm: DatadogLiveApm) -> None:
    with pytest.raises(ApmUnavailable, match=r"APM of web in nowhere unavailable: Datadog has no trace\.rack\."):
        apm.interval(ApmSelector("web", "nowhere"), T0, T0 + 60)


def _one_row(hits: object) -> dict[str, Any]:
    """A full answer (one column per formula) for one resource whose hits value is ``hits``."""
    values: list[object] = [hits, 0.0, 0.03, 3.0, 0.02, 0.01, 0.01, 0.02, 0.02, 0.02]
    names = [q.name for q in scalar_queries(ApmSelector("web", "x"))]
    columns: list[dict[str, Any]] = [{"name": "resource_name", "type": "group", "values": [["a_b"]]}]
    columns += [
        {"name": n, "type": "number", "values": [v], "meta": {"unit": None}} for n, v in zip(names, values, strict=True)
    ]
    return {"data": {"type": "scalar_response", "attributes": {"columns": columns}}}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (lambda dd: dd.fail(500), r"HTTP 500\).*Datadog's side"),
        (lambda dd: dd.fail(503), r"HTTP 503"),
        (lambda dd: dd.rate_limit(1, 17), r"HTTP 429\).*resets in 17 s \(query_scalar: 1600 requests per 3600 s\)"),
        (lambda dd: dd.fail(401), r"API key \(HTTP 401\).*DD_API_KEY"),
        (lambda dd: dd.fail(403), r"application key \(HTTP 403\).*timeseries_query"),
        (lambda dd: dd.fail(200, body={"data": {"attributes": {"columns": [{"type": "number", "values": [1.0]}]}}}),
         "10 formulas with 1 number columns"),
        (lambda dd: dd.fail(200, body="not an answer"), "unexpected answer"),
        (lambda dd: dd.fail(200, body=_one_row(True)), "unexpected answer.*not a number: True"),
        (lambda dd: dd.fail(200, body=_one_row("5")), "unexpected answer.*not a number: '5'"),
        (lambda dd: dd.fail(200, body={"errors": "query timed out"}), "rejected .*: query timed out"),
    ],
)  # fmt: skip
def test_every_fault_is_unavailable_at_once(dd: DemoDatadog, apm: DatadogLiveApm, fault, reason: str) -> None:  # type: ignore[no-untyped-def]
    env = f"faults-{next(_ENVS)}"
    send(dd, env, [["A#b", T0 + 0.5, 1.0, 0]])
    before = len(dd.recorded(SCALAR))
    fault(dd)
    with pytest.raises(ApmUnavailable, match=f"APM of web in {env} unavailable: .*{reason}") as caught:
        apm.interval(ApmSelector("web", env), T0, T0 + 1)
    assert "\n" not in caught.value.reason
    assert DEMO_API_KEY not in caught.value.reason
    assert DEMO_APP_KEY not in caught.value.reason
    assert len(dd.recorded(SCALAR)) == before + 1  # no retry inside a check
    assert apm.interval(ApmSelector("web", env), T0, T0 + 1)["a_b"].hits == 1  # the next check reads again


def test_wrong_keys_and_a_time_out(dd: DemoDatadog) -> None:
    send(dd, "keys", [["A#b", T0 + 0.5, 1.0, 0]])
    selector = ApmSelector("web", "keys")
    for api_key, app_key, reason in (("wrong", DEMO_APP_KEY, "HTTP 401"), (DEMO_API_KEY, "wrong", "HTTP 403")):
        reader = DatadogLiveApm.connect(api_key=api_key, app_key=app_key, dd_url=dd.url)
        with reader, pytest.raises(ApmUnavailable, match=reason):
            reader.interval(selector, T0, T0 + 1)
    reader = DatadogLiveApm.connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=dd.url, timeout_s=0.5)
    dd.delay(30)  # woken when the server closes; the reader gives up long before
    with reader, pytest.raises(ApmUnavailable, match=r"no answer within 0\.5 s"):
        reader.interval(selector, T0, T0 + 1)
    reader = DatadogLiveApm.connect(
        api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=f"http://127.0.0.1:{free_port()}"
    )
    with reader, pytest.raises(ApmUnavailable, match="cannot connect"):
        reader.interval(selector, T0, T0 + 1)


def test_columns_named_otherwise_are_matched_by_position(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    values = [3.0, 1.0, 0.03, 3.0, 0.02, 0.01, 0.01, 0.02, 0.02, 0.02]  # hits … p99, latencies in seconds
    columns: list[dict[str, Any]] = [{"name": "resource_name", "type": "group", "values": [["x_y"]]}]
    columns += [
        {"name": f"query{i}", "type": "number", "values": [v], "meta": {"unit": None}} for i, v in enumerate(values)
    ]
    dd.fail(200, body={"data": {"type": "scalar_response", "attributes": {"columns": columns}}})
    got = apm.interval(ApmSelector("web", "position"), T0, T0 + 1)
    assert list(got) == ["x_y"]
    assert dataclasses.astuple(got["x_y"]) == pytest.approx((3, 1, 10.0, 10.0, 10.0, 20.0, 20.0, 20.0, 20.0))


def test_queries_and_bad_selectors() -> None:
    selector = ApmSelector("web", "eks", span="rack.request", tags=("kube_cluster_name:eks-prod",))
    assert queries_for(selector) == (
        "sum:trace.rack.request.hits{env:eks,service:web,kube_cluster_name:eks-prod} by {resource_name}.as_count()",
        "sum:trace.rack.request.errors{env:eks,service:web,kube_cluster_name:eks-prod} by {resource_name}.as_count()",
        "sum:trace.rack.request{env:eks,service:web,kube_cluster_name:eks-prod} by {resource_name}",
        "count:trace.rack.request{env:eks,service:web,kube_cluster_name:eks-prod} by {resource_name}",
        "max:trace.rack.request{env:eks,service:web,kube_cluster_name:eks-prod} by {resource_name}",
        *(f"{p}:trace.rack.request{{env:eks,service:web,kube_cluster_name:eks-prod}} by {{resource_name}}"
          for p in ("p50", "p75", "p90", "p95", "p99")),
    )  # fmt: skip
    assert [q.aggregator for q in scalar_queries(selector)] == ["sum"] * 4 + ["max"] + ["percentile"] * 5
    for bad, field in (
        (ApmSelector("web app", "eks"), "service"),
        (ApmSelector("web", "eks}"), "env"),
        (ApmSelector("web", "eks", span="rack request"), "span"),
        (ApmSelector("web", "eks", tags=("a,b",)), "tag"),
    ):
        with pytest.raises(DatadogError, match=f"^{field} "):
            queries_for(bad)
    assert issubclass(DatadogError, BadInput)


def test_bad_selector_or_window_sends_nothing(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    before = len(dd.recorded())
    with pytest.raises(DatadogError, match="service"):
        apm.interval(ApmSelector("a{b}", "eks"), T0, T0 + 1)
    with pytest.raises(DatadogError, match="not after the start"):
        apm.interval(ApmSelector("web", "eks"), T0, T0)
    assert len(dd.recorded()) == before


def test_intake_refuses_a_malformed_batch_whole(dd: DemoDatadog) -> None:
    received = dd.spans_received
    for spans in (
        [["A#b", T0, 1.0, 0], ["A#b", T0, -1.0, 0]],
        [["A#b", T0, 1.0, 2]],
        [["", T0, 1.0, 0]],
        [["A#b", "soon", 1.0, 0]],
        [["A#b", T0, 1.0]],
    ):
        with pytest.raises(ValueError, match="HTTP 400"):
            post_spans(dd.intake_url, env="bad", service="web", span="rack.request", spans=spans)
    assert dd.spans_received == received
    assert dd.intake_url.endswith(INTAKE_PATH)


def test_old_spans_are_dropped_beyond_the_horizon() -> None:
    with DemoDatadog(horizon_s=10) as dd:
        send(dd, "h", [["A#b", T0, 1.0, 0]])
        for i in range(4):  # later batches make the array grow: spans older than T0 + 100 - 10 go
            send(dd, "h", [["A#b", T0 + 100 + i, 2.0, 0]] * 200)
        with DatadogLiveApm.connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=dd.url) as reader:
            with pytest.raises(ApmUnavailable, match=r"no trace\.rack\.request\.hits"):
                reader.interval(ApmSelector("web", "h"), T0, T0 + 1)
            assert reader.interval(ApmSelector("web", "h"), T0 + 100, T0 + 104)["a_b"].hits == 800


def test_events_are_recorded(dd: DemoDatadog) -> None:
    body = json.dumps({"title": "Cutover stopped", "text": "rolled back to 0 %", "tags": ["env:eks"]}).encode()
    request = urllib.request.Request(
        dd.url + "/api/v1/events", data=body, method="POST", headers={"DD-API-KEY": DEMO_API_KEY}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        assert json.loads(response.read())["event"]["title"] == "Cutover stopped"
    assert dd.events()[-1]["title"] == "Cutover stopped"


def test_scalar_table_retries_when_asked(dd: DemoDatadog) -> None:
    """The pull's retrying path of the multi-query request (a 503 waited out through the injected sleep)."""
    send(dd, "retry", [["A#b", T0 + 0.5, 4.0, 1]])
    waits: list[float] = []
    dd.fail(503)
    with connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=dd.url, sleep=waits.append) as client:
        table = client.scalar_table(scalar_queries(ApmSelector("web", "retry")), T0, T0 + 1)
    assert waits == [2.0]
    assert (table["hits"].values, table["errors"].values, table["lmax"].values) == ({"a_b": 1.0},) * 2 + (
        {"a_b": 0.004},
    )
    assert table["lmax"].unit is not None
    assert table["lmax"].unit.name == "second"


def test_an_answer_cut_at_the_group_limit_is_unavailable_not_zero(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    # four resources, a reader that asks for at most three groups per formula: Datadog cuts every column at three
    # (largest first), and the quiet fast resource is left out of all of them. Read as complete, it would be an
    # endpoint with no hits on this side (the driver fills absent endpoints with hits=0) while it had traffic.
    spans = [[f"Busy{k}#show", T0 + i / 100, 50.0 + k, 0] for k in range(3) for i in range(100)]
    send(dd, "cut", [*spans, ["Quiet#show", T0 + 0.5, 1.0, 0]])
    selector = ApmSelector("web", "cut")
    assert len(apm.interval(selector, T0, T0 + 1)) == 4  # the default limit holds them all
    small = DatadogLiveApm(apm.client, groups=3)
    with pytest.raises(ApmUnavailable, match=r"APM of web in cut unavailable: .*3 resources, the most .* asks for"):
        small.interval(selector, T0, T0 + 1)


def test_more_errors_than_hits_is_unavailable_not_an_error_rate_of_one(dd: DemoDatadog, apm: DatadogLiveApm) -> None:
    # hits and errors are separate metrics: 5 errors over 3 hits is a window whose hits are not all in yet (or
    # metrics that disagree). Capped at the hits it read as a 100 % error rate: a guardrail breach from data that
    # is not there.
    values = [3.0, 5.0, 0.03, 3.0, 0.02, 0.01, 0.01, 0.02, 0.02, 0.02]  # hits, errors, lsum … p99
    names = [q.name for q in scalar_queries(ApmSelector("web", "partial"))]
    columns: list[dict[str, Any]] = [{"name": "resource_name", "type": "group", "values": [["x_y"]]}]
    columns += [
        {"name": n, "type": "number", "values": [v], "meta": {"unit": None}} for n, v in zip(names, values, strict=True)
    ]
    dd.fail(200, body={"data": {"type": "scalar_response", "attributes": {"columns": columns}}})
    with pytest.raises(ApmUnavailable, match=r"5 errors but 3 hits for 'x_y'.*ingestion delay"):
        apm.interval(ApmSelector("web", "partial"), T0, T0 + 1)


def test_span_intake_is_posted_directly_whatever_the_proxy_environment(
    dd: DemoDatadog, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert (
        post_spans(dd.intake_url, env="proxied", service="web", span="rack.request", spans=[["A#b", T0, 1.0, 0]]) == 1
    )


def test_an_event_whose_answer_times_out_is_not_sent_twice(dd: DemoDatadog) -> None:
    import time

    from parity.datadog import connect_intake, post_event

    # Datadog took the event but answered after the client's time-out: sending it again makes two "rolled back"
    # events. A refused connection or a 5xx (nothing taken) is still retried.
    before = len(dd.events())
    dd.delay(1.5)
    slept: list[float] = []
    with (
        connect_intake(api_key=DEMO_API_KEY, dd_url=dd.url, timeout_s=0.3, sleep=slept.append) as intake,
        pytest.raises(DatadogError, match=r"no answer within 0\.3 s.*may have been created.*not sent again") as caught,
    ):
        post_event(intake, title="Cutover stopped", text="rolled back to 0 %", alert_type="error")
    assert "\n" not in str(caught.value)
    deadline = time.monotonic() + 15
    while len(dd.events()) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # the delayed request is taken by the fake after its delay
    time.sleep(0.3)
    assert len(dd.events()) == before + 1
    assert slept == []  # no retry
    dd.fail(503)
    with connect_intake(api_key=DEMO_API_KEY, dd_url=dd.url, sleep=slept.append) as intake:
        post_event(intake, title="Cutover stopped", text="rolled back to 0 %", alert_type="error")
    assert len(dd.events()) == before + 2
    assert len(slept) == 1


def test_an_answer_without_a_formulas_column_is_unavailable_not_zero_errors(
    dd: DemoDatadog, apm: DatadogLiveApm
) -> None:
    # Datadog answers one column per formula (the API's ScalarFormulaResponseAtrributes.columns). An answer
    # without the errors column is malformed: read as "no error values", it gave errors=0 for every resource.
    values = [3.0, 2.0, 0.03, 3.0, 0.02, 0.01, 0.01, 0.02, 0.02, 0.02]  # hits, errors, lsum … p99
    names = [q.name for q in scalar_queries(ApmSelector("web", "nocolumn"))]
    columns: list[dict[str, Any]] = [{"name": "resource_name", "type": "group", "values": [["x_y"]]}]
    columns += [
        {"name": n, "type": "number", "values": [v], "meta": {"unit": None}}
        for n, v in zip(names, values, strict=True)
        if n != "errors"
    ]
    dd.fail(200, body={"data": {"type": "scalar_response", "attributes": {"columns": columns}}})
    with pytest.raises(ApmUnavailable, match=r"10 formulas with 9 number columns"):
        apm.interval(ApmSelector("web", "nocolumn"), T0, T0 + 1)


@pytest.mark.parametrize("url", ["http://user:s3cret@127.0.0.1:9", "https://s3cret@proxy.internal/api"])
def test_a_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    """A --dd-url / dd_url with user:password@ would carry the secret into every failure reason, explain.json and
    the report's command line: refused in one line that does not repeat it."""
    with pytest.raises(DatadogError) as err:
        connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=url)
    assert "credentials" in str(err.value)
    assert "s3cret" not in str(err.value)

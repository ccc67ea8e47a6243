"""parity.explain.datadog_spans end to end: the real datadog-api-client (SpansApi.list_spans) against the demo's
fake Datadog (parity.demo.apm + apm_traces) on 127.0.0.1: known answers from traces sent to its intake, the
seeded sampling rule, cursor pagination, 403, 429 with its reset (waited out or refused), a time-out, an empty
window, a 5xx, a refused query, the request budget. No sleeping: rate-limit waits go to an injected recorder."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from parity.datadog import DatadogError
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.apm_traces import SEARCH_PATH, StoredSpan, parse_spans, post_traces, wire_span
from parity.explain.breakdown import Component, Kind, classify
from parity.explain.datadog_spans import (
    DatadogSpans,
    EndpointWindow,
    ExplainUnavailable,
    SamplePolicy,
    span_from_wire,
    span_query,
)

T0 = 1_800_000_000  # Unix s, whole: every start below is a whole number of ms (Datadog answers ms resolution)
SHOW = "UsersController#show"


def _trace(
    n: int, *, env: str = "ec2", resource: str = SHOW, queries: int = 3, at_s: float | None = None
) -> list[dict[str, Any]]:
    """Trace ``n``: a rack.request root (40 ms + 5 ms per query), ``queries`` postgres queries of 4 ms each in
    web-postgres, one 1.5 ms redis call; the root of trace 2 is an error."""
    start = at_s if at_s is not None else T0 + 10 + n  # one trace per second
    tid = str(9_000_000_000_000_000_000 + n)  # 64-bit decimal, as Datadog spells them
    root = f"{n}00"
    spans: list[dict[str, Any]] = [
        {
            "trace_id": tid,
            "span_id": root,
            "parent_id": "0",
            "service": "web",
            "name": "rack.request",
            "resource": resource,
            "type": "web",
            "start_s": start,
            "duration_ms": 40.0 + 5 * queries,
            "error": int(n == 2),
            "meta": {"http.method": "GET"},
        },
        {
            "trace_id": tid,
            "span_id": f"{n}01",
            "parent_id": root,
            "service": "web-redis",
            "name": "redis.command",
            "resource": "GET",
            "type": "redis",
            "start_s": start + 0.002,
            "duration_ms": 1.5,
        },
    ]
    for q in range(queries):
        spans.append(
            {"trace_id": tid, "span_id": f"{n}1{q}", "parent_id": root, "service": "web-postgres",
             "name": "postgres.query", "resource": "SELECT * FROM users WHERE id = ?", "type": "sql",
             "start_s": start + 0.005 + 0.005 * q, "duration_ms": 4.0, "meta": {"db.system": "postgresql"}}
        )  # fmt: skip
    return spans


@pytest.fixture
def fake() -> Iterator[DemoDatadog]:
    with DemoDatadog() as dd:
        yield dd


@pytest.fixture
def waits() -> list[float]:
    return []


def _reader(
    fake: DemoDatadog, waits: list[float], *, timeout_s: float = 10.0, app_key: str = DEMO_APP_KEY
) -> DatadogSpans:
    return DatadogSpans.connect(
        api_key=DEMO_API_KEY, app_key=app_key, dd_url=fake.url, timeout_s=timeout_s, sleep=waits.append
    )


def _window(**kw: Any) -> EndpointWindow:
    return EndpointWindow(**{"env": "ec2", "service": "web", "resource": SHOW, "start_s": T0, "end_s": T0 + 600, **kw})


def _send(fake: DemoDatadog, spans: list[dict[str, Any]], env: str = "ec2") -> None:
    assert post_traces(fake.traces_url, env=env, spans=spans) == len(spans)


def test_known_answers_whole_traces_in_ms_with_parents(fake: DemoDatadog, waits: list[float]) -> None:
    for n in range(1, 6):
        _send(fake, _trace(n))
    _send(fake, _trace(7, resource="UsersController#index"))  # another endpoint
    _send(fake, _trace(8), env="eks")  # another env
    _send(fake, _trace(9, at_s=T0 + 700))  # after the window
    with _reader(fake, waits) as reader:
        sample = reader.sample_traces(_window(), SamplePolicy(traces=10, seed=1))
    assert sample.candidates == 5
    assert not sample.capped
    assert sample.dropped == 0
    assert not sample.notes
    assert sorted(t.trace_id for t in sample.traces) == [str(9_000_000_000_000_000_000 + n) for n in range(1, 6)]
    assert sample.requests == 2  # one page of request spans, one batch of traces (one page each)
    assert sample.rate_limit is not None
    assert sample.rate_limit.remaining == 298
    assert sample.rate_limit.limit == 300
    assert "spans_search: 298 of 300 requests left" in sample.rate_limit.describe()
    assert "random.Random(1).sample" in sample.rule
    assert "retention filters" in sample.rule
    assert sample.query == 'service:web env:ec2 operation_name:rack.request resource_name:"UsersController#show"'
    trace = next(t for t in sample.traces if t.trace_id.endswith("2"))
    root = trace.request_span
    assert root.span_id == "200"
    assert root.parent_id is None
    assert root.error
    assert (root.service, root.type, root.name, root.resource) == ("web", "web", "rack.request", SHOW)
    assert root.start_ms == (T0 + 12) * 1000.0
    assert root.start_resolution_ms == 1.0  # the client parses the ms timestamp: a whole ms, known to 1 ms
    assert root.duration_ms == 55.0
    children = [s for s in trace.spans if s is not root]
    assert len(children) == 4
    assert all(s.parent_id == "200" for s in children)
    pg = [s for s in children if s.name == "postgres.query"]
    assert [s.duration_ms for s in pg] == [4.0, 4.0, 4.0]
    assert {s.type for s in pg} == {"sql"}
    assert [s.start_ms - root.start_ms for s in pg] == pytest.approx([5.0, 10.0, 15.0])
    assert pg[0].tag("db.system") == "postgresql"
    assert pg[0].service == "web-postgres"
    assert not pg[0].error
    redis = next(s for s in children if s.type == "redis")
    assert redis.duration_ms == 1.5
    assert redis.start_ms - root.start_ms == pytest.approx(2.0)
    assert waits == []


def test_the_draw_is_the_stated_seeded_rule(fake: DemoDatadog, waits: list[float]) -> None:
    spans = [s for n in range(1, 41) for s in _trace(n, queries=1)]
    _send(fake, spans)
    with _reader(fake, waits) as reader:
        a = reader.sample_traces(_window(), SamplePolicy(traces=7, seed=3))
        b = reader.sample_traces(_window(), SamplePolicy(traces=7, seed=3))
        c = reader.sample_traces(_window(), SamplePolicy(traces=7, seed=4))
    pool = [str(9_000_000_000_000_000_000 + n) for n in range(1, 41)]  # sorted by start: trace n at T0+10+n
    expected = random.Random(3).sample(pool, 7)
    assert [t.trace_id for t in a.traces] == expected == [t.trace_id for t in b.traces]
    assert [t.trace_id for t in c.traces] != expected
    assert a.candidates == 40
    assert len(a.traces) == 7
    assert "7 traces of 40 indexed request spans" in a.describe()


def test_cursor_pagination_gives_the_same_answer_and_caps_are_stated(fake: DemoDatadog, waits: list[float]) -> None:
    for n in range(1, 6):
        _send(fake, _trace(n))
    with _reader(fake, waits) as reader:
        whole = reader.sample_traces(_window(), SamplePolicy(traces=10))
        paged = reader.sample_traces(_window(), SamplePolicy(traces=10, page_limit=2, batch_traces=2))
        capped = reader.sample_traces(_window(), SamplePolicy(traces=10, max_candidates=3, page_limit=2))
    assert {t.trace_id: t.spans for t in paged.traces} == {t.trace_id: t.spans for t in whole.traces}
    # candidates: pages of 2, 2, 1 (the short page ends it, though it carries a cursor as Datadog's do);
    # traces: batches of 2, 2, 1 traces of 5 spans each in pages of 2: 5 full pages + the empty one, 6, then 2, 2, 1
    searches = fake.recorded(SEARCH_PATH)
    cursors = [r.body["data"]["attributes"]["page"].get("cursor") for r in searches[whole.requests :]]
    assert sum(c is not None for c in cursors) > 0
    assert paged.requests == 3 + 6 + 6 + 3
    assert capped.capped
    assert capped.candidates == 3
    assert capped.covered_until_s == T0 + 13
    assert "the window's earliest ones: it may hold more" in capped.describe()


def test_401_is_one_line(fake: DemoDatadog, waits: list[float]) -> None:
    _send(fake, _trace(1))
    reader = DatadogSpans.connect(api_key="wrong-api-key-456", app_key=DEMO_APP_KEY, dd_url=fake.url, timeout_s=10)
    with reader, pytest.raises(ExplainUnavailable) as err:
        reader.sample_traces(_window())
    assert "HTTP 401" in err.value.reason
    assert "wrong-api-key-456" not in err.value.reason


def test_the_sample_feeds_the_judge_as_spans_roots_and_a_chosen_phrase(fake: DemoDatadog, waits: list[float]) -> None:
    for n in range(1, 4):
        _send(fake, _trace(n))
    with _reader(fake, waits) as reader:
        sample = reader.sample_traces(_window(), SamplePolicy(traces=2, seed=5))
    assert len(sample.spans) == 2 * 5
    assert sample.roots == {t.trace_id: f"{int(t.trace_id) - 9_000_000_000_000_000_000}00" for t in sample.traces}
    assert sample.chosen.startswith("2 traces of 3 indexed request spans of UsersController#show (web in ec2): 2 drawn")


def test_403_is_one_line_naming_the_permission_and_no_key(fake: DemoDatadog, waits: list[float]) -> None:
    _send(fake, _trace(1))
    with _reader(fake, waits, app_key="wrong-app-key-123") as reader, pytest.raises(ExplainUnavailable) as err:
        reader.sample_traces(_window())
    line = err.value.reason
    assert "HTTP 403" in line
    assert "apm_read" in line
    assert "\n" not in line
    assert "wrong-app-key-123" not in line
    assert DEMO_API_KEY not in line


def test_429_with_a_short_reset_is_waited_out_and_shown(fake: DemoDatadog, waits: list[float]) -> None:
    for n in range(1, 4):
        _send(fake, _trace(n))
    fake.rate_limit(1, reset_s=7, name="spans_search")
    said: list[str] = []
    with _reader(fake, waits) as reader:
        sample = reader.sample_traces(_window(), progress=said.append)
    assert waits == [7.0]
    assert sample.waits_s == (7.0,)
    assert len(sample.traces) == 3
    assert said
    assert "waiting 7 s" in said[0]
    assert "spans_search: 0 of 1600 requests left" in said[0]
    assert sample.requests == 3  # the refused request counts against the budget


def test_429_with_a_long_reset_or_the_fakes_own_limit_is_one_line(fake: DemoDatadog, waits: list[float]) -> None:
    _send(fake, _trace(1))
    fake.rate_limit(1, reset_s=3600, name="spans_search")
    with _reader(fake, waits) as reader:
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window())
        assert "HTTP 429" in err.value.reason
        assert "resets in 3600 s" in err.value.reason
        assert waits == []
        fake.traces.limit = 1  # the second search of the period is over Datadog's limit
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window())
    assert "HTTP 429" in err.value.reason
    assert "spans_search: 0 of 1 requests left" in err.value.reason


def test_a_time_out_is_one_line(fake: DemoDatadog, waits: list[float]) -> None:
    _send(fake, _trace(1))
    fake.delay(5.0)
    with _reader(fake, waits, timeout_s=0.5) as reader, pytest.raises(ExplainUnavailable) as err:
        reader.sample_traces(_window())
    assert "no answer within 0.5 s" in err.value.reason
    assert "\n" not in err.value.reason


def test_an_empty_window_a_5xx_and_a_refused_query_are_one_line(fake: DemoDatadog, waits: list[float]) -> None:
    with _reader(fake, waits) as reader:
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window())
        assert "no indexed span" in err.value.reason
        assert "resource_name" in err.value.reason
        _send(fake, _trace(1))
        fake.fail(503)
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window())
        assert "HTTP 503" in err.value.reason
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window(tags=("@peer.hostname:db",)), SamplePolicy())
        assert "no indexed span" in err.value.reason  # @meta terms are served; nothing matches
        fake.fail(400, body={"errors": ["Invalid query"]})
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window())
        assert "HTTP 400" in err.value.reason
        assert "Invalid query" in err.value.reason
    with pytest.raises(DatadogError):
        span_query(_window(service="web app"))  # bad input: nothing sent


def test_the_request_budget_keeps_whole_batches_only(fake: DemoDatadog, waits: list[float]) -> None:
    for n in range(1, 5):
        _send(fake, _trace(n))
    with _reader(fake, waits) as reader:
        sample = reader.sample_traces(_window(), SamplePolicy(traces=4, batch_traces=2, max_requests=2))
        with pytest.raises(ExplainUnavailable) as err:
            reader.sample_traces(_window(), SamplePolicy(max_requests=1))
    assert len(sample.traces) == 2
    assert sample.dropped == 2
    assert sample.requests == 2
    assert any("budget (2) ran out" in n for n in sample.notes)
    assert "no sampled trace could be read whole" in err.value.reason


def test_the_trace_intake_refuses_a_malformed_batch_whole(fake: DemoDatadog) -> None:
    bad = _trace(1)
    bad[1] = {**bad[1], "duration_ms": -1}
    with pytest.raises(ValueError, match="HTTP 400"):
        post_traces(fake.traces_url, env="ec2", spans=bad)
    assert len(fake.traces) == 0


def test_the_trace_store_drops_spans_past_its_horizon() -> None:
    with DemoDatadog(horizon_s=60.0) as dd:
        _send(dd, _trace(1, queries=1))  # 3 spans at T0 + 11
        _send(dd, _trace(2, queries=1, at_s=T0 + 100))  # 3 spans, 89 s later: the first trace is past 60 s
        assert len(dd.traces) == 3


def test_sides_sharing_trace_ids_stay_apart_and_a_doubled_span_id_drops_its_trace(
    fake: DemoDatadog, waits: list[float]
) -> None:
    for n in range(1, 4):
        _send(fake, _trace(n, queries=1))
        _send(fake, _trace(n, queries=4), env="eks")  # the same trace and span ids in the other env
    again = _trace(3, queries=1)
    _send(fake, [{**again[0], "duration_ms": 99.0}])  # trace 3's root once more, with another duration
    with _reader(fake, waits) as reader:
        old = reader.sample_traces(_window())
        new = reader.sample_traces(_window(env="eks"))
    assert sorted(len(t.spans) for t in new.traces) == [6, 6, 6]  # root, redis, 4 queries: none from ec2
    assert {t.request_span.duration_ms for t in new.traces} == {60.0}
    assert [t.trace_id[-1] for t in old.traces if len(t.spans) == 3] == [t.trace_id[-1] for t in old.traces]
    assert sorted(t.trace_id[-1] for t in old.traces) == ["1", "2"]
    assert old.dropped == 1
    assert any("span id twice" in n for n in old.notes)


# The first span of DataDog/datadog-api-client-python tests/v2/cassettes/test_scenarios/
# test_search_spans_returns_ok_response.yaml (a real answer of POST /api/v2/spans/events/search), trimmed to the
# fields parity reads plus a few host tags: span meta (http.*, span.kind) is NESTED in ``custom``, ``tags`` holds
# host/infrastructure tags only, and there is no ``operation_name`` or ``status`` (nor in the client's model).
RECORDED_ITEM: dict[str, Any] = {
    "id": "AYkGkCVkAADfl3Kz2yGWhekz",
    "type": "spans",
    "attributes": {
        "custom": {
            "component": "flask",
            "duration": 3402932,
            "env": "pcf-spartancrimson",
            "http": {
                "host": "localhost",
                "method": "GET",
                "status_code": "200",
                "url": "http://localhost:8080/",
                "url_details": {"host": "localhost", "path": "/", "port": "8080", "scheme": "http"},
            },
            "language": "python",
            "span": {"kind": "server"},
        },
        "end_timestamp": "2023-06-29T09:50:52.475Z",
        "env": "pcf-spartancrimson",
        "host": "compute-0-7cf8c81f-0dee-468b-af1b-bb6ba06b4b29",
        "ingestion_reason": "auto",
        "parent_id": "0",
        "resource_hash": "2c8cc8275262b3cd",
        "resource_name": "GET /",
        "retained_by": "diversity_sampling",
        "service": "python-sample-app-spartancrimson",
        "single_span": False,
        "span_id": "9270756141854228302",
        "start_timestamp": "2023-06-29T09:50:52.472Z",
        "tags": ["foo:bar", "source:apm", "env:pcf-spartancrimson", "bosh_az:us-central1-f", "compute"],
        "trace_id": "3740652481065462946",
        "type": "web",
    },
}


def _real_shape(span_id: str, parent: str, type_: str, custom: dict[str, Any]) -> dict[str, Any]:
    """A child span in the recorded answers' shape (meta nested in custom, host tags only)."""
    attrs = {**RECORDED_ITEM["attributes"], "custom": {"duration": 2_000_000, **custom}}
    attrs.update(span_id=span_id, parent_id=parent, type=type_, resource_name="q", service="web")
    return {**RECORDED_ITEM, "attributes": attrs}


def test_span_from_wire_reads_a_recorded_answer_and_the_meta_nested_in_custom() -> None:
    span = span_from_wire(RECORDED_ITEM)
    assert span is not None
    assert (span.trace_id, span.span_id, span.parent_id) == ("3740652481065462946", "9270756141854228302", None)
    assert (span.service, span.type, span.resource, span.name) == (
        "python-sample-app-spartancrimson",
        "web",
        "GET /",
        "",
    )
    assert span.duration_ms == pytest.approx(3.402932)  # custom.duration is in ns
    assert span.start_ms == 1688032252472.0
    assert not span.error
    assert span.tag("span.kind") == "server"
    assert span.tag("http.url") == "http://localhost:8080/"
    assert span.tag("http.url_details.host") == "localhost"
    assert span.tag("foo") == "bar"  # host tags are still read, after the span's own meta
    root = span
    db = span_from_wire(_real_shape("2", root.span_id, "sql", {"db": {"system": "postgresql", "instance": "payroll"}}))
    call = span_from_wire(_real_shape("3", root.span_id, "http", {"peer": {"service": "billing"}}))
    cache = span_from_wire(_real_shape("4", root.span_id, "cache", {"db": {"type": "redis"}}))
    assert db is not None
    assert call is not None
    assert cache is not None
    assert db.tag("db.system") == "postgresql"
    assert classify(db, root) == Component("web", Kind.DATABASE, "postgres")
    assert classify(call, root) == Component("web", Kind.HTTP, "billing")
    assert classify(cache, root) == Component("web", Kind.CACHE, "redis")


def test_the_fakes_answer_has_the_recorded_shape() -> None:
    stored = StoredSpan(
        trace_id="7", span_id="8", parent_id="1", env="ec2", service="web-postgres", name="postgres.query",
        resource="SELECT 1", type="sql", start_s=T0 + 0.5, duration_ms=2.5, error=False,
        meta={"db.system": "postgresql", "peer.service": "payroll-db", "span.kind": "client", "db.instance": "pay"},
    )  # fmt: skip
    item = wire_span(stored)
    attrs = item["attributes"]
    assert set(RECORDED_ITEM["attributes"]) <= set(attrs)
    assert attrs["custom"]["db"] == {"system": "postgresql", "instance": "pay"}
    assert attrs["custom"]["peer"] == {"service": "payroll-db"}
    assert attrs["custom"]["span"] == {"kind": "client"}
    assert attrs["custom"]["duration"] == 2_500_000
    assert not any(t.startswith(("db.", "peer.", "span.")) for t in attrs["tags"])  # host tags only
    span = span_from_wire(item)
    assert span is not None
    assert span.tag("db.system") == "postgresql"
    assert span.tag("peer.service") == "payroll-db"
    # starts to the millisecond with the fraction's trailing zeros left out, as recorded ("10:48:51.12Z")
    for start_s, suffix in ((T0 + 0.12, ".12Z"), (T0 + 0.005, ".005Z"), (T0 + 0.0, ":00Z")):
        attrs = wire_span(replace(stored, start_s=start_s))["attributes"]
        assert attrs["start_timestamp"].endswith(suffix), attrs["start_timestamp"]
        back = span_from_wire(wire_span(replace(stored, start_s=start_s)))
        assert back is not None
        assert back.start_ms == pytest.approx(start_s * 1000, abs=1e-3)


def test_request_spans_that_cannot_be_read_are_not_called_no_traffic(fake: DemoDatadog, waits: list[float]) -> None:
    unreadable = {"type": "spans", "attributes": {"span_id": "1", "trace_id": "2", "custom": {"env": "ec2"}}}
    fake.fail(200, body={"data": [unreadable, unreadable], "meta": {"status": "done"}})
    with _reader(fake, waits) as reader, pytest.raises(ExplainUnavailable) as err:
        reader.sample_traces(_window())
    assert "2 request spans" in err.value.reason
    assert "no indexed span" not in err.value.reason  # there were spans: they lacked a start or duration
    assert "duration" in err.value.reason


def test_a_request_span_ingested_alone_is_not_drawn_as_a_whole_trace(fake: DemoDatadog, waits: list[float]) -> None:
    # single-span ingestion keeps a span of a trace that was otherwise dropped: its "trace" is that span alone,
    # which would read as 100 % app code
    for n in range(1, 6):
        _send(fake, _trace(n))
    lone = _trace(6)[:1]
    _send(fake, lone)
    roots = [t[0] for t in (_trace(n) for n in range(1, 6))] + lone
    items = [wire_span(s) for s in parse_spans("ec2", roots)]
    items[-1]["attributes"].update(single_span=True, ingestion_reason="single_span")
    fake.fail(200, body={"data": items, "meta": {"status": "done", "page": {}}})  # the request-span search
    with _reader(fake, waits) as reader:
        sample = reader.sample_traces(_window(), SamplePolicy(traces=10))
    assert sample.candidates == 5
    assert all(not t.trace_id.endswith("6") for t in sample.traces)
    assert any("single span" in n for n in sample.notes)

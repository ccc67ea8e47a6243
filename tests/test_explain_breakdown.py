"""Known-answer tests of parity.explain.breakdown on made-up span trees (times in ms, offsets from 0)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from parity.explain.breakdown import (
    APP_LABEL,
    Component,
    Kind,
    SkippedTrace,
    TraceBreakdown,
    breakdown_trace,
    breakdown_traces,
    classify,
)
from parity.explain.datadog_spans import span_from_wire
from parity.explain.spans import Span

T0 = 1_764_000_000_000.0  # a realistic epoch in ms: offsets below are added to it


def span(
    sid: str,
    parent: str | None,
    start: float,
    end: float,
    *,
    name: str = "custom.op",
    type: str = "custom",
    service: str = "web",
    trace: str = "t1",
    tags: dict[str, str] | None = None,
) -> Span:
    return Span(
        trace_id=trace,
        span_id=sid,
        parent_id=parent,
        service=service,
        type=type,
        name=name,
        resource=name,
        start_ms=T0 + start,
        duration_ms=end - start,
        tags=tuple(sorted((tags or {}).items())),
    )


def root(start: float = 0.0, end: float = 100.0, sid: str = "r", **kw: object) -> Span:
    return span(sid, None, start, end, name="rack.request", type="web", **kw)  # type: ignore[arg-type]


def pg(sid: str, parent: str | None, start: float, end: float, **kw: object) -> Span:
    return span(sid, parent, start, end, name="postgres.query", type="sql", **kw)  # type: ignore[arg-type]


def redis(sid: str, parent: str | None, start: float, end: float) -> Span:
    return span(sid, parent, start, end, name="redis.command", type="redis")


def http(sid: str, parent: str | None, start: float, end: float, peer: str = "billing") -> Span:
    return span(sid, parent, start, end, name="http.request", type="http", tags={"peer.service": peer})


APP = Component("web", Kind.APP, APP_LABEL)
PG = Component("web", Kind.DATABASE, "postgres")
REDIS = Component("web", Kind.CACHE, "redis")


def ok(result: TraceBreakdown | SkippedTrace) -> TraceBreakdown:
    assert isinstance(result, TraceBreakdown), result
    return result


def times(b: TraceBreakdown) -> dict[Component, float]:
    return {c.component: round(c.time_ms, 6) for c in b.components}


def calls(b: TraceBreakdown) -> dict[Component, int]:
    return {c.component: c.calls for c in b.components}


def assert_sums(b: TraceBreakdown) -> None:
    assert math.isclose(math.fsum(c.time_ms for c in b.components), b.duration_ms, abs_tol=1e-6)
    assert all(c.time_ms >= 0 for c in b.components)


def test_sequential_children_known_answer() -> None:
    b = ok(breakdown_trace([root(), pg("p1", "r", 10, 30), redis("c1", "r", 40, 45)]))
    assert times(b) == {APP: 75.0, PG: 20.0, REDIS: 5.0}
    assert b.duration_ms == 100.0
    assert b.spans == 3
    assert b.orphans == 0
    assert b.excluded == 0
    assert_sums(b)


def test_nested_controller_template_and_queries() -> None:
    spans = [
        root(),
        span("ctl", "r", 5, 95, name="rails.action_controller", type="web"),
        pg("p1", "ctl", 10, 20),
        pg("p2", "ctl", 30, 40),
        span("tpl", "ctl", 50, 70, name="rails.render_template", type="template"),
        pg("p3", "tpl", 55, 60),
    ]
    b = ok(breakdown_trace(spans))
    tpl = Component("web", Kind.TEMPLATE, "templates")
    assert times(b) == {APP: 60.0, PG: 25.0, tpl: 15.0}
    assert calls(b) == {APP: 2, PG: 3, tpl: 1}
    assert_sums(b)


def test_parallel_children_are_not_double_counted() -> None:
    # two overlapping calls 10-50 and 20-60: the union is 50 ms, not 80; the overlap goes to the one that ends last
    b = ok(breakdown_trace([root(), http("a", "r", 10, 50, "billing"), http("b", "r", 20, 60, "search")]))
    assert times(b) == {
        APP: 50.0,
        Component("web", Kind.HTTP, "billing"): 10.0,
        Component("web", Kind.HTTP, "search"): 40.0,
    }
    assert_sums(b)
    same = ok(breakdown_trace([root(), pg("a", "r", 10, 50), pg("b", "r", 20, 60), pg("c", "r", 25, 30)]))
    assert times(same) == {APP: 50.0, PG: 50.0}
    assert calls(same)[PG] == 3
    assert_sums(same)


def test_async_child_outliving_its_parent_is_clipped() -> None:
    job = span("j", "r", 90, 150, name="sidekiq.push", type="worker")
    b = ok(breakdown_trace([root(), job]))
    assert times(b) == {APP: 90.0, Component("web", Kind.QUEUE, "sidekiq"): 10.0}
    assert b.clipped == 1
    assert_sums(b)


def test_overlapping_sibling_and_grandchild() -> None:
    spans = [
        root(),
        pg("a", "r", 10, 40),
        http("b", "r", 30, 70),
        span("bill", "b", 35, 65, name="rack.request", type="web", service="billing"),
    ]
    b = ok(breakdown_trace(spans))
    assert times(b) == {
        APP: 40.0,
        PG: 20.0,
        Component("web", Kind.HTTP, "billing"): 10.0,
        Component("billing", Kind.APP, APP_LABEL): 30.0,
    }
    assert_sums(b)


def test_missing_parents_are_reattached_or_excluded_and_counted() -> None:
    inside = pg("o1", "gone", 20, 30)
    outside = pg("o2", "gone", 200, 210)
    b = ok(breakdown_trace([root(), inside, outside]))
    assert times(b) == {APP: 90.0, PG: 10.0}
    assert b.orphans == 1
    assert b.excluded == 1
    assert_sums(b)


def test_missing_root_skips_the_trace_with_a_reason() -> None:
    result = breakdown_trace([pg("p1", "r", 10, 20), redis("c1", "r", 30, 35)])
    assert isinstance(result, SkippedTrace)
    assert result.trace_id == "t1"
    assert "no root span" in result.reason
    asked = breakdown_trace([root(), pg("p1", "r", 10, 20)], root_span_id="nope")
    assert isinstance(asked, SkippedTrace)
    assert "nope" in asked.reason
    assert isinstance(breakdown_trace([]), SkippedTrace)


def test_explicit_root_below_a_proxy() -> None:
    proxy = span("px", None, 0, 120, name="nginx.request", type="proxy", service="edge")
    web = span("w", "px", 10, 110, name="rack.request", type="web")
    b = ok(breakdown_trace([proxy, web, pg("p", "w", 20, 40)], root_span_id="w"))
    assert b.duration_ms == 100.0
    assert b.root_span_id == "w"
    assert times(b) == {APP: 80.0, PG: 20.0}
    assert b.excluded == 1
    assert_sums(b)


def test_duplicates_foreign_spans_and_cycles_are_counted() -> None:
    spans = [
        root(),
        pg("p", "r", 10, 20),
        pg("p", "r", 10, 20),
        pg("x", "r", 10, 20, trace="other"),
        pg("c1", "c2", 30, 40),
        pg("c2", "c1", 30, 40),
    ]
    b = ok(breakdown_trace(spans))
    assert times(b) == {APP: 90.0, PG: 10.0}
    assert (b.duplicates, b.foreign, b.excluded) == (1, 1, 2)
    assert_sums(b)


def test_zero_length_and_identical_children() -> None:
    b = ok(breakdown_trace([root(), pg("z", "r", 50, 50), span("same", "r", 0, 100, name="rails.action_controller")]))
    assert times(b) == {APP: 100.0, PG: 0.0}
    assert calls(b) == {APP: 2, PG: 1}
    assert_sums(b)


def test_from_ns_at_a_real_epoch_sums_exactly() -> None:
    base = 1_764_000_000_123_456_789
    spans = [
        Span.from_ns(
            trace_id=7,
            span_id=1,
            parent_id=0,
            service="web",
            type="web",
            name="rack.request",
            resource="UsersController#show",
            start_ns=base,
            duration_ns=12_345_678,
        ),
        Span.from_ns(
            trace_id=7,
            span_id=2,
            parent_id=1,
            service="web",
            type=None,
            name="postgres.query",
            resource="SELECT 1",
            start_ns=base + 1_000_001,
            duration_ns=3_000_003,
            error=1,
        ),
    ]
    assert spans[0].parent_id is None
    assert spans[1].type == ""
    assert spans[1].error is True
    b = ok(breakdown_trace(spans))
    assert b.duration_ms == pytest.approx(12.345678)
    assert times(b)[PG] == pytest.approx(3.000003, abs=1e-6)
    assert_sums(b)


@pytest.mark.parametrize("resolution", [0.0, 1.0])
def test_random_trees_sum_to_the_root_and_never_go_negative(resolution: float) -> None:
    # parallel, async (outliving the parent), nested and orphaned calls; exact starts, or starts known to the
    # ms (Datadog's: truncated, the breakdown then places calls within the millisecond)
    kinds = [("postgres.query", "sql"), ("redis.command", "redis"), ("http.request", "http"), ("x.op", "custom")]
    for seed in range(30):
        rng = random.Random(seed)
        spans = [root(0, 1000)]
        for i in range(rng.randint(1, 60)):
            parent = rng.choice(spans)
            a = rng.uniform(parent.start_ms - T0 - 20, parent.end_ms - T0)
            b = a + rng.uniform(0, 300)  # may outlive the parent (async)
            name, typ = rng.choice(kinds)
            pid = parent.span_id if rng.random() > 0.05 else "missing"
            spans.append(span(f"s{i}", pid, a, b, name=name, type=typ))
        if resolution:
            spans = [dataclasses.replace(s, start_ms=math.floor(s.start_ms), start_resolution_ms=1.0) for s in spans]
        rng.shuffle(spans)
        result = ok(breakdown_trace(spans))
        assert_sums(result)
        assert result.spans + result.excluded == len(spans)


def test_many_sequential_queries_n_plus_one() -> None:
    spans = [root(0, 3000)] + [pg(f"q{i}", "r", i + 0.25, i + 0.75) for i in range(3000)]
    b = ok(breakdown_trace(spans))
    assert times(b) == {APP: 1500.0, PG: 1500.0}
    assert calls(b)[PG] == 3000
    assert_sums(b)


def test_breakdown_traces_groups_and_reports_skipped() -> None:
    spans = [
        root(trace="a"),
        pg("p", "r", 10, 20, trace="a"),
        pg("q", "r", 10, 20, trace="b"),  # trace b: root not fetched
    ]
    done, skipped = breakdown_traces(spans, roots={"a": "r", "c": "r"})
    assert [d.trace_id for d in done] == ["a"]
    assert [(s.trace_id, "no root" in s.reason or "no spans" in s.reason) for s in skipped] == [
        ("b", True),
        ("c", True),
    ]


@pytest.mark.parametrize(
    ("type_", "name", "tags", "expected"),
    [
        ("sql", "active_record.sql", {"active_record.db.vendor": "postgres"}, (Kind.DATABASE, "postgres")),
        ("sql", "active_record.sql", {}, (Kind.DATABASE, "sql")),
        ("db", "postgres.query", {}, (Kind.DATABASE, "postgres")),
        ("sql", "mysql2.query", {}, (Kind.DATABASE, "mysql")),
        ("db", "some.db.op", {"db.system": "postgresql"}, (Kind.DATABASE, "postgres")),
        ("redis", "redis.command", {}, (Kind.CACHE, "redis")),
        ("cache", "rails.cache", {}, (Kind.CACHE, "rails.cache")),
        ("memcached", "memcached.command", {}, (Kind.CACHE, "memcached")),
        ("http", "http.request", {"peer.service": "billing"}, (Kind.HTTP, "billing")),
        ("http", "net/http.request", {"out.host": "api.example.com"}, (Kind.HTTP, "api.example.com")),
        ("http", "http.request", {}, (Kind.HTTP, "http")),
        (
            "http",
            "requests.request",
            {"http.url": "https://billing.internal:8443/v1/charge"},
            (Kind.HTTP, "billing.internal"),
        ),
        ("http", "", {"http.url_details.host": "tax.example.com"}, (Kind.HTTP, "tax.example.com")),
        ("http", "net/http.request", {"http.url": "/v1/charge"}, (Kind.HTTP, "http")),  # a path names no host
        ("web", "rack.request", {}, (Kind.APP, APP_LABEL)),
        ("web", "rails.action_controller", {}, (Kind.APP, APP_LABEL)),
        ("template", "rails.render_template", {}, (Kind.TEMPLATE, "templates")),
        ("dns", "dns.lookup", {}, (Kind.DNS, "dns")),
        ("", "dns.resolve", {}, (Kind.DNS, "dns")),
        ("worker", "sidekiq.job", {}, (Kind.QUEUE, "sidekiq")),
        ("proxy", "http_server.queue", {}, (Kind.QUEUE, "request queue")),
        ("custom", "active_record.instantiation", {}, (Kind.CUSTOM, "active_record.instantiation")),
        ("", "mystery.op", {}, (Kind.OTHER, "mystery.op")),
        # Datadog's answers carry no operation name: never an empty component name
        ("custom", "", {}, (Kind.CUSTOM, "custom")),
        ("", "", {}, (Kind.OTHER, "unnamed")),
    ],
)
def test_classify(type_: str, name: str, tags: dict[str, str], expected: tuple[Kind, str]) -> None:
    parent = root()
    s = span("s", "r", 1, 2, name=name, type=type_, tags=tags)
    c = classify(s, parent)
    assert (c.kind, c.name) == expected
    assert c.service == "web"


def test_a_service_entry_is_its_app_code() -> None:
    custom_entry = span("s", "r", 1, 2, name="billing.handle", type="custom", service="billing")
    assert classify(custom_entry, root()) == Component("billing", Kind.APP, APP_LABEL)
    # a client span in another service (old-style "web-postgres" service naming) stays a database
    db = pg("p", "r", 1, 2, service="web-postgres")
    assert classify(db, root()) == Component("web-postgres", Kind.DATABASE, "postgres")
    # the root itself, whatever its type
    assert classify(span("x", None, 0, 1, name="job.run", type=""), None).kind is Kind.APP


def test_span_rejects_bad_durations() -> None:
    with pytest.raises(ValueError, match="duration_ms"):
        span("s", None, 10, 5)
    with pytest.raises(ValueError, match="finite"):
        Span("t", "s", None, "web", "web", "rack.request", "r", math.nan, 1.0)


def _wire(sid: str, parent: str, start_us: int, duration_ns: int, type_: str, db: bool) -> dict[str, object]:
    """A span as Datadog's Spans API answers it: start_timestamp to the MILLISECOND (as every recorded answer),
    duration in ns. ``start_us``: the true start, µs after 2026-01-01T00:00:00Z."""
    ms = start_us // 1000
    custom: dict[str, object] = {"duration": duration_ns}
    if db:
        custom["db"] = {"system": "postgresql"}
    return {
        "type": "spans",
        "attributes": {
            "trace_id": "7", "span_id": sid, "parent_id": parent, "service": "web", "resource_name": "R",
            "type": type_, "custom": custom,
            "start_timestamp": f"2026-01-01T00:00:{ms // 1000:02d}.{ms % 1000:03d}Z",
        },
    }  # fmt: skip


@pytest.mark.parametrize("queries", [8, 24])
def test_millisecond_start_timestamps_do_not_hide_back_to_back_queries(queries: int) -> None:
    # an N+1: ``queries`` back-to-back 0.4 ms queries from 1.3 ms into a 20 ms request; Datadog gives their starts
    # truncated to the ms, so several share one start and would seem to run at once (the union, not the sum)
    spans = [span_from_wire(_wire("1", "0", 5_000_300, 20_000_000, "web", False))]
    spans += [span_from_wire(_wire(f"q{i}", "1", 5_001_600 + 400 * i, 400_000, "sql", True)) for i in range(queries)]
    b = ok(breakdown_trace([s for s in spans if s is not None]))
    assert_sums(b)
    assert calls(b)[PG] == queries
    assert times(b)[PG] == pytest.approx(0.4 * queries, abs=1e-6)  # not ~0.4 per distinct millisecond
    assert times(b)[APP] == pytest.approx(20.0 - 0.4 * queries, abs=1e-6)
    assert b.clipped == 0


def _dd_timestamp(ms: int) -> str:
    """A start as Datadog's Spans API writes it: ms resolution, trailing zeros of the fraction left out (the
    recorded cassettes hold ``10:48:51.12Z`` beside ``10:48:56.164Z``) and no fraction at a whole second."""
    text = f"2026-01-01T00:00:{ms // 1000:02d}.{ms % 1000:03d}".rstrip("0").rstrip(".")
    return text + "Z"


def test_a_start_with_its_trailing_zeros_left_out_is_still_known_to_the_ms() -> None:
    # Datadog leaves trailing zeros out: ".1Z" is 100 ms after the second, known to the ms like ".164Z", not to
    # 100 ms. Two parallel 50 ms calls starting at 5.100 s in a 300 ms request: 250 ms of app code, whichever
    # call is charged the overlap; a start known to the ms can move a call by 1 ms at most. Read as 100 ms
    # resolution, the second call was pushed 50 ms later (after the first) and 50 ms of app code became
    # outbound http that never happened.
    def wire(sid: str, parent: str, ms: int, duration_ms: int, peer: str | None) -> dict[str, object]:
        custom: dict[str, object] = {"duration": duration_ms * 1_000_000}
        if peer:
            custom["peer"] = {"service": peer}
        return {
            "type": "spans",
            "attributes": {
                "trace_id": "7", "span_id": sid, "parent_id": parent, "service": "web", "resource_name": "R",
                "type": "http" if peer else "web", "custom": custom, "start_timestamp": _dd_timestamp(ms),
            },
        }  # fmt: skip

    assert _dd_timestamp(5_000) == "2026-01-01T00:00:05Z"
    assert _dd_timestamp(5_100) == "2026-01-01T00:00:05.1Z"
    items = [wire("1", "0", 5_000, 300, None), wire("a", "1", 5_100, 50, "billing"), wire("b", "1", 5_100, 50, "tax")]
    spans = [span_from_wire(i) for i in items]
    assert [s.start_resolution_ms if s else None for s in spans] == [1.0, 1.0, 1.0]
    b = ok(breakdown_trace([s for s in spans if s is not None]))
    assert_sums(b)
    assert times(b)[APP] == pytest.approx(250.0, abs=1.0 + 1e-6)
    assert sum(c.time_ms for c in b.components if c.component.kind is Kind.HTTP) == pytest.approx(50.0, abs=1.0 + 1e-6)


def test_a_call_in_its_parents_last_millisecond_stays_the_calls() -> None:
    # a 20 ms request that starts 0.7 ms into a millisecond and whose 8 back-to-back 0.4 ms queries run until
    # 0.2 ms before it ends: the last query starts in the request's last truncated millisecond. The request's
    # true start is known only to [5.000, 5.001] s; the query (known to start at >= 5.020 s, 0.4 ms long) proves
    # the request ended at >= 5.0204 s, so it cannot have started at 5.000. Placed there anyway, the query fell
    # past its parent's end: it was counted as clipped and its 0.4 ms went to app code.
    spans = [span_from_wire(_wire("1", "0", 5_000_700, 20_000_000, "web", False))]
    spans += [span_from_wire(_wire(f"q{i}", "1", 5_017_300 + 400 * i, 400_000, "sql", True)) for i in range(8)]
    b = ok(breakdown_trace([s for s in spans if s is not None]))
    assert_sums(b)
    assert times(b)[PG] == pytest.approx(3.2, abs=1e-6)
    assert times(b)[APP] == pytest.approx(16.8, abs=1e-6)
    assert b.clipped == 0


def test_a_call_in_a_nested_parents_last_millisecond_stays_the_calls() -> None:
    # the same one level down: rack.request > rails.action_controller (starts 0.2 ms after the request, in the
    # same millisecond, and ends 0.1 ms before it) > the 8 queries, the last ending 0.2 ms before the controller
    def wire(sid: str, parent: str, start_us: int, duration_ns: int, name: str, type_: str) -> dict[str, object]:
        item = _wire(sid, parent, start_us, duration_ns, type_, type_ == "sql")
        item["attributes"]["operation_name"] = name  # type: ignore[index]
        return item

    items = [wire("1", "0", 5_000_700, 20_300_000, "rack.request", "web")]
    items.append(wire("2", "1", 5_000_900, 20_000_000, "rails.action_controller", "web"))
    items += [wire(f"q{i}", "2", 5_017_500 + 400 * i, 400_000, "postgres.query", "sql") for i in range(8)]
    spans = [span_from_wire(i) for i in items]
    b = ok(breakdown_trace([s for s in spans if s is not None]))
    assert_sums(b)
    assert times(b)[PG] == pytest.approx(3.2, abs=1e-6)
    assert b.clipped == 0


_KINDS = [("postgres.query", "sql"), ("redis.command", "redis"), ("http.request", "http"), ("x.op", "custom")]


def _true_tree(rng: random.Random) -> list[tuple[str, str | None, int, int, str, str]]:
    """A random request whose calls run one after another (each inside its parent, siblings never overlapping):
    (id, parent, start µs, duration µs, name, type); sub-ms calls, calls sharing a millisecond, calls in their
    parent's first and last millisecond, gaps of 0 to a few ms. Random ids: their order is not the calls'."""
    out: list[tuple[str, str | None, int, int, str, str]] = []
    root_start = rng.randrange(0, 1000)
    root_dur = rng.randrange(2_000, 40_000)
    out.append(("r", None, root_start, root_dur, "rack.request", "web"))
    todo = [("r", root_start, root_start + root_dur, 0)]
    while todo:
        pid, lo, hi, depth = todo.pop()
        cursor = lo + rng.choice([0, 0, rng.randrange(0, 300)])
        while depth < 3 and rng.random() < 0.85:
            dur = rng.choice([rng.randrange(0, 900), rng.randrange(1_000, 8_000)])
            start = cursor + rng.choice([0, 0, rng.randrange(0, 400), rng.randrange(0, 3_000)])
            if start + dur > hi:
                break
            sid = f"{rng.getrandbits(32):08x}"
            name, typ = rng.choice(_KINDS)
            out.append((sid, pid, start, dur, name, typ))
            todo.append((sid, start, start + dur, depth + 1))
            cursor = start + dur
    return out


def _as_spans(tree: list[tuple[str, str | None, int, int, str, str]], *, ms: bool) -> list[Span]:
    """The tree as exact spans, or as Datadog answers it (``ms``: starts truncated to the ms, known to 1 ms)."""
    return [
        Span(
            trace_id="t", span_id=sid, parent_id=pid, service="web", type=typ, name=name, resource=name,
            start_ms=T0 + (start // 1000 if ms else start / 1000), duration_ms=dur / 1000,
            start_resolution_ms=1.0 if ms else 0.0,
        )
        for sid, pid, start, dur, name, typ in tree
    ]  # fmt: skip


def test_calls_of_different_components_sharing_a_millisecond_keep_their_time() -> None:
    # a 0.2 ms redis get at 5.1 ms, then a 5 ms query at 5.3 ms: both start "at 5 ms" to Datadog. Taken in span
    # id order (random in Datadog: here the query's sorts first) the get was put after the query's start, inside
    # it, and its 0.2 ms went to postgres; only the shorter-first order can be what happened
    spans = [root(0, 20)]
    spans += [pg("a", "r", 5.3, 10.3), span("b", "r", 5.1, 5.3, name="redis.command", type="redis")]
    spans = [dataclasses.replace(s, start_ms=math.floor(s.start_ms), start_resolution_ms=1.0) for s in spans]
    b = ok(breakdown_trace(spans))
    assert times(b) == {APP: 14.8, PG: 5.0, REDIS: 0.2}


def test_ms_starts_of_calls_made_one_after_another_give_the_exact_breakdown() -> None:
    # known answer per seeded random request: its breakdown from the exact starts; truncating every start to the
    # ms (what Datadog answers) must not change any component's time or calls, nor clip anything (to 1 µs: an
    # exact start at a real epoch in ms is itself a float good to ~0.25 µs)
    for seed in range(200):
        tree = _true_tree(random.Random(seed))
        exact = ok(breakdown_trace(_as_spans(tree, ms=False)))
        truncated = ok(breakdown_trace(_as_spans(tree, ms=True)))
        assert exact.clipped == 0
        assert (seed, truncated.clipped) == (seed, 0)
        assert (seed, calls(truncated)) == (seed, calls(exact))
        for comp, t in times(exact).items():
            assert abs(times(truncated)[comp] - t) <= 1e-3, (seed, comp, times(truncated)[comp], t)
        assert_sums(truncated)


def test_outbound_calls_by_pod_ip_or_with_a_port_are_one_component_not_one_per_address() -> None:
    # calls to one downstream through its pods' IPs (out.host as dd-trace sets it for a connection by address)
    # and with or without the port in the Host header: one component per downstream, not one per pod or per
    # spelling, else each request's address is its own component (and none exists on the other side)
    def peer(tags: dict[str, str]) -> str:
        return classify(span("s", "r", 1, 2, name="http.request", type="http", tags=tags), root()).name

    by_ip = {peer({"out.host": f"10.0.3.{i}"}) for i in range(1, 30)}
    by_ip |= {peer({"out.host": "fd00::1"}), peer({"http.url": "http://[fd00::2]:8080/x"})}
    by_ip |= {peer({"out.host": "10.0.3.4:8080"}), peer({"peer.hostname": "10.0.3.5"})}
    assert by_ip == {"http"}
    assert peer({"out.host": "10.0.3.4", "http.url": "http://billing.internal/v1"}) == "billing.internal"
    spellings = {peer({"http.host": "billing.internal:8080"}), peer({"out.host": "Billing.Internal"})}
    assert spellings == {"billing.internal"}


def test_parallel_calls_known_to_the_ms_are_not_pushed_apart() -> None:
    # a fan-out: calls to billing (30 ms from 5.2 ms) and tax (29.5 ms from 5.6 ms) run at once; the request
    # waits for billing, which ends last: billing 30 ms, tax nothing, app code 70 ms. Datadog gives both starts as
    # 5 ms. They cannot have run one after the other (neither fits in the millisecond before the other starts),
    # so the data say they overlapped and nothing moves them: pushing billing 1 ms later (the "least overlap")
    # charged tax 1 ms of app code it never had, and, for ten 50 ms calls from one instant, fabricated 1 ms of
    # outbound http out of app code.
    def call(sid: str, start: float, end: float, peer: str) -> Span:
        s = http(sid, "r", start, end, peer=peer)
        return dataclasses.replace(s, start_ms=math.floor(s.start_ms), start_resolution_ms=1.0)

    req = dataclasses.replace(root(0, 100), start_resolution_ms=1.0)
    b = ok(breakdown_trace([req, call("a", 5.2, 35.2, "billing"), call("b", 5.6, 35.1, "tax")]))
    billing, tax = Component("web", Kind.HTTP, "billing"), Component("web", Kind.HTTP, "tax")
    assert (times(b)[billing], times(b)[tax]) == (30.0, 0.0)
    fan_out = [call(f"c{i}", 100.3, 150.3, f"svc{i}") for i in range(10)]
    b = ok(breakdown_trace([dataclasses.replace(root(0, 300), start_resolution_ms=1.0), *fan_out]))
    assert times(b)[APP] == pytest.approx(250.0, abs=1e-6)

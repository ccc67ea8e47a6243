"""Known-answer tests of parity.explain.judge: synthetic traces built as spans, broken down by the real
breakdown, judged old vs new (times in ms)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence

import pytest

from parity.explain.breakdown import Kind, SkippedTrace, TraceBreakdown, breakdown_trace
from parity.explain.judge import (
    CONFIDENCE,
    EXPLAIN_SHARE,
    MIN_TRACES,
    Change,
    ComponentChange,
    Explanation,
    TraceSample,
    explain,
    to_json,
    trace_sample,
)
from parity.explain.spans import Span

T0 = 1_764_000_000_000.0
N = 40  # traces per side


def make_trace(
    tid: str,
    app_ms: float,
    *,
    queries: Sequence[float] = (),
    redis: Sequence[float] = (),
    http: Sequence[float] = (),
    dns: Sequence[float] = (),
    service: str = "web",
) -> TraceBreakdown:
    """A request: half its app time, then its calls one after the other, then the other half of the app time."""
    calls: list[tuple[str, str, float, dict[str, str]]] = (
        [("postgres.query", "sql", d, {}) for d in queries]
        + [("redis.command", "redis", d, {}) for d in redis]
        + [("http.request", "http", d, {"peer.service": "billing"}) for d in http]
        + [("dns.lookup", "dns", d, {}) for d in dns]
    )
    total = app_ms + sum(c[2] for c in calls)
    spans = [Span(tid, "root", None, service, "web", "rack.request", "GET /users", T0, total)]
    at = T0 + app_ms / 2
    for i, (name, typ, d, tags) in enumerate(calls):
        spans.append(Span(tid, f"s{i}", "root", service, typ, name, name, at, d, tags=tuple(tags.items())))
        at += d
    result = breakdown_trace(spans)
    assert isinstance(result, TraceBreakdown)
    return result


def app_times(seed: int) -> list[float]:
    """The same spread of app-code times on both sides (50-54 ms)."""
    rng = random.Random(seed)
    return [50.0 + rng.uniform(0, 4) for _ in range(N)]


def by_label(e: Explanation) -> dict[str, ComponentChange]:
    return {c.label: c for c in e.components}


def assert_consistent(e: Explanation) -> None:
    """Component differences sum to the request's; every interval contains its estimate; JSON is plain."""
    assert e.request is not None
    assert math.isclose(sum(c.diff_ms for c in e.components), e.request.diff_ms, abs_tol=1e-6)
    for c in e.components:
        assert c.diff_low_ms <= c.diff_ms + 1e-9
        assert c.diff_ms <= c.diff_high_ms + 1e-9
    text = json.dumps(to_json(e), allow_nan=False)
    assert json.loads(text) == to_json(e)


def n_plus_one() -> tuple[TraceSample, TraceSample]:
    """Old: 12 queries of 1.5 ms and 2 redis commands of 1 ms. New: 36 queries (N+1), redis 3 ms each."""
    old = TraceSample(
        traces=tuple(make_trace(f"o{i}", a, queries=[1.5] * 12, redis=[1.0, 1.0]) for i, a in enumerate(app_times(1))),
        chosen="40 root spans at random over the window",
    )
    new = TraceSample(
        traces=tuple(make_trace(f"n{i}", a, queries=[1.5] * 36, redis=[3.0, 3.0]) for i, a in enumerate(app_times(2))),
        chosen="40 root spans at random over the window",
    )
    return old, new


def test_n_plus_one_is_named_with_its_call_count() -> None:
    old, new = n_plus_one()
    e = explain("GET /users", old, new)
    assert e.available
    assert e.named == ("postgres",)
    assert e.components[0].label == "postgres"
    pg = by_label(e)["postgres"]
    assert pg.diff_ms == pytest.approx(36.0)
    assert pg.change is Change.SLOWER
    assert (pg.old_calls, pg.new_calls, pg.calls_ratio) == (12.0, 36.0, 3.0)
    assert by_label(e)["redis"].diff_ms == pytest.approx(4.0)
    assert by_label(e)["app code"].change is Change.UNCHANGED
    assert e.sentence.startswith(
        "+36 ms per request in postgres (3.0× more queries: 12.0 → 36.0 per request), "
        "+4.0 ms in redis (2.0 commands per request, 1.0 → 3.0 ms each)"
    )
    assert e.sentence.endswith("; app code unchanged")
    assert e.explained_share == pytest.approx(36.0 / e.request.diff_ms)  # type: ignore[union-attr]
    assert e.explained_share is not None
    assert e.explained_share >= EXPLAIN_SHARE
    assert_consistent(e)


def test_cpu_bound_regression_is_app_code() -> None:
    old = TraceSample(traces=tuple(make_trace(f"o{i}", a, queries=[2.0] * 5) for i, a in enumerate(app_times(3))))
    new = TraceSample(traces=tuple(make_trace(f"n{i}", a + 30, queries=[2.0] * 5) for i, a in enumerate(app_times(4))))
    e = explain("GET /report", old, new)
    assert e.named == ("app code",)
    assert e.sentence == "+30 ms per request in app code; postgres unchanged"
    assert by_label(e)["postgres"].change is Change.UNCHANGED
    assert_consistent(e)


def test_same_calls_each_slower() -> None:
    old = TraceSample(traces=tuple(make_trace(f"o{i}", a, queries=[1.5] * 12) for i, a in enumerate(app_times(5))))
    new = TraceSample(traces=tuple(make_trace(f"n{i}", a, queries=[2.5] * 12) for i, a in enumerate(app_times(6))))
    e = explain("GET /users", old, new)
    assert e.sentence.startswith("+12 ms per request in postgres (12.0 queries per request, 1.5 → 2.5 ms each)")
    assert by_label(e)["postgres"].calls_ratio == 1.0
    assert_consistent(e)


def test_components_explaining_80_percent_named_first() -> None:
    # postgres +20, billing +15, redis +5: postgres alone is 50 %, with billing 87.5 % >= 80 %; redis follows
    old = TraceSample(
        traces=tuple(
            make_trace(f"o{i}", a, queries=[2.0] * 10, http=[10.0], redis=[1.0]) for i, a in enumerate(app_times(7))
        )
    )
    new = TraceSample(
        traces=tuple(
            make_trace(f"n{i}", a, queries=[4.0] * 10, http=[25.0], redis=[6.0]) for i, a in enumerate(app_times(8))
        )
    )
    e = explain("GET /checkout", old, new)
    assert e.named == ("postgres", "billing")
    assert [c.label for c in e.components[:3]] == ["postgres", "billing", "redis"]
    assert e.sentence.startswith("+20 ms per request in postgres")
    assert e.sentence.index("billing") < e.sentence.index("redis")
    assert by_label(e)["redis"].change is Change.SLOWER
    assert e.explained_share is not None
    assert 0.8 <= e.explained_share <= 0.95
    shares = [c.share for c in e.components if c.share is not None]
    assert math.isclose(sum(shares), 1.0, abs_tol=1e-9)
    assert_consistent(e)


def test_no_regression_says_so_and_names_nothing() -> None:
    old = TraceSample(traces=tuple(make_trace(f"o{i}", a, queries=[2.0] * 5) for i, a in enumerate(app_times(9))))
    new = TraceSample(traces=tuple(make_trace(f"n{i}", a, queries=[2.0] * 5) for i, a in enumerate(app_times(9))))
    e = explain("GET /users", old, new)
    assert e.available
    assert e.named == ()
    assert e.explained_share is None
    assert e.request is not None
    assert e.request.change is Change.UNCHANGED
    assert e.sentence.startswith("nothing changed: the sampled requests are not slower")
    assert e.sentence.endswith("; app code and postgres unchanged")
    assert all(c.share is None for c in e.components)
    assert_consistent(e)


def test_a_new_component_on_the_new_side() -> None:
    old = TraceSample(traces=tuple(make_trace(f"o{i}", a, queries=[2.0]) for i, a in enumerate(app_times(10))))
    new = TraceSample(
        traces=tuple(make_trace(f"n{i}", a, queries=[2.0], dns=[6.0, 6.0]) for i, a in enumerate(app_times(11)))
    )
    e = explain("GET /users", old, new)
    dns = by_label(e)["dns"]
    assert dns.kind is Kind.DNS
    assert dns.calls_ratio is None
    assert dns.old_calls == 0.0
    assert e.sentence.startswith("+12 ms per request in dns (new: 2.0 lookups per request)")
    assert_consistent(e)


def test_the_endpoints_own_service_is_matched_across_a_rename() -> None:
    old = TraceSample(traces=tuple(make_trace(f"o{i}", a, queries=[1.0] * 4) for i, a in enumerate(app_times(12))))
    new = TraceSample(
        traces=tuple(make_trace(f"n{i}", a, queries=[1.0] * 12, service="web-eks") for i, a in enumerate(app_times(13)))
    )
    e = explain("GET /users", old, new)
    assert {c.label for c in e.components} == {"app code", "postgres"}
    pg = by_label(e)["postgres"]
    assert pg.service == "web-eks"
    assert pg.own_service
    assert pg.diff_ms == pytest.approx(8.0)
    assert_consistent(e)


def test_noisy_few_traces_are_undecided_not_named() -> None:
    rng = random.Random(14)
    old = TraceSample(
        traces=tuple(make_trace(f"o{i}", rng.uniform(10, 200), queries=[rng.uniform(0.5, 30)]) for i in range(6))
    )
    new = TraceSample(
        traces=tuple(make_trace(f"n{i}", rng.uniform(10, 200), queries=[rng.uniform(0.5, 40)]) for i in range(6))
    )
    e = explain("GET /users", old, new)
    assert e.available
    assert by_label(e)["app code"].change is Change.UNDECIDED
    assert "not decided: " in e.sentence
    assert "app code unchanged" not in e.sentence
    assert e.request is not None
    assert e.request.change is Change.UNDECIDED
    assert e.sentence.startswith("no change shown: the sampled requests are not shown slower"), e.sentence
    assert ", no component slower or faster; not decided: " in e.sentence
    assert_consistent(e)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            TraceSample(unavailable="Spans API answered 403 Forbidden (check the application key's scopes)"),
            None,
            "old side: Spans API answered 403 Forbidden (check the application key's scopes)",
        ),
        (None, TraceSample(), "no traces on the new side"),
        (
            None,
            TraceSample(skipped=(SkippedTrace("x", "no root span among the trace's 3 fetched spans"),)),
            "new side: none of its 1 traces could be broken down (no root span among the trace's 3 fetched spans)",
        ),
        (
            None,
            TraceSample(traces=tuple(make_trace(f"n{i}", 50.0) for i in range(MIN_TRACES - 1))),
            f"only {MIN_TRACES - 1} usable trace(s) on the new side (at least {MIN_TRACES} needed)",
        ),
    ],
)
def test_missing_data_gives_no_explanation(old: TraceSample | None, new: TraceSample | None, reason: str) -> None:
    full = TraceSample(traces=tuple(make_trace(f"t{i}", 50.0 + i) for i in range(10)))
    e = explain("GET /users", old or full, new or full)
    assert not e.available
    assert e.reason == reason
    assert e.sentence == f"no explanation: {reason}"
    assert e.request is None
    assert e.components == ()
    assert e.named == ()
    assert e.sampling is not None  # what was (not) read is still stated
    json.dumps(to_json(e), allow_nan=False)


def test_sampling_is_stated() -> None:
    old, new = n_plus_one()
    orphaned = breakdown_trace(
        [
            Span("orph", "root", None, "web", "web", "rack.request", "GET /users", T0, 100.0),
            Span("orph", "q", "lost", "web", "sql", "postgres.query", "SELECT", T0 + 10, 5.0),
        ]
    )
    assert isinstance(orphaned, TraceBreakdown)
    new = TraceSample(
        traces=(*new.traces, orphaned),
        skipped=(SkippedTrace("gone", "no root span among the trace's 2 fetched spans (not indexed)"),),
        chosen=new.chosen,
    )
    e = explain("GET /users", old, new)
    s = e.sampling
    assert s is not None
    assert (s.old_traces, s.new_traces, s.new_skipped, s.orphans) == (N, N + 1, 1, 1)
    assert s.confidence == CONFIDENCE
    assert s.statement.startswith(f"From {N} old and {N + 1} new sampled traces.")
    assert "Old: 40 root spans at random over the window" in s.statement
    assert "Indexed spans are a sample of the traffic" in s.statement
    assert "1 new trace(s) skipped (1× no root span among the trace's 2 fetched spans)" in s.statement
    assert "1 span(s) with a missing parent were re-attached" in s.statement


def test_deterministic_and_order_free() -> None:
    old, new = n_plus_one()
    a = to_json(explain("GET /users", old, new))
    shuffled_old = TraceSample(traces=tuple(reversed(old.traces)), chosen=old.chosen)
    b = to_json(explain("GET /users", shuffled_old, new))
    assert a == b
    assert a["components"][0]["kind"] == "database"
    assert a["request"]["change"] == "slower"


def test_trace_sample_from_mixed_spans() -> None:
    spans = [
        Span("a", "r", None, "web", "web", "rack.request", "GET /users", T0, 10.0),
        Span("a", "q", "r", "web", "sql", "postgres.query", "SELECT", T0 + 1, 2.0),
        Span("b", "q", "r", "web", "sql", "postgres.query", "SELECT", T0 + 1, 2.0),  # root not fetched
    ]
    sample = trace_sample(spans, roots={"a": "r"}, chosen="2 root spans")
    assert [t.trace_id for t in sample.traces] == ["a"]
    assert [s.trace_id for s in sample.skipped] == ["b"]
    assert sample.chosen == "2 root spans"


def test_a_component_shown_slower_is_named_when_the_sample_alone_is_not() -> None:
    # app code spreads widely (the request total is not shown slower from 8 traces), postgres is +10 ms in each
    rng = random.Random(15)
    old = TraceSample(traces=tuple(make_trace(f"o{i}", rng.uniform(20, 400), queries=[1.0] * 5) for i in range(8)))
    new = TraceSample(traces=tuple(make_trace(f"n{i}", rng.uniform(20, 400), queries=[3.0] * 5) for i in range(8)))
    e = explain("GET /users", old, new)
    assert e.request is not None
    assert e.request.change is Change.UNDECIDED
    assert e.named == ("postgres",)
    assert e.sentence.startswith("+10 ms per request in postgres (5.0 queries per request, 1.0 → 3.0 ms each); ")
    assert "the sampled requests are not shown slower" in e.sentence
    assert by_label(e)["app code"].change is Change.UNDECIDED
    assert_consistent(e)


def test_labels_stay_unique_and_faster_components_follow() -> None:
    def trace(tid: str, app: float, own_pg: float, other_pg: float, cache: float) -> TraceBreakdown:
        spans = [
            Span(tid, "r", None, "web", "web", "rack.request", "GET /x", T0, app + own_pg + other_pg + cache),
            Span(tid, "a", "r", "web", "sql", "postgres.query", "q", T0 + 1, own_pg),
            Span(tid, "b", "r", "web-postgres", "sql", "postgres.query", "q", T0 + 1 + own_pg, other_pg),
            Span(tid, "c", "r", "web", "redis", "redis.command", "GET", T0 + 1 + own_pg + other_pg, cache),
        ]
        result = breakdown_trace(spans)
        assert isinstance(result, TraceBreakdown)
        return result

    old = TraceSample(traces=tuple(trace(f"o{i}", a, 5.0, 5.0, 8.0) for i, a in enumerate(app_times(16))))
    new = TraceSample(traces=tuple(trace(f"n{i}", a, 25.0, 5.0, 2.0) for i, a in enumerate(app_times(17))))
    e = explain("GET /x", old, new)
    assert {c.label for c in e.components} == {"app code", "postgres via web", "postgres via web-postgres", "redis"}
    assert e.named == ("postgres via web",)
    assert e.sentence.startswith("+20 ms per request in postgres via web (1.0 queries per request, 5.0 → 25 ms each)")
    assert "−6.0 ms in redis (1.0 commands per request, 8.0 → 2.0 ms each)" in e.sentence
    assert e.sentence.endswith("; app code and postgres via web-postgres unchanged")
    assert by_label(e)["redis"].change is Change.FASTER
    assert_consistent(e)


def test_endpoints_explained_together_share_one_family_of_intervals() -> None:
    """Explaining E endpoints at once widens each one's intervals (Bonferroni over E × K), so a file of twelve
    explanations names an unchanged component no more often than one explanation does; a clear N+1 still shows."""
    old, new = n_plus_one()
    alone = explain("GET /users", old, new)
    together = explain("GET /users", old, new, endpoints=12)
    assert alone.sampling is not None
    assert together.sampling is not None
    k = len(alone.components)
    assert together.sampling.confidence == pytest.approx(1 - (1 - CONFIDENCE) / 12)
    assert together.sampling.component_confidence == pytest.approx(1 - (1 - CONFIDENCE) / (12 * k))
    assert f"simultaneous at 95% over the {k} components and the 12 endpoints explained together" in (
        together.sampling.statement
    )
    for a, b in zip(alone.components, together.components, strict=True):
        assert a.label == b.label
        assert a.diff_ms == b.diff_ms
        assert b.diff_low_ms <= a.diff_low_ms
        assert a.diff_high_ms <= b.diff_high_ms
    assert together.request is not None
    assert alone.request is not None
    assert together.request.diff_low_ms < alone.request.diff_low_ms
    assert together.named == alone.named == ("postgres",)

    # a small shift in app code, shown at one endpoint's level, is not enough for twelve endpoints' family
    rng = random.Random(7)
    base = [make_trace(f"o{i}", 50.0 + rng.gauss(0, 2.0)) for i in range(N)]
    shifted = [make_trace(f"n{i}", 51.6 + rng.gauss(0, 2.0)) for i in range(N)]
    one = explain("GET /x", TraceSample(traces=tuple(base)), TraceSample(traces=tuple(shifted)))
    twelve = explain("GET /x", TraceSample(traces=tuple(base)), TraceSample(traces=tuple(shifted)), endpoints=12)
    assert by_label(one)["app code"].change is Change.SLOWER
    assert by_label(twelve)["app code"].change is not Change.SLOWER


def test_calls_per_request_are_never_written_as_zero_when_made() -> None:
    from parity.explain.judge import calls_text

    assert [calls_text(v) for v in (0.0, 1 / 30, 0.02, 0.5, 0.96, 8.0, 24.0)] == [
        "0.0", "0.033", "0.02", "0.5", "1.0", "8.0", "24.0",
    ]  # fmt: skip

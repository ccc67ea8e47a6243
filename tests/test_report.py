"""Renderers: HTML report, parity.json, JUnit XML, Markdown summary, atomic writer.

Results come from the real ``compare()`` on small made-up Measurements. Latencies are lognormal draws from
``random.Random(seed)`` (whose ``random()`` stream Python keeps stable across versions) turned into
quantiles with ``statistics.NormalDist``, so the golden files are deterministic.

Regenerate the golden files after an intended output change with::

    PARITY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report.py
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from html import escape, unescape
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
import xmlschema

from parity.judge.compare import compare, describe_looks_worse
from parity.judge.policy import DEFAULT_RULES, METRICS, Gate, MetricRule, Policy
from parity.judge.result import Bottleneck, Change, EndpointResult, ParityResult, SideInfo, Verdict
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.report.charts import (
    CDF_GRID,
    TIMELINE_POINTS,
    TIMEZONE_LABEL,
    chart_data,
    clock_axes,
    rounded,
    time_zone,
    utc_offsets,
)
from parity.report.ci import SUMMARY_MAX_ROWS, _md, junit_xml, parity_json, summary_md
from parity.report.context import (
    INCOMPARABLE_POINTER,
    METRIC_LABELS,
    TABLE_METRICS,
    RunMeta,
    build_context,
    explain,
    explain_parts,
    format_delta,
    format_extra_time,
    format_ratio,
    gate_label,
    latency_recorded,
    load_factors,
    needs_text,
    oversampled_text,
    plain_sentence,
    split_remedy,
)
from parity.report.html import json_for_script, render_html
from parity.report.terminal import terminal_summary
from parity.report.write import write_atomic, write_reports
from parity.sketch import LatencySketch

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
UPDATE_GOLDEN = os.environ.get("PARITY_UPDATE_GOLDEN") == "1"

META = RunMeta(
    harness_version="0.1.0-test",
    commit="0123abc",
    generated_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    config="parity.toml",
    command="parity compare baseline.json candidate.csv --out reports/test",
)
START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

SCRIPT = "GET /x<script>alert(1)</script>"
PIPE = "GET /search|legacy"
ORDERS = "GET /api/orders/{id}"
CREATE = "POST /api/orders"
HEALTH = "GET /health"
REPORTS = "GET /api/reports/{id}"
DELETE = "DELETE /api/orders/{id}"


# --- building results ------------------------------------------------------------------------------


def _sketch(seed: int, median_ms: float, n: int, extra: tuple[float, ...] = ()) -> LatencySketch:
    """``n`` lognormal latencies (median ``median_ms``, sigma 0.3) from a fixed seed, plus ``extra``."""
    rng, normal = random.Random(seed), NormalDist()
    sketch = LatencySketch()
    for _ in range(n):
        u = min(max(rng.random(), 1e-9), 1 - 1e-9)
        sketch.add(median_ms * math.exp(0.3 * normal.inv_cdf(u)))
    for value in extra:
        sketch.add(value)
    return sketch


def _stats(
    key: str, seed: int, median_ms: float, n: int, errors: int, *, extra: tuple[float, ...] = ()
) -> EndpointStats:
    latency = LatencyDistribution(_sketch(seed, median_ms, n, extra))
    return EndpointStats(Endpoint.parse(key), n, errors, latency)


def _measurement(
    endpoints: tuple[EndpointStats, ...],
    *,
    env: str,
    target: str,
    pair_id: str | None,
    start: datetime = START,
    kind: SourceKind = SourceKind.SYNTHETIC,
) -> Measurement:
    return Measurement(
        Source(kind, f"{env} environment", service="orders-api", env=env, target=target),
        Window(start, start + timedelta(minutes=10)),
        endpoints,
        latency_kind=LatencyKind.SERVER,
        pair_id=pair_id,
    )


@cache
def mixed_result() -> ParityResult:
    """Every verdict: two latency/error failures, a script-named failure, a marginal max (20 requests slower
    than any of the baseline's), passes and two
    inconclusive endpoints (too few requests; candidate only). Concurrent A/B."""
    baseline = (
        _stats(ORDERS, 1, 100.0, 2000, 2),
        _stats(CREATE, 2, 40.0, 1000, 2),
        _stats(SCRIPT, 3, 20.0, 800, 0),
        _stats(PIPE, 4, 30.0, 20000, 0),
        _stats(HEALTH, 5, 2.0, 3000, 0),
        _stats(REPORTS, 6, 50.0, 12, 0),
    )
    candidate = (
        _stats(ORDERS, 11, 150.0, 2000, 2),  # latency regression
        _stats(CREATE, 12, 40.0, 1000, 80),  # error-rate regression
        _stats(SCRIPT, 13, 30.0, 800, 0),  # latency regression, hostile name
        _stats(PIPE, 14, 30.0, 20000, 0, extra=(400.0,) * 20),  # 0.1% outliers: max (warn gate) → marginal
        _stats(HEALTH, 15, 2.0, 3000, 0),
        _stats(REPORTS, 16, 50.0, 12, 0),  # too few requests
        _stats(DELETE, 17, 30.0, 200, 0),  # not in the baseline
    )
    return compare(
        _measurement(baseline, env="old", target="http://old.internal:8080", pair_id="run-42"),
        _measurement(
            candidate,
            env="new",
            target="https://new.example.com",
            pair_id="run-42",
            kind=SourceKind.LOCUST_CSV,
        ),
        names=("baseline.json", "candidate.csv"),
    )


@cache
def pass_result() -> ParityResult:
    """Identical sides measured at different times: a before/after PASS."""
    side = (_stats(ORDERS, 21, 80.0, 1000, 1), _stats(HEALTH, 22, 3.0, 1000, 0))
    return compare(
        _measurement(side, env="old", target="http://old", pair_id=None),
        _measurement(side, env="new", target="http://new", pair_id=None, start=START + timedelta(days=1)),
    )


@cache
def inconclusive_result() -> ParityResult:
    """Far too few requests everywhere: INCONCLUSIVE."""
    base = (_stats(ORDERS, 31, 80.0, 5, 0), _stats(HEALTH, 32, 3.0, 7, 0))
    cand = (_stats(ORDERS, 33, 80.0, 6, 0), _stats(HEALTH, 34, 3.0, 4, 0))
    return compare(
        _measurement(base, env="old", target="http://old", pair_id="p"),
        _measurement(cand, env="new", target="http://new", pair_id="p"),
    )


@cache
def empty_result() -> ParityResult:
    return compare(
        _measurement((), env="old", target="http://old", pair_id=None),
        _measurement((), env="new", target="http://new", pair_id=None),
    )


@cache
def many_regressions_result() -> ParityResult:
    """Twelve regressed endpoints: more than the summary's table shows."""
    base = tuple(_stats(f"GET /r{i:02d}", 100 + i, 50.0, 300, 0) for i in range(12))
    cand = tuple(_stats(f"GET /r{i:02d}", 200 + i, 50.0 + 10 * (i + 1), 300, 0) for i in range(12))
    return compare(
        _measurement(base, env="old", target="http://old", pair_id=None),
        _measurement(cand, env="new", target="http://new", pair_id=None),
    )


RARE = "GET /api/rare"
PAYROLL = "POST /api/payroll/calculations"


def _side(
    endpoints: tuple[EndpointStats, ...],
    *,
    env: str,
    kind: SourceKind,
    latency: LatencyKind,
    pair_id: str | None = None,
    target: str = "http://old.internal:8080",
    labels: dict[str, str] | None = None,
) -> Measurement:
    """A side of any source and latency kind (``_measurement`` makes server-side ones)."""
    return Measurement(
        Source(kind, f"{env} environment", service="orders-api", env=env, target=target),
        Window(START, START + timedelta(minutes=10)),
        endpoints,
        latency_kind=latency,
        pair_id=pair_id,
        labels=labels or {},
    )


@cache
def incomparable_sides(candidate_errors: int = 2) -> tuple[Measurement, Measurement]:
    """An nginx access-log baseline (server-side latency) against a replay of it (client-side service time):
    latency is not comparable. The replay is ~10% slower everywhere, which must not become a verdict;
    ``candidate_errors`` on POST /api/orders (of 1000) can still fail the run."""
    base = (
        _stats(ORDERS, 41, 100.0, 2000, 2),
        _stats(HEALTH, 42, 2.0, 3000, 0),
        _stats(CREATE, 43, 40.0, 1000, 2),
        _stats(SCRIPT, 44, 20.0, 800, 0),
    )
    cand = (
        _stats(ORDERS, 51, 110.0, 2000, 2),
        _stats(HEALTH, 52, 2.2, 3000, 0),
        _stats(CREATE, 53, 44.0, 1000, candidate_errors),
        _stats(SCRIPT, 54, 22.0, 800, 0),
    )
    return (
        _side(base, env="old", kind=SourceKind.ACCESS_LOG, latency=LatencyKind.SERVER, labels={"format": "nginx"}),
        _side(
            cand,
            env="new",
            kind=SourceKind.LOCUST_REPLAY,
            latency=LatencyKind.SERVICE_TIME,
            target="https://new.example.com",
            labels={"run_time_s": "600", "seed": "7"},
        ),
    )


@cache
def incomparable_result(candidate_errors: int = 2) -> ParityResult:
    return compare(*incomparable_sides(candidate_errors), names=("access.json", "replay.json"))


@cache
def looks_worse_sides() -> tuple[Measurement, Measurement]:
    """A concurrent A/B where two busy endpoints are unchanged and a rare one is x1.5 slower on 12 requests
    per side: too few to decide, but it looks worse, so the run cannot pass."""
    base = (_stats(ORDERS, 61, 100.0, 2000, 2), _stats(HEALTH, 62, 2.0, 3000, 0), _stats(RARE, 63, 50.0, 12, 0))
    cand = (_stats(ORDERS, 71, 100.0, 2000, 2), _stats(HEALTH, 72, 2.0, 3000, 0), _stats(RARE, 73, 75.0, 12, 0))
    return (
        _side(base, env="old", kind=SourceKind.SYNTHETIC, latency=LatencyKind.SERVER, pair_id="ab-9"),
        _side(cand, env="new", kind=SourceKind.SYNTHETIC, latency=LatencyKind.SERVER, pair_id="ab-9"),
    )


@cache
def looks_worse_result() -> ParityResult:
    return compare(*looks_worse_sides())


def _intended(stats: EndpointStats, seed: int, median_ms: float) -> EndpointStats:
    """``stats`` with latency from the planned send time too (a little above its service time)."""
    return dataclasses.replace(stats, intended=LatencyDistribution(_sketch(seed, median_ms, stats.count)))


@cache
def oversampled_sides() -> tuple[Measurement, Measurement]:
    """A concurrent A/B of two open-model replays (service time and intended time recorded) that sent the rare
    payroll endpoint at 4x its share of traffic; nothing changed."""

    def side(env: str, seed: int) -> Measurement:
        endpoints = (
            _intended(_stats(ORDERS, seed, 100.0, 2000, 2), seed + 1, 104.0),
            _intended(_stats(HEALTH, seed + 2, 2.0, 3000, 0), seed + 3, 2.2),
            dataclasses.replace(_intended(_stats(PAYROLL, seed + 4, 300.0, 400, 0), seed + 5, 310.0), load_factor=4.0),
        )
        return _side(
            endpoints, env=env, kind=SourceKind.LOCUST_REPLAY, latency=LatencyKind.SERVICE_TIME, pair_id="ab-4"
        )

    return side("old", 81), side("new", 91)


@cache
def oversampled_result() -> ParityResult:
    return compare(*oversampled_sides())


def _by_key(result: ParityResult) -> dict[str, Verdict]:
    return {e.endpoint.key: e.verdict for e in result.endpoints}


def _endpoint(result: ParityResult, key: str) -> EndpointResult:
    return next(e for e in result.endpoints if e.endpoint.key == key)


def test_scenario_has_every_verdict() -> None:
    """Guards the fixtures themselves: the renderer tests below rely on these verdicts."""
    result = mixed_result()
    assert result.verdict is Verdict.FAIL
    assert _by_key(result) == {
        ORDERS: Verdict.FAIL,
        CREATE: Verdict.FAIL,
        SCRIPT: Verdict.FAIL,
        PIPE: Verdict.MARGINAL,
        HEALTH: Verdict.PASS,
        REPORTS: Verdict.INCONCLUSIVE,
        DELETE: Verdict.INCONCLUSIVE,
    }
    assert {b.endpoint.key for b in result.bottlenecks} == {ORDERS, CREATE, SCRIPT, PIPE}
    assert pass_result().verdict is Verdict.PASS
    assert inconclusive_result().verdict is Verdict.INCONCLUSIVE
    assert empty_result().endpoints == ()
    assert all(e.verdict is Verdict.FAIL for e in many_regressions_result().endpoints)


def test_scenarios_for_what_a_verdict_cannot_rest_on() -> None:
    """Guards the fixtures of the incomparability, looks-worse and oversampling tests."""
    inc = incomparable_result()
    assert inc.verdict is Verdict.INCONCLUSIVE  # ~10% slower, but server vs client side: no verdict on latency
    assert inc.incomparable is not None
    assert (inc.incomparable.baseline_kind, inc.incomparable.candidate_kind) == ("server", "service-time")
    assert inc.incomparable.remedies[0].startswith("parity ab access.json --old OLD_URL --new https://new.example.com")
    assert len(inc.incomparable.remedies) == 3
    assert set(_by_key(inc).values()) == {Verdict.INCONCLUSIVE}
    assert inc.reasons[0] == f"latency not comparable: {inc.incomparable.reason}"
    assert not inc.throughput_gated
    failing = incomparable_result(candidate_errors=80)
    assert failing.verdict is Verdict.FAIL  # errors still fail a run whose latency does not compare
    assert failing.incomparable is not None
    looks = looks_worse_result()
    assert looks.verdict is Verdict.INCONCLUSIVE
    assert [e.endpoint.key for e in looks.unjudged_looking_worse] == [RARE]
    assert _by_key(looks) == {ORDERS: Verdict.PASS, HEALTH: Verdict.PASS, RARE: Verdict.INCONCLUSIVE}
    assert looks.throughput_gated
    over = oversampled_result()
    assert over.verdict is Verdict.PASS
    assert {e.latency_basis for e in over.endpoints} == {"intended"}
    assert any(n.startswith("oversampled endpoints") and f"{PAYROLL} x4" in n for n in over.notes)


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="\n")
    if not path.exists():
        pytest.fail(f"missing golden file {path}; create it with PARITY_UPDATE_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from {path}; if intended, regenerate with PARITY_UPDATE_GOLDEN=1"


# --- context / formatting ---------------------------------------------------------------------------


def test_formatting_helpers() -> None:
    assert format_ratio(1.2345) == "x1.23"
    assert format_ratio(None) == "n/a"
    assert format_ratio(math.inf) == "n/a"
    assert format_delta(12.34, "ms") == "+12.3 ms"
    assert format_delta(-0.04, "ms") == "+0.0 ms"  # no "-0.0"
    assert format_delta(-0.004, "ratio") == "-0.40 pp"
    assert format_delta(0.078, "ratio") == "+7.80 pp"
    assert format_delta(-1.5, "req/s") == "-1.50 req/s"
    assert format_delta(None, "ms") == "n/a"
    assert format_delta(math.nan, "ms") == "n/a"
    assert format_extra_time(850.0) == "+850 ms/min"
    assert format_extra_time(3200.0) == "+3.2 s/min"


def test_run_meta_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        RunMeta("1", None, datetime(2026, 1, 1), None, None)


#: Positions inside a metric cell of the page data (see build_context).
BASELINE, CANDIDATE, RATIO, DELTA, VERDICT, CHANGE, SORT, SAMPLES, REASON, WORDS, RULE, METHOD, GATE, NEEDS = range(14)


def test_context_keeps_order_and_derives_css_from_verdicts() -> None:
    result = mixed_result()
    ctx = build_context(result, META)
    rows = ctx["data"]["rows"]
    assert [r["k"] for r in rows] == [e.endpoint.key for e in result.endpoints]
    assert [r["i"] for r in rows] == list(range(1, len(result.endpoints) + 1))
    assert ctx["verdict"] == {
        "value": "fail",
        "label": "FAIL",
        "css": "verdict-fail",
        "reasons": list(result.reasons),
    }
    assert ctx["mode"]["label"] == "concurrent A/B"
    assert {c["value"]: c["count"] for c in ctx["counts"]} == {
        "fail": 3,
        "inconclusive": 2,
        "marginal": 1,
        "pass": 1,
    }
    verdicts = ctx["data"]["verdicts"]
    assert {v: verdicts[v]["css"] for v in verdicts} == {v.value: f"verdict-{v.value}" for v in Verdict}
    for row, e in zip(rows, result.endpoints, strict=True):
        assert row["v"] == e.verdict.value
    orders = next(r for r in rows if r["k"] == ORDERS)
    assert len(orders["m"]) == len(METRICS)
    cells = dict(zip((m.name for m in METRICS), orders["m"], strict=True))
    p95 = result.endpoints[[e.endpoint.key for e in result.endpoints].index(ORDERS)].metric("p95_ms")
    assert p95 is not None
    assert p95.ratio is not None
    assert p95.delta is not None
    assert cells["p95_ms"][RATIO] == f"x{p95.ratio:.2f}"
    assert cells["p95_ms"][DELTA] == f"+{p95.delta:.1f} ms"
    assert cells["p95_ms"][VERDICT] == "fail"
    assert cells["p95_ms"][CHANGE] == "worse"
    assert cells["p95_ms"][SORT] == pytest.approx(p95.ratio, rel=1e-3)  # four significant digits
    assert cells["p95_ms"][SAMPLES] == "2,000 / 2,000"
    assert cells["p95_ms"][REASON] == p95.reason  # one of the endpoint's reasons
    rule = ctx["data"]["rules"][cells["p95_ms"][RULE]]
    assert cells["p95_ms"][WORDS] + rule + " → FAIL" == explain(p95, result.alpha)  # the verdict: its badge
    assert rule.endswith("beyond the 5% / 2 ms tolerance")
    assert ctx["data"]["methods"][cells["p95_ms"][METHOD]].startswith("Fisher exact test")
    assert cells["p95_ms"][GATE] is None  # it counts towards the endpoint's verdict
    assert cells["p95_ms"][NEEDS] is None  # decided
    assert cells["max_ms"][REASON] is None  # a passing metric's reason is not one of the endpoint's: words only
    # the candidate is a Locust request log (closed loop): throughput is shown, not judged, and labelled so
    assert cells["rps"][VERDICT] == "inconclusive"
    assert cells["rps"][GATE] == "shown"
    assert cells["rps"][REASON].startswith("throughput: shown, not judged, closed-loop load on the candidate side")
    assert cells["rps"][WORDS] is None
    assert cells["rps"][NEEDS] is None  # not owed: nothing would "decide" it
    assert cells["rps"][SORT] == pytest.approx(1.0)  # higher-is-better: inverted, larger = worse
    assert ctx["data"]["gates"]["shown"]["title"] == f"throughput shown, not judged: {result.throughput_note}"
    percentiles = [result.endpoints[0].metric(n) for n in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
    assert orders["pct"] == [
        [rounded(m.baseline) for m in percentiles if m is not None],
        [rounded(m.candidate) for m in percentiles if m is not None],
    ]
    # endpoint reasons that are a metric's own reason are sent once, as that metric's index
    assert all(isinstance(x, int) and orders["m"][x][REASON] in result.endpoints[0].reasons for x in orders["r"])
    create = next(r for r in rows if r["k"] == CREATE)
    error_cell = create["m"][[m.name for m in METRICS].index("error_rate")]
    assert error_cell[DELTA] == "+7.80 pp"  # 0.20% → 8.00%
    assert error_cell[BASELINE] == "0.20%"
    assert error_cell[VERDICT] == "fail"
    new_only = next(r for r in rows if r["k"] == DELETE)
    assert new_only["m"] == [None] * len(METRICS)
    assert new_only["r"] == ["not in the baseline: nothing to compare against"]
    assert "ch" not in new_only  # rendered without Measurements: no chart series
    assert ctx["data"]["charts"] is False
    _assert_formats_nothing(ctx)


def _assert_formats_nothing(ctx: dict[str, Any]) -> None:
    """The template's part of the view-model is strings, numbers and booleans only: it formats nothing."""
    leaves: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        else:
            leaves.append(node)

    walk({k: v for k, v in ctx.items() if k != "data"})
    assert all(isinstance(x, str | int | bool) for x in leaves), {type(x) for x in leaves}


def test_context_labels_before_after_mode() -> None:
    ctx = build_context(pass_result(), META)
    assert ctx["mode"]["label"] == "before/after"
    assert ctx["verdict"]["label"] == "PASS"


# --- HTML ------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects what the HTML tests look at: every attribute, script bodies, endpoint row groups."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self.scripts: list[str] = []
        self.rows: list[dict[str, str]] = []  # attributes of each endpoint <tbody>
        self.cells: list[list[str]] = []  # classes of the metric cells of each endpoint
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = {k: v or "" for k, v in attrs}
        self.attributes += [(tag, k, v) for k, v in values.items()]
        if tag == "script":
            self._script = []
        if tag == "tbody" and "data-endpoint" in values:
            self.rows.append(values)
            self.cells.append([])
        if tag == "td" and "metric" in values.get("class", "").split() and self.cells:
            self.cells[-1].append(values["class"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _banner_text(html: str) -> tuple[str, str]:
    """(class attribute, visible text) of the verdict banner."""
    match = re.search(r'<section class="([^"]*)" id="verdict"[^>]*>(.*?)</section>', html, re.S)
    assert match, "no verdict banner"
    text = re.sub(r"<[^>]+>", " ", match.group(2))
    return match.group(1), " ".join(unescape(text).split())


def test_html_is_self_contained() -> None:
    html = render_html(mixed_result(), META)
    page = _page(html)
    resource_attrs = {
        "src",
        "href",
        "srcset",
        "action",
        "formaction",
        "poster",
        "data",
        "xlink:href",
        "background",
    }
    external = [
        (tag, name, value)
        for tag, name, value in page.attributes
        if name in resource_attrs and re.match(r"\s*(?:[a-z][a-z0-9+.-]*:|//)", value, re.I)
    ]
    assert external == []
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", html, re.I)
    assert "link" not in page.tags
    assert "img" not in page.tags
    assert "iframe" not in page.tags
    assert "@import" not in html
    assert "url(" not in html
    assert all(tag != "script" or name != "src" for tag, name, _ in page.attributes)
    # Target URLs are shown as text, not as links or resources.
    assert "https://new.example.com" in html
    assert "http://old.internal:8080" in html


def _data(html: str) -> dict[str, Any]:
    """The page's JSON data block, parsed."""
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match, "no data block"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_html_escapes_endpoint_names() -> None:
    html = render_html(mixed_result(), META)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the banner and the bottlenecks table
    assert "<script>alert(1)" not in html
    page = _page(html)
    assert len(page.scripts) == 3  # the data block, Chart.js, the page's own script
    data_block, chart_js, own = page.scripts
    assert "<" not in data_block  # every < of the data is a \u003c escape: no name can close the block
    assert "alert" not in own
    assert "alert(" not in chart_js
    # The name survives as data (JSON decodes back to the original text).
    assert SCRIPT in [row["k"] for row in _data(html)["rows"]]


def test_json_for_script_cannot_break_out() -> None:
    hostile = {"k": "</script><script>alert(1)</script><!-- & -->", "n": [1.5, None]}
    text = str(json_for_script(hostile))
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text) == hostile
    with pytest.raises(ValueError, match="JSON compliant"):
        json_for_script({"x": math.nan})


def test_html_lists_regressions_first_and_marks_cells() -> None:
    result = mixed_result()
    html = render_html(result, META)
    data = _data(html)
    keys = [row["k"] for row in data["rows"]]
    assert keys == [e.endpoint.key for e in result.endpoints]
    severities = [data["verdicts"][row["v"]]["severity"] for row in data["rows"]]
    assert severities == sorted(severities, reverse=True)
    verdicts = _by_key(result)
    assert verdicts[keys[0]] is Verdict.FAIL
    assert verdicts[keys[-1]] is not Verdict.FAIL
    assert keys.index(ORDERS) < keys.index(HEALTH)
    assert keys.index(SCRIPT) < keys.index(HEALTH)
    for row in data["rows"]:
        assert row["v"] == verdicts[row["k"]].value
    # each metric cell carries its own verdict
    names = [m.name for m in METRICS]
    orders_cells = dict(zip(names, data["rows"][keys.index(ORDERS)]["m"], strict=True))
    assert orders_cells["p95_ms"][VERDICT] == "fail"
    assert orders_cells["rps"][GATE] == "shown"  # closed-loop candidate: not a grey inconclusive
    pipe_cells = dict(zip(names, data["rows"][keys.index(PIPE)]["m"], strict=True))
    assert pipe_cells["max_ms"][VERDICT] == "marginal"
    # the table's headings: one sortable column per metric, plus the filter controls
    page = _page(html)
    sortable = [v for tag, name, v in page.attributes if tag == "th" and name == "data-sort"]
    # what fits 1,280 px: the other metrics and the request counts are in each endpoint's detail and tooltips
    assert sortable == ["order", "endpoint", "verdict", "extra", *TABLE_METRICS]
    toggles = [v for tag, name, v in page.attributes if tag == "button" and name == "data-verdict"]
    assert sorted(toggles) == sorted(v.value for v in Verdict)
    assert ("input", "id", "filter") in page.attributes
    # bottlenecks section precedes the table and names the costliest endpoint first
    assert html.index('id="bottlenecks"') < html.index('id="endpoints"')
    first = result.bottlenecks[0]
    assert first.endpoint.key == ORDERS
    assert re.search(r"\+\d+(\.\d)? s/min", html)


@pytest.mark.parametrize(
    ("result", "label", "mode"),
    [
        (mixed_result, "FAIL", "concurrent A/B"),
        (pass_result, "PASS", "before/after"),
        (inconclusive_result, "INCONCLUSIVE", "concurrent A/B"),
        (empty_result, "INCONCLUSIVE", "before/after"),
        (incomparable_result, "INCONCLUSIVE", "before/after"),
        (looks_worse_result, "INCONCLUSIVE", "concurrent A/B"),
    ],
)
def test_html_banner(result: Any, label: str, mode: str) -> None:
    r: ParityResult = result()
    html = render_html(r, META)
    css, text = _banner_text(html)
    assert css == f"banner verdict-{r.verdict.value}"
    assert text.startswith(label)
    assert f"Mode: {mode}" in text
    for reason in r.reasons:
        assert " ".join(reason.split()) in text  # HTML collapses runs of spaces
    counts = r.counts()
    for verdict in Verdict:
        assert f"{counts[verdict]} {verdict.value.upper()}" in text


def test_html_shows_reasons_notes_and_metadata() -> None:
    result = pass_result()
    html = render_html(result, META)
    for note in result.notes:
        assert note in html
    for e in result.endpoints:
        for reason in e.reasons:
            assert reason in html
        for m in e.metrics:  # each metric's statistics in plain words (a head and an interned rule)
            head, rule = explain_parts(m, result.alpha)
            assert head in html
            assert rule.rsplit(" → ", 1)[0] in html  # its verdict is stated once, by the plain sentence's badge
    for text in (
        "2026-03-01 10:00:00 UTC",
        "2026-03-02 10:00:00 UTC",
        "10 min 00 s",
        "0123abc",
        "parity.toml",
    ):
        assert text in html
    assert "parity compare baseline.json candidate.csv --out reports/test" in html


# --- HTML charts and statistics in words ----------------------------------------------------------


def test_explain_in_plain_words() -> None:
    result = mixed_result()
    by_key = {e.endpoint.key: e for e in result.endpoints}

    def words(key: str, metric: str) -> str:
        m = by_key[key].metric(metric)
        assert m is not None
        return explain(m, result.alpha)

    assert words(ORDERS, "p95_ms") == (
        "p95 is 50% higher (95% CI 43–57%), p = 7.7e-56, Holm-adjusted 2.2e-54 over 35 tests: "
        "significant at the run's 1% false-alarm rate, and beyond the 5% / 2 ms tolerance → FAIL"
    )
    assert words(ORDERS, "max_ms").endswith(
        "significant at the run's 1% false-alarm rate, but within the 100% / 100 ms tolerance → PASS"
    )
    assert words(CREATE, "error_rate").startswith("error rate is 7.80 pp higher (95% CI 6.19–9.65 pp), p = 1.5e-22")
    assert words(CREATE, "p95_ms").startswith("p95 is 0.4% higher (95% CI −4.4% to +5.3%), p = 0.46")
    assert "not significant at the run's 1% false-alarm rate, and within" in words(CREATE, "p95_ms")
    assert "p < 1e-300, Holm-adjusted < 1e-300 over 35 tests" in words(ORDERS, "avg_ms")
    # 800 requests are fewer than a p99 needs to pass, but a significant regression is decided all the same
    assert words(SCRIPT, "p99_ms").startswith("p99 is 49% higher (95% CI 14–104%), p = 2.9e-5")
    assert words(SCRIPT, "p99_ms").endswith("beyond the 10% / 5 ms tolerance → FAIL")
    # not judged (throughput of a closed-loop run is shown only): the judge's own reason
    rps = by_key[CREATE].metric("rps")
    assert rps is not None
    assert explain(rps, result.alpha) == rps.reason
    assert rps.reason.startswith("throughput: shown, not judged, closed-loop load")


def test_plain_sentences_say_each_verdict_without_statistics() -> None:
    """One sentence per metric, figures first, then what they mean; no test names or p-values."""
    result = mixed_result()
    by_key = {e.endpoint.key: e for e in result.endpoints}

    def says(key: str, metric: str) -> str:
        m = by_key[key].metric(metric)
        assert m is not None
        return plain_sentence(m, result.alpha, gate_label(m, result.throughput_gated))

    assert re.fullmatch(
        r"p95 went from [\d.]+ ms to [\d.]+ ms, 50% slower; this is beyond the 5% / 2 ms tolerance and not noise\.",
        says(ORDERS, "p95_ms"),
    )
    assert says(CREATE, "error_rate") == (
        "error rate went from 0.20% to 8.00%, +7.80 percentage points; this is beyond the 50% / 0.1 percentage "
        "points tolerance and not noise."
    )
    assert says(CREATE, "p95_ms").endswith("; this is within the 5% / 2 ms tolerance.")
    assert says(CREATE, "rps").endswith("; shown only, not judged: the two sides did not see the same offered load.")
    assert says(PIPE, "max_ms").endswith("tolerance and not noise; this metric only warns.")  # max: a warning gate
    for e in result.endpoints:
        for m in e.metrics:
            text = plain_sentence(m, result.alpha, gate_label(m, result.throughput_gated))
            assert not re.search(r"\bp [=<]|holm|hodges|rosenbaum|significan|\bci\b|fisher", text, re.I), text
    inc = incomparable_result()
    p95 = inc.endpoints[0].metric("p95_ms")
    assert p95 is not None
    assert plain_sentence(p95, inc.alpha, gate_label(p95, inc.throughput_gated)) == (
        "p95 was not compared: the two sides measured different kinds of latency (see the callout at the top)."
    )


def test_plain_sentence_never_calls_a_change_beyond_tolerance_unchanged() -> None:
    """An error rate from 0 to 0.004% judged worse (a config with no absolute floor: 40 errors in 1M requests is
    significant over none) moved by less than 0.005 percentage points: the sentence must not say "about unchanged;
    this is beyond the tolerance" — it gives the change in two significant digits, as format_value does."""
    m = _endpoint(mixed_result(), CREATE).metric("error_rate")
    assert m is not None
    assert m.verdict is Verdict.FAIL
    tiny = replace(m, baseline=0.0, candidate=0.00004, ratio=None, delta=0.00004, min_delta=0.0)
    text = plain_sentence(tiny, mixed_result().alpha)
    assert text == (
        "error rate went from 0.00% to 0.0040%, +0.0040 percentage points; this is beyond the 50% tolerance and not "
        "noise."
    ), text
    p95 = _endpoint(mixed_result(), ORDERS).metric("p95_ms")
    assert p95 is not None
    assert p95.change is Change.WORSE
    exact = replace(p95, baseline=1000.0, candidate=1000.3, ratio=1.0003, delta=0.3, tolerance=0.0, min_delta=0.0)
    assert plain_sentence(exact, mixed_result().alpha).startswith(
        "p95 went from 1000.0 ms to 1000.3 ms, 0.030% slower;"
    )
    # a change judged within the tolerance keeps its plain "about unchanged"
    same = replace(tiny, baseline=0.001, candidate=0.00104, change=Change.SAME, verdict=Verdict.PASS)
    assert plain_sentence(same, mixed_result().alpha).startswith("error rate stayed at 0.10%; this is within")


def test_plain_percentages_keep_one_format_at_ten() -> None:
    """A change just under 10% that rounds to 10 reads "10% slower" like 10% itself, not "10.0% slower"."""
    p95 = _endpoint(mixed_result(), ORDERS).metric("p95_ms")
    assert p95 is not None
    for candidate in (109.96, 110.0):
        m = replace(p95, baseline=100.0, candidate=candidate, ratio=candidate / 100.0, delta=candidate - 100.0)
        assert plain_sentence(m, mixed_result().alpha).startswith(
            f"p95 went from 100.0 ms to {candidate:.1f} ms, 10% slower;"
        )


def test_clock_axes_and_time_zone_offsets() -> None:
    """Windows in UTC epoch seconds; the same clock only when both windows coincide; offsets per DST change."""
    base = _measurement((), env="old", target="http://old", pair_id=None)
    same = clock_axes(base, _measurement((), env="new", target="http://new", pair_id=None))
    assert same == {
        "b": [START.timestamp(), START.timestamp() + 600],
        "c": same["c"],
        "same": True,
        "tz": None,
        "offsets": None,
    }
    later = _measurement((), env="new", target="http://new", pair_id=None, start=START + timedelta(days=1))
    berlin = replace(base, labels={TIMEZONE_LABEL: "Europe/Berlin"})
    axes = clock_axes(berlin, later)
    assert axes["same"] is False
    assert axes["offsets"] == [[int(START.timestamp()), 3600]]  # 1 March: CET, UTC+1
    # the night Berlin moves to summer time (29 March 2026, 01:00 UTC): a second offset from then on
    night = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert utc_offsets("Europe/Berlin", night, night + timedelta(hours=3)) == [
        [int(night.timestamp()), 3600],
        [int(night.timestamp()) + 3600, 7200],
    ]
    assert utc_offsets("+05:30", night, night + timedelta(hours=3)) == [[int(night.timestamp()), 19800]]
    assert utc_offsets("Mars/Olympus", night, night + timedelta(hours=3)) is None  # unknown: UTC only
    assert clock_axes(replace(base, labels={TIMEZONE_LABEL: "nowhere"}), later)["offsets"] is None


def test_utc_offsets_place_a_change_between_whole_utc_hours_exactly() -> None:
    """Newfoundland moves its clocks at 02:00 local, 05:30 UTC (8 March 2026); Lord Howe at 15:30 UTC (3 October
    2026): the new offset starts there, not at the next whole UTC hour (half an hour of wrong local times)."""
    night = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    assert utc_offsets("America/St_Johns", night, night + timedelta(hours=5)) == [
        [int(night.timestamp()), -12600],
        [int(datetime(2026, 3, 8, 5, 30, tzinfo=UTC).timestamp()), -9000],
    ]
    day = datetime(2026, 10, 3, 12, 0, tzinfo=UTC)
    assert utc_offsets("Australia/Lord_Howe", day, day + timedelta(hours=6)) == [
        [int(day.timestamp()), 37800],
        [int(datetime(2026, 10, 3, 15, 30, tzinfo=UTC).timestamp()), 39600],
    ]


def test_time_zone_names_that_are_no_zone_file_are_unknown() -> None:
    """A folder of the zone database (``America``) or an over-long name is no time zone: None (the CLI's
    --timezone and [nightly.pull] timezone then refuse it in one line), never an OSError traceback."""
    night = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    for name in ("America", "Europe", "x" * 300):
        assert time_zone(name) is None, name
        assert utc_offsets(name, night, night + timedelta(hours=1)) is None


def _timeline_side(n_intervals: int) -> Measurement:
    counts: list[int | None] = [10] * n_intervals
    counts[3] = None  # an interval without data stays missing
    p95: list[float | None] = [float(i) for i in range(n_intervals)]
    line = Timeline(START.timestamp() + 30, 1.0, tuple(counts), avg_ms=None, p95_ms=tuple(p95))
    stats = EndpointStats(
        Endpoint.parse(ORDERS), 10 * n_intervals, 0, LatencyDistribution(_sketch(7, 50.0, 500)), timeline=line
    )
    return _measurement((stats,), env="old", target="http://old", pair_id=None)


def test_chart_data_thins_cdfs_and_timelines() -> None:
    base, cand = _timeline_side(600), _timeline_side(45)
    result = compare(base, cand)
    (charts,) = chart_data(result, base, cand)
    assert charts is not None
    cdf = charts["b"]["cdf"]
    assert len(cdf) == len(CDF_GRID) <= 60
    assert cdf == sorted(cdf)  # a CDF: quantiles never decrease
    assert cdf[-1] == rounded(_sketch(7, 50.0, 500).max)
    start, step, name, rates, latencies = charts["b"]["time"]
    assert (start, step, name) == (START.timestamp() + 30, 10, "p95")  # UTC epoch s; 600 1-s intervals merged by ten
    assert len(rates) == len(latencies) == TIMELINE_POINTS == 60
    assert rates[0] == 9  # 90 requests (one interval had no data) over 10 s
    assert latencies[:2] == [9, 19]  # the highest p95 of the merged intervals
    start, step, _, rates, latencies = charts["c"]["time"]
    assert step == 1
    assert len(rates) == 45  # few enough: kept as they are
    assert rates[3] is None  # missing, not zero


def test_chart_data_for_summaries_and_missing_sides() -> None:
    summary = EndpointStats(
        Endpoint.parse(ORDERS), 1000, 0, LatencySummary(avg_ms=50.0, p50_ms=40.0, p95_ms=90.0, max_ms=300.0)
    )
    base = _measurement((summary,), env="old", target="http://old", pair_id=None)
    cand = _measurement(
        (_stats(ORDERS, 9, 45.0, 1000, 0), _stats(HEALTH, 10, 2.0, 500, 0)),
        env="new",
        target="http://new",
        pair_id=None,
    )
    result = compare(base, cand)
    charts = dict(zip((e.endpoint.key for e in result.endpoints), chart_data(result, base, cand), strict=True))
    orders = charts[ORDERS]
    assert orders is not None
    assert orders["b"] == {"cdf": [[0.5, 0.95, 1.0], [40, 90, 300]], "time": None}  # only what was reported
    assert len(orders["c"]["cdf"]) == len(CDF_GRID)
    health = charts[HEALTH]
    assert health is not None
    assert health["b"] is None  # the baseline lacks the endpoint
    # charts from other Measurements than the result's: nothing to draw, not a crash
    other = _measurement((), env="x", target="http://x", pair_id=None)
    assert chart_data(result, other, other) == [None, None]


def test_html_embeds_chart_js_and_chart_data() -> None:
    result = mixed_result()
    plain = render_html(result, META)
    static = files("parity.report").joinpath("static")
    library = static.joinpath("chart.umd.min.js").read_text(encoding="utf-8")
    assert library.startswith("/*!\n * Chart.js v3.9.1")
    assert "MIT" in static.joinpath("LICENSE.chart.js.txt").read_text(encoding="utf-8")
    assert library in plain
    assert _data(plain)["charts"] is False
    sides = (
        _measurement((_stats(ORDERS, 1, 100.0, 2000, 2),), env="old", target="http://old", pair_id=None),
        _measurement((_stats(ORDERS, 11, 150.0, 2000, 2),), env="new", target="http://new", pair_id=None),
    )
    one = compare(*sides)
    data = _data(render_html(one, META, sides))
    assert data["charts"] is True
    assert data["grid"] == list(CDF_GRID)
    assert len(data["rows"][0]["ch"]["b"]["cdf"]) == len(CDF_GRID)


# --- parity.json -----------------------------------------------------------------------------------

_METRIC_KEYS = {
    "baseline",
    "candidate",
    "ratio",
    "delta",
    "unit",
    "direction",
    "change",
    "verdict",
    "reason",
    "tolerance",
    "min_delta",
    "min_samples",
    "samples",
    "statistics",
    "gated",
    "comparable",
    "looks_worse",
    "needs",
}
_STATISTICS_KEYS = {
    "method",
    "tested",
    "estimate",
    "estimate_kind",
    "interval",
    "confidence",
    "p_value",
    "adjusted_p",
    "alpha",
    "family_size",
    "details",
}
_NUMBER_OR_NULL = (int, float, type(None))


def test_parity_json_contract() -> None:
    result = mixed_result()
    doc = parity_json(result, META)
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc
    assert {
        "format",
        "version",
        "verdict",
        "reasons",
        "mode",
        "notes",
        "counts",
        "endpoints",
        "bottlenecks",
        "knees",
        "statistics",
        "baseline",
        "candidate",
        "meta",
    } <= set(doc)
    assert doc["statistics"]["alpha"] == 0.01
    assert doc["statistics"]["tests"] == result.tests > 0
    assert doc["format"] == "parity-result"
    assert doc["version"] == 1
    assert doc["verdict"] == "fail"
    assert doc["mode"] == "concurrent-a/b"
    assert doc["reasons"] == list(result.reasons)
    assert doc["counts"] == {"pass": 1, "marginal": 1, "fail": 3, "inconclusive": 2}
    assert [e["endpoint"] for e in doc["endpoints"]] == [e.endpoint.key for e in result.endpoints]
    for e in doc["endpoints"]:
        assert set(e) >= {"endpoint", "method", "route", "verdict", "reasons", "metrics"}
        assert e["verdict"] in {v.value for v in Verdict}
        assert isinstance(e["reasons"], list)
        assert all(isinstance(r, str) for r in e["reasons"])
        assert e["endpoint"] == Endpoint(e["method"], e["route"]).key
        for name, m in e["metrics"].items():
            assert name in {s.name for s in METRICS}
            assert set(m) == _METRIC_KEYS
            for key in ("baseline", "candidate", "ratio", "delta", "tolerance", "min_delta"):
                assert isinstance(m[key], _NUMBER_OR_NULL), (name, key)
            assert m["direction"] in {"lower-is-better", "higher-is-better"}
            assert m["change"] in {"worse", "better", "same", "unknown"}
            assert isinstance(m["samples"], dict)
            assert set(m["samples"]) == {"baseline", "candidate"}
            if m["statistics"] is not None:
                assert set(m["statistics"]) == _STATISTICS_KEYS
                assert m["statistics"]["estimate_kind"] in {"ratio", "difference"}
    orders = next(e for e in doc["endpoints"] if e["endpoint"] == ORDERS)
    assert set(orders["metrics"]) == {s.name for s in METRICS}
    p95 = orders["metrics"]["p95_ms"]
    assert p95["verdict"] == "fail"
    assert p95["unit"] == "ms"
    assert p95["samples"] == {"baseline": 2000, "candidate": 2000}
    assert p95["ratio"] == pytest.approx(p95["candidate"] / p95["baseline"])
    p95_test = p95["statistics"]
    assert p95_test["tested"] is True
    assert "Fisher" in p95_test["method"]
    assert p95_test["p_value"] < p95_test["adjusted_p"] <= 0.01  # significant after Holm
    assert p95_test["family_size"] == result.tests
    low, high = p95_test["interval"]
    assert low < p95_test["estimate"] < high
    assert low > 1.05  # the whole interval is beyond the 5% tolerance
    new_only = next(e for e in doc["endpoints"] if e["endpoint"] == DELETE)
    assert new_only["baseline_count"] is None
    assert new_only["traffic_share"] is None
    assert new_only["metrics"] == {}
    bottleneck_fields = {f.name for f in dataclasses.fields(Bottleneck)}
    assert [b["rank"] for b in doc["bottlenecks"]] == list(range(1, len(result.bottlenecks) + 1))
    for b, original in zip(doc["bottlenecks"], result.bottlenecks, strict=True):
        assert set(b) == bottleneck_fields
        assert b["endpoint"] == original.endpoint.key
        assert b["failed_metrics"] == list(original.failed_metrics)
    side_fields = {f.name for f in dataclasses.fields(SideInfo)}
    assert set(doc["baseline"]) == side_fields == set(doc["candidate"])
    assert doc["baseline"]["window_start"] == "2026-03-01T10:00:00Z"
    assert doc["candidate"]["window_end"] == "2026-03-01T10:10:00Z"
    assert doc["candidate"]["target"] == "https://new.example.com"
    assert doc["meta"] == {
        "harness_version": "0.1.0-test",
        "commit": "0123abc",
        "generated_at": "2026-03-01T12:00:00Z",
        "config": "parity.toml",
        "command": "parity compare baseline.json candidate.csv --out reports/test",
    }


def test_parity_json_replaces_non_finite_numbers() -> None:
    result = mixed_result()
    first = result.endpoints[0]
    bad_metric = dataclasses.replace(first.metrics[0], ratio=math.inf, delta=math.nan)
    bad = dataclasses.replace(
        result,
        endpoints=(
            dataclasses.replace(first, metrics=(bad_metric, *first.metrics[1:])),
            *result.endpoints[1:],
        ),
        bottlenecks=(
            dataclasses.replace(result.bottlenecks[0], avg_ratio=-math.inf),
            *result.bottlenecks[1:],
        ),
    )
    doc = parity_json(bad, META)
    json.dumps(doc, allow_nan=False)  # raises on NaN/inf
    metric = doc["endpoints"][0]["metrics"][bad_metric.metric]
    assert metric["ratio"] is None
    assert metric["delta"] is None
    assert doc["bottlenecks"][0]["avg_ratio"] is None


# --- JUnit -----------------------------------------------------------------------------------------


def test_junit_golden() -> None:
    _check_golden("junit.xml", junit_xml(mixed_result()))


@pytest.mark.parametrize(
    "result", [mixed_result, pass_result, inconclusive_result, empty_result, incomparable_result, looks_worse_result]
)
def test_junit_parses_and_counts_match(result: Any) -> None:
    r: ParityResult = result()
    text = junit_xml(r)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    assert suites[0].get("name") == "parity"
    suite = suites[0]
    cases = suite.findall("testcase")
    counts = r.counts()
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    for element in (root, suite):
        assert element.get("tests") == str(len(cases)) == str(len(r.endpoints))
        assert element.get("failures") == str(len(failures)) == str(counts[Verdict.FAIL])
        assert element.get("skipped") == str(len(skipped)) == str(counts[Verdict.INCONCLUSIVE])
        assert element.get("errors") == "0"
    assert [c.get("name") for c in cases] == [e.endpoint.key for e in r.endpoints]
    for case, e in zip(cases, r.endpoints, strict=True):
        assert case.get("classname") == "parity.orders-api"
        assert case.get("time") == "0"
        failure, skip, out = case.find("failure"), case.find("skipped"), case.find("system-out")
        if e.verdict is Verdict.FAIL:
            assert failure is not None
            assert skip is None
            assert failure.get("type") == "regression"
            assert failure.get("message") == e.reasons[0]
            assert (failure.text or "").split("\n") == list(e.reasons)
        elif e.verdict is Verdict.INCONCLUSIVE:
            assert skip is not None
            assert failure is None
            looks = describe_looks_worse(e)  # an endpoint not judged that looks worse leads with the words
            first = e.reasons[0]
            if r.incomparable is not None and any(not m.comparable for m in e.metrics):
                first = f"latency incomparable: {r.incomparable.reason}"
            assert skip.get("message") == (f"{looks}; {first}" if looks else first)
        elif e.verdict is Verdict.MARGINAL:
            assert failure is None
            assert skip is None
            assert out is not None
            assert (out.text or "").split("\n") == list(e.reasons)
        else:
            assert len(case) == 0


@cache
def _junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(Path(__file__).resolve().parent / "fixtures" / "junit.xsd")


@pytest.mark.parametrize(
    "result",
    [
        mixed_result,
        pass_result,
        inconclusive_result,
        empty_result,
        many_regressions_result,
        incomparable_result,
        looks_worse_result,
        oversampled_result,
    ],
)
def test_junit_validates_against_the_junit_schema(result: Any) -> None:
    _junit_schema().validate(junit_xml(result()))


def test_the_junit_schema_rejects_what_ci_servers_reject() -> None:
    bad = junit_xml(pass_result()).replace('tests="2"', 'tests="two"', 1)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        _junit_schema().validate(bad)
    no_name = junit_xml(pass_result()).replace('<testcase classname="parity.orders-api" name=', "<testcase n=", 1)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        _junit_schema().validate(no_name)


def test_junit_survives_hostile_names() -> None:
    result = mixed_result()
    first = result.endpoints[0]
    odd = dataclasses.replace(first, endpoint=Endpoint("GET", '/a"&<b>\x01'))
    text = junit_xml(dataclasses.replace(result, endpoints=(odd, *result.endpoints[1:])))
    names = [c.get("name") for c in ET.fromstring(text).iter("testcase")]
    assert names[0] == 'GET /a"&<b>\ufffd'
    assert SCRIPT in names


# --- Markdown summary ------------------------------------------------------------------------------


def test_summary_golden() -> None:
    _check_golden("summary.md", summary_md(mixed_result(), META, report_link="index.html"))


def _table_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if re.match(r"\| \d+ \|", line)]


def test_summary_content_and_escaping() -> None:
    result = mixed_result()
    md = summary_md(result, META, report_link="reports/run 1/index.html")
    assert md.startswith("## Performance parity: **FAIL**\n")
    assert "concurrent A/B" in md
    assert "3 fail · 2 inconclusive · 1 marginal · 1 pass" in md
    rows = _table_rows(md)
    assert len(rows) == len(result.bottlenecks)
    assert rows[0].startswith(f"| 1 | {ORDERS} | FAIL |")
    # one table row has exactly 7 unescaped pipes (6 cells), even with a pipe in the name
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 7, row
    assert "GET /search\\|legacy" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script>" not in md
    assert "s/min" in rows[0]
    assert "errors/min" in next(r for r in rows if "POST /api/orders" in r)
    assert "**Not judged (2):**" in md
    assert "DELETE /api/orders/{id}" in md
    assert "[Full HTML report](reports/run%201/index.html)" in md


def test_summary_caps_the_table_and_omits_missing_link() -> None:
    result = many_regressions_result()
    md = summary_md(result, META)
    assert len(result.bottlenecks) == 12
    assert len(_table_rows(md)) == SUMMARY_MAX_ROWS
    assert "…and 2 more regressed endpoint(s)" in md
    assert "Full HTML report" not in md


def test_summary_without_regressions() -> None:
    md = summary_md(pass_result(), META)
    assert md.startswith("## Performance parity: **PASS**\n")
    assert "before/after" in md
    assert "Top regressions" not in md
    assert "Not judged" not in md


# --- writing ---------------------------------------------------------------------------------------


def test_write_reports(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    result = mixed_result()
    paths = write_reports(result, out, META)
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "junit.xml", "parity.json", "summary.md"]
    assert (paths.index_html, paths.parity_json, paths.junit_xml, paths.summary_md) == (
        out / "index.html",
        out / "parity.json",
        out / "junit.xml",
        out / "summary.md",
    )
    assert json.loads(paths.parity_json.read_text(encoding="utf-8")) == parity_json(result, META)
    assert paths.junit_xml.read_text(encoding="utf-8") == junit_xml(result)
    assert paths.index_html.read_text(encoding="utf-8") == render_html(result, META)
    assert "[Full HTML report](index.html)" in paths.summary_md.read_text(encoding="utf-8")
    # a second run replaces the files in place
    write_reports(pass_result(), out, META)
    assert json.loads(paths.parity_json.read_text(encoding="utf-8"))["verdict"] == "pass"
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "junit.xml", "parity.json", "summary.md"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no temporary sibling left


def test_write_atomic_replaces_and_never_fails_on_a_lone_surrogate(tmp_path: Path) -> None:
    target = tmp_path / "parity.json"
    target.write_text("previous", encoding="utf-8")
    write_atomic(target, "name \ud800 lands")
    assert target.read_text(encoding="utf-8") == "name \ufffd lands"
    assert list(tmp_path.iterdir()) == [target]


# --- what a verdict cannot rest on, in every renderer -------------------------------------------------


def test_helpers_for_remedies_needs_and_oversampling() -> None:
    assert split_remedy(
        "parity ab a.json --old OLD_URL --new N --out DIR   (replay old and new at once: same load)"
    ) == (
        "parity ab a.json --old OLD_URL --new N --out DIR",
        "replay old and new at once: same load",
    )
    assert split_remedy("parity compare a b --out DIR") == ("parity compare a b --out DIR", "")
    assert split_remedy("cmd --name x (one space: part of the command)") == (
        "cmd --name x (one space: part of the command)",
        "",
    )
    assert needs_text(200, 12) == "about 188 more requests per side would decide it"
    assert needs_text(1200, None) == "about 1,200 requests per side would decide it"
    assert needs_text(10, 12) == "about 10 requests per side would decide it"
    assert needs_text(None, 12) is None
    assert needs_text(10**28, 200) == "more than 10,000,000 requests per side: the change seen is within noise"
    assert oversampled_text((4.0, 4.0)) == "oversampled ×4"
    assert oversampled_text((1.0, 4.0)) == "oversampled ×4 (candidate)"
    assert oversampled_text((2.0, 2.5)) == "oversampled ×2 baseline, ×2.5 candidate"
    assert oversampled_text((1.0, 1.0)) is None
    assert oversampled_text(None) is None
    assert load_factors(None) == {}
    assert load_factors(oversampled_sides()) == {PAYROLL: (4.0, 4.0)}
    assert latency_recorded("service-time") == "service-time (client-side)"
    assert latency_recorded("server") == "server (server-side)"


def test_gate_labels_name_why_a_metric_does_not_count() -> None:
    inc = incomparable_result()
    orders = _endpoint(inc, ORDERS)
    labels = {m.metric: gate_label(m, inc.throughput_gated) for m in orders.metrics}
    assert labels == {
        **{m.name: "incomparable" for m in METRICS if m.unit == "ms"},
        "error_rate": None,  # judged: errors compare whatever the latency kind
        "rps": "shown",
    }
    off = Policy(rules={**DEFAULT_RULES, "max_ms": MetricRule(1.0, 100.0, 30, gate=Gate.OFF)})
    result = compare(*looks_worse_sides(), off)
    health = _endpoint(result, HEALTH)
    assert {m.metric: gate_label(m, result.throughput_gated) for m in health.metrics if not m.gated} == {
        "max_ms": "off"
    }
    row = next(r for r in build_context(result, META)["data"]["rows"] if r["k"] == HEALTH)
    cells = dict(zip((m.name for m in METRICS), row["m"], strict=True))
    assert cells["max_ms"][GATE] == "off"
    assert cells["p95_ms"][GATE] is None
    assert build_context(result, META)["data"]["gates"]["off"] == {
        "label": "off",
        "title": "reported only: this metric's gate is off in the config",
    }


def test_parity_json_says_latency_is_incomparable_and_throughput_only_shown() -> None:
    result = incomparable_result()
    assert result.incomparable is not None
    doc = parity_json(result, META)
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert doc["version"] == 1
    assert doc["verdict"] == "inconclusive"
    assert doc["reasons"][0] == f"latency not comparable: {result.incomparable.reason}"
    assert doc["incomparable"] == {
        "baseline_kind": "server",
        "candidate_kind": "service-time",
        "reason": result.incomparable.reason,
        "remedies": list(result.incomparable.remedies),
    }
    assert doc["throughput"] == {"gated": False, "note": result.throughput_note}
    assert "not driven by the same offered load" in doc["throughput"]["note"]
    assert doc["unjudged_looking_worse"] == []
    for e in doc["endpoints"]:
        assert e["looks_worse"] is None
        for name, m in e["metrics"].items():
            assert set(m) == _METRIC_KEYS
            latency = name not in ("error_rate", "rps")
            assert m["comparable"] is not latency, name
            assert m["gated"] is (name == "error_rate"), name
            assert m["looks_worse"] is False  # an incomparable latency never "looks" anything
    # a run whose latencies compare
    mixed = parity_json(mixed_result(), META)
    assert mixed["incomparable"] is None
    assert mixed["throughput"]["gated"] is False
    assert mixed["throughput"]["note"].startswith("closed-loop load on the candidate side")
    assert parity_json(pass_result(), META)["throughput"]["note"].startswith("the sides were not driven")
    assert parity_json(looks_worse_result(), META)["throughput"] == {"gated": True, "note": ""}


def test_parity_json_lists_unjudged_endpoints_that_look_worse() -> None:
    result = looks_worse_result()
    rare = _endpoint(result, RARE)
    words = describe_looks_worse(rare)
    assert re.fullmatch(
        r"looks x1\.\d\d slower \(shift\), x1\.\d\d slower \(avg\): needs ~\d+ more requests per side", words
    )
    doc = parity_json(result, META)
    assert doc["unjudged_looking_worse"] == [{"endpoint": RARE, "looks": words, "needs": rare.needs}]
    assert rare.needs is not None
    assert rare.needs > 12
    entry = next(e for e in doc["endpoints"] if e["endpoint"] == RARE)
    assert entry["looks_worse"] == words
    assert entry["needs"] == rare.needs
    shift = entry["metrics"]["shift"]
    assert shift["verdict"] == "inconclusive"
    assert (shift["gated"], shift["comparable"], shift["looks_worse"]) == (True, True, True)
    assert isinstance(shift["needs"], int)
    assert 12 < shift["needs"] <= rare.needs
    orders = next(e for e in doc["endpoints"] if e["endpoint"] == ORDERS)
    assert (orders["looks_worse"], orders["needs"]) == (None, None)
    assert all(m["needs"] is None and m["looks_worse"] is False for m in orders["metrics"].values())


def _skipped_by_name(text: str) -> dict[str, ET.Element]:
    return {
        c.get("name") or "": s for c in ET.fromstring(text).iter("testcase") if (s := c.find("skipped")) is not None
    }


def _properties(text: str) -> dict[str, str]:
    return {p.get("name") or "": p.get("value") or "" for p in ET.fromstring(text).iter("property")}


def test_junit_skips_incomparable_latency_and_leads_with_looks_worse() -> None:
    result = incomparable_result()
    assert result.incomparable is not None
    text = junit_xml(result)
    skipped = _skipped_by_name(text)
    assert sorted(skipped) == sorted(e.endpoint.key for e in result.endpoints)
    for skip in skipped.values():
        assert skip.get("message") == f"latency incomparable: {result.incomparable.reason}"
        assert (skip.text or "").splitlines()[-1] == f"for a latency verdict: {result.incomparable.remedies[0]}"
    props = _properties(text)
    assert props["incomparable"] == result.incomparable.reason
    assert props["remedies"].split("\n") == list(result.incomparable.remedies)
    assert props["throughput"] == f"shown, not judged: {result.throughput_note}"
    looks = looks_worse_result()
    text = junit_xml(looks)
    rare = _endpoint(looks, RARE)
    message = _skipped_by_name(text)[RARE].get("message") or ""
    assert message == f"{describe_looks_worse(rare)}; {rare.reasons[0]}"
    assert message.startswith("looks x1.")
    assert "incomparable" not in _properties(text)
    assert "throughput" not in _properties(text)  # gated: nothing to say
    for document in (junit_xml(result), text):
        _junit_schema().validate(document)


def test_summary_leads_with_the_incomparability() -> None:
    result = incomparable_result()
    assert result.incomparable is not None
    md = summary_md(result, META, report_link="index.html")
    _check_golden("summary_incomparable.md", md)
    lines = md.splitlines()
    assert lines[0] == "## Performance parity: **INCONCLUSIVE**"
    assert lines[2] == (
        f"**Latency not comparable** (baseline server, candidate service-time): {result.incomparable.reason}. "
        "Latency was neither passed nor failed; for a latency verdict, run one of (best first):"
    )
    remedies = [line for line in lines if re.match(r"\d\. `", line)]
    assert remedies[0] == (
        "1. `parity ab access.json --old OLD_URL --new https://new.example.com --out DIR` — replay old and new at "
        "once: client-side on both sides, same load, same time"
    )
    assert len(remedies) == len(result.incomparable.remedies) == 3
    assert remedies[1].startswith("2. `parity baseline from-logs --format nginx ACCESS_LOGS --window-of replay.json")
    assert "- latency not comparable" not in md  # said once, in the block, not again as a reason
    assert "- for a latency verdict" not in md
    assert md.index("**Latency not comparable**") < md.index("**Mode:**")
    assert f"> Note: throughput shown, not judged: {result.throughput_note}" in md
    # when errors fail the run, its reason comes first and the incomparability right after
    failing = summary_md(incomparable_result(candidate_errors=80), META)
    lines = failing.splitlines()
    assert lines[2] == "- 1 endpoint(s) regressed: POST /api/orders"
    assert lines[4].startswith("**Latency not comparable**")
    assert "| 1 | POST /api/orders | FAIL |" in failing
    assert "| incomparable |" in failing  # the p95 ratio of different kinds of latency is no figure to read


def test_summary_lists_unjudged_endpoints_that_look_worse() -> None:
    result = looks_worse_result()
    md = summary_md(result, META, report_link="index.html")
    _check_golden("summary_looks_worse.md", md)
    rare = _endpoint(result, RARE)
    words = _md(describe_looks_worse(rare))
    assert "**Not judged, looks worse (1):**" in md
    assert f"- {RARE}: {words} (12 / 12 requests)" in md
    assert md.index("**Not judged, looks worse (1):**") < md.index("**Mode:**")
    assert "Latency not comparable" not in md
    assert "Not judged, looks worse" not in summary_md(mixed_result(), META)


def test_summary_notes_oversampling_and_throughput_shown() -> None:
    md = summary_md(oversampled_result(), META)
    assert "> Note: oversampled endpoints (sent above their share of traffic" in md
    assert f"{_md(PAYROLL)} x4" in md
    assert "> Note: throughput shown, not judged: closed-loop load on the candidate side" in summary_md(
        mixed_result(), META
    )


def test_terminal_summary_incomparability_and_looks_worse() -> None:
    result = incomparable_result()
    assert result.incomparable is not None
    lines = terminal_summary(result).splitlines()
    assert lines[0] == f"parity: INCONCLUSIVE - latency not comparable: {result.incomparable.reason}"
    assert lines[1] == "  for a latency verdict, run one of (capitals are placeholders):"
    assert lines[2:5] == [f"    {i}. {r}" for i, r in enumerate(result.incomparable.remedies, start=1)]
    assert "\n".join(lines).count(result.incomparable.reason) == 1  # not once per endpoint
    assert "  not judged: 4 endpoint(s): latency not comparable (see above)" in lines
    assert len(lines) <= 15
    failing = incomparable_result(candidate_errors=80)
    lines = terminal_summary(failing).splitlines()
    assert lines[0] == "parity: FAIL - 1 endpoint(s) regressed: POST /api/orders"
    assert lines[1] == f"  latency not comparable: {result.incomparable.reason}"
    assert lines[2].startswith("  for a latency verdict")
    assert "    1. POST /api/orders  +7.8 errors/min  latency incomparable" in lines
    # not judged: those that look worse first, with the requests that would decide them
    unsure = inconclusive_result()
    not_judged = [line for line in terminal_summary(unsure).splitlines() if line.startswith("  not judged")]
    # (fewer than 10 requests a side: nothing is read into their figures, so they do not "look" anything)
    assert not_judged == [f"  not judged: {e.endpoint.key}: {e.reasons[0]}" for e in unsure.endpoints]
    assert not any(e.looks_worse for e in unsure.endpoints)
    looks = looks_worse_result()
    lines = terminal_summary(looks).splitlines()
    first = next(line for line in lines if line.startswith("  not judged"))
    assert re.fullmatch(
        r"  not judged, looks x1\.\d\d slower \(shift\).*: needs ~\d+ more requests per side: GET /api/rare", first
    )


def test_html_incomparability_callout() -> None:
    result = incomparable_result()
    assert result.incomparable is not None
    ctx = build_context(result, META, measurements=incomparable_sides())
    _assert_formats_nothing(ctx)
    callout = ctx["incomparable"]
    assert callout["reason"] == result.incomparable.reason
    assert callout["kinds"] == "baseline server (server-side) vs candidate service-time (client-side)"
    assert callout["remedies"][0] == {
        "command": "parity ab access.json --old OLD_URL --new https://new.example.com --out DIR",
        "why": "replay old and new at once: client-side on both sides, same load, same time",
    }
    assert [split_remedy(r) for r in result.incomparable.remedies] == [
        (r["command"], r["why"]) for r in callout["remedies"]
    ]
    assert ctx["latency_judged"] == (
        "none: server (server-side) on the baseline, service-time (client-side) on the candidate are not comparable"
    )
    assert ctx["throughput"] == f"shown, not judged: {result.throughput_note}"
    for side in ctx["sides"]:
        rows = {r["label"]: r["value"] for r in side["rows"]}
        assert rows["Latency judged"] == ctx["latency_judged"]
    rows = ctx["data"]["rows"]
    for row in rows:
        assert row["s"] == "latency not comparable (server vs service-time): see the callout at the top"
        assert row["lb"] == "none (server vs service-time: not comparable)"  # the detail's "latency judged"
        cells = dict(zip((m.name for m in METRICS), row["m"], strict=True))
        assert cells["p95_ms"][GATE] == "incomparable"
        assert cells["p95_ms"][NEEDS] is None  # nothing more requests could decide
        assert INCOMPARABLE_POINTER in cells["p95_ms"][REASON]
        assert result.incomparable.reason not in cells["p95_ms"][REASON]  # said once, in the callout
        assert cells["rps"][GATE] == "shown"
        assert cells["error_rate"][GATE] is None
    assert ctx["data"]["gates"]["incomparable"]["title"].endswith(result.incomparable.reason)
    html = render_html(result, META, incomparable_sides())
    assert html.index('id="verdict"') < html.index('id="incomparable"') < html.index('id="bottlenecks"')
    section = html[html.index('id="incomparable"') : html.index("</section>", html.index('id="incomparable"'))]
    for remedy in callout["remedies"]:
        assert f"<code>{escape(remedy['command'])}</code>" in section
    assert section.count('class="copy"') == 3
    assert "Latency judged: none: server (server-side)" in html
    assert 'id="incomparable"' not in render_html(mixed_result(), META)
    assert build_context(mixed_result(), META)["incomparable"] == {}


def test_html_incomparable_bottlenecks_show_no_latency_ratio() -> None:
    ctx = build_context(incomparable_result(candidate_errors=80), META)
    (row,) = ctx["bottlenecks"]
    assert row["key"] == CREATE
    assert (row["avg_ratio"], row["p95_ratio"]) == ("incomparable", "incomparable")
    assert row["extra_errors"] == "+7.8 errors/min"


def test_html_section_for_unjudged_endpoints_that_look_worse() -> None:
    result = looks_worse_result()
    rare = _endpoint(result, RARE)
    ctx = build_context(result, META)
    _assert_formats_nothing(ctx)
    (entry,) = ctx["looks_worse"]
    assert entry["key"] == RARE
    assert entry["looks"] == describe_looks_worse(rare)
    assert entry["requests"] == "12 / 12"
    shift = rare.metric("shift")
    assert shift is not None
    assert shift.needs is not None
    decides = [f"{METRIC_LABELS[m.metric]}: ~{(m.needs or 0) - 12:,} more" for m in rare.looks_worse]
    assert entry["decides"] == decides  # each metric that looks worse, with the requests that would decide it
    assert decides[0] == f"typical latency (rank shift): ~{shift.needs - 12} more"
    # when deciding everything still open takes more than deciding what looks worse, that is said too
    only_shift = dataclasses.replace(
        result,
        endpoints=tuple(
            dataclasses.replace(
                e, metrics=tuple(dataclasses.replace(m, looks_worse=m.metric == "shift") for m in e.metrics)
            )
            for e in result.endpoints
        ),
    )
    assert build_context(only_shift, META)["looks_worse"][0]["decides"] == [
        decides[0],
        f"everything still open: ~{(rare.needs or 0) - 12:,} more",
    ]
    row = next(r for r in ctx["data"]["rows"] if r["k"] == RARE)
    assert row["lw"] == f"not judged, {describe_looks_worse(rare)}"
    assert row["nd"] == f"Not decided yet: about {(rare.needs or 0) - 12} more requests per side would decide it."
    cells = dict(zip((m.name for m in METRICS), row["m"], strict=True))
    assert cells["shift"][NEEDS] == f"about {shift.needs - 12} more requests per side would decide it"
    assert cells["shift"][GATE] is None  # it counts and lacks data: a grey inconclusive, rightly
    assert cells["shift"][VERDICT] == "inconclusive"
    orders = next(r for r in ctx["data"]["rows"] if r["k"] == ORDERS)
    assert "lw" not in orders
    assert "nd" not in orders
    html = render_html(result, META)
    assert html.index('id="verdict"') < html.index('id="looks-worse"') < html.index('id="bottlenecks"')
    section = html[html.index('id="looks-worse"') : html.index("</section>", html.index('id="looks-worse"'))]
    assert escape(RARE) in section
    assert escape(entry["looks"]) in section
    assert "Not judged, but looks worse (1)" in section
    assert 'id="looks-worse"' not in render_html(mixed_result(), META)


def test_html_marks_oversampled_endpoints() -> None:
    result = oversampled_result()
    rows = build_context(result, META, measurements=oversampled_sides())["data"]["rows"]
    payroll = next(r for r in rows if r["k"] == PAYROLL)
    assert payroll["os"][0] == "oversampled ×4"
    assert "baseline ×4 / candidate ×4" in payroll["os"][1]
    assert "the replayed mix differs from production" in payroll["os"][1]
    assert all("os" not in r for r in rows if r["k"] != PAYROLL)
    assert all("os" not in r for r in build_context(result, META)["data"]["rows"])  # without the Measurements
    data = _data(render_html(result, META, oversampled_sides()))
    assert next(r for r in data["rows"] if r["k"] == PAYROLL)["os"][0] == "oversampled ×4"
    # one side oversampled: the badge says which
    base, cand = oversampled_sides()
    plain = Measurement(
        base.source,
        base.window,
        tuple(dataclasses.replace(e, load_factor=1.0) for e in base.endpoints),
        latency_kind=base.latency_kind,
        pair_id=base.pair_id,
    )
    one = build_context(compare(plain, cand), META, measurements=(plain, cand))["data"]["rows"]
    assert next(r for r in one if r["k"] == PAYROLL)["os"][0] == "oversampled ×4 (candidate)"


def test_html_latency_line_matches_the_notes() -> None:
    """Replays record service time, but the judge used intended time: the metadata says what was judged."""
    result = oversampled_result()
    note = next(n for n in result.notes if n.startswith("latency judged from each request's planned send time"))
    assert "on 3 endpoint(s)" in note
    ctx = build_context(result, META, measurements=oversampled_sides())
    judged = "intended time (baseline and candidate, from each request's planned send time) on 3 endpoint(s)"
    assert ctx["latency_judged"] == judged
    for side in ctx["sides"]:
        rows = {r["label"]: r["value"] for r in side["rows"]}
        assert "Latency kind" not in rows
        assert rows["Latency recorded"] == "service-time (client-side)"
        assert rows["Latency judged"] == judged
    assert {"label": "Latency judged", "value": ctx["latency_judged"]} in ctx["run"]
    html = render_html(result, META)
    assert "Latency kind" not in html
    assert f"Latency judged: {judged.replace(chr(39), '&#39;')}." in html
    assert build_context(looks_worse_result(), META)["latency_judged"] == (
        "server time (baseline and candidate) on 3 endpoint(s)"
    )

"""History store, change-point detection and the trend page: known answers with fixed seeds."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from parity.errors import EXIT_INCONCLUSIVE, EXIT_OK, BadInput
from parity.history.changepoints import (
    MIN_SEGMENT,
    Movement,
    Scale,
    change_points,
    detect_steps,
    hampel,
    noise_sigma,
    segment,
)
from parity.history.command import (
    TREND_HTML,
    TREND_JSON,
    add_history_parser,
    load_chart_js,
    record_run,
    run_history,
    write_trend,
)
from parity.history.store import SCHEMA_VERSION, append, load
from parity.history.trend import report_href
from parity.judge.compare import compare
from parity.judge.policy import METRICS
from parity.judge.result import (
    Change,
    ComparisonMode,
    EndpointResult,
    EstimateKind,
    MetricResult,
    ParityResult,
    SideInfo,
    Statistics,
    Verdict,
)
from parity.model import Endpoint
from parity.report.context import RunMeta
from tests.conftest import lognormal_side

NIGHT0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
HOSTILE = 'GET /x/<script>alert("x")</script>'
ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "artifacts"
_SPECS = {m.name: m for m in METRICS}


# --- building nights -------------------------------------------------------------------------------


def _side(name: str, env: str) -> SideInfo:
    return SideInfo(
        name=name,
        source_kind="synthetic",
        description=f"{env} environment",
        service="orders-api",
        env=env,
        target=f"http://{env}",
        window_start=NIGHT0,
        window_end=NIGHT0 + timedelta(minutes=10),
        duration_s=600.0,
        requests=1000,
        errors=1,
        endpoints=2,
        latency_kind="server",
        rate_scale=1.0,
        pair_id=None,
    )


def _metric(name: str, value: float | None, *, base: float = 100.0) -> MetricResult:
    """A metric whose ratio is ``value`` (error_rate: the candidate's rate is ``value``); None: no figure."""
    spec = _SPECS[name]
    if name == "error_rate":
        baseline, candidate, ratio = 0.01, value, None if value is None else value / 0.01
    else:
        baseline, candidate, ratio = base, None if value is None else base * value, value
    stats = Statistics(
        method="test",
        tested=True,
        estimate=ratio,
        estimate_kind=EstimateKind.RATIO,
        interval=None,
        confidence=0.95,
        p_value=0.25,
        adjusted_p=0.5,
        alpha=0.01,
        family_size=4,
    )
    return MetricResult(
        metric=name,
        unit=spec.unit,
        direction=spec.direction,
        baseline=baseline,
        candidate=candidate,
        ratio=ratio,
        delta=None if candidate is None else candidate - baseline,
        change=Change.SAME if candidate is not None else Change.UNKNOWN,
        verdict=Verdict.PASS if candidate is not None else Verdict.INCONCLUSIVE,
        reason="",
        tolerance=0.05,
        min_delta=1.0,
        min_samples=30,
        samples=(500, 480),
        statistics=stats if candidate is not None else None,
    )


def night(figures: Mapping[str, Mapping[str, float | None]], verdict: Verdict = Verdict.PASS) -> ParityResult:
    """A result with one endpoint per ``figures`` key and the given metric values."""
    endpoints = tuple(
        EndpointResult(
            endpoint=Endpoint.parse(key),
            verdict=verdict,
            reasons=(),
            metrics=tuple(_metric(name, value) for name, value in metrics.items()),
            baseline_count=500,
            candidate_count=480,
            traffic_share=0.5,
        )
        for key, metrics in figures.items()
    )
    return ParityResult(
        verdict=verdict,
        reasons=(),
        mode=ComparisonMode.CONCURRENT,
        endpoints=endpoints,
        bottlenecks=(),
        baseline=_side("baseline.json", "old"),
        candidate=_side("candidate.csv", "new"),
        notes=(),
        tests=4,
    )


def meta(at: datetime, commit: str = "abc123") -> RunMeta:
    return RunMeta(harness_version="0.1.0", commit=commit, generated_at=at, config=None, command="parity nightly")


def fill(
    store: Path, series: Mapping[str, Sequence[float | None]], metric: str = "p95_ms", *, reports: bool = True
) -> None:
    """Append one night per position of the ``series`` values (endpoint → per-night value of ``metric``)."""
    nights = len(next(iter(series.values())))
    for i in range(nights):
        at = NIGHT0 + timedelta(days=i)
        figures = {key: {metric: values[i], "avg_ms": 1.0} for key, values in series.items()}
        verdict = Verdict.FAIL if any((v[i] or 0) > 1.15 for v in series.values()) else Verdict.PASS
        report = str(store.parent.parent / f"reports/nightly/{at:%Y-%m-%d}/index.html") if reports else None
        append(store, night(figures, verdict), meta(at), run_at=at, report=report)


def noisy(n: int, seed: int, *, level: float = 1.0, noise: float = 0.02) -> list[float]:
    return [float(v) for v in np.random.default_rng(seed).normal(level, noise, n)]


# --- the store -------------------------------------------------------------------------------------


def test_store_round_trip_of_a_real_comparison(tmp_path: Path) -> None:
    store = tmp_path / "h" / "parity-history.sqlite"
    base = lognormal_side({"GET /a": 50.0, "GET /b": 20.0}, seed=1, errors={"GET /a": 4})
    cand = lognormal_side({"GET /a": 70.0, "GET /b": 20.0}, seed=2, errors={"GET /a": 4})
    result = compare(base, cand, names=("base.json", "cand.csv"))
    run_id = append(store, result, meta(NIGHT0), run_at=NIGHT0, report="reports/n1/index.html")
    assert run_id == 1
    assert store.is_file()
    assert sorted(p.name for p in store.parent.iterdir()) == [store.name]  # one file: no WAL / journal left

    history = load(store)
    assert len(history.runs) == 1
    run = history.runs[0]
    assert run.run_at == NIGHT0
    assert run.verdict is result.verdict
    assert run.mode is result.mode
    assert (run.harness_version, run.commit, run.command) == ("0.1.0", "abc123", "parity nightly")
    assert run.baseline.name == "base.json"
    assert run.candidate.name == "cand.csv"
    assert run.candidate.window_start == result.candidate.window_start
    assert run.report == "reports/n1/index.html"
    assert run.alpha == result.alpha
    assert run.tests == result.tests
    assert dict(run.counts) == result.counts()

    assert [e.endpoint for e in history.endpoints] == ["GET /a", "GET /b"]
    by_key = {(s.endpoint, s.metric): s for s in history.series}
    for e in result.endpoints:
        assert next(x for x in history.endpoints if x.endpoint == e.endpoint.key).verdicts == (e.verdict,)
        for m in e.metrics:
            point = by_key[(e.endpoint.key, m.metric)].points[0]
            assert point is not None
            assert point.ratio == m.ratio
            assert point.baseline == m.baseline
            assert point.candidate == m.candidate
            assert point.delta == m.delta
            assert point.verdict is m.verdict
            assert point.change is m.change
            assert point.samples == m.samples
            stats = m.statistics
            assert point.p_value == (None if stats is None else stats.p_value)
            assert point.adjusted_p == (None if stats is None else stats.adjusted_p)
    p95 = by_key[("GET /a", "p95_ms")]
    assert p95.unit == "ms"
    assert p95.points[0] is not None
    assert p95.points[0].ratio is not None
    assert p95.points[0].ratio > 1.2


def test_store_orders_by_time_and_aligns_missing_nights(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    day2, day1, day3 = (NIGHT0 + timedelta(days=d) for d in (1, 0, 2))
    append(store, night({"GET /a": {"p95_ms": 1.2}, "GET /b": {"p95_ms": 1.0}}), meta(day2), run_at=day2, report=None)
    append(store, night({"GET /a": {"p95_ms": 1.1}}), meta(day1), run_at=day1, report=None)
    append(store, night({"GET /a": {"p95_ms": None}}), meta(day3), run_at=day3, report=None)
    history = load(store)
    assert [r.run_at for r in history.runs] == [day1, day2, day3]
    assert [r.id for r in history.runs] == [2, 1, 3]
    series = {(s.endpoint, s.metric): s for s in history.series}
    a = series[("GET /a", "p95_ms")].points
    assert [p.ratio if p else "absent" for p in a] == [1.1, 1.2, None]  # a missing figure stays None, not 0
    b = series[("GET /b", "p95_ms")].points
    assert b[0] is None
    assert b[2] is None  # nights without the endpoint
    assert next(e for e in history.endpoints if e.endpoint == "GET /b").verdicts == (None, Verdict.PASS, None)

    last = history.last(2)
    assert [r.run_at for r in last.runs] == [day2, day3]
    assert len(next(s for s in last.series if s.endpoint == "GET /a").points) == 2
    assert history.last(10) is history


def test_store_is_append_only(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    append(store, night({"GET /a": {"p95_ms": 1.0}}), meta(NIGHT0), run_at=NIGHT0, report=None)
    with sqlite3.connect(store) as conn:
        for statement in ("UPDATE runs SET verdict = 'pass'", "DELETE FROM metrics", "DELETE FROM endpoints"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)


def test_failed_append_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    append(store, night({"GET /a": {"p95_ms": 1.0}}), meta(NIGHT0), run_at=NIGHT0, report=None)
    good = night({"GET /a": {"p95_ms": 1.0}})
    duplicate = ParityResult(**{**good.__dict__, "endpoints": good.endpoints * 2})  # same endpoint twice
    with pytest.raises(BadInput, match=r"h\.sqlite: the run was not recorded"):
        append(store, duplicate, meta(NIGHT0), run_at=NIGHT0 + timedelta(days=1), report=None)
    history = load(store)
    assert len(history.runs) == 1
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM endpoints").fetchone() == (1,)


def test_store_faults_are_one_line_bad_input(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    content = b"this is not a database, and it must survive a failed append\n" * 100
    garbage.write_bytes(content)
    result = night({"GET /a": {"p95_ms": 1.0}})
    for action in (lambda: load(garbage), lambda: append(garbage, result, meta(NIGHT0), run_at=NIGHT0, report=None)):
        with pytest.raises(BadInput) as caught:
            action()
        assert str(garbage) in str(caught.value)
        assert "\n" not in str(caught.value)
    assert garbage.read_bytes() == content  # never overwritten

    with pytest.raises(BadInput, match="no such history store"):
        load(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()  # loading never creates a store
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(BadInput, match="is a directory"):
        append(tmp_path / "dir.sqlite", result, meta(NIGHT0), run_at=NIGHT0, report=None)

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(BadInput, match="not a parity history store"):
        load(foreign)

    newer = tmp_path / "newer.sqlite"
    append(newer, result, meta(NIGHT0), run_at=NIGHT0, report=None)
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(BadInput, match=r"schema 2, newer than this parity reads \(1\)"):
        load(newer)
    with pytest.raises(BadInput, match="newer"):
        append(newer, result, meta(NIGHT0), run_at=NIGHT0, report=None)


def test_locked_store_gives_up_with_a_clear_message(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    result = night({"GET /a": {"p95_ms": 1.0}})
    append(store, result, meta(NIGHT0), run_at=NIGHT0, report=None)
    other = sqlite3.connect(store, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(BadInput, match=r"h\.sqlite: history store is locked by another process"):
            append(store, result, meta(NIGHT0), run_at=NIGHT0 + timedelta(days=1), report=None, timeout_s=0.05)
    finally:
        other.execute("ROLLBACK")
        other.close()
    append(store, result, meta(NIGHT0), run_at=NIGHT0 + timedelta(days=1), report=None)
    assert len(load(store).runs) == 2


def test_run_at_needs_a_time_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time zone"):
        append(tmp_path / "h.sqlite", night({}), meta(NIGHT0), run_at=datetime(2026, 1, 1), report=None)


# --- change points -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_planted_step_is_found_at_the_right_night(seed: int) -> None:
    values = noisy(10, seed)
    for i in range(6, 10):
        values[i] += 0.3  # p95 ratio 1.0 → 1.3 from night 6
    steps = detect_steps(values)
    assert len(steps) == 1
    step = steps[0]
    assert step.index == 6
    assert step.before == pytest.approx(1.0, abs=0.03)
    assert step.after == pytest.approx(1.3, abs=0.03)
    assert step.relative_change == pytest.approx(0.3, abs=0.05)
    assert (step.n_before, step.n_after) == (6, 4)
    assert step.p_value < 0.01


@pytest.mark.parametrize("seed", range(5))
def test_a_single_noisy_night_is_not_a_change_point(seed: int) -> None:
    values = noisy(10, seed)
    values[4] = 2.5  # one awful night
    assert detect_steps(values) == ()
    values[4], values[9] = 1.0, 0.4  # one awful last night (the newest)
    assert detect_steps(values) == ()


@pytest.mark.parametrize(("seed", "n"), [(s, n) for s in range(10) for n in (10, 30)])
def test_flat_noisy_series_has_no_change_point(seed: int, n: int) -> None:
    assert detect_steps(noisy(n, 100 + seed, noise=0.05)) == ()


def test_short_histories_give_none_without_error() -> None:
    for n in range(2 * MIN_SEGMENT):
        assert detect_steps([1.0] * (n // 2) + [2.0] * (n - n // 2)) == ()
    # exactly 2 × min segment nights: a clean step is found
    assert [s.index for s in detect_steps([1.0, 1.01, 0.99, 1.5, 1.51, 1.49])] == [3]
    assert detect_steps([]) == ()
    assert detect_steps([None] * 12) == ()


def test_missing_values_are_skipped_never_zero() -> None:
    flat_with_gaps = [1.0, 1.01, 0.99, None, None, None, 1.0, 1.02, 0.98, 1.0]
    assert detect_steps(flat_with_gaps) == ()  # as zeros, the gaps would be a level of their own
    assert detect_steps([1.0, 1.01, 0.99, 1.0, float("nan"), 1.0, 0.99, 1.01]) == ()
    step = [1.0, 1.01, None, 0.99, 1.0, None, 1.4, 1.41, None, 1.39]
    found = detect_steps(step)
    assert [s.index for s in found] == [6]  # the first night of the new level, as a night index
    assert (found[0].n_before, found[0].n_after) == (4, 3)


def test_zero_variance_series() -> None:
    assert detect_steps([1.0] * 12) == ()
    assert [s.index for s in detect_steps([1.0] * 6 + [1.2] * 6)] == [6]
    assert detect_steps([1.0] * 6 + [1.02] * 6) == ()  # a 2% shift is below the 5% practical size
    assert noise_sigma([1.0] * 12) == pytest.approx(0.005)  # the relative floor


def test_two_steps_and_min_segment() -> None:
    rng = np.random.default_rng(7)
    values = list(np.r_[rng.normal(1.0, 0.01, 6), rng.normal(1.3, 0.01, 6), rng.normal(1.0, 0.01, 6)])
    assert [s.index for s in detect_steps(values)] == [6, 12]
    blip = [1.0, 1.01, 0.99, 1.0, 1.5, 1.5, 1.0, 0.99, 1.01, 1.0]  # two bad nights
    assert detect_steps(blip) == ()  # shorter than the 3-night minimum
    assert [s.index for s in detect_steps(blip, min_segment=2)] == [4, 6]


def test_error_rate_steps_are_absolute() -> None:
    rates = [0.001, 0.0012, 0.0009, 0.001, 0.0011, 0.03, 0.031, 0.029, 0.03]
    steps = detect_steps(rates, scale=Scale.ABSOLUTE)
    assert [s.index for s in steps] == [5]
    tiny = [0.001, 0.0012, 0.0009, 0.001, 0.0011, 0.003, 0.0031, 0.0029, 0.003]  # +0.2 pp: below 0.5 pp
    assert detect_steps(tiny, scale=Scale.ABSOLUTE) == ()


def test_change_points_direction_per_metric_and_order(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    up = [1.0] * 5 + [1.5] * 5
    down = [1.0] * 5 + [0.7] * 5
    small_up = [1.0] * 5 + [1.1] * 5
    nights = 10
    for i in range(nights):
        at = NIGHT0 + timedelta(days=i)
        figures: dict[str, dict[str, float | None]] = {
            "GET /slower": {"p95_ms": up[i]},
            "GET /faster": {"p50_ms": down[i]},
            "GET /less-throughput": {"rps": down[i]},
            "GET /more-throughput": {"rps": small_up[i]},
            "GET /errors": {"error_rate": 0.001 if i < 5 else 0.05},
            "GET /steady": {"p95_ms": 1.0, "max_ms": up[i]},  # max is not trended
        }
        append(store, night(figures), meta(at), run_at=at, report=None)
    found = change_points(load(store))
    summary = [(c.endpoint, c.metric, c.movement, c.index) for c in found]
    assert summary == [  # worse first, by relative size: the error rate went from 0.1% to 5% (x50)
        ("GET /errors", "error_rate", Movement.WORSE, 5),
        ("GET /slower", "p95_ms", Movement.WORSE, 5),  # +50%
        ("GET /less-throughput", "rps", Movement.WORSE, 5),  # -30%
        ("GET /faster", "p50_ms", Movement.BETTER, 5),  # -30%
        ("GET /more-throughput", "rps", Movement.BETTER, 5),  # +10%
    ]
    slower = next(c for c in found if c.endpoint == "GET /slower")
    assert (slower.before, slower.after) == (1.0, 1.5)
    assert slower.relative_change == pytest.approx(0.5)
    assert slower.at == NIGHT0 + timedelta(days=5)
    assert (slower.nights_before, slower.nights_after) == (5, 5)


# --- the trend page ----------------------------------------------------------------------------------


def _planted_store(tmp_path: Path, nights: int = 10) -> Path:
    store = tmp_path / "history" / "parity-history.sqlite"
    step = noisy(nights, 1)
    for i in range(6, nights):
        step[i] += 0.3
    outlier = noisy(nights, 2)
    outlier[4] = 2.5
    fill(store, {HOSTILE: step, "GET /outlier": outlier, "GET /flat": noisy(nights, 3)})
    return store


def test_trend_page_marks_the_planted_step_only(tmp_path: Path) -> None:
    store = _planted_store(tmp_path)
    out = tmp_path / "trend"
    outcome = write_trend(store, out, now=NIGHT0 + timedelta(days=11), chart_js="/* chart library */")
    assert outcome.page == out / TREND_HTML
    assert outcome.nights == 10
    assert outcome.enough
    assert [(c.endpoint, c.metric, c.index, c.movement) for c in outcome.changes] == [
        (HOSTILE, "p95_ms", 6, Movement.WORSE)
    ]
    data = json.loads((out / TREND_JSON).read_text())
    assert len(data) == 1
    assert data[0]["endpoint"] == HOSTILE
    assert data[0]["night_index"] == 6
    assert data[0]["movement"] == "worse"
    assert data[0]["at"] == "2026-11-07T02:00:00Z"

    html = outcome.page.read_text()
    assert "<script>alert" not in html  # the hostile endpoint name is inert text everywhere
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert re.search(r"(src|href)=\"(https?:)?//", html) is None  # no external resource
    assert "/* chart library */" in html
    rows = re.findall(r'<tr class="change-(worse|better)">', html)
    assert rows == ["worse"]
    assert ">+29.6%<" in html  # the relative change of the step (medians x1.01 → x1.31)
    assert html.count('<details class="endpoint"') == 3
    first = html.index('<details class="endpoint"')
    assert html.index("&lt;script&gt;", first) < html.index("GET /outlier", first)  # changed endpoints first
    # chart data: a JSON island whose "<" are escaped
    island = re.search(r'<script type="application/json" id="trend-data">(.*?)</script>', html, re.S)
    assert island is not None
    assert "<" not in island.group(1)
    charts = json.loads(island.group(1))["charts"]
    assert {"metric": "p95_ms", "index": 6, "movement": "worse"} in next(
        c["marks"] for c in charts.values() if c["marks"]
    )
    # nights link to their reports, relative to the page
    assert 'href="../reports/nightly/2026-11-10/index.html"' in html


def test_trend_page_without_chart_library_and_missing_figures(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    fill(store, {"GET /a": [1.0, None, 1.0, 1.1]}, reports=False)
    outcome = write_trend(store, tmp_path / "out", chart_js="")
    html = outcome.page.read_text()
    assert not outcome.enough
    assert 'id="too-short"' in html
    island = re.search(r'id="trend-data">(.*?)</script>', html, re.S)
    assert island is not None
    values = json.loads(island.group(1))["charts"]["ep-0"]["series"][0]["values"]
    assert values == [1.0, None, 1.0, 1.1]  # a missing night is a gap (null), not 0


def test_trend_page_with_the_real_chart_library(tmp_path: Path) -> None:
    library = load_chart_js()
    if library is None:
        pytest.skip("no Chart.js (parity/report/static or libjs-chart.js)")
    assert "Chart.js v3" in library[:200]
    outcome = write_trend(_planted_store(tmp_path), tmp_path / "out")
    assert outcome.charts
    html = outcome.page.read_text()
    assert library in html
    assert 'id="no-charts"' not in html


def test_report_links() -> None:
    out = Path("reports/trend")
    assert report_href("reports/nightly/2026-11-01/index.html", out) == "../nightly/2026-11-01/index.html"
    assert report_href("https://ci.example.com/run/1?x=<b>", out) == "https://ci.example.com/run/1?x=<b>"
    assert report_href("javascript:alert(1)", out) is None
    assert report_href("data:text/html,hi", out) is None
    assert report_href(None, out) is None
    assert report_href("reports/a b#c.html", out) == "../a%20b%23c.html"


def test_record_run_and_the_history_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "h.sqlite"
    report_dir = tmp_path / "reports" / "n0"
    report_dir.mkdir(parents=True)
    at = NIGHT0
    assert record_run(store, night({"GET /a": {"p95_ms": 1.0}}), meta(at), report_dir) == 1
    run = load(store).runs[0]
    assert run.report == str(report_dir / "index.html")
    assert run.run_at == at  # defaults to the meta's time
    record_run(store, night({"GET /a": {"p95_ms": 1.0}}), meta(at), "https://ci/run/2", run_at=at + timedelta(days=1))
    assert load(store).runs[1].report == "https://ci/run/2"

    parser = argparse.ArgumentParser(prog="parity")
    add_history_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["history", "--store", str(store), "--out", str(tmp_path / "t")])
    assert args.min_segment == MIN_SEGMENT
    assert args.last is None
    assert run_history(args) == EXIT_INCONCLUSIVE  # 2 nights: too short for trends, page written anyway
    assert (tmp_path / "t" / TREND_HTML).is_file()
    assert "2 nights, 0 change points" in capsys.readouterr().out

    fill(store, {"GET /a": noisy(8, 5)})
    args = parser.parse_args(["history", "--store", str(store), "--out", str(tmp_path / "t"), "--last", "6"])
    assert run_history(args) == EXIT_OK
    assert "6 nights" in capsys.readouterr().out

    for bad in (["--min-segment", "0"], ["--last", "0"]):
        args = parser.parse_args(["history", "--store", str(store), "--out", str(tmp_path / "t"), *bad])
        with pytest.raises(BadInput, match="at least 1 night"):
            run_history(args)
    args = parser.parse_args(["history", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "t")])
    with pytest.raises(BadInput, match="no such history store"):
        run_history(args)


def test_trend_page_in_a_real_browser(tmp_path: Path) -> None:
    """Headless Chromium (Debian's, as the report's browser test uses) opens the page from disk: no console
    error, no request but the page, the open endpoint's chart drawn, the hostile name inert."""
    playwright = pytest.importorskip("playwright.sync_api")
    if load_chart_js() is None:
        pytest.skip("no Chart.js (parity/report/static or libjs-chart.js)")
    page_path = write_trend(_planted_store(tmp_path), tmp_path / "out").page
    chromium = os.environ.get("PARITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problems: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
        except playwright.Error as exc:
            pytest.skip(f"chromium ({chromium}) cannot start: {str(exc).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("typeof Chart") == "function"
            assert page.evaluate("window.__pwned === undefined && !document.querySelector('#changes script')")
            # the endpoint with the change point is open and its canvas has been drawn on
            drawn = page.evaluate(
                "() => { const d = document.querySelector('details.endpoint[open]');"
                " const c = d.querySelector('canvas'); const x = c.getContext('2d');"
                " const px = x.getImageData(0, 0, c.width, c.height).data;"
                " return [d.querySelector('.name').textContent, px.some(v => v !== 0)]; }"
            )
            assert drawn == [HOSTILE, True]
            anchor = page.locator("details.endpoint:not([open])").first.get_attribute("id")
            closed = page.locator(f"details#{anchor}")
            closed.locator("summary").click()
            # the toggle event is queued as a task after the click returns: wait for it, do not race it
            page.wait_for_function(
                "id => document.getElementById(id).getAttribute('data-drawn') === '1'", arg=anchor, timeout=10_000
            )
            assert closed.get_attribute("data-drawn") == "1"  # drawn when opened
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "trend.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [page_path.as_uri()]


@pytest.mark.parametrize("seed", range(40))
def test_segmentation_matches_ruptures_pelt(seed: int) -> None:
    """Our exact optimal partitioning gives the boundaries of the field library's PELT (squared-error cost)."""
    ruptures = pytest.importorskip("ruptures")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 60))
    x = rng.normal(1.0, 0.05, n)
    if seed % 2:
        x[n // 2 :] += 0.2
    if seed % 3 == 0:
        x[rng.integers(0, n)] += 1.0
    min_segment = int(rng.integers(1, 1 + n // 2))
    penalty = float(rng.uniform(0.005, 0.1))
    expected = ruptures.Pelt(model="l2", min_size=min_segment, jump=1).fit(x.reshape(-1, 1)).predict(pen=penalty)
    assert segment(x, min_segment, penalty) == expected[:-1]


def test_hampel_replaces_short_runs_only() -> None:
    x = np.array([1.0, 1, 1, 5, 1, 1, 1, 1, 5, 5, 1, 1, 1, 1, 5, 5, 5, 1, 1, 1, 5])
    out = hampel(x, half_window=2, sigma=0.1)
    assert out.tolist() == [1.0] * 14 + [5.0] * 3 + [1.0] * 4  # single nights and pairs go; a run of 3 stays
    assert hampel(x, half_window=0, sigma=0.1).tolist() == x.tolist()

"""``parity explain`` end to end: the CLI in-process, the real datadog-api-client against the demo's fake Datadog
(parity.demo.apm + apm_traces) on 127.0.0.1, traces posted here with known answers: an N+1 blow-up in postgres on
the new side, an unchanged endpoint, an endpoint without traces, a 403 and a 429 past the wait (no explanation,
exit 0), bad input (exit 2). No sleeping: the 429 reset is longer than the wait the command allows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity import measurement_json
from parity.cli import main
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.apm_traces import SEARCH_PATH, post_traces
from parity.explain.command import (
    FORMAT,
    EndpointExplanation,
    Selector,
    explain_document,
    load_explain_json,
    pick_endpoints,
    selector_from_side,
)
from parity.explain.judge import explain, no_explanation, trace_sample
from parity.explain.spans import Span
from parity.judge.result import ParityResult
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    Measurement,
    Source,
    SourceKind,
    Window,
)
from parity.report.ci import json_value
from parity.report.explain import explanations_beside
from parity.report.terminal import terminal_summary
from parity.report.write import write_reports
from tests.conftest import sketch_of
from tests.test_report import HEALTH as HEALTH_KEY
from tests.test_report import META, _data, mixed_result
from tests.test_report import ORDERS as ORDERS_KEY

T0 = 1_800_000_000  # Unix s
USERS = "GET /users/{id}"
HEALTH = "GET /health"
ORDERS = "GET /orders"


def _trace(n: int, *, resource: str, queries: int, app_ms: float) -> list[dict[str, Any]]:
    """Trace ``n`` of ``resource``: a rack.request root = app code (``app_ms`` + a little per trace) + ``queries``
    sequential postgres queries of 4 ms."""
    start = T0 + 10 + n
    tid = str(7_000_000_000_000_000_000 + n)
    root = f"{n}00"
    jitter = (n % 5) * 0.3  # the per-trace spread the intervals need (ms)
    spans: list[dict[str, Any]] = [
        {"trace_id": tid, "span_id": root, "parent_id": "0", "service": "web", "name": "rack.request",
         "resource": resource, "type": "web", "start_s": start, "duration_ms": app_ms + jitter + 4.0 * queries}
    ]  # fmt: skip
    for q in range(queries):
        spans.append(
            {"trace_id": tid, "span_id": f"{n}1{q:02d}", "parent_id": root, "service": "web-postgres",
             "name": "postgres.query", "resource": "SELECT * FROM users WHERE id = ?", "type": "sql",
             "start_s": start + 0.001 * (app_ms + jitter) / 2 + 0.004 * q, "duration_ms": 4.0}
        )  # fmt: skip
    return spans


def _post(fake: DemoDatadog, env: str, traces: list[list[dict[str, Any]]]) -> None:
    spans = [s for t in traces for s in t]
    assert post_traces(fake.traces_url, env=env, spans=spans) == len(spans)


@pytest.fixture
def fake() -> Iterator[DemoDatadog]:
    with DemoDatadog() as dd:
        # old (ec2): users 3 queries, health 0; new (eks): users 9 queries (N+1), health unchanged
        _post(fake_dd := dd, "ec2", [_trace(n, resource=USERS, queries=3, app_ms=20) for n in range(12)])
        _post(fake_dd, "ec2", [_trace(100 + n, resource=HEALTH, queries=0, app_ms=5) for n in range(12)])
        _post(fake_dd, "eks", [_trace(200 + n, resource=USERS, queries=9, app_ms=20) for n in range(12)])
        _post(fake_dd, "eks", [_trace(300 + n, resource=HEALTH, queries=0, app_ms=5) for n in range(12)])
        yield dd


def _side(env: str) -> dict[str, Any]:
    return {
        "env": env,
        "service": "web",
        "window_start": "2027-01-15T08:00:00Z",  # = T0
        "window_end": "2027-01-15T08:10:00Z",
    }


def _parity(tmp_path: Path, *, bottlenecks: list[str], failed: list[str]) -> Path:
    doc = {
        "format": "parity",
        "version": 1,
        "verdict": "fail",
        "endpoints": [{"endpoint": e, "verdict": "fail"} for e in failed] + [{"endpoint": HEALTH, "verdict": "pass"}],
        "bottlenecks": [{"rank": i + 1, "endpoint": e} for i, e in enumerate(bottlenecks)],
        "baseline": _side("ec2"),
        "candidate": _side("eks"),
        "meta": {"command": "parity compare a.json b.json -o out"},
    }
    path = tmp_path / "parity.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("DD_APP_KEY", DEMO_APP_KEY)


def test_window_of_the_sample_is_the_compared_window() -> None:
    assert selector_from_side(_side("ec2"), which="baseline") == Selector("ec2", "web", T0, T0 + 600)
    side = {**_side("eks"), "window_start": "2027-01-15T08:00:00.7+00:00", "window_end": "2027-01-15T08:09:59.2Z"}
    got = selector_from_side(side, which="candidate", service="web-eks", span=None)
    assert (got.start_s, got.end_s, got.service, got.span) == (T0, T0 + 600, "web-eks", None)
    with pytest.raises(ValueError, match="--new-service"):
        selector_from_side({**side, "service": None}, which="candidate")


def test_pick_endpoints_bottlenecks_first_then_failed_at_most_top() -> None:
    doc = {
        "bottlenecks": [{"rank": 2, "endpoint": "B"}, {"rank": 1, "endpoint": "A"}],
        "endpoints": [{"endpoint": "C", "verdict": "fail"}, {"endpoint": "A", "verdict": "fail"},
                      {"endpoint": "D", "verdict": "inconclusive"}],
    }  # fmt: skip
    assert pick_endpoints(doc) == ["A", "B", "C"]
    assert pick_endpoints(doc, top=1) == ["A"]
    assert pick_endpoints(doc, named=["D", "D"]) == ["D"]
    assert pick_endpoints({"endpoints": []}) == []


def test_explain_names_the_n_plus_one_and_says_unchanged(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS, ORDERS])
    code = main(["explain", str(path), "--dd-url", fake.url, "--endpoints", f"{USERS},{HEALTH}", "--endpoints", ORDERS])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads((tmp_path / "explain.json").read_text())
    assert doc["format"] == FORMAT
    assert doc["old"]["window"] == [T0, T0 + 600]
    by = {e["endpoint"]: e for e in doc["explanations"]}
    assert list(by) == [USERS, HEALTH, ORDERS]
    users = by[USERS]
    assert users["available"] is True
    assert users["named"] == ["postgres"]
    assert users["request"]["diff_ms"] == pytest.approx(24.0)  # 6 more queries of 4 ms
    assert users["sentence"].startswith("+24 ms per request in postgres (3.0× more queries: 3.0 → 9.0 per request)")
    assert "app code unchanged" in users["sentence"]
    assert users["sampling"]["old_traces"] == 12
    assert users["reads"]["old"]["traces"] == 12
    assert "spans_search" in users["reads"]["new"]["rate_limit"]
    health = by[HEALTH]
    assert health["available"] is True
    assert health["named"] == []
    assert "unchanged" in health["sentence"]
    orders = by[ORDERS]
    assert orders["available"] is False
    assert orders["sentence"].startswith("no explanation: old side: traces of 'GET /orders' (web in ec2)")
    assert orders["reads"] == {"old": None, "new": None}
    assert f"  {USERS}: +24 ms per request in postgres" in out.out
    assert f"  {ORDERS}: no explanation: old side:" in out.out
    assert "parity compare a.json b.json -o out" in out.out
    assert load_explain_json(tmp_path / "explain.json")[USERS]["named"] == ["postgres"]


def test_default_is_the_bottlenecks_and_out_dir(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    assert main(["explain", str(path), "--dd-url", fake.url, "-o", str(tmp_path / "x"), "--traces", "6"]) == 0
    doc = json.loads((tmp_path / "x" / "explain.json").read_text())
    assert [e["endpoint"] for e in doc["explanations"]] == [USERS]
    assert doc["explanations"][0]["sampling"]["new_traces"] == 6
    assert "postgres" in capsys.readouterr().out


def test_nothing_regressed_writes_an_empty_explanation(
    keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[], failed=[])
    assert main(["explain", str(path), "--dd-url", "http://127.0.0.1:9"]) == 0  # nothing is read
    assert json.loads((tmp_path / "explain.json").read_text())["explanations"] == []
    assert "nothing to explain" in capsys.readouterr().out


@pytest.mark.parametrize("fault", ["403", "429"])
def test_api_failure_is_no_explanation_and_exit_0(
    fault: str, fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if fault == "403":
        fake.fail(403, None)
    else:
        fake.rate_limit(100, 3600, name="spans_search")  # reset far past the wait the reader allows
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    assert main(["explain", str(path), "--dd-url", fake.url]) == 0
    out = capsys.readouterr().out
    (users,) = json.loads((tmp_path / "explain.json").read_text())["explanations"]
    assert users["available"] is False
    assert users["sentence"].startswith("no explanation: old side:")
    assert ("403" if fault == "403" else "429") in users["sentence"]
    assert f"{USERS}: no explanation:" in out


def test_bad_input_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert main(["explain", str(tmp_path / "bad.json")]) == 2
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    doc = json.loads(path.read_text())
    doc["candidate"]["env"] = None
    path.write_text(json.dumps(doc))
    assert main(["explain", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--new-env" in err
    monkeypatch.delenv("DD_APP_KEY")
    assert main(["explain", str(path), "--new-env", "eks"]) == 2
    err = capsys.readouterr().err
    assert "DD_APP_KEY not set" in err
    assert "Traceback" not in err
    assert not (tmp_path / "explain.json").exists()


# --- the reports: an explain.json beside parity.json -------------------------------------------------------


def _spans(n: int, *, queries: int, env: str) -> list[Span]:
    """Trace ``n``: a root of 20 ms app code + ``queries`` sequential 4 ms postgres queries (ms, epoch)."""
    start = (T0 + n) * 1000.0
    tid, root = f"{env}{n}", f"{n}00"
    app = 20.0 + (n % 5) * 0.3
    out = [Span(tid, root, None, "orders-api", "web", "rack.request", ORDERS_KEY, start, app + 4.0 * queries)]
    out += [
        Span(tid, f"{n}1{q}", root, "orders-postgres", "sql", "postgres.query", "SELECT", start + 1 + 4.0 * q, 4.0)
        for q in range(queries)
    ]
    return out


def _explain_json(out: Path, result: ParityResult, *, shift_s: int = 0) -> None:
    """An explain.json for ``result``'s windows (shifted by ``shift_s``): ORDERS explained (3 → 9 queries), HEALTH
    without an explanation."""
    old = selector_from_side(json_value(result.baseline), which="baseline")
    new = selector_from_side(json_value(result.candidate), which="candidate")
    if shift_s:
        old = Selector(old.env, old.service, old.start_s + shift_s, old.end_s + shift_s)
    old_sample = trace_sample([s for n in range(10) for s in _spans(n, queries=3, env="old")])
    new_sample = trace_sample([s for n in range(10) for s in _spans(n, queries=9, env="new")])
    results = (
        EndpointExplanation(explain(ORDERS_KEY, old_sample, new_sample)),
        EndpointExplanation(no_explanation(HEALTH_KEY, "old side: no indexed span")),
    )
    (out / "explain.json").write_text(json.dumps(explain_document(results, old=old, new=new)))


def test_reports_show_the_explanation_beside_parity_json(tmp_path: Path) -> None:
    result = mixed_result()
    _explain_json(tmp_path, result)
    explanations, note = explanations_beside(tmp_path, result)
    assert note is None
    assert set(explanations) == {ORDERS_KEY, HEALTH_KEY}
    why = explanations[ORDERS_KEY]["sentence"]
    assert why.startswith("+24 ms per request in postgres (3.0× more queries: 3.0 → 9.0 per request)")

    paths = write_reports(result, tmp_path, META, explanations=explanations)
    assert (tmp_path / "explain.json").exists()  # kept beside the new set
    md = paths.summary_md.read_text()
    assert f"- {ORDERS_KEY}: {why}" in md
    assert HEALTH_KEY not in md.split("**Why**")[1].split("\n\n")[1]  # only top regressions get a why line
    terminal = terminal_summary(result, paths.index_html, explanations)
    assert f"       why: {why}" in terminal.splitlines()
    html = paths.index_html.read_text()
    data = _data(html)
    rows = {r["k"]: r for r in data["rows"]}
    ex = rows[ORDERS_KEY]["ex"]
    assert ex["ok"] is True
    assert ex["w"] == why
    assert ex["bar"][0][0] == "postgres"
    assert ex["bar"][0][1:] == [pytest.approx(12.0), pytest.approx(36.0)]
    assert ex["t"] == [["postgres", "slower", "12", "36", ex["t"][0][4], ex["t"][0][5]]]
    assert ex["t"][0][5] == "3.0 → 9.0 (3.0×, 3.0–3.0)"  # every trace 3 → 9: no spread
    assert "From 10 old and 10 new sampled traces" in ex["sm"]
    assert rows[HEALTH_KEY]["ex"] == {"w": "no explanation: old side: no indexed span", "ok": False}
    assert "ex" not in rows["POST /api/orders"]
    assert f"why: {why}" in html  # the bottleneck table


def test_an_explain_json_of_other_windows_is_not_shown(tmp_path: Path) -> None:
    result = mixed_result()
    _explain_json(tmp_path, result, shift_s=60)
    explanations, note = explanations_beside(tmp_path, result)
    assert explanations == {}
    assert note is not None
    assert "other windows" in note
    (tmp_path / "explain.json").write_text("{")
    assert explanations_beside(tmp_path, result)[0] == {}
    assert "not JSON" in (explanations_beside(tmp_path, result)[1] or "")
    assert explanations_beside(tmp_path / "none", result) == ({}, None)


def test_without_explanations_the_reports_are_unchanged(tmp_path: Path) -> None:
    result = mixed_result()
    plain = write_reports(result, tmp_path / "a", META)
    write_reports(result, tmp_path / "b", META, explanations={})
    for name in ("index.html", "parity.json", "junit.xml", "summary.md"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    assert terminal_summary(result, plain.index_html) == terminal_summary(result, plain.index_html, {})
    assert "why" not in plain.summary_md.read_text().lower()


def test_explained_report_in_a_browser(tmp_path: Path) -> None:
    """The endpoint detail draws the stacked bar and the changed components without a console error."""
    from playwright.sync_api import Error, sync_playwright

    result = mixed_result()
    _explain_json(tmp_path, result)
    explanations, _ = explanations_beside(tmp_path, result)
    page_path = write_reports(result, tmp_path, META, explanations=explanations).index_html
    chromium = os.environ.get("PARITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
        except Error as exc:
            pytest.skip(f"chromium ({chromium}) cannot start: {str(exc).splitlines()[0]}")
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(page_path.as_uri())
            page.locator("#endpoints button.open", has_text=ORDERS_KEY).click()
            page.wait_for_selector("tr.detail canvas")
            detail = page.inner_text("tr.detail")
            assert "Why: +24 ms per request in postgres" in detail
            assert "Changed component" in detail
            assert page.locator("tr.detail .chart", has_text="Time per request by component").count() == 1
            assert problems == []
        finally:
            browser.close()


# --- compare --explain ---------------------------------------------------------------------------------------


def _apm_side(env: str, medians: dict[str, float], seed: int) -> Measurement:
    """A server-side Measurement of web in ``env`` over the traces' window; GET /users/{id} recorded from the
    Rails resource UsersController#show."""
    rng = np.random.default_rng(seed)
    endpoints = tuple(
        EndpointStats(
            Endpoint.parse(key),
            2000,
            0,
            LatencyDistribution(sketch_of(rng.lognormal(np.log(median), 0.3, 2000))),
            resource=RAILS if key == USERS else None,
        )
        for key, median in medians.items()
    )
    start = datetime.fromtimestamp(T0, UTC)
    return Measurement(
        Source(SourceKind.DATADOG, "apm", service="web", env=env),
        Window(start, start + timedelta(seconds=600)),
        endpoints,
        latency_kind=LatencyKind.SERVER,
    )


RAILS = "UsersController#show"


def test_compare_explain_writes_explain_json_and_keeps_the_verdict(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the Rails resource's traces: 2 → 6 queries (the key's own traces, 3 → 9, must not be the ones read)
    _post(fake, "ec2", [_trace(400 + n, resource=RAILS, queries=2, app_ms=20) for n in range(8)])
    _post(fake, "eks", [_trace(500 + n, resource=RAILS, queries=6, app_ms=20) for n in range(8)])
    base, cand = tmp_path / "old.json", tmp_path / "new.json"
    measurement_json.write(_apm_side("ec2", {USERS: 50.0, HEALTH: 5.0}, 1), base)
    measurement_json.write(_apm_side("eks", {USERS: 80.0, HEALTH: 5.0}, 2), cand)
    out = tmp_path / "report"
    code = main(["compare", str(base), str(cand), "-o", str(out), "--explain", "--dd-url", fake.url])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # the verdict's exit code
    (users,) = json.loads((out / "explain.json").read_text())["explanations"]
    assert users["endpoint"] == USERS
    assert users["sentence"].startswith("+16 ms per request in postgres (3.0× more queries: 2.0 → 6.0 per request)")
    assert users["reads"]["old"]["query"].endswith(f'resource_name:"{RAILS}"')
    assert f"       why: {users['sentence']}" in captured.out.splitlines()
    assert f"- {USERS}: {users['sentence']}" in (out / "summary.md").read_text()
    assert json.loads((out / "parity.json").read_text())["verdict"] == "fail"

    # a re-run without --explain keeps showing it (same windows)
    assert main(["compare", str(base), str(cand), "-o", str(out)]) == 1
    assert "why: +16 ms" in capsys.readouterr().out
    # parity explain on that parity.json finds the recorded resource in the Measurement files it names
    (out / "explain.json").unlink()
    assert main(["explain", str(out / "parity.json"), "--dd-url", fake.url]) == 0
    printed = capsys.readouterr().out
    assert f"  {USERS}: +16 ms per request in postgres" in printed
    assert "  Datadog span search: spans_search: " in printed
    assert json.loads((out / "explain.json").read_text())["explanations"][0]["sentence"] == users["sentence"]


def test_compare_explain_without_keys_or_apm_sides_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = tmp_path / "old.json", tmp_path / "new.json"
    measurement_json.write(_apm_side("ec2", {USERS: 50.0}, 1), base)
    measurement_json.write(_apm_side("eks", {USERS: 80.0}, 2), cand)
    monkeypatch.delenv("DD_API_KEY", raising=False)
    assert main(["compare", str(base), str(cand), "-o", str(tmp_path / "a"), "--explain"]) == 1
    err = capsys.readouterr().err
    assert "parity: no explanation: DD_API_KEY" in err
    assert not (tmp_path / "a" / "explain.json").exists()
    monkeypatch.setenv("DD_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("DD_APP_KEY", DEMO_APP_KEY)
    side = _apm_side("eks", {USERS: 80.0}, 2)
    measurement_json.write(replace(side, source=replace(side.source, env=None)), cand)
    assert main(["compare", str(base), str(cand), "-o", str(tmp_path / "b"), "--explain"]) == 1
    err = capsys.readouterr().err
    assert f"parity: no explanation: the candidate ({cand}) names no APM env and service" in err
    assert "Traceback" not in err


def test_an_endpoint_not_in_parity_json_is_bad_input_and_nothing_is_read(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    # a typo would cost span searches (300 per hour for the whole org) for a "no indexed span" line
    assert main(["explain", str(path), "--dd-url", fake.url, "--endpoints", f"{USERS},GET /user/{{id}}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'GET /user/{id}' is not an endpoint of" in err
    assert fake.recorded() == []
    assert not (tmp_path / "explain.json").exists()


def test_the_rate_limit_printed_is_the_last_one_seen(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    assert main(["explain", str(path), "--dd-url", fake.url, "--endpoints", f"{USERS},{HEALTH}"]) == 0
    searches = len(fake.recorded(SEARCH_PATH))
    assert searches >= 6  # two reads per side and endpoint: the first read's count is stale by the last
    assert f"  Datadog span search: spans_search: {300 - searches} of 300 requests left" in capsys.readouterr().out


def test_the_rewrite_hint_is_a_compare_that_shows_this_file(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    doc = json.loads(path.read_text())
    doc["meta"]["command"] = "parity compare a.json b.json -o out --explain --dd-url http://127.0.0.1:9"
    path.write_text(json.dumps(doc))
    assert main(["explain", str(path), "--dd-url", fake.url, "--traces", "6"]) == 0
    # re-run with --explain it would read traces again and overwrite this explain.json with compare's defaults
    assert "  the report shows it when rewritten beside it: parity compare a.json b.json -o out --dd-url" in (
        capsys.readouterr().out
    )
    # written elsewhere (-o), a compare rewriting the report beside parity.json would not show it
    assert main(["explain", str(path), "--dd-url", fake.url, "--traces", "6", "-o", str(tmp_path / "x")]) == 0
    assert "rewritten beside it" not in capsys.readouterr().out


def test_compare_explain_read_failure_is_the_endpoints_why_line(
    fake: DemoDatadog, keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail(403, None)
    base, cand = tmp_path / "old.json", tmp_path / "new.json"
    measurement_json.write(_apm_side("ec2", {USERS: 50.0}, 1), base)
    measurement_json.write(_apm_side("eks", {USERS: 80.0}, 2), cand)
    assert main(["compare", str(base), str(cand), "-o", str(tmp_path / "r"), "--explain", "--dd-url", fake.url]) == 1
    captured = capsys.readouterr()
    assert "parity: no explanation" not in captured.err  # the README said a failed read was this stderr line
    assert "       why: no explanation: old side: Datadog refused the application key (HTTP 403)" in captured.out


def test_measurement_files_not_found_from_here_are_said(
    fake: DemoDatadog, keys: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _parity(tmp_path, bottlenecks=[USERS], failed=[USERS])
    doc = json.loads(path.read_text())
    doc["baseline"]["name"], doc["candidate"]["name"] = "old.json", "new.json"  # as compare ran in another directory
    path.write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path)
    assert main(["explain", str(path), "--dd-url", fake.url, "--traces", "6"]) == 0
    err = capsys.readouterr().err
    # the endpoint's key is searched as its APM resource instead of the one recorded (UsersController#show): say so
    assert "parity: note: old.json: not found from here" in err


def test_ctrl_c_while_compare_explain_reads_keeps_the_report(fake: DemoDatadog, tmp_path: Path) -> None:
    fake.rate_limit(1, 50, name="spans_search")  # the read waits 50 s: the user presses Ctrl-C meanwhile
    base, cand = tmp_path / "old.json", tmp_path / "new.json"
    measurement_json.write(_apm_side("ec2", {USERS: 50.0}, 1), base)
    measurement_json.write(_apm_side("eks", {USERS: 80.0}, 2), cand)
    out = tmp_path / "r"
    env = os.environ | {"DD_API_KEY": DEMO_API_KEY, "DD_APP_KEY": DEMO_APP_KEY}
    argv = [sys.executable, "-m", "parity.cli", "compare", str(base), str(cand), "-o", str(out), "--explain"]
    child = subprocess.Popen([*argv, "--dd-url", fake.url], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr is not None
        seen = []
        while "rate limit: waiting" not in (line := child.stderr.readline()) and line:
            seen.append(line)
        assert line, seen
        child.send_signal(signal.SIGINT)
        err = child.stderr.read()
        assert child.wait(timeout=60) == 130, err
    finally:
        child.kill()
        child.wait()
    assert "Traceback" not in err
    assert "parity: no explanation: interrupted" in err
    # the verdict judged before the read is not lost: its reports are written, unexplained
    assert json.loads((out / "parity.json").read_text())["verdict"] == "fail"
    assert (out / "index.html").is_file()
    assert not (out / "explain.json").exists()


def test_a_dd_url_with_credentials_is_refused_and_never_written(
    keys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = tmp_path / "old.json", tmp_path / "new.json"
    measurement_json.write(_apm_side("ec2", {USERS: 50.0}, 1), base)
    measurement_json.write(_apm_side("eks", {USERS: 80.0}, 2), cand)
    out = tmp_path / "report"
    url = "http://user:s3cret@127.0.0.1:9"
    assert main(["compare", str(base), str(cand), "-o", str(out), "--explain", "--dd-url", url]) == 1  # the verdict
    captured = capsys.readouterr()
    assert "parity: no explanation: Datadog URL: credentials" in captured.err
    assert "s3cret" not in captured.out + captured.err
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written
    assert not [p.name for p in written if "s3cret" in p.read_text("utf-8", errors="replace")]
    assert "http://***@127.0.0.1:9" in (out / "parity.json").read_text()  # the command line, its credential masked

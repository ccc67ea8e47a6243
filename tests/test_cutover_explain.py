"""A STOPPED cutover explained (``parity.cutover.explain`` and ``run_cutover(explain=)``): the endpoints and windows
of the STOP (known answers), the order (after the rollback and its end are journaled), every report's why line,
failures that change nothing, and one read of both sides' traces from the fake Datadog through the real Spans
client. The driver runs with the fake clock, APM and shifter of tests/test_cutover_run.py (no real time)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from parity.cutover.explain import explain_stop, explainer, resources_for, stop_windows, stopping_endpoints
from parity.cutover.journal import read_journal
from parity.cutover.model import (
    ApmSelector,
    CheckRecord,
    CutoverRun,
    Outcome,
    StepRecord,
    StopExplanation,
    StopWhy,
)
from parity.cutover.report import cutover_event, summary_lines
from parity.cutover.run import RESUME_FREE_KEYS, cutover_exit_code, run_from_journal
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.apm_traces import SPANS_RATE_PERIOD_S, post_traces
from parity.demo.cutover import rails_routes_text
from parity.errors import Interrupted
from parity.explain.command import DatadogAccess
from parity.judge.sequential import Action, Finding, GuardrailBreach, MetricDecision, SplitCheck, StepDecision
from tests.conftest import ROOT
from tests.test_cutover_run import Rig, make_settings

T0 = 1_800_000_000  # Unix s
USERS = "GET /users/{id}"
HEALTH = "GET /health"
SENTENCE = "+25 ms per request in queue (new: 1.0 waits per request); app code unchanged"


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def _metric(endpoint: str, metric: str, finding: Finding) -> MetricDecision:
    return MetricDecision(endpoint, metric, finding, 1.5, 1.3, 1.8, 1.2, 6, f"{endpoint} {metric}")


def _decision(
    metrics: tuple[MetricDecision, ...], guardrails: tuple[GuardrailBreach, ...] = (), weight: float = 50.0
) -> StepDecision:
    return StepDecision(
        Action.STOP, 1, weight, 6, ("stop",), metrics, guardrails, SplitCheck(weight, weight, 900, True)
    )


def _run(steps: tuple[StepRecord, ...], *, outcome: Outcome = Outcome.STOPPED) -> CutoverRun:
    return CutoverRun(
        outcome=outcome,
        final_weight_pct=0.0,
        started_s=float(T0),
        ended_s=float(T0 + 500),
        old=ApmSelector("web", "ec2"),
        new=ApmSelector("web", "eks"),
        endpoints=(USERS, HEALTH),
        steps=steps,
        reasons=("stop",),
    )


def _step(index: int, weight: float, start_s: int, checks: int, decision: StepDecision | None = None) -> StepRecord:
    records = tuple(
        CheckRecord(k, index, start_s + 10 * k, start_s + 10 * (k + 1), None, decision if k == checks - 1 else None)
        for k in range(checks)
    )
    action = Action.STOP if decision is not None else Action.GO
    return StepRecord(index, weight, start_s - 5, start_s + 10 * checks + 5, action, records)


# --- known answers --------------------------------------------------------------------------------------


def test_the_stopping_endpoints_are_the_breaches_then_the_worse_metrics_in_order() -> None:
    decision = _decision(
        (
            _metric("GET /b", "avg_ms", Finding.WITHIN),
            _metric("GET /a", "avg_ms", Finding.WORSE),
            _metric("GET /c", "p95_ms", Finding.OPEN),
            _metric("GET /a", "error_rate", Finding.WORSE),
            _metric("GET /d", "avg_ms", Finding.WORSE),
        ),
        (GuardrailBreach("GET /d", "error_rate", 0.3, 0.05, "breach"),),
    )
    assert stopping_endpoints(decision) == [
        ("GET /d", ("guardrail:error_rate", "avg_ms")),
        ("GET /a", ("avg_ms", "error_rate")),
    ]
    assert stopping_endpoints(decision, limit=1) == [("GET /d", ("guardrail:error_rate", "avg_ms"))]


def test_the_windows_are_the_stopped_steps_checks_and_the_previous_steps_for_the_old_side_at_100() -> None:
    stop = _decision((_metric(USERS, "avg_ms", Finding.WORSE),))
    at_50 = _step(1, 50.0, T0 + 200, 3, stop)
    run = _run((_step(0, 10.0, T0 + 100, 4), at_50))
    assert stop_windows(run, at_50) == ((T0 + 200, T0 + 230), (T0 + 200, T0 + 230))
    at_100 = _step(2, 100.0, T0 + 300, 2, stop)
    run = _run((_step(0, 10.0, T0 + 100, 4), _step(1, 50.0, T0 + 200, 3), at_100))
    assert stop_windows(run, at_100) == ((T0 + 200, T0 + 230), (T0 + 300, T0 + 320))
    alone = _step(0, 100.0, T0 + 300, 2, stop)
    assert "no earlier step" in str(stop_windows(_run((alone,)), alone))
    assert stop_windows(_run((_step(0, 50.0, T0, 0),)), _step(0, 50.0, T0, 0)) == "the stopped step has no checks"


def test_resources_come_from_the_route_map_and_the_key_is_kept_without_one(tmp_path: Path) -> None:
    routes = tmp_path / "routes.txt"
    routes.write_text(rails_routes_text(), encoding="utf-8")
    got = resources_for(["GET /api/employees/{id}", "GET /nowhere"], routes)
    assert got == {"GET /api/employees/{id}": ("EmployeesController#show", "EmployeesController#show")}
    assert resources_for(["GET /api/employees/{id}"], None) == {}
    assert resources_for(["GET /api/employees/{id}"], tmp_path / "missing.txt") == {}


def test_explain_is_a_setting_free_to_change_on_resume(tmp_path: Path) -> None:
    assert make_settings(tmp_path).explain is True
    assert make_settings(tmp_path, explain=False).explain is False
    with pytest.raises(ValueError, match=r"cutover\.explain: expected true or false"):
        make_settings(tmp_path, explain="yes")
    assert "explain" in RESUME_FREE_KEYS


# --- in the driver -------------------------------------------------------------------------------------


def _stopping(rig: Rig) -> None:
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0


def test_a_stop_is_explained_after_its_rollback_and_end_and_every_report_shows_why(rig: Rig) -> None:
    _stopping(rig)
    seen: dict[str, Any] = {}

    def explain(run: CutoverRun, out: Path) -> StopExplanation:
        seen["kinds"] = [r["kind"] for r in read_journal(out / "journal.jsonl")]
        seen["weight"] = rig.shifter.weight
        step = run.steps[-1]
        decision = step.checks[-1].decision
        assert decision is not None
        seen["targets"] = stopping_endpoints(decision)
        seen["windows"] = stop_windows(run, step)
        return StopExplanation((StopWhy("GET /a", ("avg_ms",), SENTENCE),), "explain.json")

    run = rig.run(explain=explain)
    assert run.outcome is Outcome.STOPPED
    assert cutover_exit_code(run) == 1
    assert seen["kinds"][-3:] == ["rollback", "rollback", "end"]  # the rollback was applied and journaled first
    assert seen["weight"] == 0.0
    assert seen["targets"] == [("GET /a", ("avg_ms",))]
    step = run.steps[-1]
    window = (step.checks[0].start_s, step.checks[-1].end_s)
    assert seen["windows"] == (window, window)
    assert rig.records()[-1]["kind"] == "explain"  # journaled: the run rebuilt from the journal carries it
    assert run.explanation == run_from_journal(read_journal(rig.journal)).explanation
    assert run.explanation is not None
    assert run.explanation.why[0].sentence == SENTENCE
    assert f"why GET /a: {SENTENCE}" in rig.lines
    assert f"  why: GET /a (avg_ms): {SENTENCE}" in summary_lines(run)
    assert f"Why: GET /a (avg_ms): {SENTENCE}" in cutover_event(run).text
    assert rig.events[0].explanation == run.explanation  # the event sent was the explained run
    out = rig.tmp_path / "cut"
    written = json.loads((out / "cutover.json").read_text())
    schema = json.loads((ROOT / "parity" / "schemas" / "cutover.schema.json").read_text())
    jsonschema.validate(written, schema)
    assert written["explanation"] == {
        "file": "explain.json",
        "skipped": None,
        "endpoints": [{"endpoint": "GET /a", "metrics": ["avg_ms"], "sentence": SENTENCE}],
    }
    assert "Why it is slower" in (out / "summary.md").read_text()
    assert "in queue (new: 1.0 waits per request)" in (out / "summary.md").read_text()
    page = (out / "index.html").read_text()
    assert 'id="why"' in page
    assert "+25 ms per request in queue" in page


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        (RuntimeError("the Spans API broke\nsecond line"), "the Spans API broke"),
        (Interrupted(15, "SIGTERM"), "interrupted by SIGTERM while reading traces"),
    ],
)
def test_a_failing_explanation_is_one_line_and_changes_nothing(rig: Rig, fault: Exception, line: str) -> None:
    _stopping(rig)

    def explain(_run: CutoverRun, _out: Path) -> StopExplanation:
        raise fault

    run = rig.run(explain=explain)
    assert run.outcome is Outcome.STOPPED
    assert cutover_exit_code(run) == 1
    assert run.rollback is not None
    assert run.rollback.applied
    assert run.explanation == StopExplanation(skipped=line)
    assert f"no explanation: {line}" in rig.lines
    assert f"  why: no explanation: {line}" in summary_lines(run)
    written = json.loads((rig.tmp_path / "cut" / "cutover.json").read_text())
    assert written["outcome"] == "stopped"
    assert written["explanation"]["skipped"] == line


def test_only_a_stop_is_explained_and_explain_false_turns_it_off(rig: Rig, tmp_path: Path) -> None:
    calls: list[CutoverRun] = []

    def explain(run: CutoverRun, _out: Path) -> StopExplanation:
        calls.append(run)
        return StopExplanation(skipped="not expected")

    run = rig.run(explain=explain)
    assert run.outcome is Outcome.COMPLETED
    assert calls == []
    assert run.explanation is None
    assert json.loads((tmp_path / "cut" / "cutover.json").read_text())["explanation"] is None
    other = Rig(tmp_path / "off")
    _stopping(other)
    run = other.run(make_settings(other.tmp_path, explain=False), explain=explain)
    assert run.outcome is Outcome.STOPPED
    assert calls == []
    assert not other.records("explain")
    assert not [line for line in summary_lines(run) if "why" in line]


# --- from the fake Datadog ---------------------------------------------------------------------------------


def _trace(n: int, *, resource: str, wait_ms: float) -> list[dict[str, Any]]:
    """Trace ``n`` of ``resource``: a rack.request root, a queue wait of ``wait_ms`` (none when 0), then 8 ms of
    app code and a 4-ms query."""
    start = T0 + 10 + n * 0.5
    tid, root = str(8_000_000_000_000 + n), f"{n}00"
    jitter = (n % 5) * 0.3
    spans: list[dict[str, Any]] = [
        {"trace_id": tid, "span_id": root, "parent_id": "0", "service": "web", "name": "rack.request",
         "resource": resource, "type": "web", "start_s": start, "duration_ms": wait_ms + 12.0 + jitter}
    ]  # fmt: skip
    if wait_ms > 0:
        spans.append(
            {"trace_id": tid, "span_id": f"{n}01", "parent_id": root, "service": "web", "name": "connection_pool.wait",
             "resource": "primary", "type": "queue", "start_s": start, "duration_ms": wait_ms}
        )  # fmt: skip
    spans.append(
        {"trace_id": tid, "span_id": f"{n}02", "parent_id": root, "service": "web", "name": "postgres.query",
         "resource": "SELECT 1", "type": "sql", "start_s": start + (wait_ms + 8.0 + jitter) / 1000, "duration_ms": 4.0}
    )  # fmt: skip
    return spans


@pytest.fixture
def fake() -> Iterator[DemoDatadog]:
    with DemoDatadog() as dd:
        for env, wait in (("ec2", 0.0), ("eks", 25.0)):
            spans = [s for n in range(12) for s in _trace(n, resource=USERS, wait_ms=wait + (n % 3) if wait else 0.0)]
            assert post_traces(dd.traces_url, env=env, spans=spans) == len(spans)
        yield dd


def test_a_stop_is_explained_from_both_sides_traces_through_the_spans_api(fake: DemoDatadog, tmp_path: Path) -> None:
    decision = _decision((_metric(USERS, "avg_ms", Finding.WORSE), _metric(HEALTH, "avg_ms", Finding.WORSE)))
    run = _run((_step(0, 50.0, T0, 3, decision),))  # checks over [T0, T0 + 30): the traces start at T0 + 10…15.5
    access = DatadogAccess(DEMO_API_KEY, DEMO_APP_KEY, dd_url=fake.url)
    lines: list[str] = []
    got = explainer(access, progress=lines.append)(run, tmp_path)
    assert got.skipped is None
    assert got.file == "explain.json"
    users, health = got.why
    assert (users.endpoint, users.metrics) == (USERS, ("avg_ms",))
    assert users.sentence.startswith("+"), users.sentence
    assert " in queue (new: 1.0 waits per request)" in users.sentence.split(";")[0], users.sentence
    assert health.sentence.startswith("no explanation: old side:"), health.sentence  # no traces: never made up
    document = json.loads((tmp_path / "explain.json").read_text())
    stopped_by = {USERS: ["avg_ms"], HEALTH: ["avg_ms"]}
    assert document["cutover"] == {"started": T0, "step": 0, "weight": 50.0, "stopped_by": stopped_by}
    assert document["old"]["env"] == "ec2"
    assert document["new"]["window"] == [T0, T0 + 30]
    first = document["explanations"][0]
    assert first["named"] == ["queue"]
    assert first["reads"]["old"]["traces"] == first["reads"]["new"]["traces"] == 12
    assert any("reading new traces" in line for line in lines)


def test_without_access_or_a_stop_nothing_is_read(tmp_path: Path) -> None:
    decision = _decision((_metric(USERS, "avg_ms", Finding.WORSE),))
    run = _run((_step(0, 50.0, T0, 3, decision),))
    reason = "DD_API_KEY not set (--explain reads traces from Datadog)"
    assert explainer(reason)(run, tmp_path) == StopExplanation(skipped=reason)
    bad = explainer(DatadogAccess("k", "a", dd_url="not a url"))(run, tmp_path)
    assert bad.skipped is not None
    assert not bad.why
    held = _run((_step(0, 50.0, T0, 3),), outcome=Outcome.HELD)
    assert "only a stop is explained" in str(explain_stop(held, _NoReader(), tmp_path).skipped)
    by_person = _run((_step(0, 50.0, T0, 3),))
    assert "rolled back by a person" in str(explain_stop(by_person, _NoReader(), tmp_path).skipped)
    assert not (tmp_path / "explain.json").exists()


class _NoReader:
    def sample_traces(self, *_args: Any, **_kw: Any) -> Any:
        raise AssertionError("nothing is read")


def test_the_command_takes_no_explain_and_the_table_takes_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from parity.cli import main

    config = tmp_path / "parity.toml"
    table = '[cutover]\nexplain = false\n[cutover.old]\nservice = "web"\nenv = "ec2"\n[cutover.new]\nservice = "web"\n'
    config.write_text(table + 'env = "eks"\n[cutover.shifter]\nkind = "manual"\n', encoding="utf-8")
    assert main(["cutover", "--dry-run", "--no-explain", "--config", str(config)]) == 0
    assert "dry run: nothing was sent" in capsys.readouterr().out
    config.write_text(table.replace("false", '"no"') + 'env = "eks"\n[cutover.shifter]\nkind = "manual"\n')
    assert main(["cutover", "--dry-run", "--config", str(config)]) == 2
    assert "cutover.explain: expected true or false" in capsys.readouterr().err


def test_a_key_that_is_the_gates_normalised_resource_tag_is_not_searched_as_a_span_resource(tmp_path: Path) -> None:
    """Without a route map (or one that lacks the resource) the gate's endpoint key is the ``resource_name`` TAG
    value of trace metrics, ``userscontroller_show``; spans keep the raw name ``UsersController#show``, so a span
    search by the tag spelling finds nothing and read as 'no traffic, not indexed...'. No request is spent on it and
    the reason says what to do."""
    tag = "userscontroller_show"
    run = _run((_step(0, 50.0, T0, 3, _decision((_metric(tag, "avg_ms", Finding.WORSE),))),))
    got = explain_stop(run, _NoReader(), tmp_path)  # _NoReader: any read fails the test
    assert got.skipped is None
    (why,) = got.why
    assert why.endpoint == tag
    assert why.sentence.startswith("no explanation: "), why.sentence
    assert "routes" in why.sentence
    assert "no traffic" not in why.sentence
    document = json.loads((tmp_path / "explain.json").read_text())
    assert document["explanations"][0]["available"] is False


def test_the_stops_reports_are_written_before_the_explanation_reads_anything(rig: Rig) -> None:
    """Reading traces takes minutes at worst (rate-limit waits, time-outs): a driver killed meanwhile (SIGKILL, a
    closed terminal's SIGHUP, a CI time-out) must leave the STOP's reports, not only its journal (an ended journal
    cannot be resumed to write them)."""
    _stopping(rig)
    seen: dict[str, Any] = {}

    def explain(_run: CutoverRun, out: Path) -> StopExplanation:
        seen["files"] = sorted(p.name for p in out.iterdir())
        seen["cutover"] = json.loads((out / "cutover.json").read_text()) if (out / "cutover.json").exists() else None
        return StopExplanation((StopWhy("GET /a", ("avg_ms",), SENTENCE),), "explain.json")

    run = rig.run(explain=explain)
    assert run.outcome is Outcome.STOPPED
    assert {"cutover.json", "index.html", "summary.md"} <= set(seen["files"]), seen["files"]
    assert seen["cutover"]["outcome"] == "stopped"
    assert seen["cutover"]["explanation"] is None  # not explained yet: said so, nothing made up
    written = json.loads((rig.tmp_path / "cut" / "cutover.json").read_text())
    assert written["explanation"]["endpoints"][0]["sentence"] == SENTENCE  # then rewritten with the why
    assert len(rig.events) == 1


def test_at_a_100_percent_stop_the_reports_say_the_old_side_was_read_over_the_previous_step() -> None:
    """At 100 % the old side served nothing: its traces were read over the previous checked step (stop_windows);
    the reports must not say both sides were read over the 100 % step."""
    from dataclasses import replace

    from parity.cutover.report import render_cutover_html, summary_md

    stop = _decision((), (GuardrailBreach(USERS, "p99_ms", 900.0, 500.0, "breach"),), weight=100.0)
    run = _run((_step(0, 10.0, T0 + 100, 4), _step(1, 50.0, T0 + 200, 3), _step(2, 100.0, T0 + 300, 2, stop)))
    run = replace(run, explanation=StopExplanation((StopWhy(USERS, ("guardrail:p99_ms",), SENTENCE),), "explain.json"))
    md = summary_md(run)
    line = next(x for x in md.splitlines() if x.startswith("Why it is slower"))
    assert "step 3 (100%)" in line
    assert "old side over step 2 (50%)" in line, line
    assert "old side over step 2 (50%)" in render_cutover_html(run)
    at_50 = _run((_step(0, 10.0, T0 + 100, 4), _step(1, 50.0, T0 + 200, 3, _decision((), weight=50.0))))
    at_50 = replace(at_50, explanation=run.explanation)
    assert "old side over" not in summary_md(at_50)


def test_a_stops_reads_never_wait_out_a_rate_limit(fake: DemoDatadog, tmp_path: Path) -> None:
    """The STOP's Datadog event waits for the explanation: a 429 whose reset a read would otherwise wait out (60 s
    here, the default policy's longest wait) is that endpoint's "no explanation", at once."""
    fake.traces.limit = 0
    fake.traces._period_start = time.time() - SPANS_RATE_PERIOD_S + 60  # the reset is 60 s away
    decision = _decision((_metric(USERS, "avg_ms", Finding.WORSE),))
    run = _run((_step(0, 50.0, T0, 3, decision),))
    started = time.monotonic()
    got = explainer(DatadogAccess(DEMO_API_KEY, DEMO_APP_KEY, dd_url=fake.url))(run, tmp_path)
    assert time.monotonic() - started < 45  # a wait would take 60 s; generous for a loaded machine
    (users,) = got.why
    assert users.sentence.startswith("no explanation: old side:"), users.sentence
    assert "429" in users.sentence, users.sentence

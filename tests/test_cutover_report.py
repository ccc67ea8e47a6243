"""The cutover's reports (``parity.cutover.report``) on realistic runs: ``tests/cutover_runs.py`` drives the real
decision core (``parity.judge.sequential``) with seeded synthetic APM intervals of both environments and the
driver's rules — completed, stopped by a latency regression and by a guardrail, held at the maximum hold, on a
split that does not match, on missing APM data, aborted, a failed rollback, and hostile endpoint names.

Checked: each run is what its scenario says (so the report tests read the right thing); ``cutover.json``
validates against ``parity/schemas/cutover.schema.json`` and carries the outcome, final weight, the step and
why; golden files of summary.md (every scenario) and cutover.json (two); what the page shows at a glance;
names as inert text everywhere; the Datadog event's limits and types; the atomic writes; the page in headless
Chromium with no console error and no request.

Regenerate the golden files after an intended output change (or a change of the decision core's figures) with::

    PARITY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_cutover_report.py
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from parity.cutover.model import CutoverRun, Outcome, Rollback
from parity.cutover.report import (
    CUTOVER_FILES,
    MAX_CHARTED_ENDPOINTS,
    MAX_SUMMARY_ENDPOINTS,
    cutover_event,
    cutover_json,
    headline,
    render_cutover_html,
    summary_lines,
    summary_md,
    write_cutover_reports,
)
from parity.datadog import MAX_EVENT_TEXT, MAX_EVENT_TITLE
from parity.judge.sequential import Action
from tests.cutover_runs import HOSTILE, SCENARIOS, simulate

GOLDEN = Path(__file__).parent / "fixtures" / "cutover"
UPDATE_GOLDEN = os.environ.get("PARITY_UPDATE_GOLDEN") == "1"
SCHEMA = Path(__file__).resolve().parent.parent / "parity" / "schemas" / "cutover.schema.json"
#: cutover.json golden files compare floats to this many significant digits (the last bits of a float may
#: differ between numpy builds; the figures shown never do).
DIGITS = 9


@pytest.fixture(scope="module")
def runs() -> dict[str, CutoverRun]:
    return {name: simulate(s) for name, s in SCENARIOS.items()}


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"missing golden file {path}; create it with PARITY_UPDATE_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from {path}; if intended, regenerate with PARITY_UPDATE_GOLDEN=1"


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


# --- the runs are what they say ----------------------------------------------------------------------------


def test_scenarios_end_as_designed(runs: dict[str, CutoverRun]) -> None:
    completed = runs["completed"]
    assert completed.outcome is Outcome.COMPLETED
    assert completed.final_weight_pct == 100.0
    assert [s.weight_pct for s in completed.steps] == [1.0, 5.0, 10.0, 50.0, 100.0]
    latency = runs["stopped_latency"]
    assert latency.outcome is Outcome.STOPPED
    assert not latency.guardrail
    assert latency.steps[-1].weight_pct == 10.0  # the regression shows from 10 % on, and is caught there
    assert latency.rollback == Rollback(0.0, True)
    assert latency.final_weight_pct == 0.0
    assert any("GET /api/orders/{id} avg_ms" in r for r in latency.reasons)
    guard = runs["stopped_guardrail"]
    assert guard.outcome is Outcome.STOPPED
    assert guard.guardrail
    assert len(guard.steps[-1].checks) == 1  # a guardrail stops at once
    held = runs["held_max_hold"]
    assert held.outcome is Outcome.HELD
    assert held.reasons[0] == "maximum hold passed undecided"
    assert held.steps[-1].action is Action.HOLD
    assert held.final_weight_pct == 50.0
    assert held.steps[-1].weight_pct == 50.0  # at the tolerance's edge from 50 %: decidable, never decided
    missing = runs["held_missing"]
    gaps = [c for c in missing.steps[-1].checks if c.missing]
    assert missing.outcome is Outcome.HELD
    assert len(gaps) == 3
    assert all(c.check is None and c.decision is None for c in gaps)  # no decision on missing data
    split = runs["held_split"]
    last = split.steps[-1].last_decision
    assert split.outcome is Outcome.HELD
    assert last is not None
    assert last.split.matches is False
    aborted = runs["aborted"]
    assert aborted.outcome is Outcome.ABORTED
    assert aborted.steps[-1].action is None
    assert aborted.steps[-1].ended_s is None
    failed = runs["rollback_failed"]
    assert failed.rollback is not None
    assert not failed.rollback.applied
    assert failed.final_weight_pct == 10.0


# --- cutover.json --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_cutover_json_validates_and_says_what_happened(runs: dict[str, CutoverRun], name: str) -> None:
    run = runs[name]
    data = cutover_json(run)
    text = json.dumps(data, allow_nan=False)  # no NaN or infinity
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(text))
    assert data["outcome"] == run.outcome.value
    assert data["final_weight"] == run.final_weight_pct
    assert data["at_weight"] == run.steps[-1].weight_pct
    assert [s["weight"] for s in data["steps"]] == [s.weight_pct for s in run.steps]
    assert [s["decision"] for s in data["steps"]] == [s.action.value if s.action else None for s in run.steps]
    for step, record in zip(data["steps"], run.steps, strict=True):
        assert step["started"] == record.started_s
        assert step["ended"] == record.ended_s
        if record.last_decision is not None:  # every judged endpoint, each with a decision
            assert {e["endpoint"] for e in step["endpoints"]} == set(run.endpoints)


def test_cutover_json_schema_rejects_what_it_must() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    good = cutover_json(simulate(SCENARIOS["held_max_hold"]))
    assert validator.is_valid(good)
    for broken in (
        {**good, "outcome": "passed"},
        {**good, "final_weight": 120.0},
        {k: v for k, v in good.items() if k != "steps"},
        {**good, "steps": [{**good["steps"][0], "decision": "maybe"}]},
    ):
        assert not validator.is_valid(broken)


@pytest.mark.parametrize("name", ["stopped_latency", "held_missing"])
def test_cutover_json_golden(runs: dict[str, CutoverRun], name: str) -> None:
    data = _rounded(cutover_json(runs[name]))
    _check_golden(f"{name}.cutover.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")


# --- summary.md, the terminal, the headline ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_summary_md_golden(runs: dict[str, CutoverRun], name: str) -> None:
    _check_golden(f"{name}.summary.md", summary_md(runs[name]))


def test_headline_says_outcome_weight_step_and_why(runs: dict[str, CutoverRun]) -> None:
    assert headline(runs["completed"]).startswith("COMPLETED: 100% of the traffic goes to the new environment (eks)")
    latency = headline(runs["stopped_latency"])
    assert latency.startswith("STOPPED at step 3 of 5 (10%) after ")
    assert "a regression beyond tolerance was shown (GET /api/orders/{id} avg_ms" in latency
    assert latency.endswith("set back to 0% and verified.")
    assert "a guardrail was breached on the new side (guardrail POST /api/orders" in headline(runs["stopped_guardrail"])
    assert headline(runs["held_max_hold"]).startswith("HELD at step 4 of 5 (50%) after 8 check(s): maximum hold passed")
    assert "3 checks in a row without APM data" in headline(runs["held_missing"])
    assert "keeps 10% of the traffic; a person decides" in headline(runs["held_missing"])
    assert headline(runs["aborted"]).startswith("ABORTED during step 3 of 5 (10%) after 3 check(s): interrupted")
    failed = headline(runs["rollback_failed"])
    assert "ROLLBACK FAILED" in failed
    assert "still takes 10% of the traffic" in failed


def test_summary_lines_for_the_terminal(runs: dict[str, CutoverRun]) -> None:
    lines = summary_lines(runs["rollback_failed"])
    assert lines[0].startswith("STOPPED at step 3 of 5 (10%)")
    assert lines[1].startswith("!!! ROLLBACK FAILED")
    assert [line.split()[:4] for line in lines[2:5]] == [
        ["step", "1", "1%", "GO"],
        ["step", "2", "5%", "GO"],
        ["step", "3", "10%", "STOP"],
    ]
    run = runs["held_max_hold"]  # many reasons: the headline's, five more, then a count
    last = run.steps[-1].last_decision
    assert last is not None
    many = replace(run, reasons=(*run.reasons, *(f"{m.endpoint} {m.metric}: {m.reason}" for m in last.metrics)))
    held = summary_lines(many)
    assert held[-1] == f"  - …and {len(many.reasons) - 1 - 5} more (see the report)"
    assert len(held) == 1 + len(run.steps) + 5 + 1
    missing = summary_lines(runs["held_missing"])
    assert "3 without APM data" in missing[-1]
    for line in summary_lines(runs["hostile"]):
        assert not re.search("[\x00-\x1f\x7f]", line)


# --- the page --------------------------------------------------------------------------------------------


def test_page_shows_the_outcome_at_a_glance(runs: dict[str, CutoverRun]) -> None:
    page = render_cutover_html(runs["stopped_latency"])
    banner = page[page.index('id="outcome"') : page.index("</section>")]
    assert "STOPPED" in banner
    assert "Final weight to the new environment: 0%" in banner
    assert "At step 3 of 5 (10%)" in banner
    assert "set back to 0% and verified" in banner
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    # the split chart and one bounds chart per endpoint and metric that has bounds
    assert page.count("<svg") >= 1 + 4 * 2
    assert 'class="threshold"' in page
    assert 'class="band"' in page
    assert 'class="weight"' in page
    assert "GET /api/orders/{id}" in page
    assert "WORSE" in page
    failed = render_cutover_html(runs["rollback_failed"])
    assert 'class="rollback-failed" id="rollback" role="alert"' in failed
    split = render_cutover_html(runs["held_split"])
    assert 'class="verdict-marginal mismatch"' in split
    assert "the split does NOT match" in split
    missing = render_cutover_html(runs["held_missing"])
    assert missing.count("Datadog answered 429 Too Many Requests") >= 3
    assert "3 check(s) brought no APM data" in missing


def test_hostile_names_are_inert_everywhere(runs: dict[str, CutoverRun]) -> None:
    run = runs["hostile"]
    page = render_cutover_html(run)
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>feature" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "Seen but not judged" in page
    assert "GET /new-&lt;b&gt;feature&lt;/b&gt; @team" in page
    md = summary_md(run)
    assert "<script" not in md
    assert "@oncall" not in md
    assert "#123" not in md
    data = cutover_json(run)
    assert data["unjudged_endpoints"] == ["GET /new-<b>feature</b> @team"]
    assert HOSTILE in data["endpoints"]  # JSON keeps the name as it is
    event = cutover_event(run)
    assert "@oncall" not in event.text
    assert "#123" not in event.text


# --- the Datadog event -----------------------------------------------------------------------------------


def test_event_types_tags_and_limits(runs: dict[str, CutoverRun]) -> None:
    types = {name: cutover_event(run).alert_type for name, run in runs.items()}
    assert types["completed"] == "success"
    assert types["stopped_latency"] == types["stopped_guardrail"] == types["rollback_failed"] == "error"
    assert types["held_max_hold"] == types["held_missing"] == types["aborted"] == "warning"
    event = cutover_event(runs["rollback_failed"], report_url="https://ci.example/cutover/index.html", tags=("team:x",))
    assert event.title == "Cutover STOPPED: orders-api ec2 → eks at 10%"
    assert "cutover_rollback:failed" in event.tags
    assert event.tags[-1] == "team:x"
    assert "cutover_outcome:stopped" in event.tags
    assert "env:eks" in event.tags
    assert "old_env:ec2" in event.tags
    assert event.text.endswith("\nReport: https://ci.example/cutover/index.html")
    assert event.aggregation_key == "parity_cutover:orders-api"
    never = replace(runs["aborted"], steps=(), reasons=("interrupted before the first shift",))
    assert cutover_event(never).alert_type == "info"
    huge = replace(runs["held_max_hold"], reasons=tuple(f"reason {i} " + "x" * 500 for i in range(50)))
    long_event = cutover_event(huge, report_url="https://ci.example/r")
    assert len(long_event.text) <= MAX_EVENT_TEXT
    assert long_event.text.endswith("Report: https://ci.example/r")
    assert len(cutover_event(replace(huge, new=replace(huge.new, service="s" * 300))).title) <= MAX_EVENT_TITLE


# --- writing ---------------------------------------------------------------------------------------------


def test_writes_three_whole_files_and_leaves_the_journal(runs: dict[str, CutoverRun], tmp_path: Path) -> None:
    out = tmp_path / "cutover"
    out.mkdir()
    journal = out / "journal.jsonl"
    journal.write_text('{"kind": "start"}\n', encoding="utf-8")
    (out / "index.html").write_text("old page", encoding="utf-8")
    write_cutover_reports(runs["stopped_guardrail"], out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*CUTOVER_FILES, "journal.jsonl"])  # no temporaries
    assert journal.read_text(encoding="utf-8") == '{"kind": "start"}\n'
    assert json.loads((out / "cutover.json").read_text(encoding="utf-8"))["outcome"] == "stopped"
    assert (out / "index.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("## Cutover STOPPED")
    nested = tmp_path / "a" / "b"
    write_cutover_reports(runs["completed"], nested)  # created when missing
    assert sorted(p.name for p in nested.iterdir()) == sorted(CUTOVER_FILES)


def test_unwritable_out_raises_and_writes_nothing(runs: dict[str, CutoverRun], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(NotADirectoryError):
        write_cutover_reports(runs["completed"], blocker / "out")
    assert blocker.read_text(encoding="utf-8") == "not a directory"


def test_missing_bounds_stay_missing(runs: dict[str, CutoverRun]) -> None:
    """A metric without usable intervals has null bounds (never 0) and its chart says so instead of a line."""
    data = cutover_json(runs["held_split"])
    metrics = [m for e in data["steps"][0]["endpoints"] for m in e["metrics"].values()]
    no_data = [m for m in metrics if m["finding"] == "no_data"]
    assert no_data
    assert all(m["lower"] is None and m["estimate"] is None for m in no_data)
    assert all(m["lower"] is None or m["lower"] >= 0 for m in metrics)
    assert all(m["upper"] is None or math.isfinite(m["upper"]) for m in metrics)
    assert "No bounds yet (too few usable intervals)." in render_cutover_html(runs["held_split"])


def test_not_decidable_at_this_weight_is_neutral_never_a_pass(runs: dict[str, CutoverRun]) -> None:
    """At 1 % the gate goes with tests it could not decide at that weight (``MetricDecision.decidable`` False):
    cutover.json says so per metric and per endpoint (``not_decidable``, never ``within``), the page and
    summary.md show NOT DECIDABLE in the neutral colour with the sentence why, and a worse finding stays worse."""
    run = runs["stopped_latency"]
    data = cutover_json(run)
    first = data["steps"][0]
    assert first["decision"] == "go"
    assert {e["decision"] for e in first["endpoints"]} == {"not_decidable"}
    undecided = [m for e in first["endpoints"] for m in e["metrics"].values() if not m["decidable"]]
    assert undecided
    assert all(m["finding"] in ("open", "no_data") for m in undecided)  # the core's finding is kept beside it
    stop = data["steps"][-1]
    slow = next(e for e in stop["endpoints"] if e["endpoint"] == "GET /api/orders/{id}")
    assert slow["decision"] == "worse"
    assert slow["metrics"]["avg_ms"]["decidable"] is True
    page = render_cutover_html(run)
    assert re.search(r'<td class="cell verdict-inconclusive" title="[^"]*not decidable at 1 %"><span class="badge">'
                     r"NOT DECIDABLE</span>", page)  # fmt: skip
    held = render_cutover_html(runs["held_max_hold"])  # its last decision (50 %): error rates not decidable
    assert "error rate is not decidable at this weight" in held
    assert "Not a pass" in held
    assert "| GET /health | NOT DECIDABLE | NOT DECIDABLE x" in summary_md(runs["held_max_hold"])


# --- in a real browser -----------------------------------------------------------------------------------


def _chromium() -> str:
    return os.environ.get("PARITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def page_file(runs: dict[str, CutoverRun], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cutover-page")
    write_cutover_reports(runs["hostile"], out)
    return out / "index.html"


def test_page_in_headless_chromium(page_file: Path) -> None:
    """No console message of level error or warning, no page error, no request besides the document; the
    charts are laid out (non-empty boxes); hostile names render as text and run nothing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=_chromium(), headless=True)
        except sync_api.Error as exc:
            pytest.skip(f"chromium ({_chromium()}) cannot start: {str(exc).splitlines()[0]}")
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            problems: list[str] = []
            requests: list[str] = []
            page.on(
                "console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            assert page.inner_text("#outcome .banner-verdict") == "STOPPED"
            assert "Final weight to the new environment: 0%" in page.inner_text("#final-weight")
            sizes = page.eval_on_selector_all(
                "svg.plot", "els => els.map(e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height])"
            )
            assert len(sizes) >= 2
            assert all(w > 100 and h > 20 for w, h in sizes[:2])
            assert page.evaluate("window.__pwned") is None
            assert "window.__pwned=1" in page.inner_text("#endpoints")
            assert problems == []
            assert requests == [page_file.as_uri()]
            context.close()
        finally:
            browser.close()


def test_many_endpoints_stay_readable() -> None:
    """45 endpoints: every one in the page's table and the JSON; charts for the worst MAX_CHARTED_ENDPOINTS
    and summary.md's table for the worst MAX_SUMMARY_ENDPOINTS, the rest counted."""
    endpoints = tuple((f"GET /api/r{i}", 1 / 45, 20.0 + i, 0.002) for i in range(45))
    run = simulate(replace(SCENARIOS["held_max_hold"], endpoints=endpoints, rate=20_000.0))
    page = render_cutover_html(run)
    assert page.count('<td class="endpoint">GET /api/r') >= 45
    assert page.count('<details class="endpoint-charts') == MAX_CHARTED_ENDPOINTS
    assert f"…and {45 - MAX_CHARTED_ENDPOINTS} more endpoint(s), not charted here" in page
    md = summary_md(run)
    assert md.count("| GET /api/r") == MAX_SUMMARY_ENDPOINTS
    assert f"…and {45 - MAX_SUMMARY_ENDPOINTS} more endpoint(s)" in md
    assert len(cutover_json(run)["steps"][0]["endpoints"]) == 45


def test_a_run_that_never_shifted(runs: dict[str, CutoverRun]) -> None:
    """Interrupted before the first step, the live weight unknown (a manual shifter not confirmed)."""
    run = replace(runs["aborted"], steps=(), final_weight_pct=None, reasons=("interrupted before the first shift",))
    assert headline(run) == (
        "ABORTED before the first step: interrupted before the first shift. Weights unchanged (unknown to the new "
        "environment)."
    )
    data = cutover_json(run)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(data)
    assert data["final_weight"] is None
    assert data["at_step"] is None
    assert "No step was started." in render_cutover_html(run)
    assert summary_lines(run) == [headline(run)]


def test_a_hold_on_missing_apm_data_is_hold_in_cutover_json_as_on_the_page(tmp_path: Path) -> None:
    """The real driver holds after ``max_missing_checks`` failed reads without a decision record (no decision is
    taken on missing data), so the journal's step has no action: the page and summary.md say HOLD, and
    cutover.json's ``steps[].decision`` must say ``hold`` too, not null (which the schema reserves for a step
    still running or interrupted)."""
    from tests import test_cutover_run as driver

    rig = driver.Rig(tmp_path)
    broken_from = int(driver.T0) + 30 + 3 * 60  # the first step's fourth window on
    rig.apm.down = lambda start: start >= broken_from
    run = rig.run()
    assert run.outcome is Outcome.HELD
    assert "HOLD" in summary_md(run).split("| Step |")[1].splitlines()[2]
    written = cutover_json(run)
    jsonschema.validate(written, json.loads(SCHEMA.read_text()))
    assert written["steps"][-1]["decision"] == "hold"


def test_not_decidable_survives_the_journal_so_reports_of_a_real_run_say_it(runs: dict[str, CutoverRun]) -> None:
    """Reports of a real cutover read decisions back from the journal (``run_from_journal``): a metric the gate
    marked not decidable at this weight (it let the GO pass) must come back not decidable, or cutover.json says
    ``decidable: true`` and the page shows OPEN where the gate's reason says "not decidable at 1 %"."""
    from parity.cutover.journal import decode_decision, encode_decision

    run = runs["stopped_latency"]
    decision = run.steps[0].last_decision
    assert decision is not None
    assert any(not m.decidable for m in decision.metrics)
    again = decode_decision(json.loads(json.dumps(encode_decision(decision), allow_nan=False)))
    assert again == decision
    step = replace(run.steps[0], checks=(replace(run.steps[0].checks[-1], decision=again),))
    data = cutover_json(replace(run, steps=(step,)))
    assert {e["decision"] for e in data["steps"][0]["endpoints"]} == {"not_decidable"}

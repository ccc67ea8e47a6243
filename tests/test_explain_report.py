"""parity.report.explain: what the HTML endpoint detail states about an explanation (pure known answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.report.explain import BAR_LABEL_CHARS, detail


def _read(requests: int, waits: list[float], rate: str | None) -> dict[str, Any]:
    return {
        "query": "service:web env:ec2", "window": [0, 600], "candidates": 40, "capped": False, "traces": 30,
        "dropped": 0, "requests": requests, "waits_s": waits, "rate_limit": rate, "notes": [],
    }  # fmt: skip


def _entry(reads: dict[str, Any]) -> dict[str, Any]:
    return {
        "endpoint": "GET /users/{id}",
        "available": True,
        "sentence": "+24 ms per request in postgres",
        "components": [],
        "sampling": {"statement": "From 30 old and 30 new sampled traces."},
        "reads": reads,
    }


def test_the_detail_states_the_spans_api_requests_waits_and_rate_limit_seen() -> None:
    entry = _entry(
        {
            "old": _read(2, [], "spans_search: 298 of 300 requests left, resets in 3400 s"),
            "new": _read(3, [12.0], "spans_search: 295 of 300 requests left, resets in 3380 s"),
        }
    )
    line = detail(entry)["rl"]
    assert "5 Spans API requests (old 2, new 3)" in line
    assert "waited 12 s for its rate limit" in line
    assert "spans_search: 295 of 300 requests left, resets in 3380 s" in line  # the last seen: the new side's
    assert detail(entry)["sm"] == "From 30 old and 30 new sampled traces."


def test_no_reads_no_rate_limit_line() -> None:
    assert "rl" not in detail(_entry({"old": None, "new": None}))
    assert "rl" not in detail({"endpoint": "x", "available": False, "sentence": "no explanation: x"})
    line = detail(_entry({"old": _read(1, [], None), "new": None}))["rl"]
    assert line.startswith("1 Spans API request (old 1)")
    assert "no rate-limit headers" in line


def _component(label: str, old_calls: float, new_calls: float, ratio: float | None) -> dict[str, Any]:
    return {
        "label": label, "service": "web", "own_service": False, "kind": "cache", "name": "redis.command",
        "old_ms": 0.0 if old_calls == 0 else 0.4, "new_ms": 1.2, "diff_ms": 1.2 - (0.0 if old_calls == 0 else 0.4),
        "diff_low_ms": 0.5, "diff_high_ms": 1.9, "change": "slower", "old_calls": old_calls, "new_calls": new_calls,
        "calls_ratio": ratio, "calls_ratio_low": None, "calls_ratio_high": None, "share": None,
    }  # fmt: skip


def test_a_rare_call_is_not_shown_as_no_call() -> None:
    """A call made by 1 request in 30 (0.033 per request) costs time: its calls column must not read 0.0."""
    entry = {**_entry({}), "components": [_component("redis", 0.0, 1 / 30, None), _component("dns", 0.02, 0.06, 3.0)]}
    table = {row[0]: row[5] for row in detail(entry)["t"]}
    assert table["redis"] == "0.0 → 0.033"
    assert table["dns"] == "0.02 → 0.06 (3.0×)"


def test_a_long_component_label_is_cut_in_the_bar_legend_not_in_the_table() -> None:
    """A chart legend entry cannot wrap: a 150-character label was clipped mid-word and lost its colour box."""
    long = "postgres via " + "payments-ledger-reconciliation-" * 4 + "service"
    entry = {**_entry({}), "components": [_component(long, 1.0, 3.0, 3.0)]}
    out = detail(entry)
    label = out["bar"][0][0]
    assert len(label) <= BAR_LABEL_CHARS
    assert label.endswith("…")
    assert long.startswith(label[:-1])
    assert out["t"][0][0] == long  # the table wraps: whole there


def test_junit_carries_the_why_line_of_a_failed_endpoint(tmp_path: Path) -> None:
    """GitLab shows a failed night's junit.xml in its Tests tab: the failed endpoint's why line is there."""
    import xml.etree.ElementTree as ET

    from parity.report.write import write_reports
    from tests.test_report import META, mixed_result

    result = mixed_result()
    bad = next(e for e in result.endpoints if e.verdict.value == "fail")
    failed = bad.endpoint.key
    passed = next(e.endpoint.key for e in result.endpoints if e.verdict.value == "pass")
    why = {"endpoint": failed, "available": True, "sentence": "+24 ms per request in postgres <N+1> & more"}
    nothing = {"endpoint": passed, "available": True, "sentence": "nothing changed: the sampled requests took as long"}
    paths = write_reports(result, tmp_path, META, explanations={failed: why, passed: nothing})
    cases = {c.get("name"): c for c in ET.parse(paths.junit_xml).getroot().iter("testcase")}
    failure = cases[failed].find("failure")
    assert failure is not None
    assert failure.text is not None
    assert failure.text.splitlines()[-1] == "why (sampled APM traces): +24 ms per request in postgres <N+1> & more"
    assert failure.get("message") == bad.reasons[0]  # the message stays the first reason
    assert list(cases[passed]) == []  # a pass stays an empty testcase
    plain = write_reports(result, tmp_path / "plain", META)
    assert "why" not in plain.junit_xml.read_text()


def test_a_damaged_explain_json_is_a_note_not_a_traceback(tmp_path: Path) -> None:
    """An explain.json of the right format whose fields have the wrong shape (hand-edited, another tool's) is not
    shown, with a one-line note; an entry with a malformed field still renders its why line."""
    import json

    from parity.report.explain import explanations_beside
    from tests.test_report import mixed_result

    result = mixed_result()
    key = result.endpoints[0].endpoint.key
    entry = {"endpoint": key, "available": True, "sentence": "+1 ms per request in redis", "sampling": "30 traces"}
    doc = {"format": "parity-explain", "version": 1, "old": "ec2", "new": None, "explanations": [entry]}
    (tmp_path / "explain.json").write_text(json.dumps(doc))
    explanations, note = explanations_beside(tmp_path, result)
    assert explanations == {}
    assert note is not None
    assert "not shown in the report" in note
    out = detail({**entry, "components": 3, "reads": {"old": {"requests": 1, "waits_s": 5}}})
    assert out["rl"].startswith("1 Spans API request (old 1); no rate-limit headers")
    assert out["w"] == "+1 ms per request in redis"
    assert "sm" not in out


def test_a_cutover_explanation_whose_file_could_not_be_written_is_not_called_no_explanation() -> None:
    """The STOP was explained (its why lines are shown) but explain.json could not be written: that is what the
    last line says, not "no explanation" under the explanations themselves."""
    from dataclasses import replace

    from parity.cutover.model import StopExplanation, StopWhy
    from parity.cutover.report import render_cutover_html, why_lines
    from tests.cutover_runs import SCENARIOS, simulate

    run = simulate(SCENARIOS["stopped_latency"])
    unwritable = "/ro/explain.json: cannot write it: Read-only file system"
    why = StopWhy("GET /a", ("avg_ms",), "+25 ms per request in queue")
    lines = why_lines(replace(run, explanation=StopExplanation((why,), None, unwritable)))
    assert lines == [
        "GET /a (avg_ms): +25 ms per request in queue",
        f"explain.json not saved: {unwritable}",
    ]
    assert why_lines(replace(run, explanation=StopExplanation(skipped="403"))) == ["no explanation: 403"]
    page = render_cutover_html(replace(run, explanation=StopExplanation((why,), None, unwritable)))
    assert "no explanation" not in page
    assert f"explain.json not saved: {unwritable}" in page

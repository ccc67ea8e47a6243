"""The cutover driver (``parity.cutover.run``): the real decision core and journal, with an injected clock, a
fake live APM and a fake shifter implementing the ``LiveApm``/``Shifter`` protocols (the real command shifter
where the behaviour is about it). A "kill" is an exception the driver does not catch (``Crash``, a
BaseException) raised from the injected sleep or from the shifter, and once a real SIGKILL of a child process.
Nothing waits for real time except the SIGKILL test (a few seconds)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from parity.cutover.journal import JOURNAL_NAME, decode_check, decode_decision, read_journal
from parity.cutover.model import ApmSelector, ApmUnavailable, CutoverRun, Outcome, ShiftError
from parity.cutover.run import (
    MAX_BACKFILL_CHECKS,
    cutover_exit_code,
    dry_run_lines,
    run_cutover,
    run_from_journal,
    write_reports,
)
from parity.cutover.settings import CutoverSettings, cutover_from_mapping, plain_settings, secret_values
from parity.cutover.shifters import CommandShifter, ManualShifter
from parity.errors import BadInput, Interrupted
from parity.judge.policy import MetricRule, Policy
from parity.judge.sequential import Action, IntervalSummary
from tests.conftest import ROOT

T0 = 1_800_000_000.0
JUDGE = Policy(rules={**Policy().rules, "avg_ms": MetricRule(0.2, 1.0, 30), "error_rate": MetricRule(2.0, 0.02, 30)})
ENDPOINTS = ("GET /a", "GET /b")


class Crash(BaseException):
    """A kill: nothing in the driver catches it (no journal record, no end)."""


class Clock:
    """Unix seconds that only move when the driver sleeps; ``crash_at`` raises Crash from the n-th sleep."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.t = T0
        self.sleeps = 0
        self.crash_at = crash_at

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps += 1
        if self.crash_at is not None and self.sleeps == self.crash_at:
            self.crash_at = None
            raise Crash
        self.t += seconds


@dataclass
class Shifter:
    """Weights in memory, changes logged with the clock's time. ``fail``: weight -> ShiftError reason;
    ``crash_before``/``crash_after``: weights whose apply is killed before / after the change is made."""

    clock: Clock
    weight: float = 0.0
    applied: list[float] = field(default_factory=list)
    log: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    fail: dict[float, str] = field(default_factory=dict)
    crash_before: set[float] = field(default_factory=set)
    crash_after: set[float] = field(default_factory=set)

    def describe(self, weight_pct: float) -> str:
        return f"set new {weight_pct:g}%"

    def read(self) -> float | None:
        return self.weight

    def apply(self, weight_pct: float) -> None:
        self.applied.append(weight_pct)
        if weight_pct in self.crash_before:
            self.crash_before.discard(weight_pct)
            raise Crash
        if weight_pct in self.fail:
            raise ShiftError(self.fail[weight_pct])
        self.set(weight_pct)
        if weight_pct in self.crash_after:
            self.crash_after.discard(weight_pct)
            raise Crash

    def set(self, weight_pct: float) -> None:
        self.weight = weight_pct
        self.log.append((self.clock(), weight_pct))

    def weight_at(self, t: float) -> float:
        return [w for since, w in self.log if since <= t][-1]


@dataclass
class Apm:
    """Both environments as Datadog would report them: ``per_s`` requests a second per endpoint split by the
    weight in effect, lognormal latencies (median 50 ms) times ``mult(endpoint, weight)`` on the new side, errors
    at ``error_rate(side, weight)``. ``down(start_s)`` True: that window's read fails (ApmUnavailable).
    Deterministic per window (a resumed run reads what the first would have)."""

    shifter: Shifter
    per_s: float = 100.0
    mult: Callable[[str, float], float] = lambda _e, _w: 1.0
    error_rate: Callable[[str, float], float] = lambda _s, _w: 0.01
    down: Callable[[int], bool] = lambda _s: False
    extra: tuple[str, ...] = ()
    reads: list[tuple[str, int, int]] = field(default_factory=list)

    def interval(self, selector: ApmSelector, start_s: int, end_s: int) -> Mapping[str, IntervalSummary]:
        self.reads.append((selector.env, start_s, end_s))
        if self.down(start_s):
            raise ApmUnavailable("HTTP 503 from Datadog: try again later")
        side = selector.env
        weight = self.shifter.weight_at(start_s)
        share = weight / 100 if side == "new" else 1 - weight / 100
        rng = np.random.default_rng([start_s, end_s, side == "new"])
        out = {}
        for i, endpoint in enumerate((*ENDPOINTS, *self.extra)):
            hits = int(rng.poisson(self.per_s * (end_s - start_s) * share / (1 + i)))
            if hits == 0:
                continue
            factor = self.mult(endpoint, weight) if side == "new" else 1.0
            x = np.sort(rng.lognormal(math.log(50.0 * factor), 0.3, min(hits, 5000)))
            q = {p: float(x[max(math.ceil(p * x.size) - 1, 0)]) for p in (0.5, 0.75, 0.9, 0.95, 0.99)}
            out[endpoint] = IntervalSummary(
                hits=hits,
                errors=int(rng.binomial(hits, self.error_rate(side, weight))),
                avg_ms=float(x.mean()),
                p50_ms=q[0.5],
                p75_ms=q[0.75],
                p90_ms=q[0.9],
                p95_ms=q[0.95],
                p99_ms=q[0.99],
                max_ms=float(x[-1]),
            )
        return out


def make_settings(tmp_path: Path, **changes: Any) -> CutoverSettings:
    table: dict[str, Any] = {
        "steps": [10, 50, 100],
        "interval_s": 60,
        "min_hold_s": 300,
        "max_hold_s": 1200,
        "settle_s": 30,
        "delay_s": 60,
        "latency_metrics": ["avg_ms"],
        "endpoints": list(ENDPOINTS),
        "out": str(tmp_path / "cut"),
        "old": {"service": "web", "env": "old"},
        "new": {"service": "web", "env": "new"},
        "shifter": {"kind": "manual"},
    }
    table.update(changes)
    return cutover_from_mapping({k: v for k, v in table.items() if v is not None})


@dataclass
class Rig:
    tmp_path: Path
    clock: Clock = field(default_factory=Clock)
    events: list[CutoverRun] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shifter = Shifter(self.clock)
        self.apm = Apm(self.shifter)

    @property
    def journal(self) -> Path:
        return self.tmp_path / "cut" / JOURNAL_NAME

    def run(self, settings: CutoverSettings | None = None, *, resume: bool = False, **kw: Any) -> CutoverRun:
        return run_cutover(
            settings or make_settings(self.tmp_path),
            apm=kw.pop("apm", self.apm),
            shifter=kw.pop("shifter", self.shifter),
            clock=self.clock,
            sleep=self.clock.sleep,
            send_event=self.events.append,
            progress=self.lines.append,
            resume=resume,
            judge=JUDGE,
            **kw,
        )

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in read_journal(self.journal) if kind is None or r["kind"] == kind]

    def acts(self) -> list[str]:
        return [r["act"] for r in self.records("decision")]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


# --- whole runs -----------------------------------------------------------------------------------------


def test_a_clean_cutover_walks_every_step_and_completes(rig: Rig) -> None:
    run = rig.run()
    assert run.outcome is Outcome.COMPLETED, run.reasons
    assert cutover_exit_code(run) == 0
    assert rig.shifter.applied == [10.0, 50.0, 100.0]
    assert run.final_weight_pct == 100.0
    assert [s.weight_pct for s in run.steps] == [10.0, 50.0, 100.0]
    assert [s.action for s in run.steps] == [Action.GO, Action.GO, Action.GO]
    assert all(s.ended_s is not None and s.started_s <= s.ended_s for s in run.steps)
    # the minimum hold is 5 checks with data; GO on the first check allowed after it
    assert all(len(s.checks) >= 5 for s in run.steps)
    kinds = [r["kind"] for r in rig.records()]
    assert kinds[0] == "start"
    assert kinds[-1] == "end"
    assert kinds[1:4] == ["shift", "shift", "check"]  # intent, done, then checks
    # every check window is whole, begins after the step's shift was verified and settled, read delay_s late
    for step in run.steps:
        for c in step.checks:
            assert c.end_s - c.start_s == 60
            assert c.start_s >= step.started_s + 30 - 1
    checks = rig.records("check")
    assert all(r["at"] >= r["window"][1] + 60 for r in checks)
    assert rig.events == [run]  # the event, once
    written = json.loads((rig.tmp_path / "cut" / "cutover.json").read_text())
    assert written["outcome"] == "completed"
    assert written["final_weight"] == 100.0
    assert [s["weight"] for s in written["steps"]] == [10.0, 50.0, 100.0]


@dataclass
class StrictApm:
    """The real reader's rule (``parity.cutover.live_apm``): an answer without any resource is unavailable (no
    traffic cannot be told from data not yet ingested)."""

    apm: Apm

    def interval(self, selector: ApmSelector, start_s: int, end_s: int) -> Mapping[str, IntervalSummary]:
        answer = self.apm.interval(selector, start_s, end_s)
        if not answer:
            raise ApmUnavailable(f"Datadog has no hits for env:{selector.env}")
        return answer


def test_the_100_step_does_not_read_the_old_side_that_serves_nothing(rig: Rig) -> None:
    run = rig.run(apm=StrictApm(rig.apm))
    assert run.outcome is Outcome.COMPLETED, run.reasons
    last = run.steps[-1]
    assert last.weight_pct == 100.0
    assert last.checks
    assert all(c.missing is None for c in last.checks)
    assert not [r for r in rig.apm.reads if r[0] == "old" and r[1] >= last.started_s]


def test_a_regression_stops_at_the_first_stop_and_rolls_back(rig: Rig) -> None:
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    run = rig.run()
    assert run.outcome is Outcome.STOPPED, run.reasons
    assert cutover_exit_code(run) == 1
    assert not run.guardrail
    assert rig.shifter.applied == [10.0, 50.0, 0.0]
    assert run.final_weight_pct == 0.0
    assert rig.shifter.weight == 0.0
    assert run.rollback is not None
    assert run.rollback.applied
    assert any("GET /a avg_ms" in r for r in run.reasons)
    acts = rig.acts()
    assert acts.count("stop") == 1
    assert acts[-1] == "stop"
    kinds = [r["kind"] for r in rig.records()]
    assert kinds[-4:] == ["decision", "rollback", "rollback", "end"]  # journaled before acting
    assert run.steps[-1].action is Action.STOP


def test_a_guardrail_breach_stops_at_once_exit_4(rig: Rig) -> None:
    settings = make_settings(rig.tmp_path, guardrails={"error_rate": 0.05})
    rig.apm.error_rate = lambda side, _w: 0.3 if side == "new" else 0.01
    run = rig.run(settings)
    assert run.outcome is Outcome.STOPPED
    assert run.guardrail
    assert cutover_exit_code(run) == 4
    assert rig.shifter.applied == [10.0, 0.0]
    assert len(run.steps[0].checks) == 1  # the first check of the first step
    assert any("guardrail" in r for r in run.reasons)


def test_a_guardrail_breach_on_the_last_step_still_rolls_back(rig: Rig) -> None:
    settings = make_settings(rig.tmp_path, guardrails={"p99_ms": 500})
    rig.apm.mult = lambda _e, w: 20.0 if w >= 100 else 1.0  # p99 ~ 2 s once everything is on the new side
    run = rig.run(settings)
    assert run.outcome is Outcome.STOPPED, run.reasons
    assert run.guardrail
    assert rig.shifter.applied == [10.0, 50.0, 100.0, 0.0]
    assert run.steps[-1].weight_pct == 100.0
    assert len(run.steps[-1].checks) == 1


def test_apm_failures_are_missing_checks_then_hold_never_a_decision(rig: Rig) -> None:
    """Each failed read is journaled as missing (no data, no decision, not zero); three in a row hold the gate
    with the reason, the weights unchanged."""
    broken_from = int(T0) + 30 + 3 * 60  # the first step's fourth window on
    rig.apm.down = lambda start: start >= broken_from
    run = rig.run()
    assert run.outcome is Outcome.HELD
    assert cutover_exit_code(run) == 3
    assert rig.shifter.applied == [10.0]
    assert rig.shifter.weight == 10.0
    assert run.final_weight_pct == 10.0
    missing = [r for r in rig.records("check") if r.get("missing")]
    assert len(missing) == 3
    assert all("data" not in r for r in missing)
    assert all("HTTP 503" in r["missing"] for r in missing)
    assert len(rig.records("decision")) == 3  # the three checks with data only
    assert "no APM data for 3 checks in a row (HTTP 503" in run.reasons[0]
    step = run.steps[0]
    assert [c.missing is not None for c in step.checks] == [False] * 3 + [True] * 3
    assert all(c.check is None and c.decision is None for c in step.checks[3:])


def test_one_missing_check_is_skipped_and_the_run_goes_on(rig: Rig) -> None:
    hole = int(T0) + 30 + 2 * 60
    rig.apm.down = lambda start: start == hole
    run = rig.run()
    assert run.outcome is Outcome.COMPLETED
    assert sum(c.missing is not None for s in run.steps for c in s.checks) == 1
    # the gate never saw the hole as zero traffic: the missing window is in no journaled check's data
    assert all(r.get("data") is None for r in rig.records("check") if r["window"][0] == hole)


def test_a_failed_shift_holds_with_its_reason(rig: Rig) -> None:
    rig.shifter.fail[50.0] = "Throttling: Rate exceeded"
    run = rig.run()
    assert run.outcome is Outcome.HELD
    assert cutover_exit_code(run) == 3
    assert "the shift to 50% failed: Throttling: Rate exceeded" in run.reasons[0]
    assert rig.shifter.applied == [10.0, 50.0]
    assert rig.shifter.weight == 10.0
    assert run.final_weight_pct == 10.0
    assert [r["phase"] for r in rig.records("shift")][-2:] == ["intent", "failed"]
    assert run.rollback is None


def test_a_failed_rollback_is_loud(rig: Rig) -> None:
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    rig.shifter.fail[0.0] = "AccessDenied: not allowed to change the record"
    run = rig.run()
    assert run.outcome is Outcome.STOPPED
    assert cutover_exit_code(run) == 1
    assert run.rollback is not None
    assert not run.rollback.applied
    assert run.rollback.reason == "AccessDenied: not allowed to change the record"
    assert run.reasons[0].startswith("ROLLBACK FAILED: AccessDenied")
    assert run.final_weight_pct == 50.0  # read back: still on the stopped step's weight
    assert any("rolling back" in line for line in rig.lines)


def test_the_endpoint_family_is_discovered_before_the_first_shift_and_fixed(rig: Rig) -> None:
    settings = make_settings(rig.tmp_path, endpoints=None, discover_s=600)
    run = rig.run(settings)
    assert run.endpoints == ENDPOINTS  # most hits first
    start = rig.records("start")[0]
    assert start["endpoints"] == list(ENDPOINTS)
    assert start["live_weight"] == 0.0
    assert rig.apm.reads[0] == ("old", int(T0) - 60 - 600, int(T0) - 60)
    rig2 = Rig(rig.tmp_path / "later")
    rig2.apm.extra = ("GET /late",)  # appears only now: listed, not judged
    run2 = rig2.run(make_settings(rig2.tmp_path))
    assert "GET /late" not in run2.endpoints
    assert run2.unjudged == ("GET /late",)


def test_a_fresh_start_is_refused_when_traffic_already_moved_or_a_journal_is_open(rig: Rig) -> None:
    rig.shifter.weight = 10.0
    with pytest.raises(BadInput, match=r"already has 10% .*--resume"):
        rig.run()
    assert not rig.journal.exists()  # refused before anything: nothing written
    rig.shifter.weight = 0.0
    rig.clock.crash_at = 3
    with pytest.raises(Crash):
        rig.run()
    with pytest.raises(BadInput, match=r"under way .*--resume"):
        rig.run()


def test_a_person_confirms_each_change_with_the_manual_shifter(rig: Rig) -> None:
    said: list[str] = []
    # the live weight; 10 % made; 50 % made; 100 % not made (the person's changes reach the fake world)
    answers = iter([("0", None), ("yes", 10.0), ("yes", 50.0), ("no", None)])

    def person(_prompt: str) -> str:
        answer, made = next(answers)
        if made is not None:
            rig.shifter.set(made)
        return answer

    manual = ManualShifter(say=said.append, ask=person)
    run = rig.run(shifter=manual, ask=person)
    assert run.outcome is Outcome.HELD
    assert "was not confirmed" in run.reasons[0]
    assert said[0] == "change the weights now: a person sets the weights: new environment 10%, old environment 90%"
    assert run.final_weight_pct is None  # the last change was not confirmed and nobody can read it


def test_ctrl_c_journals_interrupted_and_leaves_the_weights(rig: Rig) -> None:
    def interrupt(_s: float) -> None:
        raise KeyboardInterrupt

    calls = {"n": 0}

    def sleep(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 8:
            interrupt(seconds)
        rig.clock.sleep(seconds)

    run = run_cutover(
        make_settings(rig.tmp_path), apm=rig.apm, shifter=rig.shifter, clock=rig.clock, sleep=sleep, judge=JUDGE
    )
    assert run.outcome is Outcome.ABORTED
    assert cutover_exit_code(run) == 130
    last = rig.records()[-1]
    assert last["kind"] == "interrupted"
    assert last["signal"] == "SIGINT"
    assert last["weight"] == 50.0
    assert run.final_weight_pct == 50.0
    assert "interrupted by SIGINT: weights left at 50%" in run.reasons[0]
    assert rig.shifter.applied == [10.0, 50.0]
    resumed = rig.run(resume=True)  # interrupted is resumable
    assert resumed.outcome is Outcome.COMPLETED


def test_sigterm_as_interrupted_is_journaled_with_its_name(rig: Rig) -> None:
    def sleep(_s: float) -> None:
        raise Interrupted(signal.SIGTERM, "SIGTERM")

    run = run_cutover(
        make_settings(rig.tmp_path), apm=rig.apm, shifter=rig.shifter, clock=rig.clock, sleep=sleep, judge=JUDGE
    )
    assert run.outcome is Outcome.ABORTED
    assert rig.records()[-1]["signal"] == "SIGTERM"


# --- resume ---------------------------------------------------------------------------------------------


def test_killed_mid_step_resumes_from_the_journal_with_the_right_weights(rig: Rig) -> None:
    """Killed (from the injected sleep) during the second step's checks: the journal has no end, the run reads
    as aborted at 50 %; --resume replays the gate, reads the live weight, does not shift again and finishes
    with the same decisions an uninterrupted run takes."""
    whole = Rig(rig.tmp_path / "whole")
    expected = whole.run()
    rig.clock.crash_at = 10  # settle + 5 checks of step 1, settle + 2 checks of step 2, then killed
    with pytest.raises(Crash):
        rig.run()
    aborted = run_from_journal(read_journal(rig.journal))
    assert aborted.outcome is Outcome.ABORTED
    assert aborted.final_weight_pct == 50.0
    assert "no end" in aborted.reasons[0]
    checks_before = len(rig.records("check"))
    run = rig.run(resume=True)
    assert run.outcome is Outcome.COMPLETED
    assert rig.shifter.applied == [10.0, 50.0, 100.0]  # 50 % was never applied twice
    resumed_checks = rig.records("check")[checks_before:]
    assert resumed_checks[0]["k"] == rig.records("check")[checks_before - 1]["k"] + 1  # no window lost or repeated
    assert list(rig.acts()) == whole.acts()
    assert len(run.steps) == 3
    assert len(run.steps[1].checks) == len(expected.steps[1].checks)


def test_a_shift_intent_killed_before_the_change_is_applied_again(rig: Rig) -> None:
    rig.shifter.crash_before.add(50.0)
    with pytest.raises(Crash):
        rig.run()
    assert rig.records("shift")[-1]["phase"] == "intent"
    assert rig.shifter.weight == 10.0
    run = rig.run(resume=True)
    assert run.outcome is Outcome.COMPLETED
    assert rig.shifter.applied == [10.0, 50.0, 50.0, 100.0]  # live was the previous step's: applied again
    assert [r["phase"] for r in rig.records("shift") if r["weight"] == 50.0] == ["intent", "intent", "done"]


def test_a_shift_intent_killed_after_the_change_is_completed_not_reapplied(rig: Rig) -> None:
    rig.shifter.crash_after.add(50.0)
    with pytest.raises(Crash):
        rig.run()
    assert rig.shifter.weight == 50.0
    run = rig.run(resume=True)
    assert run.outcome is Outcome.COMPLETED
    assert rig.shifter.applied == [10.0, 50.0, 100.0]  # found in effect: journaled done, not applied
    done = [r for r in rig.records("shift") if r["weight"] == 50.0 and r["phase"] == "done"]
    assert len(done) == 1
    assert done[0]["resumed"] is True


def test_a_live_weight_the_journal_cannot_explain_holds_with_the_figures(rig: Rig) -> None:
    rig.shifter.crash_before.add(50.0)
    with pytest.raises(Crash):
        rig.run()
    rig.shifter.set(30.0)  # someone moved it meanwhile
    run = rig.run(resume=True)
    assert run.outcome is Outcome.HELD
    assert cutover_exit_code(run) == 3
    assert "live weight is 30%: neither the interrupted shift's 50% nor the previous 10%" in run.reasons[0]
    assert rig.shifter.applied == [10.0, 50.0]  # nothing applied
    # a step under way found at another weight holds too
    other = Rig(rig.tmp_path / "other")
    other.clock.crash_at = 4
    with pytest.raises(Crash):
        other.run()
    other.shifter.set(5.0)
    run = other.run(resume=True)
    assert run.outcome is Outcome.HELD
    assert "live weight is 5%, the journal's is 10%" in run.reasons[0]


def test_a_stop_whose_rollback_was_killed_rolls_back_on_resume(rig: Rig) -> None:
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    rig.shifter.crash_before.add(0.0)
    with pytest.raises(Crash):
        rig.run()
    assert rig.records()[-1]["kind"] == "rollback"
    assert rig.shifter.weight == 50.0
    run = rig.run(resume=True)
    assert run.outcome is Outcome.STOPPED
    assert run.rollback is not None
    assert run.rollback.applied
    assert rig.shifter.weight == 0.0
    assert rig.shifter.applied == [10.0, 50.0, 0.0, 0.0]
    assert rig.acts().count("stop") == 1  # no new check was judged after the STOP


def test_windows_missed_while_down_are_read_late_and_capped(rig: Rig) -> None:
    rig.clock.crash_at = 4  # settle + 2 checks of the first step
    with pytest.raises(Crash):
        rig.run()
    last_k = rig.records("check")[-1]["k"]
    rig.clock.t += 10 * 60  # ten minutes down
    rig.run(resume=True)
    late = [r for r in rig.records("check") if r.get("backfill")]
    assert [r["k"] for r in late][:3] == [last_k + 1, last_k + 2, last_k + 3]
    assert not any(r.get("skipped") for r in rig.records("check"))
    other = Rig(rig.tmp_path / "long")
    other.clock.crash_at = 4
    with pytest.raises(Crash):
        other.run()
    other.clock.t += (MAX_BACKFILL_CHECKS + 20) * 60  # longer than the cap
    other.run(resume=True)
    skipped = [r for r in other.records("check") if r.get("skipped")]
    assert len(skipped) == 1
    assert skipped[0]["skipped"] >= 19


def test_resume_refuses_a_missing_or_ended_journal_and_changed_settings(rig: Rig) -> None:
    with pytest.raises(BadInput, match="no journal here"):
        rig.run(resume=True)
    rig.run()
    with pytest.raises(BadInput, match=r"ended .*nothing to resume"):
        rig.run(resume=True)
    other = Rig(rig.tmp_path / "changed")
    other.clock.crash_at = 3
    with pytest.raises(Crash):
        other.run()
    with pytest.raises(BadInput, match=r"changed since the journal began \(alpha"):
        other.run(make_settings(other.tmp_path, alpha=0.05), resume=True)


def test_a_record_cut_short_by_a_kill_is_dropped_and_repaired(rig: Rig) -> None:
    rig.clock.crash_at = 4
    with pytest.raises(Crash):
        rig.run()
    whole = rig.journal.read_bytes()
    rig.journal.write_bytes(whole + b'{"kind":"check","at":1')  # a write the kill cut short
    assert len(read_journal(rig.journal)) == whole.count(b"\n")
    run = rig.run(resume=True)
    assert run.outcome is Outcome.COMPLETED
    assert all(json.loads(line) for line in rig.journal.read_bytes().splitlines())


def test_the_journal_round_trips_checks_and_decisions_exactly(rig: Rig) -> None:
    settings = make_settings(rig.tmp_path, latency_metrics=["avg_ms", "p95_ms"])
    run = rig.run(settings)
    again = run_from_journal(read_journal(rig.journal))
    assert again == run
    check = next(r for r in rig.records("check") if r.get("data"))
    assert check["data"] == json.loads(json.dumps(check["data"]))
    decision = rig.records("decision")[0]["decision"]
    assert decode_decision(decision) == decode_decision(json.loads(json.dumps(decision)))
    assert decode_check(check["data"]).endpoints[0].old is not None


# --- dry run, reports, the command shifter ----------------------------------------------------------------


def test_dry_run_prints_the_plan_and_the_changes_and_touches_nothing(rig: Rig) -> None:
    settings = make_settings(rig.tmp_path, guardrails={"error_rate": 0.05})
    lines = dry_run_lines(settings, rig.shifter, JUDGE)
    text = "\n".join(lines)
    assert "steps: 10%, 50%, 100%" in text
    assert "at least 5 checks with data (300 s), at most 20 checks (1200 s)" in text
    # per test as the gate spends it (GatePlan.alpha): error rate 2, mean latency 3, guardrail 1 (mean 2)
    assert (
        "alpha 0.01 over 6 tests (2 endpoints x 3); per test (weighted Bonferroni): error_rate 0.00167, "
        "avg_ms 0.0025, error_guardrail 0.000833" in text
    )
    assert "the error-rate guardrail's alpha is split over the 3 steps" in text
    discovered = "\n".join(dry_run_lines(make_settings(rig.tmp_path, endpoints=None), rig.shifter, JUDGE))
    assert "per test (weighted Bonferroni): error_rate 0.004 / N, avg_ms 0.006 / N" in discovered
    # the p99 guardrail is a test of the family too (error 2, avg 3, two guardrails 1: mean 7/4)
    both = "\n".join(
        dry_run_lines(make_settings(rig.tmp_path, guardrails={"error_rate": 0.05, "p99_ms": 900}), rig.shifter, JUDGE)
    )
    assert "alpha 0.01 over 8 tests (2 endpoints x 4)" in both
    assert "p99_guardrail 0.000714" in both
    assert "the error-rate and p99 guardrail's alpha is split over the 3 steps" in both
    assert "  sum:trace.rack.request.hits{env:new,service:web} by {resource_name}.as_count()" in lines
    assert "step 2 (50%): set new 50%" in text
    assert "on a stop (0%): set new 0%" in text
    assert rig.shifter.applied == []
    assert rig.apm.reads == []
    assert not (rig.tmp_path / "cut").exists()


def test_the_reports_are_written_from_the_journal(tmp_path: Path, rig: Rig) -> None:
    run = rig.run()
    out = tmp_path / "reports"
    write_reports(run, out)
    data = json.loads((out / "cutover.json").read_text())
    assert data["outcome"] == "completed"
    assert {"weight", "decision", "started", "ended"} <= set(data["steps"][0])
    assert {p.name for p in out.iterdir()} == {"cutover.json", "summary.md", "index.html"}


def test_a_failed_event_is_one_warning_and_changes_nothing(rig: Rig) -> None:
    def broken(_run: CutoverRun) -> None:
        raise RuntimeError("Datadog refused the API key (HTTP 403)\nmore")

    run = run_cutover(
        make_settings(rig.tmp_path), apm=rig.apm, shifter=rig.shifter, clock=rig.clock, sleep=rig.clock.sleep,
        judge=JUDGE, send_event=broken, progress=rig.lines.append,
    )  # fmt: skip
    assert run.outcome is Outcome.COMPLETED
    assert rig.lines[-1] == "warning: the Datadog event was not sent: Datadog refused the API key (HTTP 403)"


def _commands(tmp_path: Path) -> tuple[str, str, Path, Path]:
    state, log = tmp_path / "weight", tmp_path / "applied.log"
    if not state.exists():
        state.write_text("0\n")
    py = sys.executable
    setter = (
        f"{py} -c \"import sys; open('{state}','w').write(sys.argv[1]); open('{log}','a').write(sys.argv[1]+chr(10))\""
    )
    return f"{setter} {{weight}} {{old_weight}}", f"{py} -c \"print(open('{state}').read())\"", state, log


def test_the_command_shifter_runs_the_users_command(tmp_path: Path) -> None:
    command, read, state, log = _commands(tmp_path)
    shifter = CommandShifter(command, read, timeout_s=30)
    assert shifter.read() == 0.0
    shifter.apply(2.5)
    assert state.read_text() == "2.5"
    assert shifter.read() == 2.5
    assert "2.5 97.5" in shifter.describe(2.5)
    failing = CommandShifter(f"{sys.executable} -c \"import sys; sys.exit('no route to the API')\" {{weight}}")
    with pytest.raises(ShiftError, match="exited with 1: no route to the API"):
        failing.apply(5)
    lying = CommandShifter(f"{sys.executable} -c pass {{weight}}", read, timeout_s=30)
    with pytest.raises(ShiftError, match=r"read back 2\.5% after setting 5%"):
        lying.apply(5)
    assert log.read_text() == "2.5\n"


CHILD = """
import sys
from pathlib import Path
from tests.test_cutover_run import child_cutover
child_cutover(Path(sys.argv[1]), resume=sys.argv[2] == "resume")
"""


def child_cutover(tmp_path: Path, *, resume: bool) -> CutoverRun:
    """The cutover the SIGKILL test runs in a child: the real command shifter (a file holds the weight), a fake
    APM, and a real sleep only while the 50 % step settles (the test kills it there)."""
    command, read, _state, _log = _commands(tmp_path)
    settings = make_settings(tmp_path, shifter={"kind": "command", "command": command, "read_command": read})
    clock = Clock()
    journal = tmp_path / "cut" / JOURNAL_NAME
    if resume:  # the clock goes on from where the killed run left it
        clock.t = read_journal(journal)[-1]["at"] + 1.0
    shifter = CommandShifter(command, read, timeout_s=30)
    weights = Shifter(clock)
    apm = Apm(weights)

    def sleep(seconds: float) -> None:
        live = shifter.read()
        assert live is not None
        if weights.weight != live:
            weights.set(live)
        if live == 50.0 and not resume:
            time.sleep(300)  # killed here (the test waits at most 60 s for this)
        clock.sleep(seconds)

    return run_cutover(settings, apm=apm, shifter=shifter, clock=clock, sleep=sleep, judge=JUDGE, resume=resume)


def test_a_real_sigkill_during_a_step_resumes_without_reapplying(tmp_path: Path) -> None:
    _command, _read, state, log = _commands(tmp_path)
    journal = tmp_path / "cut" / JOURNAL_NAME
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), "fresh"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and b'"weight":50.0' in journal.read_bytes() and state.read_text() == "50":
                break
            assert child.poll() is None, "the child ended before it was killed"
            time.sleep(0.1)
        else:
            pytest.fail("the child never reached the 50% step")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    records = read_journal(journal)
    assert records[-1]["kind"] == "shift"
    assert records[-1]["weight"] == 50.0
    run = child_cutover(tmp_path, resume=True)
    assert run.outcome is Outcome.COMPLETED, run.reasons
    assert log.read_text().split() == ["10", "50", "100"]  # 50 % was never run twice
    assert replace(run, steps=()).final_weight_pct == 100.0


def test_the_command_end_to_end_sigterm_then_resume_on_a_datadog_outage(tmp_path: Path) -> None:
    """``parity cutover`` as a user runs it: the real Datadog client against the demo's fake Datadog, the command
    shifter, keys from the environment. SIGTERM after the first shift: exit 143, the journal says interrupted at
    50 %; ``--resume`` reads the live weight (50 %), goes on, Datadog answers 503 twice: HELD (exit 3) with the
    reason, weights unchanged, and the event of each run reached Datadog."""
    from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog

    command, read, state, log = _commands(tmp_path)
    out = tmp_path / "out"
    journal = out / JOURNAL_NAME
    env = {**os.environ, "DD_API_KEY": DEMO_API_KEY, "DD_APP_KEY": DEMO_APP_KEY, "PYTHONPATH": str(ROOT)}
    with DemoDatadog() as dd:
        now = time.time()
        dd.add_spans("ec2", "web", "rack.request", [["GET /a", now - 30 + i * 0.1, 20.0, 0] for i in range(50)])
        config = tmp_path / "parity.toml"
        config.write_text(
            f"""[cutover]
steps = [50, 100]
interval_s = 1
min_hold_s = 1
max_hold_s = 60
settle_s = 0
delay_s = 0
discover_s = 120
max_missing_checks = 30
dd_url = "{dd.url}"
[cutover.old]
service = "web"
env = "ec2"
[cutover.new]
service = "web"
env = "eks"
[cutover.shifter]
kind = "command"
command = '''{command}'''
read_command = '''{read}'''
"""
        )
        argv = [sys.executable, "-m", "parity.cli", "cutover", "--config", str(config), "-o", str(out)]
        child = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and child.poll() is None:
                if journal.exists() and b'"phase":"done"' in journal.read_bytes():
                    break
                time.sleep(0.05)
            child.send_signal(signal.SIGTERM)
            stdout, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode == 143, (stdout, stderr)
        last = read_journal(journal)[-1]
        assert last["kind"] == "interrupted"
        assert last["signal"] == "SIGTERM"
        assert last["weight"] == 50.0
        assert "interrupted by SIGTERM: weights left at 50%" in stdout
        dd.fail(503, None, path="/api/v2/query/scalar")
        # 30 missing checks kept the first run from holding before the SIGTERM on a loaded machine; the key is
        # free to change on --resume
        config.write_text(config.read_text().replace("max_missing_checks = 30", "max_missing_checks = 2"))
        resumed = subprocess.run(
            [*argv, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
        )
        assert resumed.returncode == 3, (resumed.stdout, resumed.stderr)
        assert resumed.stderr == ""
        assert "no APM data for 2 checks in a row" in resumed.stdout
        assert state.read_text() == "50"
        assert log.read_text().split() == ["50"]  # applied once, before the SIGTERM
        events = dd.events()
        assert len(events) == 2
        assert events[-1]["alert_type"] == "warning"
        assert "HELD" in events[-1]["title"]
    cutover = json.loads((out / "cutover.json").read_text())
    assert cutover["outcome"] == "held"
    assert cutover["final_weight"] == 50.0


def test_a_check_journaled_without_its_decision_is_decided_first_on_resume(rig: Rig) -> None:
    """Killed between the check record and its decision (here: the journal cut after the check that STOPPED):
    --resume decides on the journaled checks before reading any new window, and acts on that STOP."""
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    rig.run()
    lines = rig.journal.read_bytes().splitlines(keepends=True)
    stop_at = max(i for i, line in enumerate(lines) if b'"act":"stop"' in line)
    rig.journal.write_bytes(b"".join(lines[:stop_at]))  # the STOP's check stays, its decision and after go
    rig.shifter.set(50.0)
    reads = len(rig.apm.reads)
    checks = len(rig.records("check"))
    run = rig.run(resume=True)
    assert run.outcome is Outcome.STOPPED
    assert rig.shifter.weight == 0.0
    assert len(rig.apm.reads) == reads  # no new window read: the STOP was on the journaled data
    assert len(rig.records("check")) == checks
    assert rig.acts().count("stop") == 1


# --- the person's part of a HOLD, what --resume lets change, secrets -------------------------------------


def _held_at_50(rig: Rig) -> CutoverRun:
    """GET /a exactly at its tolerance (x1.2) from 50 %: decidable there, never shown within nor beyond, so the
    step reaches its 20-check maximum hold and HOLDs for a person."""
    rig.apm.mult = lambda e, w: 1.2 if e == "GET /a" and w >= 50 else 1.0
    run = rig.run()
    assert run.outcome is Outcome.HELD, run.reasons
    assert rig.acts()[-1] == "hold"
    assert rig.shifter.applied == [10.0, 50.0]
    return run


def test_a_held_step_is_watched_again_then_a_person_says_go(rig: Rig) -> None:
    held = _held_at_50(rig)
    assert len(held.steps[1].checks) == 20
    assert held.reasons[0] == "maximum hold passed undecided"
    # plain --resume on a held cutover: the same step, watched for another maximum hold (a person's decision)
    again = rig.run(resume=True, user="alice")
    assert again.outcome is Outcome.HELD, again.reasons
    assert [(p["action"], p["user"], p["step"], p["weight"]) for p in rig.records("person")] == [
        ("watch", "alice", 1, 50.0)
    ]
    assert len(again.steps) == 2
    assert len(again.steps[1].checks) == 40  # the step goes on: 20 more checks, no window read twice
    assert rig.shifter.applied == [10.0, 50.0]
    kinds = [r["kind"] for r in rig.records()]
    assert kinds.count("end") == 2
    assert kinds[kinds.index("end") + 1] == "person"  # journaled before any new check
    # --resume --go: the person's go moves on (journaled first), the last step completes as the gate's own
    done = rig.run(resume=True, person="go", user="alice")
    assert done.outcome is Outcome.COMPLETED, done.reasons
    assert rig.shifter.applied == [10.0, 50.0, 100.0]
    kinds = [r["kind"] for r in rig.records()]
    go_at = max(i for i, r in enumerate(rig.records()) if r["kind"] == "person")
    assert kinds[go_at + 1] == "shift"
    assert [d.action for d in done.person_decisions] == ["watch", "go"]
    assert done.person_decisions[-1].user == "alice"
    assert done.steps[1].action is Action.GO
    assert done == run_from_journal(read_journal(rig.journal))
    data = json.loads((rig.tmp_path / "cut" / "cutover.json").read_text())
    assert [(d["action"], d["user"], d["step"]) for d in data["person_decisions"]] == [
        ("watch", "alice", 1),
        ("go", "alice", 1),
    ]
    schema = json.loads((ROOT / "parity" / "schemas" / "cutover.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    summary = (rig.tmp_path / "cut" / "summary.md").read_text()
    assert "alice decided at step 2 (50%): go on to the next step." in summary
    assert "alice decided at step 2 (50%): watch the step for another maximum hold." in summary


def test_a_person_rolls_back_a_held_cutover_and_what_does_not_apply_is_refused(rig: Rig) -> None:
    _held_at_50(rig)
    with pytest.raises(BadInput, match="--go is a decision on a cutover under way: it needs --resume"):
        rig.run(person="go")
    run = rig.run(resume=True, person="rollback", user="bob")
    assert run.outcome is Outcome.STOPPED
    assert cutover_exit_code(run) == 1
    assert rig.shifter.weight == 0.0
    assert rig.shifter.applied == [10.0, 50.0, 0.0]
    assert run.rollback is not None
    assert run.rollback.applied
    assert run.reasons[0] == "rolled back on bob's decision (a person ended the cutover at 50%)"
    assert [r["kind"] for r in rig.records()][-4:] == ["person", "rollback", "rollback", "end"]
    with pytest.raises(BadInput, match=r"ended \(stopped\): nothing to resume or roll back"):
        rig.run(resume=True, person="rollback")
    # --go on a cutover that was interrupted, not held: the gate decides, not the person
    crashed = Rig(rig.tmp_path / "crashed")
    crashed.clock.crash_at = 4
    with pytest.raises(Crash):
        crashed.run()
    size = crashed.journal.stat().st_size
    with pytest.raises(BadInput, match="--go decides on a HELD cutover; this one is not held"):
        crashed.run(resume=True, person="go")
    assert crashed.journal.stat().st_size == size  # refused before anything was written
    stopped = crashed.run(resume=True, person="rollback", user="bob")  # a person may end any unfinished one
    assert stopped.outcome is Outcome.STOPPED
    assert crashed.shifter.weight == 0.0
    # --go after a failed shift: the step never began; a plain --resume tries the shift again
    failed = Rig(rig.tmp_path / "failed")
    failed.shifter.fail[50.0] = "Throttling: Rate exceeded"
    assert failed.run().outcome is Outcome.HELD
    with pytest.raises(BadInput, match=r"the held step's shift to 50% was not made; --resume tries it again"):
        failed.run(resume=True, person="go")
    failed.shifter.fail.clear()
    retried = failed.run(resume=True, user="carol")
    assert retried.outcome is Outcome.COMPLETED, retried.reasons
    assert failed.shifter.applied == [10.0, 50.0, 50.0, 100.0]


def test_resume_lets_keys_that_do_not_decide_change_and_names_the_one_that_does(rig: Rig) -> None:
    rig.clock.crash_at = 4
    with pytest.raises(Crash):
        rig.run()
    with pytest.raises(BadInput, match=r"changed since the journal began \(guardrails\.p99_ms, policy\.p99_limit_ms\)"):
        rig.run(make_settings(rig.tmp_path, guardrails={"p99_ms": 900}), resume=True)
    with pytest.raises(BadInput, match=r"changed since the journal began \(max_hold_s, policy\.max_hold_checks\)"):
        rig.run(make_settings(rig.tmp_path, max_hold_s=1800), resume=True)
    stricter = Policy(rules={**JUDGE.rules, "avg_ms": MetricRule(0.1, 1.0, 30)})
    with pytest.raises(BadInput, match=r"\[compare\] tolerances changed since the journal began \(avg_ms of GET /a"):
        run_cutover(
            make_settings(rig.tmp_path), apm=rig.apm, shifter=rig.shifter, clock=rig.clock, sleep=rig.clock.sleep,
            resume=True, judge=stricter,
        )  # fmt: skip
    free = make_settings(
        rig.tmp_path, max_missing_checks=5, datadog_tags=["team:web"], discover_s=60, dd_url="http://x"
    )
    run = rig.run(free, resume=True)
    assert run.outcome is Outcome.COMPLETED, run.reasons


@dataclass
class CommandLike(Shifter):
    """The fake weights, described like the command shifter does (the command line is printed)."""

    command: str = ""

    def describe(self, weight_pct: float) -> str:
        return CommandShifter(self.command).describe(weight_pct)


def test_secrets_in_the_command_are_never_stored_or_printed(rig: Rig) -> None:
    """A token given as --token=..., and an environment variable's value inside the command: the journal, the
    reports and every printed line carry *** instead; a failure's reason too. --resume compares the redacted
    commands: a rotated token is not a change of plan."""
    env = {"DEPLOY_TOKEN": "env-s3cret-9f8e", "HOME": "/home/x"}
    command = "./set-weights {weight} {old_weight} --token=arg-s3cret-1a2b --auth env-s3cret-9f8e"
    settings = make_settings(rig.tmp_path, shifter={"kind": "command", "command": command, "read_command": "./w"})
    shifter = CommandLike(rig.clock, command=command)
    rig.apm.shifter = shifter
    shifter.fail[50.0] = "exited 1: token arg-s3cret-1a2b refused"
    lines: list[str] = []
    run = run_cutover(
        settings, apm=rig.apm, shifter=shifter, clock=rig.clock, sleep=rig.clock.sleep, judge=JUDGE,
        progress=lines.append, environ=env,
    )  # fmt: skip
    assert run.outcome is Outcome.HELD
    out = rig.tmp_path / "cut"
    stored = {p.name: p.read_text() for p in out.iterdir()}
    assert set(stored) == {"journal.jsonl", "cutover.json", "summary.md", "index.html"}
    for text in [*stored.values(), *lines, *dry_run_lines(settings, shifter, JUDGE, secret_values(env))]:
        assert "s3cret" not in text
    start = rig.records("start")[0]
    assert start["settings"]["shifter"]["command"] == "./set-weights {weight} {old_weight} --token=*** --auth ***"
    assert any("run: ./set-weights 10 90 --token=*** --auth ***" in line for line in lines)
    assert "token *** refused" in run.reasons[0]
    shifter.fail.clear()
    rotated = command.replace("arg-s3cret-1a2b", "arg-s3cret-NEW1")
    run = run_cutover(
        make_settings(rig.tmp_path, shifter={"kind": "command", "command": rotated, "read_command": "./w"}),
        apm=rig.apm, shifter=shifter, clock=rig.clock, sleep=rig.clock.sleep, judge=JUDGE, resume=True,
        environ=env,
    )  # fmt: skip
    assert run.outcome is Outcome.COMPLETED, run.reasons
    assert "s3cret" not in rig.journal.read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--go"], "--go is a person's decision on a held cutover: use it with --resume"),
        (["--dry-run", "--resume"], "--dry-run prints the plan of a new cutover"),
        (["--resume", "--go", "--rollback"], "--go and --rollback contradict each other"),
    ],
)
def test_the_persons_flags_refuse_what_does_not_apply_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    from parity.cli import main

    path = tmp_path / "parity.toml"
    path.write_text(
        "[cutover]\n[cutover.old]\nservice = 'web'\nenv = 'ec2'\n[cutover.new]\nservice = 'web'\nenv = 'eks'\n"
        "[cutover.shifter]\nkind = 'manual'\n"
    )
    code = main(["cutover", "--config", str(path), "-o", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


# --- crashes at record boundaries (review) ---------------------------------------------------------------


def _cut_after_last(rig: Rig, kind: str, **match: Any) -> None:
    """A kill right after the last record of ``kind`` (matching ``match``) was written: later records dropped."""
    lines = rig.journal.read_text().splitlines(keepends=True)
    last = max(
        i
        for i, line in enumerate(lines)
        if (r := json.loads(line))["kind"] == kind and all(r.get(k) == v for k, v in match.items())
    )
    rig.journal.write_text("".join(lines[: last + 1]))


def test_killed_after_the_rollback_was_done_resumes_stopped_not_held(rig: Rig) -> None:
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    assert rig.run().outcome is Outcome.STOPPED
    _cut_after_last(rig, "rollback", phase="done")  # the end record never made it
    assert rig.shifter.weight == 0.0
    run = rig.run(resume=True)
    assert run.outcome is Outcome.STOPPED, run.reasons
    assert cutover_exit_code(run) == 1
    assert run.final_weight_pct == 0.0
    assert rig.shifter.applied == [10.0, 50.0, 0.0]  # nothing applied again
    assert rig.acts().count("stop") == 1


def test_killed_after_a_failed_rollback_tries_it_again_on_resume_before_any_check(rig: Rig) -> None:
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    rig.shifter.fail[0.0] = "Throttling: rate exceeded"
    assert rig.run().outcome is Outcome.STOPPED
    _cut_after_last(rig, "rollback", phase="failed")  # the end record never made it
    del rig.shifter.fail[0.0]
    rig.apm.down = lambda _s: True  # no decision may wait on APM: the STOP was taken
    run = rig.run(resume=True)
    assert run.outcome is Outcome.STOPPED, run.reasons
    assert rig.shifter.weight == 0.0
    assert rig.shifter.applied == [10.0, 50.0, 0.0, 0.0]
    assert rig.acts().count("stop") == 1  # no check judged after the STOP


def test_killed_after_a_persons_go_on_the_last_step_resumes_completed(rig: Rig) -> None:
    apm = rig.apm

    class Silent100:  # the new side answers, but nothing reaches it at 100 %: the last step holds
        def interval(self, selector: ApmSelector, start_s: int, end_s: int) -> Mapping[str, IntervalSummary]:
            answer = apm.interval(selector, start_s, end_s)
            return {} if selector.env == "new" and rig.shifter.weight_at(start_s) == 100.0 else answer

    held = rig.run(apm=Silent100())
    assert held.outcome is Outcome.HELD, held.reasons
    assert rig.shifter.weight == 100.0
    assert rig.run(resume=True, person="go", user="alice").outcome is Outcome.COMPLETED
    _cut_after_last(rig, "person", action="go")  # killed before its end record
    run = rig.run(resume=True)  # was: IndexError (a shift to the step after the last)
    assert run.outcome is Outcome.COMPLETED, run.reasons
    assert cutover_exit_code(run) == 0
    assert rig.shifter.applied == [10.0, 50.0, 100.0]


def test_killed_after_the_completing_decision_resumes_completed_without_new_checks(rig: Rig) -> None:
    assert rig.run().outcome is Outcome.COMPLETED
    _cut_after_last(rig, "decision", act="complete")  # killed before its end record
    checks = len(rig.records("check"))
    rig.apm.down = lambda _s: True  # Datadog down on resume: the run was already decided
    run = rig.run(resume=True)
    assert run.outcome is Outcome.COMPLETED, run.reasons
    assert run.final_weight_pct == 100.0
    assert len(rig.records("check")) == checks
    assert rig.shifter.applied == [10.0, 50.0, 100.0]


def test_credentials_in_the_datadog_proxy_url_are_never_stored(rig: Rig) -> None:
    """``dd_url`` (a proxy) and the shifter's ``endpoint_url`` may carry ``user:password@``: stored redacted."""
    settings = make_settings(rig.tmp_path, dd_url="https://ops:pr0xy-s3cret@proxy.corp:3128")
    assert rig.run(settings).outcome is Outcome.COMPLETED
    stored = {p.name: p.read_text() for p in (rig.tmp_path / "cut").iterdir()}
    assert set(stored) == {"journal.jsonl", "cutover.json", "summary.md", "index.html"}
    for name, text in stored.items():
        assert "pr0xy-s3cret" not in text, name
    assert rig.records("start")[0]["settings"]["dd_url"] == "https://ops:***@proxy.corp:3128"
    route53 = {"kind": "route53", "zone_id": "Z1", "record_name": "w.", "old_set_id": "o", "new_set_id": "n",
               "endpoint_url": "https://key:aws-s3cret@vpce.local"}  # fmt: skip
    plain = plain_settings(make_settings(rig.tmp_path, shifter=route53))
    assert plain["shifter"]["endpoint_url"] == "https://key:***@vpce.local"


def test_a_journal_that_cannot_be_written_stops_in_one_line_and_resumes(rig: Rig) -> None:
    """A full disk mid-run (a real EFBIG: the file-size limit lowered just past the first records): one line
    naming the journal and --resume, not an OSError traceback; the next resume completes."""
    import resource

    rig.clock.crash_at = 3
    with pytest.raises(Crash):
        rig.run()
    size = rig.journal.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2000, hard))
    try:
        with pytest.raises(BadInput, match=r"cannot write the journal .*parity cutover --resume") as info:
            rig.run(resume=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert "\n" not in str(info.value)
    run = rig.run(resume=True)
    assert run.outcome is Outcome.COMPLETED, run.reasons
    assert rig.shifter.applied == [10.0, 50.0, 100.0]


def test_a_journal_record_without_its_fields_is_one_line_not_a_traceback(rig: Rig) -> None:
    rig.clock.crash_at = 3
    with pytest.raises(Crash):
        rig.run()
    with rig.journal.open("a") as f:
        f.write('{"kind":"check","at":1800000500.0,"index":7}\n')  # valid JSON, but not a whole check record
    size = rig.journal.stat().st_size
    with pytest.raises(
        BadInput, match=r"journal\.jsonl: record \d+: a check record without its 'k' \(the journal is damaged\)"
    ) as info:
        rig.run(resume=True)
    assert "\n" not in str(info.value)
    assert rig.journal.stat().st_size == size  # refused before anything was written


@pytest.mark.parametrize("kind", ["shift", "rollback"])
def test_a_signal_while_a_done_record_is_fsynced_leaves_the_journals_weight(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Ctrl-C / SIGTERM landing in the fsync of a shift's (or rollback's) 'done' record (the signal handler
    raises when the call returns, PEP 475): the change is journaled as verified, so 'interrupted' says that
    weight, not 'unknown' (the CLI end-to-end test flaked on this under load)."""
    rig.apm.mult = lambda e, w: 2.0 if e == "GET /a" and w >= 50 else 1.0
    real_fsync, fired = os.fsync, list[bytes]()

    def fsync(fd: int) -> None:
        real_fsync(fd)
        last = (rig.journal.read_bytes().splitlines() or [b""])[-1] if rig.journal.exists() else b""
        if not fired and f'"kind":"{kind}"'.encode() in last and b'"phase":"done"' in last and b"50.0" not in last:
            fired.append(last)
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fsync)
    run = rig.run()
    assert fired
    records = rig.records()
    assert records[-1]["kind"] == "interrupted"
    expected = 10.0 if kind == "shift" else 0.0
    assert records[-1]["weight"] == expected
    assert run.final_weight_pct == expected
    assert any(f"weights left at {expected:g}%" in line for line in rig.lines)


def test_a_start_record_without_its_settings_is_one_line_not_a_traceback(rig: Rig) -> None:
    rig.clock.crash_at = 3
    with pytest.raises(Crash):
        rig.run()
    lines = rig.journal.read_text().splitlines(keepends=True)
    start = json.loads(lines[0])
    del start["settings"]
    rig.journal.write_text(json.dumps(start) + "\n" + "".join(lines[1:]))
    with pytest.raises(BadInput, match=r"the start record has no .settings. \(the journal is damaged\)"):
        rig.run(resume=True)

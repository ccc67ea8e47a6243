"""``parity nightly``: the nightly parity job in one command. I/O orchestration (the judge stays pure).

Steps, each reported through ``progress``:

1. **Baseline.** Read ``[nightly] baseline``. When it is missing, or its window ended more than
   ``max_baseline_age_days`` ago, pull a fresh one from Datadog APM (``[nightly.pull]``: the last
   ``window_hours`` up to the night's last whole minute) and write it in place (atomically: a failed pull
   leaves the old file). Stale without ``[nightly.pull]``: used as is, with a note; missing: bad input.
2. **Replay** the baseline against ``target`` with the replay locustfile in a child process (headless,
   ``duration_s``, ``rate_scale``, ``shape``, the ``[replay]`` safety rails), into
   ``<out>/<night>/candidate.measurement.json``. A run aborted by a safety rail is still judged and
   reported (what was recorded), and the job exits 4. With ``old_target`` the replay is a concurrent A/B
   (``parity.ab``): the same schedule goes to ``old_target`` and ``target`` at once, the old side into
   ``<out>/<night>/old.measurement.json``.
3. **Candidate APM** (``[nightly.candidate_apm]``): after ``delay_s``, pull the candidate's server-side APM
   for the replay's window and judge it against the baseline too (server-side against server-side), into
   ``<out>/<night>/server-side/``.
4. **Compare** baseline → replay (A/B: old side → new side, which is then the night's result) and **render**
   the reports into ``<out>/<night>/``.
5. **Explain** (``explain`` or ``--explain``): why the top regressed endpoints of the comparison that decides the
   night are slower, from both sides' sampled APM traces (:func:`explain_night`), into ``explain.json`` beside its
   report, which is written again with the why lines. Whatever it cannot do is one reason in ``nightly.json``;
   it never changes a verdict or the exit code.
6. **History:** append the night's results to the history store (``parity history`` draws the trends).
7. **Datadog:** with ``push_datadog`` (or ``--push-datadog``), submit the per-endpoint parity metrics and an
   event with the verdict and the report's location.

Exit code (``NightlyOutcome.exit_code``): 4 when a safety rail aborted the replay, else the worst verdict of
the comparisons (fail 1 > inconclusive 3 > pass/marginal 0). Bad input anywhere: BadInput (exit 2); a target
the rails refuse: Refused (exit 4, nothing sent).

Stopped by SIGINT/SIGTERM during the replay: the signal goes to the replay, which stops and writes its
Measurement(s) marked incomplete; the night is then judged and reported on what was recorded (quick), its
``nightly.json`` says ``interrupted``, the slow and lasting steps (candidate APM, history, push) are skipped, and
the exit code is 128 + signal. A signal before the replay wrote anything: Interrupted (128 + signal).
Keys come from the caller (the CLI reads the environment) and are never written anywhere.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from parity import measurement_json
from parity.ab import REFUSED, apm_named, refusal_reason, run_ab, with_replayed_resources
from parity.config import Config
from parity.errors import EXIT_ABORTED, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REGRESSION, BadInput, Refused
from parity.judge.compare import compare
from parity.judge.result import ParityResult, Verdict
from parity.model import Measurement
from parity.nightly.settings import ApmSource, NightlySettings
from parity.replay.process import REPLAY_STATUS, ProgressSink, ReplayRun, log_tail, run_replay
from parity.report.charts import with_time_zone
from parity.report.context import RunMeta
from parity.report.write import write_atomic, write_reports

__all__ = [
    "MAX_NIGHTS_PER_SECOND",
    "REPLAY_SLACK_S",
    "DatadogKeys",
    "NightExplained",
    "NightlyOutcome",
    "claim_night",
    "decisive_result",
    "explain_night",
    "night_id",
    "run_nightly",
]

#: Seconds a replay may run beyond its duration (start-up, drain, writing the Measurement) before it is stopped.
REPLAY_SLACK_S = 120.0


@dataclass(frozen=True)
class DatadogKeys:
    """Datadog keys from the environment; never printed (``repr`` hides them) nor written."""

    api_key: str = field(repr=False)
    app_key: str = field(repr=False)
    site: str | None = None


@dataclass(frozen=True)
class NightExplained:
    """What the night's ``explain`` did: the comparison it explained (``server-side``, ``a/b`` or ``replay``), the
    ``explain.json`` it wrote and its explanations by endpoint key, or (both None) the one-line reason nothing was
    explained (``skipped``)."""

    comparison: str
    path: Path | None = None
    explanations: Mapping[str, Mapping[str, Any]] | None = None
    skipped: str | None = None

    def summary(self, out_dir: Path) -> dict[str, Any]:
        """``nightly.json``'s ``explain``: comparison, file (relative to the night's directory; None: none written),
        the endpoints explained (with and without an explanation), and the reason when nothing was."""
        file = None
        if self.path is not None:
            file = str(self.path.relative_to(out_dir)) if self.path.is_relative_to(out_dir) else str(self.path)
        explanations = self.explanations or {}
        return {
            "comparison": self.comparison,
            "file": file,
            "endpoints": list(explanations),
            "explained": [k for k, e in explanations.items() if e.get("available")],
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class NightlyOutcome:
    """What one night did: its directory, the comparisons, and what happened along the way."""

    night: str
    out_dir: Path
    result: ParityResult
    server_side: ParityResult | None
    baseline_refreshed: bool
    replay_status: str
    history_run: int | None
    pushed: bool
    notes: tuple[str, ...] = ()
    interrupted: int | None = None  # the signal that stopped the replay early (the night was cut short)
    explained: NightExplained | None = None  # None: not asked to explain

    @property
    def aborted(self) -> bool:
        """A safety rail ended the replay early (it was judged on what was recorded)."""
        return self.replay_status == REPLAY_STATUS[4]

    @property
    def decisive(self) -> ParityResult:
        """The comparison that carries the night's latency verdict (see :func:`decisive_result`)."""
        return decisive_result(self.result, self.server_side)

    @property
    def report_dir(self) -> Path:
        """Where the decisive comparison's reports are."""
        return _report_dir(self.out_dir, self.decisive, self.server_side)

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.aborted:
            return EXIT_ABORTED
        if self.decisive is self.server_side:  # the replay's latency was incomparable; its errors still count
            verdicts = [self.server_side.verdict] + ([Verdict.FAIL] if self.result.verdict is Verdict.FAIL else [])
        else:
            verdicts = [self.result.verdict] + ([self.server_side.verdict] if self.server_side else [])
        if Verdict.FAIL in verdicts:
            return EXIT_REGRESSION
        if Verdict.INCONCLUSIVE in verdicts:
            return EXIT_INCONCLUSIVE
        return EXIT_OK


def decisive_result(result: ParityResult, server_side: ParityResult | None) -> ParityResult:
    """The comparison that decides the night's latency: the replay's, unless its latency could not be compared
    with the baseline's (a client-side replay against a server-side APM or access-log baseline) and the
    candidate's own server-side figures for the replay's window were judged — then those (like with like)."""
    if result.incomparable is not None and server_side is not None and server_side.incomparable is None:
        return server_side
    return result


def _report_dir(out_dir: Path, decisive: ParityResult, server_side: ParityResult | None) -> Path:
    """The night's directory, or its ``server-side/`` when the server-side comparison decides the night."""
    return out_dir / "server-side" if server_side is not None and decisive is server_side else out_dir


def night_id(now: datetime) -> str:
    """The night's directory name: ``20261127T030000Z`` (UTC, to the second)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


#: Nights started in the same second get ``-2``, ``-3`` ... up to this many in all.
MAX_NIGHTS_PER_SECOND = 100


def claim_night(out: Path, now: datetime) -> tuple[str, Path]:
    """Create the night's directory under ``out`` and return (its name, its path). The directory is created
    exclusively (``mkdir`` fails if it exists, atomically, across processes): a night started in the same second
    as another gets ``night_id(now)-2`` (then ``-3`` ...), so two nightlies never share a directory, a report
    or a history row's report link. Names still sort in start order. BadInput when it cannot be created."""
    first = night_id(now)
    for n in range(1, MAX_NIGHTS_PER_SECOND + 1):
        night = first if n == 1 else f"{first}-{n}"
        path = out / night
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInput(f"{path}: cannot create the night's directory: {exc.strerror or exc}") from None
        return night, path
    raise BadInput(f"{out}: {MAX_NIGHTS_PER_SECOND} nights already started at {first}")


def _floor_minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def _pull(
    source: ApmSource, keys: DatadogKeys | None, start: datetime, end: datetime, dd_url: str | None
) -> Measurement:
    """Pull ``source`` over ``[start, end)`` (whole minutes) from Datadog APM."""
    from parity.sources.datadog_apm import pull_with_keys  # imports the Datadog client: only when used

    if keys is None or not keys.api_key or not keys.app_key:
        raise BadInput("DD_API_KEY and DD_APP_KEY must be set to pull from Datadog (export them in the environment)")
    pulled = pull_with_keys(
        api_key=keys.api_key,
        app_key=keys.app_key,
        site=source.site or keys.site,
        dd_url=dd_url,
        service=source.service,
        env=source.env,
        start=start,
        end=end,
        span=source.span,
        routes=source.routes,
        params=source.params,
    )
    return with_time_zone(pulled.measurement, source.timezone)


def _baseline(
    settings: NightlySettings, keys: DatadogKeys | None, now: datetime, progress: Callable[[str], None]
) -> tuple[Measurement, bool, list[str]]:
    """The baseline to replay, refreshed when stale; (baseline, refreshed, notes)."""
    path = settings.baseline
    current = measurement_json.read(path) if path.exists() else None
    max_age = settings.max_baseline_age_days
    age_days = None if current is None else (now - current.window.end).total_seconds() / 86400.0
    stale = current is None or (max_age is not None and age_days is not None and age_days > max_age)
    if not stale and current is not None:
        progress(f"baseline {path} ({age_days:.1f} days old)")
        return current, False, []
    if settings.pull is None:
        if current is None:
            raise BadInput(f"{path}: no such file, and no [nightly.pull] to make one from Datadog")
        note = (
            f"baseline {path} is {age_days:.1f} days old (over {max_age:g}); no [nightly.pull] configured: used as is"
        )
        progress(note)
        return current, False, [note]
    end = _floor_minute(now)
    start = end - timedelta(hours=settings.pull.window_hours)
    why = "missing" if current is None else f"{age_days:.1f} days old"
    progress(f"baseline {path} is {why}: pulling {settings.pull.service}/{settings.pull.env} from Datadog APM")
    fresh = _pull(settings.pull, keys, start, end, settings.dd_url)
    measurement_json.write(fresh, path)
    return fresh, True, [f"baseline refreshed from Datadog APM ({start:%Y-%m-%d %H:%M} – {end:%H:%M} UTC)"]


def _replay_run(
    settings: NightlySettings, config: Config, baseline: Path, out_dir: Path, live: ProgressSink | None
) -> ReplayRun:
    """The night's replay: ``target`` (and ``old_target`` at the same time, when set) with the ``[replay]`` rails;
    its live progress drawn by ``live`` (None: none)."""
    return ReplayRun(
        baseline=baseline,
        host=settings.target,
        out=out_dir / "candidate.measurement.json",
        old_host=settings.old_target,
        old_out=out_dir / "old.measurement.json" if settings.old_target else None,
        run_time_s=settings.duration_s,
        rate_scale=settings.rate_scale,
        seed=settings.seed,
        target_env=settings.target_env,
        old_env=settings.old_env if settings.old_target else None,
        service=settings.service or None,
        shape=settings.shape,
        processes=settings.processes,
        rails=config.rails,
        extra=settings.locust_args,
        progress=live,
    )


def _replay(
    settings: NightlySettings,
    config: Config,
    baseline: Path,
    out_dir: Path,
    progress: Callable[[str], None],
    live: ProgressSink | None,
) -> tuple[Measurement, str, int | None]:
    """Run the replay against ``target``; (the recorded Measurement, its status, the signal that stopped it
    early or None). Refused when a rail refused the target; BadInput when nothing can be judged."""
    run = _replay_run(settings, config, baseline, out_dir, live)
    log = out_dir / "locust.log"
    progress(
        f"replaying {baseline.name} against {settings.target}: {settings.duration_s:g} s, {settings.shape}, "
        f"rate scale {settings.rate_scale:g}"
    )
    ended = run_replay(run, log, settings.duration_s + REPLAY_SLACK_S)
    code = ended.code
    if code == EXIT_ABORTED and not run.out.is_file():
        raise Refused(f"{refusal_reason(log)} (log: {log})")
    if code not in REPLAY_STATUS or not run.out.is_file():
        if ended.signal is not None:
            raise ended.nothing_recorded("the replay", log)
        if code is None:
            raise BadInput(f"the replay did not finish in time; see {log}")
        raise BadInput(f"the replay failed (exit {code}): {log_tail(log)} (log: {log})")
    return measurement_json.read(run.out), REPLAY_STATUS[code], ended.signal


def _replay_ab(
    settings: NightlySettings,
    config: Config,
    baseline: Path,
    out_dir: Path,
    progress: Callable[[str], None],
    live: ProgressSink | None,
) -> tuple[ParityResult, tuple[Measurement, Measurement], str, int | None]:
    """Run the concurrent A/B replay (``old_target`` and ``target`` at once) and judge new against old;
    (the result, (old, new), the replay's status, the signal that stopped it early or None). Refused when a rail
    refused a target; BadInput when nothing can be judged."""
    run = _replay_run(settings, config, baseline, out_dir, live)
    log = out_dir / "locust.log"
    progress(
        f"replaying {baseline.name} against old {settings.old_target} and {settings.target_env} {settings.target} "
        f"at once (concurrent A/B): {settings.duration_s:g} s, {settings.shape}, rate scale {settings.rate_scale:g}"
    )
    names = (f"{settings.old_env} ({settings.old_target})", f"{settings.target_env} ({settings.target})")
    outcome = run_ab(run, config.policy, log_path=log, slack_s=REPLAY_SLACK_S, names=names)
    if outcome.status == REFUSED or outcome.result is None or outcome.sides is None:
        raise Refused(f"{outcome.refusal} (log: {log})")
    return outcome.result, outcome.sides, outcome.status, outcome.interrupted


def _write_summary(outcome: NightlyOutcome) -> None:
    doc = {
        "night": outcome.night,
        "verdict": outcome.decisive.verdict.value,
        "replay_verdict": outcome.result.verdict.value,
        "server_side_verdict": None if outcome.server_side is None else outcome.server_side.verdict.value,
        "exit_code": outcome.exit_code,
        "baseline_refreshed": outcome.baseline_refreshed,
        "replay": outcome.replay_status,
        "history_run": outcome.history_run,
        "pushed_to_datadog": outcome.pushed,
        "interrupted": None if outcome.interrupted is None else signal.Signals(outcome.interrupted).name,
        "explain": None if outcome.explained is None else outcome.explained.summary(outcome.out_dir),
        "notes": list(outcome.notes),
    }
    write_atomic(outcome.out_dir / "nightly.json", json.dumps(doc, indent=2) + "\n")


def run_nightly(
    settings: NightlySettings,
    config: Config,
    meta: RunMeta,
    *,
    now: datetime,
    keys: DatadogKeys | None = None,
    push: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    live: ProgressSink | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> NightlyOutcome:
    """Run one night (see the module docstring). ``now`` names the night (:func:`claim_night`: a directory of
    its own even when another night started in the same second) and dates the baseline's age. ``progress`` gets
    each step's line; ``live`` draws the replay's live progress (None: none)."""
    night, out_dir = claim_night(settings.out, now)
    baseline, refreshed, notes = _baseline(settings, keys, now, progress)
    if settings.old_target:
        result, sides, status, interrupted = _replay_ab(settings, config, settings.baseline, out_dir, progress, live)
        candidate = sides[1]
        progress(f"compared {settings.target_env} against {settings.old_env} (concurrent A/B)")
    else:
        candidate, status, interrupted = _replay(settings, config, settings.baseline, out_dir, progress, live)
        progress("comparing the candidate against the baseline")
        names = (str(settings.baseline), f"{settings.target_env} replay ({settings.target})")
        result = compare(baseline, candidate, config.policy, names=names)
        sides = (baseline, candidate)
    if status != "complete":
        notes.append(f"replay {status}: judged on what was recorded")
    write_reports(result, out_dir, meta, measurements=sides)
    if interrupted is not None:
        comparison = "a/b" if settings.old_target else "replay"
        explain = comparison if settings.explain else None
        return _cut_short(night, out_dir, result, refreshed, status, interrupted, notes, progress, explain)
    server_side, apm = None, None
    if settings.candidate_apm is not None:
        server_side, apm = _server_side(settings, keys, baseline, candidate, config, out_dir, meta, sleep)
        progress(f"server-side comparison: {server_side.verdict.value}")
    decisive = decisive_result(result, server_side)
    if decisive is not result:
        notes.append(
            "the replay's latency is client-side and the baseline's server-side: the night's latency verdict is the "
            "candidate's own server-side figures against the baseline (server-side/)"
        )
    report_dir = _report_dir(out_dir, decisive, server_side)
    explained = None
    if settings.explain:
        decisive_sides = sides if decisive is result or apm is None else (baseline, apm)
        explained = explain_night(
            settings, keys, result, server_side, decisive_sides, baseline, report_dir, progress=progress
        )
        if explained.explanations:
            write_reports(decisive, report_dir, meta, measurements=decisive_sides, explanations=explained.explanations)
    report = settings.report_url.format(night=night) if settings.report_url else str(report_dir / "index.html")
    history_run = _record(settings.history, decisive, meta, report, progress)
    outcome = NightlyOutcome(
        night=night,
        out_dir=out_dir,
        result=result,
        server_side=server_side,
        baseline_refreshed=refreshed,
        replay_status=status,
        history_run=history_run,
        pushed=False,
        notes=tuple(notes),
        explained=explained,
    )
    _write_summary(outcome)  # written before the push: a push that fails leaves the night's record whole
    if push or settings.push_datadog:
        _push(keys, decisive, report, settings, progress)
        outcome = replace(outcome, pushed=True)
        _write_summary(outcome)
    return outcome


def _cut_short(
    night: str,
    out_dir: Path,
    result: ParityResult,
    refreshed: bool,
    status: str,
    signum: int,
    notes: list[str],
    progress: Callable[[str], None],
    explain: str | None = None,
) -> NightlyOutcome:
    """The night after a signal stopped its replay: reported on what was recorded, and nothing more (no candidate
    APM wait, no explanation, no history row, no push). ``explain``: the comparison that would have been explained
    (``replay``, ``a/b``), None when none was asked for."""
    name = signal.Signals(signum).name
    notes.append(f"stopped by {name}: the replay is incomplete; candidate APM, history and push were skipped")
    explained = NightExplained(explain, skipped=f"stopped by {name}: not explained") if explain else None
    progress(f"stopped by {name}: the night's reports hold what the replay recorded (incomplete)")
    outcome = NightlyOutcome(
        night=night,
        out_dir=out_dir,
        result=result,
        server_side=None,
        baseline_refreshed=refreshed,
        replay_status=status,
        history_run=None,
        pushed=False,
        notes=tuple(notes),
        interrupted=signum,
        explained=explained,
    )
    _write_summary(outcome)
    return outcome


def _server_side(
    settings: NightlySettings,
    keys: DatadogKeys | None,
    baseline: Measurement,
    candidate: Measurement,
    config: Config,
    out_dir: Path,
    meta: RunMeta,
    sleep: Callable[[float], None],
) -> tuple[ParityResult, Measurement]:
    """Pull the candidate's APM over the replay's window (the whole minutes around it, once ``delay_s`` has
    passed after the last one) and judge it, as the replay's server-side record
    (:func:`parity.sources.replay_window.server_side_of`: the replay's window and rate scale), against the
    baseline; (the result, the candidate's APM Measurement)."""
    from parity.sources.replay_window import apm_window, seconds_until_ingested, server_side_of

    source = settings.candidate_apm
    assert source is not None
    start, end = apm_window(candidate)
    wait = seconds_until_ingested(candidate, datetime.now(UTC), source.delay_s)
    if wait > 0:
        sleep(math.ceil(wait))
    apm = server_side_of(_pull(source, keys, start, end, settings.dd_url), candidate)
    measurement_json.write(apm, out_dir / "candidate-apm.measurement.json")
    result = compare(baseline, apm, config.policy, names=("baseline", f"{source.service}/{source.env} APM"))
    write_reports(result, out_dir / "server-side", meta, measurements=(baseline, apm))
    return result, apm


#: Why the replay's comparison is not explained without ``[nightly.candidate_apm]``.
NO_CANDIDATE_APM = (
    "no [nightly.candidate_apm]: the candidate's APM env and service are not known (its replay side is the load "
    "generator's view)"
)


def explain_night(
    settings: NightlySettings,
    keys: DatadogKeys | None,
    result: ParityResult,
    server_side: ParityResult | None,
    sides: tuple[Measurement, Measurement],
    baseline: Measurement,
    out: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> NightExplained:
    """Explain the comparison that decides the night (:func:`decisive_result` of ``result`` and ``server_side``;
    ``sides`` are its two Measurements) into ``out/explain.json`` (``parity.explain.command.explain_to_dir``: its top
    regressed endpoints, each side's sampled traces over its compared window).

    Whose traces: the server-side comparison's sides as their Measurements name them (both are APM); the A/B's old
    side ``[nightly.pull]``'s env and service (else ``old_env`` and ``service``, else the baseline's service), its
    new side ``[nightly.candidate_apm]``'s (else ``target_env`` and that service); the replay's comparison the
    baseline's own (else ``[nightly.pull]``'s) against ``[nightly.candidate_apm]``'s, and nothing without it
    (skipped). The server-side comparison's baseline side falls back to ``[nightly.pull]``'s too (a baseline from
    access logs names no APM env or service). Every
    endpoint is searched by the APM resource the baseline recorded for it. Keys: ``keys`` (none: skipped); site:
    the APM tables' ``site``, else the keys'. Never raises and never changes a verdict: whatever fails is
    :attr:`NightExplained.skipped`."""
    from parity.explain.command import DatadogAccess, explain_to_dir

    decisive = decisive_result(result, server_side)
    pull, apm = settings.pull, settings.candidate_apm
    service = settings.service or baseline.source.service or None
    fallback = (pull.env, pull.service) if pull else (None, None)
    if decisive is server_side:  # a baseline from access logs names no APM env/service: [nightly.pull]'s
        comparison = "server-side"
        named = apm_named(
            decisive,
            old=(decisive.baseline.env or fallback[0], decisive.baseline.service or fallback[1]),
            new=(None, None),
        )
    elif settings.old_target:
        comparison = "a/b"
        named = apm_named(
            result,
            old=(pull.env, pull.service) if pull else (settings.old_env, service),
            new=(apm.env, apm.service) if apm else (settings.target_env, service),
        )
    else:
        comparison = "replay"
        if apm is None:
            return NightExplained(comparison, skipped=NO_CANDIDATE_APM)
        named = apm_named(
            result,
            old=(result.baseline.env or fallback[0], result.baseline.service or fallback[1]),
            new=(apm.env, apm.service),
        )
    old, new = (with_replayed_resources(side, baseline) for side in sides)
    span = apm.span if apm else pull.span if pull else "rack.request"
    site = (apm and apm.site) or (pull and pull.site) or (keys.site if keys else None)
    environ = {"DD_API_KEY": keys.api_key, "DD_APP_KEY": keys.app_key} if keys else {}
    access = DatadogAccess.from_environ(environ, site=site, dd_url=settings.dd_url)
    progress(f"explaining the {comparison} comparison's regressed endpoints from APM traces")
    try:
        done = explain_to_dir(access, out, named, old, new, span=span, progress=progress)
    except Exception as exc:  # an explanation is an extra: whatever goes wrong in it never ends the night
        return NightExplained(comparison, skipped=f"explain failed: {type(exc).__name__}: {exc}")
    if done.skipped is not None:
        progress(f"no explanation: {done.skipped}")
        return NightExplained(comparison, skipped=done.skipped)
    return NightExplained(comparison, done.path, done.explanations)


def _record(store: Path, result: ParityResult, meta: RunMeta, report: str, progress: Callable[[str], None]) -> int:
    from parity.history.command import record_run

    run = record_run(store, result, meta, report)
    progress(f"history: night recorded in {store} (run {run})")
    return run


def _push(
    keys: DatadogKeys | None,
    result: ParityResult,
    report: str,
    settings: NightlySettings,
    progress: Callable[[str], None],
) -> None:
    from parity.datadog import push_result

    if keys is None or not keys.api_key:
        raise BadInput("DD_API_KEY must be set to push results to Datadog (export it in the environment)")
    push_result(
        result,
        api_key=keys.api_key,
        site=keys.site,
        dd_url=settings.dd_url,
        report_url=report,
        tags=settings.datadog_tags,
    )
    progress("pushed the parity metrics and an event to Datadog")

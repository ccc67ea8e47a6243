"""Concurrent A/B: replay one baseline against an old and a new deployment at once, then judge new against old.

One Locust child process (``parity.replay.process``) runs the dual-target replay (``--old-host``): the same
open-model schedule and request draws go to both targets at their planned times, and it writes both
Measurements with a shared pair id. The core then reads them and judges ``new`` against ``old`` with
``parity.judge.compare.compare`` (a concurrent A/B comparison). ``parity ab``, ``parity demo`` and the A/B
nightly all run through :func:`run_ab`. I/O orchestration only: no printing, no argv.

Outcomes (``AbOutcome``): the replay completed, completed only in part, was aborted by a safety rail (each
judged on what was recorded), or was refused by a safety rail before any request (nothing to judge). A replay
that failed to start (bad options, unreadable baseline) or left no Measurements raises BadInput.

A SIGINT/SIGTERM while the replay runs is forwarded to it (``parity.replay.process``): it stops and writes both
Measurements marked incomplete, which are judged like any incomplete run, and the outcome records the signal
(exit code 128 + signal). Stopped before it wrote them: Interrupted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from parity import measurement_json
from parity.errors import EXIT_ABORTED, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REGRESSION, BadInput
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import ParityResult, Verdict
from parity.model import Measurement
from parity.replay.process import REPLAY_STATUS, ReplayExit, ReplayRun, log_tail, planned_run_s, run_replay

__all__ = [
    "REFUSED",
    "REPLAY_SLACK_S",
    "AbOutcome",
    "apm_named",
    "refusal_reason",
    "replay_status",
    "run_ab",
    "with_replayed_resources",
    "with_resources",
]

#: Seconds a replay may run beyond its planned run time (start-up, waiting for workers, drain, writing the
#: Measurements) before it is interrupted.
REPLAY_SLACK_S = 120.0
#: Status of a replay a safety rail refused before sending anything (exit code 4, no Measurement).
REFUSED = "refused by a safety rail"
_REFUSAL = re.compile(r"parity: refused: (.*)")


@dataclass(frozen=True)
class AbOutcome:
    """What an A/B run did: its status (``REPLAY_STATUS`` values or ``REFUSED``), the judgement of new against old
    (None when refused), the Measurement files and what they hold, the Locust log, and the refusal's reason."""

    status: str
    result: ParityResult | None
    old_path: Path
    new_path: Path
    log_path: Path
    sides: tuple[Measurement, Measurement] | None = None  # (old, new) as read from the files
    refusal: str | None = None
    interrupted: int | None = None  # the signal (SIGINT/SIGTERM) that stopped the run early

    @property
    def exit_code(self) -> int:
        """128 + signal when a signal stopped the run; 4 when a safety rail refused or aborted the replay; else the
        verdict's (1 fail, 3 inconclusive — also for a replay that did not complete and found no regression —,
        0 pass or marginal)."""
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.status in (REFUSED, REPLAY_STATUS[4]) or self.result is None:
            return EXIT_ABORTED
        if self.result.verdict is Verdict.FAIL:
            return EXIT_REGRESSION
        if self.result.verdict is Verdict.INCONCLUSIVE or self.status != REPLAY_STATUS[0]:
            return EXIT_INCONCLUSIVE
        return EXIT_OK


def refusal_reason(log_path: Path) -> str:
    """Why a safety rail refused a replay: its log's last ``parity: refused:`` line, else the log's tail."""
    try:
        text = log_path.read_text("utf-8", errors="replace")
    except OSError:
        return "see the Locust log"
    found = _REFUSAL.findall(text)
    return found[-1].strip() if found else log_tail(log_path)


def replay_status(ended: ReplayExit, written: bool, what: str, log_path: Path) -> str:
    """The status of a replay child that ended as ``ended``, ``written`` telling whether it wrote its
    Measurement(s): :data:`REFUSED` when a safety rail refused it before any request, else a ``REPLAY_STATUS``
    value (incomplete when it was stopped for running late). Interrupted when a signal stopped it before it wrote
    anything; BadInput (naming ``what``, e.g. "the replay") when it failed or wrote nothing."""
    code = ended.code
    if code == EXIT_ABORTED and not written:
        return REFUSED
    status = REPLAY_STATUS[EXIT_INCONCLUSIVE] if code is None else REPLAY_STATUS.get(code)
    if status is None or not written:
        if ended.signal is not None:
            raise ended.nothing_recorded(what, log_path)
        why = "did not finish in time" if code is None else f"failed (exit {code})"
        raise BadInput(f"{what} {why}: {log_tail(log_path)} (log: {log_path})")
    return status


def run_ab(
    run: ReplayRun,
    policy: Policy | None = None,
    *,
    log_path: Path,
    slack_s: float = REPLAY_SLACK_S,
    names: tuple[str, str] | None = None,
) -> AbOutcome:
    """Run the dual-target replay ``run`` (``run.old_host`` and ``run.old_out`` set; ``run.host`` is the new
    target) and judge new against old. The child is bounded by the planned run time + ``slack_s`` seconds (then
    interrupted, and judged as incomplete on what it recorded). ``names`` label the sides in the reports (default:
    ``old (URL)``, ``new (URL)``). BadInput when the replay failed or wrote no Measurements."""
    if not run.old_host or run.old_out is None:
        raise ValueError("run_ab needs a replay with an old host and an old output file")
    ended = run_replay(run, log_path, planned_run_s(run) + slack_s)
    old_path, new_path = run.old_out, run.out
    status = replay_status(ended, old_path.is_file() and new_path.is_file(), "the A/B replay", log_path)
    if status == REFUSED:
        return AbOutcome(REFUSED, None, old_path, new_path, log_path, refusal=refusal_reason(log_path))
    old, new = measurement_json.read(old_path), measurement_json.read(new_path)
    names = names or (f"old ({run.old_host})", f"new ({run.host})")
    result = compare(old, new, policy, names=names)
    return AbOutcome(status, result, old_path, new_path, log_path, (old, new), interrupted=ended.signal)


def with_resources(side: Measurement, resources: Mapping[str, str]) -> Measurement:
    """``side`` with each endpoint that names no APM resource given ``resources[key]`` (e.g.
    ``EmployeesController#show``); an endpoint not in ``resources``, or one that names a resource, is kept."""
    endpoints = tuple(
        e if e.resource or e.endpoint.key not in resources else replace(e, resource=resources[e.endpoint.key])
        for e in side.endpoints
    )
    return replace(side, endpoints=endpoints)


def with_replayed_resources(side: Measurement, replayed: Measurement) -> Measurement:
    """``side`` (a replay's recording) with each endpoint's APM resource taken from the baseline it replayed, where
    ``side`` names none: a replay records method + route only, and its target's traces carry the application's
    resource names. An endpoint the baseline does not hold, or holds without a resource, keeps None (its key is
    then the resource searched)."""
    return with_resources(side, {e.endpoint.key: e.resource for e in replayed.endpoints if e.resource})


def apm_named(result: ParityResult, *, old: tuple[str | None, str | None], new: tuple[str | None, str | None]
              ) -> ParityResult:  # fmt: skip
    """``result`` with each side's APM (env, service) replaced by the given ones (None: kept), for reading that
    side's traces (``--explain``); the verdict and everything judged are the same object's."""
    return replace(
        result,
        baseline=replace(result.baseline, env=old[0] or result.baseline.env, service=old[1] or result.baseline.service),
        candidate=replace(
            result.candidate, env=new[0] or result.candidate.env, service=new[1] or result.candidate.service
        ),
    )

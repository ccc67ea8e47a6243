"""One replay against one target (``parity replay``), optionally judged against a reference Measurement.

The same Locust child as ``parity ab`` (``parity.replay.process.run_replay``), with one host: it writes the
candidate's Measurement; when a reference is given, the candidate is judged against it
(``parity.judge.compare.compare``). I/O orchestration only: no printing, no argv.

Outcomes (``ReplayOutcome``): the replay completed, completed only in part, was aborted by a safety rail (each
recorded, and judged when a reference was given), or was refused before any request (nothing recorded). A replay
that failed to start (bad options, unreadable baseline) or left no Measurement raises BadInput; a signal that
stopped it before it wrote one raises Interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parity import measurement_json
from parity.ab import REFUSED, REPLAY_SLACK_S, refusal_reason, replay_status
from parity.errors import EXIT_ABORTED, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_REGRESSION
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import ParityResult, Verdict
from parity.model import Measurement
from parity.replay.process import REPLAY_STATUS, ReplayRun, planned_run_s, run_replay

__all__ = ["REFUSED", "Reference", "ReplayOutcome", "run_single"]


@dataclass(frozen=True)
class Reference:
    """The Measurement a replay is judged against, and its name in the reports (its file name)."""

    measurement: Measurement
    name: str


@dataclass(frozen=True)
class ReplayOutcome:
    """What a single-target replay did: its status (``REPLAY_STATUS`` values or ``REFUSED``), the candidate's
    Measurement file and what it holds (None when refused), the judgement against the reference (None when
    none was given, or nothing was recorded), the Locust log, the refusal's reason and the signal that stopped
    the run early."""

    status: str
    measurement_path: Path
    log_path: Path
    candidate: Measurement | None = None
    result: ParityResult | None = None
    refusal: str | None = None
    interrupted: int | None = None

    @property
    def exit_code(self) -> int:
        """128 + signal when a signal stopped the run; 4 when a safety rail refused or aborted it; judged: 1 fail,
        3 inconclusive or an incomplete run without a regression, 0 pass or marginal; not judged: 0 when the run
        was recorded whole, 3 when only in part."""
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.status in (REFUSED, REPLAY_STATUS[EXIT_ABORTED]) or self.candidate is None:
            return EXIT_ABORTED
        if self.result is not None and self.result.verdict is Verdict.FAIL:
            return EXIT_REGRESSION
        if self.status != REPLAY_STATUS[EXIT_OK]:
            return EXIT_INCONCLUSIVE
        if self.result is not None and self.result.verdict is Verdict.INCONCLUSIVE:
            return EXIT_INCONCLUSIVE
        return EXIT_OK


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def run_single(
    run: ReplayRun,
    policy: Policy | None = None,
    *,
    log_path: Path,
    reference: Reference | None = None,
    slack_s: float = REPLAY_SLACK_S,
) -> ReplayOutcome:
    """Replay ``run`` (one host; ``run.old_host`` must be unset) in a Locust child bounded by its planned run time
    + ``slack_s`` seconds (then stopped, and recorded as incomplete), read the Measurement it wrote to ``run.out``
    and, with a ``reference``, judge it against that. A file at ``run.out`` left by an earlier run is never read as
    this run's (the child must have written it anew). BadInput when the replay failed or wrote nothing."""
    if run.old_host:
        raise ValueError("run_single replays one target: use parity.ab.run_ab for an A/B pair")
    before = _mtime_ns(run.out)
    ended = run_replay(run, log_path, planned_run_s(run) + slack_s)
    after = _mtime_ns(run.out)
    status = replay_status(ended, after is not None and after != before, "the replay", log_path)
    if status == REFUSED:
        return ReplayOutcome(REFUSED, run.out, log_path, refusal=refusal_reason(log_path))
    candidate = measurement_json.read(run.out)
    result = None
    if reference is not None:
        names = (reference.name, str(run.out))
        result = compare(reference.measurement, candidate, policy, names=names)
    return ReplayOutcome(status, run.out, log_path, candidate, result, interrupted=ended.signal)

"""``parity demo``: a concurrent A/B replay of the bundled baseline against the old and new demo profiles.

1. Start the ``old`` and ``new`` demo services (one server process, a loopback port each: a busy machine delays
   both alike — the planted bottlenecks themselves take no real CPU, see ``parity.demo.server``).
2. Run ONE headless Locust replay of the bundled baseline that sends every scheduled request to both at its
   planned time (``parity.ab.run_ab``: ``--old-host``), writing both Measurements with a shared pair id.
3. Compare new against old and hand back the result (the CLI writes the reports).
Servers and the Locust process are stopped on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import parity
from parity import measurement_json
from parity.ab import REPLAY_SLACK_S, run_ab
from parity.demo import DEFAULT_DURATION_S, DEFAULT_RATE_SCALE
from parity.demo.baseline import build_baseline
from parity.demo.processes import Service, running_servers
from parity.errors import BadInput, Interrupted
from parity.judge.policy import Policy
from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.replay.process import REPLAY_STATUS, ProgressSink, ReplayRun

__all__ = [
    "DEFAULT_DURATION_S",
    "DEFAULT_RATE_SCALE",
    "DemoOptions",
    "DemoOutcome",
    "bundled_baseline",
    "run_demo",
]


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = DEFAULT_DURATION_S
    rate_scale: float = DEFAULT_RATE_SCALE
    seed: int = 1
    out_dir: Path = Path("reports/demo")
    baseline: Path | None = None  # None: the bundled baseline


@dataclass(frozen=True)
class DemoOutcome:
    result: ParityResult
    old_measurement: Path
    new_measurement: Path
    sides: tuple[Measurement, Measurement]  # (old, new) as read from those files


def bundled_baseline() -> Path | None:
    """``baselines/demo.json`` of the source tree, when the package runs from one."""
    path = Path(parity.__file__).resolve().parent.parent / "baselines" / "demo.json"
    return path if path.is_file() else None


def run_demo(
    options: DemoOptions,
    policy: Policy | None = None,
    progress: Callable[[str], None] = lambda _: None,
    live: ProgressSink | None = None,
) -> DemoOutcome:
    """Run the demo (see module docstring); raises RuntimeError when a step fails. ``progress`` gets a line per
    step, ``live`` the replay's live progress (``ReplayRun.progress``)."""
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        baseline = options.baseline or bundled_baseline()
        if baseline is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.json"
            baseline = measurement_json.write(build_baseline(), tmp)
        progress("starting the old (EC2) and new (EKS) demo services")
        old_url, new_url = stack.enter_context(running_servers([Service("old"), Service("new")], seed=options.seed))
        progress(
            f"replaying {baseline.name} against both at once (one Locust run): {options.duration_s:g} s, "
            f"rate scale {options.rate_scale:g} (old {old_url}, new {new_url})"
        )
        run = ReplayRun(
            baseline=baseline,
            host=new_url,
            out=out / "new.measurement.json",
            old_host=old_url,
            old_out=out / "old.measurement.json",
            run_time_s=options.duration_s,
            rate_scale=options.rate_scale,
            seed=options.seed,
            target_env="new",
            old_env="old",
            service="hr-payroll",
            progress=live,
        )
        try:
            names = ("old (old.measurement.json)", "new (new.measurement.json)")
            outcome = run_ab(run, policy, log_path=out / "locust.log", slack_s=REPLAY_SLACK_S, names=names)
        except BadInput as exc:
            raise RuntimeError(str(exc)) from None
    if outcome.interrupted is not None:
        raise Interrupted(outcome.interrupted, f"the demo's replay was stopped (log: {outcome.log_path})")
    if outcome.result is None or outcome.sides is None or outcome.status != REPLAY_STATUS[0]:
        why = f": {outcome.refusal}" if outcome.refusal else ""
        raise RuntimeError(f"the replay was {outcome.status}{why} (log: {outcome.log_path})")
    progress("compared new against old")
    return DemoOutcome(outcome.result, outcome.old_path, outcome.new_path, outcome.sides)

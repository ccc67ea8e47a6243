"""``parity demo``: a concurrent A/B replay of the bundled baseline against the old and new demo profiles.

1. Start the ``old`` and ``new`` demo servers (separate processes, loopback, free ports).
2. Run two headless Locust replays of the bundled baseline *at the same time*, one per target, with the
   same seed (so both receive the same requests at the same offsets) and a shared pair id.
3. Compare new against old and write the reports.
Servers and Locust processes are stopped on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import parity
from parity import measurement_json
from parity.demo.baseline import build_baseline
from parity.demo.processes import running_server
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.replay.process import locust_process, locustfile_path, log_tail

__all__ = [
    "DEFAULT_DURATION_S",
    "DEFAULT_RATE_SCALE",
    "DemoOptions",
    "DemoOutcome",
    "bundled_baseline",
    "run_demo",
]

#: Default replay length: the bundled day compressed into this many seconds.
DEFAULT_DURATION_S = 75.0
#: Default load relative to the baseline's production rate.
DEFAULT_RATE_SCALE = 1.5
#: Seconds to wait for a replay beyond its run time (start-up, drain, report) before giving up.
LOCUST_SLACK_S = 90.0


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
    options: DemoOptions, policy: Policy | None = None, progress: Callable[[str], None] = lambda _: None
) -> DemoOutcome:
    """Run the demo (see module docstring); raises RuntimeError when a step fails."""
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        baseline = options.baseline or bundled_baseline()
        if baseline is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.json"
            baseline = measurement_json.write(build_baseline(), tmp)
        progress("starting the old (EC2) and new (EKS) demo servers")
        old_url = stack.enter_context(running_server("old", seed=options.seed))
        new_url = stack.enter_context(running_server("new", seed=options.seed))
        pair_id = uuid.uuid4().hex[:12]
        progress(
            f"replaying {baseline.name} against both at once: {options.duration_s:g} s, "
            f"rate scale {options.rate_scale:g} (old {old_url}, new {new_url})"
        )
        procs = {}
        for env, url in (("old", old_url), ("new", new_url)):
            args = [
                "-f", locustfile_path(), "--headless", "--only-summary", "--host", url,
                "--baseline", str(baseline), "-t", f"{options.duration_s:g}s",
                "--rate-scale", f"{options.rate_scale:g}", "--seed", str(options.seed),
                "--parity-out", str(out / f"{env}.measurement.json"), "--pair-id", pair_id,
                "--target-env", env, "--service", "hr-payroll",
            ]  # fmt: skip
            procs[env] = stack.enter_context(locust_process(args, out / f"locust-{env}.log"))
        deadline = time.monotonic() + options.duration_s + LOCUST_SLACK_S
        for env, proc in procs.items():
            try:
                code = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"the {env} replay did not finish in time; see {out}/locust-{env}.log") from None
            if code != 0:
                log = out / f"locust-{env}.log"
                raise RuntimeError(f"the {env} replay failed (exit {code}): {log_tail(log)} (log: {log})")
    progress("comparing new against old")
    old_path, new_path = out / "old.measurement.json", out / "new.measurement.json"
    old, new = measurement_json.read(old_path), measurement_json.read(new_path)
    result = compare(old, new, policy, names=(f"old ({old_path.name})", f"new ({new_path.name})"))
    return DemoOutcome(result, old_path, new_path, (old, new))

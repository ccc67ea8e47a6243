"""``parity demo``: a concurrent A/B replay of the bundled baseline against the old and new demo profiles.

1. Start the ``old`` and ``new`` demo services (one server process, a loopback port each: a busy machine delays
   both alike — the planted bottlenecks themselves take no real CPU, see ``parity.demo.server``).
2. Run ONE headless Locust replay of the bundled baseline that sends every scheduled request to both at its
   planned time (``parity.ab.run_ab``: ``--old-host``), writing both Measurements with a shared pair id.
3. Compare new against old.
4. Explain it (unless ``DemoOptions.explain`` is off): both services send whole traces (at most
   ``parity.demo.server.TRACE_RATE_PER_S`` per second and endpoint) to a local fake Datadog
   (``parity.demo.apm.DemoDatadog``) under the env names the Measurements carry (``old``, ``new``) and the service
   ``hr-payroll``; once the replay is over, the services' last traces are flushed and the services stopped, and
   EVERY endpoint of the result is explained from those traces, read back through the real Datadog client's Spans
   API exactly as ``compare --explain`` reads them (``parity.explain.command.explain_to_dir``), before the fake
   stops. The Measurements of a replay record no APM resource, so each endpoint's resource is the demo catalogue's
   (what the demo server names its traces). Writes ``explain.json`` beside the reports; whatever goes wrong there
   is one ``skipped`` reason and never the demo's failure or a verdict's change.
Hand back the result and the explanations (the CLI writes the reports). Servers, the fake Datadog and the Locust
process are stopped on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import parity
from parity import measurement_json
from parity.ab import REPLAY_SLACK_S, run_ab, with_resources
from parity.demo import DEFAULT_DURATION_S, DEFAULT_RATE_SCALE
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.baseline import build_baseline
from parity.demo.catalog import CATALOG
from parity.demo.processes import Service, fetch_stats, running_servers
from parity.errors import BadInput, Interrupted
from parity.explain.command import EXPLAIN_FILE, DatadogAccess, ExplainOutcome, explain_to_dir
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
    "with_demo_resources",
]

#: Seconds the demo waits, after the replay, for the services to have sent every trace they recorded.
TRACE_FLUSH_TIMEOUT_S = 15.0
#: Seconds between two looks at the services' trace counts while waiting for them to flush.
TRACE_FLUSH_POLL_S = 0.2


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = DEFAULT_DURATION_S
    rate_scale: float = DEFAULT_RATE_SCALE
    seed: int = 1
    out_dir: Path = Path("reports/demo")
    baseline: Path | None = None  # None: the bundled baseline
    explain: bool = True  # explain every endpoint from the services' traces (step 4)


@dataclass(frozen=True)
class DemoOutcome:
    result: ParityResult
    old_measurement: Path
    new_measurement: Path
    sides: tuple[Measurement, Measurement]  # (old, new) as read from those files
    explained: ExplainOutcome | None = None  # None: not asked for (DemoOptions.explain off)


def bundled_baseline() -> Path | None:
    """``baselines/demo.json`` of the source tree, when the package runs from one."""
    path = Path(parity.__file__).resolve().parent.parent / "baselines" / "demo.json"
    return path if path.is_file() else None


def with_demo_resources(measurement: Measurement) -> Measurement:
    """``measurement`` with each endpoint's APM resource set to the demo catalogue's (``PayrollCalculationsController
    #create`` for ``POST /api/payroll/calculations``): the resource the demo server names that endpoint's traces. An
    endpoint the catalogue lacks, or one that already records a resource, is kept as it is."""
    return with_resources(measurement, {e.key: e.resource for e in CATALOG})


def _await_traces_sent(urls: list[str], timeout_s: float = TRACE_FLUSH_TIMEOUT_S) -> str | None:
    """Wait (at most ``timeout_s`` seconds) until every service at ``urls`` has sent or dropped each trace span it
    recorded; None when they have, else a one-line note (still unsent after the wait, spans dropped, or the counts
    unreadable). Nothing is fabricated for what is missing: the explanation reads what arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            counts = [fetch_stats(url).get("traces") or {} for url in urls]
        except (OSError, ValueError, RuntimeError) as exc:
            return f"the services' trace counts could not be read ({exc}); explaining from the traces that arrived"
        pending = sum(max(0, c.get("recorded", 0) - c.get("sent", 0) - c.get("dropped", 0)) for c in counts)
        if pending == 0:
            dropped = sum(c.get("dropped", 0) for c in counts)
            return (
                f"{dropped} trace span(s) dropped by the services before they reached the fake Datadog"
                if dropped
                else None
            )
        if time.monotonic() >= deadline:
            return (
                f"{pending} trace span(s) still unsent after {timeout_s:g} s; explaining from the traces that arrived"
            )
        time.sleep(TRACE_FLUSH_POLL_S)


def _fake_datadog(stack: ExitStack) -> DemoDatadog | str:
    """A started fake Datadog, closed with ``stack``; or the one-line reason it could not start."""
    try:
        return stack.enter_context(DemoDatadog())
    except OSError as exc:
        return f"the demo's fake Datadog could not start: {exc.strerror or exc}"


def run_demo(
    options: DemoOptions,
    policy: Policy | None = None,
    progress: Callable[[str], None] = lambda _: None,
    live: ProgressSink | None = None,
) -> DemoOutcome:
    """Run the demo (see module docstring); raises RuntimeError when a step fails (never for the explanation: what
    goes wrong there is :attr:`DemoOutcome.explained`'s ``skipped``). ``progress`` gets a line per step, ``live``
    the replay's live progress (``ReplayRun.progress``)."""
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    # an explain.json of an earlier demo here would describe other runs: this run writes its own, or none
    with contextlib.suppress(OSError):  # one that cannot go is reported when this run's cannot be written
        (out / EXPLAIN_FILE).unlink(missing_ok=True)
    with ExitStack() as stack:
        baseline = options.baseline or bundled_baseline()
        if baseline is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.json"
            baseline = measurement_json.write(build_baseline(), tmp)
        datadog = _fake_datadog(stack) if options.explain else None
        apm_url = datadog.intake_url if isinstance(datadog, DemoDatadog) else None
        progress("starting the old (EC2) and new (EKS) demo services")
        if isinstance(datadog, DemoDatadog):
            progress(f"both send APM traces to the demo's fake Datadog ({datadog.url})")
        flush_note: str | None = None
        with running_servers(
            [Service("old", apm_env="old"), Service("new", apm_env="new")], seed=options.seed, apm_url=apm_url
        ) as (old_url, new_url):
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
            if apm_url is not None and outcome.result is not None:
                flush_note = _await_traces_sent([old_url, new_url])
        # the services are stopped here (their last traces sent on the way out); the fake Datadog still runs
        if outcome.interrupted is not None:
            raise Interrupted(outcome.interrupted, f"the demo's replay was stopped (log: {outcome.log_path})")
        if outcome.result is None or outcome.sides is None or outcome.status != REPLAY_STATUS[0]:
            why = f": {outcome.refusal}" if outcome.refusal else ""
            raise RuntimeError(f"the replay was {outcome.status}{why} (log: {outcome.log_path})")
        progress("compared new against old")
        explained: ExplainOutcome | None = None
        if isinstance(datadog, str):
            explained = ExplainOutcome(skipped=datadog)
        elif datadog is not None:
            if flush_note is not None:
                progress(f"note: {flush_note}")
            explained = _explain(datadog, out, outcome.result, outcome.sides, progress)
    return DemoOutcome(outcome.result, outcome.old_path, outcome.new_path, outcome.sides, explained)


def _explain(
    datadog: DemoDatadog,
    out: Path,
    result: ParityResult,
    sides: tuple[Measurement, Measurement],
    progress: Callable[[str], None],
) -> ExplainOutcome:
    """Every endpoint of ``result`` explained from the traces in ``datadog``, read with the real client (see the
    module docstring, step 4); ``out/explain.json`` written. Never raises for what it cannot do."""
    keys = [e.endpoint.key for e in result.endpoints]
    progress(f"explaining all {len(keys)} endpoints from both services' sampled traces (Spans API of {datadog.url})")
    started = time.monotonic()
    explained = explain_to_dir(
        DatadogAccess(DEMO_API_KEY, DEMO_APP_KEY, dd_url=datadog.url),
        out,
        result,
        with_demo_resources(sides[0]),
        with_demo_resources(sides[1]),
        endpoints=keys,
    )
    if explained.path is not None:
        progress(f"explained in {time.monotonic() - started:.1f} s ({explained.path})")
    return explained

"""``parity demo cutover``: the cutover gate end to end on loopback, in compressed time (2-2.5 minutes).

What runs (every part real, nothing mocked; all on 127.0.0.1, all stopped on every exit path, Ctrl-C included):

1. the demo's fake Datadog (:class:`parity.demo.apm.DemoDatadog`): span intake + the v2 scalar query API;
2. ONE demo server process with the old (EC2) service and the new (EKS) one, each reporting every request as
   an APM span (``--apm-url``, env ``ec2`` / ``eks``, service ``hr-payroll``, span ``rack.request``; batches
   every 0.5 s). The new one is ``new-cutover`` (:data:`parity.demo.catalog.NEW_CUTOVER`: the old deployment
   whose requests each hold one of TWO primary-database connections from their start: the planted
   load-dependent bottleneck), or with ``bottleneck=False`` the old profile again (a clean migration);
3. moto's Route 53 on loopback with the weighted CNAME group old 100 / new 0 (:class:`parity.demo.dns.DemoDns`);
4. the weighted router (:class:`parity.demo.router.WeightedRouter`) between the two services, polling the
   weights from Route 53 with the real boto3 calls (every ``ROUTER_POLL_S``, answers kept the records' TTL);
5. a replay of the bundled demo baseline through the router: its production mix at a steady
   ``rate_rps`` (open model, one Locust child process, bounded by ``REPLAY_BUDGET_S``);
6. the cutover driver (:func:`parity.cutover.run.run_cutover`) in this process: reads both environments from
   the fake Datadog through the real client (:class:`parity.cutover.live_apm.DatadogLiveApm`), shifts with
   :class:`parity.cutover.route53.Route53Shifter`, journals, decides, rolls back, writes ``DIR/index.html``,
   ``DIR/cutover.json``, ``DIR/summary.md`` and ``DIR/journal.jsonl``; the Datadog event goes to the fake. After a
   STOP's rollback it explains the stop (:mod:`parity.cutover.explain`) from the services' whole traces
   (``TRACE_RATE_PER_S``), read back through the real Spans client: ``DIR/explain.json`` and why lines; the pool
   of 2's wait is a ``connection_pool.wait`` span (queueing).

The compressed timing (why these numbers; ``benchmarks/demo_cutover_timing.py`` and
``benchmarks/demo_cutover_bottleneck.py`` measure them):

- ``DEMO_RATE_RPS`` = 120 req/s through the router (a Python proxy on a shared 2-core machine: modest). A check
  every ``INTERVAL_S`` = 2 s sees 240 requests, split by the weight.
- The gate's latency test counts an interval only with at least ``min_interval_hits("avg_ms")`` = 3 hits a side
  (a p95 needs 100, never reached here: the demo judges ``avg_ms`` only, so no alpha goes to tests that cannot
  speak), and needs ``MIN_LATENCY_INTERVALS`` = 5 usable intervals. At 1 % no endpoint reaches 3 new-side hits
  in 2 s (2.4 requests in all); at 10 % only ``GET /api/employees/{id}`` (20 % of the mix: 4.8 a check) does; at
  50 % every endpoint above 2 % of the mix does. So the small steps are "not decidable at this weight" (the
  decision core projects each test to the maximum hold) and GO after the minimum hold with nothing shown
  worse; at 50 % every endpoint with at least ``MIN_TRAFFIC_SHARE`` = 13 % of the traffic
  (``/api/employees/{id}`` 20 %, ``/api/employees`` 14 %) is decidable and must be shown within tolerance.
- Tolerance: ``AVG_TOLERANCE`` = 25 % on ``avg_ms`` (the judge's default is 5 % + 1 ms: showing a 5 % bound
  takes ~1,700 requests of an endpoint on each side, minutes the demo does not have). Seeded simulation of the
  50 % step with the real gate (100 req/s, 2-s checks, 60 runs): with the bottleneck the first STOP comes after
  5 checks (median; 90th percentile 7, max 11); without it both endpoints are shown within 25 % after 14
  checks (median; 90th percentile 21, max 30).
- Holds: ``MIN_HOLD_S`` = 30 s (15 checks). The decision core lets a step GO at the minimum hold past an
  endpoint "not decidable at this weight" even at 50 %, and the bottleneck's queueing variance makes the busiest
  endpoints so: at 100 req/s and a 12-check hold the 50 % step once went on (a false GO) before the STOP had its
  evidence. The minimum hold must therefore cover the STOP: it took 9-11 checks in full runs. ``MAX_HOLD_S`` =
  80 s (40 checks: above the 30 the 50 % step may need without the bottleneck; small enough that the 10 % step is
  not decidable, else it would need the same proof from a fifth of the traffic). ``SETTLE_S`` = 2 s: the
  records' TTL (1 s) + the router's poll (0.25 s), rounded up to the driver's whole-second windows.
  ``DELAY_S`` = 3 s: spans leave the servers every 0.5 s after their request ends, and a request of the new
  side ends within ``CUTOVER_CHECKOUT_TIMEOUT_S`` = 2 s of waiting for the pool (a 500 after it). A span read
  before it arrived is lost to the gate for good: with 1 s (and the profile's 5 s checkout time-out), a loaded
  machine (load 8-10) made the pool's queue outgrow the delay, the gate saw only the new side's quick
  requests (19 % of the traffic at 50 %, normal latencies) and HELD or went on instead of stopping.
- Steps ``DEMO_STEPS`` = 1, 10, 50, 100 % (the default's 5 % left out: each step costs a minimum hold).
- Measured on this shared machine (``parity demo cutover``): with the bottleneck STOPPED at 50 % after 11
  checks and rolled back to 0 % (read back from moto), 98 s wall, exit 1; without it COMPLETED (50 % shown within
  tolerance after 15 checks), 141 s wall, exit 0; SIGINT during step 1: ABORTED, exit 130, everything stopped.
  Beside two CPU-bound loops (load 8-12): STOPPED at 50 % after 2 checks by the error-rate guardrail (the pool's
  2-s time-outs: 35 % errors on ``GET /api/employees/{id}/attendance``), rolled back to 0 %, 131 s wall, exit 4;
  the e2e test's shorter run at load 8.7 STOPPED on the latency regression after 5 checks (exit 1). With
  ``DELAY_S`` = 3 s, ``--no-bottleneck`` at load ~10 COMPLETED in 164 s wall (each step's first check 2 s later).

The planted bottleneck (``benchmarks/demo_cutover_bottleneck.py``, A/B at the new side's rate, spans as the
gate sees them): at 120 req/s, 10 % (12 req/s to the new side) waits 0.83 ms a request for the pool, mean
new/old ×1.04 (``GET /api/employees/{id}`` ×1.13); 50 % (60 req/s) waits 24 ms, ``GET /api/employees/{id}`` ×2.9,
mean ×2.15. At 100 req/s: 0.44 ms, ×1.02 at 10 %; 13 ms, ×1.64 at 50 %.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from parity.cutover.journal import JOURNAL_NAME
from parity.cutover.model import ApmSelector, CutoverRun, Outcome, ShiftError, StopExplanation
from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.catalog import CATALOG, DemoEndpoint
from parity.demo.processes import Service, running_servers
from parity.demo.server import APM_SERVICE, APM_SPAN
from parity.errors import BadInput
from parity.judge.policy import DEFAULT_RULES, Policy
from parity.replay.process import (
    PARENT_PID_ENV,
    ReplayRun,
    child_environment,
    log_tail,
    replay_args,
)

if TYPE_CHECKING:
    from parity.cutover.settings import CutoverSettings

__all__ = [
    "AVG_TOLERANCE",
    "DEMO_RATE_RPS",
    "EXPLAIN_TRACES",
    "INTERVAL_S",
    "MAX_HOLD_S",
    "MIN_HOLD_S",
    "TRACE_RATE_PER_S",
    "CutoverDemoOptions",
    "CutoverDemoOutcome",
    "demo_policy",
    "demo_settings",
    "rails_routes_text",
    "run_cutover_demo",
]

#: The demo's steps (percent to the new side): the default's 5 % step is left out, each step costs a minimum hold.
DEMO_STEPS: tuple[float, ...] = (1.0, 10.0, 50.0, 100.0)
#: Requests per second the replay sends through the router (the bundled baseline's mix, steady).
DEMO_RATE_RPS = 120.0
#: The gate's check interval (s), minimum and maximum hold per step (s), settle after a verified shift (s), and
#: the APM ingestion delay (s) of the demo (see the module docstring for the arithmetic).
INTERVAL_S = 2.0
MIN_HOLD_S = 30.0
MAX_HOLD_S = 80.0
SETTLE_S = 2.0
DELAY_S = 3.0
#: The demo's tolerance on the mean latency (relative; the absolute floor stays the judge's 1 ms).
AVG_TOLERANCE = 0.25
#: Endpoints with at least this share of the requests seen must be shown within tolerance for a GO.
MIN_TRAFFIC_SHARE = 0.13
#: Checks in a row without APM data before the gate holds. At 1 % the new side gets ~2 requests a check and a
#: check where it got none reads as missing (the live reader cannot tell no traffic from data not yet ingested):
#: 13 % of the checks (0.99^200); 3 in a row somewhere in a 40-check step would then happen ~7 % of the time,
#: 5 in a row ~0.15 %.
MAX_MISSING_CHECKS = 5
#: Guardrail: the new side's error rate shown above this stops at once.
GUARDRAIL_ERROR_RATE = 0.05
#: Environments of the two services' spans (the ``env`` tag the gate's selectors read).
OLD_ENV, NEW_ENV = "ec2", "eks"
#: Seconds the router waits between two weight reads from Route 53.
ROUTER_POLL_S = 0.25
#: Longest the replay child may send (s): beyond the slowest demo (it is stopped when the cutover ends).
REPLAY_BUDGET_S = 300.0
#: Seconds to wait for the replay's first requests to come through the router before giving up.
TRAFFIC_TIMEOUT_S = 60.0
#: Requests through the router before the cutover starts (the replay is up and sending).
WARM_REQUESTS = 50
#: Seconds the replay child gets to exit after SIGTERM before it is killed.
REPLAY_STOP_S = 10.0
#: Whole traces per second and endpoint each service sends (the server's default is 2): a STOP comes after a few
#: 2-s checks, and the explanation reads the stopped step's checks only (10-30 s); at 2/s its ~20 traces a side
#: left the pool's queueing undecided on the busiest endpoint (interval -0.4…+24 ms), at 6/s the busiest endpoints
#: give up to ``EXPLAIN_TRACES`` a side. Cost: the traced requests' spans (about 5 a trace) to the fake Datadog.
TRACE_RATE_PER_S = 6.0
#: Traces read per side and endpoint when a STOP is explained (the Spans client's default is 30).
EXPLAIN_TRACES = 60


@dataclass(frozen=True)
class CutoverDemoOptions:
    """What to run. ``bottleneck``: the new side is ``new-cutover`` (False: the old profile again).
    ``steps``/``rate_rps``/``max_hold_s``: the hidden knobs tests use to run a shorter demo. ``explain``: a STOP is
    explained from the services' traces in the fake Datadog (read back with the real Spans client)."""

    out_dir: Path = Path("reports/demo-cutover")
    bottleneck: bool = True
    rate_rps: float = DEMO_RATE_RPS
    steps: tuple[float, ...] = DEMO_STEPS
    max_hold_s: float = MAX_HOLD_S
    seed: int = 1
    explain: bool = True


@dataclass(frozen=True)
class CutoverDemoOutcome:
    """The cutover as its journal tells it, the weight read back from Route 53 after everything stopped
    (percent to the new side; None when the read failed), and the router's counts (old, new)."""

    run: CutoverRun
    exit_code: int
    weight_after_pct: float | None
    routed: tuple[int, int]


def demo_policy() -> Policy:
    """The judge's default policy with the demo's ``avg_ms`` tolerance (``AVG_TOLERANCE``)."""
    rules = dict(DEFAULT_RULES)
    rules["avg_ms"] = replace(rules["avg_ms"], tolerance=AVG_TOLERANCE)
    return Policy(rules=rules)


def _rails_target(endpoint: DemoEndpoint) -> str:
    """``EmployeesController#show`` → ``employees#show`` (Rails' controller path, snake case)."""
    controller, action = endpoint.resource.split("#", 1)
    name = controller.removesuffix("Controller")
    snake = "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
    return f"{snake}#{action}"


def rails_routes_text(catalog: Sequence[DemoEndpoint] = CATALOG) -> str:
    """The demo service's routes as ``bin/rails routes`` prints them (the route map that turns its APM
    resources, ``EmployeesController#show``, into the harness's endpoint keys, ``GET /api/employees/{id}``)."""
    rows = [("Prefix", "Verb", "URI Pattern", "Controller#Action")]
    for endpoint in catalog:
        uri = endpoint.route.replace("{", ":").replace("}", "")
        if "." not in uri.rsplit("/", 1)[-1]:
            uri += "(.:format)"
        rows.append(("", endpoint.method, uri, _rails_target(endpoint)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{p:>{widths[0]}} {v:<{widths[1]}} {u:<{widths[2]}} {t}".rstrip() for p, v, u, t in rows]
    return "\n".join(lines) + "\n"


def demo_settings(options: CutoverDemoOptions, shifter: dict[str, str], dd_url: str, routes: Path) -> CutoverSettings:
    """The ``[cutover]`` settings of the demo (see the module docstring), shifting the demo's Route 53 group
    (``shifter``: :meth:`parity.demo.dns.DemoDns.settings`) and reading the fake Datadog at ``dd_url``."""
    from parity.cutover.settings import CutoverSettings, Guardrails, ShifterSettings

    return CutoverSettings(
        old=ApmSelector(APM_SERVICE, OLD_ENV, APM_SPAN),
        new=ApmSelector(APM_SERVICE, NEW_ENV, APM_SPAN),
        shifter=ShifterSettings(
            kind="route53",
            zone_id=shifter["zone_id"],
            record_name=shifter["record_name"],
            record_type=shifter["record_type"],
            old_set_id=shifter["old_set_id"],
            new_set_id=shifter["new_set_id"],
            region=shifter["region"],
            endpoint_url=shifter["endpoint_url"],
        ),
        steps=options.steps,
        interval_s=INTERVAL_S,
        min_hold_s=MIN_HOLD_S,
        max_hold_s=options.max_hold_s,
        settle_s=SETTLE_S,
        delay_s=DELAY_S,
        rollback_weight=0.0,
        latency_metrics=("avg_ms",),
        go_metrics=("avg_ms",),
        min_traffic_share=MIN_TRAFFIC_SHARE,
        max_missing_checks=MAX_MISSING_CHECKS,
        endpoints=tuple(endpoint.key for endpoint in CATALOG),
        routes=routes,
        out=options.out_dir,
        datadog_tags=("demo:parity",),
        dd_url=dd_url,
        guardrails=Guardrails(error_rate=GUARDRAIL_ERROR_RATE),
    )


@contextmanager
def _replay_child(run: ReplayRun, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The replay's Locust child, in its own session (a terminal's Ctrl-C reaches this process only, which then
    stops it), output in ``log_path``; stopped (SIGTERM, killed after ``REPLAY_STOP_S``) and reaped on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", *replay_args(run)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**child_environment(os.environ), PARENT_PID_ENV: str(os.getpid())},
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=REPLAY_STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()


def _set_aside_previous_journal(path: Path) -> Path | None:
    """Move a previous demo's journal aside (``journal-<its mtime>.jsonl``; returns the new path, None when
    there was none). Every demo starts its own Route 53, services and fake Datadog, so a journal left by an
    earlier demo (ended, or interrupted by Ctrl-C: no ``end``) describes a cutover that cannot be continued;
    left in place, the driver would refuse the fresh start with advice (``parity cutover --resume``) that does
    not apply to the demo."""
    if not path.exists():
        return None
    target = path.with_name(f"journal-{int(path.stat().st_mtime)}.jsonl")
    n = 1
    while target.exists():
        target = path.with_name(f"journal-{int(path.stat().st_mtime)}-{n}.jsonl")
        n += 1
    path.rename(target)
    return target


def _prepare_out(out: Path, progress: Callable[[str], None]) -> Path:
    """Before anything starts: create ``out``, write the route map (its path returned) and set a previous
    demo's journal aside. BadInput (one line) when ``out`` cannot be written."""
    routes = out / "routes.txt"
    try:
        out.mkdir(parents=True, exist_ok=True)
        routes.write_text(rails_routes_text(), encoding="utf-8")
        kept = _set_aside_previous_journal(out / JOURNAL_NAME)
    except OSError as exc:
        raise BadInput(f"demo cutover: cannot write to {out}: {exc.strerror or exc}") from None
    if kept is not None:
        progress(f"the previous demo's journal (it ran against servers that are gone) is kept as {kept.name}")
    return routes


def _await_traffic(counts: Callable[[], int], proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Wait until ``WARM_REQUESTS`` went through the router; RuntimeError when the replay died or stayed silent."""
    deadline = time.monotonic() + TRAFFIC_TIMEOUT_S
    while counts() < WARM_REQUESTS:
        if proc.poll() is not None:
            raise RuntimeError(f"the replay exited with code {proc.returncode}: {log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no traffic through the router after {TRAFFIC_TIMEOUT_S:g} s: {log_tail(log_path)}")
        time.sleep(0.2)


def _explainer(
    dd_url: str, routes: Path, progress: Callable[[str], None]
) -> Callable[[CutoverRun, Path], StopExplanation]:
    """A STOP's explanation from the fake Datadog at ``dd_url`` through the real Spans client (the demo's keys), its
    resources through the demo's route map."""
    from parity.cutover.explain import explainer
    from parity.explain.command import DatadogAccess
    from parity.explain.datadog_spans import SamplePolicy

    access = DatadogAccess(DEMO_API_KEY, DEMO_APP_KEY, dd_url=dd_url)
    return explainer(access, routes=routes, policy=SamplePolicy(traces=EXPLAIN_TRACES), progress=progress)


def run_cutover_demo(
    options: CutoverDemoOptions, progress: Callable[[str], None] = lambda _: None
) -> CutoverDemoOutcome:
    """Run the demo (see the module docstring). ``progress`` gets one line per step and every line of the driver.
    RuntimeError when a part fails to start; KeyboardInterrupt / ``parity.errors.Interrupted`` while the cutover
    runs are journaled by the driver (ABORTED); everything started is stopped on every path."""
    from parity.cutover.live_apm import DatadogLiveApm
    from parity.cutover.run import cutover_exit_code, event_of, run_cutover
    from parity.demo.dns import DemoDns
    from parity.demo.router import WeightedRouter
    from parity.demo.runner import bundled_baseline

    baseline = bundled_baseline()
    if baseline is None:
        raise BadInput(
            "demo cutover: the bundled baseline (baselines/demo.json) is not there: run from the source tree"
        )
    out = options.out_dir
    routes = _prepare_out(out, progress)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parity-demo-cutover-")))
        progress("starting the fake Datadog, Route 53 (moto) and the old (ec2) and new (eks) services")
        datadog = stack.enter_context(DemoDatadog())
        new_profile = "new-cutover" if options.bottleneck else "old"
        services = [Service("old", apm_env=OLD_ENV), Service(new_profile, apm_env=NEW_ENV)]
        old_url, new_url = stack.enter_context(
            running_servers(services, seed=options.seed, apm_url=datadog.intake_url, trace_rate=TRACE_RATE_PER_S)
        )
        dns = stack.enter_context(DemoDns())
        router = stack.enter_context(
            WeightedRouter(
                old_url, new_url, dns.shifter().read, poll_s=ROUTER_POLL_S, ttl_s=dns.ttl_s, seed=options.seed
            )
        )
        what = (
            "with the planted bottleneck (new side: pool of 2, held per request)"
            if options.bottleneck
            else ("without a bottleneck (new side = old deployment)")
        )
        progress(f"replaying the bundled baseline through the router at {options.rate_rps:g} req/s, {what}")
        replay = ReplayRun(
            baseline=baseline,
            host=router.url,
            out=work / "replay.measurement.json",
            run_time_s=REPLAY_BUDGET_S,
            shape="steady",
            rps=options.rate_rps,
            seed=options.seed,
            service=APM_SERVICE,
        )
        log_path = out / "locust.log"
        proc = stack.enter_context(_replay_child(replay, log_path))
        _await_traffic(lambda: router.counts().old + router.counts().new, proc, log_path)
        settings = demo_settings(options, dns.settings(), datadog.url, routes)
        apm = stack.enter_context(
            DatadogLiveApm.connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=datadog.url)
        )

        def send_event(run: CutoverRun) -> None:
            from parity.datadog import connect_intake, post_event

            event = event_of(run, settings.datadog_tags)
            with connect_intake(api_key=DEMO_API_KEY, dd_url=datadog.url) as intake:
                post_event(
                    intake, title=event.title, text=event.text, alert_type=event.alert_type, tags=list(event.tags),
                    aggregation_key=event.aggregation_key,
                )  # fmt: skip

        progress(
            f"cutover: steps {', '.join(f'{s:g}' for s in options.steps)} %, a check every {INTERVAL_S:g} s, holds "
            f"{MIN_HOLD_S:g}-{options.max_hold_s:g} s, avg latency tolerance {AVG_TOLERANCE:.0%}"
        )
        run = run_cutover(
            settings,
            apm=apm,
            shifter=dns.shifter(),
            journal_path=out / JOURNAL_NAME,
            send_event=send_event,
            progress=progress,
            judge=demo_policy(),
            explain=_explainer(datadog.url, routes, progress) if options.explain else None,
        )
        counts = router.counts()
        weight_after: float | None
        try:
            weight_after = dns.shifter().read()
        except (ShiftError, OSError):  # a read-back that fails is unknown, never a weight
            weight_after = None
        if run.outcome is Outcome.STOPPED:
            progress(f"rolled back: Route 53 now sends {weight_after if weight_after is not None else '?'}% to eks")
        progress("stopping the replay, the router, Route 53, the services and the fake Datadog")
    shutil.rmtree(work, ignore_errors=True)
    return CutoverDemoOutcome(run, cutover_exit_code(run), weight_after, (counts.old, counts.new))

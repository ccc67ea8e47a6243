"""Locust glue for replaying a baseline: options, the pacing user, the shape, and the recorder's events.

Run it through ``loadtests/replay.py``::

    locust -f loadtests/replay.py --headless --host http://127.0.0.1:8080 \\
        --baseline baselines/demo.json -t 60s --parity-out reports/run.json [--processes 2]

How it works:
- The baseline's whole window (e.g. one day) is compressed into the run time (``-t``); requests follow
  the baseline's per-endpoint rate over the window times ``--rate-scale`` (see ``parity.replay.schedule``).
- One pacing user per Locust process (the ``ReplayShape`` asks for one user per worker) hands each request,
  at its scheduled time, to ``--max-in-flight`` long-lived sender greenlets, whatever the target's response
  time (see ``ReplayUser``); the process samples its own CPU per interval (generator health).
  With N workers, worker k sends the arrivals numbered k mod N:
  the same requests as a single process, split without overlap.
- Each process records latency per endpoint into sketches; workers ship them to the master with their
  reports, the master merges them and writes the Measurement (``--parity-out``) when Locust quits — also
  after a stop (below), with what was recorded so far.
- After its last send a user waits for its requests in flight (at most ``--request-timeout``), ships its
  remaining data and stops; the run ends when every lane has finished.
- Stopping early: SIGINT/SIGTERM (handlers installed explicitly in every process: an inherited ignored SIGINT
  must not disable Ctrl-C; Locust's own SIGTERM handler is only installed after a headless shape run) stops
  every lane's sends; requests in flight get ``SIGNAL_GRACE_S`` (at most ``--request-timeout``); the run then
  ends as usual and the Measurement(s) are written with ``complete = no`` and ``stopped`` = the reason
  (``SIGTERM after 12.3 s of 60 s``), exit code 3. A second signal writes what was recorded, if not yet
  written, and exits at once (every writer writes a temporary file and renames it).
- Rule for lanes that end early: **a lane that ends early ends the run.** A worker lane stopped by a signal
  to its worker, or lost (Locust has had its worker missing — no heartbeat — for ``LOST_AFTER_S`` more
  seconds), makes the master stop the other lanes the same way; ``stopped`` names the lane and
  ``lost_lanes`` lists the lost ones (what they recorded since their last report is missing). Workers watch
  their master: a worker forked by ``--processes`` exits when its parent process is gone, any worker after
  ``MASTER_SILENT_S`` without a heartbeat from its master.
- Each request has one total deadline, ``--request-timeout`` (connect, write, headers and the whole body), and
  its body is read in chunks and dropped, at most ``--max-response-bytes``: a timeout or a longer body is the
  request's error (no latency). Every request sent is accounted for per target: recorded (with a latency, or an
  error) or, when the run ended before its answer, counted ``in_flight`` (``GeneratorHealth``).
- Safety rails hold in every mode (headless, web UI, master/worker, ``--processes``): the targets are checked
  against the allow-list at every test start (also one started from the web UI with another host) on the master,
  and again by every lane on the connection its senders will use, before its first request; a refused target
  gets nothing, the run ends and the process exits 4 with one line ``parity: refused: ...``. The rails are read
  once, at start-up, from the options and parity.toml: the web UI's form cannot loosen them. ``--max-rps`` is a
  sliding window (``rails.RateCap``), split among lanes. Locust's web UI listens on 127.0.0.1 unless
  ``--web-host`` says otherwise, and so does the master's port for its workers (``--processes``, ``--master``)
  unless ``--master-bind-host`` does (``'*'``: every interface, for workers on other hosts).

Concurrent A/B (``--old-host URL``): every scheduled arrival is sent to both targets at its planned time — the
same schedule, the same request draws. Locust's ``--host`` is the new (candidate) target. Each target has its
own dispatcher, sender pool and HTTP connections, so a slow target cannot delay the other's sends, and its own
recorder. Neither target is systematically first: for half of the arrivals (by arrival number) the old target's
dispatcher hands the arrival out first, for the other half the new one's, and a dispatcher catching up after the
process was held back yields to the other every ``AB_YIELD_EVERY`` sends. Locust's own stats name the old side's
requests ``[old] ROUTE``; the recorders key both by the route. The process's CPU samples go to both recorders;
send counters (sent, late, dropped, unsent) are kept per target. The safety rails apply to both hosts (a refused
host: exit 4 before any request; an abort rule watches both and names the side; ``--max-rps`` and
``--max-in-flight`` apply to each target). On quit both Measurements are written — ``--parity-out`` (new) and
``--old-out`` (default: ``<stem>.old.json`` next to ``--parity-out``) — with one ``pair_id`` (``--pair-id``, else a
generated one), ``env`` from ``--target-env`` (default ``new``) and ``--old-env`` (default ``old``), and the same
complete/partial state. Workers get the old host with their lane.

Request bodies: ``--bodies DIR`` (``parity.replay.bodies``: one JSON template per endpoint, ``POST_api_x_{id}.json``)
replaces the baseline's bodies; the master reads them and sends them to the workers with their lane. A write
endpoint (POST, PUT, PATCH) still without a body refuses the run before it starts (one line, exit 2) unless
``--allow-empty-bodies``: then one loud warning, and the Measurement's ``replayed_without_body`` label lists them.

Every Measurement is labelled with its baseline's fingerprint (``replay_of``) and the schedule's (``schedule``:
baseline, seed, shape, run time, rate scale, oversampling); ``--min-endpoint-rps R`` raises every endpoint whose
mean planned rate is below R req/s to R (``shapes.oversample``), recorded as the endpoint's ``load_factor``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import gevent
import psutil
from gevent.event import Event
from gevent.queue import Queue
from geventhttpclient.client import HTTPClient
from geventhttpclient.url import URL
from locust import FastHttpUser, LoadTestShape, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.exception import CatchResponseError, StopUser
from locust.runners import STATE_MISSING, STATE_STOPPED, WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner
from locust.user.task import LOCUST_STATE_STOPPING

from parity import measurement_json, version
from parity.config import Config, find_config, load_config
from parity.errors import EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE, EXIT_OK, BadInput, reading
from parity.judge.completeness import UNEQUAL_SIDES, unequal_sides
from parity.judge.policy import Policy
from parity.model import (
    LABEL_REPLAY_OF,
    LABEL_SCHEDULE,
    LABEL_WITHOUT_BODY,
    Measurement,
    Source,
    SourceKind,
    fingerprint,
)
from parity.progress import PLAIN_EVERY_S, ProgressLine, plain_every_s
from parity.replay import shapes
from parity.replay.bodies import body_file_name, check_body_placeholders, load_bodies
from parity.replay.endpoint_filter import EndpointFilter, FilteredPlan, filter_plan, no_match_message, parse_globs
from parity.replay.plan import UNFILLABLE_VALUE, ReplayPlan, build_plan
from parity.replay.process import PARENT_PID_ENV, run_path  # PARENT_PID_ENV: the replay stops when its starter is gone
from parity.replay.progress import SNAPSHOT_EVERY_S, ReplayProgress, format_progress, take_snapshot, write_snapshot
from parity.replay.rails import DEFAULT_MAX_RESPONSE_BYTES, Rails, RateCap, WindowStats, abort_reason, host_allowed
from parity.replay.recorder import GeneratorTotals, Recorder, StageSpan, timeline_interval
from parity.replay.sample_plan import replay_sample_plan
from parity.replay.schedule import Arrival, count_arrivals, iter_arrivals, schedule_fingerprint
from parity.replay.shapes import ShapedPlan, ShapeKind

__all__ = ["ReplayShape", "ReplayUser"]

log = logging.getLogger("parity.replay")

#: Extra seconds past run time + request timeout after which the shape ends the run regardless.
GRACE_S = 15.0
#: A send this many seconds behind its schedule counts as late.
LATE_S = 0.1
#: The dispatcher wakes this much before a send is due: the event loop wakes sleepers 0.2-1 ms late, and
#: later while it runs other greenlets. A send that starts early costs nothing in accuracy (intended-time
#: latency is never below service time); one that starts late adds its lateness to intended-time latency.
#: Measured at 500 req/s: with 1 ms, 1% of sends started over 1.3 ms late.
WAKE_EARLY_S = 0.002
#: The lag sampler (``_LagSampler``) sets a timer this often, seconds: often enough that any stall of the event loop
#: longer than this is seen; each wake costs microseconds.
LAG_SAMPLE_S = 0.02
#: Arrivals still not handed to a sender this long after the run's end are not sent (counted unsent).
UNSENT_AFTER_S = 1.0
#: Started requests are moved to the recorder's ``sent`` whenever the dispatcher waits, or once this many gathered.
COUNT_EVERY = 256
#: A response body is read (and dropped) in chunks of this many bytes, so memory stays bounded per sender.
READ_CHUNK = 64 * 1024
#: A/B: a dispatcher handing out arrivals that are already due (catching up after the process was held back)
#: lets the other target's dispatcher, just as far behind, run after this many, so the two backlogs go out
#: interleaved instead of one target's whole backlog first.
AB_YIELD_EVERY = 8
#: Request-context key holding a request's planned send time (Unix s), for intended-time latency.
INTENDED_AT = "parity_intended_at"
#: The targets of a concurrent A/B run; a single-target replay has only ``NEW`` (Locust's ``--host``).
NEW, OLD = "new", "old"
#: Request-context keys of an A/B run: the target a request went to, and its route (the recorder's name).
TARGET = "parity_target"
ROUTE = "parity_route"
#: Prefix of the old target's request names in Locust's own stats (its console table, CSV and web UI).
OLD_NAME_PREFIX = "[old] "
#: After a stop (SIGINT/SIGTERM, a lost or stopped lane), each lane waits this many seconds at most for its requests
#: in flight (never more than --request-timeout): long enough for a healthy target's answers, short enough to fit
#: the grace of a supervisor (``docker stop``: 10 s, Kubernetes: 30 s, ``parity nightly``: ``STOP_GRACE_S``).
SIGNAL_GRACE_S = 5.0
#: After a stop, the master ends the run this many seconds after the lanes' grace even if some never reported
#: (a worker's last report can take a report interval, 3 s, to arrive).
STOP_SLACK_S = 5.0
#: A worker Locust marked missing (no heartbeat for ~3 s) and still missing this many seconds later is lost (about
#: 12 s of silence in all): a worker on a starved CPU can miss a few heartbeats (loading its lane's plan blocks it
#: for seconds on a busy 2-core machine), and Locust takes it back when it answers again.
LOST_AFTER_S = 8.0
#: A worker exits when its master has not answered a heartbeat for this many seconds (Locust's own limit is 60 s).
MASTER_SILENT_S = 10.0
#: How often a worker checks its parent process and its master's heartbeat.
WATCH_EVERY_S = 0.5
#: Where Locust's web UI listens unless ``--web-host`` says otherwise: loopback, not every interface.
WEB_HOST = "127.0.0.1"
#: Where a master (``--master``, or the parent of ``--processes N``) listens for its workers unless
#: ``--master-bind-host`` says otherwise: loopback (Locust's own default is every interface). A multi-host run
#: (workers on other machines, ``deploy/k8s``) passes ``--master-bind-host '*'``.
MASTER_BIND_HOST = "127.0.0.1"
#: The live progress's recent window ends this many seconds before now: the last second's sends and answers are
#: still coming in (a master adds its workers' report interval, ``WORKER_REPORT_INTERVAL``).
PROGRESS_LAG_S = 1.0


class RequestTimeout(Exception):
    """A request got no whole response (connect, send, headers and body) within ``--request-timeout``."""


class ResponseTooLarge(Exception):
    """A response body longer than ``--max-response-bytes``: not read further, the connection is closed."""


@dataclass
class _Replay:
    """Process-wide replay state (Locust loads a locustfile once per process)."""

    config: dict[str, Any] = field(default_factory=dict)
    plan: ReplayPlan | None = None
    shaped: ShapedPlan | None = None
    recorders: dict[str, Recorder] = field(default_factory=lambda: {NEW: Recorder()})  # per target (NEW, OLD)
    lane: int = 0
    lanes: int = 1
    ready: Event = field(default_factory=Event)
    done_lanes: set[int] = field(default_factory=set)
    unfinished_lanes: set[int] = field(default_factory=set)
    finished_at: float | None = None
    written: dict[str, Path] = field(default_factory=dict)
    rails: Rails = field(default_factory=Rails)
    aborted: str | None = None
    failed: str | None = None  # a worker could not run its lane
    refused: str | None = None  # a safety rail refused a test start: nothing was sent, the process exits 4
    baseline_text: str = ""  # the master sends it to workers, which need no copy of the file
    baseline: Measurement | None = None
    replay_of: str = ""  # fingerprint of the baseline's traffic
    environment: Environment | None = None
    signals: int = 0  # SIGINT/SIGTERM received so far
    stop_reason: str | None = None  # why the run was stopped early (a signal, a lost or stopped lane)
    stop_at: float | None = None  # time.monotonic() of the stop
    stopping: Event = field(default_factory=Event)  # set when this process's lane must stop sending
    lane_clients: dict[int, str] = field(default_factory=dict)  # master: lane -> worker client id
    missing_since: dict[int, float] = field(default_factory=dict)  # master: lane -> monotonic time seen missing
    lost_lanes: set[int] = field(default_factory=set)  # master: lanes whose worker was lost
    filtered: FilteredPlan | None = None  # the endpoint filter's result (None: no --endpoints/--exclude-endpoints)
    run: int = 0  # master or single process: test starts so far (the web UI can start several runs)
    quit_after_stop: bool = False  # web UI: a signal stops the run in progress, then Locust quits
    unequal: str | None = None  # A/B: why the targets were not sent the same requests (the run is then partial)
    rejoined: set[str] = field(default_factory=set)  # web UI master: workers ready again since the last stop
    progress: _LiveProgress | None = None  # master or single process: the live progress of the run in progress


def _targets(config: dict[str, Any]) -> tuple[str, ...]:
    """The targets a replay with these settings sends to: (NEW,) or, with an old host, (NEW, OLD)."""
    return (NEW, OLD) if config.get("old_host") else (NEW,)


state = _Replay()


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("parity replay", "Replay a baseline Measurement (see parity README)")
    group.add_argument("--baseline", default="", help="Baseline Measurement file to replay (JSON).")
    group.add_argument(
        "--rate-scale", type=float, default=1.0, help="Multiply the baseline's request rate (default 1.0)."
    )
    group.add_argument("--seed", type=int, default=1, help="Seed of the arrival schedule (default 1).")
    group.add_argument("--parity-out", default="", help="Write the recorded Measurement to this path.")
    group.add_argument(
        "--max-in-flight",
        type=int,
        default=256,
        help="Requests in flight per process (and per target in an A/B run) at most (default 256).",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        help="Seconds a request may take in all (connect, send, headers and whole body) before it is abandoned "
        "and counted as an error (default 30).",
    )
    group.add_argument(
        "--max-response-bytes",
        type=int,
        default=None,
        metavar="N",
        help="A response body longer than N bytes is not read further and counts as an error (default 64 MiB, "
        "or max_response_bytes in [replay] of parity.toml).",
    )
    group.add_argument("--pair-id", default="", help="Tag shared by the Measurements of a concurrent A/B run.")
    group.add_argument("--target-env", default="", help="Name of the target environment, for the report.")
    group.add_argument(
        "--old-host",
        default="",
        metavar="URL",
        help="Concurrent A/B: also send every request to this old environment at the same planned time "
        "(--host is the new one).",
    )
    group.add_argument(
        "--old-out",
        default="",
        metavar="FILE",
        help="A/B: write the old side's Measurement here (default: <stem>.old.json next to --parity-out).",
    )
    group.add_argument("--old-env", default=None, help="A/B: name of the old environment, for the report (old).")
    group.add_argument(
        "--min-endpoint-rps",
        type=float,
        default=None,
        metavar="R",
        help="Oversample: raise every endpoint planned below R req/s on average to R (recorded as its load_factor).",
    )
    group.add_argument("--service", default="", help="Service name, for the report.")
    group.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="Allow this target host besides loopback (repeatable; *.example.com for subdomains).",
    )
    group.add_argument(
        "--max-rps",
        type=float,
        default=None,
        help="Never send more requests per second than this (to each target in an A/B run).",
    )
    group.add_argument(
        "--abort-error-ratio", type=float, default=None, help="Abort when the error ratio over the window exceeds this."
    )
    group.add_argument(
        "--abort-p99-ms", type=float, default=None, help="Abort when p99 over the window exceeds this many ms."
    )
    group.add_argument("--abort-window", type=float, default=None, help="Seconds the abort rules look back (30).")
    group.add_argument(
        "--shape",
        choices=[k.value for k in ShapeKind],
        default="replay",
        help="replay (baseline window compressed into -t), steady (--rps), ramp (--steps, --step-duration) "
        "or burst (--burst-multiplier, --burst-start, --burst-duration).",
    )
    group.add_argument("--rps", type=float, default=None, help="steady: total requests per second.")
    group.add_argument(
        "--steps", default="1,5,10,50,100", help="ramp: percentages of the baseline's peak rate (1,5,10,50,100)."
    )
    group.add_argument("--step-duration", type=float, default=None, help="ramp: seconds per step.")
    group.add_argument("--burst-multiplier", type=float, default=3.0, help="burst: rate multiplier (3).")
    group.add_argument("--burst-start", type=float, default=None, help="burst: seconds into the run it starts.")
    group.add_argument("--burst-duration", type=float, default=None, help="burst: seconds it lasts.")
    group.add_argument(
        "--endpoints",
        action="append",
        default=[],
        metavar="GLOB",
        help="Replay only the endpoints whose key 'METHOD /route' matches GLOB (fnmatch; a GLOB without a space "
        "matches the route, any method); repeatable or comma-separated. Locust's --tags do not apply to the replay.",
    )
    group.add_argument(
        "--exclude-endpoints",
        action="append",
        default=[],
        metavar="GLOB",
        help="Leave out the endpoints whose key 'METHOD /route' matches GLOB (as --endpoints).",
    )
    group.add_argument(
        "--bodies",
        default=None,
        metavar="DIR",
        help="Request-body templates: one JSON file per endpoint, named METHOD_route.json with each / of the "
        "route as _ (POST_api_employees_{id}.json); {name} in string values is filled from the endpoint's pools "
        "(or bodies in [replay] of parity.toml).",
    )
    group.add_argument(
        "--allow-empty-bodies",
        action="store_true",
        default=False,
        help="Send POST/PUT/PATCH endpoints that have no body template without a body (by default the replay "
        "refuses to start); the Measurement and the report flag them.",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        default=False,
        help="No live progress line on stderr (by default a headless run redraws one in place on a terminal, and "
        f"prints it every {PLAIN_EVERY_S:g} s elsewhere: elapsed / planned, sent, rate vs plan, errors, late sends, "
        "recent p95). Locust's own output is unchanged (--only-summary drops its periodic table).",
    )
    group.add_argument(
        "--parity-progress-file",
        default="",
        metavar="FILE",
        help="Keep the latest progress snapshot in FILE (JSON, replaced every half second) for a parent process "
        "(parity ab, demo and replay draw it on their own terminal).",
    )
    # The web UI's form would show these as editable "custom parameters", but the replay reads them once at
    # start-up (a Start replays the command line's settings): keep them off the form rather than ignore edits.
    for action in group._group_actions:
        action.include_in_web_ui = False
    # Locust's web UI (without --headless) starts load from a form, and its master takes orders from any worker
    # that connects: both listen on loopback only unless told.
    parser.set_defaults(web_host=WEB_HOST, master_bind_host=MASTER_BIND_HOST)
    for action in parser._actions:
        if action.dest == "web_host":
            action.help = f"Host to bind the web interface to (parity replay default: {WEB_HOST}; '*' for all)"
        if action.dest == "master_bind_host":
            action.help = (
                f"IP address the master listens on for workers (parity replay default: {MASTER_BIND_HOST}, also "
                "with --processes; '*' for all interfaces: workers on other hosts)"
            )


def _fail(message: str) -> NoReturn:
    """Bad input: one line, exit code 2; workers forked by --processes are stopped too."""
    log.error("parity: error: %s", message)
    _stop_forked_workers()
    raise SystemExit(EXIT_BAD_INPUT)


def _stop_forked_workers() -> None:
    """A --processes master refusing its options at start-up: terminate the workers it forked. They are still
    connecting to it (Locust retries for minutes, before their own init and parent watch run), and Locust's atexit
    hook takes a still-running child for an exited one, so without this they would linger."""
    environment = state.environment
    if environment is None or not isinstance(environment.runner, MasterRunner):
        return
    if not getattr(environment.parsed_options, "processes", None):
        return
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()


def _refuse(message: str) -> NoReturn:
    """A safety rail refused the run before any request: one line, exit code 4."""
    log.error("parity: refused: %s", message)
    raise SystemExit(EXIT_ABORTED)


def _parity_config() -> Config:
    """parity.toml (or ``[tool.parity]``) found in the working directory, read once per run; a bad file ends
    the run like bad options (one line, exit code 2)."""
    try:
        return load_config(find_config(Path.cwd()))
    except BadInput as exc:
        _fail(str(exc))


def _rails(options: Any, rails: Rails) -> Rails:
    """``rails`` (the [replay] table of parity.toml) overridden by the options."""
    checks = (
        ("--max-rps", options.max_rps, None),
        ("--abort-error-ratio", options.abort_error_ratio, 1.0),
        ("--abort-p99-ms", options.abort_p99_ms, None),
        ("--abort-window", options.abort_window, None),
    )
    for name, value, upper in checks:
        if value is not None and not (value > 0 and math.isfinite(value) and (upper is None or value <= upper)):
            _fail(f"{name} must be > 0{'' if upper is None else f' and <= {upper:g}'}, got {value:g}")
    if options.max_response_bytes is not None and options.max_response_bytes < 1:
        _fail(f"--max-response-bytes must be >= 1, got {options.max_response_bytes}")
    return replace(
        rails,
        allow_hosts=rails.allow_hosts + tuple(options.allow_host or ()),
        max_rps=options.max_rps if options.max_rps is not None else rails.max_rps,
        abort_error_ratio=(
            options.abort_error_ratio if options.abort_error_ratio is not None else rails.abort_error_ratio
        ),
        abort_p99_ms=options.abort_p99_ms if options.abort_p99_ms is not None else rails.abort_p99_ms,
        abort_window_s=options.abort_window if options.abort_window is not None else rails.abort_window_s,
        max_response_bytes=(
            options.max_response_bytes if options.max_response_bytes is not None else rails.max_response_bytes
        ),
        bodies=options.bodies or rails.bodies,
        allow_empty_bodies=bool(options.allow_empty_bodies) or rails.allow_empty_bodies,
    )


def _not_allowed(hosts: dict[str, str], allow_hosts: tuple[str, ...]) -> str | None:
    """Why a target of ``hosts`` (target name -> base URL; empty URLs are skipped, except NEW's) may not be
    sent to, or None when every one is loopback or allow-listed (``rails.host_allowed``)."""
    ab = bool(hosts.get(OLD))
    for name, url in hosts.items():
        if name != NEW and not url:
            continue
        if not host_allowed(url, allow_hosts):
            side = f"{name} target" if ab else "target"
            what = f"{side} {url}" if url else f"{side} (no host given)"
            return (
                f"{what} is not allow-listed: only loopback unless --allow-host or [replay] allow_hosts "
                "in parity.toml names it"
            )
    return None


def _start_refusal(environment: Environment) -> str | None:
    """Why this test start may not send (a target not allow-listed, or a refusal earlier in this process), or
    None. The host is read now: the web UI's form may have changed it since start-up."""
    hosts = {NEW: environment.host or "", OLD: str(state.config.get("old_host") or "")}
    return state.refused or _not_allowed(hosts, state.rails.allow_hosts)


def _refuse_run(environment: Environment, message: str) -> None:
    """A safety rail refused a test start: nothing is sent, the run ends (Locust quits, its web UI too) and
    the process exits 4 (``_on_quitting``); one line says why."""
    if state.refused is None:
        log.error("parity: refused: %s", message)
        state.refused = message
    state.ready.clear()
    if state.config.get("host"):  # the refused host never became a target: an earlier run is written as it ran
        environment.host = state.config["host"]
    gevent.spawn(_quit, environment)


def _quit(environment: Environment) -> None:
    """End the Locust process: stop the runner (workers too) and the web UI, whose end lets Locust quit."""
    if environment.runner is not None:
        environment.runner.quit()
    if environment.web_ui is not None:
        environment.web_ui.stop()


def _shape_options(options: Any) -> dict[str, Any]:
    """The shape's settings from the options; the ramp's run time is its steps × step duration."""
    shape = ShapeKind(options.shape)
    out: dict[str, Any] = {"kind": shape.value}
    if shape is ShapeKind.STEADY:
        if options.rps is None:
            _fail("--shape steady needs --rps")
        out["rps"] = float(options.rps)
    elif shape is ShapeKind.RAMP:
        try:
            out["steps"] = [float(p) for p in str(options.steps).split(",") if p.strip()]
        except ValueError:
            _fail(f"--steps: expected comma-separated percentages such as 1,5,10,50,100, got {options.steps!r}")
        if options.step_duration is None:
            _fail("--shape ramp needs --step-duration (seconds per step)")
        out["step_s"] = float(options.step_duration)
    elif shape is ShapeKind.BURST:
        if options.burst_start is None or options.burst_duration is None:
            _fail("--shape burst needs --burst-start and --burst-duration (seconds into the run)")
        out.update(multiplier=options.burst_multiplier, start_s=options.burst_start, duration_s=options.burst_duration)
    return out


def _tags_refusal(options: Any) -> str | None:
    """Why Locust's ``--tags``/``--exclude-tags`` cannot run this replay (None when neither is given). They select
    tasks, and the replay's one task sends every endpoint: Locust would filter it away and loop on "No tasks
    defined on ReplayUser" until the shape's grace ran out, sending nothing."""
    given = [
        f"--{name.replace('_', '-')} {' '.join(v)}"
        for name in ("tags", "exclude_tags")
        if (v := getattr(options, name, None))
    ]
    if not given:
        return None
    return (
        f"{' '.join(given)}: Locust tags select tasks, and the replay has one task that sends every endpoint; "
        "select endpoints with --endpoints GLOB / --exclude-endpoints GLOB (e.g. --endpoints 'GET /api/*')"
    )


def _config_from_options(options: Any) -> dict[str, Any]:
    if not options.baseline:
        _fail("--baseline is required (a Measurement file to replay)")
    shape = _shape_options(options)
    if shape["kind"] == ShapeKind.RAMP.value:
        ramp_s = shape["step_s"] * len(shape["steps"])
        if options.run_time and abs(options.run_time - ramp_s) > 1:
            _fail(f"-t {options.run_time}s differs from the ramp's {ramp_s:g} s (steps x step duration): drop -t")
        options.run_time = options.run_time or math.ceil(ramp_s)
    if not options.run_time:
        _fail("replay needs a run time (-t/--run-time): the baseline window is compressed into it")
    if not options.rate_scale > 0:
        _fail(f"--rate-scale must be > 0, got {options.rate_scale}")
    if options.max_in_flight < 1:
        _fail(f"--max-in-flight must be >= 1, got {options.max_in_flight}")
    if not options.request_timeout > 0:
        _fail(f"--request-timeout must be > 0, got {options.request_timeout}")
    min_rps = options.min_endpoint_rps
    if min_rps is not None and not (min_rps > 0 and math.isfinite(min_rps)):
        _fail(f"--min-endpoint-rps must be > 0, got {min_rps:g}")
    old_host = str(options.old_host or "").strip()
    if old_host:
        old = urlsplit(old_host)
        if old.scheme not in ("http", "https") or not old.hostname:
            _fail(f"--old-host: expected a base URL such as http://old.example:8080, got {old_host!r}")
    elif options.old_out or options.old_env is not None:
        _fail("--old-out and --old-env describe the old side of an A/B run: they need --old-host")
    old_out = options.old_out
    if old_host and not old_out and options.parity_out:
        new_out = Path(options.parity_out)
        old_out = str(new_out.with_name(new_out.stem + ".old.json"))
    return {
        "baseline": options.baseline,
        "rate_scale": float(options.rate_scale),
        "seed": int(options.seed),
        "run_time_s": float(options.run_time),
        "max_in_flight": int(options.max_in_flight),
        "request_timeout_s": float(options.request_timeout),
        "parity_out": options.parity_out,
        "pair_id": options.pair_id or (uuid.uuid4().hex[:12] if old_host else None),
        "target_env": options.target_env or (NEW if old_host else None),
        "service": options.service or None,
        "max_rps": None,
        "shape": shape,
        "old_host": old_host or None,
        "old_out": old_out,
        "old_env": (options.old_env or OLD) if old_host else None,
        "min_endpoint_rps": min_rps,
        "endpoints": list(parse_globs(options.endpoints)),
        "exclude_endpoints": list(parse_globs(options.exclude_endpoints)),
    }


def shape_settings(config: dict[str, Any]) -> shapes.ShapeSettings:
    """The shape settings of a replay ``config`` (``_config_from_options``; the master sends the same to workers)."""
    shape = config["shape"]
    return shapes.ShapeSettings(
        kind=ShapeKind(shape["kind"]),
        run_time_s=config["run_time_s"],
        rate_scale=config["rate_scale"],
        rps=shape.get("rps"),
        steps=tuple(shape.get("steps", ())) or shapes.ShapeSettings().steps,
        step_s=shape.get("step_s"),
        multiplier=shape.get("multiplier", 3.0),
        start_s=shape.get("start_s"),
        duration_s=shape.get("duration_s"),
        min_endpoint_rps=config.get("min_endpoint_rps"),
    )


def _stage_spans(start_at: float) -> list[StageSpan]:
    """The shaped plan's stages as Unix-time spans of a run starting at ``start_at``."""
    stages = state.shaped.stages if state.shaped else ()
    return [StageSpan(s.name, start_at + s.start_s, start_at + s.end_s, s.target_rps) for s in stages]


def _new_recorders(interval_s: float, start_at: float | None, *, worker: bool = False) -> dict[str, Recorder]:
    """One empty recorder per target of the configured replay (stages set when the start is known)."""
    recorders = {name: Recorder(interval_s, track_delta=worker) for name in _targets(state.config)}
    if start_at is not None:
        for recorder in recorders.values():
            recorder.set_stages(_stage_spans(start_at))
    return recorders


def _take_deltas() -> dict[str, Any]:
    """What each target's recorder collected since the last call (a worker's report to the master)."""
    return {name: recorder.take_delta() for name, recorder in state.recorders.items()}


def _merge_deltas(deltas: dict[str, Any]) -> None:
    """Master: fold a worker's deltas into the recorder of each target (unknown targets are ignored)."""
    for name, delta in deltas.items():
        recorder = state.recorders.get(name)
        if recorder is not None:
            recorder.merge_delta(delta)


class _CpuSampler:
    """Samples this process's CPU (% of one core) once per timeline interval into the recorders (every target
    of an A/B run: the same process sends to both).

    Each sample covers the span since the previous one and is filed under the interval holding the span's
    midpoint; a saturated process wakes late, but its sample still covers the real elapsed time."""

    def __init__(self, recorders: list[Recorder]) -> None:
        self._recorders = recorders
        self._process = psutil.Process()
        self._last = self._now()
        self._greenlet = gevent.spawn(self._run)

    def _now(self) -> tuple[float, float]:
        times = self._process.cpu_times()
        return time.time(), times.user + times.system

    def _sample(self) -> None:
        (t0, cpu0), (t1, cpu1) = self._last, self._now()
        if t1 - t0 > 0.05:
            for recorder in self._recorders:
                recorder.record_cpu((t0 + t1) / 2, max(0.0, (cpu1 - cpu0) / (t1 - t0) * 100.0))
            self._last = (t1, cpu1)

    def _run(self) -> None:
        interval = self._recorders[0].interval_s
        while True:
            gevent.sleep(interval - time.time() % interval + 0.001)
            self._sample()

    def stop(self) -> None:
        """Stop sampling, filing the last partial interval."""
        self._greenlet.kill(block=True, timeout=1.0)
        self._sample()


class _LagSampler:
    """Measures this process's own scheduling lag into the recorders (every target of an A/B run): a greenlet sets
    a ``LAG_SAMPLE_S`` timer over and over and records how late it woke (ms). The lateness is the generator's
    own delay — its event loop busy elsewhere, or the process not given the CPU by a loaded machine — which
    every response arriving meanwhile waits too; a slow target does not cause it (waiting senders cost the
    loop nothing), unlike late sends, which also count arrivals waiting for a free sender.

    A stall is filed under every timeline interval it spans (from when the timer was due to when it woke), so a
    stall of seconds marks each interval it held up."""

    def __init__(self, recorders: list[Recorder]) -> None:
        self._recorders = recorders
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        interval = self._recorders[0].interval_s
        while True:
            due = time.perf_counter() + LAG_SAMPLE_S
            gevent.sleep(LAG_SAMPLE_S)
            lag_s = max(0.0, time.perf_counter() - due)
            woke = time.time()
            at = woke - lag_s
            while True:
                for recorder in self._recorders:
                    recorder.record_lag(at, lag_s * 1000.0)
                at = (math.floor(at / interval) + 1) * interval
                if at > woke:
                    break

    def stop(self) -> None:
        self._greenlet.kill(block=True, timeout=1.0)


def _configure(config: dict[str, Any], *, worker: bool = False, baseline_text: str | None = None) -> None:
    """Load the baseline (from its file, or from the text the master sent) and size the user; raises
    BadInput for an unusable baseline. A worker's recorder keeps deltas for its reports to the master."""
    if baseline_text is None:
        path = Path(config["baseline"])
        with reading(path, "a Measurement file"):
            baseline_text = path.read_text("utf-8")
    baseline = measurement_json.loads(baseline_text, str(config["baseline"]))
    state.baseline_text = baseline_text
    state.replay_of = fingerprint(baseline)
    state.baseline = baseline
    if config.get("bodies") is None and config.get("bodies_dir"):  # the master reads them; lanes get them sent
        config["bodies"] = load_bodies(config["bodies_dir"], (e.endpoint for e in baseline.endpoints))
    plan = build_plan(baseline, config.get("bodies"))
    unfilled = check_body_placeholders(config.get("bodies") or {}, {p.endpoint.key: p.request for p in plan.endpoints})
    if unfilled is not None:
        raise BadInput(f"--bodies: {unfilled}")
    if not plan.endpoints:
        raise BadInput(f"{config['baseline']}: no endpoint can be replayed (no method/route or parameter pools)")
    plan = _filtered(plan, config)
    try:
        shaped = shapes.shape(plan, shape_settings(config))
    except ValueError as exc:
        raise BadInput(f"--shape {config['shape']['kind']}: {exc}") from None
    config["run_time_s"] = shaped.run_time_s
    state.config, state.plan, state.shaped = config, plan, shaped
    state.recorders = _new_recorders(timeline_interval(config["run_time_s"]), None, worker=worker)
    # Everything loaded so far (Locust, numpy, the plan) lives for the whole run: keep it out of the garbage
    # collector's full collections, which would otherwise walk it and stall the event loop for milliseconds.
    gc.collect()
    gc.freeze()
    ReplayUser.concurrency = config["max_in_flight"]
    ReplayUser.network_timeout = config["request_timeout_s"]
    ReplayUser.connection_timeout = config["request_timeout_s"]


def _endpoint_filter(config: dict[str, Any]) -> EndpointFilter:
    """The replay's endpoint filter (``--endpoints``/``--exclude-endpoints``) from its settings."""
    return EndpointFilter(tuple(config.get("endpoints") or ()), tuple(config.get("exclude_endpoints") or ()))


def _filtered(plan: ReplayPlan, config: dict[str, Any]) -> ReplayPlan:
    """``plan`` restricted by the endpoint filter (kept in ``state.filtered``); raises BadInput, listing a few
    endpoint keys, when it keeps nothing. A glob that matches no endpoint is logged (a likely typo)."""
    endpoint_filter = _endpoint_filter(config)
    state.filtered = None
    if not endpoint_filter.active:
        return plan
    result = filter_plan(plan, endpoint_filter)
    if not result.plan.endpoints:
        raise BadInput(no_match_message(plan, endpoint_filter, str(config["baseline"])))
    for glob in endpoint_filter.unmatched([p.endpoint for p in plan.endpoints]):
        log.warning("parity: endpoint glob %r matches no replayable endpoint", glob)
    state.filtered = result
    return result.plan


def _log_sample_plan(config: dict[str, Any], policy: Policy) -> None:
    """Log, before the first request, what each endpoint will get against what a verdict on it needs
    (``parity plan``'s table) — a run too short to judge its endpoints says so before it starts."""
    from parity.report.terminal import sample_plan_summary  # the report package: only on the master

    assert state.baseline is not None
    assert state.shaped is not None
    what = (
        f"{config['baseline']} replayed for {state.shaped.run_time_s:g} s "
        f"({config['shape']['kind']} shape, rate scale {config['rate_scale']:g})"
    )
    baseline = state.baseline
    if state.filtered is not None:  # the plan's rows: the endpoints this replay sends
        kept = _endpoint_filter(config)
        baseline = replace(baseline, endpoints=tuple(e for e in baseline.endpoints if kept.keeps(e.endpoint)))
    summary = sample_plan_summary(
        replay_sample_plan(baseline, state.shaped, policy), what, rate_scale=config["rate_scale"], rows=20
    )
    for line in summary.splitlines():
        log.info(line)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if environment.parsed_options is not None:  # not in library mode: the caller owns the process there
        _install_stop_handlers(environment)
    if isinstance(runner, WorkerRunner):
        runner.register_message("parity_lane", _on_lane_message)
        runner.register_message("parity_stop", _on_stop_message)
        return
    if environment.parsed_options is None:
        return  # library mode: the caller configures the replay
    tags = _tags_refusal(environment.parsed_options)
    if tags is not None:
        _fail(tags)
    config = _config_from_options(environment.parsed_options)
    settings = _parity_config()
    state.rails = _rails(environment.parsed_options, settings.rails)
    # The rails travel with the lane settings: every lane checks its own targets and caps its own sends.
    config["max_rps"] = state.rails.max_rps
    config["allow_hosts"] = list(state.rails.allow_hosts)
    config["max_response_bytes"] = state.rails.max_response_bytes
    config["bodies_dir"] = state.rails.bodies
    config["allow_empty_bodies"] = state.rails.allow_empty_bodies
    host = environment.host or ""
    if not host:
        _fail("--host is required: the base URL of the environment to replay against")
    old_host = config.get("old_host")
    refusal = _not_allowed({NEW: host, OLD: old_host or ""}, state.rails.allow_hosts)
    if refusal is not None:
        _refuse(refusal)
    try:
        _configure(config)
    except BadInput as exc:
        _fail(str(exc))
    assert state.plan is not None
    assert state.shaped is not None
    _check_bodies(state.plan, allowed=bool(config["allow_empty_bodies"]))
    log.info(
        "parity: %s shape over %d endpoints of %s for %gs (~%d requests%s): %s",
        config["shape"]["kind"],
        len(state.plan.endpoints),
        config["baseline"],
        config["run_time_s"],
        state.shaped.plan.expected_requests(config["run_time_s"], 1.0),
        f" to each of old {old_host} and new {host}" if old_host else "",
        ", ".join(f"{s.name} {s.target_rps:.1f} req/s" for s in state.shaped.stages),
    )
    for key, factor in sorted(state.shaped.load_factors.items()):
        log.info(
            "parity: oversampled %s x%.3g (to %g req/s, --min-endpoint-rps): its load_factor is %.4g",
            key,
            factor,
            config["min_endpoint_rps"],
            factor,
        )
    _log_sample_plan(config, settings.policy)
    for skipped in state.plan.skipped:
        log.warning(
            "parity: not replayed: %s (%.1f%% of traffic): %s",
            skipped.endpoint,
            skipped.share * 100,
            skipped.reason,
        )
    if state.plan.skipped:
        log.warning("parity: %.1f%% of baseline traffic cannot be replayed", state.plan.skipped_share * 100)
    if state.filtered is not None:
        log.warning(
            "parity: %s; the Measurement is labelled so (incomplete: a comparison with it cannot pass)",
            _filter_note(state.filtered, _endpoint_filter(config).describe()),
        )
    environment.stop_timeout = max(environment.stop_timeout or 0.0, config["request_timeout_s"] + 1.0)
    if _web_ui_mode(environment) and environment.shape_class is not None:
        # The form's user count, ramp-up and run time mean nothing to an open-model replay of the command line's
        # settings: Locust's UI shows them disabled ("Disabled for tests using LoadTestShape class").
        type(environment.shape_class).use_common_options = False
        log.info(
            "parity: web UI: every Start replays %s for %gs from time zero with the command line's settings "
            "(users, ramp-up and run time fields are disabled); run N writes its own Measurement (%s, then "
            "<stem>-2 ...)",
            config["baseline"],
            config["run_time_s"],
            config["parity_out"] or "no --parity-out: none",
        )
    if isinstance(runner, MasterRunner):
        runner.register_message("parity_lane_done", _on_lane_done)
        runner.register_message("parity_lane_failed", _on_lane_failed)
        runner.register_message("parity_lane_refused", _on_lane_refused)


def _check_bodies(plan: ReplayPlan, *, allowed: bool) -> None:
    """Write endpoints without a body template end the run before it starts (one line, exit 2), or, when
    ``allowed`` (``--allow-empty-bodies``), get one loud warning (the Measurement lists them: ``_labels``).
    Query parameters the plan cannot fill are warned about too."""
    missing = plan.without_body()
    if missing:
        names = ", ".join(e.key for e in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        if not allowed:
            _fail(
                f"{len(missing)} write endpoint(s) have no request body: {names}; give --bodies DIR (one JSON "
                f"template per endpoint, e.g. {body_file_name(missing[0])}) or --allow-empty-bodies to send them "
                "empty (their verdicts are then flagged)"
            )
        log.warning(
            "parity: WARNING: %d write endpoint(s) are replayed WITHOUT their request body (--allow-empty-bodies): "
            "%s; a server answers them with fast errors or no-ops, so their verdicts are not parity (flagged in "
            "the Measurement and the report)",
            len(missing),
            names,
        )
    for planned in plan.endpoints:
        if planned.unfillable:
            log.warning(
                "parity: %s: query parameter(s) %s had only secret-like or e-mail values in the log: sent as %r",
                planned.endpoint,
                ", ".join(planned.unfillable),
                UNFILLABLE_VALUE,
            )


def _workers(runner: MasterRunner) -> list[Any]:
    """The workers a test starts on (those the master dispatches users to)."""
    return list(runner.clients.ready + runner.clients.running + runner.clients.spawning)


def _lane_count(environment: Environment) -> int:
    runner = environment.runner
    return len(_workers(runner)) if isinstance(runner, MasterRunner) else 1


def _reset_run_end() -> None:
    """Forget how the previous run ended (lanes done, stop, abort, failure, lost lanes): a new run starts."""
    state.done_lanes.clear()
    state.unfinished_lanes.clear()
    state.finished_at = None
    state.aborted = state.failed = None
    state.stop_reason = state.stop_at = None
    state.stopping.clear()
    state.missing_since.clear()
    state.lost_lanes.clear()
    state.unequal = None


def _web_ui_mode(environment: Environment) -> bool:
    """Locust's web UI starts and stops the runs (not --headless, not library mode): a process may run several."""
    options = environment.parsed_options
    return options is not None and not getattr(options, "headless", False)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or not state.config:
        return
    # Every start is checked, also one from the web UI whose form changed the host since start-up.
    refusal = _start_refusal(environment)
    if refusal is not None:
        _refuse_run(environment, refusal)
        return  # no lane is handed out: nothing is sent
    state.config["host"] = environment.host  # the target this run really uses
    start_at = time.time() + (1.0 if isinstance(runner, MasterRunner) else 0.0)
    state.config["start_at"] = start_at
    # A new test (e.g. restarted from the web UI) starts from an empty record, and writes its own file.
    state.recorders = _new_recorders(next(iter(state.recorders.values())).interval_s, start_at)
    state.run += 1
    state.written = {}
    _reset_run_end()
    state.lane_clients.clear()
    if isinstance(runner, MasterRunner):
        workers = sorted(_workers(runner), key=lambda c: runner.get_worker_index(c.id))
        state.lanes = len(workers)
        for lane, client in enumerate(workers):
            state.lane_clients[lane] = client.id
            # The start travels as a delay, not a clock reading: worker clocks may differ from the master's.
            lane_config = {**state.config, "lane": lane, "lanes": state.lanes, "start_in_s": start_at - time.time()}
            message = {"config": lane_config, "baseline_text": state.baseline_text}
            runner.send_message("parity_lane", message, client.id)
    else:
        state.lane, state.lanes = 0, 1
        state.ready.set()
    _stop_progress()  # a run started from the web UI after another
    state.progress = _LiveProgress(environment)


class _LiveProgress:
    """The live progress of the run in progress (master or single process): every ``SNAPSHOT_EVERY_S`` a snapshot
    of the recorders (a master's hold its workers' reports: the aggregate), drawn on stderr (``ProgressLine``:
    in place on a terminal, every ``plain_every_s`` seconds elsewhere; headless runs without --quiet) and kept in
    --parity-progress-file for a parent process. A failure here never touches the run: progress just stops."""

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        path = str(getattr(options, "parity_progress_file", "") or "")
        self._file = Path(path) if path else None
        show = options is not None and not getattr(options, "quiet", False) and not _web_ui_mode(environment)
        self._line = ProgressLine(sys.stderr, every_s=plain_every_s(os.environ), capture_logs=True) if show else None
        master = isinstance(environment.runner, MasterRunner)
        self._lag_s = PROGRESS_LAG_S + (WORKER_REPORT_INTERVAL if master else 0.0)
        rates = state.shaped.plan.rates if state.shaped is not None else None
        self._cell_rates = rates.sum(axis=0).tolist() if rates is not None else []  # none: no planned rate shown
        self._greenlet = gevent.spawn(self._run) if self._file is not None or self._line is not None else None

    def _snapshot(self) -> ReplayProgress:
        config = state.config
        return take_snapshot(
            state.recorders,
            now_s=time.time(),
            start_s=float(config["start_at"]),
            run_time_s=float(config["run_time_s"]),
            cell_rates=self._cell_rates,
            lag_s=self._lag_s,
            stopping=state.stop_reason or state.aborted,
        )

    def _show(self) -> None:
        snapshot = self._snapshot()
        if self._file is not None:
            try:
                write_snapshot(snapshot, self._file)
            except OSError as exc:
                log.warning("parity: --parity-progress-file %s: %s; not written any more", self._file, exc)
                self._file = None
        if self._line is not None:
            self._line.update(format_progress(snapshot))

    def _run(self) -> None:
        try:
            while True:
                self._show()
                gevent.sleep(SNAPSHOT_EVERY_S)
        except Exception as exc:  # the progress must never end the replay
            log.warning("parity: live progress stopped: %s", exc)

    def stop(self) -> None:
        """Draw the last snapshot and stop (the terminal keeps the last line)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1.0)
            self._greenlet = None
            with contextlib.suppress(Exception):
                self._show()
        if self._line is not None:
            self._line.close()


def _stop_progress() -> None:
    """Stop the live progress of the run, if one is shown."""
    progress, state.progress = state.progress, None
    if progress is not None:
        progress.stop()


@events.test_stop.add_listener
def _on_progress_test_stop(**_: Any) -> None:
    _stop_progress()


def _on_lane_message(environment: Environment, msg: Any) -> None:
    """Worker: the master assigned this process its lane and sent the replay settings and the baseline."""
    config = dict(msg.data["config"])
    config["start_at"] = time.time() + max(0.0, float(config.pop("start_in_s")))
    try:
        # In a native thread: parsing the baseline and building the lane's plan takes a CPU-second or more on a busy
        # machine, and meanwhile the event loop must go on sending heartbeats (a worker silent for ~3 s is missing
        # and, when every worker is, Locust stops the run: "The last worker went missing").
        gevent.get_hub().threadpool.apply(
            _configure, (config,), {"worker": True, "baseline_text": msg.data["baseline_text"]}
        )
    except BadInput as exc:
        log.error("parity: error: %s", exc)
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message("parity_lane_failed", {"lane": config.get("lane"), "error": str(exc)})
        return
    state.config = config
    state.lane, state.lanes = int(config["lane"]), int(config["lanes"])
    state.stop_reason = state.stop_at = None
    state.stopping.clear()
    for recorder in state.recorders.values():
        recorder.set_stages(_stage_spans(float(config["start_at"])))
    state.ready.set()


def _on_lane_refused(environment: Environment, msg: Any) -> None:
    """Master: a worker's lane refused its target (it sent nothing); the run ends and the replay exits 4."""
    _refuse_run(environment, f"worker lane {msg.data['lane']}: {msg.data['reason']}")


def _on_lane_failed(environment: Environment, msg: Any) -> None:
    """Master: a worker could not start its lane; the run ends and the replay exits 2."""
    state.failed = f"worker lane {msg.data['lane']} could not start: {msg.data['error']}"
    log.error("parity: error: %s", state.failed)


def _lane_done(lane: int, finished: bool) -> None:
    """A lane stopped; ``finished``: it went through its whole schedule (not stopped early)."""
    state.done_lanes.add(lane)
    if not finished:
        state.unfinished_lanes.add(lane)
    if len(state.done_lanes) >= state.lanes:
        state.finished_at = time.time()


def _on_lane_done(environment: Environment, msg: Any) -> None:
    """Master: a worker finished its lane and sent what it recorded since its last report. A lane stopped before
    the end of its schedule (a signal to its worker) stops the run: the others would only make it lopsided."""
    _merge_deltas(msg.data["deltas"])
    lane, finished = int(msg.data["lane"]), bool(msg.data["finished"])
    _lane_done(lane, finished)
    if not finished:
        _request_stop(f"{msg.data.get('stopped') or f'worker lane {lane} stopped early'} after {_elapsed()}")


def _stop_grace_s() -> float:
    """Seconds a stopped lane waits for its requests in flight: ``SIGNAL_GRACE_S``, at most --request-timeout."""
    return min(float(state.config.get("request_timeout_s", SIGNAL_GRACE_S)), SIGNAL_GRACE_S)


def _elapsed() -> str:
    """How far into the run we are: ``12.3 s of 60 s`` (``before the start`` when it has not started)."""
    config = state.config
    if "start_at" not in config:
        return "before the start"
    return f"{max(0.0, time.time() - float(config['start_at'])):.1f} s of {float(config['run_time_s']):g} s"


def _stop_lane() -> None:
    """Stop this process's lane: its dispatchers stop handing out sends (the lane then waits for its requests in
    flight for ``_stop_grace_s`` and reports itself done, unfinished)."""
    if state.stop_at is None:
        state.stop_at = time.monotonic()
    state.stopping.set()


def _request_stop(reason: str) -> None:
    """Master or single process: stop the run early for ``reason`` (kept as the Measurement's ``stopped`` label):
    every lane stops sending and waits for its requests in flight; the run then ends as usual, writing the
    Measurement(s) marked incomplete. Only the first reason counts."""
    if state.stop_reason is not None:
        return
    state.stop_reason = reason
    grace = _stop_grace_s()
    log.warning("parity: stopping the replay: %s; waiting up to %g s for requests in flight", reason, grace)
    environment = state.environment
    if environment is not None:  # a lane still running when the run ends is stopped within its grace
        environment.stop_timeout = min(environment.stop_timeout or math.inf, grace + 1.0)
    _stop_lane()
    runner = environment.runner if environment is not None else None
    if isinstance(runner, MasterRunner):
        for lane, client_id in state.lane_clients.items():
            if lane not in state.done_lanes:
                runner.send_message("parity_stop", {"reason": reason}, client_id)


def _on_stop_message(environment: Environment, msg: Any) -> None:
    """Worker: the master stopped the run early."""
    log.warning("parity: the master stopped the run: %s", msg.data.get("reason"))
    _stop_lane()


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()


def _exit_now(code: int) -> NoReturn:
    """Leave the process at once (no atexit hooks, no Locust shutdown): files written so far are whole, as every
    writer writes to a temporary file and renames it."""
    with contextlib.suppress(Exception):
        _stop_progress()
    _flush_logs()
    os._exit(code)


def _on_signal(signum: int) -> None:
    """SIGINT or SIGTERM (installed explicitly: an inherited ignored SIGINT, as in background jobs of a shell,
    must not make Ctrl-C a no-op). The first one stops the run gracefully (``_request_stop``; on a worker: its
    lane, which makes the master stop the others); a second one writes what was recorded, if that was not written
    yet, and exits at once. Before the replay started nothing was sent: exit 128 + signal, no file."""
    name = signal.Signals(signum).name
    state.signals += 1
    environment = state.environment
    worker = environment is not None and isinstance(environment.runner, WorkerRunner)
    if state.signals > 1:
        log.error("parity: second %s: exiting now, without waiting for requests in flight", name)
        code = EXIT_INCONCLUSIVE
        if not worker and environment is not None and "start_at" in state.config:
            if not state.written:
                _write_measurements(environment)
            code = _exit_code(environment)
        _exit_now(code)
    if worker:
        state.stop_reason = state.stop_reason or f"{name} to worker lane {state.lane}"
        log.warning("parity: %s: stopping this worker's lane (the master then stops the run)", name)
        _stop_lane()
        return
    if "start_at" not in state.config:
        log.error("parity: %s before the replay started: exiting, nothing was sent", name)
        _exit_now(128 + signum)
    if environment is not None and _web_ui_mode(environment):  # the web UI: stop the run in progress, then quit
        state.quit_after_stop = True
        if environment.runner is None or environment.runner.state == STATE_STOPPED:
            log.warning("parity: %s between the web UI's runs: quitting", name)
            gevent.spawn(_quit, environment)
            return
    _request_stop(f"{name} after {_elapsed()}")


def _watch_parent(parent: int, on_lost: Any) -> None:
    """Call ``on_lost(why)`` once this process's parent (pid ``parent``) is gone (it was re-parented)."""
    while os.getppid() == parent:
        gevent.sleep(WATCH_EVERY_S)
    on_lost(f"its parent process {parent} exited")


def _watch_master(runner: WorkerRunner, parent: int | None) -> None:
    """Worker: exit when the master is gone — its parent process (a worker forked by --processes) exited, or the
    master answered no heartbeat for ``MASTER_SILENT_S`` — instead of sending on for Locust's 60 s."""
    while True:
        gevent.sleep(WATCH_EVERY_S)
        last = runner.last_heartbeat_timestamp
        if parent is not None and os.getppid() != parent:
            why = f"its master (parent process {parent}) exited"
        elif last is not None and time.time() - last > MASTER_SILENT_S:
            why = f"no heartbeat from the master for over {MASTER_SILENT_S:g} s"
        else:
            continue
        log.error("parity: worker exiting: %s", why)
        _exit_now(EXIT_BAD_INPUT)


def _install_stop_handlers(environment: Environment) -> None:
    """Every process of a replay: SIGINT/SIGTERM handlers; a worker watches its master; a replay started by
    ``parity`` (``PARENT_PID_ENV``) stops when that process is gone."""
    state.environment = environment
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, _on_signal, signum)
    runner = environment.runner
    options = environment.parsed_options
    if isinstance(runner, WorkerRunner):
        forked = bool(getattr(options, "processes", None))
        gevent.spawn(_watch_master, runner, os.getppid() if forked else None)
    elif os.environ.get(PARENT_PID_ENV) == str(os.getppid()):

        def parent_lost(why: str) -> None:
            if "start_at" not in state.config:
                log.error("parity: %s before the replay started: exiting, nothing was sent", why)
                _exit_now(EXIT_BAD_INPUT)
            _request_stop(f"{why} after {_elapsed()}")

        gevent.spawn(_watch_parent, os.getppid(), parent_lost)


def _check_lost_lanes(runner: MasterRunner, *, final: bool = False) -> None:
    """Master: a lane whose worker Locust marked missing (no heartbeat for ~3 s) for ``LOST_AFTER_S`` — or that is
    gone, or missing when the run ends (``final``) — is lost: it is done, unfinished, and the run stops (the rule:
    a partial lane makes the whole run partial, so the others stop instead of sending on)."""
    now = time.monotonic()
    for lane, client_id in sorted(state.lane_clients.items()):
        if lane in state.done_lanes:
            continue
        node = runner.clients.get(client_id)
        if node is not None and node.state != STATE_MISSING:
            state.missing_since.pop(lane, None)
            continue
        since = state.missing_since.setdefault(lane, now)
        if node is not None and not final and now - since < LOST_AFTER_S:
            continue
        state.lost_lanes.add(lane)
        log.error("parity: worker lane %d lost (no heartbeat from its worker)", lane)
        _lane_done(lane, False)
        _request_stop(
            f"worker lane {lane} of {state.lanes} lost (no heartbeat) after {_elapsed()}: what it recorded since "
            "its last report is missing"
        )


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    if state.ready.is_set():  # before its lane arrives a worker has recorded nothing
        data["parity"] = _take_deltas()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if "parity" in data:
        _merge_deltas(data["parity"])


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response: Any,
    exception: BaseException | None,
    start_time: float | None = None,
    context: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    context = context or {}
    recorder = state.recorders.get(context.get(TARGET, NEW))
    if recorder is None:
        return
    status = getattr(response, "status_code", 0) or 0
    latency = response_time if status > 0 else None
    sent_at = start_time if start_time is not None else time.time() - response_time / 1000.0
    intended = None
    planned_at = context.get(INTENDED_AT)
    if latency is not None and planned_at is not None:
        intended = max(latency, (sent_at - float(planned_at)) * 1000.0 + latency)
    recorder.record(request_type, context.get(ROUTE, name), sent_at, latency, exception is not None, intended)


@dataclass(frozen=True)
class _Target:
    """One target of this process's lane: where requests go and what records them.

    ``client`` is a geventhttpclient ``HTTPClient`` of the target's own FastHttpSession pool (its
    ``--max-in-flight`` keep-alive connections); ``prefix`` is the base URL's path; ``headers`` go with every
    request; ``context`` keys are added to each request event's context (which target, and the route for the
    recorder) and ``name_prefix`` to its name in Locust's own stats (the old side of an A/B run)."""

    name: str
    host: str
    recorder: Recorder
    client: HTTPClient
    prefix: str
    headers: dict[str, str]
    name_prefix: str = ""
    tagged: bool = False  # request events carry TARGET and ROUTE in their context

    @property
    def connects_to(self) -> str:
        """The URL of the host and port ``client`` really connects to (after geventhttpclient parsed the base
        URL), for the allow-list's check next to the base URL's own."""
        host = str(self.client.host)
        return f"http://[{host}]:{self.client.port}" if ":" in host else f"http://{host}:{self.client.port}"


@dataclass
class _Flight:
    """A target's senders' counts: ``busy``, requests started and not yet recorded (a sender killed with its
    request when the run ends before the answer leaves it here: counted ``in_flight``); ``started``, requests
    started since the dispatcher last moved them to the recorder's ``sent`` (plain attribute increments per
    request; the dispatcher counts them whenever it waits, ``_count_leftovers`` at the end)."""

    busy: int = 0
    started: int = 0

    def count_started(self, recorder: Recorder, at_s: float) -> None:
        """Move the requests started since the last call into ``recorder``'s ``sent`` (Unix time ``at_s``)."""
        if self.started:
            recorder.count_sends(at_s, sent=self.started)
            self.started = 0


def _drain(senders: list[Any], timeout_s: float) -> None:
    """Wait for ``senders`` to finish their requests in flight: at most ``timeout_s`` seconds, and at most
    ``_stop_grace_s`` after a stop (those still running are then killed by the caller)."""
    end = time.monotonic() + timeout_s
    while not all(sender.dead for sender in senders):
        if state.stop_at is not None:
            end = min(end, state.stop_at + _stop_grace_s())
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        gevent.joinall(senders, timeout=min(remaining, WATCH_EVERY_S))


class ReplayUser(FastHttpUser):
    """Sends the lane's scheduled requests on time (open model), then drains and stops.

    Per target (one, or old and new in a concurrent A/B run) a dispatcher greenlet walks the lane's schedule and
    hands each arrival, when it is due, to a queue served by ``--max-in-flight`` long-lived sender greenlets (no
    greenlet per request: that alone cost about 30% of the generator's CPU). A send that starts more than
    ``LATE_S`` after its planned time is late; arrivals not handed out by the end of the run (plus
    ``UNSENT_AFTER_S``) are not sent but counted. The targets share nothing but the schedule and the process:
    one target's full queue or slow answers never hold up the other's dispatcher.

    Senders talk to a target through the geventhttpclient ``HTTPClient`` of a FastHttpSession pool (this
    user's for ``--host``; a second session for ``--old-host``: its own ``--max-in-flight`` keep-alive
    connections, timeouts, TLS settings and basic auth), not through ``FastHttpSession.request``: service time
    is timed from just before the request is written to just after the whole response body is read, so it
    leaves out the session's request building, cookie jar and response wrapping (about 0.3 ms per request on
    the benchmark machine, and a quarter of the generator's CPU). Each request is still reported through
    ``events.request`` (Locust's stats, CSV and UI, and this module's recorders). Replayed requests are
    independent: no redirect is followed (a 3xx is the answer, as in the access log it came from: nothing is ever
    sent to the host it names), no cookie is kept between them, and a compressed body is not decompressed
    (``response_length`` counts the bytes received). 5xx, no whole response within ``--request-timeout`` and a
    body over ``--max-response-bytes`` are failures.

    Before its first request the lane checks every target against the allow-list, on the base URL and on the
    host its HTTP client will connect to: a refused target gets nothing (the run ends, exit 4)."""

    concurrency = 256

    @task
    def replay(self) -> None:
        if not state.ready.wait(timeout=30):
            log.error("parity: error: no replay settings arrived from the master within 30 s")
            raise StopUser
        assert state.shaped is not None
        config = state.config
        targets = self._targets()
        allow = tuple(config.get("allow_hosts") or ())
        refusal = (
            state.refused
            or _not_allowed({t.name: t.host for t in targets}, allow)
            or _not_allowed({t.name: t.connects_to for t in targets}, allow)
        )
        if refusal is not None:
            self._refuse_lane(refusal)
        start_at = max(float(config["start_at"]), time.time())
        gevent.sleep(max(0.0, start_at - time.time()))
        sampler = _CpuSampler([t.recorder for t in targets])
        lag_sampler = _LagSampler([t.recorder for t in targets])
        runs = [gevent.spawn(self._run_target, t, start_at, i, len(targets)) for i, t in enumerate(targets)]
        try:
            gevent.joinall(runs)
            finished = all(run.successful() and run.value for run in runs)
        finally:
            gevent.killall(runs, block=True, timeout=1.0)
            sampler.stop()
            lag_sampler.stop()
        self._finish_lane(finished)
        raise StopUser

    def _refuse_lane(self, reason: str) -> NoReturn:
        """This lane may not send to a target: it sends nothing; a worker tells the master, which ends the run."""
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            log.error("parity: refused: lane %d: %s", state.lane, reason)
            runner.send_message("parity_lane_refused", {"lane": state.lane, "reason": reason})
        else:
            _refuse_run(self.environment, reason)
        raise StopUser

    def _targets(self) -> list[_Target]:
        """The lane's targets: ``--host`` (NEW), and ``--old-host`` (OLD) in an A/B run."""
        targets = [self._target(NEW, self.client, tagged=False, name_prefix="")]
        old_host = state.config.get("old_host")
        if old_host:
            session = FastHttpSession(
                base_url=old_host,
                request_event=self.environment.events.request,
                user=self,
                network_timeout=self.network_timeout,
                connection_timeout=self.connection_timeout,
                max_redirects=self.max_redirects,
                max_retries=self.max_retries,
                insecure=self.insecure,
                concurrency=self.concurrency,
                ssl_context_factory=self.ssl_context_factory,
                headers=self.default_headers,
                proxy_host=self.proxy_host,
                proxy_port=self.proxy_port,
            )
            targets.append(self._target(OLD, session, tagged=True, name_prefix=OLD_NAME_PREFIX))
        return targets

    @staticmethod
    def _target(name: str, session: FastHttpSession, *, tagged: bool, name_prefix: str) -> _Target:
        """A target from a FastHttpSession: its pool's HTTP client, the base URL's path and base headers."""
        base = session.base_url or ""
        headers = {"Accept-Encoding": "gzip, deflate, br"}
        if session.auth_header:
            headers["Authorization"] = session.auth_header
        return _Target(
            name=name,
            host=base,
            recorder=state.recorders[name],
            client=session.client.clientpool.get_client(URL(base)),
            prefix=urlsplit(base).path.rstrip("/"),
            headers=headers,
            name_prefix=name_prefix,
            tagged=tagged,
        )

    def _run_target(self, target: _Target, start_at: float, index: int, count: int) -> bool:
        """Dispatch the lane's schedule to ``target``'s senders and wait for their requests in flight; True when
        the whole schedule was handed out (see ``_dispatch``)."""
        config = state.config
        queue: Queue[tuple[Arrival, float] | None] = Queue(maxsize=config["max_in_flight"])
        flight = _Flight()
        senders = [gevent.spawn(self._sender, target, queue, flight) for _ in range(config["max_in_flight"])]
        helpers: list[Any] = []
        try:
            dispatcher = gevent.spawn(self._dispatch, target, queue, flight, start_at, index, count)
            helpers.append(dispatcher)
            gevent.wait([dispatcher, state.stopping], count=1)  # a stop (see _stop_lane) ends the sends early
            stopped = not dispatcher.ready()
            if stopped:
                dispatcher.kill(block=True, timeout=1.0)
            finished = not stopped and dispatcher.successful() and dispatcher.value is True
            helpers.append(gevent.spawn(lambda: [queue.put(None) for _ in senders]))  # senders stop when idle
            _drain(senders, config["request_timeout_s"] + 1.0)
            return finished
        finally:
            gevent.killall(senders + helpers, block=True, timeout=1.0)
            _count_leftovers(target, queue, flight)

    def _dispatch(
        self,
        target: _Target,
        queue: Queue[tuple[Arrival, float] | None],
        flight: _Flight,
        start_at: float,
        index: int,
        count: int,
    ) -> bool:
        """Hand each arrival to the senders when it is due; True when the whole schedule was handed out
        (or counted as unsent after the run's end), False when Locust stopped the user first.

        With ``count`` targets, this one (number ``index``) goes first for the arrivals whose number is
        ``index`` mod ``count``: for the others it lets the dispatchers woken for the same arrival run first."""
        config = state.config
        assert state.shaped is not None
        arrivals = iter_arrivals(
            state.shaped.plan,
            config["run_time_s"],
            rate_scale=1.0,
            seed=config["seed"],
            lane=state.lane,
            lanes=state.lanes,
        )
        max_rps = config.get("max_rps")
        cap = None if max_rps is None else RateCap.for_lane(float(max_rps), state.lane, state.lanes)
        deadline = start_at + config["run_time_s"] + UNSENT_AFTER_S
        recorder = target.recorder
        in_a_row = 0  # handed out without waiting (A/B: yield to the other target's dispatcher every few)
        for arrival in arrivals:
            if self._state == LOCUST_STATE_STOPPING:
                return False
            planned = start_at + arrival.at_s
            now = time.time()
            if planned - now > WAKE_EARLY_S:
                in_a_row = 0
                flight.count_started(recorder, now)
                gevent.sleep(planned - now - WAKE_EARLY_S)
                if count > 1 and arrival.number % count != index:
                    gevent.sleep(0)  # the other target's dispatcher, woken for this arrival too, goes first
            elif count > 1 and in_a_row >= AB_YIELD_EVERY:
                in_a_row = 0
                gevent.sleep(0)
            elif now > deadline:
                unsent = count_arrivals(
                    state.shaped.plan,
                    config["run_time_s"],
                    seed=config["seed"],
                    lane=state.lane,
                    lanes=state.lanes,
                    from_number=arrival.number,
                )
                recorder.count_sends(now, unsent=unsent)
                where = f" to the {target.name} target" if count > 1 else ""
                log.warning(
                    "parity: lane %d could not send %d requests%s before the run ended", state.lane, unsent, where
                )
                return True
            if cap is not None and not cap.take(time.monotonic()):
                recorder.count_sends(planned, dropped=1)
                continue
            queue.put((arrival, planned))
            in_a_row += 1
            if flight.started >= COUNT_EVERY:
                flight.count_started(recorder, now)
        return True

    def _sender(self, target: _Target, queue: Queue[tuple[Arrival, float] | None], flight: _Flight) -> None:
        """Send the arrivals ``queue`` hands out to ``target`` one at a time, each within one total deadline
        (``--request-timeout``) and reading at most ``--max-response-bytes`` of its body, and report each
        through ``events.request``. A request is counted started (``sent``) and ``busy`` as it is taken, with
        no switch in between, and leaves ``busy`` right after it is reported: a sender killed mid-request
        leaves it in ``busy`` (``_count_leftovers``: in flight), so sent = recorded + in flight exactly."""
        recorder = target.recorder
        fire = self.environment.events.request.fire
        client, prefix, base_headers = target.client, target.prefix, target.headers
        name_prefix, tagged = target.name_prefix, target.tagged
        timeout_s = float(state.config["request_timeout_s"])
        max_bytes = int(state.config.get("max_response_bytes") or DEFAULT_MAX_RESPONSE_BYTES)
        deadline = gevent.Timeout(timeout_s)  # one per sender, restarted per request (cheaper than a new one)
        while (item := queue.get()) is not None:
            arrival, planned = item
            headers = {**base_headers, **arrival.headers} if arrival.headers else base_headers
            sent_at = time.time()
            flight.started += 1
            flight.busy += 1
            if sent_at - planned > LATE_S:
                recorder.count_sends(sent_at, late=1)
            response = None  # set once a whole response arrived
            exception: Exception | None = None
            length = 0
            started = time.perf_counter()
            deadline.start()
            try:
                pending = client.request(arrival.method, prefix + arrival.url, body=arrival.body, headers=headers)
                length = _read_body(pending, max_bytes)
                response = pending
            except gevent.Timeout as exc:  # geventhttpclient closes the connection it was using
                if exc is not deadline:
                    raise
                exception = RequestTimeout(f"no whole response within {timeout_s:g} s (--request-timeout)")
            except Exception as exc:  # no (whole) response: the request's error, with no latency
                exception = exc
            finally:
                deadline.cancel()
            response_ms = (time.perf_counter() - started) * 1000.0
            if response is not None and response.status_code >= 500:
                exception = CatchResponseError(f"HTTP {response.status_code}")
            context: dict[str, Any] = {INTENDED_AT: planned}
            if tagged:
                context[TARGET] = target.name
                context[ROUTE] = arrival.name
            fire(
                request_type=arrival.method,
                name=name_prefix + arrival.name,
                response_time=response_ms,
                response_length=length,
                response=response,
                exception=exception,
                context=context,
                start_time=sent_at,
                url=arrival.url,
            )
            flight.busy -= 1

    def _finish_lane(self, finished: bool) -> None:
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            data = {"lane": state.lane, "finished": finished, "deltas": _take_deltas(), "stopped": state.stop_reason}
            runner.send_message("parity_lane_done", data)
        else:
            _lane_done(0, finished)
        state.ready.clear()  # a next run (web UI) waits for its own start and lane settings
        ab = len(state.recorders) > 1
        for name, recorder in state.recorders.items():
            sends = recorder.sends
            where = f" to the {name} target" if ab else ""
            if sends["late"]:
                late, sent = sends["late"], sends["sent"]
                log.warning(
                    "parity: lane %d sent %d of %d requests%s more than %gs late", state.lane, late, sent, where, LATE_S
                )
            if sends["dropped"]:
                log.warning(
                    "parity: lane %d dropped %d requests%s over the --max-rps cap", state.lane, sends["dropped"], where
                )


def _read_body(response: Any, max_bytes: int) -> int:
    """Read and drop ``response``'s body in chunks of ``READ_CHUNK`` bytes; return its length in bytes.
    Raises ResponseTooLarge (and closes the connection) as soon as it is known to exceed ``max_bytes``: from its
    Content-Length, or once more than that was read — an endless body never holds more than a chunk."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        response.release()
        raise ResponseTooLarge(f"response body of {declared} bytes is over --max-response-bytes {max_bytes}")
    length = 0
    while chunk := response.read(READ_CHUNK):
        length += len(chunk)
        if length > max_bytes:
            response.release()
            raise ResponseTooLarge(f"response body over --max-response-bytes {max_bytes}: not read further")
    return length


def _count_leftovers(target: _Target, queue: Queue[tuple[Arrival, float] | None], flight: _Flight) -> None:
    """After a target's senders are gone: requests they had started and not reported are ``in_flight``;
    arrivals still queued (never taken by a sender, so never sent) are ``unsent``."""
    queued = 0
    while not queue.empty():
        if queue.get_nowait() is not None:
            queued += 1
    now = time.time()
    flight.count_started(target.recorder, now)
    if flight.busy or queued:
        target.recorder.count_sends(now, in_flight=flight.busy, unsent=queued)
        flight.busy = 0


def _abort_reason(new_host: str) -> str | None:
    """Why an abort rule ends the run now, naming the target in an A/B run; None while every target is fine."""
    since = time.time() - state.rails.abort_window_s
    hosts = {NEW: new_host, OLD: str(state.config.get("old_host") or "")}
    for name, recorder in state.recorders.items():
        requests, errors, p99 = recorder.totals_since(since)
        reason = abort_reason(WindowStats(requests, errors, p99), state.rails)
        if reason is not None:
            return reason if len(state.recorders) == 1 else f"{name} target {hosts[name]}: {reason}"
    return None


class ReplayShape(LoadTestShape):
    """One pacing user per Locust process; ends the run when every lane has finished."""

    use_common_options = True

    def reset_time(self) -> None:
        """Locust calls this at every shape start (also one from the web UI, before the first tick): the
        targets are checked here too, so a refused start ends the process even when no test starts. A start
        after an earlier run ended forgets that run's end first (else the first tick would end the new run at
        once: "Swarming started" and nothing sent)."""
        super().reset_time()
        runner = self.runner
        if state.finished_at is not None or state.stop_at is not None or state.aborted or state.failed:
            _reset_run_end()  # a new start after a run ended (web UI): its first tick must not see the old end
        if runner is not None and state.config and not isinstance(runner, WorkerRunner):
            refusal = _start_refusal(runner.environment)
            if refusal is not None:
                _refuse_run(runner.environment, refusal)

    def tick(self) -> tuple[int, float] | None:
        config = state.config
        if not config:
            return None
        lanes = _lane_count(self.runner.environment) if self.runner is not None else 1
        if isinstance(self.runner, MasterRunner):
            _check_lost_lanes(self.runner)
        if state.finished_at is not None and len(state.done_lanes) >= max(state.lanes, 1):
            return None
        if state.stop_at is not None and time.monotonic() > state.stop_at + _stop_grace_s() + STOP_SLACK_S:
            log.warning("parity: lanes did not all report after the stop; ending the run")
            return None
        if state.aborted is None and state.rails.watches:
            state.aborted = _abort_reason(self.runner.environment.host or "" if self.runner is not None else "")
            if state.aborted is not None:
                log.error("parity: aborting the run: %s", state.aborted)
        if state.aborted is not None or state.failed is not None:
            return None
        if self.get_run_time() > config["run_time_s"] + config["request_timeout_s"] + GRACE_S:
            log.warning("parity: lanes did not all finish in time; ending the run")
            return None
        return lanes, float(lanes)


def _filter_note(filtered: FilteredPlan, described: str) -> str:
    """What an endpoint filter left out, in words (the ``incomplete`` label of a filtered replay)."""
    return (
        f"endpoint filter {described}: {filtered.kept} of {filtered.total} replayable endpoints replayed "
        f"({filtered.kept_share:.1%} of their traffic)"
    )


def _labels(complete: bool) -> dict[str, str]:
    """The labels every Measurement of this run carries (both sides of an A/B run alike)."""
    config = state.config
    factors = dict(state.shaped.load_factors) if state.shaped else {}
    labels = {
        "harness_version": version(),
        "baseline": str(config["baseline"]),
        "seed": str(config["seed"]),
        "run_time_s": f"{config['run_time_s']:g}",
        "shape": config["shape"]["kind"],
        "complete": "yes" if complete else "no",
        LABEL_REPLAY_OF: state.replay_of,
        LABEL_SCHEDULE: schedule_fingerprint(
            baseline=state.replay_of,
            seed=int(config["seed"]),
            shape=config["shape"],
            run_time_s=float(config["run_time_s"]),
            rate_scale=float(config["rate_scale"]),
            load_factors=factors,
            endpoints=[p.endpoint.key for p in state.filtered.plan.endpoints] if state.filtered else (),
        ),
    }
    if state.filtered is not None:  # a filtered replay is never read as the whole one (parity.judge.completeness)
        described = _endpoint_filter(config).describe()
        labels["endpoints"] = described
        labels["incomplete"] = _filter_note(state.filtered, described)
    if config.get("min_endpoint_rps") is not None:
        labels["min_endpoint_rps"] = f"{config['min_endpoint_rps']:g}"
    if state.aborted is not None:
        labels["aborted"] = state.aborted
    if state.failed is not None:
        labels["failed"] = state.failed
    if state.stop_reason is not None and not complete:
        labels["stopped"] = state.stop_reason
    if state.lost_lanes:
        labels["lost_lanes"] = ",".join(str(lane) for lane in sorted(state.lost_lanes))
    if state.run > 1:
        labels["run"] = str(state.run)  # the web UI's Nth start in this process
    if state.plan is not None and (without := state.plan.without_body()):
        labels[LABEL_WITHOUT_BODY] = json.dumps([e.key for e in without], ensure_ascii=False)
    if state.plan is not None and (unfilled := [p for p in state.plan.endpoints if p.unfillable]):
        labels["unfillable_query"] = "; ".join(f"{p.endpoint}: {', '.join(p.unfillable)}" for p in unfilled)
    return labels


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if state.refused is not None:  # a rail refused a start: nothing went to that target
        environment.process_exit_code = EXIT_ABORTED
        if not any(r.sends["sent"] for r in state.recorders.values()):
            return  # nothing was sent at all (an earlier run from the web UI is written below)
    config = state.config
    if isinstance(environment.runner, WorkerRunner) or not (config.get("parity_out") or config.get("old_out")):
        return
    if "start_at" not in config:
        return  # no run ever started (e.g. the web UI was closed before a Start): nothing to write
    if not state.written:  # the web UI's runs are written as each one stops (_on_test_stop)
        if isinstance(environment.runner, MasterRunner):
            _check_lost_lanes(environment.runner, final=True)
        _write_measurements(environment)
    environment.process_exit_code = _exit_code(environment)


@events.worker_connect.add_listener
def _on_worker_connect(client_id: str, **_: Any) -> None:
    """Master: a worker reported ready (at start-up, or again after a stop: see ``_await_lanes``)."""
    state.rejoined.add(client_id)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    """Web UI: a Stop before the run finished makes it partial; its Measurement says so (``stopped``). A worker's
    lane stops sending at once and drains within ``_stop_grace_s`` (less than Locust's stop timeout, which would
    kill it before it reports itself done with its last records)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _stop_lane()
        return
    if not _web_ui_mode(environment):
        return
    state.rejoined.clear()
    if runner is not None and runner.shape_greenlet is gevent.getcurrent():
        return  # the shape ended the run (finished, aborted, lanes late): not the web UI's Stop
    if "start_at" in state.config and state.finished_at is None and state.stop_reason is None:
        state.stop_reason = f"stopped from Locust (web UI) after {_elapsed()}"


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    """Web UI: each run writes its own Measurement when it stops (finished, or stopped with Stop): run 1 to
    ``--parity-out``, run N to ``<stem>-N<suffix>`` (``run_path``). Headless runs write when Locust quits."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or not _web_ui_mode(environment) or "start_at" not in state.config:
        return
    if state.quit_after_stop:  # a signal stopped this run: Locust quits once it is written (below)
        gevent.spawn(_quit, environment)
    if (
        state.written
        or state.refused is not None
        or not (state.config.get("parity_out") or state.config.get("old_out"))
    ):
        return
    if isinstance(runner, MasterRunner):
        _await_lanes(runner)
        _check_lost_lanes(runner, final=True)
    _write_measurements(environment)


@events.test_stop.add_listener
def _on_worker_test_stop(environment: Environment, **_: Any) -> None:
    """Worker: its users have stopped (its lane reported itself done). Locust's worker then tells the master it
    stopped and waits the stop timeout again before reporting ready; its lane is done, so no wait (a web UI Start
    right after a Stop then finds every worker ready), and a next run waits for its own lane settings."""
    if isinstance(environment.runner, WorkerRunner):
        state.ready.clear()
        environment.stop_timeout = 0.0  # set again by the master's next spawn message


def _await_lanes(runner: MasterRunner) -> None:
    """Web UI master, after a stop: wait until every lane's worker is ready again. Locust drops a stopping worker
    from its clients until it reports ready, so a run written, or a Start taken, before then would count that
    lane lost or leave it out; and a worker reports ready only after its users stopped, so by then its lane has
    reported itself done with its last records (on the same connection, before) — unless it never started.
    At most ``_stop_grace_s`` + ``STOP_SLACK_S`` seconds (a lane whose worker is gone then is lost)."""
    limit_s = _stop_grace_s() + STOP_SLACK_S
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if all(c in state.rejoined and runner.clients.get(c) is not None for c in state.lane_clients.values()):
            return
        gevent.sleep(0.05)
    log.warning("parity: worker lanes did not all report ready within %gs of the stop", limit_s)


def _complete() -> bool:
    """Every lane went through its whole schedule, and no rail aborted the run nor a worker failed."""
    return (
        state.finished_at is not None and not state.unfinished_lanes and state.aborted is None and state.failed is None
    )


def _exit_code(environment: Environment) -> int:
    """The replay's exit code: 2 a worker failed, 4 a rail aborted the run or refused a later start (web UI),
    0 complete, else 3 (partial)."""
    if state.failed is not None:
        return EXIT_BAD_INPUT
    if state.aborted is not None or state.refused is not None:
        return EXIT_ABORTED
    return EXIT_OK if _complete() and state.unequal is None else EXIT_INCONCLUSIVE


def _write_measurements(environment: Environment) -> None:
    """Master or single process: write the Measurement(s) of what was recorded (``--parity-out``, ``--old-out``),
    each atomically (``measurement_json.write``); a partial run is labelled ``complete = no`` with the reason."""
    config = state.config
    if not (config.get("parity_out") or config.get("old_out")):
        return
    start = float(config.get("start_at", time.time()))
    planned_end = start + config["run_time_s"]
    complete = _complete()
    end = planned_end if complete else min(planned_end, max(time.time(), start + 0.001))
    labels = _labels(complete)
    ab = len(state.recorders) > 1
    sides = {
        NEW: (environment.host, config.get("target_env"), config["parity_out"]),
        OLD: (config.get("old_host"), config.get("old_env"), config.get("old_out")),
    }
    description = f"Locust replay of {Path(config['baseline']).name}"
    measurements = {}
    for name, recorder in state.recorders.items():
        target, env, _ = sides[name]
        measurements[name] = recorder.to_measurement(
            source=Source(
                SourceKind.LOCUST_REPLAY,
                description=f"{description}, {name} side of a concurrent A/B run" if ab else description,
                service=config.get("service"),
                env=env,
                target=target,
            ),
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
            rate_scale=state.shaped.rate_scale if state.shaped else config["rate_scale"],
            pair_id=config.get("pair_id") or None,
            labels=dict(labels),
            generator=GeneratorTotals(processes=state.lanes, late_after_ms=LATE_S * 1000.0),
            load_factors=state.shaped.load_factors if state.shaped else None,
        )
    if ab:  # one schedule, two targets: a pair whose sides got different requests is never complete
        state.unequal = unequal_sides(measurements[OLD], measurements[NEW])
    if state.unequal is not None:
        log.warning("parity: the old and new targets were not sent the same requests: %s", state.unequal)
        unequal = {"complete": "no", UNEQUAL_SIDES: state.unequal}
        measurements = {name: replace(m, labels={**m.labels, **unequal}) for name, m in measurements.items()}
    for name, measurement in measurements.items():
        target, _, out = sides[name]
        if not out:
            continue
        out = run_path(out, state.run)
        state.written[name] = measurement_json.write(measurement, out)
        note = "" if complete else " (partial: the run was stopped early)"
        if complete and state.unequal is not None:
            note = " (partial: the old and new targets were not sent the same requests)"
        log.info(
            "parity: recorded %d requests on %d endpoints%s -> %s%s",
            measurement.total_count,
            len(measurement.endpoints),
            f" ({name} target {target})" if ab else "",
            state.written[name],
            note,
        )

"""Command line: parse arguments into options, call the core, map its result to an exit code.

Exit codes (everywhere): 0 parity holds, 1 regression found, 2 bad input / usage / unreachable dependency,
3 inconclusive (also: a side holds only part of its run), 4 run refused or aborted by a safety rail; 128 + signal
after SIGINT (130, Ctrl-C) or SIGTERM (143).

A reader of the output that goes away (``parity compare ... | head -1``) changes nothing: the rest of the output
is dropped, the run goes on and the exit code is still the verdict's (Python would otherwise end the command with
a traceback and exit code 1 — "regression found").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from parity import measurement_json, version
from parity.config import Config, find_config, load_config, write_metric_rules
from parity.errors import (
    EXIT_ABORTED,
    EXIT_BAD_INPUT,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    BadInput,
    Interrupted,
    Refused,
    reading,
)
from parity.history.command import add_history_parser
from parity.judge.compare import compare
from parity.judge.result import ParityResult, Verdict
from parity.model import Measurement
from parity.replay.endpoint_filter import EndpointFilter, filter_plan, no_match_message, parse_globs
from parity.replay.plan import UNFILLABLE_VALUE, build_plan
from parity.replay.rails import ABORT_WINDOW_S, DEFAULT_MAX_RESPONSE_BYTES, Rails
from parity.replay.shapes import ShapeKind, ShapeSettings
from parity.report.context import RunMeta
from parity.report.terminal import calibration_summary, terminal_summary
from parity.report.write import write_reports
from parity.sources import load_measurement, load_measurements

if TYPE_CHECKING:
    from parity.replay.process import ReplayRun

__all__ = ["build_parser", "exit_code", "main"]


_VERDICT_EXIT = {
    Verdict.PASS: EXIT_OK,
    Verdict.MARGINAL: EXIT_OK,
    Verdict.FAIL: EXIT_REGRESSION,
    Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE,
}


#: ``parity ab``'s run time when -t is not given, seconds.
DEFAULT_AB_DURATION_S = 60.0
#: ``parity replay``'s report directory when -o is not given.
DEFAULT_REPLAY_OUT = Path("reports/replay")
#: ``parity demo``'s and ``parity demo cutover``'s report directories when -o is not given.
DEFAULT_DEMO_OUT = Path("reports/demo")
DEFAULT_DEMO_CUTOVER_OUT = Path("reports/demo-cutover")
#: Name of the candidate's Measurement in ``parity replay``'s directory.
REPLAY_MEASUREMENT = "candidate.measurement.json"
#: The commands in ``parity --help``'s list, in the order a user meets them (a nested command by its path).
COMMAND_ORDER = (
    "plan", "ab", "replay", "compare", "baseline pull", "baseline from-logs", "calibrate", "nightly", "history",
    "explain", "cutover", "demo",
)  # fmt: skip
#: Other entry points a user runs, shown after the commands.
MODULE_COMMANDS = (
    ("python -m parity.demo.server", "start the demo target service (old and new profiles) on loopback"),
    ("python -m parity.demo.baseline", "write the bundled demo baseline (baselines/demo.json)"),
    (
        "locust -f loadtests/replay.py",
        "the replay as a plain locustfile (Locust workers; options: parity replay --help)",
    ),
)


class HelpFormatter(argparse.HelpFormatter):
    """Every parser's help: a description or epilog paragraph (paragraphs are separated by blank lines) is
    re-wrapped to the terminal's width, unless one of its lines is indented (examples, lists): that paragraph is
    printed as written. Defaults are written in the help strings themselves, in one style: ``(default: 60 s)``
    (tests/test_cli_help.py checks every option)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            lines = paragraph.splitlines()
            if any(line[:1].isspace() for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(
                    textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(paragraphs)


def examples(*lines: str) -> str:
    """An ``examples:`` epilog: one command per line (a line starting with a space continues the one above)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser (help laid out by :class:`HelpFormatter`). One whose ``passthrough`` names a
    destination (``parity ab``, ``parity replay``) keeps everything after ``--`` there, unparsed (Locust's own
    options); argparse alone would reject them after a positional."""

    passthrough: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.passthrough is None:
            return super().parse_known_args(args, namespace)
        strings = list(sys.argv[1:] if args is None else args)
        rest: list[Any] = []
        if "--" in strings:
            cut = strings.index("--")
            strings, rest = strings[:cut], strings[cut + 1 :]
        parsed, unknown = super().parse_known_args(strings, namespace)
        setattr(parsed, self.passthrough, rest)
        return parsed, unknown


def exit_code(verdict: Verdict) -> int:
    """The process exit code for a run verdict."""
    return _VERDICT_EXIT[verdict]


def _commit() -> str | None:
    """The harness's git commit when it runs from a checkout, else None. git gets the environment every child of
    parity gets (no API keys or other secrets)."""
    from parity.replay.process import child_environment

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            env=child_environment(os.environ),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


#: The ``user:password@`` of a URL on the command line (``--dd-url``, a target): never written into a report.
_URL_CREDENTIALS = re.compile(r"(?i)\b(https?://)[^\s/@]+@")


def _meta(config_path: Path | None, argv: Sequence[str]) -> RunMeta:
    """The run's metadata for the reports; a URL's credentials in the command line are written as ``***@``."""
    return RunMeta(
        harness_version=version(),
        commit=_commit(),
        generated_at=datetime.now(UTC),
        config=None if config_path is None else str(config_path),
        command=_URL_CREDENTIALS.sub(r"\1***@", shlex.join(["parity", *argv])),
    )


def _report(
    result: ParityResult,
    out: Path,
    meta: RunMeta,
    measurements: tuple[Measurement, Measurement] | None = None,
    explanations: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Write the reports into ``out`` and print the terminal summary. ``explanations`` (endpoint key → explain.json
    entry): else those of an explain.json already in ``out`` that explains this comparison's windows (a note on
    stderr when one is there but not used)."""
    from parity.report.explain import explanations_beside

    if explanations is None:
        explanations, note = explanations_beside(out, result)
        if note is not None:
            print(f"parity: note: {note}", file=sys.stderr)
    try:
        paths = write_reports(result, out, meta, measurements=measurements, explanations=explanations)
    except OSError as exc:
        raise BadInput(f"{out}: cannot write the reports: {exc.strerror or exc}") from None
    print(terminal_summary(result, paths.index_html, explanations))


def _config(args: argparse.Namespace) -> Config:
    """The --config file, else the one found in the working directory, else the defaults."""
    return load_config(args.config if args.config is not None else find_config(Path.cwd()))


def _cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    config = _config(args)
    baseline, candidate = load_measurements(args.baseline, args.candidate)
    result = compare(baseline, candidate, config.policy, names=(str(args.baseline), str(args.candidate)))
    explanations, interrupted = None, False
    if args.explain:
        try:
            explanations = _compare_explanations(args, result, baseline, candidate)
        except KeyboardInterrupt:  # Ctrl-C during a (rate-limit-waiting) read: the judged verdict is not lost
            print("parity: no explanation: interrupted: the reports are written unexplained", file=sys.stderr)
            interrupted = True
    _report(result, args.out, _meta(config.path, argv), (baseline, candidate), explanations)
    return EXIT_INTERRUPTED if interrupted else exit_code(result.verdict)


def _compare_explanations(
    args: argparse.Namespace, result: ParityResult, baseline: Measurement, candidate: Measurement
) -> dict[str, dict[str, Any]] | None:
    """``compare --explain`` (and ``ab --explain``): explain the top regressed endpoints from APM traces and write
    ``explain.json`` into the report directory; the explanations by endpoint key. Whatever fails (no keys, a side
    without APM env or service, an unwritable file) is one ``no explanation`` line on stderr and None: the verdict
    and the exit code never depend on it."""
    from parity.explain.command import DatadogAccess, explain_to_dir

    access = DatadogAccess.from_environ(os.environ, site=args.site or None, dd_url=args.dd_url)
    outcome = explain_to_dir(
        access, args.out, result, baseline, candidate, progress=lambda line: print(f"parity: {line}", file=sys.stderr)
    )
    if outcome.skipped is not None:
        print(f"parity: no explanation: {outcome.skipped}", file=sys.stderr)
    return outcome.explanations


def _cmd_calibrate(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.judge.calibrate import calibrate
    from parity.report.ci import json_value

    if len(args.runs) < 2:
        raise BadInput(f"calibrate needs at least 2 runs against the same target, got {len(args.runs)}")
    config = _config(args)
    runs = [load_measurement(path) for path in args.runs]
    calibration = calibrate(runs, config.policy)
    print(calibration_summary(calibration))
    if args.out is not None:
        text = json.dumps(json_value(calibration), indent=2, allow_nan=False) + "\n"
        try:
            args.out.write_text(text, "utf-8")
        except OSError as exc:
            raise BadInput(f"{args.out}: cannot write: {exc.strerror or exc}") from None
        print(f"  written: {args.out}")
    if args.write:
        changed = {f.metric: f.suggested for f in calibration.floors if f.suggested != f.current}
        target = config.path or Path("parity.toml")
        if changed:
            write_metric_rules(target, changed)
            print(f"  suggested tolerances written to {target}: {', '.join(changed)}")
        else:
            print(f"  nothing to write: every current tolerance stands ({target} unchanged)")
    if not any(f.observations for f in calibration.floors):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


def _cmd_nightly(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from parity.nightly.job import DatadogKeys, run_nightly
    from parity.progress import replay_progress

    config = _config(args)
    if config.nightly is None:
        where = config.path or "the working directory (no parity.toml)"
        raise BadInput(f"{where}: no [nightly] table: say what to replay and against which target")
    settings = config.nightly if args.out is None else replace(config.nightly, out=args.out)
    if args.explain is not None:
        settings = replace(settings, explain=args.explain)
    api_key, app_key = os.environ.get("DD_API_KEY", ""), os.environ.get("DD_APP_KEY", "")
    keys = DatadogKeys(api_key, app_key, os.environ.get("DD_SITE") or None) if api_key or app_key else None
    with replay_progress(args.quiet) as live:
        outcome = run_nightly(
            settings,
            config,
            _meta(config.path, argv),
            now=datetime.now(UTC),
            keys=keys,
            push=args.push_datadog,
            progress=lambda line: print(f"parity nightly: {line}", flush=True),
            live=live,
        )
    explained = outcome.explained
    if explained is not None and explained.skipped is not None:
        print(f"parity: no explanation: {explained.skipped}", file=sys.stderr)
    why = explained.explanations if explained is not None else None
    print(terminal_summary(outcome.decisive, outcome.report_dir / "index.html", why))
    for note in outcome.notes:
        print(f"  note: {note}")
    return outcome.exit_code


def _cmd_cutover(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    """``parity cutover``: the [cutover] table run (or --resume'd, or --dry-run printed); exit code of the outcome."""
    from parity.cutover.live_apm import DatadogLiveApm
    from parity.cutover.model import CutoverRun, Outcome
    from parity.cutover.run import cutover_exit_code, dry_run_lines, event_of, run_cutover, summary_of
    from parity.cutover.settings import redact, secret_values
    from parity.cutover.shifters import make_shifter
    from parity.datadog import connect_intake, post_event

    config = _config(args)
    if config.cutover is None:
        where = config.path or "the working directory (no parity.toml)"
        raise BadInput(f"{where}: no [cutover] table: say what to shift and how to read both environments")
    settings = config.cutover if args.out is None else replace(config.cutover, out=args.out)

    def say(line: str) -> None:
        print(f"parity cutover: {line}", flush=True)

    if args.dry_run and (args.go or args.rollback or args.resume):
        raise BadInput("--dry-run prints the plan of a new cutover: it does not go with --resume, --go or --rollback")
    if args.go and not args.resume:
        raise BadInput(
            "--go is a person's decision on a held cutover: use it with --resume (parity cutover --resume --go)"
        )
    if args.go and args.rollback:
        raise BadInput("--go and --rollback contradict each other: choose one")
    person = "go" if args.go else "rollback" if args.rollback else None
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or None
    secrets = secret_values(os.environ)
    shifter = make_shifter(settings.shifter, say=lambda line: say(redact(line, secrets)), ask=input)
    if args.dry_run:
        for line in dry_run_lines(settings, shifter, config.policy, secrets):
            print(line)
        print("dry run: nothing was sent, changed or written")
        return EXIT_OK
    api_key, app_key, missing = _datadog_keys()
    if missing:
        raise BadInput(f"{' and '.join(missing)} not set: export the Datadog key(s) in the environment")
    site = settings.site or os.environ.get("DD_SITE") or None
    explain = None
    if not args.no_explain:
        from parity.cutover.explain import explainer
        from parity.explain.command import DatadogAccess

        access = DatadogAccess(api_key, app_key, site, settings.dd_url)
        explain = explainer(access, routes=settings.routes, progress=say)

    def send_event(run: CutoverRun) -> None:
        event = event_of(run, settings.datadog_tags)
        with connect_intake(api_key=api_key, site=site, dd_url=settings.dd_url) as intake:
            post_event(
                intake, title=event.title, text=event.text, alert_type=event.alert_type, tags=list(event.tags),
                aggregation_key=event.aggregation_key,
            )  # fmt: skip

    received: list[int] = []
    with (
        DatadogLiveApm.connect(api_key=api_key, app_key=app_key, site=site, dd_url=settings.dd_url) as live_apm,
        _signals_interrupt(received),
    ):
        run = run_cutover(
            settings,
            apm=live_apm,
            shifter=shifter,
            send_event=send_event,
            progress=say,
            resume=args.resume or args.rollback,
            judge=config.policy,
            ask=input,
            person=person,
            user=user,
            environ=os.environ,
            explain=explain,
        )
    for line in summary_of(run):
        print(line)
    if run.rollback is not None and not run.rollback.applied:
        print(
            f"parity cutover: ROLLBACK FAILED: {run.rollback.reason}; the new environment's weight is "
            f"{'unknown' if run.final_weight_pct is None else f'{run.final_weight_pct:g}%'}: roll back by hand now",
            file=sys.stderr,
        )
    print(f"  journal: {settings.out / 'journal.jsonl'}; reports in {settings.out}")
    if run.outcome is Outcome.ABORTED and received:
        return 128 + received[-1]
    return cutover_exit_code(run)


@contextmanager
def _signals_interrupt(received: list[int]) -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise :class:`Interrupted` (the cutover journals it and stops with
    the weights unchanged); each signal is appended to ``received``. Previous handlers come back after."""

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        raise Interrupted(signum, f"{signal.Signals(signum).name}: the cutover stops with the weights unchanged")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _cmd_history(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.history.command import run_history

    return run_history(args)


def _cmd_demo(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from parity.demo.runner import DemoOptions, run_demo  # starts processes: imported only when used
    from parity.progress import replay_progress

    if args.what == "cutover":
        return _cmd_demo_cutover(args)
    args.out = args.out or DEFAULT_DEMO_OUT
    if not args.duration > 0:
        raise BadInput(f"--duration must be > 0 seconds, got {args.duration:g}")
    if not args.rate_scale > 0:
        raise BadInput(f"--rate-scale must be > 0, got {args.rate_scale:g}")
    config = _config(args)
    options = DemoOptions(
        duration_s=args.duration,
        rate_scale=args.rate_scale,
        seed=args.seed,
        out_dir=args.out,
        explain=not args.no_explain,
    )
    try:
        with replay_progress(args.quiet) as live:
            outcome = run_demo(
                options, config.policy, progress=lambda line: print(f"parity demo: {line}", flush=True), live=live
            )
    except RuntimeError as exc:
        raise BadInput(f"demo: {exc}") from None
    # the demo's own explanations or none: never an explain.json the directory may hold from elsewhere
    explanations = (outcome.explained and outcome.explained.explanations) or {}
    if outcome.explained is not None and outcome.explained.skipped is not None:
        print(f"parity: no explanation: {outcome.explained.skipped}", file=sys.stderr)
    _report(outcome.result, args.out, _meta(config.path, argv), outcome.sides, explanations)
    print(f"  measurements: {outcome.old_measurement}, {outcome.new_measurement}")
    if outcome.explained is not None and outcome.explained.path is not None:
        print(f"  explanations: {outcome.explained.path}")
    return EXIT_OK


def _cmd_demo_cutover(args: argparse.Namespace) -> int:
    """``parity demo cutover``: the cutover gate end to end on loopback; the exit code of ``parity cutover``."""
    from parity.cutover.model import Outcome
    from parity.cutover.run import summary_of
    from parity.demo.cutover import CutoverDemoOptions, run_cutover_demo

    steps = _demo_steps(args.steps) if args.steps else CutoverDemoOptions.steps
    options = CutoverDemoOptions(
        out_dir=args.out or DEFAULT_DEMO_CUTOVER_OUT,
        bottleneck=not args.no_bottleneck,
        rate_rps=args.rate,
        steps=steps,
        max_hold_s=args.max_hold,
        seed=args.seed,
        explain=not args.no_explain,
    )
    received: list[int] = []
    try:
        with _signals_interrupt(received):
            outcome = run_cutover_demo(options, progress=lambda line: print(f"parity demo cutover: {line}", flush=True))
    except RuntimeError as exc:
        raise BadInput(f"demo cutover: {exc}") from None
    for line in summary_of(outcome.run):
        print(line)
    after = "unknown (the read failed)" if outcome.weight_after_pct is None else f"{outcome.weight_after_pct:g}%"
    old, new = outcome.routed
    print(f"  Route 53 weight to the new side, read back at the end: {after}; the router sent {old} requests to ec2, "
          f"{new} to eks")  # fmt: skip
    explained = outcome.run.explanation is not None and outcome.run.explanation.file is not None
    print(
        f"  reports: {options.out_dir / 'index.html'}, {options.out_dir / 'cutover.json'}"
        + (f", {options.out_dir / 'explain.json'}" if explained else "")
    )
    if outcome.run.outcome is Outcome.ABORTED and received:
        return 128 + received[-1]
    return outcome.exit_code


def _demo_steps(text: str) -> tuple[float, ...]:
    try:
        steps = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BadInput(f"--steps: expected percentages such as 10,50,100, got {text!r}") from None
    if not steps or any(not 0 < w <= 100 for w in steps) or list(steps) != sorted(set(steps)):
        raise BadInput(f"--steps: expected increasing percentages in (0, 100], got {text!r}")
    return steps


def _cmd_plan(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    config = _config(args)
    baseline = load_measurement(args.baseline)
    _print_sample_plan(baseline, str(args.baseline), _shape_settings(args), config)
    _print_unreplayable(baseline)
    return EXIT_OK


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text}")
    return value


def _print_unreplayable(m: Measurement) -> None:
    """List endpoints a replay could not send, with their share of traffic."""
    plan = build_plan(m)
    for skipped in plan.skipped:
        print(f"  not replayable: {skipped.endpoint.key} ({skipped.share:.1%} of traffic): {skipped.reason}")
    if plan.skipped:
        print(f"  replay would not send {plan.skipped_share:.1%} of this baseline's traffic")
    if dropped := m.labels.get("query_values_dropped"):
        print(f"  query-string values left out of the pools (never stored): {dropped}")
    for planned in plan.endpoints:
        if planned.unfillable:
            print(
                f"  unfillable query parameter(s) of {planned.endpoint.key}: {', '.join(planned.unfillable)} "
                f"(every logged value was left out: a replay sends {UNFILLABLE_VALUE!r}; add values to the endpoint's "
                "request params in the baseline to send real ones)"
            )


def _cmd_from_logs(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.report.charts import with_time_zone
    from parity.sources.access_log import WINDOW_SLACK_S, read_access_logs
    from parity.sources.replay_window import read_replay, server_side_of
    from parity.sources.routes import describe_route_map, read_route_map

    if args.window_slack is not None and args.window_of is None:
        raise BadInput("--window-slack applies to --window-of REPLAY.json only")
    if args.timing_field is not None and args.log_format is not None:
        raise BadInput("--timing-field applies to the built-in nginx format; with --log-format use --latency-field")
    slack = WINDOW_SLACK_S if args.window_slack is None else args.window_slack
    replay = read_replay(args.window_of) if args.window_of is not None else None
    route_map = read_route_map(args.routes) if args.routes is not None else None
    result = read_access_logs(
        args.files,
        args.format,
        route_map=route_map,
        timing_field=-1 if args.timing_field is None else args.timing_field,
        max_malformed_share=args.max_malformed,
        window=None if replay is None else replay.window,
        window_slack_s=slack,
        log_format=args.log_format,
        latency_field=args.latency_field,
    )
    m = result.measurement
    if args.service or args.env:
        m = replace(m, source=replace(m.source, service=args.service or None, env=args.env or None))
    if replay is not None:
        m = server_side_of(m, replay)
    m = with_time_zone(m, args.timezone)
    path = _write_measurement(m, _from_logs_output(args))
    print(
        f"parity: wrote {path}: {m.total_count} requests on {len(m.endpoints)} endpoints, "
        f"{m.window.start.isoformat()} to {m.window.end.isoformat()}"
        + ("" if replay is None else f" (the window of {args.window_of}, rate scale {m.rate_scale:g})")
    )
    print(
        f"  lines {result.lines}, malformed {result.malformed}, skipped {result.skipped} "
        f"(not requests to the service), without latency {result.no_latency}"
    )
    if replay is not None:
        print(
            f"  outside the replay's window (± {slack:g} s): {result.outside_window} requests dropped "
            f"({result.before_window} before, {result.after_window} after)"
        )
    if result.skipped_reasons:
        print("  skipped by reason: " + ", ".join(f"{reason} {n}" for reason, n in result.skipped_reasons))
    for example in result.malformed_examples:
        print(f"  malformed: {example}")
    if route_map is not None:
        print(f"  {describe_route_map(route_map)}")
    if route_map is not None and result.unmatched:
        print(f"  {result.unmatched} requests matched no route of {args.routes}; templated from their paths, e.g.")
        for example in result.unmatched_examples:
            print(f"    {example}")
    if replay is None:
        _print_unreplayable(m)
    else:
        print(f"  judge it against a server-side baseline: parity compare BASELINE {path} --out DIR")
    return EXIT_OK


def _utc_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2026-11-01T00:00:00Z, got {text!r}"
        ) from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z or +00:00")
    return t.astimezone(UTC)


def _wait_for_ingestion(replay: Measurement, path: Path, delay_s: float) -> None:
    """Sleep until Datadog has ingested the last minute of ``replay``'s window (saying so on stderr); BadInput
    when the window ends in the future."""
    from parity.sources.replay_window import apm_window, seconds_until_ingested

    now = datetime.now(UTC)
    end = replay.window.end
    if end > now:
        raise BadInput(
            f"{path}: the replay's window ends at {end.isoformat()}, in the future: is the replay still running, "
            "or is this machine's clock off?"
        )
    wait = seconds_until_ingested(replay, now, delay_s)
    if wait > 0:
        import time

        print(
            f"parity: the replay ended {(now - end).total_seconds():.0f} s ago; Datadog ingests with a delay: "
            f"waiting {wait:.0f} s, until {apm_window(replay)[1]:%H:%M:%S} UTC + --ingest-delay {delay_s:g} s",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(wait)


def _pull_window(args: argparse.Namespace) -> tuple[datetime, datetime, Measurement | None, Path]:
    """(start, end, the replay of --window-of or None, output path) of a pull. With --window-of: the whole
    minutes around the replay's window, after waiting for Datadog to ingest the last one."""
    from parity.sources.replay_window import INGEST_DELAY_S, apm_window, read_replay

    start, end = getattr(args, "from"), args.to
    if args.window_of is None:
        if start is None or end is None:
            raise BadInput("give the window: --from and --to, or --window-of REPLAY.json")
        if args.ingest_delay is not None:
            raise BadInput("--ingest-delay applies to --window-of REPLAY.json only")
        if end <= start:
            raise BadInput(f"--to {end.isoformat()} is not after --from {start.isoformat()}")
        if end > datetime.now(UTC):
            raise BadInput(f"--to {end.isoformat()} is in the future: minutes not yet measured would read as zero")
        return start, end, None, args.out or Path("baselines") / f"{args.service}-{args.env}.json"
    if start is not None or end is not None:
        raise BadInput("--window-of replaces --from and --to: give one or the other")
    delay_s = INGEST_DELAY_S if args.ingest_delay is None else args.ingest_delay
    if not 0.0 <= delay_s < float("inf"):
        raise BadInput(f"--ingest-delay must be a number of seconds >= 0, got {delay_s:g}")
    replay = read_replay(args.window_of)
    start, end = apm_window(replay)
    _wait_for_ingestion(replay, args.window_of, delay_s)
    return start, end, replay, args.out or args.window_of.with_name(f"{args.window_of.stem}.apm.json")


def _cmd_pull(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.progress import QueryProgressBar
    from parity.report.charts import with_time_zone
    from parity.sources.datadog_apm import pull_with_keys
    from parity.sources.replay_window import server_side_of
    from parity.sources.routes import describe_route_map

    api_key, app_key, missing = _datadog_keys()
    if missing:
        raise BadInput(f"{' and '.join(missing)} not set: export the Datadog key(s) in the environment")
    start, end, replay, output = _pull_window(args)
    bar = QueryProgressBar(sys.stderr)
    try:
        pulled = pull_with_keys(
            api_key=api_key,
            app_key=app_key,
            site=args.site or os.environ.get("DD_SITE") or None,
            dd_url=args.dd_url,
            service=args.service,
            env=args.env,
            start=start,
            end=end,
            span=args.span,
            routes=args.routes,
            params=args.params,
            progress=bar,
        )
    finally:
        bar.close()
    m = pulled.measurement if replay is None else server_side_of(pulled.measurement, replay)
    path = _write_measurement(with_time_zone(m, args.timezone), output)
    print(
        f"parity: wrote {path}: {m.total_count} requests on {len(m.endpoints)} endpoints ({args.service}, {args.env})"
    )
    if replay is not None:
        print(
            f"  over the window of {args.window_of}: {m.window.start.isoformat()} to {m.window.end.isoformat()}, "
            f"rate scale {m.rate_scale:g}; APM minutes {start:%H:%M} to {end:%H:%M} UTC"
            + (
                " (the counts include any other traffic of the partial first and last minute)"
                if (start, end) != (m.window.start, m.window.end)
                else ""
            )
        )
    if pulled.route_map is not None:
        print(f"  {describe_route_map(pulled.route_map)}")
    if pulled.unmapped:
        print(
            f"  {len(pulled.unmapped)} APM resource(s) not mapped to a route ({pulled.unmapped_share:.1%} of traffic):"
        )
        for resource, share in pulled.unmapped[:20]:
            print(f"    {resource}  {share:.1%}")
        if len(pulled.unmapped) > 20:
            print(f"    ... and {len(pulled.unmapped) - 20} more")
    if replay is None:
        _print_unreplayable(m)
    else:
        print(f"  judge it against the server-side baseline: parity compare BASELINE {path} --out DIR")
    return EXIT_OK


def _datadog_keys() -> tuple[str, str, list[str]]:
    """DD_API_KEY and DD_APP_KEY from the environment, and the names of the missing ones."""
    api_key, app_key = os.environ.get("DD_API_KEY", ""), os.environ.get("DD_APP_KEY", "")
    return api_key, app_key, [name for name, value in (("DD_API_KEY", api_key), ("DD_APP_KEY", app_key)) if not value]


def _recorded_resources(doc: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """The APM resources (e.g. ``UsersController#show``) the compared Measurement files recorded per endpoint, when
    the files parity.json names (``baseline.name``, ``candidate.name``, as given to compare) are still there and are
    Measurement JSON; {} otherwise (the endpoint's key is then the resource searched; a note on stderr when a named
    Measurement JSON file cannot be read, e.g. parity explain runs in another directory than compare did)."""
    from parity.explain.command import resources_of

    sides = []
    for which in ("baseline", "candidate"):
        name = (doc.get(which) or {}).get("name")
        if not isinstance(name, str) or not name.endswith(".json"):
            return {}
        try:
            sides.append(measurement_json.read(name))
        except BadInput as exc:  # else a "no indexed span" of the key would hide that its resource was not known
            why = "not found from here" if not Path(name).is_file() else f"not read ({exc})"
            print(
                f"parity: note: {name}: {why}: the endpoint keys are searched as APM resources, not the resources "
                "it recorded (run parity explain where compare ran)",
                file=sys.stderr,
            )
            return {}
    return resources_of(sides[0], sides[1])


def _named_endpoints(groups: Sequence[str] | None, doc: Mapping[str, Any], path: Path) -> list[str]:
    """The keys ``--endpoints`` names (comma-separated, repeatable). BadInput (one line, a close match suggested) for
    a key the parity.json ``doc`` does not list: a typo would spend span searches (300 per hour for the whole org) on a
    "no indexed span" line."""
    import difflib

    named = [e.strip() for group in groups or [] for e in group.split(",") if e.strip()]
    known = sorted(
        {
            e["endpoint"]
            for e in doc.get("endpoints") or []
            if isinstance(e, dict) and isinstance(e.get("endpoint"), str)
        }
    )
    for key in named:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (--endpoints takes the keys parity.json lists)"
            raise BadInput(f"{key!r} is not an endpoint of {path}{hint}")
    return named


def _cmd_explain(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.explain.command import (
        EXPLAIN_FILE,
        explain_document,
        pick_endpoints,
        run_explain,
        selector_from_side,
        why_lines,
        write_explain_json,
    )
    from parity.explain.datadog_spans import DatadogSpans, SamplePolicy

    path: Path = args.parity
    with reading(path, "a parity.json file"):
        text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("endpoints"), list):
        raise BadInput(f"{path}: not a parity.json (no endpoints list)")
    api_key, app_key, missing = _datadog_keys()
    if missing:
        raise BadInput(f"{' and '.join(missing)} not set: export the Datadog key(s) in the environment")
    try:
        old = selector_from_side(
            doc.get("baseline"), which="baseline", env=args.old_env, service=args.old_service, span=args.span
        )
        new = selector_from_side(
            doc.get("candidate"), which="candidate", env=args.new_env, service=args.new_service, span=args.span
        )
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}") from None
    endpoints = pick_endpoints(doc, top=args.top, named=_named_endpoints(args.endpoints, doc, path))
    out_dir: Path = args.out if args.out is not None else path.parent
    results: tuple[Any, ...] = ()
    resources = _recorded_resources(doc) if endpoints else {}
    if endpoints:
        reader = DatadogSpans.connect(  # DatadogError (a BadInput) for a bad site or URL
            api_key=api_key, app_key=app_key, site=args.site or os.environ.get("DD_SITE") or None, dd_url=args.dd_url
        )
        with reader:
            results = run_explain(
                reader,
                endpoints,
                old=old,
                new=new,
                resources=resources,
                policy=SamplePolicy(traces=args.traces, seed=args.seed),
                progress=lambda line: print(f"parity: {line}", file=sys.stderr),
            )
    document = explain_document(results, old=old, new=new, parity=str(path))
    try:
        target = write_explain_json(out_dir, document)
    except OSError as exc:
        raise BadInput(f"{out_dir / EXPLAIN_FILE}: cannot write it: {exc.strerror or exc}") from None
    if not endpoints:
        print(f"parity: nothing to explain: {path} has no regressed endpoint (name some with --endpoints)")
    for line in why_lines(document):
        print(f"  {line}")
    # the last read's count (each endpoint reads old, then new): an earlier one overstates what is left
    limits = [r for e in reversed(results) for r in (e.new, e.old) if r is not None and r.rate_limit is not None]
    if limits:
        print(f"  Datadog span search: {limits[0].rate_limit.describe()}")
    print(f"parity: wrote {target}")
    hint = _rewrite_command((doc.get("meta") or {}).get("command"))
    if hint is not None and endpoints and out_dir.resolve() == path.parent.resolve():
        print(f"  the report shows it when rewritten beside it: {hint}")
    return EXIT_OK


def _rewrite_command(command: Any) -> str | None:
    """The compare command of a parity.json's ``meta.command`` that rewrites its report beside it, without
    ``--explain`` (which would read traces again and overwrite the explain.json just written); None for another
    command or one that cannot be split."""
    if not isinstance(command, str) or not command.startswith("parity compare"):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return shlex.join(w for w in words if w != "--explain")


def _time_zone_name(text: str) -> str:
    """A time zone name the report understands: IANA (Europe/Berlin) or a fixed offset (+02:00)."""
    from parity.report.charts import time_zone

    if time_zone(text) is None:
        raise argparse.ArgumentTypeError(f"not a time zone: {text!r} (expected e.g. Europe/Berlin or +02:00)")
    return text.strip()


def _add_time_zone_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timezone",
        type=_time_zone_name,
        metavar="ZONE",
        help="the service's local time zone (Europe/Berlin, +02:00), recorded in the baseline: the report's time "
        "charts show that time of day under UTC (without it: UTC only)",
    )


def _url(text: str) -> str:
    """A target's base URL: http(s)://host[:port][/path]."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected a base URL such as http://web.internal:8080, got {text!r}")
    try:
        _ = parts.port
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return text


def _duration(text: str) -> float:
    """Locust's run-time spelling: ``90``, ``90s``, ``2m``, ``1h30m`` → seconds (> 0)."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 90s, 2m or 1h30m, got {text!r}")
    hours, minutes, secs = (float(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + secs
    if not total > 0:
        raise argparse.ArgumentTypeError(f"duration must be > 0, got {text!r}")
    return total


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _cmd_ab(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from parity.ab import REFUSED, run_ab
    from parity.progress import replay_progress
    from parity.replay.process import ReplayRun

    config = _config(args)
    baseline = measurement_json.read(args.baseline)  # unreadable or invalid: one line, exit 2, before any process
    if args.explain:
        _check_ab_explain(args, baseline)
    settings = _shape_settings(args)
    run_time_s = settings.run_time_s
    _print_sample_plan(baseline, str(args.baseline), settings, config)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{args.out}: cannot create the report directory: {exc.strerror or exc}") from None
    run = ReplayRun(
        baseline=args.baseline,
        host=args.new,
        out=args.out / "new.measurement.json",
        old_host=args.old,
        old_out=args.out / "old.measurement.json",
        run_time_s=run_time_s,
        rate_scale=args.rate_scale,
        seed=args.seed,
        target_env=args.new_env,
        old_env=args.old_env,
        service=args.service or baseline.source.service,
        **_shape_fields(args),
        processes=args.processes,
        rails=config.rails,
        extra=tuple(args.locust_args),
    )
    length = "the ramp" if run_time_s is None else f"{run_time_s:g} s"
    print(f"parity ab: replaying {args.baseline} against old {args.old} and new {args.new} at once: {length}, "
          f"{args.shape} shape, rate scale {args.rate_scale:g}", flush=True)  # fmt: skip
    with replay_progress(args.quiet) as progress:
        outcome = run_ab(replace(run, progress=progress), config.policy, log_path=args.out / "locust.log")
    if outcome.status == REFUSED or outcome.result is None:
        print(f"parity: refused: {outcome.refusal} (log: {outcome.log_path})", file=sys.stderr)
        return outcome.exit_code
    explanations = None
    if args.explain and outcome.interrupted is not None:  # a stop ends the run now: no Datadog reads (and waits)
        print(f"parity: no explanation: stopped by {signal.Signals(outcome.interrupted).name}: not explained",
              file=sys.stderr)  # fmt: skip
    elif args.explain and outcome.sides is not None:
        explanations = _ab_explanations(args, outcome.result, outcome.sides, baseline)
    _report(outcome.result, args.out, _meta(config.path, argv), outcome.sides, explanations)
    print(f"  measurements: {outcome.old_path}, {outcome.new_path}; Locust log: {outcome.log_path}")
    if outcome.interrupted is not None:
        print(f"  note: stopped by {signal.Signals(outcome.interrupted).name}: the replay is incomplete, judged on "
              f"what was recorded (exit {outcome.exit_code})")  # fmt: skip
    elif outcome.status != "complete":
        print(f"  note: the replay was {outcome.status}: judged on what was recorded")
    return outcome.exit_code


def _check_ab_explain(args: argparse.Namespace, baseline: Measurement) -> None:
    """Before ``ab --explain`` replays anything: BadInput when no APM service is known (``--service``, else the
    baseline's); a note on stderr when the Datadog keys are missing (the run goes on, unexplained)."""
    from parity.explain.command import DatadogAccess

    if not (args.service or baseline.source.service):
        raise BadInput(
            f"--explain needs the APM service both sides' traces are searched under: give --service ({args.baseline} "
            "names none)"
        )
    access = DatadogAccess.from_environ(os.environ, site=args.site or None, dd_url=args.dd_url)
    if isinstance(access, str):
        print(f"parity: note: {access}: the run will not be explained", file=sys.stderr)


def _ab_explanations(
    args: argparse.Namespace, result: ParityResult, sides: tuple[Measurement, Measurement], baseline: Measurement
) -> dict[str, dict[str, Any]] | None:
    """``ab --explain``: both sides' traces are those of the service the sides name (``--service``, else the
    baseline's) in the env each names (``--old-env``, ``--new-env``) over the run's window, each endpoint searched by
    the APM resource the baseline recorded for it; as :func:`_compare_explanations` (None and one line when nothing
    is explained, never a changed verdict)."""
    from parity.ab import with_replayed_resources

    old, new = (with_replayed_resources(side, baseline) for side in sides)
    return _compare_explanations(args, result, old, new)


def _shape_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``ReplayRun`` fields of the options :func:`_add_shape_options` adds (the run time apart)."""
    return {
        "shape": args.shape,
        "rps": args.rps,
        "steps": args.steps,
        "step_duration_s": args.step_duration,
        "burst_multiplier": args.burst_multiplier,
        "burst_start_s": args.burst_start,
        "burst_duration_s": args.burst_duration,
        "min_endpoint_rps": args.min_endpoint_rps,
    }


def _add_shape_options(parser: argparse.ArgumentParser) -> None:
    """The run time, rate and shape options a replay takes (``parity ab``, ``parity replay``, ``parity plan``)."""
    group = parser.add_argument_group("run time, rate and load shape")
    group.add_argument(
        "-t", "--duration", type=_duration, metavar="DURATION",
        help=f"run time (90, 90s, 2m, 1h30m): the baseline's window is compressed into it; a ramp's is its steps x "
        f"step duration (default: {DEFAULT_AB_DURATION_S:g} s)",
    )  # fmt: skip
    group.add_argument(
        "--rate-scale", type=_positive, default=1.0, metavar="X",
        help="multiply the baseline's request rate (0.1 = 10%% of production) (default: %(default)g)",
    )  # fmt: skip
    group.add_argument(
        "--seed", type=int, default=1, metavar="N",
        help="arrival schedule seed: same seed, same requests at the same offsets (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--shape", choices=("replay", "steady", "ramp", "burst"), default="replay",
        help="replay (the baseline's window compressed into -t), steady (--rps), ramp (--steps, --step-duration) "
        "or burst (--burst-multiplier, --burst-start, --burst-duration) (default: %(default)s)",
    )  # fmt: skip
    group.add_argument("--rps", type=_positive, metavar="N", help="steady: total requests per second")
    group.add_argument(
        "--steps", metavar="P,...",
        help="ramp: percentages of the baseline's peak rate (default: "
        + ",".join(f"{p:g}" for p in ShapeSettings().steps) + ")",
    )  # fmt: skip
    group.add_argument("--step-duration", type=_positive, metavar="S", help="ramp: seconds per step")
    group.add_argument(
        "--burst-multiplier", type=_positive, metavar="M",
        help=f"burst: rate multiplier (default: {ShapeSettings().multiplier:g})",
    )  # fmt: skip
    group.add_argument("--burst-start", type=float, metavar="S", help="burst: seconds into the run it starts")
    group.add_argument("--burst-duration", type=_positive, metavar="S", help="burst: seconds it lasts")
    group.add_argument(
        "--min-endpoint-rps", type=_positive, metavar="R",
        help="oversample: raise every endpoint planned below R req/s to R (marked as its load_factor)",
    )  # fmt: skip


def _run_time(args: argparse.Namespace) -> float | None:
    """The run time of ``args``' shape: -t, else the default (None for a ramp: its steps x step duration)."""
    if args.shape == "ramp" and args.step_duration is None:
        raise BadInput("--shape ramp needs --step-duration (seconds per step)")
    return args.duration if args.shape == "ramp" else (args.duration or DEFAULT_AB_DURATION_S)


def _shape_settings(args: argparse.Namespace) -> ShapeSettings:
    """The replay shape ``args`` ask for (see :func:`_add_shape_options`)."""
    try:
        steps = tuple(float(p) for p in args.steps.split(",") if p.strip()) if args.steps else ShapeSettings().steps
    except ValueError:
        raise BadInput(
            f"--steps: expected comma-separated percentages such as 1,5,10,50,100, got {args.steps!r}"
        ) from None
    return ShapeSettings(
        kind=ShapeKind(args.shape),
        run_time_s=_run_time(args),
        rate_scale=args.rate_scale,
        rps=args.rps,
        steps=steps,
        step_s=args.step_duration,
        multiplier=args.burst_multiplier or ShapeSettings().multiplier,
        start_s=args.burst_start,
        duration_s=args.burst_duration,
        min_endpoint_rps=args.min_endpoint_rps,
    )


def _print_sample_plan(
    baseline: Measurement,
    name: str,
    settings: ShapeSettings,
    config: Config,
    endpoint_filter: EndpointFilter | None = None,
) -> None:
    """Print what a replay of ``baseline`` shaped as ``settings`` will send and what a verdict needs; with an
    active ``endpoint_filter``, of the endpoints it keeps only (BadInput when it keeps none, as the replay would)."""
    from parity.replay import shapes
    from parity.replay.sample_plan import replay_sample_plan
    from parity.report.terminal import sample_plan_summary

    plan = build_plan(baseline)
    if not plan.endpoints:
        raise BadInput(f"{name}: no replayable endpoint (see `parity baseline` for route maps and pools)")
    if endpoint_filter is not None and endpoint_filter.active:
        kept = filter_plan(plan, endpoint_filter).plan
        if not kept.endpoints:
            raise BadInput(no_match_message(plan, endpoint_filter, name))
        plan = kept
        kept_stats = tuple(e for e in baseline.endpoints if endpoint_filter.keeps(e.endpoint))
        baseline = replace(baseline, endpoints=kept_stats)
        name = f"{name} ({endpoint_filter.describe()})"
    try:
        shaped = shapes.shape(plan, settings)
    except ValueError as exc:
        raise BadInput(f"--shape {settings.kind.value}: {exc}") from None
    what = (
        f"{name} replayed for {shaped.run_time_s:g} s ({settings.kind.value} shape, rate scale {settings.rate_scale:g})"
    )
    print(
        sample_plan_summary(
            replay_sample_plan(baseline, shaped, config.policy), what, rate_scale=settings.rate_scale, rows=20
        )
    )


def _add_ab_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    ab = sub.add_parser(
        "ab",
        help="concurrent A/B: replay a baseline against an old and a new deployment at once, judge new vs old",
        description="Replay BASELINE against OLD and NEW at the same time - one Locust run, one open-model schedule, "
        "the same requests sent to both at their planned times - then judge new against old and write the "
        "reports (DIR/index.html, parity.json, junit.xml, summary.md) plus DIR/old.measurement.json, "
        "DIR/new.measurement.json and DIR/locust.log. The [replay] safety rails of parity.toml apply to both "
        "hosts.\n\n"
        "Arguments after -- go to Locust as they are, e.g. `-- --master --master-bind-host '*' "
        "--expect-workers 2` (its master listens on 127.0.0.1 unless told; start the workers with "
        "`locust -f loadtests/replay.py --worker --master-host HOST`). Request handling, endpoint filters and "
        "the other replay options: see `parity replay --help` (after --, they reach the replay too).\n\n"
        "Exit codes: 0 parity, 1 regression, 2 bad input, 3 inconclusive or incomplete, 4 refused or aborted "
        "by a safety rail.",
        epilog=examples(
            "parity ab baselines/web-ec2.json --old http://web-ec2.internal:8080 --new http://web-eks.internal:8080 \\",
            "    -t 10m --rate-scale 0.5 --min-endpoint-rps 2 -o reports/ab",
            "parity ab baselines/demo.json --old http://127.0.0.1:8080 --new http://127.0.0.1:8081 -t 2m \\",
            "    --shape ramp --steps 10,50,100 --step-duration 40 -- --master --expect-workers 2",
        ),
    )
    ab.passthrough = "locust_args"
    ab.add_argument("baseline", type=Path, help="Measurement to replay (e.g. the old environment's APM baseline)")
    ab.add_argument("--old", required=True, type=_url, metavar="URL", help="base URL of the old (reference) side")
    ab.add_argument("--new", required=True, type=_url, metavar="URL", help="base URL of the new (candidate) side")
    _add_shape_options(ab)
    ab.add_argument(
        "--processes", type=_count, default=1, metavar="N", help="Locust processes sending (default: %(default)s)"
    )
    ab.add_argument(
        "--service",
        help="service name, for the report and the APM service --explain reads (default: the baseline's service)",
    )
    ab.add_argument(
        "--old-env", default="old", help="name of the old environment, its APM env for --explain (default: %(default)s)"
    )
    ab.add_argument(
        "--new-env", default="new", help="name of the new environment, its APM env for --explain (default: %(default)s)"
    )
    _add_out_option(ab, Path("reports/ab"), "report directory (default: %(default)s)")
    _add_config_option(ab)
    ab.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_explain_options(
        ab,
        "explain the top regressed endpoints from both sides' sampled APM traces over the run's window (DD_API_KEY "
        "and DD_APP_KEY set): --service in --old-env and in --new-env, each endpoint searched by the APM resource the "
        "baseline recorded; writes DIR/explain.json and shows a why line in the reports; never changes the verdict "
        "or the exit code",
    )


def _add_explain_options(parser: argparse.ArgumentParser, explain_help: str) -> None:
    """``--explain`` (help ``explain_help``), ``--site`` and ``--dd-url`` (compare, ab)."""
    why = parser.add_argument_group("why is it slower (parity explain)")
    why.add_argument("--explain", action="store_true", help=explain_help)
    why.add_argument("--site", default="", help="Datadog site for --explain (default: DD_SITE, else datadoghq.com)")
    why.add_argument("--dd-url", default=None, metavar="URL", help="send --explain's API calls to this base URL")


#: Help of ``--quiet`` (the commands that run a replay).
QUIET_HELP = (
    "no live progress on stderr while the replay runs (without it: a line redrawn in place on a terminal, "
    "printed every 10 s elsewhere)"
)


def _write_measurement(m: Measurement, path: Path) -> Path:
    try:
        return measurement_json.write(m, path)
    except OSError as exc:
        raise BadInput(f"{path}: cannot write: {exc.strerror or exc}") from None


def _add_cutover_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    """``parity cutover``."""
    cut = sub.add_parser(
        "cutover",
        help="the cutover gate: move traffic step by step, judged live on both environments' APM, roll back on a stop",
        description="Walk the weighted-DNS cutover of the [cutover] table of parity.toml: shift each step "
        "(1, 5, 10, 50 and 100% to the new environment unless [cutover] steps says otherwise), read both "
        "environments' live Datadog APM every "
        "interval and decide with anytime-valid sequential tests per endpoint: GO to the next step, STOP (roll "
        "back to rollback_weight), or HOLD for a person at the maximum hold (--resume watches the held step for "
        "another hold, --resume --go moves on, --rollback rolls back now). Every check and decision goes to "
        "OUT/journal.jsonl before it acts; --resume continues from it after a crash or Ctrl-C. Writes "
        "OUT/index.html, OUT/summary.md, OUT/cutover.json and sends a Datadog event; a STOP is explained after the "
        "rollback from both environments' APM traces (OUT/explain.json, why lines; --no-explain). Keys from "
        "DD_API_KEY / "
        "DD_APP_KEY (never written); AWS credentials from the standard chain. Exit codes: 0 completed, "
        "1 stopped (rolled back), 2 bad input, 3 held, 4 stopped by a guardrail; 128 + signal when interrupted.",
        epilog=examples(
            "parity cutover --dry-run --config parity.toml",
            "parity cutover --config parity.toml -o reports/cutover-web",
            "parity cutover --resume -o reports/cutover-web",
            "parity cutover --resume --go -o reports/cutover-web",
            "parity cutover --rollback -o reports/cutover-web",
        ),
    )
    _add_config_option(cut)
    _add_out_option(cut, None, "journal and reports directory (default: [cutover] out of parity.toml)")
    cut.add_argument(
        "--resume",
        action="store_true",
        help="continue the cutover of OUT/journal.jsonl (reads the live weight first); on a HELD cutover: watch the "
        "same step for another maximum hold",
    )
    cut.add_argument(
        "--go",
        action="store_true",
        help="with --resume, on a HELD cutover: a person's decision to go on to the next step (journaled with $USER)",
    )
    cut.add_argument(
        "--rollback",
        action="store_true",
        help="roll back to rollback_weight now and end the cutover as stopped (a person's decision, journaled)",
    )
    cut.add_argument(
        "--dry-run", action="store_true", help="print the plan, the Datadog queries and each step's change; do nothing"
    )
    cut.add_argument(
        "--no-explain",
        action="store_true",
        help="on a STOP, do not read both environments' APM traces to explain why the stopping endpoints are slower "
        "(default: explained after the rollback, unless [cutover] explain = false; OUT/explain.json)",
    )


def _add_plan_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    plan = sub.add_parser(
        "plan",
        help="sample-size plan: will a replay send each endpoint enough requests for a verdict?",
        description="Before a replay: per endpoint of BASELINE, the requests a replay of -t DURATION at "
        "--rate-scale X will send, against the requests per side each gated metric needs to catch a change of "
        "its tolerance (80% power at the run's alpha, after adjusting for every test of the run), and the -t, "
        "--rate-scale or --min-endpoint-rps (oversampling rare endpoints) that would make every endpoint with "
        "meaningful traffic judgeable. It takes the shape options of `parity replay` and `parity ab`, "
        "which print the same table when they start.",
        epilog=examples(
            "parity plan baselines/web-ec2.json -t 10m --rate-scale 0.5 --min-endpoint-rps 2",
            "parity plan baselines/demo.json --shape ramp --steps 10,50,100 --step-duration 60",
        ),
    )
    plan.add_argument("baseline", type=Path, help="the baseline Measurement to replay")
    _add_shape_options(plan)
    _add_config_option(plan)


def _add_pull_parser(baseline_sub: argparse._SubParsersAction[_CommandParser]) -> None:
    """``parity baseline pull``."""
    pull = baseline_sub.add_parser(
        "pull",
        help="baseline from Datadog APM (keys from DD_API_KEY / DD_APP_KEY, site from DD_SITE)",
        description="""\
Pull per-resource hits, errors, latency (avg, max, p50-p99) and the per-minute traffic of an APM
service over a window (--from/--to) into a baseline. Resources map to method + route through
--routes; unmapped ones are kept and listed. The keys are read from DD_API_KEY and DD_APP_KEY and
are never printed or written.

Server-side figures for a replay's window: with --window-of REPLAY.json instead of --from/--to, it
pulls the candidate's own APM over the replay's window (the whole UTC minutes around it, after
waiting until Datadog has ingested the last one) and labels it as that replay's server-side record
(the replay's window and rate scale), to judge against a server-side baseline. The counts include
any other traffic the candidate got in the partial first and last minute.""",
        epilog=examples(
            "parity baseline pull --service web --env ec2 --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z \\",
            "    --routes routes.txt --params params/",
            "parity baseline pull --service web --env eks --window-of reports/run/candidate.measurement.json \\",
            "    -o reports/run.apm.json",
            "parity compare baselines/web-ec2.json reports/run.apm.json -o reports/server-side",
        ),
    )
    pull.add_argument("--service", required=True, help="APM service name")
    pull.add_argument("--env", required=True, help="APM env tag (e.g. ec2)")
    _add_time_zone_option(pull)
    pull.add_argument("--from", type=_utc_time, metavar="TIME", help="window start, ISO-8601 with zone")
    pull.add_argument("--to", type=_utc_time, metavar="TIME", help="window end (exclusive)")
    pull.add_argument(
        "--window-of",
        type=Path,
        metavar="REPLAY",
        help="instead of --from/--to: the window of this replay's Measurement; writes the candidate's server-side "
        "record of the replay",
    )
    pull.add_argument(
        "--ingest-delay",
        type=float,
        metavar="SECONDS",
        help="with --window-of: seconds Datadog needs after a minute ends before it is complete; when the "
        "replay ended more recently, the pull waits (default: 120 s)",
    )
    pull.add_argument("--span", default="rack.request", help="root span name (default: %(default)s)")
    pull.add_argument("--routes", type=Path, help="route map: `bin/rails routes` output or an OpenAPI 3 JSON file")
    pull.add_argument("--params", type=Path, metavar="DIR", help="parameter pools: one <param>.csv per parameter")
    pull.add_argument("--site", default="", help="Datadog site (default: DD_SITE, else datadoghq.com)")
    pull.add_argument("--dd-url", default=None, metavar="URL", help="send every API call to this base URL (proxy)")
    _add_out_option(
        pull,
        None,
        "baseline file (default: baselines/SERVICE-ENV.json; with --window-of, REPLAY's name with .apm.json)",
        metavar="PATH",
        old_spelling=True,
    )


def _add_from_logs_parser(baseline_sub: argparse._SubParsersAction[_CommandParser]) -> None:
    """``parity baseline from-logs``."""
    logs = baseline_sub.add_parser(
        "from-logs",
        help="baseline from AWS ALB or nginx access logs",
        description="""\
Read access logs (plain or gzip) into a baseline: per endpoint (method + route template) counts,
errors, latency sketches, a per-minute timeline and parameter pools for replay. Paths become route
templates through --routes when given, else numeric ids, UUIDs and hashes become {id}.

Server-side figures for a replay's window: with --window-of REPLAY.json, it keeps only the requests
that arrived during the replay's window and labels the result as that replay's server-side record
(the replay's window and rate scale), to judge the candidate's own access log against a server-side
baseline. Arrival: ALB request_creation_time (`time` is the response's); nginx $time_local (the end
of the request, whole seconds) minus the timing field ($request_time). Requests up to --window-slack
seconds outside still count; the others are counted and dropped; none inside is bad input.""",
        epilog=examples(
            "parity baseline from-logs --format alb logs/*.log.gz --routes routes.txt -o baselines/web-alb.json",
            "parity baseline from-logs --format nginx access.log -o baselines/web.json \\",
            "    --latency-field upstream_response_time \\",
            '    --log-format \'$remote_addr [$time_local] "$request" $status rt=$request_time '
            'urt="$upstream_response_time"\'',
            "parity baseline from-logs --format nginx access.log --window-of reports/run/candidate.measurement.json \\",
            "    -o reports/run.log.json",
            "parity compare baselines/web-logs.json reports/run.log.json -o reports/server-side",
        ),
    )
    logs.add_argument("files", type=Path, nargs="+", metavar="FILE", help="access log files (.gz or plain)")
    logs.add_argument("--format", required=True, choices=("alb", "nginx"), help="log format")
    _add_out_option(
        logs,
        None,
        "baseline file (default: baselines/ + the first FILE's name without .gz and .log + .json; with --window-of, "
        "REPLAY's name with .log.json)",
        metavar="PATH",
        old_spelling=True,
    )
    logs.add_argument("--routes", type=Path, help="route map: `bin/rails routes` output or an OpenAPI 3 JSON file")
    logs.add_argument(
        "--timing-field",
        type=int,
        metavar="N",
        help="nginx, built-in format: position of $request_time among the fields after the combined format "
        "(0 = first; negative counts from the end) (default: -1, the last)",
    )
    logs.add_argument(
        "--log-format",
        metavar="FORMAT",
        help="nginx: the log_format's format string, or the whole `log_format NAME [escape=json] '...' '...';` "
        "directive, or `combined`; lines must match it exactly",
    )
    logs.add_argument(
        "--latency-field",
        metavar="NAME",
        help="with --log-format: the latency variable, request_time, upstream_response_time, "
        "upstream_header_time or upstream_connect_time (retries: the times are summed) (default: request_time)",
    )
    logs.add_argument(
        "--max-malformed",
        type=_share,
        default=0.01,
        metavar="SHARE",
        help="fail (exit 2) when more than this share of lines is malformed (default: %(default)g)",
    )
    logs.add_argument("--service", default="", help="service name to record in the baseline")
    logs.add_argument("--env", default="", help="environment name to record in the baseline")
    _add_time_zone_option(logs)
    logs.add_argument(
        "--window-of",
        type=Path,
        metavar="REPLAY",
        help="keep only the requests that arrived during this replay's window (its Measurement) and write the "
        "candidate's server-side record of the replay",
    )
    logs.add_argument(
        "--window-slack",
        type=float,
        metavar="SECONDS",
        help="with --window-of: also keep requests that arrived up to this many seconds before or after the "
        "window (nginx's whole-second times, clock differences) (default: 1 s)",
    )


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config``, the same on every command that reads parity.toml."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="parity.toml (default: ./parity.toml or [tool.parity])"
    )


def _add_out_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    default: Path | None,
    what: str,
    *,
    metavar: str = "DIR",
    old_spelling: bool = False,
) -> None:
    """``-o/--out``: every command that writes files takes it, with a documented default. ``old_spelling``:
    ``--output`` (what the baseline commands called it) still works, unlisted."""
    parser.add_argument("-o", "--out", dest="out", type=Path, default=default, metavar=metavar, help=what)
    if old_spelling:
        parser.add_argument(
            "--output", dest="out", type=Path, default=argparse.SUPPRESS, metavar=metavar, help=argparse.SUPPRESS
        )


def _add_explain_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    """``parity explain``: why the top regressed endpoints of a parity.json are slower, from APM traces."""
    ex = sub.add_parser(
        "explain",
        help="why the regressed endpoints are slower: time per component from sampled APM traces, old vs new",
        description="For the top regressed endpoints of PARITY_JSON (or --endpoints), sample traces of each "
        "endpoint from both environments over the compared windows through Datadog's Spans API (indexed spans; "
        "DD_API_KEY and DD_APP_KEY from the environment, an app key with apm_read), break each request's time down "
        "by component (app code, each database, cache, outbound HTTP, DNS, queueing) and judge old vs new per "
        "component. Writes DIR/explain.json and prints one why line per endpoint; a reading that fails is that "
        "endpoint's 'no explanation: <reason>'. The report (index.html, summary.md) shows the explanations when "
        "explain.json sits beside parity.json as it is written. Never changes a verdict. Exit codes: 0 done (with "
        "or without explanations), 2 bad input.",
        epilog=examples(
            "parity explain reports/compare/parity.json",
            "parity explain reports/compare/parity.json --endpoints 'GET /users/{id}' --new-service web-eks",
        ),
    )
    ex.add_argument("parity", type=Path, metavar="PARITY_JSON", help="the parity.json of the comparison to explain")
    ex.add_argument(
        "--endpoints",
        action="append",
        metavar="KEYS",
        help="endpoints to explain, comma-separated keys as in parity.json, repeatable (default: the top --top "
        "bottlenecks, then the failed endpoints)",
    )
    ex.add_argument(
        "--top",
        type=_count,
        default=3,
        help="how many bottlenecks to explain when --endpoints is not given (default: %(default)s)",
    )
    ex.add_argument("--old-service", help="the old side's APM service (default: parity.json's baseline service)")
    ex.add_argument("--old-env", help="the old side's APM env (default: parity.json's baseline env)")
    ex.add_argument("--new-service", help="the new side's APM service (default: parity.json's candidate service)")
    ex.add_argument("--new-env", help="the new side's APM env (default: parity.json's candidate env)")
    ex.add_argument("--span", default="rack.request", help="the request span's operation (default: %(default)s)")
    ex.add_argument("--traces", type=_count, default=30, help="traces sampled per side (default: %(default)s)")
    ex.add_argument("--seed", type=int, default=0, help="seed of the trace sample (default: %(default)s)")
    ex.add_argument("--site", default="", help="Datadog site (default: DD_SITE, else datadoghq.com)")
    ex.add_argument("--dd-url", default=None, metavar="URL", help="send every API call to this base URL (proxy)")
    _add_out_option(ex, None, "directory for explain.json (default: the directory of PARITY_JSON)")


def _add_replay_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    """``parity replay``: the replay locustfile's options, shown by ``--help`` (Locust prints its own help before
    it loads a locustfile, so ``locust -f loadtests/replay.py --help`` cannot show them)."""
    rp = sub.add_parser(
        "replay",
        help="replay a baseline against one target with Locust and record its Measurement (optionally judged)",
        description="Replay BASELINE against one target - the same Locust replay as `locust -f loadtests/replay.py "
        "--headless`, run as a child process: the baseline's endpoint mix and per-endpoint rate over its "
        "window, compressed into -t and scaled by --rate-scale, sent at their planned times whatever the "
        "target's response time (open model). Writes DIR/candidate.measurement.json and DIR/locust.log; "
        "with --against FILE also judges the recording against FILE and writes the reports (DIR/index.html, "
        "parity.json, junit.xml, summary.md). A replay measures client-side latency: judge it against another "
        "replay (a previous run against the old environment, same baseline, seed, -t and --rate-scale), or "
        "judge the target's own server-side figures for the replay's window (`parity baseline pull "
        "--window-of DIR/candidate.measurement.json`). Both targets still serve? Use `parity ab`.\n\n"
        "The [replay] safety rails of parity.toml apply; options override them. Arguments after -- go to "
        "Locust as they are (e.g. `-- --master --master-bind-host '*' --expect-workers 2`, workers started with "
        "`locust -f loadtests/replay.py --worker --master-host HOST`).\n\n"
        "Exit codes: without --against 0 recorded, 3 recorded only in part (stopped early); with --against the "
        "verdict: 0 parity, 1 regression, 3 inconclusive or incomplete; always 2 bad input, 4 refused or aborted "
        "by a safety rail, 130/143 stopped by SIGINT/SIGTERM (what was recorded is written, marked partial).",
        epilog=examples(
            "parity replay baselines/demo.json --host http://127.0.0.1:8081 -t 60s -o reports/run",
            "parity replay baselines/web-ec2.json --host http://web-ec2.internal:8080 --allow-host web-ec2.internal \\",
            "    -t 10m --seed 1 -o reports/ec2",
            "parity replay baselines/web-ec2.json --host http://web-eks.internal:8080 --allow-host web-eks.internal \\",
            "    -t 10m --seed 1 --against reports/ec2/candidate.measurement.json -o reports/eks",
            "parity replay baselines/web-ec2.json --host http://web-eks.internal:8080 --allow-host web-eks.internal \\",
            "    --endpoints 'GET /api/*' --max-rps 200 --abort-error-ratio 0.05 -- --master --expect-workers 4",
        ),
    )
    rp.passthrough = "locust_args"
    rp.add_argument("baseline", type=Path, help="Measurement to replay (APM pull, access logs, a previous replay)")
    rp.add_argument("--host", required=True, type=_url, metavar="URL", help="base URL of the target")
    _add_shape_options(rp)
    out = rp.add_argument_group("output and judging")
    _add_out_option(out, DEFAULT_REPLAY_OUT, f"directory for {REPLAY_MEASUREMENT}, locust.log and, with --against, "
                    "the reports (default: %(default)s)")  # fmt: skip
    out.add_argument(
        "--against", type=Path, metavar="FILE",
        help="judge the recording against this Measurement or Locust request log (e.g. a replay of the same "
        "baseline against the old environment) and write the reports; the exit code is then the verdict",
    )  # fmt: skip
    out.add_argument("--target-env", metavar="NAME", help="name of the target environment, for the report")
    out.add_argument("--service", metavar="NAME", help="service name, for the report")
    out.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    sending = rp.add_argument_group("sending")
    sending.add_argument(
        "--processes", type=_count, default=1, metavar="N", help="Locust processes sending (default: %(default)s)"
    )
    sending.add_argument(
        "--max-in-flight", type=_count, metavar="N",
        help="requests in flight per Locust process at most; more due are sent late and counted (default: 256)",
    )  # fmt: skip
    sending.add_argument(
        "--request-timeout", type=_positive, metavar="S",
        help="seconds a request may take in all (connect, send, headers, whole body) before it counts as an error "
        "(default: 30 s)",
    )  # fmt: skip
    sending.add_argument(
        "--max-response-bytes", type=_count, metavar="N",
        help="a longer response body is not read further and counts as an error (default: "
        f"{DEFAULT_MAX_RESPONSE_BYTES} = {DEFAULT_MAX_RESPONSE_BYTES >> 20} MiB, or [replay] max_response_bytes)",
    )  # fmt: skip
    sending.add_argument(
        "--endpoints", action="append", default=[], metavar="GLOB",
        help="replay only the endpoints whose key 'METHOD /route' matches GLOB (fnmatch; without a space it matches "
        "the route, any method); repeatable or comma-separated (default: all endpoints)",
    )  # fmt: skip
    sending.add_argument(
        "--exclude-endpoints", action="append", default=[], metavar="GLOB",
        help="leave out the endpoints whose key matches GLOB (as --endpoints)",
    )  # fmt: skip
    sending.add_argument(
        "--bodies", metavar="DIR",
        help="request-body templates, one JSON file per endpoint named METHOD_route.json with each / as _ "
        "(default: [replay] bodies, else none)",
    )  # fmt: skip
    sending.add_argument(
        "--allow-empty-bodies", action="store_true",
        help="send POST/PUT/PATCH endpoints that have no body template without one (flagged) instead of refusing",
    )  # fmt: skip
    rails = rp.add_argument_group("safety rails (override [replay] of parity.toml)")
    rails.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST",
        help="allow this target host besides loopback (repeatable; *.example.com for subdomains) "
        "(default: loopback only, plus [replay] allow_hosts)",
    )  # fmt: skip
    rails.add_argument(
        "--max-rps", type=_positive, metavar="N", help="never more than N sends in any one-second window"
    )
    rails.add_argument(
        "--abort-error-ratio", type=_share, metavar="X", help="abort when the error ratio over the window exceeds X"
    )
    rails.add_argument("--abort-p99-ms", type=_positive, metavar="MS", help="abort when p99 over the window exceeds MS")
    rails.add_argument(
        "--abort-window", type=_positive, metavar="S",
        help=f"seconds the abort rules look back (default: {ABORT_WINDOW_S:g} s)",
    )  # fmt: skip
    _add_config_option(rp)


def _replay_rails(args: argparse.Namespace, rails: Rails) -> Rails:
    """``rails`` (the [replay] table of the config) overridden by ``parity replay``'s options."""
    return replace(
        rails,
        allow_hosts=rails.allow_hosts + tuple(args.allow_host),
        max_rps=rails.max_rps if args.max_rps is None else args.max_rps,
        abort_error_ratio=rails.abort_error_ratio if args.abort_error_ratio is None else args.abort_error_ratio,
        abort_p99_ms=rails.abort_p99_ms if args.abort_p99_ms is None else args.abort_p99_ms,
        abort_window_s=rails.abort_window_s if args.abort_window is None else args.abort_window,
        max_response_bytes=rails.max_response_bytes if args.max_response_bytes is None else args.max_response_bytes,
        bodies=args.bodies or rails.bodies,
        allow_empty_bodies=args.allow_empty_bodies or rails.allow_empty_bodies,
    )


def _replay_extra(args: argparse.Namespace, rails: Rails) -> tuple[str, ...]:
    """The locustfile options of ``parity replay`` that ``ReplayRun`` has no field for, then Locust's own."""
    extra: list[str] = []
    if args.max_in_flight is not None:
        extra += ["--max-in-flight", str(args.max_in_flight)]
    if args.request_timeout is not None:
        extra += ["--request-timeout", f"{args.request_timeout:g}"]
    if rails.max_response_bytes != DEFAULT_MAX_RESPONSE_BYTES:
        extra += ["--max-response-bytes", str(rails.max_response_bytes)]
    for glob in args.endpoints:
        extra += ["--endpoints", glob]
    for glob in args.exclude_endpoints:
        extra += ["--exclude-endpoints", glob]
    return (*extra, *args.locust_args)


def _replay_run(args: argparse.Namespace, config: Config, settings: ShapeSettings) -> ReplayRun:
    """The Locust child ``parity replay``'s ``args`` ask for (the Measurement goes to DIR/candidate.measurement.json;
    the config's [replay] rails overridden by the options)."""
    from parity.replay.process import ReplayRun

    rails = _replay_rails(args, config.rails)
    return ReplayRun(
        baseline=args.baseline,
        host=args.host,
        out=args.out / REPLAY_MEASUREMENT,
        run_time_s=settings.run_time_s,
        rate_scale=args.rate_scale,
        seed=args.seed,
        target_env=args.target_env,
        service=args.service,
        **_shape_fields(args),
        processes=args.processes,
        rails=rails,
        extra=_replay_extra(args, rails),
    )


def _remove_stale_reports(out: Path) -> list[str]:
    """Remove the reports (``index.html``, ``parity.json``, ``junit.xml``, ``summary.md``) an earlier judged run
    left in ``out``, whose candidate Measurement a new unjudged replay has just replaced; the names removed."""
    from parity.report.write import REPORT_FILES

    removed = []
    for name in REPORT_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
            removed.append(name)
    return removed


def _cmd_replay(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from parity.progress import replay_progress
    from parity.replay.single import REFUSED, Reference, run_single

    config = _config(args)
    baseline = measurement_json.read(args.baseline)  # unreadable or invalid: one line, exit 2, before any process
    written = args.out / REPLAY_MEASUREMENT
    if args.against is not None and args.against.resolve() == written.resolve():
        raise BadInput(f"--against {args.against} is the file this replay writes ({written}): it would be replaced "
                       "by the new recording; give this run another -o DIR")  # fmt: skip
    reference = None if args.against is None else Reference(load_measurement(args.against), str(args.against))
    settings = _shape_settings(args)
    endpoint_filter = EndpointFilter(parse_globs(args.endpoints), parse_globs(args.exclude_endpoints))
    _print_sample_plan(baseline, str(args.baseline), settings, config, endpoint_filter)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{args.out}: cannot create the output directory: {exc.strerror or exc}") from None
    run = _replay_run(args, config, settings)
    length = "the ramp" if settings.run_time_s is None else f"{settings.run_time_s:g} s"
    print(f"parity replay: replaying {args.baseline} against {args.host}: {length}, {args.shape} shape, "
          f"rate scale {args.rate_scale:g}", flush=True)  # fmt: skip
    with replay_progress(args.quiet) as progress:
        outcome = run_single(
            replace(run, progress=progress), config.policy, log_path=args.out / "locust.log", reference=reference
        )
    if outcome.status == REFUSED or outcome.candidate is None:
        print(f"parity: refused: {outcome.refusal} (log: {outcome.log_path})", file=sys.stderr)
        return outcome.exit_code
    m = outcome.candidate
    if outcome.result is not None and reference is not None:
        _report(outcome.result, args.out, _meta(config.path, argv), (reference.measurement, m))
    print(f"  measurement: {outcome.measurement_path}: {m.total_count:,} requests on {len(m.endpoints)} endpoints, "
          f"{outcome.status}; Locust log: {outcome.log_path}")  # fmt: skip
    if outcome.result is None and (stale := _remove_stale_reports(args.out)):
        print(f"  note: removed {', '.join(stale)} of an earlier run in {args.out}: they judged the measurement this "
              "run replaced (a CI reading junit.xml would have seen that verdict)")  # fmt: skip
    if outcome.interrupted is not None:
        print(f"  note: stopped by {signal.Signals(outcome.interrupted).name}: the replay is incomplete"
              + ("" if outcome.result is None else ", judged on what was recorded")
              + f" (exit {outcome.exit_code})")  # fmt: skip
    elif outcome.status != "complete":
        print(f"  note: the replay was {outcome.status}" + ("" if outcome.result is None else ": judged on what was "
              "recorded"))  # fmt: skip
    if outcome.result is None:
        path = outcome.measurement_path
        print(f"  judge it: parity compare OTHER_REPLAY.json {path} -o DIR (client-side: a replay of the same "
              "baseline against the reference), or server-side: parity baseline pull --service S --env E "
              f"--window-of {path}")  # fmt: skip
    return outcome.exit_code


def _from_logs_output(args: argparse.Namespace) -> Path:
    """``from-logs``' output file: -o, else REPLAY's name with .log.json next to it (with --window-of), else
    baselines/ + the first log file's name without .gz and .log + .json."""
    if args.out is not None:
        return Path(args.out)
    if args.window_of is not None:
        return Path(args.window_of).with_name(f"{Path(args.window_of).stem}.log.json")
    name = Path(args.files[0]).name
    for suffix in (".gz", ".log"):
        name = name.removesuffix(suffix)
    return Path("baselines") / f"{name or 'access'}.json"


def subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """Every (sub)command of ``parser``, depth first: (its path such as ``baseline pull``, its one-line purpose,
    its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            purposes = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                yield " ".join((*path, name)), purposes.get(name, ""), child
                yield from subcommands(child, (*path, name))


def _command_list(parser: argparse.ArgumentParser) -> str:
    """``parity --help``'s list of commands with their one-line purposes (nested ones by their path, groups such
    as ``baseline`` left out: their commands are listed), then the module entry points."""
    found = {path: purpose for path, purpose, child in subcommands(parser) if not _has_subcommands(child)}
    order = [p for p in COMMAND_ORDER if p in found] + sorted(set(found) - set(COMMAND_ORDER))
    width = max(len(p) for p in order) + 2
    lines = ["commands:"] + [f"  {p:<{width}}{found[p]}" for p in order]
    width = max(len(c) for c, _ in MODULE_COMMANDS) + 2
    lines += ["", "also:"] + [f"  {c:<{width}}{purpose}" for c, purpose in MODULE_COMMANDS]
    return "\n".join(lines)


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _add_demo_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    """``parity demo [cutover]``: the bundled demo, A/B or the cutover gate, on loopback."""
    from parity.demo import DEFAULT_DURATION_S, DEFAULT_RATE_SCALE  # not .runner: ~0.1 s of imports

    demo = sub.add_parser(
        "demo",
        help="concurrent A/B replay of the bundled baseline against the demo's old and new profiles",
        description="Start the demo service's old (EC2) and new (EKS) profiles, replay the bundled baseline "
        "against both at the same time, compare new against old, explain every endpoint from the APM traces both "
        "sent to a local fake Datadog (unless --no-explain) and write the reports. Exits 0 when the "
        "demo completed (its verdict is in the report: the new profile has two planted bottlenecks). "
        "`parity demo cutover` runs the cutover gate instead (about 2 minutes): the old and new services behind "
        "a weighted router that reads its weights from Route 53 (moto, on loopback), the baseline's traffic "
        "through it, both reporting APM spans to a local fake Datadog, and `parity cutover`'s driver moving the "
        "weights 1, 10, 50, 100 % (the demo skips 5 %); the new side's planted load-dependent bottleneck stops it "
        "at 50 % and the weights return to 0 % (exit 1); with --no-bottleneck it reaches 100 % (exit 0).",
        epilog=examples(
            "parity demo",
            "parity demo --duration 30 --rate-scale 1 -o reports/demo-short",
            "parity demo cutover -o reports/demo-cutover",
            "parity demo cutover --no-bottleneck",
        ),
    )
    demo.add_argument(
        "what", nargs="?", choices=("cutover",), metavar="cutover", help="run the cutover-gate demo instead"
    )
    demo.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION_S, metavar="S",
        help="replay seconds (default: %(default)g s)",
    )  # fmt: skip
    demo.add_argument(
        "--rate-scale", type=float, default=DEFAULT_RATE_SCALE, metavar="X",
        help="load vs. the baseline (default: %(default)g)",
    )  # fmt: skip
    demo.add_argument("--seed", type=int, default=1, metavar="N", help="arrival schedule seed (default: %(default)s)")
    _add_out_option(
        demo, None, f"report directory (default: {DEFAULT_DEMO_OUT}; demo cutover: {DEFAULT_DEMO_CUTOVER_OUT})"
    )
    _add_config_option(demo)
    demo.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    demo.add_argument(
        "--no-explain",
        action="store_true",
        help="skip the explanation: without it, both services send APM traces to a local fake Datadog and every "
        "endpoint is explained from them, read back with the Datadog client (DIR/explain.json, a why line per "
        "bottleneck; demo cutover: the endpoints that stopped the gate)",
    )
    demo.add_argument(
        "--no-bottleneck", action="store_true", help="demo cutover: the new side without the planted bottleneck"
    )
    # Hidden knobs of a shorter cutover demo (the tests'): req/s through the router, steps, maximum hold (s).
    demo.add_argument("--rate", type=_positive, default=120.0, help=argparse.SUPPRESS)  # DEMO_RATE_RPS
    demo.add_argument("--steps", default=None, help=argparse.SUPPRESS)
    demo.add_argument("--max-hold", type=_positive, default=80.0, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The ``parity`` command line: every command's parser, help laid out by :class:`HelpFormatter`."""

    parser = argparse.ArgumentParser(
        prog="parity",
        usage="parity [-h] [--version] COMMAND ...",
        formatter_class=HelpFormatter,
        description="Replay production traffic and judge whether a new environment is as fast as the old one. "
        "`parity COMMAND --help` shows a command's options, defaults and examples.",
    )
    parser.add_argument("--version", action="version", version=f"parity {version()}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=_CommandParser,
        help=argparse.SUPPRESS,
        prog="parity",
    )

    cmp = sub.add_parser(
        "compare",
        help="judge a candidate against a baseline and write the reports",
        description="Judge CANDIDATE against BASELINE per endpoint and metric. Each is a Measurement file "
        "(JSON), a Locust request CSV (locust.contrib.csv_request_logger; a directory or quoted glob of them "
        "is one side), Locust's --csv PREFIX_stats.csv, a k6 --out json file or a JMeter JTL. Writes "
        "DIR/index.html, DIR/parity.json, DIR/junit.xml and DIR/summary.md. Exit codes: 0 parity, "
        "1 regression, 2 bad input, 3 inconclusive.",
        epilog=examples(
            "parity compare baselines/ec2-replay.json reports/eks/candidate.measurement.json -o reports/before-after",
            "parity compare baselines/web-ec2.json reports/run.apm.json -o reports/server-side --config parity.toml",
            "parity compare old-requests.csv 'logs/requests-*.csv' -o reports/locust",
        ),
    )
    cmp.add_argument("baseline", type=Path, help="the reference side (e.g. the old environment)")
    cmp.add_argument("candidate", type=Path, help="the side being judged (e.g. the new environment)")
    _add_out_option(cmp, Path("reports/compare"), "directory for the reports (default: %(default)s)")
    _add_config_option(cmp)
    why = cmp.add_argument_group("why is it slower (parity explain)")
    why.add_argument(
        "--explain",
        action="store_true",
        help="explain the top regressed endpoints from both sides' sampled APM traces (DD_API_KEY and DD_APP_KEY "
        "set; each side's env and service as its Measurement names them): writes DIR/explain.json and shows a why "
        "line in the reports; never changes the verdict",
    )
    why.add_argument("--site", default="", help="Datadog site for --explain (default: DD_SITE, else datadoghq.com)")
    why.add_argument("--dd-url", default=None, metavar="URL", help="send --explain's API calls to this base URL")

    _add_explain_parser(sub)

    cal = sub.add_parser(
        "calibrate",
        help="A/A calibration: noise floor, false-alarm rate and suggested tolerances from repeated runs",
        description="Compare every pair of RUNs - repeated runs against the same, unchanged target (Measurement "
        "files or Locust request CSVs) - with the current policy: every failed pair is a false alarm. Prints "
        "per metric the run-to-run noise, the largest change the tests called significant, and tolerances that "
        "sit above it. Exits 0, or 3 when no metric had enough samples to calibrate.",
        epilog=examples(
            "parity calibrate reports/aa-1/candidate.measurement.json reports/aa-2/candidate.measurement.json \\",
            "    reports/aa-3/candidate.measurement.json --write",
            "parity calibrate runs/*.json -o reports/calibration.json",
        ),
    )
    cal.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="two or more runs against the same target")
    _add_config_option(cal)
    cal.add_argument(
        "--write",
        action="store_true",
        help="write the suggested tolerances into the config (./parity.toml when there is none)",
    )
    _add_out_option(cal, None, "also write the calibration as JSON to FILE (default: printed only)", metavar="FILE")

    night = sub.add_parser(
        "nightly",
        help="the nightly parity job: refresh the baseline, replay, compare, report, record, push",
        description="Run one night of the parity job configured in the [nightly] table of parity.toml: refresh "
        "the baseline from Datadog APM when it is older than max_baseline_age_days, replay it against the "
        "target, pull the candidate's APM for the test window when configured, compare, write the reports to "
        "OUT/<night>/, append the night to the history store and push the results to Datadog when asked. "
        "Keys from DD_API_KEY / DD_APP_KEY (never written). Exit codes as for compare; 4 when a safety rail "
        "aborted the replay.",
        epilog=examples(
            "parity nightly --config parity.toml",
            "parity nightly -o /var/lib/parity/reports --push-datadog",
        ),
    )
    _add_config_option(night)
    _add_out_option(night, None, "reports root (default: [nightly] out of parity.toml)")
    night.add_argument("--push-datadog", action="store_true", help="submit parity metrics and an event to Datadog")
    why = night.add_mutually_exclusive_group()
    why.add_argument(
        "--explain",
        action="store_const",
        const=True,
        help="explain the top regressed endpoints of the night's deciding comparison from both sides' sampled APM "
        "traces ([nightly] explain = true does too; which traces: see README, 'parity nightly'): writes explain.json "
        "beside that report and shows why lines; never changes a verdict or the exit code",
    )
    why.add_argument(
        "--no-explain",
        dest="explain",
        action="store_const",
        const=False,
        help="do not explain, whatever [nightly] says",
    )
    night.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    add_history_parser(sub)
    _add_cutover_parser(sub)
    _add_ab_parser(sub)
    _add_replay_parser(sub)
    _add_plan_parser(sub)

    _add_demo_parser(sub)

    baseline = sub.add_parser(
        "baseline",
        help="make a baseline Measurement from Datadog APM or access logs",
        description="Make a baseline Measurement: `pull` from Datadog APM, `from-logs` from ALB or nginx access "
        "logs. `parity baseline SOURCE --help` shows each one's options.",
        epilog=examples(
            "parity baseline pull --service web --env ec2 --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z",
            "parity baseline from-logs --format alb logs/*.log.gz -o baselines/web-alb.json",
        ),
    )
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True, metavar="SOURCE")
    _add_pull_parser(baseline_sub)
    _add_from_logs_parser(baseline_sub)
    parser.epilog = "\n\n".join(
        (
            _command_list(parser),
            examples(
                "parity plan baselines/web-ec2.json -t 10m --rate-scale 0.5",
                "parity ab baselines/web-ec2.json --old http://web-ec2.internal:8080 --new http://web-eks.internal:8080",
                "parity replay baselines/demo.json --host http://127.0.0.1:8081 -t 60s -o reports/run",
                "parity compare baselines/ec2-replay.json reports/run/candidate.measurement.json -o reports/cmp",
                "parity demo",
            ),
            "exit codes: 0 parity, 1 regression, 2 bad input, 3 inconclusive, 4 refused or aborted by a safety rail.",
        )
    )
    return parser


class _ReaderMayLeave:
    """``sys.stdout`` whose reader may go away: after a broken pipe, writes are dropped (and the file descriptor
    points at /dev/null, so the interpreter's last flush cannot fail either)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def _drop(self) -> None:
        self._gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # not a real file descriptor (a test's capture): dropping is enough
            pass

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def _reader_may_leave() -> Iterator[None]:
    """Inside the block, a closed pipe on stdout drops the output instead of ending the command."""
    stream = sys.stdout
    sys.stdout = _ReaderMayLeave(stream)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = stream


def main(argv: Sequence[str] | None = None) -> int:
    with _reader_may_leave():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    handlers = {
        "ab": _cmd_ab,
        "calibrate": _cmd_calibrate,
        "compare": _cmd_compare,
        "cutover": _cmd_cutover,
        "demo": _cmd_demo,
        "explain": _cmd_explain,
        "from-logs": _cmd_from_logs,
        "history": _cmd_history,
        "nightly": _cmd_nightly,
        "plan": _cmd_plan,
        "pull": _cmd_pull,
        "replay": _cmd_replay,
    }
    command = args.baseline_command if args.command == "baseline" else args.command
    try:
        return handlers[command](args, args_list)
    except BadInput as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Refused as exc:
        print(f"parity: refused: {exc}", file=sys.stderr)
        return EXIT_ABORTED
    except Interrupted as exc:
        print(f"parity: interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())

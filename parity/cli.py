"""Command line: parse arguments into options, call the core, map its result to an exit code.

Exit codes (everywhere): 0 parity holds, 1 regression found, 2 bad input / usage / unreachable dependency,
3 inconclusive, 4 run aborted by a safety rail; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parity import measurement_json, version
from parity.config import Config, find_config, load_config, write_metric_rules
from parity.errors import (
    EXIT_BAD_INPUT,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    BadInput,
)
from parity.history.command import add_history_parser
from parity.judge.compare import compare
from parity.judge.result import ParityResult, Verdict
from parity.model import Measurement
from parity.replay.plan import build_plan
from parity.report.context import RunMeta
from parity.report.terminal import calibration_summary, terminal_summary
from parity.report.write import write_reports
from parity.sources import load_measurement

__all__ = ["build_parser", "exit_code", "main"]


_VERDICT_EXIT = {
    Verdict.PASS: EXIT_OK,
    Verdict.MARGINAL: EXIT_OK,
    Verdict.FAIL: EXIT_REGRESSION,
    Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE,
}


#: ``parity ab``'s run time when -t is not given, seconds.
DEFAULT_AB_DURATION_S = 60.0


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser. One whose ``passthrough`` names a destination (``parity ab``) keeps everything
    after ``--`` there, unparsed (Locust's own options); argparse alone would reject them after a positional."""

    passthrough: str | None = None

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
    """The harness's git commit when it runs from a checkout, else None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _meta(config_path: Path | None, argv: Sequence[str]) -> RunMeta:
    return RunMeta(
        harness_version=version(),
        commit=_commit(),
        generated_at=datetime.now(UTC),
        config=None if config_path is None else str(config_path),
        command=shlex.join(["parity", *argv]),
    )


def _report(
    result: ParityResult, out: Path, meta: RunMeta, measurements: tuple[Measurement, Measurement] | None = None
) -> None:
    try:
        paths = write_reports(result, out, meta, measurements=measurements)
    except OSError as exc:
        raise BadInput(f"{out}: cannot write the reports: {exc.strerror or exc}") from None
    print(terminal_summary(result, paths.index_html))


def _config(args: argparse.Namespace) -> Config:
    """The --config file, else the one found in the working directory, else the defaults."""
    return load_config(args.config if args.config is not None else find_config(Path.cwd()))


def _cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    config = _config(args)
    baseline = load_measurement(args.baseline)
    candidate = load_measurement(args.candidate)
    result = compare(baseline, candidate, config.policy, names=(str(args.baseline), str(args.candidate)))
    _report(result, args.out, _meta(config.path, argv), (baseline, candidate))
    return exit_code(result.verdict)


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

    config = _config(args)
    if config.nightly is None:
        where = config.path or "the working directory (no parity.toml)"
        raise BadInput(f"{where}: no [nightly] table: say what to replay and against which target")
    settings = config.nightly if args.out is None else replace(config.nightly, out=args.out)
    api_key, app_key = os.environ.get("DD_API_KEY", ""), os.environ.get("DD_APP_KEY", "")
    keys = DatadogKeys(api_key, app_key, os.environ.get("DD_SITE") or None) if api_key or app_key else None
    outcome = run_nightly(
        settings,
        config,
        _meta(config.path, argv),
        now=datetime.now(UTC),
        keys=keys,
        push=args.push_datadog,
        progress=lambda line: print(f"parity nightly: {line}", flush=True),
    )
    print(terminal_summary(outcome.result, outcome.out_dir / "index.html"))
    for note in outcome.notes:
        print(f"  note: {note}")
    return outcome.exit_code


def _cmd_history(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.history.command import run_history

    return run_history(args)


def _cmd_demo(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from parity.demo.runner import DemoOptions, run_demo  # starts processes: imported only when used

    if not args.duration > 0:
        raise BadInput(f"--duration must be > 0 seconds, got {args.duration:g}")
    if not args.rate_scale > 0:
        raise BadInput(f"--rate-scale must be > 0, got {args.rate_scale:g}")
    config = _config(args)
    options = DemoOptions(duration_s=args.duration, rate_scale=args.rate_scale, seed=args.seed, out_dir=args.out)
    try:
        outcome = run_demo(options, config.policy, progress=lambda line: print(f"parity demo: {line}", flush=True))
    except RuntimeError as exc:
        raise BadInput(f"demo: {exc}") from None
    _report(outcome.result, args.out, _meta(config.path, argv), outcome.sides)
    print(f"  measurements: {outcome.old_measurement}, {outcome.new_measurement}")
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


def _cmd_from_logs(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.sources.access_log import read_access_logs
    from parity.sources.routes import read_route_map

    route_map = read_route_map(args.routes) if args.routes is not None else None
    result = read_access_logs(
        args.files,
        args.format,
        route_map=route_map,
        timing_field=args.timing_field,
        max_malformed_share=args.max_malformed,
    )
    m = result.measurement
    if args.service or args.env:
        m = replace(m, source=replace(m.source, service=args.service or None, env=args.env or None))
    path = _write_measurement(m, args.output)
    print(
        f"parity: wrote {path}: {m.total_count} requests on {len(m.endpoints)} endpoints, "
        f"{m.window.start.isoformat()} to {m.window.end.isoformat()}"
    )
    print(
        f"  lines {result.lines}, malformed {result.malformed}, skipped {result.skipped} "
        f"(not requests to the service), without latency {result.no_latency}"
    )
    for example in result.malformed_examples:
        print(f"  malformed: {example}")
    if route_map is not None and result.unmatched:
        print(f"  {result.unmatched} requests matched no route of {args.routes}; templated from their paths, e.g.")
        for example in result.unmatched_examples:
            print(f"    {example}")
    _print_unreplayable(m)
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


def _cmd_pull(args: argparse.Namespace, _argv: Sequence[str]) -> int:
    from parity.progress import QueryProgressBar
    from parity.sources.datadog_apm import pull_with_keys

    api_key, app_key = os.environ.get("DD_API_KEY", ""), os.environ.get("DD_APP_KEY", "")
    missing = [name for name, value in (("DD_API_KEY", api_key), ("DD_APP_KEY", app_key)) if not value]
    if missing:
        raise BadInput(f"{' and '.join(missing)} not set: export the Datadog key(s) in the environment")
    start, end = getattr(args, "from"), args.to
    if end <= start:
        raise BadInput(f"--to {end.isoformat()} is not after --from {start.isoformat()}")
    if end > datetime.now(UTC):
        raise BadInput(f"--to {end.isoformat()} is in the future: minutes not yet measured would read as zero")
    output = args.output or Path("baselines") / f"{args.service}-{args.env}.json"
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
    m = pulled.measurement
    path = _write_measurement(m, output)
    print(
        f"parity: wrote {path}: {m.total_count} requests on {len(m.endpoints)} endpoints ({args.service}, {args.env})"
    )
    if pulled.unmapped:
        print(
            f"  {len(pulled.unmapped)} APM resource(s) not mapped to a route ({pulled.unmapped_share:.1%} of traffic):"
        )
        for resource, share in pulled.unmapped[:20]:
            print(f"    {resource}  {share:.1%}")
        if len(pulled.unmapped) > 20:
            print(f"    ... and {len(pulled.unmapped) - 20} more")
    _print_unreplayable(m)
    return EXIT_OK


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
    from parity.replay.process import ReplayRun

    config = _config(args)
    measurement_json.read(args.baseline)  # unreadable or invalid: one line, exit 2, before any process starts
    if args.shape == "ramp" and args.step_duration is None:
        raise BadInput("--shape ramp needs --step-duration (seconds per step)")
    run_time_s = args.duration if args.shape == "ramp" else (args.duration or DEFAULT_AB_DURATION_S)
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
        service=args.service,
        shape=args.shape,
        rps=args.rps,
        steps=args.steps,
        step_duration_s=args.step_duration,
        burst_multiplier=args.burst_multiplier,
        burst_start_s=args.burst_start,
        burst_duration_s=args.burst_duration,
        min_endpoint_rps=args.min_endpoint_rps,
        processes=args.processes,
        rails=config.rails,
        extra=tuple(args.locust_args),
    )
    length = "the ramp" if run_time_s is None else f"{run_time_s:g} s"
    print(f"parity ab: replaying {args.baseline} against old {args.old} and new {args.new} at once: {length}, "
          f"{args.shape} shape, rate scale {args.rate_scale:g}", flush=True)  # fmt: skip
    outcome = run_ab(run, config.policy, log_path=args.out / "locust.log")
    if outcome.status == REFUSED or outcome.result is None:
        print(f"parity: refused: {outcome.refusal} (log: {outcome.log_path})", file=sys.stderr)
        return outcome.exit_code
    _report(outcome.result, args.out, _meta(config.path, argv), outcome.sides)
    print(f"  measurements: {outcome.old_path}, {outcome.new_path}; Locust log: {outcome.log_path}")
    if outcome.status != "complete":
        print(f"  note: the replay was {outcome.status}: judged on what was recorded")
    return outcome.exit_code


def _add_ab_parser(sub: argparse._SubParsersAction[_CommandParser]) -> None:
    ab = sub.add_parser(
        "ab",
        help="concurrent A/B: replay a baseline against an old and a new deployment at once and judge new vs old",
        description="Replay BASELINE against OLD and NEW at the same time - one Locust run, one open-model schedule, "
        "the same requests sent to both at their planned times - then judge new against old and write the "
        "reports (DIR/index.html, parity.json, junit.xml, summary.md) plus DIR/old.measurement.json, "
        "DIR/new.measurement.json and DIR/locust.log. The [replay] safety rails of parity.toml apply to both "
        "hosts. Arguments after -- go to Locust as they are, e.g. `-- --master --expect-workers 2` (start the "
        "workers with `locust -f loadtests/replay.py --worker --master-host HOST`). Exit codes: 0 parity, "
        "1 regression, 2 bad input, 3 inconclusive or incomplete, 4 refused or aborted by a safety rail.",
    )
    ab.passthrough = "locust_args"
    ab.add_argument("baseline", type=Path, help="Measurement to replay (e.g. the old environment's APM baseline)")
    ab.add_argument("--old", required=True, type=_url, metavar="URL", help="base URL of the old (reference) side")
    ab.add_argument("--new", required=True, type=_url, metavar="URL", help="base URL of the new (candidate) side")
    ab.add_argument(
        "-t", "--duration", type=_duration, metavar="DURATION",
        help=f"run time (90, 90s, 2m, 1h30m): the baseline's window is compressed into it "
        f"(default {DEFAULT_AB_DURATION_S:g} s; a ramp's is steps x step duration)",
    )  # fmt: skip
    ab.add_argument("--rate-scale", type=_positive, default=1.0, help="load vs. the baseline (default %(default)g)")
    ab.add_argument("--seed", type=int, default=1, help="arrival schedule seed (default %(default)s)")
    ab.add_argument("--shape", choices=("replay", "steady", "ramp", "burst"), default="replay", help="load shape")
    ab.add_argument("--rps", type=_positive, help="steady: total requests per second")
    ab.add_argument("--steps", help="ramp: percentages of the baseline's peak rate (default 1,5,10,50,100)")
    ab.add_argument("--step-duration", type=_positive, metavar="S", help="ramp: seconds per step")
    ab.add_argument("--burst-multiplier", type=_positive, metavar="M", help="burst: rate multiplier (3)")
    ab.add_argument("--burst-start", type=float, metavar="S", help="burst: seconds into the run it starts")
    ab.add_argument("--burst-duration", type=_positive, metavar="S", help="burst: seconds it lasts")
    ab.add_argument(
        "--min-endpoint-rps", type=_positive, metavar="R",
        help="oversample: raise every endpoint planned below R req/s to R (marked as its load_factor)",
    )  # fmt: skip
    ab.add_argument("--processes", type=_count, default=1, help="Locust processes sending (default %(default)s)")
    ab.add_argument("--service", help="service name, for the report")
    ab.add_argument("--old-env", default="old", help="name of the old environment (default %(default)s)")
    ab.add_argument("--new-env", default="new", help="name of the new environment (default %(default)s)")
    ab.add_argument("--out", type=Path, default=Path("reports/ab"), metavar="DIR", help="report directory")
    ab.add_argument("--config", type=Path, help="parity.toml (default: ./parity.toml or [tool.parity])")


def _write_measurement(m: Measurement, path: Path) -> Path:
    try:
        return measurement_json.write(m, path)
    except OSError as exc:
        raise BadInput(f"{path}: cannot write: {exc.strerror or exc}") from None


def build_parser() -> argparse.ArgumentParser:
    from parity.demo.runner import DEFAULT_DURATION_S, DEFAULT_RATE_SCALE

    parser = argparse.ArgumentParser(
        prog="parity",
        description="Replay production traffic and judge whether a new environment is as fast as the old one.",
        epilog="Exit codes: 0 parity, 1 regression, 2 bad input, 3 inconclusive, 4 aborted by a safety rail.",
    )
    parser.add_argument("--version", action="version", version=f"parity {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)

    cmp = sub.add_parser(
        "compare",
        help="judge a candidate against a baseline and write the reports",
        description="Judge CANDIDATE against BASELINE per endpoint and metric. Each is a Measurement file "
        "(JSON) or a Locust request CSV (locust.contrib.csv_request_logger). Writes DIR/index.html, "
        "DIR/parity.json, DIR/junit.xml and DIR/summary.md.",
    )
    cmp.add_argument("baseline", type=Path, help="the reference side (e.g. the old environment)")
    cmp.add_argument("candidate", type=Path, help="the side being judged (e.g. the new environment)")
    cmp.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the reports")
    cmp.add_argument("--config", type=Path, help="parity.toml (default: ./parity.toml or [tool.parity])")

    cal = sub.add_parser(
        "calibrate",
        help="A/A calibration: noise floor, false-alarm rate and suggested tolerances from repeated runs",
        description="Compare every pair of RUNs - repeated runs against the same, unchanged target (Measurement "
        "files or Locust request CSVs) - with the current policy: every failed pair is a false alarm. Prints "
        "per metric the run-to-run noise, the largest change the tests called significant, and tolerances that "
        "sit above it. Exits 0, or 3 when no metric had enough samples to calibrate.",
    )
    cal.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="two or more runs against the same target")
    cal.add_argument("--config", type=Path, help="parity.toml (default: ./parity.toml or [tool.parity])")
    cal.add_argument(
        "--write",
        action="store_true",
        help="write the suggested tolerances into the config (./parity.toml when there is none)",
    )
    cal.add_argument("--out", type=Path, metavar="FILE", help="also write the calibration as JSON")

    night = sub.add_parser(
        "nightly",
        help="the nightly parity job: refresh the baseline, replay, compare, report, record, push",
        description="Run one night of the parity job configured in the [nightly] table of parity.toml: refresh "
        "the baseline from Datadog APM when it is older than max_baseline_age_days, replay it against the "
        "target, pull the candidate's APM for the test window when configured, compare, write the reports to "
        "OUT/<night>/, append the night to the history store and push the results to Datadog when asked. "
        "Keys from DD_API_KEY / DD_APP_KEY (never written). Exit codes as for compare; 4 when a safety rail "
        "aborted the replay.",
    )
    night.add_argument("--config", type=Path, help="parity.toml (default: ./parity.toml or [tool.parity])")
    night.add_argument("--out", type=Path, metavar="DIR", help="reports root (default: [nightly] out)")
    night.add_argument("--push-datadog", action="store_true", help="submit parity metrics and an event to Datadog")

    add_history_parser(sub)
    _add_ab_parser(sub)

    demo = sub.add_parser(
        "demo",
        help="concurrent A/B replay of the bundled baseline against the demo's old and new profiles",
        description="Start the demo service's old (EC2) and new (EKS) profiles, replay the bundled baseline "
        "against both at the same time, compare new against old and write the reports. Exits 0 when the "
        "demo completed (its verdict is in the report: the new profile has two planted bottlenecks).",
    )
    demo.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="replay seconds (default %(default)g)")
    demo.add_argument(
        "--rate-scale", type=float, default=DEFAULT_RATE_SCALE, help="load vs. baseline (default %(default)g)"
    )
    demo.add_argument("--seed", type=int, default=1, help="arrival schedule seed (default %(default)s)")
    demo.add_argument("--out", type=Path, default=Path("reports/demo"), metavar="DIR", help="report directory")
    demo.add_argument("--config", type=Path, help="parity.toml (default: ./parity.toml or [tool.parity])")

    baseline = sub.add_parser("baseline", help="make a baseline Measurement from Datadog APM or access logs")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True, metavar="SOURCE")
    pull = baseline_sub.add_parser(
        "pull",
        help="baseline from Datadog APM (keys from DD_API_KEY / DD_APP_KEY, site from DD_SITE)",
        description="Pull per-resource hits, errors, latency (avg, max, p50-p99) and the per-minute traffic of "
        "an APM service over a window into a baseline. Resources map to method + route through --routes; "
        "unmapped ones are kept and listed. The keys are read from DD_API_KEY and DD_APP_KEY and are never "
        "printed or written.",
    )
    pull.add_argument("--service", required=True, help="APM service name")
    pull.add_argument("--env", required=True, help="APM env tag (e.g. ec2)")
    pull.add_argument("--from", required=True, type=_utc_time, metavar="TIME", help="window start, ISO-8601 with zone")
    pull.add_argument("--to", required=True, type=_utc_time, metavar="TIME", help="window end (exclusive)")
    pull.add_argument("--span", default="rack.request", help="root span name (default %(default)s)")
    pull.add_argument("--routes", type=Path, help="route map: `bin/rails routes` output or an OpenAPI 3 JSON file")
    pull.add_argument("--params", type=Path, metavar="DIR", help="parameter pools: one <param>.csv per parameter")
    pull.add_argument("--site", default="", help="Datadog site (default: DD_SITE, else datadoghq.com)")
    pull.add_argument("--dd-url", default=None, metavar="URL", help="send every API call to this base URL (proxy)")
    pull.add_argument(
        "-o", "--output", type=Path, metavar="PATH", help="baseline file (default baselines/SERVICE-ENV.json)"
    )

    logs = baseline_sub.add_parser(
        "from-logs",
        help="baseline from AWS ALB or nginx access logs",
        description="Read access logs (plain or gzip) into a baseline: per endpoint (method + route template) "
        "counts, errors, latency sketches, a per-minute timeline and parameter pools for replay. Paths become "
        "route templates through --routes when given, else numeric ids, UUIDs and hashes become {id}.",
    )
    logs.add_argument("files", type=Path, nargs="+", metavar="FILE", help="access log files (.gz or plain)")
    logs.add_argument("--format", required=True, choices=("alb", "nginx"), help="log format")
    logs.add_argument("-o", "--output", type=Path, required=True, metavar="PATH", help="baseline file to write")
    logs.add_argument("--routes", type=Path, help="route map: `bin/rails routes` output or an OpenAPI 3 JSON file")
    logs.add_argument(
        "--timing-field",
        type=int,
        default=-1,
        metavar="N",
        help="nginx: position of $request_time among the fields after the combined format "
        "(0 = first; negative counts from the end; default -1 = last)",
    )
    logs.add_argument(
        "--max-malformed",
        type=_share,
        default=0.01,
        metavar="SHARE",
        help="fail (exit 2) when more than this share of lines is malformed (default 0.01)",
    )
    logs.add_argument("--service", default="", help="service name to record in the baseline")
    logs.add_argument("--env", default="", help="environment name to record in the baseline")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    handlers = {
        "ab": _cmd_ab,
        "calibrate": _cmd_calibrate,
        "compare": _cmd_compare,
        "demo": _cmd_demo,
        "from-logs": _cmd_from_logs,
        "history": _cmd_history,
        "nightly": _cmd_nightly,
        "pull": _cmd_pull,
    }
    command = args.baseline_command if args.command == "baseline" else args.command
    try:
        return handlers[command](args, args_list)
    except BadInput as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())

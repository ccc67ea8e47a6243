"""Discoverability of the command line: every parser of ``parity`` (walked recursively, nested commands too) has
examples and prints its defaults in one style; ``parity --help`` lists every command; ``parity replay --help``
shows every option of the replay locustfile and passes each one on. In-process (argparse only), plus one short
end-to-end ``parity replay`` against a demo server."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from parity import measurement_json
from parity.cli import _from_logs_output, _replay_run, _shape_settings, build_parser, subcommands
from parity.config import load_config
from parity.demo import baseline as demo_baseline
from parity.demo.processes import fetch_stats, running_server
from parity.replay.process import replay_args
from tests.conftest import ROOT, run_parity

LOCUSTFILE = ROOT / "parity" / "replay" / "locustfile.py"
#: Locustfile options that belong to a concurrent A/B run: ``parity ab`` sets them, ``parity replay`` has one host.
AB_ONLY = {"--old-host", "--old-out", "--old-env", "--pair-id"}
#: Locustfile options of the live progress that ``parity replay`` handles itself: it draws the line from the snapshot
#: file its child writes (``ReplayRun(progress=...)`` sets ``--parity-progress-file``), and ``--quiet`` stops that.
PROGRESS_OWN = {"--parity-progress-file", "--quiet"}
#: Locustfile options ``parity replay`` spells its own way: the baseline is its positional, the Measurement goes to -o.
RESPELLED = {"--baseline": "baseline", "--parity-out": "-o DIR"}
#: The one way a default is written: ``(default: VALUE)``.
DEFAULT_STYLE = re.compile(r"\(default: [^()]*(?:\([^()]*\)[^()]*)*\)")


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser a user meets: ``parity``, each command and nested command, and ``python -m
    parity.demo.baseline``."""
    root = build_parser()
    yield "parity", root
    for path, _purpose, parser in subcommands(root):
        yield f"parity {path}", parser
    yield "python -m parity.demo.baseline", demo_baseline.build_parser()


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The parser's options as listed in its help (not -h, --version, subcommands, hidden aliases)."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
            continue
        if action.help is argparse.SUPPRESS or not action.option_strings:
            continue
        yield action


def expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help as printed (``%(default)s`` and the like filled in), on one line."""
    text = parser._get_formatter()._expand_help(action)
    return " ".join(text.split())


def help_text(parser: argparse.ArgumentParser) -> str:
    return parser.format_help()


def test_every_help_shows_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    seen = 0
    for name, parser in parsers():
        text = help_text(parser)
        assert "\nexamples:\n" in text, f"{name} --help has no examples"
        runnable = [line for line in text.split("\nexamples:\n", 1)[1].splitlines() if line.startswith("  ")]
        starts = ("  parity ", "  python -m parity")
        assert any(line.startswith(starts) for line in runnable), f"{name}: no example command"
        seen += 1
    assert seen >= 13  # parity, 11 commands and groups, the demo baseline


def test_every_default_is_printed_in_one_style(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    checked = 0
    for name, parser in parsers():
        for action in options(parser):
            text = expanded_help(parser, action)
            where = f"{name} {action.option_strings[-1]}: {text!r}"
            spelled = len(re.findall(r"default", text, re.IGNORECASE))
            assert spelled == len(DEFAULT_STYLE.findall(text)), f"{where}: write defaults as (default: VALUE)"
            default = action.default
            if default is None or default is False or default in ([], ""):
                continue
            shown = [m.group(0) for m in DEFAULT_STYLE.finditer(text)]
            assert shown, f"{where}: its default {default!r} is not shown"
            value = f"{default:g}" if isinstance(default, float) else str(default)
            assert any(value in s for s in shown), f"{where}: shows a default other than {value}"
            checked += 1
        assert "default " not in help_text(parser).replace("(default: ", ""), f"{name}: another default spelling"
    assert checked >= 20


def test_parity_help_lists_every_command_with_its_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    root = build_parser()
    text = help_text(root)
    leaves = [(p, purpose) for p, purpose, child in subcommands(root) if not subcommands_of(child)]
    assert {p for p, _ in leaves} >= {"replay", "ab", "compare", "baseline pull", "baseline from-logs", "demo"}
    for path, purpose in leaves:
        assert purpose, f"parity {path} has no one-line purpose"
        assert re.search(rf"^  {re.escape(path)} +{re.escape(purpose)}$", text, re.M), f"{path} missing in --help"
    assert "python -m parity.demo.baseline" in text
    assert text.startswith("usage: parity [-h] [--version] COMMAND ...")


def subcommands_of(parser: argparse.ArgumentParser) -> list[str]:
    return [p for p, _, _ in subcommands(parser)]


def locustfile_options() -> set[str]:
    """Every option the replay locustfile adds to Locust's parser (read from its source: importing it would
    monkey-patch this process with gevent)."""
    source = LOCUSTFILE.read_text("utf-8")
    found = set(re.findall(r"group\.add_argument\(\s*\"(--[a-z-]+)\"", source))
    assert len(found) > 25, "the locustfile's options were not found: has its parser changed?"
    return found


def test_replay_help_lists_every_replay_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = help_text(next(p for path, _, p in subcommands(build_parser()) if path == "replay"))
    for option in sorted(locustfile_options() - AB_ONLY - {"--parity-progress-file"}):
        shown = RESPELLED.get(option, option)
        assert shown in text, f"parity replay --help does not show the locustfile's {option}"
    for locust_option in ("--host URL", "-t DURATION", "--processes N", "--quiet"):
        assert locust_option in text


def test_every_replay_option_reaches_the_locustfile(tmp_path: Path) -> None:
    """Each option of ``parity replay`` becomes the locustfile's option of the same name on the child's command
    line; what follows ``--`` comes last, unchanged."""
    argv = ["replay", "b.json", "--host", "http://127.0.0.1:8080", "-t", "90s", "--rate-scale", "0.5",
            "--seed", "7", "--shape", "burst", "--burst-multiplier", "4", "--burst-start", "10", "--burst-duration",
            "20", "--min-endpoint-rps", "2", "-o", str(tmp_path), "--target-env", "eks", "--service", "web",
            "--processes", "2", "--max-in-flight", "64", "--request-timeout", "5", "--max-response-bytes", "1000",
            "--endpoints", "GET /api/*", "--exclude-endpoints", "*/health", "--bodies", "bodies/",
            "--allow-empty-bodies", "--allow-host", "web.internal", "--max-rps", "300", "--abort-error-ratio", "0.1",
            "--abort-p99-ms", "900", "--abort-window", "15", "--quiet", "--", "--loglevel", "WARNING"]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert args.quiet is True
    run = _replay_run(args, load_config(None), _shape_settings(args))
    line = replay_args(run)
    assert line[-2:] == ["--loglevel", "WARNING"]
    pairs = {line[i]: line[i + 1] for i in range(len(line) - 1) if line[i].startswith("-")}
    assert pairs["--baseline"] == "b.json"
    assert pairs["--parity-out"] == str(tmp_path / "candidate.measurement.json")
    assert pairs["-t"] == "90s"
    expected = {"--host": "http://127.0.0.1:8080", "--rate-scale": "0.5", "--seed": "7", "--shape": "burst",
                "--burst-multiplier": "4", "--burst-start": "10", "--burst-duration": "20", "--min-endpoint-rps": "2",
                "--target-env": "eks", "--service": "web", "--processes": "2", "--max-in-flight": "64",
                "--request-timeout": "5", "--max-response-bytes": "1000", "--endpoints": "GET /api/*",
                "--exclude-endpoints": "*/health", "--bodies": "bodies/", "--allow-host": "web.internal",
                "--max-rps": "300", "--abort-error-ratio": "0.1", "--abort-p99-ms": "900",
                "--abort-window": "15"}  # fmt: skip
    assert {k: pairs.get(k) for k in expected} == expected
    assert "--allow-empty-bodies" in line
    passed = {token for token in line if token.startswith("--")}
    missing = locustfile_options() - AB_ONLY - PROGRESS_OWN - {"--rps", "--steps", "--step-duration"} - passed
    assert not missing, f"options parity replay never passes on: {missing}"


def test_out_is_one_option_everywhere_and_old_spellings_still_work() -> None:
    parser = build_parser()
    for name, sub in parsers():
        outs = [a for a in options(sub) if a.dest == "out"]
        if not outs:
            continue
        assert outs[0].option_strings[:2] == ["-o", "--out"], name
    pull = ["baseline", "pull", "--service", "web", "--env", "ec2"]
    assert parser.parse_args([*pull, "--output", "x.json"]).out == Path("x.json")
    assert parser.parse_args([*pull, "-o", "x.json"]).out == Path("x.json")
    assert parser.parse_args([*pull]).out is None  # baselines/SERVICE-ENV.json, decided with the window
    logs = ["baseline", "from-logs", "--format", "alb"]
    assert parser.parse_args([*logs, "a.log", "--output", "y.json"]).out == Path("y.json")
    assert _from_logs_output(parser.parse_args([*logs, "logs/web-1.log.gz", "b.log"])) == Path("baselines/web-1.json")
    with_window = parser.parse_args([*logs, "a.log", "--window-of", "reports/run/candidate.measurement.json"])
    assert _from_logs_output(with_window) == Path("reports/run/candidate.measurement.log.json")
    assert parser.parse_args(["compare", "a", "b"]).out == Path("reports/compare")
    assert parser.parse_args(["history"]).out == Path("reports/history")
    assert demo_baseline.build_parser().parse_args(["--output", "d.json"]).out == Path("d.json")
    assert demo_baseline.build_parser().prog == "python -m parity.demo.baseline"


@pytest.mark.e2e
def test_parity_replay_runs_the_locust_replay_and_judges_it(tmp_path: Path) -> None:
    """A few seconds of ``parity replay`` against a demo server: it records what the server received, and with
    --against writes the reports (here inconclusive, exit 3: the run replays one endpoint of twelve, and a replay's
    client-side latency is not judged against the baseline's server-side APM figures)."""
    out = tmp_path / "run"
    with running_server("old", seed=1) as url:
        before = dict(fetch_stats(url)["requests"])
        done = run_parity(
            "replay", str(ROOT / "baselines" / "demo.json"), "--host", url, "-t", "2s", "--rate-scale", "3",
            "--endpoints", "GET /health", "--against", str(ROOT / "baselines" / "demo.json"), "-o", str(out),
            "--quiet", timeout=120,
        )  # fmt: skip
        after = dict(fetch_stats(url)["requests"])
        reports = {p.name for p in out.iterdir()}
        m = measurement_json.read(out / "candidate.measurement.json")
        verdict = json.loads((out / "parity.json").read_text())["verdict"]
        # the same -o again without --against: the first run's reports judged a Measurement this run replaces
        again = run_parity(
            "replay", str(ROOT / "baselines" / "demo.json"), "--host", url, "-t", "1s", "--endpoints", "GET /health",
            "-o", str(tmp_path / "run"), "--quiet", timeout=120,
        )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert {"index.html", "parity.json", "junit.xml", "summary.md"} <= reports
    assert {p.name for p in out.iterdir()} == {"candidate.measurement.json", "locust.log"}
    assert "removed index.html, parity.json, junit.xml, summary.md of an earlier run" in again.stdout
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    received = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
    assert {e.endpoint.key: e.count for e in m.endpoints} == received == {"GET /health": m.total_count}
    assert m.total_count > 10  # ~8% of ~78 req/s x 3 for 2 s
    assert m.labels["complete"] == "yes"
    assert verdict == "inconclusive"
    assert f"measurement: {out / 'candidate.measurement.json'}" in done.stdout
    # the sample-size table is of what is replayed: the filtered endpoint, not the twelve of the baseline
    assert "(--endpoints 'GET /health') replayed for 2 s" in done.stdout
    assert "on 1 endpoints" in done.stdout


def test_parity_replay_refuses_a_filter_that_keeps_nothing_before_any_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_parity(
        "replay", str(ROOT / "baselines" / "demo.json"), "--host", "http://127.0.0.1:9", "--endpoints", "GET /nope",
        "-o", str(out), "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.startswith("parity: error: --endpoints 'GET /nope' keeps no replayable endpoint"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_parity_replay_refuses_to_overwrite_its_reference(tmp_path: Path) -> None:
    """``--against`` naming the very file the replay writes (the previous run's candidate.measurement.json in the
    same -o, e.g. the default reports/replay twice) is refused before any request: the run would replace the
    reference with the candidate, and the reference would be lost."""
    out = tmp_path / "run"
    out.mkdir()
    reference = out / "candidate.measurement.json"
    reference.write_bytes((ROOT / "baselines" / "demo.json").read_bytes())
    before = reference.read_bytes()
    done = run_parity(
        "replay", str(ROOT / "baselines" / "demo.json"), "--host", "http://127.0.0.1:9", "-t", "1s",
        "--endpoints", "GET /health", "--against", str(out / ".." / "run" / "candidate.measurement.json"),
        "-o", str(out), "--quiet", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert reference.read_bytes() == before
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--against" in done.stderr

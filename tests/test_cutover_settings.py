"""The ``[cutover]`` table (``parity.cutover.settings``) and the ``parity cutover`` command's inputs: defaults,
holds in seconds as checks, every bad key one line naming the file and the key (exit 2), ``--dry-run``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from parity.cli import main
from parity.config import load_config
from parity.cutover.model import ApmSelector
from parity.cutover.settings import (
    DEFAULT_MAX_HOLD_S,
    DEFAULT_MIN_HOLD_S,
    CutoverSettings,
    Guardrails,
    cutover_from_mapping,
    hold_checks,
    plain_settings,
    policy_of,
)
from parity.cutover.shifters import CommandShifter, ManualShifter, make_shifter
from parity.errors import BadInput
from parity.judge.sequential import CutoverPolicy

MINIMAL = """
[cutover.old]
service = "web"
env = "ec2"
[cutover.new]
service = "web"
env = "eks"
tags = ["kube_cluster_name:eks-prod"]
[cutover.shifter]
kind = "command"
command = "./set-weights {weight} {old_weight}"
"""


def table(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "old": {"service": "web", "env": "ec2"},
        "new": {"service": "web", "env": "eks"},
        "shifter": {"kind": "manual"},
    }
    base.update(changes)
    return base


def test_defaults_keep_the_gates_own_policy() -> None:
    settings = cutover_from_mapping(table())
    assert settings.steps == (1.0, 5.0, 10.0, 50.0, 100.0)
    assert settings.interval_s == 60.0
    assert settings.rollback_weight == 0.0
    assert settings.max_missing_checks == 3
    assert settings.out == Path("reports/cutover")
    assert settings.old == ApmSelector("web", "ec2")
    default = CutoverPolicy()
    policy = policy_of(settings)
    for name in ("min_hold_checks", "max_hold_checks", "alpha", "latency_metrics", "go_metrics", "min_traffic_share"):
        assert getattr(policy, name) == getattr(default, name), name
    assert policy.error_rate_limit is None
    assert policy.p99_limit_ms is None


def test_default_holds_are_times_so_the_power_does_not_depend_on_the_interval() -> None:
    """Left out, the holds are 2400 s / 7200 s: the core's 40 / 120 checks at 60 s, twice as many checks at 30 s
    (each of half the traffic: the same evidence per step), half as many at 120 s."""
    assert (DEFAULT_MIN_HOLD_S, DEFAULT_MAX_HOLD_S) == (2400.0, 7200.0)
    for interval, expected in ((60, (40, 120)), (30, (80, 240)), (120, (20, 60)), (7, (343, 1029))):
        policy = policy_of(cutover_from_mapping(table(interval_s=interval)))
        assert (policy.min_hold_checks, policy.max_hold_checks) == expected, interval
    assert policy_of(cutover_from_mapping(table())).min_hold_checks == CutoverPolicy().min_hold_checks
    with pytest.raises(ValueError, match=r"cutover.min_hold_s: must not exceed max_hold_s \(9000 s > 7200 s\)"):
        cutover_from_mapping(table(min_hold_s=9000))


def test_holds_in_seconds_become_checks_of_the_interval() -> None:
    assert hold_checks(600, 60) == 10
    assert hold_checks(601, 60) == 11
    assert hold_checks(5, 2) == 3
    assert hold_checks(0.5, 60) == 1
    settings = cutover_from_mapping(
        table(interval_s=2, min_hold_s=7, max_hold_s=30, alpha=0.05, guardrails={"error_rate": 0.05, "p99_ms": 900})
    )
    policy = policy_of(settings)
    assert (policy.min_hold_checks, policy.max_hold_checks) == (4, 15)
    assert policy.alpha == 0.05
    assert policy.error_rate_limit == 0.05
    assert policy.p99_limit_ms == 900.0
    assert settings.guardrails == Guardrails(0.05, 900.0)


def test_the_whole_table_reads_and_is_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "parity.toml"
    path.write_text(
        """
[cutover]
steps = [1, 5, 25, 100]
interval_s = 30
settle_s = 90
delay_s = 45.5
rollback_weight = 0.5
latency_metrics = ["avg_ms", "p99_ms"]
go_metrics = ["error_rate", "avg_ms", "p99_ms"]
endpoints = ["GET /a", "POST /b"]
routes = "routes.txt"
datadog_tags = ["team:payroll"]
"""
        + MINIMAL
    )
    settings = load_config(path).cutover
    assert isinstance(settings, CutoverSettings)
    assert settings.steps == (1.0, 5.0, 25.0, 100.0)
    assert settings.delay_s == 45.5
    assert settings.routes == tmp_path / "routes.txt"  # relative to the config file
    assert settings.new.tags == ("kube_cluster_name:eks-prod",)
    assert settings.shifter.kind == "command"
    plain = plain_settings(settings)
    assert json.loads(json.dumps(plain)) == plain
    assert plain["policy"]["latency_metrics"] == ["avg_ms", "p99_ms"]
    assert plain["new"]["tags"] == ["kube_cluster_name:eks-prod"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stpes": [1, 100]}, "cutover.stpes: unknown key"),
        ({"steps": [5, 1, 100]}, "cutover.steps: expected increasing percentages"),
        ({"steps": [1, 50]}, "cutover.steps: the last step must be 100"),
        ({"steps": [0, 100]}, "cutover.steps: expected increasing percentages in (0, 100]"),
        ({"interval_s": 0.5}, "cutover.interval_s: expected seconds from 1"),
        ({"interval_s": True}, "cutover.interval_s: expected a finite number"),
        ({"min_hold_s": 600, "max_hold_s": 60}, "cutover.min_hold_s: must not exceed max_hold_s"),
        ({"alpha": 1.5}, "cutover.alpha: expected a number between 0 and 1"),
        ({"rollback_weight": 1}, "cutover.rollback_weight: must be below the first step (1)"),
        ({"latency_metrics": ["p42_ms"]}, "cutover.latency_metrics: unknown metric 'p42_ms'"),
        ({"go_metrics": ["p95_ms"], "latency_metrics": ["avg_ms"]}, "cutover.go_metrics: 'p95_ms' is not judged"),
        ({"max_missing_checks": 0}, "cutover.max_missing_checks: expected an integer from 1"),
        ({"endpoints": ["GET /a", "GET /a"]}, "cutover.endpoints: expected a non-empty list of distinct"),
        ({"old": {"service": "web"}}, "cutover.old.env: required"),
        ({"new": {"service": "web", "env": "eks", "tags": ["eks"]}}, "cutover.new.tags: expected key:value"),
        ({"guardrails": {"error_rate": 5}}, "cutover.guardrails.error_rate: expected a ratio from 0 to 1"),
        ({"guardrails": {"p95_ms": 5}}, "cutover.guardrails.p95_ms: unknown key"),
        ({"shifter": {}}, "cutover.shifter.kind: required"),
        ({"shifter": {"kind": "dns"}}, "cutover.shifter.kind: expected one of route53, command, manual"),
        (
            {"shifter": {"kind": "route53", "zone_id": "Z1"}},
            "cutover.shifter.record_name: required for kind = 'route53'",
        ),
        ({"shifter": {"kind": "command", "command": "set 5"}}, "cutover.shifter.command: must contain {weight}"),
        ({"shifter": {"kind": "command", "command": "set {weight} {x}"}}, "cutover.shifter.command: only {weight}"),
        (  # another kind's key would be silently ignored: the manual shifter never runs read_command
            {"shifter": {"kind": "manual", "read_command": "./get-weight"}},
            "cutover.shifter.read_command: not a key of kind = 'manual'",
        ),
        (
            {
                "shifter": {
                    "kind": "route53",
                    "zone_id": "Z1",
                    "record_name": "w.",
                    "old_set_id": "o",
                    "new_set_id": "n",
                    "timeout_s": 30,
                }
            },
            "cutover.shifter.timeout_s: not a key of kind = 'route53' (its keys: endpoint_url, insync_timeout_s,",
        ),
    ],
)
def test_every_bad_key_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the message is checked below, from its start)
        cutover_from_mapping(table(**changes))
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_table_is_named() -> None:
    with pytest.raises(ValueError, match=r"^cutover\.shifter: required"):
        cutover_from_mapping({"old": {"service": "a", "env": "b"}, "new": {"service": "a", "env": "c"}})


def test_a_bad_key_in_the_config_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "parity.toml"
    path.write_text("[cutover]\ninterval_s = -1\n" + MINIMAL)
    with pytest.raises(BadInput, match=rf"^{path}: cutover\.interval_s: expected seconds"):
        load_config(path)


def test_make_shifter_builds_the_configured_one() -> None:
    command = make_shifter(cutover_from_mapping(table(shifter={"kind": "command", "command": "x {weight}"})).shifter)
    assert isinstance(command, CommandShifter)
    assert command.describe(5) == "run: x 5"
    assert isinstance(make_shifter(cutover_from_mapping(table()).shifter), ManualShifter)


def test_cli_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)  # the dry run needs no keys: it sends nothing
    path = tmp_path / "parity.toml"
    path.write_text("[cutover]\nendpoints = ['GET /a']\nmin_hold_s = 600\n" + MINIMAL)
    code = main(["cutover", "--dry-run", "--config", str(path), "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "steps: 1%, 5%, 10%, 50%, 100% to the new environment (eks)" in out
    assert "at least 10 checks with data (600 s)" in out
    assert "step 1 (1%): run: ./set-weights 1 99" in out
    assert "on a stop (0%): run: ./set-weights 0 100" in out
    assert "dry run: nothing was sent, changed or written" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[compare]\n", "no [cutover] table"),
        ("[cutover]\nsteps = 'fast'\n" + MINIMAL, "cutover.steps: expected a list of percentages"),
        (MINIMAL, "DD_API_KEY and DD_APP_KEY not set"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: str, message: str
) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.delenv("DD_APP_KEY", raising=False)
    path = tmp_path / "parity.toml"
    path.write_text(config)
    code = main(["cutover", "--config", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_the_readme_example_is_a_valid_table() -> None:
    """The README's ``[cutover]`` example reads as written (keys, kinds, the Route 53 shifter's required keys)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text("utf-8")
    block = readme.split("```toml\n[cutover]\n", 1)[1].split("```", 1)[0]
    settings = cutover_from_mapping(tomllib.loads("[cutover]\n" + block)["cutover"])
    assert settings.shifter.kind == "route53"
    assert settings.guardrails == Guardrails(0.05, 2000.0)
    assert (policy_of(settings).min_hold_checks, policy_of(settings).max_hold_checks) == (40, 120)


def test_make_shifter_builds_route53_without_calling_aws() -> None:
    """The Route 53 shifter is built from the table (credentials are resolved at its first call, not here), and
    ``--dry-run`` can describe each change with it."""
    from parity.cutover.route53 import Route53Shifter

    shifter = make_shifter(
        cutover_from_mapping(
            table(
                shifter={
                    "kind": "route53",
                    "zone_id": "Z123",
                    "record_name": "web.example.com.",
                    "old_set_id": "web-ec2",
                    "new_set_id": "web-eks",
                    "endpoint_url": "http://127.0.0.1:9",
                }
            )
        ).shifter
    )
    assert isinstance(shifter, Route53Shifter)
    assert "Z123" in shifter.describe(5)

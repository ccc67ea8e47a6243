"""The ``[cutover]`` table of parity.toml: what ``parity cutover`` moves, how it decides and where it writes.

Every key is optional except the two selectors (``[cutover.old]``, ``[cutover.new]``) and the shifter's
``kind``. Holds are in seconds and become checks of the gate (``ceil(hold / interval_s)``). Their defaults are
TIMES, 2400 s and 7200 s (``DEFAULT_MIN_HOLD_S`` / ``DEFAULT_MAX_HOLD_S``: the core's 40 and 120 checks at the
default 60-s interval), so the evidence a step gathers (requests on the new side) and with it the gate's power
do not depend on ``interval_s``: a 30-s interval holds 80-240 checks of half the traffic each, not 40-120. Other
keys left out keep the decision core's default (``parity.judge.sequential.CutoverPolicy``). Tolerances and critical
endpoints come from ``[compare]`` (the judge's policy), as for every other command.

Example::

    [cutover]
    steps = [1, 5, 10, 50, 100]        # percent of traffic to the NEW environment
    interval_s = 60                    # one check per interval (fractional allowed, >= 1)
    min_hold_s = 2400                  # per step, before a GO (default 2400: 40 checks at 60 s)
    max_hold_s = 7200                  # per step, then an undecided step holds for a person (exit 3; default 7200)
    settle_s = 60                      # after a shift is verified: DNS TTL + resolver caches
    delay_s = 120                      # APM ingestion delay: a check at t reads [t - delay - interval, t - delay)
    alpha = 0.05                       # family-wise false-stop rate of the whole cutover
    rollback_weight = 0                # the new side's weight after a stop
    latency_metrics = ["avg_ms", "p95_ms"]
    go_metrics = ["error_rate", "avg_ms"]
    min_traffic_share = 0.01
    max_missing_checks = 3             # checks in a row without APM data before the gate holds
    discover_s = 3600                  # endpoints: the old side's resources seen over this long before the start
    endpoints = ["GET /api/employees/{id}"]   # or fix the family yourself (keys as the rest of the harness)
    routes = "config/routes.txt"       # resource names -> METHOD /route (bin/rails routes or OpenAPI)
    out = "reports/cutover"            # journal.jsonl, cutover.json, index.html, summary.md
    datadog_tags = ["team:payroll"]
    site = "datadoghq.eu"              # default: DD_SITE, else datadoghq.com
    dd_url = ""                        # send every Datadog call here (a proxy)
    explain = true                     # on a STOP, explain the stopping endpoints from both sides' traces

    [cutover.old]                      # each environment's APM: trace.<span> of service in env, + tags
    service = "web"
    env = "ec2"
    [cutover.new]
    service = "web"
    env = "eks"
    tags = ["kube_cluster_name:eks-prod"]

    [cutover.guardrails]               # absolute limits on the new side: a breach stops at once (exit 4)
    error_rate = 0.05
    p99_ms = 2000

    [cutover.shifter]
    kind = "route53"                   # route53 | command | manual
    zone_id = "Z123"
    record_name = "web.example.com."
    old_set_id = "web-ec2"
    new_set_id = "web-eks"
    # command: command = "./set-weights.sh {weight} {old_weight}", read_command = "./get-weight.sh"
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from parity.cutover.model import ApmSelector
from parity.judge.sequential import (
    DEFAULT_MAX_HOLD_CHECKS,
    DEFAULT_MIN_HOLD_CHECKS,
    LATENCY_METRICS,
    CutoverPolicy,
)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "DEFAULT_MAX_HOLD_S",
    "DEFAULT_MIN_HOLD_S",
    "SHIFTER_KINDS",
    "CutoverSettings",
    "Guardrails",
    "ShifterSettings",
    "cutover_from_mapping",
    "hold_checks",
    "plain_settings",
    "policy_of",
    "redact",
    "secret_values",
]

SHIFTER_KINDS = ("route53", "command", "manual")
#: The check interval (s) and the holds per step (s): the core's default holds in checks at this interval.
#: Holds are times so that the evidence per step does not depend on the interval a user picks.
DEFAULT_INTERVAL_S = 60.0
DEFAULT_MIN_HOLD_S = DEFAULT_MIN_HOLD_CHECKS * DEFAULT_INTERVAL_S  # 2400 s, 40 min
DEFAULT_MAX_HOLD_S = DEFAULT_MAX_HOLD_CHECKS * DEFAULT_INTERVAL_S  # 7200 s, 2 h
#: Upper bound of every duration key (a week: beyond it a cutover step is surely a typo).
_MAX_S = 7 * 86400.0


@dataclass(frozen=True)
class Guardrails:
    """Absolute limits on the new side: ``error_rate`` (ratio, 0.05 = 5 %) and ``p99_ms``; None: off."""

    error_rate: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class ShifterSettings:
    """How the weights move (``kind``). route53: the two weighted records' zone, name, type and set
    identifiers (``endpoint_url``: a VPC endpoint, or moto in tests); command: ``command`` run with
    ``{weight}`` / ``{old_weight}`` filled in (percent), ``read_command`` prints the live new weight,
    ``timeout_s`` per run; manual: a person makes the change and confirms."""

    kind: str
    zone_id: str | None = None
    record_name: str | None = None
    record_type: str = "CNAME"
    old_set_id: str | None = None
    new_set_id: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    insync_timeout_s: float = 300.0
    command: str | None = None
    read_command: str | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True)
class CutoverSettings:
    """See the module docstring for every key. None: the decision core's default (``CutoverPolicy``). Holds in
    seconds (default 2400 / 7200 s, whatever ``interval_s`` is: see the module docstring)."""

    old: ApmSelector
    new: ApmSelector
    shifter: ShifterSettings
    steps: tuple[float, ...] = (1.0, 5.0, 10.0, 50.0, 100.0)
    interval_s: float = DEFAULT_INTERVAL_S
    min_hold_s: float = DEFAULT_MIN_HOLD_S
    max_hold_s: float = DEFAULT_MAX_HOLD_S
    settle_s: float = 60.0
    delay_s: float = 120.0
    alpha: float | None = None
    rollback_weight: float = 0.0
    latency_metrics: tuple[str, ...] | None = None
    go_metrics: tuple[str, ...] | None = None
    min_traffic_share: float | None = None
    max_missing_checks: int = 3
    discover_s: float = 3600.0
    endpoints: tuple[str, ...] | None = None
    routes: Path | None = None
    out: Path = Path("reports/cutover")
    datadog_tags: tuple[str, ...] = ()
    site: str | None = None
    dd_url: str | None = None
    guardrails: Guardrails = field(default_factory=Guardrails)
    explain: bool = True


def hold_checks(hold_s: float, interval_s: float) -> int:
    """A hold in seconds as a number of checks: ``ceil(hold / interval)`` (at least 1)."""
    return max(1, math.ceil(hold_s / interval_s - 1e-9))


def policy_of(settings: CutoverSettings) -> CutoverPolicy:
    """The decision core's policy for these settings: keys left out keep ``CutoverPolicy``'s defaults; holds
    in seconds become checks of ``interval_s`` (the default holds: 40 / 120 checks at 60 s, 80 / 240 at 30 s)."""
    default = CutoverPolicy()
    changes: dict[str, Any] = {
        "steps": settings.steps,
        "min_hold_checks": hold_checks(settings.min_hold_s, settings.interval_s),
        "max_hold_checks": hold_checks(settings.max_hold_s, settings.interval_s),
    }
    for key in ("alpha", "latency_metrics", "go_metrics", "min_traffic_share"):
        if getattr(settings, key) is not None:
            changes[key] = getattr(settings, key)
    changes["error_rate_limit"] = settings.guardrails.error_rate
    changes["p99_limit_ms"] = settings.guardrails.p99_ms
    return replace(default, **changes)


#: Shown instead of a secret.
REDACTED = "***"
#: An environment variable whose name says it holds a secret.
_SECRET_NAME = re.compile(
    r"(?i)(token|secret|passw(or)?d|pass\b|_pw\b|api_?key|app_?key|private|credential|auth|session|cookie|signature|_key\b|^key\b)"
)
#: Values shorter than this are not searched for (``1``, ``yes``: replacing them would garble the command).
_MIN_SECRET_CHARS = 6
_VALUE = r"(\"[^\"]*\"|'[^']*'|[^\s\"']+)"
_SECRET_WORD = r"[\w-]*(?:token|secret|passw(?:or)?d|pass|api[_-]?key|app[_-]?key|key|credential|auth)[\w-]*"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # --token=VALUE, --api-key VALUE, -password VALUE
    (re.compile(rf"(?i)(?<![\w-])(--?{_SECRET_WORD})(=|\s+){_VALUE}"), rf"\1\2{REDACTED}"),
    # TOKEN=VALUE, AWS_SECRET_ACCESS_KEY=VALUE (an environment assignment or a key=value argument)
    (re.compile(rf"(?i)(?<![\w-])({_SECRET_WORD})={_VALUE}"), rf"\1={REDACTED}"),
    # Authorization: Bearer VALUE
    (re.compile(r"(?i)\b(bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{8,})"), rf"\1 {REDACTED}"),
    # https://user:password@host
    (re.compile(r"(://[^/\s:@]+):[^@\s/]+@"), rf"\1:{REDACTED}@"),
)


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The values of the environment's secret-looking variables (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``,
    ``*API_KEY*``, ``AWS_SECRET_ACCESS_KEY``…) that are long enough to search for, longest first."""
    found = {v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_CHARS}
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` (a command line, an error line) with secrets replaced by ``***``: every value in ``secrets``
    (see :func:`secret_values`), and the values of ``--token=…``/``--password …``/``TOKEN=…``-like arguments,
    ``Bearer …`` and ``user:password@`` in URLs. ``{weight}``/``{old_weight}`` placeholders are kept."""
    for value in secrets:
        text = text.replace(value, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(functools.partial(_keep_placeholders, replacement=replacement), text)
    return text


def _keep_placeholders(match: re.Match[str], replacement: str) -> str:
    """The match redacted, unless it holds a ``{weight}``/``{old_weight}`` placeholder (not a secret)."""
    whole = match.group(0)
    return whole if "{weight}" in whole or "{old_weight}" in whole else match.expand(replacement)


def plain_settings(settings: CutoverSettings, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The settings as plain JSON values (for the journal and the reports): where a key was left out, the
    gate's effective value (alpha, metrics); its whole policy under ``policy`` (holds in checks). The shifter's
    keys are kept (they name records or commands) with the command shifter's ``command``/``read_command``,
    the ``endpoint_url`` and ``dd_url`` (``user:password@``) REDACTED (:func:`redact` with ``secrets``):
    nothing derived from a secret is stored, not even a hash (a short secret's hash is guessed offline);
    ``--resume`` compares the redacted commands, so a rotated token is not a change of plan while another
    script or record is."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if hasattr(value, "__dataclass_fields__"):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if hasattr(value, "value") and not isinstance(value, int | float | str):
            return value.value  # an Enum
        return value

    out: dict[str, Any] = plain(settings)
    for key in ("command", "read_command", "endpoint_url"):
        if out["shifter"].get(key) is not None:
            out["shifter"][key] = redact(out["shifter"][key], secrets)
    if out["dd_url"] is not None:  # a proxy URL may carry user:password@
        out["dd_url"] = redact(out["dd_url"], secrets)
    policy = policy_of(settings)
    for key in ("alpha", "latency_metrics", "go_metrics", "min_traffic_share"):  # left out: the gate's default
        if out[key] is None:
            out[key] = plain(getattr(policy, key))
    out["policy"] = {f.name: plain(getattr(policy, f.name)) for f in fields(policy)}
    return out


# --- reading the table ---------------------------------------------------------------------------------

_TOP = {
    "steps": "steps",
    "interval_s": "interval",
    "min_hold_s": "duration",
    "max_hold_s": "duration",
    "settle_s": "non-negative",
    "delay_s": "non-negative",
    "alpha": "alpha",
    "rollback_weight": "weight",
    "latency_metrics": "metrics",
    "go_metrics": "go_metrics",
    "min_traffic_share": "share",
    "max_missing_checks": "count",
    "discover_s": "duration",
    "endpoints": "keys",
    "routes": "path",
    "out": "path",
    "datadog_tags": "strings",
    "site": "str",
    "dd_url": "str",
    "explain": "bool",
    "old": "selector",
    "new": "selector",
    "guardrails": "guardrails",
    "shifter": "shifter",
}
_SELECTOR = {"service": "str", "env": "str", "span": "str", "tags": "strings"}
_GUARDRAILS = {"error_rate": "share", "p99_ms": "duration"}
_SHIFTER = {
    "kind": "kind",
    "zone_id": "str",
    "record_name": "str",
    "record_type": "str",
    "old_set_id": "str",
    "new_set_id": "str",
    "region": "str",
    "endpoint_url": "str",
    "insync_timeout_s": "duration",
    "command": "str",
    "read_command": "str",
    "timeout_s": "duration",
}
#: The keys each kind reads besides ``kind`` (another kind's key would be silently ignored: refused).
_KIND_KEYS = {
    "route53": ("zone_id", "record_name", "record_type", "old_set_id", "new_set_id", "region", "endpoint_url",
                "insync_timeout_s"),
    "command": ("command", "read_command", "timeout_s"),
    "manual": (),
}  # fmt: skip
_NEEDS = {
    "route53": ("zone_id", "record_name", "old_set_id", "new_set_id"),
    "command": ("command",),
    "manual": (),
}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _value(kind: str, value: Any, where: str) -> Any:  # noqa: PLR0912 (one branch per kind of key)
    """``value`` checked and converted for a key of ``kind``; ValueError naming ``where`` otherwise."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in ("str", "path", "kind"):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
        if kind == "kind" and value not in SHIFTER_KINDS:
            raise ValueError(f"{where}: expected one of {', '.join(SHIFTER_KINDS)}, got {value!r}")
        return Path(value) if kind == "path" else value
    if kind in ("strings", "keys", "metrics", "go_metrics"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError(f"{where}: expected a list of non-empty strings, got {value!r}")
        if kind == "keys" and (not value or len(set(value)) != len(value)):
            raise ValueError(f"{where}: expected a non-empty list of distinct endpoint keys, got {value!r}")
        known = LATENCY_METRICS if kind == "metrics" else ("error_rate", *LATENCY_METRICS)
        if kind in ("metrics", "go_metrics") and (bad := [v for v in value if v not in known]):
            raise ValueError(f"{where}: unknown metric {bad[0]!r} (known: {', '.join(known)})")
        return tuple(value)
    if kind == "steps":
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: expected a list of percentages, got {value!r}")
        steps = tuple(_number(v, where) for v in value)
        if any(not 0 < s <= 100 for s in steps) or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"{where}: expected increasing percentages in (0, 100], got {value!r}")
        return steps
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
            raise ValueError(f"{where}: expected an integer from 1 to 10000, got {value!r}")
        return value
    number = _number(value, where)
    if kind == "interval" and not 1.0 <= number <= _MAX_S:
        raise ValueError(f"{where}: expected seconds from 1 to {_MAX_S:g}, got {value!r}")
    if kind == "duration" and not 0 < number <= _MAX_S:
        raise ValueError(f"{where}: expected seconds > 0 and at most {_MAX_S:g}, got {value!r}")
    if kind == "non-negative" and not 0 <= number <= _MAX_S:
        raise ValueError(f"{where}: expected seconds >= 0 and at most {_MAX_S:g}, got {value!r}")
    if kind == "alpha" and not 0 < number < 1:
        raise ValueError(f"{where}: expected a number between 0 and 1, got {value!r}")
    if kind == "share" and not 0 <= number <= 1:
        raise ValueError(f"{where}: expected a ratio from 0 to 1 (0.05 = 5%), got {value!r}")
    if kind == "weight" and not 0 <= number <= 100:
        raise ValueError(f"{where}: expected a percentage from 0 to 100, got {value!r}")
    return number


def _checked(table: Any, kinds: Mapping[str, str], where: str) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: expected a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in kinds:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(kinds))})")
        kind = kinds[key]
        if kind == "selector":
            out[key] = _selector(value, f"{where}.{key}")
        elif kind == "guardrails":
            out[key] = Guardrails(**_checked(value, _GUARDRAILS, f"{where}.{key}"))
        elif kind == "shifter":
            out[key] = _shifter(value, f"{where}.{key}")
        else:
            out[key] = _value(kind, value, f"{where}.{key}")
    return out


def _selector(table: Any, where: str) -> ApmSelector:
    values = _checked(table, _SELECTOR, where)
    for key in ("service", "env"):
        if key not in values:
            raise ValueError(f"{where}.{key}: required")
    if any(":" not in t for t in values.get("tags", ())):
        raise ValueError(f"{where}.tags: expected key:value tags, got {list(values['tags'])!r}")
    return ApmSelector(**values)


def _shifter(table: Any, where: str) -> ShifterSettings:
    values = _checked(table, _SHIFTER, where)
    kind = values.get("kind")
    if kind is None:
        raise ValueError(f"{where}.kind: required ({', '.join(SHIFTER_KINDS)})")
    for key in values:
        if key != "kind" and key not in _KIND_KEYS[kind]:
            keys = ", ".join(sorted(_KIND_KEYS[kind])) or "none besides kind"
            raise ValueError(f"{where}.{key}: not a key of kind = {kind!r} (its keys: {keys})")
    for key in _NEEDS[kind]:
        if key not in values:
            raise ValueError(f"{where}.{key}: required for kind = {kind!r}")
    if "command" in values and "{weight}" not in values["command"]:
        raise ValueError(
            f"{where}.command: must contain {{weight}} (the new side's percent), got {values['command']!r}"
        )
    for key in ("command", "read_command"):
        if key in values:
            try:
                values[key].format(weight=1, old_weight=99)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{where}.{key}: only {{weight}} and {{old_weight}} may be filled in ({exc!r})"
                ) from None
    return ShifterSettings(**values)


def cutover_from_mapping(data: Any, where: str = "cutover") -> CutoverSettings:
    """Build CutoverSettings from the ``[cutover]`` table; ValueError naming the key when it is wrong."""
    values = _checked(data, _TOP, where)
    for key in ("old", "new", "shifter"):
        if key not in values:
            raise ValueError(f"{where}.{key}: required (a table)")
    settings = CutoverSettings(**values)
    if settings.steps[-1] != 100.0:
        raise ValueError(f"{where}.steps: the last step must be 100 (the cutover ends with all traffic moved)")
    if settings.rollback_weight >= settings.steps[0]:
        raise ValueError(
            f"{where}.rollback_weight: must be below the first step ({settings.steps[0]:g}), "
            f"got {settings.rollback_weight:g}"
        )
    if settings.min_hold_s > settings.max_hold_s:
        raise ValueError(
            f"{where}.min_hold_s: must not exceed max_hold_s ({settings.min_hold_s:g} s > {settings.max_hold_s:g} s)"
        )
    try:
        policy = policy_of(settings)
        if policy.min_hold_checks > policy.max_hold_checks:
            raise ValueError(
                f"{where}.min_hold_s/max_hold_s: the minimum hold ({policy.min_hold_checks} checks) exceeds the "
                f"maximum ({policy.max_hold_checks} checks) at interval_s = {settings.interval_s:g}"
            )
        if bad := [m for m in policy.go_metrics if m not in ("error_rate", *policy.latency_metrics)]:
            raise ValueError(f"{where}.go_metrics: {bad[0]!r} is not judged (add it to latency_metrics)")
    except TypeError as exc:  # pragma: no cover - a CutoverPolicy field renamed under us
        raise ValueError(f"{where}: {exc}") from None
    return settings

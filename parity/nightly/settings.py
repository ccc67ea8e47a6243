"""The ``[nightly]`` table of parity.toml: what ``parity nightly`` replays, against what, and where results go.

Every key but ``baseline`` and ``target`` is optional; relative paths are relative to the working directory.

``old_target`` (optional): the old environment's base URL, while it still exists. The night then replays the
baseline against ``old_target`` and ``target`` at the same time (a concurrent A/B run: one Locust run, the same
schedule and requests sent to both) and judges ``target`` against ``old_target`` — like with like, same load,
same time — as the night's result; the old side's Measurement is ``old.measurement.json`` in the night's
directory. The baseline file is still what is replayed (and refreshed), and ``[nightly.candidate_apm]`` still
judges the candidate's own APM against it.

Example::

    [nightly]
    baseline = "baselines/web-ec2.json"   # refreshed from Datadog when older than max_baseline_age_days
    target = "http://web-eks.internal:8080"  # must be allow-listed ([replay] allow_hosts) unless loopback
    old_target = "http://web-ec2.internal:8080"  # optional: concurrent A/B (see below); allow-list it too
    old_env = "ec2"                        # name of the old side in the reports (default "old")
    max_baseline_age_days = 7
    duration_s = 600                       # replay length
    rate_scale = 1.0                       # load vs. the baseline's production rate
    shape = "replay"                       # replay | steady | ramp | burst
    locust_args = ["--steps", "1,5,10,50,100", "--step-duration", "60"]  # more replay options
    processes = 1
    seed = 1
    service = "web"
    target_env = "eks"
    out = "reports/nightly"                # one directory per night below it
    history = "reports/history/parity-history.sqlite"
    push_datadog = false                   # or --push-datadog
    datadog_tags = ["team:payroll"]
    report_url = "https://ci.example.com/artifacts/{night}/index.html"  # where the report will be published
    dd_url = ""                            # send every Datadog call here (a proxy); default: the site's API
    explain = false                        # or --explain: why the top regressed endpoints are slower (below)

    [nightly.pull]                         # how to refresh the baseline (Datadog APM of the old environment)
    service = "web"
    env = "ec2"
    span = "rack.request"
    window_hours = 24
    routes = "config/routes.txt"
    params = "baselines/params"
    site = "datadoghq.eu"                  # default: DD_SITE, else datadoghq.com

    [nightly.candidate_apm]                # pull the candidate's server-side APM for the test window
    service = "web"
    env = "eks"
    delay_s = 120                          # wait for Datadog to ingest the last minutes first

``explain`` (or ``parity nightly --explain``): after the night is judged, explain the top regressed endpoints of the
comparison that decides it from both sides' sampled APM traces (``parity.explain``), into ``explain.json`` beside
that comparison's report (its why lines in the report, summary.md and the terminal; ``nightly.json``'s
``explain`` says what was explained or why nothing was). Which traces: the server-side comparison (baseline against
``[nightly.candidate_apm]``) reads each side's env and service as its Measurement names them; the replay's
comparison reads the baseline's (else ``[nightly.pull]``'s) against ``[nightly.candidate_apm]``'s, and is skipped
with its reason without ``[nightly.candidate_apm]``; the concurrent A/B's reads ``[nightly.pull]``'s env and
service (else ``old_env`` and ``service``) against ``[nightly.candidate_apm]``'s (else ``target_env`` and
``service``). Each endpoint is searched by the APM resource the baseline recorded for it. Never changes a verdict
or the exit code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SHAPES", "ApmSource", "NightlySettings", "nightly_from_mapping"]

SHAPES = ("replay", "steady", "ramp", "burst")


@dataclass(frozen=True)
class ApmSource:
    """A Datadog APM service to pull: ``window_hours`` back from the night (baseline refresh only);
    ``delay_s`` seconds to wait after a replay before pulling its window (candidate APM only); ``timezone`` the
    service's local time zone (IANA or ±HH:MM), recorded in the pulled Measurement for the report's clock axes."""

    service: str
    env: str
    span: str = "rack.request"
    window_hours: float = 24.0
    routes: Path | None = None
    params: Path | None = None
    site: str | None = None
    delay_s: float = 120.0
    timezone: str | None = None


@dataclass(frozen=True)
class NightlySettings:
    """See the module docstring for every key and its default."""

    baseline: Path
    target: str
    old_target: str | None = None
    old_env: str = "old"
    max_baseline_age_days: float | None = 7.0
    duration_s: float = 300.0
    rate_scale: float = 1.0
    shape: str = "replay"
    locust_args: tuple[str, ...] = ()
    processes: int = 1
    seed: int = 1
    service: str = ""
    target_env: str = "candidate"
    out: Path = Path("reports/nightly")
    history: Path = Path("reports/history/parity-history.sqlite")
    push_datadog: bool = False
    datadog_tags: tuple[str, ...] = ()
    report_url: str | None = None
    dd_url: str | None = None
    explain: bool = False
    pull: ApmSource | None = None
    candidate_apm: ApmSource | None = None


_KEYS = {
    "baseline": "path",
    "target": "str",
    "old_target": "str",
    "old_env": "str",
    "max_baseline_age_days": "positive",
    "duration_s": "positive",
    "rate_scale": "positive",
    "shape": "shape",
    "locust_args": "strings",
    "processes": "count",
    "seed": "int",
    "service": "str",
    "target_env": "str",
    "out": "path",
    "history": "path",
    "push_datadog": "bool",
    "datadog_tags": "strings",
    "report_url": "str",
    "dd_url": "str",
    "explain": "bool",
    "pull": "apm",
    "candidate_apm": "apm",
}
#: Upper bounds of numeric keys (beyond them a date computation overflows, or the value is surely a typo).
_MAXIMA = {
    "max_baseline_age_days": 36500.0,  # 100 years
    "duration_s": 366 * 86400.0,  # a year
    "rate_scale": 1e6,
    "processes": 1024,
    "window_hours": 24 * 3660.0,  # 10 years (Datadog keeps far less)
    "delay_s": 86400.0,
}
_LIMITS = {"int": 2**32 - 1}  # seeds: numpy takes 0 <= seed < 2^32 comfortably everywhere

_APM_KEYS = {
    "service": "str",
    "env": "str",
    "span": "str",
    "window_hours": "positive",
    "routes": "path",
    "params": "path",
    "site": "str",
    "delay_s": "non-negative",
    "timezone": "timezone",
}


def _value(kind: str, value: Any, where: str) -> Any:
    """``value`` checked and converted for a key of ``kind``; ValueError naming ``where`` otherwise."""
    if kind in ("str", "path"):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
        return Path(value) if kind == "path" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind == "timezone":
        from parity.report.charts import time_zone

        if not isinstance(value, str) or time_zone(value) is None:
            raise ValueError(f"{where}: expected a time zone such as Europe/Berlin or +02:00, got {value!r}")
        return value.strip()
    if kind == "shape":
        if value not in SHAPES:
            raise ValueError(f"{where}: expected one of {', '.join(SHAPES)}, got {value!r}")
        return value
    return _number_value(kind, value, where)


def _number_value(kind: str, value: Any, where: str) -> Any:
    """A numeric key: finite, of its kind's sign, at most its ``_MAXIMA``; ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if isinstance(value, int) and abs(value) > _LIMITS.get(kind, 2**63):
        raise ValueError(f"{where}: expected an integer up to {_LIMITS.get(kind, 2**63)}, got {value!r}")
    if kind in ("int", "count") and not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if kind in ("positive", "count") and value <= 0:
        raise ValueError(f"{where}: expected a number > 0, got {value!r}")
    if kind == "non-negative" and value < 0:
        raise ValueError(f"{where}: expected a number >= 0, got {value!r}")
    if kind == "int" and value < 0:
        raise ValueError(f"{where}: expected an integer >= 0, got {value!r}")
    key = where.rsplit(".", 1)[-1]
    if key in _MAXIMA and value > _MAXIMA[key]:
        raise ValueError(f"{where}: expected at most {_MAXIMA[key]:g}, got {value!r}")
    return float(value) if kind in ("positive", "non-negative") else value


def _apm(table: Any, where: str) -> ApmSource:
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: expected a table")
    values = _checked(table, _APM_KEYS, where)
    for key in ("service", "env"):
        if key not in values:
            raise ValueError(f"{where}.{key}: required")
    return ApmSource(**values)


def _checked(table: Mapping[str, Any], kinds: Mapping[str, str], where: str) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if key not in kinds:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(kinds))})")
        out[key] = _apm(value, f"{where}.{key}") if kinds[key] == "apm" else _value(kinds[key], value, f"{where}.{key}")
    return out


def nightly_from_mapping(data: Mapping[str, Any], where: str = "nightly") -> NightlySettings:
    """Build NightlySettings from the ``[nightly]`` table; ValueError naming the key when it is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a table")
    values = _checked(data, _KEYS, where)
    for key in ("baseline", "target"):
        if key not in values:
            raise ValueError(f"{where}.{key}: required")
    if "report_url" in values:
        try:
            values["report_url"].format(night="20260101T000000Z")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{where}.report_url: only {{night}} may be filled in, got {values['report_url']!r} ({exc!r})"
            ) from None
    return NightlySettings(**values)

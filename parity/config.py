"""Configuration: one TOML file (``parity.toml``, or ``[tool.parity]`` in a pyproject.toml).

Every key is optional; see ``parity.judge.policy.policy_from_mapping`` for the ``[compare]`` table,
``parity.replay.rails.rails_from_mapping`` for ``[replay]`` (target allow-list, rate cap, abort rules) and
``parity.nightly.settings`` for ``[nightly]`` (the nightly job) and ``parity.cutover.settings`` for ``[cutover]``
(the cutover gate).
Without ``--config`` the harness looks for ``parity.toml`` in the working directory, then for a
``[tool.parity]`` table in ``pyproject.toml``; with neither it uses the defaults.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from parity.cutover.settings import CutoverSettings, cutover_from_mapping
from parity.errors import BadInput, reading
from parity.judge.policy import MetricRule, Policy, policy_from_mapping
from parity.nightly.settings import NightlySettings, nightly_from_mapping
from parity.replay.rails import Rails, rails_from_mapping

__all__ = ["Config", "find_config", "load_config", "write_metric_rules"]

_SECTIONS = frozenset({"compare", "cutover", "nightly", "replay"})


@dataclass(frozen=True)
class Config:
    """Settings from the config file; ``path`` None means built-in defaults."""

    policy: Policy = field(default_factory=Policy)
    rails: Rails = field(default_factory=Rails)
    path: Path | None = None
    nightly: NightlySettings | None = None
    cutover: CutoverSettings | None = None


def find_config(cwd: Path) -> Path | None:
    """``parity.toml`` in ``cwd``, else a ``pyproject.toml`` there that has ``[tool.parity]``, else None."""
    candidate = cwd / "parity.toml"
    if candidate.is_file():
        return candidate
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return None
        if "parity" in data.get("tool", {}):
            return pyproject
    return None


def _table(path: Path) -> Mapping[str, Any]:
    with reading(path, "a TOML config file"):
        text = path.read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        table: Mapping[str, Any] = data.get("tool", {}).get("parity", {})
        return table
    return data


def load_config(path: Path | None) -> Config:
    """Read the config at ``path`` (None → defaults); BadInput names the file and the bad key."""
    if path is None:
        return Config()
    data = _table(path)
    for key in data:
        if key not in _SECTIONS:
            raise BadInput(f"{path}: {key}: unknown section (known: {', '.join(sorted(_SECTIONS))})")
    try:
        policy = policy_from_mapping(data.get("compare", {}))
        rails = rails_from_mapping(data.get("replay", {}))
        nightly = nightly_from_mapping(data["nightly"]) if "nightly" in data else None
        cutover = cutover_from_mapping(data["cutover"]) if "cutover" in data else None
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}") from None
    if rails.bodies is not None:  # a relative [replay] bodies is relative to the config file
        rails = replace(rails, bodies=str(path.parent / rails.bodies))
    if cutover is not None and cutover.routes is not None:  # a relative routes file is relative to the config
        cutover = replace(cutover, routes=path.parent / cutover.routes)
    return Config(policy=policy, rails=rails, path=path, nightly=nightly, cutover=cutover)


def write_metric_rules(path: Path, rules: Mapping[str, MetricRule]) -> None:
    """Set ``tolerance`` and ``min_delta`` of each metric in ``rules`` in the config at ``path``: the
    ``[compare.metrics.NAME]`` tables (under ``[tool.parity]`` in a pyproject.toml). Creates the file when
    missing; keeps every other key, comment and the layout (tomlkit). BadInput when it cannot be read or
    written."""
    text = ""
    if path.exists():
        with reading(path, "a TOML config file"):
            text = path.read_text("utf-8")
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}") from None
    root: Any = doc
    if path.name == "pyproject.toml":
        root = _subtable(_subtable(doc, "tool"), "parity")
    metrics = _subtable(_subtable(root, "compare"), "metrics")
    for name, rule in rules.items():
        table = _subtable(metrics, name)
        table["tolerance"] = rule.tolerance
        table["min_delta"] = rule.min_delta
    try:
        path.write_text(tomlkit.dumps(doc), "utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot write: {exc.strerror or exc}") from None


def _subtable(parent: Any, key: str) -> Any:
    """``parent[key]``, created as a (super) table when missing; BadInput when it is not a table."""
    if key not in parent:
        parent[key] = tomlkit.table(is_super_table=True)
    value = parent[key]
    if not isinstance(value, Mapping):
        raise BadInput(f"{key}: expected a table in the config, found {type(value).__name__}")
    return value

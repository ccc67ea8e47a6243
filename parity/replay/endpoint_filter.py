"""The replay's own endpoint filter: ``--endpoints GLOB`` / ``--exclude-endpoints GLOB``. Pure: no Locust import.

Locust's ``--tags`` select *tasks*; the replay has one task that sends every endpoint of the plan, so tags cannot
select endpoints (the locustfile refuses them and names this filter instead). A glob is matched with
``fnmatch.fnmatchcase`` against the endpoint key ``METHOD /route`` (``GET /api/employees/{id}``); a glob without a
space (``/api/*``) is matched against the route alone, for any method. ``*`` also matches ``/``. The plan keeps the
endpoints that match an ``--endpoints`` glob (every endpoint when none is given) and no ``--exclude-endpoints``
glob; each kept endpoint keeps its own rate (a filtered replay sends those endpoints exactly as the whole replay
would, not the whole traffic squeezed into them). Endpoints the plan could not send anyway (``plan.skipped``) that
the filter leaves out are dropped from ``skipped`` too: nobody asked for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from parity.model import Endpoint
from parity.replay.plan import ReplayPlan

__all__ = ["EndpointFilter", "FilteredPlan", "filter_plan", "no_match_message", "parse_globs"]

#: A refusal lists at most this many endpoint keys.
EXAMPLE_KEYS = 5


def parse_globs(values: Iterable[str] | None) -> tuple[str, ...]:
    """Globs from repeatable, comma-separated option values (``["GET /a*,POST /b", "/c"]``), blanks dropped,
    surrounding spaces stripped, duplicates kept once in order."""
    out = (part.strip() for value in values or () for part in str(value).split(","))
    return tuple(dict.fromkeys(p for p in out if p))


def _matches(endpoint: Endpoint, glob: str) -> bool:
    """``glob`` against the key ``METHOD /route``, or against the route alone when the glob has no space."""
    return fnmatchcase(endpoint.key if " " in glob else endpoint.route, glob)


@dataclass(frozen=True)
class EndpointFilter:
    """``include``: keep only endpoints matching one of these (empty: all); ``exclude``: drop those matching one."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def keeps(self, endpoint: Endpoint) -> bool:
        """True when ``endpoint`` passes the filter."""
        if self.include and not any(_matches(endpoint, g) for g in self.include):
            return False
        return not any(_matches(endpoint, g) for g in self.exclude)

    def describe(self) -> str:
        """The filter as options, for labels and logs: ``--endpoints 'GET /api/*' --exclude-endpoints '/health'``."""
        parts = [f"--endpoints '{g}'" for g in self.include] + [f"--exclude-endpoints '{g}'" for g in self.exclude]
        return " ".join(parts)

    def unmatched(self, endpoints: Sequence[Endpoint]) -> tuple[str, ...]:
        """The ``--endpoints``/``--exclude-endpoints`` globs that match none of ``endpoints`` (likely typos)."""
        return tuple(g for g in (*self.include, *self.exclude) if not any(_matches(e, g) for e in endpoints))


@dataclass(frozen=True)
class FilteredPlan:
    """``plan`` with only the kept endpoints; ``kept``/``total``: planned endpoints kept / before the filter;
    ``kept_share``: share of the plan's requests (at production traffic, over the whole window) on kept endpoints
    (1.0 when nothing was filtered; 0.0 for an empty plan)."""

    plan: ReplayPlan
    kept: int
    total: int
    kept_share: float


def filter_plan(plan: ReplayPlan, endpoint_filter: EndpointFilter) -> FilteredPlan:
    """``plan`` restricted to the endpoints ``endpoint_filter`` keeps (see the module docstring); the rate rows
    of the kept endpoints are unchanged. An inactive filter returns the plan as it is."""
    total = len(plan.endpoints)
    if not endpoint_filter.active:
        return FilteredPlan(plan, total, total, 1.0 if total else 0.0)
    keep = [i for i, p in enumerate(plan.endpoints) if endpoint_filter.keeps(p.endpoint)]
    rates = plan.rates[keep]
    whole = float(plan.rates.sum())
    filtered = ReplayPlan(
        endpoints=tuple(plan.endpoints[i] for i in keep),
        rates=rates,
        interval_s=plan.interval_s,
        skipped=tuple(s for s in plan.skipped if endpoint_filter.keeps(s.endpoint)),
    )
    return FilteredPlan(filtered, len(keep), total, float(rates.sum()) / whole if whole > 0 else 0.0)


def no_match_message(plan: ReplayPlan, endpoint_filter: EndpointFilter, baseline: str) -> str:
    """The one-line refusal of a filter that keeps no endpoint of ``plan``, with a few endpoint keys to copy."""
    keys = sorted(p.endpoint.key for p in plan.endpoints)
    shown = ", ".join(keys[:EXAMPLE_KEYS]) + (
        f" (and {len(keys) - EXAMPLE_KEYS} more)" if len(keys) > EXAMPLE_KEYS else ""
    )
    return (
        f"{endpoint_filter.describe()} keeps no replayable endpoint of {baseline}; "
        f"endpoint keys are METHOD /route, e.g. {shown or '(none)'}"
    )

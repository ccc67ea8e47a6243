"""Both environments' live APM per check interval, read through the real Datadog client.

:class:`DatadogLiveApm` implements :class:`parity.cutover.model.LiveApm`: one check of one environment is ONE
HTTP request, ``POST /api/v2/query/scalar`` (:meth:`parity.datadog.DatadogClient.scalar_table`), holding ten
metric queries, each its own formula, each reduced over exactly ``[start_s, end_s)``; grouped
``by {resource_name}``, tag filter ``env:<env>,service:<service>[,<tag>...]`` (:func:`selector_filter`):

=========  ==============================================================  ==========
name       query                                                           reducer
=========  ==============================================================  ==========
hits       ``sum:trace.<span>.hits{F} by {resource_name}.as_count()``        sum
errors     ``sum:trace.<span>.errors{F} by {resource_name}.as_count()``      sum
lsum       ``sum:trace.<span>{F} by {resource_name}``                        sum
lcount     ``count:trace.<span>{F} by {resource_name}``                      sum
lmax       ``max:trace.<span>{F} by {resource_name}``                        max
p50 … p99  ``p50:trace.<span>{F} by {resource_name}`` (p75, p90, p95, p99)   percentile
=========  ==============================================================  ==========

The mean is ``lsum / lcount`` (exact whatever the series' interval, as in the baseline pull); the
percentiles and the max are the merged distribution's over the window. ``trace.<span>`` is a latency in
seconds: every latency column is converted to ms by its own unit block (:func:`parity.datadog.ms_per_unit`:
seconds, ms, µs, ns; no block: seconds; anything else refused).

Missing is never zero:

- a statistic Datadog answers null (or leaves out) for a resource is None; a resource with hits but no
  latency rows has every latency None;
- errors left out for a resource WITH hits are 0 (``trace.<span>.errors`` has no points without errors);
- more errors than hits for a resource make the whole check unavailable: the two metrics are ingested
  separately, so the window's hits are not all in yet (or the metrics disagree); capped at the hits they
  would read as an error rate of 1, a guardrail breach from data that is not there;
- a resource with latency or errors but no hits, and an answer with no resource at all, make the whole
  check unavailable: the reader cannot tell no traffic from data not yet ingested (raise the ingestion
  delay) or a selector that matches nothing, and absent endpoints would otherwise be read as 0 hits;
- so does an answer with a column of :attr:`DatadogLiveApm.groups` rows (the most each formula asks for):
  Datadog cuts each column at that limit (largest first), and the resources cut from every column would be
  read as endpoints without hits.

No long retries inside a check: one attempt per check, with :attr:`DatadogLiveApm.timeout_s`; a 401, 403,
429 (the line says when the limit resets), 5xx, a time-out, a connection fault or an answer that does not fit
raises :class:`parity.cutover.model.ApmUnavailable` with one line naming the environment, the status and
what to check. A selector whose names cannot go into a query is bad input (:class:`parity.datadog.DatadogError`,
exit code 2) raised before anything is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from parity.bounds import MAX_COUNT, MAX_LATENCY_MS
from parity.cutover.model import ApmSelector, ApmUnavailable
from parity.datadog import (
    GROUP_TAG,
    SCALAR_MIN_GROUPS,
    DatadogClient,
    DatadogError,
    ScalarAnswer,
    ScalarQuery,
    connect,
    ms_per_unit,
)
from parity.judge.sequential import IntervalSummary

__all__ = [
    "LIVE_TIMEOUT_S",
    "PERCENTILES",
    "DatadogLiveApm",
    "queries_for",
    "scalar_queries",
    "selector_filter",
]

#: Seconds one check's request may take before the check is missing (no retry inside a check).
LIVE_TIMEOUT_S = 20.0
#: Percentiles read per resource (``pNN:trace.<span>``), as IntervalSummary fields ``pNN_ms``.
PERCENTILES: Final = ("p50", "p75", "p90", "p95", "p99")
#: A service, env or span name in a query (as :func:`parity.datadog.tag_filter` checks them).
_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")
#: An extra tag: ``key:value`` or a bare ``key``, no spaces, commas or braces (they would break the query).
_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_.:/-]*")


def _checked(what: str, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DatadogError(f"{what} {value!r}: expected letters, digits and _ . : / - only")
    return value


def selector_filter(selector: ApmSelector) -> str:
    """The tag filter of ``selector``: ``env:<env>,service:<service>`` then its extra ``tags`` as given.
    DatadogError (bad input) naming the field when a name would break the query."""
    env, service = _checked("env", selector.env), _checked("service", selector.service)
    tags = [_checked("tag", t, _TAG) for t in selector.tags]
    return ",".join([f"env:{env}", f"service:{service}", *tags])


def scalar_queries(selector: ApmSelector) -> tuple[ScalarQuery, ...]:
    """The queries of one check of ``selector`` (see the module docstring), in request order."""
    span = _checked("span", selector.span)
    tags = selector_filter(selector)
    by = f"by {{{GROUP_TAG}}}"
    dist = f"trace.{span}{{{tags}}} {by}"
    return (
        ScalarQuery("hits", f"sum:trace.{span}.hits{{{tags}}} {by}.as_count()", "sum"),
        ScalarQuery("errors", f"sum:trace.{span}.errors{{{tags}}} {by}.as_count()", "sum"),
        ScalarQuery("lsum", f"sum:{dist}", "sum"),
        ScalarQuery("lcount", f"count:{dist}", "sum"),
        ScalarQuery("lmax", f"max:{dist}", "max"),
        *(ScalarQuery(p, f"{p}:{dist}", "percentile") for p in PERCENTILES),
    )


def queries_for(selector: ApmSelector) -> tuple[str, ...]:
    """The Datadog query texts one check of ``selector`` sends (for ``--dry-run``), each reduced over the
    check's window (sum for counts and the latency sum/count, max, percentile for pNN). Sends nothing."""
    return tuple(q.query for q in scalar_queries(selector))


@dataclass(frozen=True)
class DatadogLiveApm:
    """:class:`parity.cutover.model.LiveApm` through ``client`` (the caller closes it; :meth:`connect` builds
    one for checks). A check's time-out is the client's ``timeout_s``. ``groups``: most resources per answer.
    """

    client: DatadogClient
    groups: int = SCALAR_MIN_GROUPS

    @classmethod
    def connect(
        cls,
        *,
        api_key: str,
        app_key: str,
        site: str | None = None,
        dd_url: str | None = None,
        timeout_s: float = LIVE_TIMEOUT_S,
    ) -> DatadogLiveApm:
        """A reader with its own client (:func:`parity.datadog.connect`: keys from the caller, ``dd_url`` for
        every call) whose requests time out after ``timeout_s`` and are never retried. DatadogError (bad
        input) for a missing key, an unknown site or a malformed URL. Close it with :meth:`close`."""
        return cls(
            connect(api_key=api_key, app_key=app_key, site=site, dd_url=dd_url, timeout_s=timeout_s, max_retries=0)
        )

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def __enter__(self) -> DatadogLiveApm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def queries_for(self, selector: ApmSelector) -> tuple[str, ...]:
        """:func:`queries_for`."""
        return queries_for(selector)

    def interval(self, selector: ApmSelector, start_s: int, end_s: int) -> Mapping[str, IntervalSummary]:
        """Per ``resource_name`` with hits in ``[start_s, end_s)`` (Unix s): hits, errors and latency in ms
        (None where Datadog had no value). One request; ApmUnavailable (one line) when it fails or the answer
        cannot be used (see the module docstring). DatadogError for a selector that cannot be queried or an
        empty window (bad input, nothing sent)."""
        queries = scalar_queries(selector)
        if end_s <= start_s:
            raise DatadogError(f"APM window [{start_s}, {end_s}): the end is not after the start")
        where = f"APM of {selector.service} in {selector.env}"
        try:
            table = self.client.scalar_table(queries, int(start_s), int(end_s), groups=self.groups, retry=False)
            _not_cut(table, self.groups)
            return _summaries(table, {q.name: q.query for q in queries}, selector, start_s, end_s)
        except DatadogError as exc:
            raise ApmUnavailable(f"{where} unavailable: {exc}") from None


def _not_cut(table: Mapping[str, ScalarAnswer], groups: int) -> None:
    """DatadogError when a column holds ``groups`` rows or more: the answer may be cut at the formulas' limit, and a
    resource cut from every column would be read as an endpoint without hits (missing read as zero)."""
    rows = max((len(a.values) for a in table.values()), default=0)
    if rows >= groups:
        raise DatadogError(
            f"Datadog answered {rows} resources, the most a check asks for ({groups}): resources beyond them are "
            "cut from the answer; narrow the selector with tags"
        )


def _counts(answer: ScalarAnswer, query: str) -> dict[str, float]:
    """A count column: resource → finite count in [0, MAX_COUNT] (nulls left out)."""
    out = {}
    for resource, value in answer.values.items():
        if value is None:
            continue
        if not 0.0 <= value <= MAX_COUNT:
            raise DatadogError(f"Datadog answered {query} with {value:g} for {resource[:80]!r}: not a count")
        out[resource] = value
    return out


def _latencies(answer: ScalarAnswer, query: str) -> dict[str, float]:
    """A latency column in ms by its unit block (nulls left out); DatadogError for a value that is no latency."""
    factor = ms_per_unit(answer.unit, query)
    out = {}
    for resource, value in answer.values.items():
        if value is None:
            continue
        ms = value * factor
        if not 0.0 <= ms <= MAX_LATENCY_MS:
            raise DatadogError(f"Datadog answered {query} with {ms:g} ms for {resource[:80]!r}: not a latency")
        out[resource] = ms
    return out


def _summaries(
    table: Mapping[str, ScalarAnswer], queries: Mapping[str, str], selector: ApmSelector, start_s: int, end_s: int
) -> dict[str, IntervalSummary]:
    """The per-resource summaries of one answer (see the module docstring for missing data)."""
    hits = _counts(table["hits"], queries["hits"])
    errors = _counts(table["errors"], queries["errors"])
    count = _counts(table["lcount"], queries["lcount"])
    lat = {name: _latencies(table[name], queries[name]) for name in ("lsum", "lmax", *PERCENTILES)}
    out: dict[str, IntervalSummary] = {}
    for resource in sorted(set().union(*(a.values for a in table.values()))):
        h = round(hits.get(resource, 0.0))
        if h == 0:
            if errors.get(resource) or count.get(resource) or any(resource in v for v in lat.values()):
                raise DatadogError(
                    f"Datadog answered latency or errors but no hits for {resource[:80]!r} in [{start_s}, "
                    f"{end_s}): the data is still arriving (raise the ingestion delay) or the metrics disagree"
                )
            continue
        e = round(errors.get(resource, 0.0))
        if e > h:
            raise DatadogError(
                f"Datadog answered {e} errors but {h} hits for {resource[:80]!r} in [{start_s}, {end_s}): the data "
                "is still arriving (raise the ingestion delay) or the metrics disagree"
            )
        n, total = count.get(resource), lat["lsum"].get(resource)
        avg = total / n if total is not None and n else None
        if avg is not None and not math.isfinite(avg):
            avg = None
        out[resource] = IntervalSummary(
            hits=h,
            errors=e,
            avg_ms=avg,
            p50_ms=lat["p50"].get(resource),
            p75_ms=lat["p75"].get(resource),
            p90_ms=lat["p90"].get(resource),
            p95_ms=lat["p95"].get(resource),
            p99_ms=lat["p99"].get(resource),
            max_ms=lat["lmax"].get(resource),
        )
    if not out:
        raise DatadogError(
            f"Datadog has no trace.{selector.span}.hits for {selector_filter(selector)} in [{start_s}, {end_s}): "
            "no traffic, data not yet ingested (raise the ingestion delay) or a selector that matches nothing "
            "(check env, service, span and tags)"
        )
    return out

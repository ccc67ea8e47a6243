"""Source: Datadog APM (trace metrics per resource) → Measurement, for ``parity baseline pull``.

:func:`pull_baseline` runs the pull (:meth:`parity.datadog.DatadogClient.pull_apm`) and hands the result to
:func:`build_baseline`, a pure transform:

- every APM resource (tag value, normalised by Datadog: ``employeescontroller_show``) goes through
  ``resolve`` (the route map); a mapped resource becomes its ``METHOD /route`` endpoint with a request
  template (path = the route template; ``params`` = the pools of the route's ``{placeholders}`` that
  ``params`` holds); an unmapped one is KEPT as ``Endpoint("", resource)`` — counts, errors, latency and
  timeline, no request template — and listed in :attr:`PulledBaseline.unmapped` with its share of hits;
- count and errors are the window's totals over the minutes Datadog reported; latency is a
  :class:`~parity.model.LatencySummary` in ms (a statistic Datadog had no value for is None); the timeline
  is per minute from the window start (None = a null point, never 0);
- two resources that resolve to the same endpoint are merged: counts and errors add up, timelines add up
  minute by minute (a minute unknown on either side is unknown), the mean is weighted by count, the max is
  the larger; percentiles cannot be merged from summaries, so they are kept only for a single resource.

Source kind DATADOG (service, env, a description naming the span and metrics); latency kind SERVER (span
duration); the window is the pulled one. A Datadog baseline is a *before/after* baseline: taken at another
time, under another load, than the replay it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from parity.datadog import DEFAULT_SPAN, ApmPull, DatadogClient, ProgressFn, ResourcePull, connect
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyKind,
    LatencySummary,
    Measurement,
    RequestTemplate,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.replay.plan import placeholders
from parity.sources.routes import RouteMap, read_param_pools, read_route_map

__all__ = ["PulledBaseline", "build_baseline", "describe_source", "pull_baseline", "pull_with_keys", "request_template"]


Resolve = Callable[[str], Endpoint | None]


@dataclass(frozen=True)
class PulledBaseline:
    """A pulled baseline and the APM resources no route matched: ``(resource, share of hits)``, largest first."""

    measurement: Measurement
    unmapped: tuple[tuple[str, float], ...] = ()
    route_map: RouteMap | None = None  # the map resources were resolved with (for its summary line)

    @property
    def unmapped_share(self) -> float:
        """Share of all hits that went to unmapped resources (0…1)."""
        return sum(share for _, share in self.unmapped)


def pull_baseline(
    client: DatadogClient,
    *,
    service: str,
    env: str,
    start: datetime,
    end: datetime,
    span: str = DEFAULT_SPAN,
    resolve: Resolve | None = None,
    params: Mapping[str, tuple[str, ...]] | None = None,
    progress: ProgressFn | None = None,
) -> PulledBaseline:
    """Pull ``service`` in ``env`` over ``[start, end)`` (whole minutes, tz-aware) and build the baseline.

    Raises :class:`parity.datadog.DatadogError` (a BadInput) when Datadog refuses, fails, or has no hits for
    the tag filter; nothing is written here — the caller writes the Measurement on success only.
    """
    pull = client.pull_apm(service=service, env=env, start=start, end=end, span=span, progress=progress)
    return build_baseline(pull, resolve=resolve, params=params)


def pull_with_keys(
    *,
    api_key: str,
    app_key: str,
    site: str | None,
    dd_url: str | None,
    service: str,
    env: str,
    start: datetime,
    end: datetime,
    span: str = DEFAULT_SPAN,
    routes: Path | None = None,
    params: Path | None = None,
    progress: ProgressFn | None = None,
) -> PulledBaseline:
    """Connect with the keys (:func:`parity.datadog.connect`), read the route map and parameter pools
    (``routes``: ``bin/rails routes`` output or OpenAPI; ``params``: a directory of ``<param>.csv``) and
    :func:`pull_baseline`. BadInput (DatadogError) for bad keys, files or answers; nothing is written."""
    route_map = read_route_map(routes) if routes is not None else None
    pools = read_param_pools(params) if params is not None else None
    with connect(api_key=api_key, app_key=app_key, site=site, dd_url=dd_url) as client:
        pulled = pull_baseline(
            client,
            service=service,
            env=env,
            start=start,
            end=end,
            span=span,
            resolve=None if route_map is None else route_map.resolve,
            params=pools,
            progress=progress,
        )
    return replace(pulled, route_map=route_map)


def describe_source(pull: ApmPull) -> str:
    span = pull.span
    return (
        f"Datadog APM {pull.tag_filter}: trace.{span}.hits / trace.{span}.errors per minute "
        f"(as_count, rollup sum 60 s) and the trace.{span} latency distribution over the window, by resource_name"
    )


def request_template(endpoint: Endpoint, params: Mapping[str, Sequence[str]] | None) -> RequestTemplate:
    """Path = the route template; params = the pools ``params`` has for the route's ``{placeholders}``."""
    pools = params or {}
    names = placeholders(endpoint.route)
    return RequestTemplate(path=endpoint.route, params={n: tuple(pools[n]) for n in names if n in pools})


def _timeline(pull: ApmPull, r: ResourcePull) -> Timeline:
    return Timeline(start_s=pull.start.timestamp(), interval_s=float(pull.interval_s), counts=r.hits, errors=r.errors)


def _add(a: Sequence[int | None], b: Sequence[int | None]) -> tuple[int | None, ...]:
    """Minute-wise sum; a minute missing on either side stays missing."""
    return tuple(None if x is None or y is None else x + y for x, y in zip(a, b, strict=True))


def _merge_latency(parts: Sequence[ResourcePull]) -> LatencySummary:
    """One resource: its summary. Several: count-weighted mean and the largest max over the resources that
    had requests (None if one of them lacks it); percentiles None (they do not merge from summaries)."""
    if len(parts) == 1:
        return parts[0].latency
    busy = [p for p in parts if p.count > 0]
    avgs = [(p.latency.avg_ms, p.count) for p in busy]
    avg = None
    if busy and all(a is not None for a, _ in avgs):
        avg = sum(a * n for a, n in avgs if a is not None) / sum(n for _, n in avgs)
    maxima = [p.latency.max_ms for p in busy]
    top = max(m for m in maxima if m is not None) if busy and None not in maxima else None
    return LatencySummary(avg_ms=avg, max_ms=top)


def _stats(
    pull: ApmPull, endpoint: Endpoint, parts: Sequence[ResourcePull], params: Mapping[str, Sequence[str]] | None
) -> EndpointStats:
    timelines = [_timeline(pull, p) for p in parts]
    counts, errors = timelines[0].counts, timelines[0].errors or ()
    for t in timelines[1:]:
        counts, errors = _add(counts, t.counts), _add(errors, t.errors or ())
    timeline = Timeline(timelines[0].start_s, timelines[0].interval_s, counts, errors)
    return EndpointStats(
        endpoint=endpoint,
        count=sum(p.count for p in parts),
        errors=sum(p.error_count for p in parts),
        latency=_merge_latency(parts),
        timeline=timeline,
        request=request_template(endpoint, params) if endpoint.mapped else None,
        resource=", ".join(p.resource for p in parts),
    )


def build_baseline(
    pull: ApmPull,
    *,
    resolve: Resolve | None = None,
    params: Mapping[str, Sequence[str]] | None = None,
) -> PulledBaseline:
    """The Measurement of a pull (pure): endpoints by count, largest first; unmapped resources listed."""
    groups: dict[Endpoint, list[ResourcePull]] = {}
    unmapped: list[ResourcePull] = []
    for r in pull.resources:
        endpoint = resolve(r.resource) if resolve is not None else None
        if endpoint is None or not endpoint.mapped:
            unmapped.append(r)
            endpoint = Endpoint("", r.resource)
        groups.setdefault(endpoint, []).append(r)
    endpoints = sorted(
        (_stats(pull, e, parts, params) for e, parts in groups.items()), key=lambda s: (-s.count, s.endpoint.key)
    )
    total = sum(r.count for r in pull.resources)
    shares = sorted(((r.resource, r.count / total if total else 0.0) for r in unmapped), key=lambda x: (-x[1], x[0]))
    measurement = Measurement(
        source=Source(SourceKind.DATADOG, description=describe_source(pull), service=pull.service, env=pull.env),
        window=Window(pull.start, pull.end),
        endpoints=tuple(endpoints),
        latency_kind=LatencyKind.SERVER,
        labels={"span": pull.span, "comparison": "before/after"},
    )
    return PulledBaseline(measurement, tuple(shares))

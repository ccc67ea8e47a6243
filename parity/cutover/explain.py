"""Why did the cutover stop? Both environments' APM traces of the endpoints that stopped the gate, old vs new.

Called by :func:`parity.cutover.run.run_cutover` AFTER the rollback was applied and journaled and the run's ``end``
was journaled (the explanation never delays a rollback), for a STOPPED run only. What is read:

- **endpoints** (:func:`stopping_endpoints`): those of the STOP decision: first the guardrail breaches' endpoints
  (``guardrail:<kind>``), then every endpoint with a metric shown WORSE (``avg_ms``, ``error_rate``...), in the
  decision's order, at most ``MAX_EXPLAINED``;
- **windows** (:func:`stop_windows`): the new side over the stopped step's checks, ``[first check's start, last
  check's end)`` (Unix s); the old side over the same window, except at a 100 % step (the old side served nothing
  then): over the previous step's checks;
- **selectors**: ``[cutover.old]`` / ``[cutover.new]``: env, service, span (the request span's operation) and tags;
- **resources**: the endpoint key's APM resource through ``[cutover] routes`` (``GET /api/employees/{id}`` →
  ``EmployeesController#show``, :meth:`parity.sources.routes.RouteMap.resource_for`); a ``METHOD /route`` key the
  map names no resource for is searched as it is. A key the map did not resolve (or any key without a route map)
  is what the live reader grouped by: the ``resource_name`` TAG value, normalised (``userscontroller_show``,
  ``get_/api/users/``), while spans keep the raw name (``UsersController#show``): a span search by it finds
  nothing, so it is not sent (the shared rate limit) and that endpoint is ``no explanation: <why, and to map it
  in [cutover] routes>``.

Through :func:`parity.explain.command.run_explain` / :func:`~parity.explain.command.explain_document` with the
same Datadog keys, site and URL the gate uses; ``OUT/explain.json`` is written atomically and carries
``cutover`` (the run's start, the stopped step and what stopped each endpoint).

Nothing here raises for what it cannot do and nothing changes the outcome: a failure (no keys, a bad URL, no
traces, 403/429, a time-out, an unwritable file) is :attr:`parity.cutover.model.StopExplanation.skipped` (one
line) or that endpoint's ``no explanation: <reason>`` sentence. Missing data is never explained: no traces on a
side is no explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from parity.cutover.model import CutoverRun, Outcome, StepRecord, StopExplanation, StopWhy
from parity.errors import BadInput
from parity.explain.command import (
    EXPLAIN_FILE,
    DatadogAccess,
    EndpointExplanation,
    Selector,
    TraceReader,
    explain_document,
    run_explain,
    write_explain_json,
)
from parity.explain.datadog_spans import SamplePolicy
from parity.explain.judge import no_explanation
from parity.judge.sequential import Action, Finding, StepDecision
from parity.model import Endpoint

__all__ = [
    "MAX_EXPLAINED",
    "STOP_POLICY",
    "explain_stop",
    "explainer",
    "resources_for",
    "stop_windows",
    "stopping_endpoints",
]

#: Endpoints explained at most (the first of the STOP decision): each costs a few Spans API requests per side.
MAX_EXPLAINED = 5

ProgressFn = Callable[[str], None]


def _stopped_step(run: CutoverRun) -> tuple[StepRecord, StepDecision] | None:
    """The step that stopped and its STOP decision (None when the run did not stop on a decision: a person's
    rollback, or no decision recorded)."""
    for step in reversed(run.steps):
        for record in reversed(step.checks):
            if record.decision is not None and record.decision.action is Action.STOP:
                return step, record.decision
    return None


def stopping_endpoints(decision: StepDecision, *, limit: int = MAX_EXPLAINED) -> list[tuple[str, tuple[str, ...]]]:
    """(endpoint key, the tests that stopped it) of a STOP decision: guardrail breaches first
    (``guardrail:<kind>``), then the metrics shown WORSE, in the decision's order; at most ``limit`` endpoints."""
    found: dict[str, list[str]] = {}
    for g in decision.guardrails:
        found.setdefault(g.endpoint, []).append(f"guardrail:{g.kind}")
    for m in decision.metrics:
        if m.finding is Finding.WORSE:
            found.setdefault(m.endpoint, []).append(m.metric)
    return [(k, tuple(dict.fromkeys(v))) for k, v in list(found.items())[:limit]]


def _checks_window(step: StepRecord) -> tuple[int, int] | None:
    if not step.checks:
        return None
    return min(c.start_s for c in step.checks), max(c.end_s for c in step.checks)


def stop_windows(run: CutoverRun, step: StepRecord) -> tuple[tuple[int, int], tuple[int, int]] | str:
    """(old window, new window), ``[start_s, end_s)`` Unix seconds, for the stopped ``step`` (see the module
    docstring), or why there is none (one line)."""
    new = _checks_window(step)
    if new is None:
        return "the stopped step has no checks"
    if step.weight_pct < 100.0:
        return new, new
    earlier = [s for s in run.steps if s.index < step.index and _checks_window(s) is not None]
    if not earlier:
        return "the old side served no traffic at the stopped 100 % step and no earlier step was checked"
    old = _checks_window(earlier[-1])
    assert old is not None
    return old, new


def resources_for(keys: Sequence[str], routes: Path | None) -> dict[str, tuple[str | None, str | None]]:
    """Endpoint key → (old, new) APM resource name through the route map at ``routes`` (None: the key itself).
    A route map that cannot be read maps nothing (the gate read it at the start: it is not bad input now)."""
    if routes is None:
        return {}
    from parity.sources.routes import read_route_map

    try:
        route_map = read_route_map(routes)
    except (BadInput, OSError, ValueError):
        return {}
    out: dict[str, tuple[str | None, str | None]] = {}
    for key in keys:
        name = route_map.resource_for(Endpoint.parse(key))
        if name is not None:
            out[key] = (name, name)
    return out


def _is_tag_value(key: str) -> bool:
    """Whether an endpoint key of the gate is a ``resource_name`` tag value (no ``METHOD /route`` shape): the live
    reader's group, normalised by Datadog, which the spans' raw resource names do not match."""
    return not Endpoint.parse(key).method


def _tag_reason(key: str) -> str:
    """Why a tag-value key is not searched (one line)."""
    return (
        f"{key!r} is Datadog's normalised resource_name tag (what the gate reads) and spans keep the raw name "
        "(UsersController#show, GET /users/?): map it in [cutover] routes to explain it"
    )


def explain_stop(
    run: CutoverRun,
    reader: TraceReader,
    out: Path,
    *,
    routes: Path | None = None,
    policy: SamplePolicy | None = None,
    progress: ProgressFn | None = None,
) -> StopExplanation:
    """Explain a STOPPED ``run`` (see the module docstring) from ``reader``'s traces and write ``out/explain.json``.
    Never raises for what it cannot do: that is :attr:`StopExplanation.skipped`; a failed read of one endpoint is
    its ``no explanation: <reason>`` sentence."""
    if run.outcome is not Outcome.STOPPED:
        return StopExplanation(skipped=f"the cutover {run.outcome.value}: only a stop is explained")
    stopped = _stopped_step(run)
    if stopped is None:
        return StopExplanation(skipped="no STOP decision of the gate (rolled back by a person): nothing to explain")
    step, decision = stopped
    targets = stopping_endpoints(decision)
    if not targets:
        return StopExplanation(skipped="the STOP decision names no endpoint")
    windows = stop_windows(run, step)
    if isinstance(windows, str):
        return StopExplanation(skipped=windows)
    (old_start, old_end), (new_start, new_end) = windows
    old = Selector(run.old.env, run.old.service, old_start, old_end, run.old.span, run.old.tags)
    new = Selector(run.new.env, run.new.service, new_start, new_end, run.new.span, run.new.tags)
    keys = [k for k, _ in targets]
    resources = resources_for(keys, routes)
    unsearchable = {k: _tag_reason(k) for k in keys if k not in resources and _is_tag_value(k)}
    read = iter(
        run_explain(
            reader,
            [k for k in keys if k not in unsearchable],
            old=old,
            new=new,
            resources=resources,
            policy=policy,
            progress=progress,
        )
    )
    results = tuple(
        EndpointExplanation(no_explanation(k, unsearchable[k])) if k in unsearchable else next(read) for k in keys
    )
    stopped_by = dict(targets)
    document: dict[str, Any] = explain_document(results, old=old, new=new)
    document["cutover"] = {
        "started": run.started_s,
        "step": step.index,
        "weight": step.weight_pct,
        "stopped_by": {k: list(v) for k, v in targets},
    }
    why = tuple(
        StopWhy(r.explanation.endpoint, stopped_by.get(r.explanation.endpoint, ()), r.explanation.sentence)
        for r in results
    )
    try:
        write_explain_json(out, document)
    except OSError as exc:
        return StopExplanation(why, None, f"{out / EXPLAIN_FILE}: cannot write it: {exc.strerror or exc}")
    return StopExplanation(why, EXPLAIN_FILE)


#: A STOP's reads never wait out a rate limit: the STOP's Datadog event waits for the explanation, and a 429 with
#: its reset (up to an hour) is that endpoint's ``no explanation`` rather than a late event.
STOP_POLICY = SamplePolicy(max_rate_waits=0)


def explainer(
    access: DatadogAccess | str,
    *,
    routes: Path | None = None,
    policy: SamplePolicy | None = None,
    progress: ProgressFn | None = None,
) -> Callable[[CutoverRun, Path], StopExplanation]:
    """The ``explain`` of :func:`parity.cutover.run.run_cutover`: :func:`explain_stop` through a Spans reader with
    ``access``'s keys (connected when a stop is explained, closed after), reading with ``policy`` (None:
    :data:`STOP_POLICY`, no rate-limit waits). ``access`` a string: the reason there is no access, given as
    :attr:`StopExplanation.skipped`."""
    from parity.datadog import DatadogError
    from parity.explain.datadog_spans import DatadogSpans

    def explain(run: CutoverRun, out: Path) -> StopExplanation:
        if isinstance(access, str):
            return StopExplanation(skipped=access)
        try:
            reader = DatadogSpans.connect(
                api_key=access.api_key, app_key=access.app_key, site=access.site, dd_url=access.dd_url
            )
        except DatadogError as exc:
            return StopExplanation(skipped=str(exc))
        with reader:
            return explain_stop(run, reader, out, routes=routes, policy=policy or STOP_POLICY, progress=progress)

    return explain

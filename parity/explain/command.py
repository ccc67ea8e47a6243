"""``parity explain``: why the top regressed endpoints of a comparison are slower, from both sides' APM traces.

Flow (:func:`run_explain`): pick the endpoints (:func:`pick_endpoints`: the ranked bottlenecks of a
``parity.json`` first, then its other failed endpoints, at most ``top``; or the ones named), read each side's
sampled traces over that side's compared window with :class:`parity.explain.datadog_spans.DatadogSpans`
(one read per endpoint and side), judge them with :func:`parity.explain.judge.explain`, and give the
explanations plus what each read cost (requests, rate limit, waits). :func:`explain_document` is the
``explain.json`` document; :func:`why_lines` the terminal lines.

Which Datadog resource an endpoint is: the APM resource its Measurement recorded (``EndpointStats.resource``,
e.g. ``UsersController#show``) when the caller knows it (``compare --explain`` has the Measurements), else the
endpoint's key as the report spells it (``GET /users/{id}``; an unmapped endpoint's key is the raw resource
name already).

Missing data: every failure of one endpoint's read (no traces, 403, 429 past the wait, a time-out, too few
traces) is that endpoint's ``no explanation: <reason>``; the others are still explained. Nothing here changes a
verdict, prints, or reads the environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from parity.datadog import DatadogError
from parity.explain.datadog_spans import EndpointWindow, ExplainUnavailable, SampledTraces, SamplePolicy
from parity.explain.judge import Explanation, TraceSample, explain, no_explanation, to_json, trace_sample
from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.report.explain import EXPLAIN_FILE, FORMAT, FORMAT_VERSION, load_explain_json, read_explain_json

__all__ = [
    "DEFAULT_TOP",
    "EXPLAIN_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "DatadogAccess",
    "EndpointExplanation",
    "ExplainOutcome",
    "Selector",
    "TraceReader",
    "explain_comparison",
    "explain_document",
    "explain_to_dir",
    "load_explain_json",
    "pick_endpoints",
    "read_explain_json",
    "resources_of",
    "run_explain",
    "selector_from_side",
    "why_lines",
    "write_explain_json",
]

DEFAULT_TOP = 3
"""Endpoints explained when none are named: the top of the bottleneck ranking."""

ProgressFn = Callable[[str], None]


class TraceReader(Protocol):
    """What :func:`run_explain` reads traces through (:class:`parity.explain.datadog_spans.DatadogSpans`)."""

    def sample_traces(
        self, window: EndpointWindow, policy: SamplePolicy | None = None, *, progress: ProgressFn | None = None
    ) -> SampledTraces: ...


@dataclass(frozen=True)
class Selector:
    """One side's APM selection: env, service, the request span's operation (None: any), extra tags, and the
    compared window ``[start_s, end_s)`` in Unix seconds."""

    env: str
    service: str
    start_s: int
    end_s: int
    span: str | None = "rack.request"
    tags: tuple[str, ...] = ()

    def window(self, resource: str) -> EndpointWindow:
        """The endpoint window of ``resource`` on this side."""
        return EndpointWindow(
            env=self.env,
            service=self.service,
            resource=resource,
            start_s=self.start_s,
            end_s=self.end_s,
            span=self.span,
            tags=self.tags,
        )

    def describe(self) -> str:
        """``web in ec2, [start, end)``."""
        return f"{self.service} in {self.env}, [{self.start_s}, {self.end_s})"


@dataclass(frozen=True)
class EndpointExplanation:
    """One endpoint's explanation and each side's read (None when that side was not read or failed)."""

    explanation: Explanation
    old: SampledTraces | None = None
    new: SampledTraces | None = None


def _instant_s(text: Any, what: str) -> float:
    """An ISO 8601 instant of parity.json → Unix seconds. ValueError naming ``what``."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: missing")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}: not an ISO 8601 instant ({text!r})") from None
    if t.tzinfo is None:
        raise ValueError(f"{what}: no time zone ({text!r})")
    return t.timestamp()


def selector_from_side(
    side: Mapping[str, Any] | None,
    *,
    which: str,
    env: str | None = None,
    service: str | None = None,
    span: str | None = "rack.request",
    tags: Sequence[str] = (),
) -> Selector:
    """The selector of one side of a ``parity.json`` (``baseline``/``candidate`` provenance): its window (start
    floored, end rounded up to whole seconds), env and service, each overridden by the argument when given.
    ValueError (one line naming ``which``) when the env, service or window is missing."""
    side = side or {}
    env = env or side.get("env")
    service = service or side.get("service")
    if not env or not service:
        flag = "old" if which == "baseline" else "new"
        missing = " and ".join(f"--{flag}-{n}" for n, v in (("env", env), ("service", service)) if not v)
        raise ValueError(f"the {which} side of parity.json names no APM env/service: give {missing}")
    start = _instant_s(side.get("window_start"), f"{which}.window_start")
    end = _instant_s(side.get("window_end"), f"{which}.window_end")
    return Selector(
        env=str(env), service=str(service), start_s=math.floor(start), end_s=math.ceil(end), span=span, tags=tuple(tags)
    )


def pick_endpoints(parity: Mapping[str, Any], *, top: int = DEFAULT_TOP, named: Sequence[str] = ()) -> list[str]:
    """The endpoints to explain: ``named`` as given (deduplicated), else the bottlenecks of ``parity`` in rank
    order, then its other endpoints whose verdict is ``fail``, at most ``top``. Empty when nothing regressed."""
    if named:
        return list(dict.fromkeys(named))
    keys: list[str] = []
    for b in sorted(parity.get("bottlenecks") or [], key=lambda b: b.get("rank", 0)):
        if isinstance(b.get("endpoint"), str):
            keys.append(b["endpoint"])
    for e in parity.get("endpoints") or []:
        if e.get("verdict") == "fail" and isinstance(e.get("endpoint"), str):
            keys.append(e["endpoint"])
    return list(dict.fromkeys(keys))[:top]


def _read(
    reader: TraceReader, window: EndpointWindow, policy: SamplePolicy, progress: ProgressFn
) -> tuple[TraceSample, SampledTraces | None]:
    """One side's sample; a failure is an unavailable sample with its one-line reason."""
    try:
        got = reader.sample_traces(window, policy, progress=progress)
    except (ExplainUnavailable, DatadogError) as exc:
        return TraceSample(unavailable=str(exc)), None
    return trace_sample(got.spans, roots=got.roots, chosen=got.chosen), got


def run_explain(
    reader: TraceReader,
    endpoints: Iterable[str],
    *,
    old: Selector,
    new: Selector,
    resources: Mapping[str, tuple[str | None, str | None]] | None = None,
    policy: SamplePolicy | None = None,
    progress: ProgressFn | None = None,
) -> tuple[EndpointExplanation, ...]:
    """Explain each endpoint (key as in parity.json) from both sides' sampled traces, in the given order.

    The endpoints' intervals are simultaneous over all of them (:func:`parity.explain.judge.explain`'s
    ``endpoints``): explaining more endpoints widens each one's, so the file as a whole names a component that did
    not change at most as often as one endpoint's explanation would.
    ``resources``: endpoint key → (old, new) Datadog resource name (None: the key itself). The old side is read
    first; when it gives nothing the new side is not read (it would cost requests of the shared rate limit for
    no explanation)."""
    policy = policy or SamplePolicy()
    say = progress or (lambda _line: None)
    keys = list(endpoints)
    out: list[EndpointExplanation] = []
    for key in keys:
        old_resource, new_resource = (resources or {}).get(key, (None, None))
        say(f"explain {key}: reading old traces ({old.describe()})")
        old_sample, old_read = _read(reader, old.window(old_resource or key), policy, say)
        if old_sample.unavailable is not None:
            out.append(EndpointExplanation(no_explanation(key, f"old side: {old_sample.unavailable}")))
            continue
        say(f"explain {key}: reading new traces ({new.describe()})")
        new_sample, new_read = _read(reader, new.window(new_resource or key), policy, say)
        explained = explain(key, old_sample, new_sample, endpoints=len(keys))
        out.append(EndpointExplanation(explained, old_read, new_read))
    return tuple(out)


def _read_json(read: SampledTraces | None) -> dict[str, Any] | None:
    if read is None:
        return None
    return {
        "query": read.query,
        "window": [read.window.start_s, read.window.end_s],
        "candidates": read.candidates,
        "capped": read.capped,
        "traces": len(read.traces),
        "dropped": read.dropped,
        "requests": read.requests,
        "waits_s": list(read.waits_s),
        "rate_limit": read.rate_limit.describe() if read.rate_limit is not None else None,
        "notes": list(read.notes),
    }


def explain_document(
    results: Sequence[EndpointExplanation], *, old: Selector, new: Selector, parity: str | None = None
) -> dict[str, Any]:
    """The ``explain.json`` document: ``format``, ``version``, ``parity`` (the parity.json explained, or None),
    ``old``/``new`` selectors, and ``explanations`` (one per endpoint, in the order explained: the fields of
    :func:`parity.explain.judge.to_json` plus ``reads`` {old, new}: what each side's read cost, None when it was
    not read or failed)."""

    def selector(s: Selector) -> dict[str, Any]:
        return {
            "env": s.env,
            "service": s.service,
            "span": s.span,
            "tags": list(s.tags),
            "window": [s.start_s, s.end_s],
        }

    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "parity": parity,
        "old": selector(old),
        "new": selector(new),
        "explanations": [
            {**to_json(r.explanation), "reads": {"old": _read_json(r.old), "new": _read_json(r.new)}} for r in results
        ],
    }


def write_explain_json(out_dir: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` (:func:`explain_document`) as ``out_dir/explain.json`` atomically, creating ``out_dir``;
    the path. OSError when it cannot be written (the caller says so in one line)."""
    import json

    from parity.report.write import write_atomic

    target = out_dir / EXPLAIN_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(target, json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
    return target


def why_lines(document: Mapping[str, Any]) -> list[str]:
    """One line per explained endpoint: ``<endpoint>: <why sentence>`` (``no explanation: <reason>`` when
    there is none)."""
    return [f"{e.get('endpoint')}: {e.get('sentence')}" for e in document.get("explanations") or []]


def resources_of(baseline: Measurement, candidate: Measurement) -> dict[str, tuple[str | None, str | None]]:
    """Endpoint key → (old, new) APM resource names the Measurements recorded. A side that recorded none (a baseline
    from access logs, a replay) takes the other side's: the same application names its resources alike in both
    environments (a renamed one finds no traces there: that side's ``no explanation``, never another endpoint's)."""
    old = {s.endpoint.key: s.resource for s in baseline.endpoints}
    new = {s.endpoint.key: s.resource for s in candidate.endpoints}
    return {
        k: (old.get(k) or new.get(k), new.get(k) or old.get(k))
        for k in old.keys() | new.keys()
        if old.get(k) or new.get(k)
    }


def explain_comparison(
    reader: TraceReader,
    result: ParityResult,
    baseline: Measurement,
    candidate: Measurement,
    *,
    top: int = DEFAULT_TOP,
    endpoints: Sequence[str] = (),
    span: str | None = "rack.request",
    policy: SamplePolicy | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """``explain.json`` for a comparison just judged (``compare --explain``): its top ``top`` regressed endpoints
    (or ``endpoints``, keys as in the result, when given), each side read over its compared window with the env and
    service its Measurement names and the APM resource it recorded. ValueError (one line) when a side names no env
    or service (e.g. a Locust CSV): nothing is read."""
    from parity.report.ci import json_value

    for which, side in (("baseline", result.baseline), ("candidate", result.candidate)):
        if not side.env or not side.service:
            raise ValueError(
                f"the {which} ({side.name}) names no APM env and service to read traces of (a Measurement from "
                "parity baseline pull does): run parity explain on the parity.json with --old-/--new-service and -env"
            )
    old = selector_from_side(json_value(result.baseline), which="baseline", span=span)
    new = selector_from_side(json_value(result.candidate), which="candidate", span=span)
    picked = pick_endpoints(
        {
            "bottlenecks": [{"rank": b.rank, "endpoint": b.endpoint.key} for b in result.bottlenecks],
            "endpoints": [{"endpoint": e.endpoint.key, "verdict": e.verdict.value} for e in result.endpoints],
        },
        top=top,
        named=endpoints,
    )
    results = run_explain(
        reader,
        picked,
        old=old,
        new=new,
        resources=resources_of(baseline, candidate),
        policy=policy,
        progress=progress,
    )
    return explain_document(results, old=old, new=new)


@dataclass(frozen=True)
class DatadogAccess:
    """Where ``--explain`` reads traces: the keys (from the caller's environment; never written anywhere), the site
    (None: datadoghq.com) and a base URL that replaces the site's (None: the site's)."""

    api_key: str
    app_key: str
    site: str | None = None
    dd_url: str | None = None

    def __repr__(self) -> str:  # the keys never reach a log through a repr
        return f"DatadogAccess(site={self.site!r}, dd_url={self.dd_url!r})"

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], *, site: str | None = None, dd_url: str | None = None
    ) -> DatadogAccess | str:
        """The access ``DD_API_KEY``/``DD_APP_KEY`` (and ``DD_SITE`` when ``site`` is not given) of ``environ``
        give, else the one-line reason there is none (``DD_API_KEY and DD_APP_KEY not set ...``)."""
        api_key, app_key = environ.get("DD_API_KEY", ""), environ.get("DD_APP_KEY", "")
        missing = [name for name, value in (("DD_API_KEY", api_key), ("DD_APP_KEY", app_key)) if not value]
        if missing:
            return f"{' and '.join(missing)} not set (--explain reads traces from Datadog)"
        return cls(api_key, app_key, site or environ.get("DD_SITE") or None, dd_url)


@dataclass(frozen=True)
class ExplainOutcome:
    """What :func:`explain_to_dir` did: the explanations by endpoint key (explain.json entries) and the file it
    wrote, or (both None) the one-line reason nothing was explained (``skipped``)."""

    explanations: dict[str, dict[str, Any]] | None = None
    path: Path | None = None
    skipped: str | None = None


def explain_to_dir(
    access: DatadogAccess | str,
    out: Path,
    result: ParityResult,
    baseline: Measurement,
    candidate: Measurement,
    *,
    top: int = DEFAULT_TOP,
    endpoints: Sequence[str] = (),
    span: str | None = "rack.request",
    policy: SamplePolicy | None = None,
    progress: ProgressFn | None = None,
) -> ExplainOutcome:
    """``--explain`` of any command that has just judged ``result`` (compare, ab, nightly, demo): read both sides'
    traces (:func:`explain_comparison`: the top ``top`` regressed endpoints, or ``endpoints``) and write
    ``out/explain.json`` atomically. Never raises for what it cannot do and never changes a verdict: no access
    (``access`` is then the reason), nothing regressed (and nothing named), a side without APM env or service, a
    bad site or URL, an unwritable file: each is :attr:`ExplainOutcome.skipped`. A failed read of one endpoint is
    that endpoint's ``no explanation: <reason>`` inside the file."""
    from parity.explain.datadog_spans import DatadogSpans
    from parity.judge.result import Verdict

    if isinstance(access, str):
        return ExplainOutcome(skipped=access)
    if not endpoints and not result.bottlenecks and not any(e.verdict is Verdict.FAIL for e in result.endpoints):
        return ExplainOutcome(skipped="no endpoint regressed")
    try:
        reader = DatadogSpans.connect(
            api_key=access.api_key, app_key=access.app_key, site=access.site, dd_url=access.dd_url
        )
    except DatadogError as exc:
        return ExplainOutcome(skipped=str(exc))
    try:
        with reader:
            document = explain_comparison(
                reader, result, baseline, candidate, top=top, endpoints=endpoints, span=span, policy=policy,
                progress=progress,
            )  # fmt: skip
    except ValueError as exc:
        return ExplainOutcome(skipped=str(exc))
    try:
        target = write_explain_json(out, document)
    except OSError as exc:
        return ExplainOutcome(skipped=f"{out / EXPLAIN_FILE}: cannot write it: {exc.strerror or exc}")
    return ExplainOutcome({e["endpoint"]: e for e in document["explanations"]}, target)

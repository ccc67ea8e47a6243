"""Sampled whole traces of one endpoint, read through the official client's v2 Spans API.

:meth:`DatadogSpans.sample_traces` reads one side (one env/service, one window) in three steps, every request a
``SpansApi.list_spans`` (``POST /api/v2/spans/events/search``, cursor pagination: ``page.cursor`` from
``meta.page.after`` until a page comes back short (fewer than the limit: Datadog sends a cursor even then, and the
empty page after it would cost a request) or without a cursor):

1. **Request spans.** ``service:<S> env:<E> operation_name:<span> resource_name:"<R>" [tags]`` over ``[start_s,
   end_s)``, sorted by ``timestamp``, pages of :attr:`SamplePolicy.page_limit`, at most
   :attr:`SamplePolicy.max_candidates` spans (if the window holds more, the candidates are the earliest ones and
   the sample says so: it covers ``[start, last candidate]``). A span Datadog ingested as a single span
   (``single_span: true``: kept without the rest of its trace) is not a candidate: its trace cannot be read
   whole, and alone it would read as 100 % app code. Spans whose ``parent_id`` is not ``"0"`` (the
   endpoint is called by another traced service) are kept: the sampled span is the request, its trace is still
   read whole, and :attr:`SampledTrace.request_span_id` names it.
2. **Sample** (stated in :attr:`SampledTraces.rule`): the candidates are sorted by (start, span id) — so the API's
   order does not matter — and ``random.Random(seed).sample`` draws :attr:`SamplePolicy.traces` of them without
   replacement (all of them when there are fewer), one per trace (a trace that holds the endpoint twice is
   drawn once). Errors are not excluded. Indexed spans are themselves a sample Datadog's retention filters
   chose: the rule says so.
3. **Whole traces.** ``env:<E> trace_id:(<id> OR <id> ...)`` in batches of :attr:`SamplePolicy.batch_traces`,
   over the batch's request spans' time ± :data:`TRACE_MARGIN_S`, every page read. ``env`` keeps the other
   environment's spans out should both sides ever share trace ids (e.g. a replay that propagates trace headers
   to both); a downstream service that reports another env is then not seen (its time stays in the caller). A
   trace whose request span is not among its spans, or that holds one span id twice, is dropped and counted.

Conversion at the edge (:func:`span_from_wire`): ``custom.duration`` (nanoseconds, as the recorded answers have
it) → ms; ``start_timestamp`` (ISO 8601, millisecond resolution in Datadog's answers) → Unix ms, its resolution
kept (:attr:`Span.start_resolution_ms`: the breakdown needs it to tell back-to-back calls from parallel ones);
``parent_id`` ``"0"`` → root; ids kept as Datadog spells them; ``operation_name`` read from the span's top level (else
``attributes.operation_name`` or ``custom.operation_name``); error when ``status`` is ``error`` (or
``custom.error`` is set); ``type`` as given. Tags: the span's own meta, which Datadog's answers nest in ``custom``
by its dots (``{"db": {"system": "postgresql"}, "peer": {"service": "billing"}, "span": {"kind": "client"}}``,
as the recorded cassettes have it), flattened back to ``db.system``..., then ``tags`` (host and infrastructure
tags, ``key:value``). The recordings carry no ``operation_name`` (nor does the client's ``SpansAttributes``
model): a span without one has the name ``""`` and is classified by its type and meta. A span without a
duration, an id or a start is dropped and counted, never guessed.

Rate limits (Datadog: 300 span-search requests per hour, shared by the org): every answer's
``X-RateLimit-*`` headers are kept (:attr:`SampledTraces.rate_limit`: the last seen) and a read sends at most
:attr:`SamplePolicy.max_requests` requests. A 429 waits ``X-RateLimit-Reset`` seconds (through the injected
``sleep``, reported to ``progress``, recorded in :attr:`SampledTraces.waits_s`) when that is at most
:attr:`SamplePolicy.max_wait_s`, at most :attr:`SamplePolicy.max_rate_waits` times; otherwise the read stops.
If the request budget runs out while fetching traces, the batches already read whole are kept and the rest are
dropped and counted (traces are independent draws, so dropping whole later batches does not bias the sample).

Every failure is one :class:`ExplainUnavailable` line (never a traceback, never partial traces): 401, 403
(``apm_read`` missing), 429 past the wait, 5xx, a time-out, a connection fault, an answer that does not fit,
no request span in the window, or no trace read whole. Nothing here prints or reads the environment.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import urllib3
from datadog_api_client.exceptions import (
    ApiException,
    ForbiddenException,
    OpenApiException,
    UnauthorizedException,
)
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.spans_list_request import SpansListRequest
from datadog_api_client.v2.model.spans_list_request_attributes import SpansListRequestAttributes
from datadog_api_client.v2.model.spans_list_request_data import SpansListRequestData
from datadog_api_client.v2.model.spans_list_request_page import SpansListRequestPage
from datadog_api_client.v2.model.spans_list_request_type import SpansListRequestType
from datadog_api_client.v2.model.spans_query_filter import SpansQueryFilter
from datadog_api_client.v2.model.spans_query_options import SpansQueryOptions
from datadog_api_client.v2.model.spans_sort import SpansSort

from parity.datadog import (
    DatadogClient,
    DatadogError,
    _body_message,
    _connection_reason,
    _first_line,
    _header,
    connect,
)
from parity.explain.spans import NS_PER_MS, Span

__all__ = [
    "SPANS_TIMEOUT_S",
    "TRACE_MARGIN_S",
    "DatadogSpans",
    "EndpointWindow",
    "ExplainUnavailable",
    "RateLimit",
    "SamplePolicy",
    "SampledTrace",
    "SampledTraces",
    "span_from_wire",
    "span_query",
]

#: Seconds one Spans API request may take.
SPANS_TIMEOUT_S = 30.0
#: Seconds around a batch's request spans searched for the rest of their traces (downstream and async spans).
TRACE_MARGIN_S = 300
_NAME = re.compile(r"[A-Za-z0-9_.:/\-]+")
_TAG = re.compile(r"[A-Za-z@][A-Za-z0-9_.:/\-]*")
_ID = re.compile(r"[0-9A-Za-z]{1,64}")

ProgressFn = Callable[[str], None]


class ExplainUnavailable(Exception):
    """No explanation can be read: one line saying why (the caller shows "<reason>" and changes
    no verdict)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EndpointWindow:
    """One side's endpoint: ``resource`` as Datadog spells it on spans (raw, e.g. ``UsersController#show``),
    the request span's operation (``span``, e.g. ``rack.request``; None: any), env, service, extra tags
    (``key:value``), and the window ``[start_s, end_s)`` in Unix seconds."""

    env: str
    service: str
    resource: str
    start_s: int
    end_s: int
    span: str | None = "rack.request"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SamplePolicy:
    """How many traces and how they are chosen; request budget and rate-limit waits (seconds)."""

    traces: int = 30
    seed: int = 0
    max_candidates: int = 1000
    page_limit: int = 1000
    batch_traces: int = 50
    max_requests: int = 40
    max_wait_s: float = 60.0
    max_rate_waits: int = 2

    def __post_init__(self) -> None:
        for name in ("traces", "max_candidates", "batch_traces", "max_requests"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.page_limit <= 1000:
            raise ValueError("page_limit must be between 1 and 1000 (the Spans API's limit)")
        if self.max_wait_s < 0 or self.max_rate_waits < 0:
            raise ValueError("max_wait_s and max_rate_waits must be at least 0")


@dataclass(frozen=True)
class RateLimit:
    """Datadog's ``X-RateLimit-*`` headers of the last answer (None where absent): requests allowed per
    ``period_s``, how many remain, seconds until the period resets, the limit's name."""

    limit: int | None
    period_s: int | None
    remaining: int | None
    reset_s: int | None
    name: str | None

    def describe(self) -> str:
        """One phrase, e.g. ``spans_search: 287 of 300 requests left, resets in 3120 s``."""
        left = f"{self.remaining} of {self.limit} requests left" if self.remaining is not None else "no count"
        reset = f", resets in {self.reset_s} s" if self.reset_s is not None else ""
        return f"{self.name or 'rate limit'}: {left}{reset}"


@dataclass(frozen=True)
class SampledTrace:
    """One sampled trace: every span read, and the endpoint's span that was drawn."""

    trace_id: str
    request_span_id: str
    spans: tuple[Span, ...]

    @property
    def request_span(self) -> Span:
        """The drawn span of the endpoint (always among :attr:`spans`)."""
        return next(s for s in self.spans if s.span_id == self.request_span_id)


@dataclass(frozen=True)
class SampledTraces:
    """What one side's read gave, and how it was chosen.

    ``candidates``: request spans of the endpoint found in the window (at most the policy's
    ``max_candidates``; ``capped`` True when the window may hold more (a full last page), then
    ``covered_until_s`` is the last candidate's start); ``traces`` in draw order; ``dropped`` sampled traces
    not returned, with the reasons in ``notes`` (request budget, request span missing from its trace, spans
    without duration/id/start);
    ``requests`` sent; ``waits_s`` rate-limit waits; ``rate_limit`` the last headers seen.
    """

    window: EndpointWindow
    query: str
    rule: str
    seed: int
    candidates: int
    capped: bool
    covered_until_s: float | None
    traces: tuple[SampledTrace, ...]
    dropped: int
    requests: int
    waits_s: tuple[float, ...] = ()
    rate_limit: RateLimit | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def spans(self) -> tuple[Span, ...]:
        """Every span of every trace (for :func:`parity.explain.judge.trace_sample`)."""
        return tuple(span for trace in self.traces for span in trace.spans)

    @property
    def roots(self) -> dict[str, str]:
        """Trace id -> the drawn request span's id (``roots`` of :func:`parity.explain.judge.trace_sample`)."""
        return {trace.trace_id: trace.request_span_id for trace in self.traces}

    @property
    def chosen(self) -> str:
        """How the traces were chosen (``chosen`` of :func:`parity.explain.judge.trace_sample`): :meth:`describe`."""
        return self.describe()

    def describe(self) -> str:
        """The sampling, stated in one sentence (for reports)."""
        where = f"{self.window.service} in {self.window.env}"
        got = f"{len(self.traces)} traces of {self.candidates} indexed request spans of {self.window.resource}"
        capped = " (the window's earliest ones: it may hold more)" if self.capped else ""
        return f"{got}{capped} ({where}): {self.rule}"


def _checked(what: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DatadogError(f"{what} {value!r}: expected letters, digits and _ . : / - only")
    return value


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def span_query(window: EndpointWindow) -> str:
    """The search of the endpoint's request spans (module docstring); DatadogError (bad input) for a name that
    cannot go into a query."""
    if not window.resource or "\n" in window.resource or len(window.resource) > 1000:
        raise DatadogError(f"resource {window.resource[:80]!r}: expected one line of at most 1000 characters")
    terms = [f"service:{_checked('service', window.service, _NAME)}", f"env:{_checked('env', window.env, _NAME)}"]
    if window.span is not None:
        terms.append(f"operation_name:{_checked('span', window.span, _NAME)}")
    terms.append(f"resource_name:{_quoted(window.resource)}")
    terms.extend(_checked("tag", t, _TAG) for t in window.tags)
    return " ".join(terms)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


_FRACTION = re.compile(r"T\d\d:\d\d:\d\d(?:\.(\d+))?")


def _resolution_ms(value: Any) -> float:
    """How precisely a start timestamp is known, in ms: 1 ms for Datadog's ms timestamps, which leave the
    fraction's trailing zeros out (``.472Z``, ``.12Z``, ``.1Z`` and a whole second ``:05Z`` are all known to the
    ms, not to 10, 100 or 1000 ms); finer when more digits are given (``.472123Z``: 0.001 ms); for a parsed
    datetime (the client's), 1 ms when it is a whole ms, else 0.001 ms."""
    if isinstance(value, datetime):
        return 1.0 if value.microsecond % 1000 == 0 else 0.001
    m = _FRACTION.search(value) if isinstance(value, str) else None
    if m is None:
        return 1.0
    digits = len(m.group(1) or "")
    return 10.0 ** (3 - max(digits, 3)) if digits <= 9 else 0.0


def _epoch_ms(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp() * 1000.0
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000.0
        except ValueError:
            return None
    return None


def _flat_meta(custom: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``custom`` as dotted ``key -> value`` strings: Datadog's answers nest a span's meta by its dots
    (``{"db": {"system": "postgresql"}, "peer": {"service": "billing"}}``); keys already dotted are kept as
    they are. Numbers become their text; lists, nulls and booleans are left out; ``duration`` is not meta."""
    out: dict[str, str] = {}
    for key, value in custom.items():
        if not isinstance(key, str) or (not prefix and key == "duration"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            for k, v in _flat_meta(value, f"{name}.").items():
                out.setdefault(k, v)
        elif isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
            out.setdefault(name, str(value))
    return out


def span_from_wire(item: Mapping[str, Any]) -> Span | None:
    """One ``data[]`` item of a Spans API answer as a :class:`Span` (module docstring), or None when it lacks a
    trace id, span id, start or a non-negative duration (the caller counts it)."""
    attrs = item.get("attributes")
    if not isinstance(attrs, Mapping):
        return None
    custom = _mapping(attrs.get("custom"))
    nested = _mapping(attrs.get("attributes"))
    duration = custom.get("duration")
    start_ms = _epoch_ms(attrs.get("start_timestamp"))
    trace_id, span_id = attrs.get("trace_id"), attrs.get("span_id")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
        return None
    if duration < 0 or start_ms is None or not trace_id or not span_id:
        return None
    name = attrs.get("operation_name") or nested.get("operation_name") or custom.get("operation_name") or ""
    error = attrs.get("status") == "error" or bool(custom.get("error"))
    parent = attrs.get("parent_id")
    tags = _flat_meta(custom)  # the span's own meta: Datadog nests it in custom ({"db": {"system": ...}})
    for tag in attrs.get("tags") or ():  # then the host/infrastructure tags ("key:value")
        if isinstance(tag, str) and ":" in tag:
            key, _, value = tag.partition(":")
            tags.setdefault(key, value)
    return Span(
        trace_id=str(trace_id),
        span_id=str(span_id),
        parent_id=None if parent in (None, "", "0", 0) else str(parent),
        service=str(attrs.get("service") or ""),
        type=str(attrs.get("type") or ""),
        name=str(name),
        resource=str(attrs.get("resource_name") or ""),
        start_ms=start_ms,
        duration_ms=float(duration) / NS_PER_MS,
        error=error,
        tags=tuple(sorted(tags.items())),
        start_resolution_ms=_resolution_ms(attrs.get("start_timestamp")),
    )


def _int_header(headers: Mapping[str, str] | None, name: str) -> int | None:
    text = _header(headers, name)
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _rate_limit(headers: Mapping[str, str] | None) -> RateLimit | None:
    if not headers or _header(headers, "X-RateLimit-Limit") is None:
        return None
    return RateLimit(
        limit=_int_header(headers, "X-RateLimit-Limit"),
        period_s=_int_header(headers, "X-RateLimit-Period"),
        remaining=_int_header(headers, "X-RateLimit-Remaining"),
        reset_s=_int_header(headers, "X-RateLimit-Reset"),
        name=_first_line(_header(headers, "X-RateLimit-Name") or "", 60) or None,
    )


@dataclass
class _Session:
    """One read's requests: budget, waits, last rate-limit headers."""

    policy: SamplePolicy
    requests: int = 0
    waits: list[float] = field(default_factory=list)
    rate: RateLimit | None = None


class _BudgetSpent(Exception):
    pass


@dataclass(frozen=True)
class DatadogSpans:
    """Reads sampled traces through ``client`` (:func:`parity.datadog.connect`; the caller closes it, or use
    :meth:`connect`). ``sleep`` waits out rate limits (tests inject a recorder)."""

    client: DatadogClient
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @classmethod
    def connect(
        cls,
        *,
        api_key: str,
        app_key: str,
        site: str | None = None,
        dd_url: str | None = None,
        timeout_s: float = SPANS_TIMEOUT_S,
        sleep: Callable[[float], None] | None = None,
    ) -> DatadogSpans:
        """A reader with its own client (keys from the caller; ``dd_url`` for every call) whose requests time out
        after ``timeout_s`` and whose answers keep their headers (for the rate limit). DatadogError (bad input)
        for a missing key, an unknown site or a malformed URL. Close it with :meth:`close`."""
        client = connect(api_key=api_key, app_key=app_key, site=site, dd_url=dd_url, timeout_s=timeout_s, max_retries=0)
        client.api.configuration.return_http_data_only = False
        return cls(client) if sleep is None else cls(client, sleep)

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def __enter__(self) -> DatadogSpans:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one read --

    def sample_traces(
        self, window: EndpointWindow, policy: SamplePolicy | None = None, *, progress: ProgressFn | None = None
    ) -> SampledTraces:
        """Sampled whole traces of ``window``'s endpoint (module docstring). ExplainUnavailable (one line) on any
        failure; DatadogError (bad input, nothing sent) for names that cannot be queried or an empty window."""
        policy = policy or SamplePolicy()
        query = span_query(window)
        if window.end_s <= window.start_s:
            raise DatadogError(f"span window [{window.start_s}, {window.end_s}): the end is not after the start")
        say = progress or (lambda _line: None)
        session = _Session(policy)
        where = f"traces of {window.resource!r} ({window.service} in {window.env})"
        notes: list[str] = []
        try:
            candidates, capped, unreadable, alone = self._candidates(session, query, window, say)
        except _BudgetSpent:
            raise ExplainUnavailable(
                f"{where}: the request budget ({policy.max_requests}) ran out while listing request spans"
            ) from None
        if not candidates and (unreadable or alone):
            raise ExplainUnavailable(
                f"{where}: Datadog answered {unreadable + alone} request spans of it in [{window.start_s}, "
                f"{window.end_s}) but none with a whole trace: {unreadable} without a trace id, span id, start or "
                f"duration, {alone} ingested as a single span"
            )
        if unreadable:
            notes.append(f"{unreadable} request spans without a trace id, span id, start or duration left out")
        if alone:
            notes.append(f"{alone} request spans ingested as a single span (their trace was not kept whole) left out")
        if not candidates:
            raise ExplainUnavailable(
                f"{where}: Datadog has no indexed span of it in [{window.start_s}, {window.end_s}) "
                f"(query {query}): no traffic, spans not indexed (retention filters), not yet ingested or older than "
                "the indexed spans' retention (15 days by default)"
            )
        drawn = _draw(candidates, policy)
        traces, dropped = self._traces(session, window.env, drawn, say, notes)
        if not traces:
            raise ExplainUnavailable(f"{where}: no sampled trace could be read whole ({'; '.join(notes)})")
        rule = (
            f"{len(drawn)} drawn uniformly without replacement (random.Random({policy.seed}).sample over the "
            "candidates sorted by start and span id, one per trace), errors included; indexed spans are themselves "
            "sampled by Datadog's retention filters"
        )
        return SampledTraces(
            window=window,
            query=query,
            rule=rule,
            seed=policy.seed,
            candidates=len(candidates),
            capped=capped,
            covered_until_s=candidates[-1].start_ms / 1000.0 if capped else None,
            traces=tuple(traces),
            dropped=dropped,
            requests=session.requests,
            waits_s=tuple(session.waits),
            rate_limit=session.rate,
            notes=tuple(notes),
        )

    def _candidates(
        self, session: _Session, query: str, window: EndpointWindow, say: ProgressFn
    ) -> tuple[list[Span], bool, int, int]:
        """The endpoint's request spans in the window (earliest first, at most max_candidates), whether the
        window holds more, how many answered spans could not be read (no id, start or duration) and how many were
        ingested as a single span (``single_span``: kept without their trace, which cannot be broken down)."""
        out: list[Span] = []
        unreadable = 0
        alone = 0
        limit = min(session.policy.page_limit, session.policy.max_candidates)
        for page, more in self._pages(session, query, window.start_s * 1000, window.end_s * 1000, limit, say):
            for item in page:
                span = span_from_wire(item)
                if span is None:
                    unreadable += 1
                elif _mapping(item.get("attributes")).get("single_span") is True:
                    alone += 1
                else:
                    out.append(span)
            if len(out) >= session.policy.max_candidates:
                ordered = sorted(out, key=lambda s: (s.start_ms, s.span_id))
                return ordered[: session.policy.max_candidates], more, unreadable, alone
        return sorted(out, key=lambda s: (s.start_ms, s.span_id)), False, unreadable, alone

    def _traces(
        self, session: _Session, env: str, drawn: Sequence[Span], say: ProgressFn, notes: list[str]
    ) -> tuple[list[SampledTrace], int]:
        """Every span of the drawn traces, batch by batch; (traces read whole, how many drawn were dropped)."""
        out: list[SampledTrace] = []
        size = session.policy.batch_traces
        unread = 0
        missing = 0
        skipped = 0
        doubled: set[str] = set()
        for b in range(0, len(drawn), size):
            batch = drawn[b : b + size]
            ids = [s.trace_id for s in batch]
            if not all(_ID.fullmatch(i) for i in ids):
                raise ExplainUnavailable(f"Datadog answered a trace id that cannot be queried ({ids[0][:40]!r} …)")
            lo = math.floor(min(s.start_ms for s in batch)) - TRACE_MARGIN_S * 1000
            hi = math.ceil(max(s.end_ms for s in batch)) + TRACE_MARGIN_S * 1000
            spans: dict[str, dict[str, Span]] = {i: {} for i in ids}
            try:
                for page, _more in self._pages(
                    session, f"env:{env} trace_id:({' OR '.join(ids)})", lo, hi, session.policy.page_limit, say
                ):
                    for item in page:
                        span = span_from_wire(item)
                        if span is None:
                            skipped += 1
                        elif span.trace_id in spans:
                            if spans[span.trace_id].get(span.span_id, span) != span:
                                doubled.add(span.trace_id)
                            spans[span.trace_id][span.span_id] = span
            except _BudgetSpent:
                unread = len(drawn) - b
                break
            for request in batch:
                trace = spans[request.trace_id]
                if request.trace_id in doubled:
                    continue
                if request.span_id not in trace:
                    missing += 1
                    continue
                ordered = tuple(sorted(trace.values(), key=lambda s: (s.start_ms, s.span_id)))
                out.append(SampledTrace(request.trace_id, request.span_id, ordered))
        if unread:
            notes.append(
                f"{unread} sampled traces not read: the request budget ({session.policy.max_requests}) ran out"
            )
        if missing:
            notes.append(f"{missing} sampled traces dropped: their request span was not among the trace's spans")
        if doubled & {s.trace_id for s in drawn}:
            notes.append(f"{len(doubled)} sampled traces dropped: they hold one span id twice (trace ids reused?)")
        if skipped:
            notes.append(f"{skipped} spans without a trace id, span id, start or duration left out")
        return out, unread + missing + len(doubled)

    def _pages(
        self, session: _Session, query: str, lo_ms: int, hi_ms: int, limit: int, say: ProgressFn
    ) -> Iterator[tuple[list[Mapping[str, Any]], bool]]:
        """Pages of ``query`` over ``[lo_ms, hi_ms)``: (items, whether another page may follow). _BudgetSpent when
        the next page would pass the request budget."""
        cursor: str | None = None
        while True:
            if session.requests >= session.policy.max_requests:
                raise _BudgetSpent
            page = (
                SpansListRequestPage(limit=limit)
                if cursor is None
                else SpansListRequestPage(limit=limit, cursor=cursor)
            )
            body = SpansListRequest(
                data=SpansListRequestData(
                    attributes=SpansListRequestAttributes(
                        filter=SpansQueryFilter(_from=str(lo_ms), to=str(hi_ms), query=query),
                        options=SpansQueryOptions(timezone="GMT"),
                        page=page,
                        sort=SpansSort.TIMESTAMP_ASCENDING,
                    ),
                    type=SpansListRequestType.SEARCH_REQUEST,
                )
            )
            answer = self._request(session, body, query, say)
            items = answer.get("data")
            if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
                raise ExplainUnavailable(f"unexpected answer from Datadog's Spans API to {query[:120]}: no data list")
            meta = _mapping(answer.get("meta"))
            status = meta.get("status")
            if status not in (None, "done"):
                raise ExplainUnavailable(
                    f"Datadog's span search did not finish ({_first_line(status, 40)}) for {query[:120]}"
                )
            page_meta = _mapping(meta.get("page"))
            after = page_meta.get("after")
            # A short page is the last one: Datadog still sends a cursor then (the recorded cassettes), and the
            # empty page it leads to would cost one of the org's 300 span searches per hour.
            more = len(items) >= limit and isinstance(after, str) and bool(after)
            yield items, more
            if not more:
                return
            cursor = after

    def _request(self, session: _Session, body: SpansListRequest, query: str, say: ProgressFn) -> Mapping[str, Any]:
        """One ``list_spans`` call, waiting out a short 429; the answer as plain JSON."""
        api = SpansApi(self.client.api)  # type: ignore[no-untyped-call]
        host = self.client.host
        while True:
            session.requests += 1
            try:
                raw = api.list_spans(body=body)
            except ApiException as exc:
                if int(exc.status or 0) == 429:
                    session.rate = _rate_limit(exc.headers) or session.rate
                    wait = self._rate_wait(session, exc, host)
                    limits = session.rate.describe() if session.rate else "no rate-limit headers"
                    say(f"Datadog Spans API rate limit: waiting {wait:g} s ({limits})")
                    session.waits.append(wait)
                    self.sleep(wait)
                    if session.requests >= session.policy.max_requests:
                        raise _BudgetSpent from None
                    continue
                raise ExplainUnavailable(self._scrub(_failure(exc, host, query))) from None
            except urllib3.exceptions.HTTPError as exc:
                raise ExplainUnavailable(
                    self._scrub(
                        f"Datadog's Spans API at {host}: "
                        f"{_connection_reason(exc, self.client.timeout_s)} (check the network, the site or the URL)"
                    )
                ) from None
            except OpenApiException as exc:
                raise ExplainUnavailable(
                    self._scrub(f"unexpected answer from Datadog's Spans API: {_first_line(exc)}")
                ) from None
            data, headers = (raw[0], raw[2]) if isinstance(raw, tuple) and len(raw) == 3 else (raw, None)
            session.rate = _rate_limit(headers) or session.rate
            plain = data.to_dict() if hasattr(data, "to_dict") else data
            if not isinstance(plain, Mapping):
                raise ExplainUnavailable("unexpected answer from Datadog's Spans API: not an object")
            return plain

    def _rate_wait(self, session: _Session, exc: ApiException, host: str) -> float:
        text = _header(exc.headers, "X-RateLimit-Reset")
        try:
            wait = float(text) if text is not None else math.inf
        except ValueError:
            wait = math.inf
        policy = session.policy
        if not math.isfinite(wait) or wait > policy.max_wait_s or len(session.waits) >= policy.max_rate_waits:
            when = f"it resets in {_first_line(text, 20)} s" if text else "Datadog did not say when it resets"
            which = f" ({session.rate.describe()})" if session.rate else ""
            raise ExplainUnavailable(
                f"Datadog's Spans API rate limit reached (HTTP 429) at {host}: {when}{which}; "
                "span search allows 300 requests per hour for the whole org"
            )
        return max(wait, 1.0)

    def _scrub(self, message: str) -> str:
        keys: dict[str, str] = self.client.api.configuration.api_key
        for secret in keys.values():
            if isinstance(secret, str) and len(secret) >= 4:
                message = message.replace(secret, "[redacted]")
        return message


def _failure(exc: ApiException, host: str, query: str) -> str:
    """The one line for an HTTP error of the Spans API (not 429)."""
    status = int(exc.status or 0)
    if isinstance(exc, UnauthorizedException) or status == 401:
        return f"Datadog refused the API key (HTTP 401) at {host}: check DD_API_KEY and the site"
    if isinstance(exc, ForbiddenException) or status == 403:
        return (
            f"Datadog refused the application key (HTTP 403) at {host}: DD_APP_KEY is invalid, lacks "
            "the apm_read permission, or belongs to another org than DD_API_KEY"
        )
    if status >= 500:
        return (
            f"Datadog's Spans API failed (HTTP {status}) at {host}: "
            f"{_body_message(exc) or 'server error'}; a fault on Datadog's side (see status.datadoghq.com)"
        )
    if status == 404:
        return f"no Datadog Spans API at {host} (HTTP 404): check the site or URL"
    if status == 0:
        return f"cannot talk to Datadog at {host}: {_first_line(exc.reason)}"
    return f"Datadog rejected the span search {query[:120]} (HTTP {status}): {_body_message(exc)}"


def _draw(candidates: Sequence[Span], policy: SamplePolicy) -> list[Span]:
    """The stated rule: one candidate per trace (the earliest), then ``random.Random(seed).sample`` of them."""
    firsts: dict[str, Span] = {}
    for span in candidates:  # sorted by (start, span id): the first kept per trace is the earliest
        firsts.setdefault(span.trace_id, span)
    pool = list(firsts.values())
    if len(pool) <= policy.traces:
        return pool
    return random.Random(policy.seed).sample(pool, policy.traces)

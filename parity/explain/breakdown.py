"""Per trace: where did the request's time go? Exclusive time and calls per component. Pure: no I/O.

A **component** is a service × a kind of work (:class:`Kind`: app code, a database, a cache, outbound HTTP, DNS,
queueing, templates, custom spans, other) × a short name (``postgres``, ``redis``, the called service...),
classified from Datadog's span ``type`` and operation ``name`` by :func:`classify`.

Method (:func:`breakdown_trace`), all times in ms on the root span's timeline:

1. The request is the root span's interval ``[start, end)``; every other span's time is clipped to its
   parent's interval (an async child that outlives its parent, e.g. fire-and-forget work, only counts while
   the parent still runs: the rest is not part of this request's latency; such spans are counted in
   ``clipped``).
   A child whose start is known only to a resolution (Datadog's Spans API gives starts to the ms, durations
   to the ns) is placed within it as late as needed to begin after the siblings before it end, never past
   its parent's end (:func:`_placed`): sub-ms calls back to back (an N+1) would otherwise seem to run at
   once and their time would go to the parent. A child that overlapped its siblings whatever its start
   (parallel calls) keeps its timestamp. Such a parent (the root too) is placed, within its own
   resolution, late enough to hold its children so placed (:func:`_earliest_starts`): a call in its parent's
   last millisecond would otherwise fall past the parent's end.
2. Each instant of the root's interval is charged to exactly ONE span: walking down from the root, an instant
   covered by no child stays with the span (its *exclusive* time); an instant covered by several overlapping
   children (parallel or async calls) goes to the child that ends LAST among those running then — the one
   the parent is waiting for — and so on down the tree. Overlapping children are therefore never counted
   twice (the parent's exclusive time is its duration minus the UNION of its children), and the exclusive
   times of a trace sum to the root's duration exactly (up to float rounding).
3. A span's component gets its exclusive time and one call.

Missing data: a span whose parent is not among the fetched spans (*missing parent*: a dropped or not yet
indexed span) is re-attached to the root when it starts within the root's interval (its time is then its own
component's, the missing parent's own time stays with the root — counted in ``orphans``), otherwise left out
(counted in ``excluded``), never guessed further. A trace whose root is missing cannot be broken down: it is
skipped with the reason (:class:`SkippedTrace`), never zero-filled. Spans of another trace, duplicate span ids
and spans not under the root (another root's tree, a parent cycle) are left out and counted.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from parity.explain.spans import Span

__all__ = [
    "APP_LABEL",
    "Component",
    "ComponentTime",
    "Kind",
    "SkippedTrace",
    "TraceBreakdown",
    "breakdown_trace",
    "breakdown_traces",
    "classify",
]

APP_LABEL = "app code"
"""The name of the app-code component of every service."""


class Kind(Enum):
    """What kind of work a component is (``value`` is the plain word used in reports)."""

    APP = "app code"  # the service's own code: its entry span (rack.request...), controllers, handlers
    DATABASE = "database"  # postgres, mysql, active_record.sql, mongodb...
    CACHE = "cache"  # redis, memcached, rails.cache
    HTTP = "outbound http"  # http client calls (net/http, faraday, requests...): network + the callee
    DNS = "dns"  # name resolution
    QUEUE = "queueing"  # request queueing before the app, job queues, brokers
    TEMPLATE = "templates"  # view rendering
    CUSTOM = "custom"  # spans the app created itself (type custom), e.g. active_record.instantiation
    OTHER = "other"  # anything not recognised (the default bucket)


@dataclass(frozen=True)
class Component:
    """One component: ``service`` (the span's own service) × ``kind`` × ``name`` (``app code`` for
    :attr:`Kind.APP`; the database/cache system, the called host or service, or the operation name)."""

    service: str
    kind: Kind
    name: str

    def __lt__(self, other: object) -> bool:  # Enums do not order: sort by the plain words
        if not isinstance(other, Component):
            return NotImplemented
        return (self.service, self.kind.value, self.name) < (other.service, other.kind.value, other.name)


@dataclass(frozen=True)
class ComponentTime:
    """One component in one trace: ``time_ms`` of the request charged to it (exclusive, see the module
    docstring) and ``calls``, the number of its spans in the trace."""

    component: Component
    time_ms: float
    calls: int


@dataclass(frozen=True)
class TraceBreakdown:
    """One trace broken down. ``duration_ms`` is the root span's duration; the components' ``time_ms`` sum
    to it. ``root_service``/``root_resource`` identify the request. Counts of what was left out or
    repaired: ``orphans`` (missing parent, re-attached to the root), ``excluded`` (not under the root, or a
    missing parent outside the root's interval), ``clipped`` (spans running partly outside their parent),
    ``duplicates`` (repeated span ids, first kept), ``foreign`` (another trace's id)."""

    trace_id: str
    root_span_id: str
    root_service: str
    root_resource: str
    start_ms: float
    duration_ms: float
    error: bool
    components: tuple[ComponentTime, ...]
    spans: int
    orphans: int = 0
    excluded: int = 0
    clipped: int = 0
    duplicates: int = 0
    foreign: int = 0

    def time_of(self, component: Component) -> float:
        """Time (ms) charged to ``component`` in this trace; 0.0 when the trace has no span of it (the trace
        was read whole: no span means no time)."""
        for c in self.components:
            if c.component == component:
                return c.time_ms
        return 0.0


@dataclass(frozen=True)
class SkippedTrace:
    """A trace that could not be broken down, and why (one line)."""

    trace_id: str
    reason: str


# --- classification ---------------------------------------------------------------------------------------

_DB_TYPES = frozenset(
    {"db", "sql", "postgres", "postgresql", "mysql", "sqlite", "mongodb", "cassandra", "elasticsearch", "opensearch"}
)
_CACHE_TYPES = frozenset({"cache", "redis", "memcached", "memcache", "valkey"})
_HTTP_TYPES = frozenset({"http", "grpc"})  # Datadog's type for outbound client calls ("web" is server side)
_WEB_TYPES = frozenset({"web", "serverless"})
_QUEUE_TYPES = frozenset({"worker", "queue", "proxy", "kafka", "sqs", "sns", "rabbitmq", "amqp"})
_TEMPLATE_TYPES = frozenset({"template"})
_DNS_TYPES = frozenset({"dns"})

# operation-name prefix (before the first ".") -> (kind, component name)
_NAME_PREFIXES: Mapping[str, tuple[Kind, str]] = {
    "postgres": (Kind.DATABASE, "postgres"),
    "postgresql": (Kind.DATABASE, "postgres"),
    "pg": (Kind.DATABASE, "postgres"),
    "mysql": (Kind.DATABASE, "mysql"),
    "mysql2": (Kind.DATABASE, "mysql"),
    "sqlite": (Kind.DATABASE, "sqlite"),
    "sqlite3": (Kind.DATABASE, "sqlite"),
    "mongodb": (Kind.DATABASE, "mongodb"),
    "mongo": (Kind.DATABASE, "mongodb"),
    "cassandra": (Kind.DATABASE, "cassandra"),
    "elasticsearch": (Kind.DATABASE, "elasticsearch"),
    "opensearch": (Kind.DATABASE, "opensearch"),
    "dynamodb": (Kind.DATABASE, "dynamodb"),
    "sequel": (Kind.DATABASE, "sql"),
    "redis": (Kind.CACHE, "redis"),
    "valkey": (Kind.CACHE, "redis"),
    "memcached": (Kind.CACHE, "memcached"),
    "memcache": (Kind.CACHE, "memcached"),
    "dalli": (Kind.CACHE, "memcached"),
    "dns": (Kind.DNS, "dns"),
    "resolv": (Kind.DNS, "dns"),
    "sidekiq": (Kind.QUEUE, "sidekiq"),
    "resque": (Kind.QUEUE, "resque"),
    "delayed_job": (Kind.QUEUE, "delayed_job"),
    "kafka": (Kind.QUEUE, "kafka"),
    "rabbitmq": (Kind.QUEUE, "rabbitmq"),
    "amqp": (Kind.QUEUE, "rabbitmq"),
    "sqs": (Kind.QUEUE, "sqs"),
    "sns": (Kind.QUEUE, "sns"),
    "celery": (Kind.QUEUE, "celery"),
    "http_server": (Kind.QUEUE, "request queue"),  # dd-trace-rb's http_server.queue (request queueing)
}
# whole operation names
_NAMES: Mapping[str, tuple[Kind, str]] = {
    "active_record.sql": (Kind.DATABASE, "sql"),
    "rails.cache": (Kind.CACHE, "rails.cache"),
    "http.proxy.request": (Kind.QUEUE, "request queue"),
    "http.proxy.queue": (Kind.QUEUE, "request queue"),
    "http.request": (Kind.HTTP, "http"),
    "http.client.request": (Kind.HTTP, "http"),
    "net/http.request": (Kind.HTTP, "http"),
    "faraday.request": (Kind.HTTP, "http"),
    "excon.request": (Kind.HTTP, "http"),
    "httpclient.request": (Kind.HTTP, "http"),
    "httprb.request": (Kind.HTTP, "http"),
    "ethon.request": (Kind.HTTP, "http"),
    "rest_client.request": (Kind.HTTP, "http"),
    "requests.request": (Kind.HTTP, "http"),
    "urllib3.request": (Kind.HTTP, "http"),
    "aiohttp.request": (Kind.HTTP, "http"),
    "httpx.request": (Kind.HTTP, "http"),
    "grpc.client": (Kind.HTTP, "grpc"),
}
_TEMPLATE_PREFIXES = ("rails.render_", "template.", "tilt.", "django.template", "jinja2.", "flask.render")
_WEB_NAMES = frozenset(
    {
        "rack.request",
        "rails.action_controller",
        "sinatra.request",
        "grape.endpoint_run",
        "django.request",
        "flask.request",
        "fastapi.request",
        "aspnet_core.request",
        "servlet.request",
        "express.request",
        "web.request",
        "http.server.request",
    }
)
# tags that name a database or cache system, in order of preference
_SYSTEM_TAGS = ("db.system", "db.type", "active_record.db.vendor")
# tags that name where an outbound call went, in order of preference
_PEER_TAGS = ("peer.service", "out.host", "network.destination.name", "http.host", "peer.hostname")
_SYSTEM_NAMES: Mapping[str, str] = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "pg": "postgres",
    "mysql": "mysql",
    "mysql2": "mysql",
    "redis": "redis",
    "memcached": "memcached",
}


def _system(span: Span, fallback: str) -> str:
    """The database/cache system named by the span's tags, else ``fallback``."""
    for key in _SYSTEM_TAGS:
        value = span.tag(key)
        if value:
            return _SYSTEM_NAMES.get(value.lower(), value.lower())
    return fallback


def _host_name(value: str | None) -> str | None:
    """A host or service name as a component name: lower case, without a ``:port`` (``billing:8080`` and
    ``billing`` are one downstream); None for an IP address (a pod's or a load balancer's: one per pod, it names
    no downstream and would make one component per address) or nothing."""
    if not value:
        return None
    host = value.strip().lower()
    if host.startswith("[") and "]" in host:  # [v6]:port
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
        host = name if port.isdigit() else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host or None
    return None


def _peer(span: Span) -> str:
    """Where an outbound call went: its peer service or host tag, else the host of its ``http.url`` (a full URL;
    a path names none) or ``http.url_details.host``, else ``http`` (nothing names it: all such calls share it).
    Names are lower case without a port; an IP address names nothing (:func:`_host_name`)."""
    for key in _PEER_TAGS:
        value = _host_name(span.tag(key))
        if value:
            return value
    url = span.tag("http.url")
    if url:
        try:
            host = _host_name(urlsplit(url).hostname)
        except ValueError:
            host = None
        if host:
            return host
    return _host_name(span.tag("http.url_details.host")) or "http"


def _kind_of(span: Span) -> tuple[Kind, str]:
    """Kind and short name from the operation name first (more specific), then Datadog's span type."""
    name = span.name.lower()
    typ = span.type.lower()
    if name in _NAMES:
        kind, short = _NAMES[name]
    elif name in _WEB_NAMES:
        kind, short = Kind.APP, APP_LABEL
    elif name.startswith(_TEMPLATE_PREFIXES):
        kind, short = Kind.TEMPLATE, "templates"
    elif name.split(".", 1)[0] in _NAME_PREFIXES:
        kind, short = _NAME_PREFIXES[name.split(".", 1)[0]]
    elif typ in _DB_TYPES:
        kind, short = Kind.DATABASE, _SYSTEM_NAMES.get(typ, typ if typ not in {"db", "sql"} else "sql")
    elif typ in _CACHE_TYPES:
        kind, short = Kind.CACHE, _SYSTEM_NAMES.get(typ, typ)
    elif typ in _HTTP_TYPES:
        kind, short = Kind.HTTP, "grpc" if typ == "grpc" else "http"
    elif typ in _DNS_TYPES:
        kind, short = Kind.DNS, "dns"
    elif typ in _QUEUE_TYPES:
        kind, short = Kind.QUEUE, "request queue" if typ == "proxy" else typ
    elif typ in _TEMPLATE_TYPES:
        kind, short = Kind.TEMPLATE, "templates"
    elif typ in _WEB_TYPES:
        kind, short = Kind.APP, APP_LABEL
    elif typ == "custom":
        kind, short = Kind.CUSTOM, span.name or "custom"  # Datadog's answers may carry no operation name
    else:
        kind, short = Kind.OTHER, span.name or typ or "unnamed"
    if kind in (Kind.DATABASE, Kind.CACHE):
        short = _system(span, short)
    elif kind is Kind.HTTP:
        peer = _peer(span)
        short = peer if peer != "http" or short == "http" else short
    return kind, short


def classify(span: Span, parent: Span | None) -> Component:
    """The component of ``span``. ``parent`` is its parent span (None for the root or a missing parent).

    Rules, in order: the operation name (``postgres.query`` -> database ``postgres``, ``redis.command`` ->
    cache ``redis``, ``http.request`` -> outbound http named by its ``peer.service``/``out.host`` tag or its URL's host,
    ``rack.request``/``rails.action_controller`` -> app code, ``rails.render_*`` -> templates, ...), then
    Datadog's span ``type`` (``db``/``sql``, ``cache``/``redis``/``memcached``, ``http``, ``dns``,
    ``worker``/``queue``, ``proxy`` (request queueing), ``template``, ``web`` -> app code, ``custom`` -> custom
    named by the operation), else the default bucket :attr:`Kind.OTHER` named by the operation. A database or
    cache system named by a ``db.system``-like tag wins over the name. Finally, a span that is its service's
    entry (the root, or its parent is another service) and is not a recognised call (database, cache, http, dns,
    queue, template) is that service's app code: time in a service's own root is its app code."""
    kind, short = _kind_of(span)
    entry = parent is None or parent.service != span.service
    if entry and kind in (Kind.CUSTOM, Kind.OTHER):
        kind, short = Kind.APP, APP_LABEL
    return Component(service=span.service, kind=kind, name=short)


# --- the breakdown ----------------------------------------------------------------------------------------


def _pick_root(spans: Sequence[Span], root_span_id: str | None) -> Span | str:
    """The request's root span, or why there is none (one line)."""
    if root_span_id is not None:
        for s in spans:
            if s.span_id == root_span_id:
                return s
        return f"root span {root_span_id} is not among the trace's {len(spans)} fetched spans"
    roots = [s for s in spans if s.parent_id is None]
    if not roots:
        return f"no root span among the trace's {len(spans)} fetched spans (the root was not indexed or fetched)"
    # several spans without a parent: the request is the longest (earliest on a tie); the others are left out
    return min(roots, key=lambda s: (-s.duration_ms, s.start_ms, s.span_id))


def _timeline(
    lo: float, hi: float, kids: Sequence[tuple[float, float, Span]]
) -> list[tuple[float, float, Span | None]]:
    """Split ``[lo, hi)`` at the children's (clipped) starts and ends; each piece goes to the child that ends
    last among those running then (then the earlier start, then the smaller span id), or to None (the span's
    own time). A sweep line with a heap: O(k log k) for k children (an N+1 trace has thousands)."""
    cuts = sorted({lo, hi, *(a for a, _, _ in kids), *(b for _, b, _ in kids)})
    order = sorted(kids, key=lambda k: k[0])
    heap: list[tuple[float, float, tuple[int, ...], int]] = []  # (-end, start, id key, index)
    out: list[tuple[float, float, Span | None]] = []
    i = 0
    for x, y in itertools.pairwise(cuts):
        if x < lo or y > hi:
            continue
        while i < len(order) and order[i][0] <= x:
            a, b, _ = order[i]
            heapq.heappush(heap, (-b, a, _id_key(order[i][2].span_id), i))
            i += 1
        while heap and -heap[0][0] <= x:
            heapq.heappop(heap)
        winner = order[heap[0][3]][2] if heap else None
        if out and out[-1][2] is winner and out[-1][1] == x:
            out[-1] = (out[-1][0], y, winner)
        else:
            out.append((x, y, winner))
    return out


def _id_key(span_id: str) -> tuple[int, ...]:
    """A sort key for span ids (deterministic tie-break: the smaller id wins)."""
    return tuple(ord(c) for c in span_id)


def _charge(root: Span, children: Mapping[str, list[Span]]) -> tuple[dict[str, float], int, set[str]]:
    """Charge every instant of ``root``'s interval to one span (see the module docstring). Returns the
    exclusive ms per span id, the number of clipped spans and the ids of every span reached from the root.
    Times are offsets (ms) from the root's start, which keeps float rounding at the root's scale."""
    exclusive: dict[str, float] = {}
    clipped = 0
    reached: set[str] = set()
    origin = root.start_ms
    earliest = _earliest_starts(root, children)
    # work list: (span, its start offset as placed, the pieces of the root's timeline it owns: sorted, disjoint
    # (a, b) offsets); a root known only to the ms may start later than its timestamp (its children say so)
    first = earliest[root.span_id]
    stack: list[tuple[Span, float, list[tuple[float, float]]]] = [(root, first, [(first, first + root.duration_ms)])]
    while stack:
        span, lo, pieces = stack.pop()
        if span.span_id in reached:  # a parent cycle through the root: charge once
            continue
        reached.add(span.span_id)
        hi = lo + span.duration_ms
        kids: list[tuple[float, float, Span]] = []
        placed: dict[str, float] = {}
        cursor = lo
        for child in children.get(span.span_id, ()):  # sorted by (start, duration, span id)
            ca = _placed(child, child.start_ms - origin, max(cursor, earliest[child.span_id]), hi)
            cb = ca + child.duration_ms
            cursor = max(cursor, cb)
            placed[child.span_id] = ca
            a, b = max(ca, lo), min(cb, hi)
            if a != ca or b != cb:
                clipped += 1
            kids.append((a, max(a, b), child))
        owned: dict[str, list[tuple[float, float]]] = defaultdict(list)
        own: list[float] = []
        timeline = _timeline(lo, hi, kids)
        j = 0
        for pa, pb in pieces:  # intersect the owned pieces with the timeline (both sorted)
            while j < len(timeline) and timeline[j][1] <= pa:
                j += 1
            k = j
            while k < len(timeline) and timeline[k][0] < pb:
                x, y = max(timeline[k][0], pa), min(timeline[k][1], pb)
                winner = timeline[k][2]
                if y > x:
                    if winner is None:
                        own.append(y - x)
                    else:
                        segs = owned[winner.span_id]
                        if segs and segs[-1][1] == x:
                            segs[-1] = (segs[-1][0], y)
                        else:
                            segs.append((x, y))
                k += 1
        exclusive[span.span_id] = math.fsum(own)
        for _, _, child in kids:
            stack.append((child, placed[child.span_id], owned.get(child.span_id, [])))
    return exclusive, clipped, reached


def _earliest_starts(root: Span, children: Mapping[str, list[Span]]) -> dict[str, float]:
    """The earliest start (offset from the root's timestamp, ms) of every span reached from ``root`` that its
    timestamp and its children allow: a start known only to a resolution (Datadog's ms) lies in ``[start, start
    + resolution]``, and the span cannot have ended before its children, placed back to back from their own
    earliest starts as :func:`_charge` places them (bottom up). So a child starting in its parent's last
    millisecond is not pushed past the parent's end (its time would go to the parent). Never beyond the
    resolution: a child that outlives its parent by more (async work) is clipped as before. An exact start is
    its own earliest start."""
    origin = root.start_ms
    order: list[Span] = []
    seen: set[str] = set()
    todo = [root]
    while todo:  # parents before children (each span once, even through a parent cycle)
        span = todo.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        order.append(span)
        todo.extend(children.get(span.span_id, ()))
    earliest: dict[str, float] = {}
    for span in reversed(order):  # children before parents
        start = span.start_ms - origin
        res = span.start_resolution_ms
        if res <= 0:
            earliest[span.span_id] = start
            continue
        end, cursor = start + span.duration_ms, start  # its children placed back to back as _charge does
        for child in children.get(span.span_id, ()):
            if child.span_id in earliest:
                ca = _placed(child, child.start_ms - origin, max(cursor, earliest[child.span_id]), math.inf)
                cursor = max(cursor, ca + child.duration_ms)
                end = max(end, cursor)
        need = end - span.duration_ms
        earliest[span.span_id] = min(max(start, need), start + res)
    return earliest


def _placed(child: Span, start: float, cursor: float, hi: float) -> float:
    """Where a child starts (offset, ms). An exact start is kept. A start known only to within ``[start, start +
    resolution]`` (Datadog's ms timestamps) is put where the siblings before it end (``cursor``) when that lies
    within it, but never so late that it would outlast its parent (``hi``), so back-to-back calls that share a
    millisecond are not taken for parallel ones. When the siblings before it end past its resolution, it
    overlapped them whatever its true start (parallel calls): it keeps its timestamp, as nothing says where in
    the millisecond it began. Never earlier than ``start``: nothing the timestamps rule out is assumed."""
    res = child.start_resolution_ms
    if res <= 0 or cursor > start + res:
        return start
    return max(start, min(cursor, hi - child.duration_ms))


def breakdown_trace(spans: Sequence[Span], *, root_span_id: str | None = None) -> TraceBreakdown | SkippedTrace:
    """Break one trace down into components (see the module docstring for the method).

    ``spans``: the fetched spans of ONE trace (the first span's ``trace_id`` is the trace's; spans of another
    trace are left out and counted in ``foreign``). ``root_span_id``: the request's span (e.g. the endpoint's
    ``rack.request`` span when the trace starts further up, at a proxy); default: the span without a parent
    (the longest when there are several). Times in ms. Returns a :class:`SkippedTrace` with the reason when
    there are no spans or the root is missing — never a breakdown guessed from part of a trace."""
    if not spans:
        return SkippedTrace(trace_id="", reason="no spans")
    trace_id = spans[0].trace_id
    same = [s for s in spans if s.trace_id == trace_id]
    foreign = len(spans) - len(same)
    by_id: dict[str, Span] = {}
    for s in same:
        by_id.setdefault(s.span_id, s)
    duplicates = len(same) - len(by_id)
    unique = list(by_id.values())
    root = _pick_root(unique, root_span_id)
    if isinstance(root, str):
        return SkippedTrace(trace_id=trace_id, reason=root)

    children: dict[str, list[Span]] = defaultdict(list)
    orphans = 0
    excluded_orphans = 0
    for s in unique:
        if s is root:
            continue
        if s.parent_id is not None and s.parent_id in by_id:
            children[s.parent_id].append(s)
        elif s.parent_id is not None:  # missing parent
            if root.start_ms <= s.start_ms < root.end_ms:
                children[root.span_id].append(s)
                orphans += 1
            else:
                excluded_orphans += 1
        # a span without a parent that is not the root: another tree, left out (counted below)
    for kids in children.values():  # calls sharing a (truncated) start: the shorter first, the only order in
        # which a long call and the short ones in its first millisecond can have run one after another
        kids.sort(key=lambda k: (k.start_ms, k.duration_ms, k.span_id))

    exclusive, clipped, reached = _charge(root, children)
    excluded = len(unique) - len(reached)

    per: dict[Component, list[float]] = {}
    calls: dict[Component, int] = defaultdict(int)
    # an orphan's parent is the root it was re-attached to (its own parent is unknown: not guessed further)
    parent_of = {k.span_id: p for p, kids in children.items() for k in kids}
    for span_id in sorted(reached):
        span = by_id[span_id]
        parent_id = parent_of.get(span_id)
        comp = classify(span, None if span is root or parent_id is None else by_id[parent_id])
        per.setdefault(comp, []).append(exclusive[span_id])
        calls[comp] += 1
    components = tuple(ComponentTime(component=c, time_ms=math.fsum(per[c]), calls=calls[c]) for c in sorted(per))
    return TraceBreakdown(
        trace_id=trace_id,
        root_span_id=root.span_id,
        root_service=root.service,
        root_resource=root.resource,
        start_ms=root.start_ms,
        duration_ms=root.duration_ms,
        error=root.error,
        components=components,
        spans=len(reached),
        orphans=orphans,
        excluded=excluded,
        clipped=clipped,
        duplicates=duplicates,
        foreign=foreign,
    )


def breakdown_traces(
    spans: Iterable[Span], *, roots: Mapping[str, str] | None = None
) -> tuple[tuple[TraceBreakdown, ...], tuple[SkippedTrace, ...]]:
    """Group ``spans`` by trace id and break each trace down (:func:`breakdown_trace`). ``roots`` maps a trace
    id to the request's root span id (the sampled endpoint span); traces not in it use their parentless span.
    Returns the breakdowns and the skipped traces (with reasons), both in trace-id order."""
    groups: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        groups[s.trace_id].append(s)
    done: list[TraceBreakdown] = []
    skipped: list[SkippedTrace] = []
    for trace_id in sorted(groups):
        root_id = (roots or {}).get(trace_id)
        result = breakdown_trace(groups[trace_id], root_span_id=root_id)
        (skipped if isinstance(result, SkippedTrace) else done).append(result)  # type: ignore[arg-type]
    if roots:
        for trace_id in sorted(set(roots) - set(groups)):
            skipped.append(SkippedTrace(trace_id=trace_id, reason="no spans fetched for this trace"))
    return tuple(done), tuple(skipped)

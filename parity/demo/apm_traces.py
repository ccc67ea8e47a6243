"""Whole traces in the demo's fake Datadog: an intake for spans with parent ids, and the v2 Spans search API
(``POST /api/v2/spans/events/search``) in Datadog's wire format, served by :class:`parity.demo.apm.DemoDatadog`.

Intake (no keys, like a local agent): ``POST /api/parity-demo/traces`` with ``{"env": str, "spans": [span,
...]}``, each span an object ``{"trace_id": str, "span_id": str, "parent_id": str ("0" or absent: a root),
"service": str, "name": str (operation), "resource": str, "type": str (optional), "start_s": float (Unix s),
"duration_ms": float, "error": 0|1 (optional), "meta": {str: str} (optional)}``. Ids are strings (decimal, as
Datadog spells 64-bit ids in its answers). A malformed batch is refused whole (400 naming the first bad span);
202 ``{"accepted": n}``. :func:`post_traces` sends a batch.

Search (``DD-API-KEY`` and ``DD-APPLICATION-KEY`` as for every query; the fake's fault switches apply): the
request body is the client's ``SpansListRequest``: ``data.attributes.filter`` ``{query, from, to}`` (``from``/``to``
as Unix ms digits, ISO 8601, ``now`` or ``now-<n>s|m|h|d``; a span matches when its start is in ``[from,
to)``), ``page`` ``{limit (1-1000, default 10), cursor}``, ``sort`` ``timestamp`` (default) or ``-timestamp``
(ties by span id). Query subset: terms separated by spaces (AND), each ``[-]key:value``, ``key:"quoted value"``
(``\\"`` and ``\\\\`` escapes) or ``key:(a OR b ...)``, or ``*``; keys ``service``, ``env``, ``resource_name``,
``operation_name``, ``trace_id``, ``span_id``, ``parent_id``, ``type``, ``status`` (``ok``/``error``) and ``@<meta
key>``; anything else is a 400 in Datadog's ``{"errors": [...]}`` shape. The answer is what the recorded
cassettes show: ``{"data": [{"id", "type": "spans", "attributes": {"custom": {"duration": <ns>, ...meta nested
by its dots: {"db": {"system": ...}}}},
"start_timestamp", "end_timestamp" (ISO 8601, **millisecond** resolution like Datadog's, truncated, trailing zeros of
the fraction left out), "env",
"host", "ingestion_reason", "parent_id" ("0" for a root), "resource_hash", "resource_name", "retained_by",
"service", "single_span", "span_id", "tags" (host tags only), "trace_id", "type", and, beyond the recordings,
"operation_name", "status"}}], "meta":
{"elapsed", "request_id", "status": "done", "page": {"after": cursor}}, "links": {"next": url}}``; as in the
recordings a non-empty page carries a cursor even when it is the last one, and the page after the last is
``{"data": []}``. A cursor belongs to its query (another query's cursor is a 400).

Rate limit: like Datadog's (300 requests per hour for this endpoint), every answer carries ``X-RateLimit-*``
headers (``Name: spans_search``); past :attr:`TraceStore.limit` requests in the current period the fake
answers 429 with ``X-RateLimit-Reset`` = seconds left in the period.

Memory is bounded: at most :data:`MAX_TRACE_SPANS` spans (the earliest received go first), and spans received
first that started more than the fake's horizon before the newest span are dropped (O(1) per span: the intake's
batches come in about time order).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "MAX_PAGE_LIMIT",
    "MAX_TRACE_SPANS",
    "SEARCH_PATH",
    "SPANS_RATE_LIMIT",
    "SPANS_RATE_PERIOD_S",
    "TRACES_INTAKE_PATH",
    "StoredSpan",
    "TraceStore",
    "post_traces",
]

TRACES_INTAKE_PATH = "/api/parity-demo/traces"
SEARCH_PATH = "/api/v2/spans/events/search"
#: Most spans kept (the oldest are dropped first).
MAX_TRACE_SPANS = 200_000
#: Largest ``page.limit`` the Spans API takes (the client's model says 1000 too).
MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 10
#: Datadog's documented limit for span search: 300 requests per hour.
SPANS_RATE_LIMIT = 300
SPANS_RATE_PERIOD_S = 3600
_KEYS: Final = frozenset(
    {"service", "env", "resource_name", "operation_name", "trace_id", "span_id", "parent_id", "type", "status"}
)
_TERM = re.compile(r'(-?)(@?[A-Za-z_][A-Za-z0-9_.\-]*):("(?:[^"\\]|\\.)*"|\([^()]*\)|[^\s()"]+)')
_RELATIVE = re.compile(r"now(?:-(\d+)([smhd]))?")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SearchError(Exception):
    """A search request the fake refuses with 400 (the message goes into ``errors``)."""


@dataclass(frozen=True)
class StoredSpan:
    """One span as received (times in Unix s / ms as sent)."""

    trace_id: str
    span_id: str
    parent_id: str
    env: str
    service: str
    name: str
    resource: str
    type: str
    start_s: float
    duration_ms: float
    error: bool
    meta: Mapping[str, str] = field(default_factory=dict)

    def value(self, key: str) -> str | None:
        """The span's value for a query key (None: the span has no such attribute)."""
        if key.startswith("@"):
            return self.meta.get(key[1:])
        return {
            "service": self.service,
            "env": self.env,
            "resource_name": self.resource,
            "operation_name": self.name,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "type": self.type,
            "status": "error" if self.error else "ok",
        }[key]


def _text(span: Mapping[str, Any], key: str, i: int, *, required: bool = True, limit: int = 5000) -> str:
    value = span.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ValueError(f"spans[{i}]: {key}: expected a {'non-empty ' if required else ''}string")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_spans(env: Any, spans: Any) -> list[StoredSpan]:
    """The intake's batch as spans; ValueError naming the first bad field (nothing is stored then)."""
    if not isinstance(env, str) or not env or len(env) > 200:
        raise ValueError("env: expected a non-empty string of at most 200 characters")
    if not isinstance(spans, list):
        raise ValueError("spans: expected a list of span objects")
    out = []
    for i, span in enumerate(spans):
        if not isinstance(span, dict):
            raise ValueError(f"spans[{i}]: expected an object")
        start: Any = span.get("start_s")
        duration: Any = span.get("duration_ms")
        error = span.get("error", 0)
        if not _number(start) or not 0.0 <= start <= 4102444800.0:
            raise ValueError(f"spans[{i}]: start_s: expected Unix seconds")
        if not _number(duration) or not 0.0 <= duration <= 1e10:
            raise ValueError(f"spans[{i}]: duration_ms: expected a duration in ms, at least 0")
        if error not in (0, 1) or isinstance(error, float):
            raise ValueError(f"spans[{i}]: error: expected 0 or 1")
        meta = span.get("meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise ValueError(f"spans[{i}]: meta: expected an object of strings")
        out.append(
            StoredSpan(
                trace_id=_text(span, "trace_id", i, limit=64),
                span_id=_text(span, "span_id", i, limit=64),
                parent_id=_text(span, "parent_id", i, required=False, limit=64) or "0",
                env=env.lower(),
                service=_text(span, "service", i, limit=200).lower(),
                name=_text(span, "name", i, limit=200),
                resource=_text(span, "resource", i),
                type=_text(span, "type", i, required=False, limit=100),
                start_s=float(start),
                duration_ms=float(duration),
                error=bool(error),
                meta=dict(meta),
            )
        )
    return out


def _instant_ms(text: Any, now_s: float, what: str) -> float:
    """``from``/``to`` of a search as Unix ms."""
    if not isinstance(text, str) or not text:
        raise SearchError(f"filter.{what}: expected a time")
    if text.isdigit():
        return float(text)
    m = _RELATIVE.fullmatch(text)
    if m is not None:
        back = int(m.group(1)) * _UNIT_S[m.group(2)] if m.group(1) else 0
        return (now_s - back) * 1000.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000.0
    except ValueError:
        raise SearchError(f"filter.{what}: cannot read {text[:40]!r} as a time") from None


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


@dataclass(frozen=True)
class _Term:
    negated: bool
    key: str
    values: tuple[str, ...]


def parse_query(query: Any) -> tuple[_Term, ...]:
    """The fake's query subset (module docstring) as terms; SearchError for anything else."""
    if not isinstance(query, str):
        raise SearchError("filter.query: expected a string")
    text = query.strip()
    terms: list[_Term] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        if text[pos] == "*" and (pos + 1 == len(text) or text[pos + 1].isspace()):
            pos += 1
            continue
        m = _TERM.match(text, pos)
        if m is None:
            raise SearchError(f"the demo's Datadog cannot parse the span query at {text[pos : pos + 40]!r}")
        key, raw = m.group(2), m.group(3)
        if not key.startswith("@") and key not in _KEYS:
            raise SearchError(f"the demo's Datadog does not search spans by {key!r}")
        if raw.startswith("("):
            values = tuple(_unquote(v.strip()) for v in re.split(r"\s+OR\s+", raw[1:-1].strip()))
            if not all(values):
                raise SearchError(f"the demo's Datadog cannot parse {raw[:40]!r} (a list of values joined by OR)")
        else:
            values = (_unquote(raw),)
        terms.append(_Term(m.group(1) == "-", key, values))
        pos = m.end()
    return tuple(terms)


def _matches(span: StoredSpan, terms: Sequence[_Term]) -> bool:
    for term in terms:
        value = span.value(term.key)
        hit = value is not None and value in term.values
        if hit == term.negated:
            return False
    return True


def _iso_ms(seconds: float) -> str:
    """Unix s as Datadog's ISO 8601 with millisecond resolution (truncated), UTC, trailing zeros of the fraction
    left out as Datadog's recorded answers do (``10:48:51.12Z``, ``10:48:51Z``)."""
    ms = math.floor(seconds * 1000.0 + 1e-6)
    instant = datetime.fromtimestamp(ms // 1000, tz=UTC)
    fraction = f"{ms % 1000:03d}".rstrip("0")
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _nested(meta: Mapping[str, str]) -> dict[str, Any]:
    """Meta as Datadog's answers carry it in ``custom``: nested by its dots (``db.system`` -> ``{"db": {"system":
    ...}}``); a key that is both a value and a prefix of others keeps its dotted spelling."""
    out: dict[str, Any] = {}
    for key, value in sorted(meta.items(), key=lambda kv: kv[0].count(".")):
        *path, leaf = key.split(".")
        node = out
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node = {}
                break
            node = child
        else:
            if leaf not in node:
                node[leaf] = value
                continue
        out[key] = value
    return out


def wire_span(span: StoredSpan) -> dict[str, Any]:
    """One span as the Spans API answers it (see the module docstring)."""
    duration_ns = round(span.duration_ms * 1_000_000)
    tags = [f"env:{span.env}", f"service:{span.service}", "source:apm"]  # host tags: the span's meta is in custom
    resource_hash = hashlib.sha256(span.resource.encode()).hexdigest()[:16]
    return {
        "id": base64.urlsafe_b64encode(hashlib.sha256(f"{span.trace_id}/{span.span_id}".encode()).digest()[:18])
        .decode()
        .rstrip("="),
        "type": "spans",
        "attributes": {
            "custom": {**_nested(span.meta), "duration": duration_ns, "env": span.env, "service": span.service},
            "end_timestamp": _iso_ms(span.start_s + span.duration_ms / 1000.0),
            "env": span.env,
            "host": "parity-demo",
            "ingestion_reason": "auto",
            "operation_name": span.name,
            "parent_id": span.parent_id,
            "resource_hash": resource_hash,
            "resource_name": span.resource,
            "retained_by": "retention_filter",
            "service": span.service,
            "single_span": False,
            "span_id": span.span_id,
            "start_timestamp": _iso_ms(span.start_s),
            "status": "error" if span.error else "ok",
            "tags": tags,
            "trace_id": span.trace_id,
            "type": span.type or "custom",
        },
    }


def _cursor_key(query: str, lo_ms: float, hi_ms: float, sort: str) -> str:
    return hashlib.sha256(json.dumps([query, lo_ms, hi_ms, sort]).encode()).hexdigest()[:12]


class TraceStore:
    """The spans received by the trace intake and the search over them (thread-safe)."""

    def __init__(self, horizon_s: float, *, limit: int = SPANS_RATE_LIMIT, clock: Any = time.time) -> None:
        self.horizon_s = float(horizon_s)
        #: Search requests allowed per :data:`SPANS_RATE_PERIOD_S` before 429 (tests may lower it).
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._spans: deque[StoredSpan] = deque(maxlen=MAX_TRACE_SPANS)
        self._newest_s = -math.inf
        self._period_start = clock()
        self._used = 0

    def add(self, spans: Sequence[StoredSpan]) -> int:
        """Store a parsed batch; returns how many spans."""
        with self._lock:
            for span in spans:
                self._spans.append(span)
                self._newest_s = max(self._newest_s, span.start_s)
            cutoff = self._newest_s - self.horizon_s
            while self._spans and self._spans[0].start_s < cutoff:  # arrival order is about time order: the
                self._spans.popleft()  # oldest are at the left (a late straggler waits for MAX_TRACE_SPANS)
        return len(spans)

    def __len__(self) -> int:
        with self._lock:
            return len(self._spans)

    def rate(self) -> tuple[bool, dict[str, str]]:
        """Count one search request: (allowed, the ``X-RateLimit-*`` headers of its answer)."""
        now = self._clock()
        with self._lock:
            if now - self._period_start >= SPANS_RATE_PERIOD_S:
                self._period_start, self._used = now, 0
            self._used += 1
            allowed = self._used <= self.limit
            reset = max(1, math.ceil(SPANS_RATE_PERIOD_S - (now - self._period_start)))
            remaining = max(self.limit - self._used, 0)
        return allowed, {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Period": str(SPANS_RATE_PERIOD_S),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Name": "spans_search",
        }

    def search(self, body: Any, base_url: str) -> tuple[int, Any]:
        """``POST /api/v2/spans/events/search``: (status, answer JSON)."""
        started = time.monotonic()
        try:
            attributes = body["data"]["attributes"]
            if not isinstance(attributes, dict):
                raise TypeError("data.attributes")
            flt = attributes.get("filter") or {}
            page = attributes.get("page") or {}
            sort = attributes.get("sort", "timestamp")
            query = flt.get("query", "*")
        except (KeyError, TypeError, AttributeError):
            return 400, {"errors": ["malformed search request: data.attributes is required"]}
        try:
            now_s = time.time()
            lo_ms = _instant_ms(flt.get("from", "now-15m"), now_s, "from")
            hi_ms = _instant_ms(flt.get("to", "now"), now_s, "to")
            if hi_ms <= lo_ms:
                raise SearchError("filter.to must be after filter.from")
            if sort not in ("timestamp", "-timestamp"):
                raise SearchError(f"sort {sort!r}: expected timestamp or -timestamp")
            limit = page.get("limit", DEFAULT_PAGE_LIMIT)
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_LIMIT:
                raise SearchError(f"page.limit must be between 1 and {MAX_PAGE_LIMIT}")
            terms = parse_query(query)
            key = _cursor_key(str(query), lo_ms, hi_ms, sort)
            offset = self._offset(page.get("cursor"), key)
        except SearchError as exc:
            return 400, {"errors": [str(exc)]}
        with self._lock:
            hits = [s for s in self._spans if lo_ms <= s.start_s * 1000.0 < hi_ms and _matches(s, terms)]
        hits.sort(key=lambda s: (s.start_s, s.span_id), reverse=sort == "-timestamp")
        chunk = hits[offset : offset + limit]
        if not chunk:
            return 200, {"data": []}
        after = base64.b64encode(json.dumps({"k": key, "o": offset + len(chunk)}).encode()).decode()
        elapsed = max(1, round((time.monotonic() - started) * 1000))
        answer = {
            "data": [wire_span(s) for s in chunk],
            "meta": {
                "elapsed": elapsed,
                "request_id": hashlib.sha256(f"{key}/{offset}".encode()).hexdigest()[:24],
                "status": "done",
                "page": {"after": after},
            },
            "links": {"next": f"{base_url}/api/v2/spans/events?page%5Bcursor%5D={after}"},
        }
        return 200, answer

    @staticmethod
    def _offset(cursor: Any, key: str) -> int:
        if cursor is None:
            return 0
        try:
            state = json.loads(base64.b64decode(str(cursor), validate=True))
            if state["k"] != key or not isinstance(state["o"], int) or state["o"] < 0:
                raise ValueError
            return int(state["o"])
        except (ValueError, KeyError, TypeError):
            raise SearchError("page.cursor: not a cursor of this query") from None


def post_traces(intake_url: str, *, env: str, spans: Sequence[Mapping[str, Any]], timeout_s: float = 2.0) -> int:
    """POST one batch of whole-trace spans (objects as in the module docstring) to a
    :class:`parity.demo.apm.DemoDatadog` trace intake (its :attr:`~parity.demo.apm.DemoDatadog.traces_url`);
    returns how many it accepted. OSError, or ValueError for a refused batch."""
    data = json.dumps({"env": env, "spans": list(spans)}).encode()
    request = urllib.request.Request(intake_url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise ValueError(f"the trace intake refused the batch (HTTP {exc.code})") from None
    return int(answer.get("accepted", 0))

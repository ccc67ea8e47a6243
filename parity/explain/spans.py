"""The span model that ``parity explain`` reads: one APM span of one trace, as Datadog's Spans API returns it.

A source (e.g. ``parity.explain.datadog_spans``) converts what it reads into :class:`Span` at the edge:
nanoseconds become milliseconds (``Span.from_ns`` does it), Datadog's root marker ``parent_id == "0"`` (or an
empty / missing parent) becomes ``None``. Ids are strings (Datadog's 128-bit trace ids do not fit an int64 and
JSON numbers lose them); compare them as given, the source normalises their spelling (decimal or hex, one per
source).

Times: ``start_ms`` is a Unix epoch in ms (float: about 0.2 µs resolution at today's epoch, finer than any span
duration that matters here), ``duration_ms`` a non-negative duration in ms. Missing data is never invented:
a span without a duration is not a span (the source drops it and says so), and a missing ``type`` is ``""``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["NS_PER_MS", "Span"]

NS_PER_MS = 1_000_000
"""Nanoseconds per millisecond (Datadog's ``start``/``duration`` are in ns)."""

_ROOT_PARENTS = frozenset({"", "0"})


@dataclass(frozen=True)
class Span:
    """One span of one trace.

    Attributes:
        trace_id: the trace's id (string, as the source spells it).
        span_id: this span's id (string, unique within its trace).
        parent_id: the parent span's id, or ``None`` for a root span (Datadog's ``"0"`` is mapped to ``None``
            by :meth:`from_ns`; a parent id that is not in the fetched trace is a *missing parent*, counted by
            the breakdown, never guessed).
        service: the service that emitted the span (e.g. ``web``, ``web-postgres``).
        type: Datadog's span type (``web``, ``db``, ``sql``, ``cache``, ``redis``, ``http``, ``dns``,
            ``worker``, ``queue``, ``template``, ``custom``...), ``""`` when the span has none.
        name: the operation name (``rack.request``, ``postgres.query``, ``redis.command``, ``http.request``).
        resource: the resource (``UsersController#show``, the SQL text, ``GET /users/{id}``...).
        start_ms: start instant, Unix epoch in ms.
        duration_ms: duration in ms (>= 0).
        error: whether the span was flagged as an error.
        tags: extra string tags the classification may use (e.g. ``("db.system", "postgresql")``,
            ``("peer.service", "billing")``, ``("span.kind", "client")``), as sorted ``(key, value)`` pairs;
            empty when the source has none.
        start_resolution_ms: how precisely ``start_ms`` is known: the true start lies in ``[start_ms, start_ms +
            start_resolution_ms]`` (Datadog's Spans API gives starts truncated to the ms: 1.0; 0.0: exact). The
            breakdown places back-to-back children within it instead of overlapping them.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    type: str
    name: str
    resource: str
    start_ms: float
    duration_ms: float
    error: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    start_resolution_ms: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.start_ms):
            raise ValueError(f"span {self.span_id}: start_ms is not finite ({self.start_ms!r})")
        if not math.isfinite(self.duration_ms) or self.duration_ms < 0:
            raise ValueError(f"span {self.span_id}: duration_ms must be finite and >= 0 ({self.duration_ms!r})")
        if not math.isfinite(self.start_resolution_ms) or self.start_resolution_ms < 0:
            raise ValueError(f"span {self.span_id}: start_resolution_ms must be finite and >= 0")
        if not self.trace_id or not self.span_id:
            raise ValueError("span: trace_id and span_id must be non-empty")

    @property
    def end_ms(self) -> float:
        """End instant, Unix epoch in ms."""
        return self.start_ms + self.duration_ms

    @property
    def is_root(self) -> bool:
        """True when the span declares no parent."""
        return self.parent_id is None

    def tag(self, key: str) -> str | None:
        """The value of tag ``key``, or None when the span has no such tag."""
        for k, v in self.tags:
            if k == key:
                return v
        return None

    @classmethod
    def from_ns(
        cls,
        *,
        trace_id: str | int,
        span_id: str | int,
        parent_id: str | int | None,
        service: str,
        type: str | None,
        name: str,
        resource: str,
        start_ns: int,
        duration_ns: int,
        error: bool | int = False,
        tags: dict[str, str] | None = None,
    ) -> Span:
        """Build a span from Datadog's units: ``start_ns`` (Unix epoch, ns) and ``duration_ns`` (ns) become ms;
        a parent id of ``0``/``"0"``/``""``/None becomes ``None`` (root); ids become strings; a missing
        ``type`` becomes ``""``; ``tags`` become sorted pairs. Raises ValueError on a negative duration."""
        parent = None if parent_id is None or str(parent_id) in _ROOT_PARENTS else str(parent_id)
        return cls(
            trace_id=str(trace_id),
            span_id=str(span_id),
            parent_id=parent,
            service=service,
            type=type or "",
            name=name,
            resource=resource,
            start_ms=start_ns / NS_PER_MS,
            duration_ms=duration_ns / NS_PER_MS,
            error=bool(error),
            tags=tuple(sorted((tags or {}).items())),
        )

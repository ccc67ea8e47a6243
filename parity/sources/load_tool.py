"""What the k6 and JMeter readers share: endpoint names from a tool's request names, and per-request columns
→ a request-level Measurement.

Endpoint identity across tools: a request name that is a URL (``http://host/api/users/42?x=1``, k6's default
``name`` tag) or a path (``/api/users/42``) becomes a route template guessed like the access-log readers do
(:func:`parity.sources.routes.template_path`: query dropped, ids replaced by ``{id}``); a ``METHOD target``
label (JMeter's common ``GET /api/users/42``) gives its method too; any other name (``login``, ``HTTP
Request``) is kept as it is. So a k6 run and a JMeter run of the same requests name the same endpoints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source
from parity.sources.aggregate import RequestAggregator, RequestChunk
from parity.sources.routes import template_path

__all__ = [
    "MAX_SPAN_S",
    "WINDOW_TAIL_S",
    "Endpoints",
    "FoldedRequests",
    "LinedChunk",
    "RequestChunk",
    "endpoint_codes",
    "fold_requests",
    "route_of",
    "split_label",
]

#: Longest span of request times accepted, s: a result file covers one run (mixed-up files would make a huge
#: timeline).
MAX_SPAN_S = 31 * 86400.0
#: Added to the end of the last request to close the window (s), so a one-request file has a non-empty window.
WINDOW_TAIL_S = 0.001

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*(?P<path>[^?#]*)")
#: k6's ``http.url`` template literal names a request ``http://host/posts/${}``: each ``${}`` is a value.
_K6_TEMPLATE_VALUE = re.compile(r"\$\{\}")


def route_of(name: str) -> str:
    """The route for a request name: a URL's path or a path, templated (ids → ``{id}``, query dropped); any
    other name (free text) unchanged. k6 ``${}`` template values become ``{id}``, ``{id2}``…"""
    name = name.strip()
    found = _URL.match(name)
    if found is not None:
        path = found.group("path") or "/"
    elif name.startswith("/"):
        path = name
    else:
        return name
    counter = iter(range(1, 1_000_000))
    path = _K6_TEMPLATE_VALUE.sub(lambda _m: "{id}" if (n := next(counter)) == 1 else f"{{id{n}}}", path)
    if "{id" in path:  # already a template: keep it, only drop the query
        return path
    return template_path(path)


def split_label(label: str) -> tuple[str, str]:
    """(method, route) of a sample label: ``"GET /api/users/42"`` → (GET, /api/users/{id}); a label without
    a method prefix → ("", route_of(label))."""
    method, sep, rest = label.strip().partition(" ")
    if sep and method.upper() in _METHODS and rest.strip():
        return method.upper(), route_of(rest)
    return "", route_of(label)


@dataclass(frozen=True)
class LinedChunk:
    """A :class:`RequestChunk` and the file line of each of its requests (for messages)."""

    requests: RequestChunk
    lines: npt.NDArray[np.int64]


class Endpoints:
    """Endpoint keys of request rows, worked out once per distinct name (not per row) and kept across chunks.

    ``key_of(text)`` gives the (method, route) of one distinct name (``split_label`` or ``route_of`` with a
    method); :meth:`codes` turns a chunk's dictionary-encoded columns into a RequestChunk's keys and indices."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[str, str]] = {}

    def key(self, method: str, name: str, key_of: Callable[[str, str], tuple[str, str]]) -> tuple[str, str]:
        """The (method, route) of a distinct (method, name), computed on first sight."""
        found = self._cache.get((method, name))
        if found is None:
            found = self._cache[(method, name)] = key_of(method, name)
        return found


def endpoint_codes(
    methods: Sequence[str],
    method_index: npt.NDArray[np.int64],
    names: Sequence[str],
    name_index: npt.NDArray[np.int64],
    key_of: Callable[[str, str], tuple[str, str]],
    cache: Endpoints,
) -> tuple[tuple[tuple[str, str], ...], npt.NDArray[np.int64]]:
    """(keys, endpoint index per row) for rows whose method is ``methods[method_index[i]]`` and name
    ``names[name_index[i]]`` (distinct values, e.g. from a dictionary encoding): ``key_of`` is called once per
    distinct pair ever seen, never per row."""
    pair = method_index * max(len(names), 1) + name_index
    distinct, inverse = np.unique(pair, return_inverse=True)
    by_key: dict[tuple[str, str], int] = {}
    slot = np.empty(len(distinct), dtype=np.int64)
    width = max(len(names), 1)
    for i, code in enumerate(distinct.tolist()):
        key = cache.key(methods[code // width], names[code % width], key_of)
        slot[i] = by_key.setdefault(key, len(by_key))
    return tuple(by_key), slot[inverse.reshape(-1)].astype(np.int64)


@dataclass
class FoldedRequests:
    """Requests folded from chunks: their sketches and timelines, and the window (Unix s) they span."""

    aggregator: RequestAggregator
    start_s: float
    end_s: float

    def measurement(self, *, source: Source, labels: dict[str, str] | None = None) -> Measurement:
        """The request-level, client-side (service time) Measurement of the folded requests (timeline interval
        chosen from the window, as ``parity.replay.recorder.timeline_interval`` does)."""
        return self.aggregator.to_measurement(
            source=source,
            start=datetime.fromtimestamp(self.start_s, UTC),
            end=datetime.fromtimestamp(self.end_s, UTC),
            latency_kind=LatencyKind.SERVICE_TIME,
            labels=labels,
        )


def fold_requests(path: Path, chunks: Iterable[LinedChunk]) -> FoldedRequests:
    """Fold chunks of requests (Unix send times in s, latencies in ms with NaN = no response: the request
    counts, as the reader decided for errors, without a latency) as they come: memory bounded by a chunk, not
    by the file. The window runs from the first send to the end of the last request (+ ``WINDOW_TAIL_S``).
    Raises BadInput when there are no requests or they span more than ``MAX_SPAN_S`` (naming the lines of the
    first and the last send)."""
    aggregator = RequestAggregator()
    start = last_sent = end = math.nan
    start_line = last_line = 0
    count = 0
    for chunk in chunks:
        req = chunk.requests
        if not len(req.sent_s):
            continue
        count += len(req.sent_s)
        first, last = int(np.argmin(req.sent_s)), int(np.argmax(req.sent_s))
        if not float(req.sent_s[first]) >= start:  # NaN start: the first chunk
            start, start_line = float(req.sent_s[first]), int(chunk.lines[first])
        if not float(req.sent_s[last]) <= last_sent:
            last_sent, last_line = float(req.sent_s[last]), int(chunk.lines[last])
        ends = float((req.sent_s + np.nan_to_num(req.latency_ms, nan=0.0) / 1000.0).max())
        end = ends if not end >= ends else end
        if last_sent - start <= MAX_SPAN_S:  # past it the file is refused below: fold no more
            aggregator.add(req)
    if not count:
        raise BadInput(f"{path}: no requests in the file")
    if last_sent - start > MAX_SPAN_S:
        raise BadInput(
            f"{path}: request times span {(last_sent - start) / 86400:.0f} days (lines {start_line} and "
            f"{last_line}); a result file covers one run of at most {MAX_SPAN_S / 86400:.0f} days"
        )
    return FoldedRequests(aggregator, start, end + WINDOW_TAIL_S)

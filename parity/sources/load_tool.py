"""What the k6 and JMeter readers share: endpoint names from a tool's request names, and per-request columns
→ a request-level Measurement.

Endpoint identity across tools: a request name that is a URL (``http://host/api/users/42?x=1``, k6's default
``name`` tag) or a path (``/api/users/42``) becomes a route template guessed like the access-log readers do
(:func:`parity.sources.routes.template_path`: query dropped, ids replaced by ``{id}``); a ``METHOD target``
label (JMeter's common ``GET /api/users/42``) gives its method too; any other name (``login``, ``HTTP
Request``) is kept as it is. So a k6 run and a JMeter run of the same requests name the same endpoints.

The readers work this out column-wise, once per distinct name of a chunk (:func:`routes_of`, :func:`split_labels`:
pyarrow, no Python per name except for rare names such as k6 ``${}`` templates), with results equal to
:func:`route_of` / :func:`split_label` of each name; k6 names requests by URL, so a run has about one distinct name
per request id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source
from parity.sources.aggregate import RequestAggregator, RequestChunk
from parity.sources.routes import template_path

__all__ = [
    "MAX_SPAN_S",
    "WINDOW_TAIL_S",
    "FoldedRequests",
    "LinedChunk",
    "RequestChunk",
    "endpoint_codes",
    "fold_requests",
    "route_of",
    "routes_of",
    "split_label",
    "split_labels",
]

#: Longest span of request times accepted, s: a result file covers one run (mixed-up files would make a huge
#: timeline).
MAX_SPAN_S = 31 * 86400.0
#: Added to the end of the last request to close the window (s), so a one-request file has a non-empty window.
WINDOW_TAIL_S = 0.001

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*(?P<path>[^?#]*)")
_URL_START = r"^[A-Za-z][A-Za-z0-9+.-]*://"  # of _URL (RE2)
#: What ``str.strip()`` strips (the characters whose ``isspace()`` is true; tests check the list).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: ``label.strip().partition(" ")`` of a label that has a space: (method, rest).
_LABEL_PARTS = r"(?s)^(?P<method>[^ ]*) (?P<rest>.*)$"

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


def routes_of(names: Any) -> Any:
    """:func:`route_of` of each name of a pyarrow string array without nulls (e.g. a chunk's distinct names),
    column-wise: the same routes, as a pyarrow string array. Names with a k6 ``${}`` template value go through
    :func:`route_of` itself (one Python call each: a script's template literal is one name for many requests)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from parity.sources.path_columns import encode_column, template_column

    names = names.cast(pa.string())
    trimmed = pc.utf8_trim(names, characters=PY_WHITESPACE)
    is_url = pc.match_substring_regex(trimmed, _URL_START)
    # _URL's path: a URL without its scheme and host (a DFA: cheaper than capturing), cut at "?" and "#"
    url_path = _before_query(pc.replace_substring_regex(trimmed, _URL_START + "[^/?#]*", ""))
    url_path = pc.if_else(pc.equal(url_path, ""), "/", url_path)
    templated = pc.or_(is_url, pc.starts_with(trimmed, "/"))
    path = pc.if_else(is_url, url_path, trimmed)
    k6_values = pc.and_(templated, pc.match_substring(path, "${}"))
    already = pc.and_(pc.and_not(templated, k6_values), pc.match_substring(path, "{id"))
    todo = pc.and_not(pc.and_not(templated, k6_values), already)
    routes = pc.if_else(already, path, trimmed)
    if pc.any(todo).as_py():
        cut = _before_query(path.filter(todo))
        routes = pc.replace_with_mask(routes, todo, template_column(encode_column(cut)).route)
    if pc.any(k6_values).as_py():
        exact = [route_of(name) for name in names.filter(k6_values).to_pylist()]
        routes = pc.replace_with_mask(routes, k6_values, pa.array(exact, pa.string()))
    return routes


def _before_query(paths: Any) -> Any:
    """Each path of a pyarrow string array before its first "?" or "#" (``path.split("?", 1)[0].split("#", 1)[0]``,
    what :func:`template_path_values` keeps of a path and ``_URL`` captures)."""
    import pyarrow.compute as pc

    paths = pc.list_element(pc.split_pattern(paths, "?", max_splits=1), 0)
    if pc.any(pc.match_substring(paths, "#")).as_py():
        paths = pc.list_element(pc.split_pattern(paths, "#", max_splits=1), 0)
    return paths


def split_labels(labels: Any) -> tuple[Any, Any]:
    """(methods, routes): :func:`split_label` of each label of a pyarrow string array without nulls, column-wise
    (pyarrow string arrays). A label whose first word is not ASCII goes through :func:`split_label` itself
    (``str.upper`` maps some letters to ASCII: ``"poſt"`` is POST)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = labels.cast(pa.string())
    parts = pc.extract_regex(pc.utf8_trim(labels, characters=PY_WHITESPACE), _LABEL_PARTS)  # null: no space
    first, rest = pc.struct_field(parts, "method"), pc.struct_field(parts, "rest")
    upper = pc.utf8_upper(first)
    named = pc.fill_null(
        pc.and_(
            pc.is_in(upper, value_set=pa.array(sorted(_METHODS))),
            pc.greater(pc.utf8_length(pc.utf8_trim(rest, characters=PY_WHITESPACE)), 0),
        ),
        False,
    )
    methods = pc.if_else(named, upper, "")
    routes = routes_of(pc.if_else(named, rest, labels))
    odd = pc.fill_null(pc.invert(pc.string_is_ascii(first)), False)
    if pc.any(odd).as_py():
        exact = [split_label(label) for label in labels.filter(odd).to_pylist()]
        methods = pc.replace_with_mask(methods, odd, pa.array([m for m, _ in exact], pa.string()))
        routes = pc.replace_with_mask(routes, odd, pa.array([r for _, r in exact], pa.string()))
    return methods, routes


@dataclass(frozen=True)
class LinedChunk:
    """A :class:`RequestChunk` and the file line of each of its requests (for messages)."""

    requests: RequestChunk
    lines: npt.NDArray[np.int64]


def endpoint_codes(
    methods: Sequence[str],
    method_index: npt.NDArray[np.int64],
    names: Any,
    name_index: npt.NDArray[np.int64],
    *,
    labels: bool,
) -> tuple[tuple[tuple[str, str], ...], npt.NDArray[np.int64]]:
    """(keys, endpoint index per row) for rows whose method is ``methods[method_index[i]]`` and name
    ``names[name_index[i]]`` (distinct values, e.g. a dictionary encoding's; ``names`` a pyarrow string array
    without nulls). The key of a row is (its method, :func:`route_of` its name), or with ``labels`` the
    :func:`split_label` of its name (the method column is then not used). Worked out column-wise once per
    distinct name of the chunk, never per row; keys in the order of the first of their (method, name) pairs
    in sorted pair order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    width = max(len(names), 1)
    pair = method_index * width + name_index
    distinct, inverse = np.unique(pair, return_inverse=True)
    take = pa.array(distinct % width)
    if labels:
        name_methods, routes = split_labels(names)
        pair_methods = name_methods.take(take)
    else:
        routes = routes_of(names)
        pair_methods = pa.array(list(methods), pa.string()).take(pa.array(distinct // width))
    method_codes = pc.dictionary_encode(pair_methods)
    route_codes = pc.dictionary_encode(routes.take(take))
    span = max(len(route_codes.dictionary), 1)
    combined = method_codes.indices.to_numpy(zero_copy_only=False).astype(
        np.int64
    ) * span + route_codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    unique, first, back = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique), dtype=np.int64)
    method_names = method_codes.dictionary.to_pylist()
    route_names = route_codes.dictionary.to_pylist()
    keys = tuple((method_names[c // span], route_names[c % span]) for c in unique[order].tolist())
    slot = rank[back.reshape(-1)]
    return keys, slot[inverse.reshape(-1)].astype(np.int64)


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
    Raises BadInput when there are no requests, when they span more than ``MAX_SPAN_S`` (naming the lines of the
    first and the last send) or name more distinct endpoints than ``parity.sources.aggregate.MAX_ENDPOINTS``."""
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
            try:
                aggregator.add(req)
            except ValueError as exc:  # too many distinct endpoints (times and latencies are checked before)
                raise BadInput(f"{path}: {exc}") from None
    if not count:
        raise BadInput(f"{path}: no requests in the file")
    if last_sent - start > MAX_SPAN_S:
        raise BadInput(
            f"{path}: request times span {(last_sent - start) / 86400:.0f} days (lines {start_line} and "
            f"{last_line}); a result file covers one run of at most {MAX_SPAN_S / 86400:.0f} days"
        )
    return FoldedRequests(aggregator, start, end + WINDOW_TAIL_S)

"""What the k6 and JMeter readers share: endpoint names from a tool's request names, and per-request columns
→ a request-level Measurement.

Endpoint identity across tools: a request name that is a URL (``http://host/api/users/42?x=1``, k6's default
``name`` tag) or a path (``/api/users/42``) becomes a route template guessed like the access-log readers do
(:func:`parity.sources.routes.template_path`: query dropped, ids replaced by ``{id}``); a ``METHOD target``
label (JMeter's common ``GET /api/users/42``) gives its method too; any other name (``login``, ``HTTP
Request``) is kept as it is. So a k6 run and a JMeter run of the same requests name the same endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source
from parity.replay.recorder import Recorder, timeline_interval
from parity.sources.routes import template_path

__all__ = ["MAX_SPAN_S", "WINDOW_TAIL_S", "request_measurement", "route_of", "split_label"]

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


def request_measurement(
    path: Path,
    *,
    source: Source,
    methods: Iterable[str],
    routes: Iterable[str],
    sent_s: npt.NDArray[np.float64],
    latency_ms: npt.NDArray[np.float64],
    errors: npt.NDArray[np.bool_],
    lines: npt.NDArray[np.int64],
    labels: dict[str, str] | None = None,
) -> Measurement:
    """A request-level, client-side (service time) Measurement from per-request columns: Unix send times in s,
    latencies in ms (NaN = no response: the request counts, as an error, without a latency), error flags, and
    the file line of each request (for messages). The window runs from the first send to the end of the last
    request. Raises BadInput when the requests span more than ``MAX_SPAN_S``."""
    if len(sent_s) == 0:
        raise BadInput(f"{path}: no requests in the file")
    first, last = int(np.argmin(sent_s)), int(np.argmax(sent_s))
    start, last_sent = float(sent_s[first]), float(sent_s[last])
    if last_sent - start > MAX_SPAN_S:
        raise BadInput(
            f"{path}: request times span {(last_sent - start) / 86400:.0f} days (lines {lines[first]} and "
            f"{lines[last]}); a result file covers one run of at most {MAX_SPAN_S / 86400:.0f} days"
        )
    ends = sent_s + np.nan_to_num(latency_ms, nan=0.0) / 1000.0
    end = float(ends.max()) + WINDOW_TAIL_S
    recorder = Recorder(timeline_interval(end - start))
    answered = ~np.isnan(latency_ms)
    columns = zip(
        methods, routes, sent_s.tolist(), latency_ms.tolist(), answered.tolist(), errors.tolist(), strict=True
    )
    for method, route, t, ms, got, err in columns:
        recorder.record(method, route, t, ms if got else None, err)
    return recorder.to_measurement(
        source=source,
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        latency_kind=LatencyKind.SERVICE_TIME,
        labels=labels,
    )

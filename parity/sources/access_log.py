"""Source: HTTP access logs (AWS ALB, nginx) → a baseline Measurement with request templates.

One log line is one request. Its endpoint is method + route template: the route map's template when
one is given and matches, else a template guessed from the path (:func:`parity.sources.routes.template_path`).
Requests are folded into a :class:`parity.sources.aggregate.RequestAggregator` (per-endpoint DDSketch of latency
in ms, per-interval timeline; the same Measurement as the Recorder fed row by row), and every endpoint gets a
:class:`RequestTemplate` whose parameter pools hold the placeholder values seen in the log, so the baseline
replays without ``--params``.

Formats (``fmt``):

``alb``
    AWS Application Load Balancer access logs (space separated, quoted fields; fields AWS appended after
    the ones we read are ignored). Time: the ``time`` field (when the ALB sent the response), ISO 8601
    UTC. Latency: ``target_processing_time`` (s → ms). **Only forwarded requests count**: a line whose
    ``actions_executed`` lacks ``forward`` was answered by the load balancer itself and is skipped under its
    last action (``redirect``, ``fixed-response``, ``authenticate``, ``waf``, ``waf-failed``; ``-`` — no
    action, a malformed request — is ``not forwarded``), whatever its status codes and processing times
    (AWS's own HTTP/2 example logs a ``redirect`` with a target, times and status 200); WebSocket
    (``ws``/``wss``) connections are skipped (``websocket``). A line without ``actions_executed`` (logs from
    before the field existed) counts. Of the forwarded requests, a ``-1`` in any of the three processing
    times means the request was not dispatched, or the target or client closed the connection: an error
    with no latency. Error: not dispatched, ``target_status_code`` ``-`` (the target sent no response, e.g.
    a failed Lambda: AWS records it "only if a connection was established to the target and the target sent
    a response"), ``elb_status_code`` ≥ 500, or ``target_status_code`` ≥ 500.
``nginx``
    ``combined`` (``$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    "$http_referer" "$http_user_agent"``) followed by extra fields. Latency: the extra field number
    ``timing_field`` (0-based; negative counts from the end; default -1 = last), in seconds such as
    ``$request_time`` or ``$upstream_response_time``; ``name=value`` and ``name="value"`` fields are read as
    their value (so NGINX's documented ``upstream_time`` format, ``rt=$request_time uct="…" uht="…"
    urt="…"``, reads ``urt`` by default and ``rt`` with ``timing_field=0``); several upstream times
    (``0.010, 0.020 : 0.030``) are summed (see :func:`_nginx_latency`); ``-`` or a missing field means the
    latency is unknown (the request is counted, without latency). Time: ``$time_local`` with its offset (or
    ISO 8601), converted to UTC. Error: status ≥ 500, or 499 (nginx: the client closed the connection
    before the response) — no response was delivered, which is what the replay counts as an error (a
    request without response), and a 499 has no latency either (its time is when the client gave up, a
    lower bound). nginx's ``\\xHH`` escapes in the request line are read as the bytes they stand for
    (percent-encoded in paths).
``nginx`` with ``log_format``
    Lines written by a given ``log_format`` (:mod:`parity.sources.nginx_format` compiles it to one regex;
    a line that does not match it is malformed). Time: ``$msec``, ``$time_iso8601`` or ``$time_local`` (the
    first present). Request: ``$request``, or ``$request_method`` with ``$request_uri`` (or ``$uri`` and
    ``$args``; ``$uri`` is nginx's normalised, decoded URI — prefer ``$request_uri``). Latency: the
    ``latency_field`` variable (default ``$request_time``; upstream lists summed as above; a format without
    it records requests without latency). Errors and escapes (``\\xHH``; JSON escapes with ``escape=json``)
    as above.

Skipped lines are counted per reason (the text before ``": "`` in a skip message: ``websocket``,
``redirect``, ``fixed-response``, ``authenticate``, ``waf``, ``waf-failed``, ``not forwarded``, ``no usable
request line``).

Lines that cannot be parsed (too few fields, bad time, bad number, a time outside 1970–2100, a duration
beyond ``parity.bounds.MAX_LATENCY_MS``, longer than ``MAX_LINE_CHARS``) are *malformed*: counted, the first
few kept as ``file:line: why``; more than ``max_malformed_share`` of all non-blank lines raises BadInput.
Lines that parse but carry no usable request (``- - -`` request line, see above) are *skipped* and counted.
Files are plain text or gzip (recognised by their magic bytes, not their name).

**A replay's window** (``window``, for ``parity baseline from-logs --window-of``): only the requests that
reached the server during the window are kept, timed by when they *arrived* (a replay records each request at
its send time), and the Measurement's window is the given one. Arrival per format:

- ``alb``: ``request_creation_time`` (when the ALB received the request; ``time`` is when it sent the
  response); a line without it (``-`` or too few fields) falls back to ``time``;
- ``nginx``: ``$time_local`` is when the request *ended*, to the whole second: the arrival is estimated as
  ``$time_local`` minus the latency of the timing field (``$request_time``: the whole request); without a
  latency (``-``, 499) as ``$time_local`` itself. The estimate can be up to 1 s early.

A request whose arrival lies up to ``window_slack_s`` (default ``WINDOW_SLACK_S``, 1 s) before the start or
after the end is kept too: it covers nginx's whole seconds and small clock differences between the load
generator and the server (other traffic in those seconds is counted as well). Requests further out are
counted (before / after the window) and dropped; none in the window is bad input. Outside a window, requests
are timed as before: ALB ``time``, nginx ``$time_local``.

The window runs from the first request time to just after the last one (``WINDOW_TAIL_S``). The timeline
has per-minute points up to ``MAX_TIMELINE_POINTS`` (4 days); longer windows use the smallest coarser
interval from ``TIMELINE_INTERVALS_S`` (all multiples of 60 s) that fits.

**Reading**: files are read in ``BLOCK_BYTES`` blocks (gzip as a stream). Plain lines of the built-in nginx format
and of ALB are matched by one RE2 pattern without captures and cut into fields column-wise (pyarrow); values are
read once per distinct value by the exact per-line readers, or column-wise where that was shown equal. The
distinct targets of a block are split and templated column-wise (:func:`_template_column`), so endpoints are
looked up once per distinct route (or route-map lookup), query strings parsed once per distinct string, and path
values pooled while their pools have room — in first-seen order, so pools and shapes are those of a row-by-row
read. Other lines (``--log-format``, escapes, malformed or skipped lines) take the exact per-line parser in place.

Paths: scheme, host, port and fragment are dropped; the rest is kept as the server got it
(percent-escapes are not decoded; raw non-ASCII bytes are percent-encoded). Parameter pools hold decoded
values, because the replay percent-encodes them when it fills a path (values whose bytes are not UTF-8
cannot be reproduced that way and are left out of the pool).

**Query strings** become templates (``RequestTemplate.query_shapes``): per endpoint, every *shape* seen — the
parameter names in their order, ``page={page}``, ``page={page}&per={per}``, and no query string at all — with
the number of requests that had it, so a replay sends the logged mix (the share of requests with a query string
included). At most ``MAX_QUERY_SHAPES`` shapes are kept per endpoint; requests with a further shape count
towards the endpoint's most common shape that has a query string. Each parameter gets a pool of the values seen
(decoded as a form decoder does: ``+`` is a space; at most ``pool_limit`` distinct, the first seen; the replay
encodes them again, so the server decodes the same text). Left out of the pools, and counted in the
Measurement's ``query_values_dropped`` label by reason: values of parameters named like secrets
(``SECRET_NAME_WORDS``: ``token``, ``signature``, ``key``, ``password``...), values that look like secrets
(JWTs, long hex or base64-like strings, see :func:`private_value`), e-mail addresses, and values that are not
UTF-8. A parameter left with no value at all stays in its shapes with its placeholder: the replay plan reports it
as unfillable and sends ``parity.replay.plan.UNFILLABLE_VALUE`` in its place. A bare name (``?debug``) is kept
bare. A query parameter whose name is also a path placeholder's gets the placeholder ``{name_q}``.
"""

from __future__ import annotations

import calendar
import gzip
import io
import itertools
import json
import math
import multiprocessing
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, unquote_plus

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput, reading
from parity.model import (
    EndpointStats,
    LatencyKind,
    Measurement,
    QueryShape,
    RequestTemplate,
    Source,
    SourceKind,
    Window,
)
from parity.sources.aggregate import RequestAggregator, RequestChunk
from parity.sources.nginx_format import LogFormat, compile_log_format
from parity.sources.path_columns import PathTemplate as _Template
from parity.sources.path_columns import encode_column as _encode_column
from parity.sources.path_columns import template_column
from parity.sources.routes import (
    ID_PLACEHOLDER,
    RouteMap,
    _looks_like_id,
    encode_path,
    template_path_values,
)

__all__ = [
    "DEFAULT_MAX_MALFORMED_SHARE",
    "DEFAULT_POOL_LIMIT",
    "FORMATS",
    "MAX_QUERY_SHAPES",
    "SECRET_NAME_WORDS",
    "WINDOW_SLACK_S",
    "AccessLogResult",
    "private_value",
    "query_text",
    "read_access_logs",
    "timeline_interval_for",
]

#: Log formats :func:`read_access_logs` reads.
FORMATS = ("alb", "nginx")
#: Share of malformed lines (of all non-blank lines) tolerated before the logs are refused.
DEFAULT_MAX_MALFORMED_SHARE = 0.01
#: Distinct values kept per placeholder for replay (the first seen).
DEFAULT_POOL_LIMIT = 500
#: Examples of malformed / skipped lines / unmatched endpoints kept for the user.
MAX_EXAMPLES = 5
#: Added to the last request time to close the window (s), so a one-request log has a non-empty window.
WINDOW_TAIL_S = 0.001
#: Timeline intervals (s), all multiples of 60: the smallest keeping at most MAX_TIMELINE_POINTS points.
TIMELINE_INTERVALS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
#: 4 days of per-minute points.
MAX_TIMELINE_POINTS = 5760
#: After this many lines, refuse early if every one was malformed (wrong ``fmt`` or file), unless
#: ``max_malformed_share`` is 1.
EARLY_REFUSAL_LINES = 1000
#: Seconds before a given window's start and after its end within which a request still counts as in the
#: window (nginx's whole-second times, clock differences between the load generator and the server).
WINDOW_SLACK_S = 1.0
#: nginx status for "client closed the connection before the response".
NGINX_CLIENT_CLOSED = 499

#: Distinct query-string shapes kept per endpoint (see the module docstring).
MAX_QUERY_SHAPES = 100
#: A query parameter whose name contains one of these (lower case) has its values left out of the pools.
SECRET_NAME_WORDS = ("token", "secret", "password", "passwd", "signature", "apikey", "api_key", "access_key",
                     "private_key", "credential", "jwt", "nonce", "verifier")  # fmt: skip
#: ... or whose name has one of these as a whole word (``key``, ``sig``, ``X-Amz-Signature``, ``otp``; not ``monkey``
#: or ``footprint``).
#: Words are runs of letters and digits, so an entry here must be one (``code_verifier`` would never match: the
#: PKCE ``code_verifier`` and OAuth 1 ``oauth_verifier`` are caught by ``verifier`` above).
SECRET_NAME_PARTS = frozenset({"key", "sig", "auth", "session", "sid", "pwd", "otp"})
#: A value of at least this many hex digits, or of base64-like characters mixing upper, lower case and digits,
#: looks like a secret (a digest, a signature, a token).
SECRET_VALUE_CHARS = 32

#: Longest line read, characters; a longer one is malformed (and read no further into memory).
MAX_LINE_CHARS = 65536

#: Bytes read at a time (cut at the last newline): the unit of the vectorised parse; memory is bounded by it.
BLOCK_BYTES = 16 * 1024 * 1024
#: Bytes asked of the file (or gzip stream) at a time while a block is read (see _read_block).
_READ_PIECE = 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
#: A line longer than this (bytes) is overlong however it decodes (at most 4 bytes a character): dropped unread.
_OVERLONG_BYTES = 4 * MAX_LINE_CHARS + 4
_MAX_SECONDS = MAX_LATENCY_MS / 1000.0
_OVERLONG = "(overlong line)"  # yielded by _lines in place of a line longer than MAX_LINE_CHARS
_ALB_NOT_DISPATCHED = -1.0
_ALB_WEBSOCKET = frozenset({"ws", "wss"})
#: ``actions_executed`` values (the last action) that name how the ALB answered without forwarding.
_ALB_OWN_ANSWERS = frozenset({"redirect", "fixed-response", "authenticate", "waf", "waf-failed"})

#: Skip reasons (the part of a skip message before ``": "``), counted in ``AccessLogResult.skipped_reasons``.
#: ALB lines whose ``actions_executed`` has no ``forward`` are skipped under their last action's name
#: (``redirect``, ``fixed-response``, ``authenticate``, ``waf``, ``waf-failed``) or SKIP_NOT_FORWARDED.
SKIP_WEBSOCKET = "websocket"
SKIP_NOT_FORWARDED = "not forwarded"
SKIP_NO_REQUEST = "no usable request line"
_FORMAT_NAMES = {"alb": "AWS ALB", "nginx": "nginx"}

# One parsed line: (Unix time s, method, target as received (path with its query string, if any), latency ms or
# None, error). The time is the log's (ALB ``time``, nginx ``$time_local``), or the request's arrival when a
# parser is asked for it.
_Request = tuple[float, str, str, float | None, bool]


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Target:
    """What the first request of a chunk to one target found: its endpoint, whether the route map missed it,
    its query shape (None: over the cap), the query values it left out of pools that had room."""

    number: int
    unmatched: bool
    shape: tuple[tuple[str, bool], ...] | None
    private: tuple[tuple[tuple[int, str], str], ...]


class _Malformed(Exception):
    """A line that cannot be parsed; the message says why."""


@dataclass(frozen=True)
class AccessLogResult:
    """A Measurement read from access logs, with what was left out and why.

    ``lines``: non-blank lines read. ``malformed``: lines that could not be parsed (``malformed_examples``:
    the first few as ``file:line: why``). ``skipped``: parsed lines that are not requests to the service
    (see the module docstring); ``skipped_reasons``: how many per reason (``websocket``, ``redirect``,
    ``fixed-response``, ``authenticate``, ``waf``, ``not forwarded``, ``no usable request line``), most frequent
    first. ``no_latency``: recorded requests without a latency (not dispatched, 499,
    timing ``-`` or missing). ``unmatched``: recorded requests a given route map did not match, templated
    from their path instead (``unmatched_examples``: a few of the endpoints that produced).
    """

    measurement: Measurement
    lines: int
    malformed: int
    malformed_examples: tuple[str, ...] = ()
    skipped: int = 0
    skipped_examples: tuple[str, ...] = ()
    skipped_reasons: tuple[tuple[str, int], ...] = ()
    no_latency: int = 0
    unmatched: int = 0
    unmatched_examples: tuple[str, ...] = ()
    before_window: int = 0
    after_window: int = 0

    @property
    def requests(self) -> int:
        return self.measurement.total_count

    @property
    def outside_window(self) -> int:
        """Requests dropped because they arrived outside the given window (0 without a window)."""
        return self.before_window + self.after_window


def timeline_interval_for(window_s: float) -> float:
    """Timeline interval (s) for a window of ``window_s`` seconds: 60 s up to 4 days, then coarser."""
    for interval in TIMELINE_INTERVALS_S:
        if window_s / interval <= MAX_TIMELINE_POINTS:
            return float(interval)
    return float(TIMELINE_INTERVALS_S[-1])


# --- line parsers ---------------------------------------------------------------------------------------


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _request_line(request: str) -> tuple[str, str] | None:
    """``GET http://host:80/a/b?x=1#f HTTP/1.1`` → (``GET``, ``/a/b?x=1``): the target as the server got it,
    query string kept, scheme/host/port and fragment dropped; None when it is not a request line."""
    parts = request.split(" ")
    if len(parts) not in (2, 3):
        return None
    method, target = parts[0], parts[1]
    if not (method.isascii() and method.isalpha() and method.isupper()):
        return None
    scheme_end = target.find("://")
    if scheme_end > 0 and not target.startswith("/"):
        slash = target.find("/", scheme_end + 3)
        target = target[slash:] if slash >= 0 else "/"
    if not target.startswith("/"):
        return None
    return method, target.split("#", 1)[0]


def _seconds(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise _Malformed(f"{name}: not a number: {_short(value)}") from None
    if not math.isfinite(seconds) or (seconds < 0 and seconds != _ALB_NOT_DISPATCHED) or seconds > _MAX_SECONDS:
        raise _Malformed(f"{name}: not a duration: {_short(value)}")
    return seconds


def _unix(t: float, name: str, value: str) -> float:
    """``t`` (Unix s) when it lies between 1970 and 2100; malformed otherwise."""
    if not MIN_UNIX_S <= t <= MAX_UNIX_S:
        raise _Malformed(f"{name}: not between 1970 and 2100: {_short(value)}")
    return t


def _status(value: str, name: str) -> int | None:
    if value == "-":
        return None
    if len(value) != 3 or not value.isdigit():
        raise _Malformed(f"{name}: not a status code: {_short(value)}")
    return int(value)


def _iso_time(value: str, name: str) -> float:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise _Malformed(f"{name}: not an ISO 8601 time: {_short(value)}") from None
    if t.tzinfo is None:
        raise _Malformed(f"{name}: time without a time zone: {_short(value)}")
    try:
        return _unix(t.timestamp(), name, value)
    except OverflowError:
        raise _Malformed(f"{name}: not between 1970 and 2100: {_short(value)}") from None


_ALB_QUOTED = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a quoted field with backslash escapes (unrolled: fast)
_ALB_ACTIONS_AT = 8  # after the user agent: ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
#                      "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed"


def _alb_actions(rest: str, request_end: int) -> tuple[str, str] | None:
    """(``request_creation_time``, ``actions_executed`` unquoted) from the fields after the request (which
    ends at ``rest[request_end]``); None when the line has no such fields (logs from before they existed).

    The user agent may hold spaces and escaped quotes; the seven fields after it hold neither (ARNs, trace
    ids, SNI names), so a split finds the two fields; their shapes are checked (a quoted list; a time or ``-``).
    """
    agent = _ALB_QUOTED.match(rest, request_end + 2)
    if agent is None:
        return None
    fields = rest[agent.end() + 1 :].split(" ", _ALB_ACTIONS_AT + 1)
    if len(fields) <= _ALB_ACTIONS_AT:
        return None
    creation, actions = fields[_ALB_ACTIONS_AT - 1], fields[_ALB_ACTIONS_AT]
    if len(actions) < 2 or actions[0] != '"' or actions[-1] != '"' or creation[:1] not in _ALB_TIME_START:
        return None
    return creation, actions[1:-1]


_ALB_TIME_START = frozenset("0123456789-")


def _alb_not_forwarded(actions: str) -> str:
    """Skip reason for a line whose ``actions_executed`` has no ``forward``: the ALB answered it itself."""
    if actions in ("", "-"):
        return f'{SKIP_NOT_FORWARDED}: no action taken (actions_executed "{actions}")'
    last = actions.rsplit(",", 1)[-1]
    reason = last if last in _ALB_OWN_ANSWERS else SKIP_NOT_FORWARDED
    return f'{reason}: actions_executed "{actions}"'


def _alb_parser(arrival: bool) -> Callable[[str], _Request | str]:
    """ALB lines timed by ``time`` or, with ``arrival``, by ``request_creation_time``."""
    return lambda line: _parse_alb(line, arrival)


def _parse_alb(line: str, arrival: bool = False) -> _Request | str:
    """One ALB line → a request, or a skip reason (``reason: detail``); see the module docstring for the rules."""
    parts = line.split(" ", 12)
    if len(parts) < 13:
        raise _Malformed(f"{len(parts)} fields, an ALB line has at least 13")
    kind, when, _lb, _client, _target, req_s, target_s, resp_s, elb_code, target_code, _in, _out, rest = parts
    t = _iso_time(when, "time")
    times = (
        _seconds(req_s, "request_processing_time"),
        _seconds(target_s, "target_processing_time"),
        _seconds(resp_s, "response_processing_time"),
    )
    elb_status = _status(elb_code, "elb_status_code")
    target_status = _status(target_code, "target_status_code")
    end = rest.find('"', 1)
    if not rest.startswith('"') or end < 0:
        raise _Malformed(f"request: expected a quoted field, got {_short(rest)}")
    if kind in _ALB_WEBSOCKET:
        return f"{SKIP_WEBSOCKET}: {kind}"
    tail = _alb_actions(rest, end)
    if tail is not None and "forward" not in tail[1].split(","):
        return _alb_not_forwarded(tail[1])
    request = _request_line(rest[1:end])
    if request is None:
        return f"{SKIP_NO_REQUEST}: {_short(rest[1:end])}"
    if arrival and tail is not None and tail[0] != "-":
        t = _iso_time(tail[0], "request_creation_time")
    not_dispatched = _ALB_NOT_DISPATCHED in times
    latency = None if not_dispatched else times[1] * 1000.0
    error = (
        not_dispatched
        or target_status is None
        or target_status >= 500
        or (elb_status is not None and elb_status >= 500)
    )
    return t, request[0], request[1], latency, error


_NGINX = re.compile(
    r'\S+ \S+ \S+ \[([^\]]*)\] "((?:[^"\\]|\\.)*)" (\d{3}) (?:\d+|-) "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*"(.*)'
)
_NGINX_TIME = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})")
# A quoted field, a name="quoted value" field (NGINX's documented upstream_time format: uct="…"), or a bare one.
_NGINX_EXTRA = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"=]+=)"((?:[^"\\]|\\.)*)"|(\S+)')
_NGINX_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")
_MONTH_ABBREVIATIONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_ABBREVIATIONS, 1)}  # English whatever the locale, as nginx writes


def _nginx_time(value: str) -> float:
    m = _NGINX_TIME.fullmatch(value)
    if m is None:
        return _iso_time(value, "time_local")
    day, month, year, hh, mm, ss, sign, oh, om = m.groups()
    if month not in _MONTHS:
        raise _Malformed(f"time_local: unknown month: {_short(value)}")
    try:
        local = datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss))
    except ValueError:
        raise _Malformed(f"time_local: not a time: {_short(value)}") from None
    offset_s = (int(oh) * 3600 + int(om) * 60) * (1 if sign == "+" else -1)
    return _unix(calendar.timegm(local.timetuple()) - offset_s, "time_local", value)


def _nginx_extras(text: str) -> list[str]:
    """Extra fields after the user agent; ``0.1, 0.2`` and ``0.1 : 0.2`` (several upstreams) stay one field;
    ``name="value"`` is read as ``name=value``."""
    fields: list[str] = []
    joining = False
    for m in _NGINX_EXTRA.finditer(text):
        quoted, name, named_value, bare = m.groups()
        if quoted is not None:
            fields.append(quoted)
            joining = False
        elif name is not None:
            fields.append(name + named_value)
            joining = False
        elif fields and (joining or bare == ":"):
            fields[-1] += " " + bare
            joining = bare == ":" or bare.endswith(",")
        else:
            fields.append(bare)
            joining = bare.endswith(",")
    return fields


def _nginx_latency(field: str) -> float | None:
    """Seconds in a timing field (``name=`` prefix allowed) → ms; None for ``-`` or empty.

    Several upstream times (``0.010, 0.020 : 0.030``: ``,`` between the servers nginx tried in one upstream
    group, ``:`` between groups after an internal redirect) are **summed**: the attempts are sequential, so the
    request waited for all of them; the last alone would hide a timed-out first attempt, which is exactly
    the kind of slowness a parity check must see. ``-`` items (no response from that server) add nothing.
    """
    value = field.split("=", 1)[1] if "=" in field else field
    try:
        seconds = float(value)  # the common case: one number
    except ValueError:
        pass
    else:
        if not (0.0 <= seconds <= _MAX_SECONDS):  # also NaN
            raise _Malformed(f"timing field: not a duration: {_short(value)}")
        return seconds * 1000.0
    total, known = 0.0, False
    for raw in re.split(r"[,:]", value):
        part = raw.strip()
        if part in ("", "-"):
            continue
        seconds = _seconds(part, "timing field")
        if seconds < 0:
            raise _Malformed(f"timing field: negative: {_short(value)}")
        total += seconds
        known = True
    if total > _MAX_SECONDS:
        raise _Malformed(f"timing field: not a duration: {_short(value)}")
    return total * 1000.0 if known else None


def _nginx_parser(timing_field: int, arrival: bool = False) -> Callable[[str], _Request | str]:
    """nginx lines timed by ``$time_local`` or, with ``arrival``, by ``$time_local`` minus the latency."""

    def parse(line: str) -> _Request | str:
        m = _NGINX.match(line)
        if m is None:
            raise _Malformed("not an nginx combined log line")
        time_local, request_text, status_text, extra = m.groups()
        t = _nginx_time(time_local)
        status = int(status_text)
        extras = _nginx_extras(extra)
        try:
            timing = extras[timing_field]
        except IndexError:
            timing = "-"
        if "\\x" in request_text:
            request_text = _percent_escapes(request_text)
        return _nginx_request(t, request_text, status, _nginx_latency(timing), arrival)

    return parse


def _nginx_request(t: float, request_text: str, status: int, latency: float | None, arrival: bool) -> _Request | str:
    """One nginx request from its logged time (Unix s), request line (escapes undone), status and latency (ms);
    a skip reason when the request line is unusable. A 499 has no latency (the client gave up) and is an error,
    as is a 5xx; with ``arrival`` the time moves back by the latency (``$time_local`` is the request's end)."""
    request = _request_line(request_text)
    if request is None:
        return f"{SKIP_NO_REQUEST}: {_short(request_text)}"
    if status == NGINX_CLIENT_CLOSED:
        latency = None
    if arrival and latency is not None:
        t -= latency / 1000.0
    return t, request[0], request[1], latency, status >= 500 or status == NGINX_CLIENT_CLOSED


def _percent_escapes(text: str) -> str:
    """nginx's default-escape ``\\xHH`` → ``%HH`` (the byte, percent-encoded as in a path)."""
    return _NGINX_ESCAPE.sub(lambda e: "%" + e.group(1).upper(), text)


def _json_unescape(text: str) -> str:
    """A value nginx wrote with ``escape=json`` (``\\"``, ``\\\\``, ``\\uXXXX``…) → the text it stands for."""
    try:
        value: str = json.loads(f'"{text}"')
    except ValueError:
        raise _Malformed(f"not a JSON-escaped value: {_short(text)}") from None
    return value


def _unescaper(escape: str) -> Callable[[str], str]:
    """How to read a request value nginx wrote with ``escape=`` (``default``: ``\\xHH`` → ``%HH``)."""
    if escape == "json":
        return lambda text: _json_unescape(text) if "\\" in text else text
    if escape == "default":
        return lambda text: _percent_escapes(text) if "\\x" in text else text
    return lambda text: text


def _msec(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise _Malformed(f"msec: not a number: {_short(value)}") from None
    return _unix(t, "msec", value)


_TIME_READERS: dict[str, Callable[[str], float]] = {
    "time_local": _nginx_time,
    "time_iso8601": lambda value: _iso_time(value, "time_iso8601"),
    "msec": _msec,
}


def _log_format_parser(fmt: LogFormat, arrival: bool = False) -> Callable[[str], _Request | str]:
    """Lines written by the nginx ``log_format`` ``fmt``: one regex match, then the few fields used.

    Time from ``fmt.time_variable`` (the log write, i.e. the request's end; with ``arrival``, minus the
    latency); request from ``$request`` or ``$request_method`` + ``$request_uri`` (or ``$uri`` [+ ``?$args``]);
    latency from ``fmt.latency_variable`` (s → ms; None without one); errors as the built-in nginx format.
    """
    match = fmt.pattern.fullmatch
    groups = fmt.groups
    read_time = _TIME_READERS[fmt.time_variable]
    time_group, status_group = groups[fmt.time_variable], groups["status"]
    latency_group = groups[fmt.latency_variable] if fmt.latency_variable is not None else 0
    request_groups = tuple(groups[v] for v in fmt.request)
    unescape = _unescaper(fmt.escape)
    mismatch = f"does not match {fmt.describe()}"

    def parse(line: str) -> _Request | str:
        m = match(line)
        if m is None:
            raise _Malformed(mismatch)
        t = read_time(m.group(time_group))
        status = _status(m.group(status_group), "status")
        if status is None:
            raise _Malformed("status: '-'")
        latency = _nginx_latency(m.group(latency_group)) if latency_group else None
        if len(request_groups) == 1:
            request_text = m.group(request_groups[0])
        else:
            method, target = m.group(request_groups[0]), m.group(request_groups[1])
            if len(request_groups) == 3 and (args := m.group(request_groups[2])) not in ("", "-"):
                target = f"{target}?{args}"
            request_text = f"{method} {target}"
        return _nginx_request(t, unescape(request_text), status, latency, arrival)

    return parse


# --- reading --------------------------------------------------------------------------------------------


def _exact_lines(block: bytes, n0: int) -> Iterator[tuple[int, str]]:
    """(line number, line) of a block of whole lines, read exactly as a text file is (UTF-8 with
    ``surrogateescape``, universal newlines, lines of ``MAX_LINE_CHARS`` or more become ``_OVERLONG``);
    ``n0``: the number of the line before the block."""
    text = io.TextIOWrapper(io.BytesIO(block), encoding="utf-8", errors="surrogateescape")
    n = n0
    while line := text.readline(MAX_LINE_CHARS):
        n += 1
        if len(line) == MAX_LINE_CHARS and not line.endswith("\n"):
            while (rest := text.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                pass  # skip the rest of an overlong line
            yield n, _OVERLONG
            continue
        yield n, line.rstrip("\r\n")


def _blocks(path: Path) -> Iterator[bytes | None]:
    """Blocks of whole lines (about ``BLOCK_BYTES`` each; the last may lack its newline) of a plain or gzip file,
    decompressed as a stream, the BOM of a UTF-8 file dropped; None stands for one line too long to hold
    (more than ``_OVERLONG_BYTES`` bytes without a newline: overlong however it decodes), read past and dropped.
    OSError / gzip errors propagate once the whole lines read before them are yielded (the caller names the last)."""
    with reading(path, "an access log file"):
        fh = path.open("rb")
    with fh:
        compressed = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        raw = gzip.GzipFile(fileobj=fh, mode="rb") if compressed else fh
        buf = b""
        start = True
        discarding = False
        failed: Exception | None = None
        while failed is None:
            data, failed = _read_block(raw)
            if not data:
                break
            if start:
                buf += data
                if len(buf) < len(_BOM) and buf == _BOM[: len(buf)]:
                    continue  # too short to tell yet
                data, buf, start = buf.removeprefix(_BOM), b"", False
            if discarding:
                newline = data.find(b"\n")
                if newline < 0:
                    continue
                data, discarding = data[newline + 1 :], False
                yield None
            buf += data
            cut = buf.rfind(b"\n")
            if cut >= 0:
                yield buf[: cut + 1]
                buf = buf[cut + 1 :]
            if len(buf) > _OVERLONG_BYTES:  # no "\n" in it: lines may still end in a "\r" alone (universal newlines)
                cut = buf.rfind(b"\r", 0, len(buf) - 1)  # not the last byte: a "\n" may follow in the next read
                if cut >= 0:
                    yield buf[: cut + 1]
                    buf = buf[cut + 1 :]
            if len(buf) > _OVERLONG_BYTES:
                buf, discarding = b"", True
        if failed is not None:
            raise failed  # after the whole lines read before it: the caller names the last line read
        if discarding:
            yield None
        elif buf:
            yield buf.removeprefix(_BOM) if start else buf


def _read_block(raw: io.BufferedIOBase) -> tuple[bytes, Exception | None]:
    """Up to ``BLOCK_BYTES`` bytes of ``raw`` (b"" at its end) and the read error that ended it (None: none), read
    in ``_READ_PIECE`` pieces so that what a truncated gzip stream gave before its error is kept (one read of the
    whole block would lose it, and the error message would name an earlier line)."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < BLOCK_BYTES and (piece := raw.read1(min(BLOCK_BYTES - got, _READ_PIECE))):
            parts.append(piece)
            got += len(piece)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


@dataclass(frozen=True)
class _ParserSpec:
    """How to parse lines (picklable, so a worker process can build the same parser)."""

    fmt: str
    timing_field: int
    arrival: bool
    log_format: str | None = None
    latency_field: str | None = None

    def exact(self) -> Callable[[str], _Request | str]:
        """The exact per-line parser."""
        if self.log_format is not None:
            return _log_format_parser(compile_log_format(self.log_format, self.latency_field), self.arrival)
        return _alb_parser(self.arrival) if self.fmt == "alb" else _nginx_parser(self.timing_field, self.arrival)


@dataclass(frozen=True)
class _Chunk:
    """One block's lines, parsed. Requests in line order: ``keys[code[i]]`` is ``method target`` (the target as
    received; a pyarrow string array, not deduplicated), or (method, target) when a target is not UTF-8 (a
    tuple: the collector then takes the per-target path), sent at
    ``t[i]`` (Unix s), latency ``latency[i]`` ms (NaN: none), error ``errors[i]``. ``events``: the lines
    that are not requests, in order: (the line's ordinal among the chunk's non-blank lines, from 1; malformed
    (True) or skipped; ``file:line: why``). ``nonblank``: non-blank lines; ``error``: a file error after the
    chunk (BadInput message), raised once the chunk is counted."""

    path: str
    nonblank: int
    keys: pa.Array | tuple[tuple[str, str], ...]
    code: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]
    latency: npt.NDArray[np.float64]
    errors: npt.NDArray[np.bool_]
    events: tuple[tuple[int, bool, str], ...] = ()
    error: str | None = None


class _ChunkBuilder:
    """Collects one block's requests and events in line order."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.keys: dict[tuple[str, str], int] = {}
        self.code = np.full(size, -1, dtype=np.int64)
        self.t = np.zeros(size)
        self.latency = np.full(size, np.nan)
        self.errors = np.zeros(size, dtype=np.bool_)
        self.events: list[tuple[int, bool, str]] = []
        self.nonblank = 0
        self.fast = np.zeros(size, dtype=np.bool_)  # rows whose code indexes fast_keys, not keys
        self.fast_keys: pa.Array | None = None

    def code_of(self, method: str, target: str) -> int:
        key = (method, target)
        number = self.keys.get(key)
        if number is None:
            number = self.keys[key] = len(self.keys)
        return number

    def line(self, i: int, n: int, line: str, parse: Callable[[str], _Request | str], ordinal: int) -> None:
        """Line ``i`` of the block (line number ``n``, ``ordinal``-th non-blank) through the exact parser."""
        try:
            if line is _OVERLONG:
                raise _Malformed(f"longer than {MAX_LINE_CHARS} characters")
            parsed = parse(line)
        except _Malformed as exc:
            self.events.append((ordinal, True, f"{self.path}:{n}: {exc}"))
            return
        if isinstance(parsed, str):
            self.events.append((ordinal, False, f"{self.path}:{n}: {parsed}"))
            return
        t, method, target, latency, error = parsed
        self.code[i] = self.code_of(method, target)
        self.t[i] = t
        self.latency[i] = math.nan if latency is None else latency
        self.errors[i] = error

    def build(self, error: str | None = None) -> _Chunk:
        kept = self.code >= 0
        code = self.code
        slow = list(self.keys)
        keys: pa.Array | tuple[tuple[str, str], ...]
        try:
            keys = pa.array([f"{method} {target}" for method, target in slow], pa.string())
        except UnicodeEncodeError:  # a target that is not UTF-8 (surrogate escapes)
            keys = tuple(slow)
            if self.fast_keys is not None:
                keys = tuple(_split_key(key) for key in self.fast_keys.to_pylist()) + keys
        else:
            if self.fast_keys is not None:
                keys = pa.concat_arrays([self.fast_keys, keys])
        if self.fast_keys is not None:
            code = np.where(self.fast | (code < 0), code, code + len(self.fast_keys))
        return _Chunk(
            path=self.path,
            nonblank=self.nonblank,
            keys=keys,
            code=code[kept],
            t=self.t[kept],
            latency=self.latency[kept],
            errors=self.errors[kept],
            events=tuple(self.events),
            error=error,
        )


def _exact_chunk(path: str, block: bytes | None, n0: int, parse: Callable[[str], _Request | str]) -> tuple[_Chunk, int]:
    """A block through the exact per-line parser; (chunk, number of its last line)."""
    lines = [(n0 + 1, _OVERLONG)] if block is None else list(_exact_lines(block, n0))
    builder = _ChunkBuilder(path, len(lines))
    for i, (n, line) in enumerate(lines):
        if line is not _OVERLONG and not line.strip():
            continue
        builder.nonblank += 1
        builder.line(i, n, line, parse, builder.nonblank)
    return builder.build(), lines[-1][0] if lines else n0


def _parse_file(path: Path, spec: _ParserSpec) -> Iterator[_Chunk]:
    """The chunks of one file, in order: blocks of plain lines in the vectorised parse where the format has one
    (:func:`_fast_chunk`), the rest line by line. A file that cannot be read to the end ends with an empty
    chunk carrying the error."""
    parse = spec.exact()
    fast = spec.log_format is None
    n = 0
    name = str(path)
    blocks = _blocks(path)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            return
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            yield _ChunkBuilder(name, 0).build(f"{path}: gzip data broken after line {n} (truncated file?): {exc}")
            return
        except OSError as exc:
            yield _ChunkBuilder(name, 0).build(f"{path}: cannot read after line {n}: {exc.strerror or exc}")
            return
        parsed = _fast_chunk(name, block, n, spec, parse) if fast and block is not None else None
        chunk, n = _exact_chunk(name, block, n, parse) if parsed is None else parsed
        yield chunk


def _parse_file_list(path: Path, spec: _ParserSpec) -> list[_Chunk]:
    """All chunks of one file (for a worker process)."""
    return list(_parse_file(path, spec))


# The built-in nginx format, for lines of plain ASCII fields (a strict subset of _NGINX; anything else takes the
# exact parser): the time, the request line (no backslash escapes), the status, the extra fields (printable ASCII
# without quotes, commas, colons or backslashes: each one field, as _nginx_extras reads them).
_FAST_NGINX = (
    r'^[\x21-\x7e]+ [\x21-\x7e]+ [\x21-\x7e]+ \[(?P<time>[^\]]*)\] "(?P<request>[^"\\]*)" (?P<status>[0-9]{3}) '
    r'(?:[0-9]+|-) "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*"(?P<extras>(?: [\x21\x23-\x2b\x2d-\x39\x3b-\x5b\x5d-\x7e]+)*)'
    r"\n?$"
)


# The lines of _FAST_NGINX whose first three fields hold no quotes or brackets, whose time holds no quote and
# whose referer and user agent hold no backslash (so no escaped quote): fields then cut at quotes (_nginx_columns).
_PLAIN_NGINX = (
    r'^[\x21\x23-\x5a\x5c\x5e-\x7e]+ [\x21\x23-\x5a\x5c\x5e-\x7e]+ [\x21\x23-\x5a\x5c\x5e-\x7e]+ \[[^\]"]*\] '
    r'"[^"\\]*" [0-9]{3} (?:[0-9]+|-) "[^"\\]*" "[^"\\]*"(?: [\x21\x23-\x2b\x2d-\x39\x3b-\x5b\x5d-\x7e]+)*\n?$'
)


def _nginx_columns(lines: pa.Array) -> pa.StructArray:
    """_FAST_NGINX's fields (time, request, status, extras) of lines matching ``_PLAIN_NGINX``, cut at quotes
    (``addr ident user [time] ``, request, `` status bytes ``, referer, `` ``, agent, extras) without captures."""
    split = pc.split_pattern(lines, '"', max_splits=6)
    starts = split.offsets.to_numpy()[:-1]
    flat = split.flatten()
    head = pc.split_pattern(flat.take(pa.array(starts)), "[", max_splits=1)
    time = pc.utf8_slice_codeunits(head.flatten().take(pa.array(head.offsets.to_numpy()[:-1] + 1)), 0, -2)
    status = pc.utf8_slice_codeunits(flat.take(pa.array(starts + 2)), 1, 4)
    extras = pc.utf8_rtrim(flat.take(pa.array(starts + 6)), characters="\n")
    return pa.StructArray.from_arrays(
        [time, flat.take(pa.array(starts + 1)), status, extras], names=["time", "request", "status", "extras"]
    )


def _distinct(values: pa.Array, read: Callable[[str], _T], missing: _T) -> tuple[list[_T], npt.NDArray[np.int64]]:
    """``read`` applied once per distinct value (``missing`` where it raises _Malformed), and each row's index."""
    encoded = pc.dictionary_encode(values)
    out: list[_T] = []
    for value in encoded.dictionary.to_pylist():
        try:
            out.append(read(value))
        except _Malformed:
            out.append(missing)
    return out, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _fast_chunk(
    path: str, block: bytes, n0: int, spec: _ParserSpec, parse: Callable[[str], _Request | str]
) -> tuple[_Chunk, int] | None:
    """A block of the built-in nginx format or of ALB lines parsed column-wise (pyarrow's RE2 over the lines, then
    the values read once per distinct value with the exact per-line functions, or by column operations shown
    equal to them); the lines this
    cannot take (other shapes, escapes, bad values, unusable request lines) go through the exact parser in
    place. None when the block is not plain (carriage returns, bytes that are not UTF-8, a line of
    ``MAX_LINE_CHARS`` bytes or more): the caller reads it line by line."""
    if b"\r" in block:
        return None
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    raw = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block) - 1)
    offsets = np.concatenate(([0], ends + 1)).astype(np.int32)
    if len(offsets) > 1 and int(np.diff(offsets).max()) > MAX_LINE_CHARS:
        return None
    if len(offsets) > 1 and not block.endswith(b"\n") and len(block) - int(offsets[-2]) >= MAX_LINE_CHARS:
        return None  # a last line without its newline is overlong at MAX_LINE_CHARS (_exact_lines)
    size = len(offsets) - 1
    lines = pa.Array.from_buffers(pa.string(), size, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    builder = _ChunkBuilder(path, size)
    if spec.fmt == "alb":
        ok = pc.match_substring_regex(lines, _FAST_ALB).to_numpy(zero_copy_only=False)  # a DFA: no captures
        if ok.any():
            _fast_alb_fields(builder, _alb_columns(lines.filter(pa.array(ok))), np.flatnonzero(ok), spec)
    else:
        plain = pc.match_substring_regex(lines, _PLAIN_NGINX).to_numpy(zero_copy_only=False)  # a DFA: no captures
        parts = [_nginx_columns(lines.filter(pa.array(plain)))] if plain.any() else []
        rows = [np.flatnonzero(plain)]
        if not plain.all():  # lines with escaped quotes or brackets in a field: the capturing pattern
            others = np.flatnonzero(~plain)
            fields = pc.extract_regex(lines.take(pa.array(others)), _FAST_NGINX)
            ok = fields.is_valid().to_numpy(zero_copy_only=False)
            parts.append(fields.filter(pa.array(ok)))
            rows.append(others[ok])
        if sum(len(r) for r in rows):
            _fast_fields(builder, pa.concat_arrays(parts), np.concatenate(rows), spec)
    fast = builder.code >= 0
    slow = np.flatnonzero(~fast)
    if len(slow):
        blank = 0
        for i in slow.tolist():
            line = block[offsets[i] : offsets[i + 1]].decode("utf-8").rstrip("\n")
            if not line.strip():
                blank += 1
                continue
            builder.line(i, n0 + i + 1, line, parse, i - blank + 1)  # fast rows are never blank
        builder.nonblank = size - blank
    else:
        builder.nonblank = size
    return builder.build(), n0 + size


# ALB lines of plain fields (a strict subset of what _parse_alb reads): a kind other than ws/wss, the time as AWS
# writes it (UTC, microseconds), ten more fields without spaces, the request and the user agent (quoted, no quotes
# or backslashes inside), the seven fields AWS writes after them (cipher, protocol, target group, then trace id,
# domain and certificate quoted, priority; no quotes or spaces inside), request_creation_time (shaped as
# _alb_actions wants it) and actions_executed (quoted, no spaces or quotes), anything after. Fields are then cut
# by splitting at spaces and quotes (see _alb_columns).
_ALB_TIME = r"(?P<{0}date>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})T(?P<{0}clock>(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])" \
    r"\.(?P<{0}us>[0-9]{{6}})Z"  # fmt: skip
_FAST_ALB = (
    r"^(?:http|https|h2) " + _ALB_TIME.format("") + r" [\x21-\x7e]+ [\x21-\x7e]+ [\x21-\x7e]+ "
    r"(?:[\x21-\x7e]+ ){7}"
    r'"[^"\\]*" "[^"\\]*" [^ "]* [^ "]* [^ "]* "[^ "]*" "[^ "]*" "[^ "]*" [^ "]* [0-9-][^ "]* "[^" ]*"(?: .*)?\n?$'
)


def _alb_columns(lines: pa.Array) -> pa.StructArray:
    """The fields of lines matching ``_FAST_ALB``, cut without regex captures: the first twelve at spaces (as
    _parse_alb splits them), the rest at quotes (request, actions_executed) and the priority + creation time
    between two quoted fields at spaces."""

    def items(values: pa.Array, separator: str, most: int | None = None) -> Callable[[int], pa.Array]:
        split = pc.split_pattern(values, separator, max_splits=most)
        starts = split.offsets.to_numpy()[:-1]
        flat = split.flatten()
        return lambda i: flat.take(pa.array(starts + i))

    field = items(lines, " ", 12)
    time = field(1)
    quoted = items(field(12), '"', 12)  # '', request, ' ', agent, ' c p arn ', trace, ' ', domain, ' ', cert, ...
    creation = items(quoted(10), " ")(2)  # ' priority creation '
    columns = [
        pc.utf8_slice_codeunits(time, 0, 10),
        pc.utf8_slice_codeunits(time, 11, 19),
        pc.utf8_slice_codeunits(time, 20, 26),
        *(field(i) for i in range(5, 10)),
        quoted(1),
        creation,
        quoted(11),
    ]
    names = ["date", "clock", "us", "req_s", "target_s", "resp_s", "elb", "target", "request", "creation", "actions"]
    return pa.StructArray.from_arrays(columns, names=names)


_ALB_CREATION = "^" + _ALB_TIME.format("") + "$"
_FORWARD = r"(?:^|,)forward(?:,|$)"


def _iso_column(parts: pa.StructArray) -> npt.NDArray[np.float64]:
    """Unix s of the times matched by ``_ALB_TIME`` (fields ``date``, ``clock``, ``us``) as :func:`_iso_time`
    reads them (whole seconds once per distinct value, then the microseconds added as Python's
    ``timestamp()`` does: integer microseconds / 10**6, correctly rounded); NaN where it would not read one."""
    whole = pc.binary_join_element_wise(pc.struct_field(parts, "date"), pc.struct_field(parts, "clock"), "T")
    seconds, at = _distinct(whole, lambda v: _iso_time(v + "Z", "time"), math.nan)
    s = np.asarray(seconds, dtype=np.float64)[at] if seconds else np.zeros(0)
    micro = pc.cast(pc.struct_field(parts, "us"), pa.int64()).to_numpy(zero_copy_only=False)
    t = (np.nan_to_num(s).astype(np.int64) * 1_000_000 + micro) / 1e6
    return np.where(np.isnan(s) | (t < MIN_UNIX_S) | (t > MAX_UNIX_S), np.nan, t)


def _fast_alb_fields(
    builder: _ChunkBuilder, fields: pa.StructArray, rows: npt.NDArray[np.int64], spec: _ParserSpec
) -> None:
    """Fill ``builder`` for the ALB ``rows`` whose values every reader accepts, forwarded (``forward`` among
    actions_executed) and with a request line (the rest stay for the exact parser: malformed, skipped)."""
    t = _iso_column(fields)
    if spec.arrival:
        creation = fields.field("creation")
        dash = pc.equal(creation, "-").to_numpy(zero_copy_only=False)
        timed = pc.match_substring_regex(creation, _ALB_CREATION)
        filled = pc.if_else(timed, creation, "1970-01-01T00:00:00.000000Z")
        created = _iso_column(pc.extract_regex(filled, _ALB_CREATION))
        # the exact parser reads ``time`` first: a bad one is malformed whatever request_creation_time says
        t = np.where(np.isnan(t) | dash, t, np.where(timed.to_numpy(zero_copy_only=False), created, np.nan))
    times: list[npt.NDArray[np.float64]] = []
    for name in ("req_s", "target_s", "resp_s"):
        values, at = _distinct(fields.field(name), _ALB_SECONDS[name], math.nan)
        times.append(np.asarray(values, dtype=np.float64)[at])
    statuses: list[npt.NDArray[np.int64]] = []
    for name in ("elb", "target"):
        codes, at = _distinct(fields.field(name), _alb_status, -2)
        statuses.append(np.asarray(codes, dtype=np.int64)[at])
    keys = _request_keys(fields.field("request"))
    forwarded = pc.match_substring_regex(fields.field("actions"), _FORWARD).to_numpy(zero_copy_only=False)
    good = ~np.isnan(t) & forwarded & keys.is_valid().to_numpy(zero_copy_only=False)
    for seconds in times:
        good &= ~np.isnan(seconds)
    for status in statuses:
        good &= status != -2
    not_dispatched = (times[0] == _ALB_NOT_DISPATCHED) | (times[1] == _ALB_NOT_DISPATCHED)
    not_dispatched |= times[2] == _ALB_NOT_DISPATCHED
    elb, target = statuses
    at = rows[good]
    builder.fast_keys = keys.filter(pa.array(good))
    builder.fast[at] = True
    builder.code[at] = np.arange(len(at))
    builder.t[at] = t[good]
    builder.latency[at] = np.where(not_dispatched, np.nan, times[1] * 1000.0)[good]
    builder.errors[at] = (not_dispatched | (target == -1) | (target >= 500) | (elb >= 500))[good]


_ALB_SECONDS: dict[str, Callable[[str], float]] = {
    "req_s": lambda v: _seconds(v, "request_processing_time"),
    "target_s": lambda v: _seconds(v, "target_processing_time"),
    "resp_s": lambda v: _seconds(v, "response_processing_time"),
}


def _alb_status(value: str) -> int:
    """A status code as :func:`_status` reads it, -1 for ``-`` (_Malformed propagates)."""
    status = _status(value, "status")
    return -1 if status is None else status


def _fast_fields(
    builder: _ChunkBuilder, fields: pa.StructArray, rows: npt.NDArray[np.int64], spec: _ParserSpec
) -> None:
    """Fill ``builder`` for the ``rows`` whose fields every per-value reader accepts (the rest stay for the exact
    parser)."""
    times, time_at = _distinct(fields.field("time"), _nginx_time, math.nan)
    t = np.asarray(times, dtype=np.float64)[time_at]
    status = pc.cast(fields.field("status"), pa.int64()).to_numpy(zero_copy_only=False)
    latency = _timing(fields.field("extras"), spec.timing_field)
    keys = _request_keys(fields.field("request"))
    good = ~np.isnan(t) & ~np.isnan(latency[0]) & keys.is_valid().to_numpy(zero_copy_only=False)
    # latency[0] NaN: the exact parser decides; a null key: not a request line (the exact parser skips it)
    closed = status == NGINX_CLIENT_CLOSED
    ms = np.where(closed, np.nan, latency[1])
    if spec.arrival:
        t = np.where(np.isnan(ms), t, t - ms / 1000.0)
    at = rows[good]
    builder.fast_keys = keys.filter(pa.array(good))
    builder.fast[at] = True
    builder.code[at] = np.arange(len(at))
    builder.t[at] = t[good]
    builder.latency[at] = ms[good]
    builder.errors[at] = ((status >= 500) | closed)[good]


# A request line _request_line reads as (method, target) with the target as written: method, a target from "/"
# to a fragment or a space, an optional version. Other lines (absolute targets, extra spaces) take _request_line.
_FAST_REQUEST = r"^(?P<method>[A-Z]+) (?P<target>/[^ #]*)(?:#[^ ]*)?(?: [^ ]*)?$"
# An absolute target: scheme and host (up to the first "://", then the first "/" after it) dropped; a target that
# starts with ":" (its first "://" may be at its start, which _request_line refuses) takes _request_line.
_FAST_ABSOLUTE_REQUEST = r"^(?P<method>[A-Z]+) [^/ :][^ ]*?://[^/ ]*(?P<target>/[^ #]*)(?:#[^ ]*)?(?: [^ ]*)?$"


def _request_keys(requests: pa.Array) -> pa.Array:
    """``method target`` of each request line, as :func:`_request_line` reads it (null when it is not a request
    line): a column-wise match for the common shape, :func:`_request_line` once per distinct other line."""
    parts = pc.extract_regex(requests, _FAST_REQUEST)
    keys = pc.binary_join_element_wise(pc.struct_field(parts, "method"), pc.struct_field(parts, "target"), " ")
    odd = parts.is_null()
    if not pc.any(odd).as_py():
        return keys
    absolute = pc.extract_regex(requests, _FAST_ABSOLUTE_REQUEST)
    joined = pc.binary_join_element_wise(pc.struct_field(absolute, "method"), pc.struct_field(absolute, "target"), " ")
    keys = pc.coalesce(keys, joined)
    odd = keys.is_null()
    if not pc.any(odd).as_py():
        return keys
    lines, at = _distinct(requests.filter(odd), _fast_request, None)
    read = [None if r is None else f"{r[0]} {r[1]}" for r in lines]
    return pc.replace_with_mask(keys, odd, pa.array(read, pa.string()).take(pa.array(at)))


def _fast_request(text: str) -> tuple[str, str] | None:
    """(method, target) of a request line; None when it is not one (the exact parser then skips it)."""
    return _request_line(text)


def _timing(extras: pa.Array, timing_field: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(0 where the timing field reads, NaN where the exact parser must decide; latency ms, NaN for none) of
    each row's extra fields (`` a b c``: one field each), field ``timing_field`` (negative from the end; a
    missing one is ``-``)."""
    tokens = pc.split_pattern(extras, " ")
    offsets = tokens.offsets.to_numpy()
    count = np.diff(offsets) - 1  # the leading space gives an empty first item
    index = np.full(len(count), timing_field) if timing_field >= 0 else count + timing_field
    present = (index >= 0) & (index < count)
    flat = tokens.flatten()
    where = np.where(present, offsets[:-1] + 1 + index, 0)
    chosen = flat.take(pa.array(where)) if len(flat) else pa.array([""] * len(count), pa.string())
    chosen = pc.if_else(pa.array(present), chosen, pa.scalar("-"))
    values, at = _distinct(chosen, _fast_latency, (math.nan, math.nan))
    pairs = np.asarray(values, dtype=np.float64).reshape(-1, 2)[at] if values else np.zeros((0, 2))
    return pairs[:, 0], pairs[:, 1]


def _fast_latency(field: str) -> tuple[float, float]:
    """(0, ms or NaN for none) of a timing field, as the exact parser reads it (_Malformed propagates)."""
    ms = _nginx_latency(field)
    return 0.0, math.nan if ms is None else ms


class _Collector:
    """Parsed requests of all files, buffered until the window (and so the timeline interval) is known."""

    def __init__(
        self,
        route_map: RouteMap | None,
        pool_limit: int,
        max_malformed_share: float,
        keep: tuple[float, float] | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.route_map = route_map
        self.keep = keep  # [lo, hi) Unix s: requests timed outside are counted and dropped
        self.before = self.after = 0
        self.outside_first = math.inf
        self.outside_last = -math.inf
        self.pool_limit = pool_limit
        self.max_malformed_share = max_malformed_share
        self.lines = self.malformed = self.skipped = self.no_latency = self.unmatched = 0
        self.malformed_examples: list[str] = []
        self.skipped_examples: list[str] = []
        self.skipped_reasons: dict[str, int] = {}  # reason (a skip message's part before ": ") → lines
        self.unmatched_examples: list[str] = []
        self.index: dict[tuple[str, str], int] = {}  # (method, route) → endpoint number
        self.resources: list[str | None] = []
        self.pools: list[dict[str, dict[str, None]]] = []  # per endpoint: name → ordered distinct values
        # per endpoint: query shape ((name, has a value) in order; () = no query string) → requests
        self.shapes: list[dict[tuple[tuple[str, bool], ...], int]] = []
        self.shape_overflow: list[int] = []  # per endpoint: requests whose shape was over MAX_QUERY_SHAPES
        self.query_pools: list[dict[str, dict[str, None]]] = []  # per endpoint: query name → distinct values
        self.query_dropped: dict[str, int] = {}  # reason → query values left out of the pools
        self.filled: dict[tuple[int, str], int] = {}  # query pool → the chunk position that filled it
        self.requests = RequestAggregator(TIMELINE_INTERVALS_S, MAX_TIMELINE_POINTS, interval_s=interval_s)

    def bad(self, where: str, why: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MAX_EXAMPLES:
            self.malformed_examples.append(f"{where}: {why}")

    def skip(self, where: str, why: str) -> None:
        self.skipped += 1
        reason = why.split(": ", 1)[0]
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append(f"{where}: {why}")

    def _new_endpoint(
        self, key: tuple[str, str], resource: str | None, placeholders: Iterable[str], unmatched: bool
    ) -> int:
        """Number a new endpoint (method, route): its resource, empty pools for its path ``placeholders``, no query
        shapes yet; an ``unmatched`` one (a route map did not know it) is kept as an example while there is room."""
        number = self.index[key] = len(self.resources)
        self.resources.append(resource)
        self.pools.append({name: {} for name in placeholders})
        self.shapes.append({})
        self.shape_overflow.append(0)
        self.query_pools.append({})
        if unmatched and len(self.unmatched_examples) < MAX_EXAMPLES:
            self.unmatched_examples.append(f"{key[0]} {key[1]}")
        return number

    def _endpoint(self, method: str, path: str) -> tuple[int, dict[str, str], bool]:
        """(endpoint number, placeholder values, whether a given route map missed it) of one request."""
        found = self.route_map.match(method, path) if self.route_map is not None else None
        if found is not None:
            route, values, resource = found.endpoint.route, dict(found.params), found.resource
            method = found.endpoint.method
        else:
            route, values = template_path_values(path)
            resource = None
        key = (method, route)
        number = self.index.get(key)
        if number is None:
            number = self._new_endpoint(key, resource, values, found is None and self.route_map is not None)
        missed = found is None and self.route_map is not None
        self.unmatched += missed
        return number, values, missed

    def _add_target(self, method: str, target: str, position: int) -> _Target:
        """The first request of a chunk to ``target``: endpoint, path and query pools, query shape, exactly as
        every request was once added one by one; ``position``: its place among the chunk's requests (a query
        pool filled by it is full for the chunk's later requests)."""
        path, _, query = target.partition("?")
        number, values, unmatched = self._endpoint(method, encode_path(path))
        shape, private = self._add_query(number, query, position)
        pools = self.pools[number]
        for name, raw in values.items():
            pool = pools.setdefault(name, {})
            if len(pool) < self.pool_limit:
                value = _pool_value(raw)
                if value is not None:
                    pool.setdefault(value, None)
        return _Target(number, unmatched, shape, tuple(private))

    def _add_query(
        self, number: int, query: str, position: int
    ) -> tuple[tuple[tuple[str, bool], ...] | None, list[tuple[tuple[int, str], str]]]:
        """Count the query string's shape for endpoint ``number`` and pool its values (see module docstring).
        Returns the shape (None when over the cap: counted in the overflow) and the values left out of a pool
        that had room, as ((endpoint, name), why): a later request with the same query string drops them again
        while that pool has room."""
        return self._add_query_parts(number, _query_parts(query), position)

    def consume(self, chunk: _Chunk) -> RequestChunk | None:
        """Count a chunk's lines and events, then add its requests (those in the kept span) in line order;
        returns the requests folded (None when none was kept)."""
        for ordinal, malformed, text in chunk.events:
            if not malformed:
                where, why = text.split(": ", 1)
                self.skip(where, why)
                continue
            self.malformed += 1
            if len(self.malformed_examples) < MAX_EXAMPLES:
                self.malformed_examples.append(text)
            at = self.lines + ordinal
            if self.malformed == at == EARLY_REFUSAL_LINES and self.max_malformed_share < 1.0:
                raise BadInput(
                    f"{chunk.path}: the first {at} lines are all malformed; first: {self.malformed_examples[0]}"
                )
        self.lines += chunk.nonblank
        if chunk.error is not None:
            raise BadInput(chunk.error)
        code, t, latency, errors = chunk.code, chunk.t, chunk.latency, chunk.errors
        if self.keep is not None and len(t):
            kept = (self.keep[0] <= t) & (t < self.keep[1])
            if not kept.all():
                out = t[~kept]
                early = int(np.count_nonzero(out < self.keep[0]))
                self.before += early
                self.after += len(out) - early
                self.outside_first = min(self.outside_first, float(out.min()))
                self.outside_last = max(self.outside_last, float(out.max()))
                code, t, latency, errors = code[kept], t[kept], latency[kept], errors[kept]
        if not len(t):
            return None
        endpoint = self._targets(chunk.keys, code)
        self.no_latency += int(np.count_nonzero(np.isnan(latency)))
        requests = RequestChunk(tuple(self.index), endpoint, t, latency, errors)
        try:
            self.requests.add(requests)
        except ValueError as exc:  # too many distinct endpoints (times and latencies are checked before)
            raise BadInput(f"{chunk.path}: {exc}") from None
        return requests

    def _targets(
        self, keys: pa.Array | tuple[tuple[str, str], ...], code: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Each request's endpoint number (:meth:`_targets_exact` computed column-wise: the per-target Python work
        happens once per distinct route or route-map lookup, per distinct query string of an endpoint, and per
        distinct path while its endpoint's pools have room)."""
        if isinstance(keys, tuple):
            return self._targets_exact(keys, code)
        encoded = pc.dictionary_encode(keys.take(pa.array(code)))
        targets = encoded.dictionary  # distinct targets, first seen first
        at = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        parts = pc.extract_regex(targets, _TARGET_PARTS)
        if parts.null_count or pc.any(pc.match_substring(targets, "#")).as_py():
            return self._targets_exact(tuple(_split_key(k) for k in keys.to_pylist()), code)
        self.filled = {}
        counts = np.bincount(at, minlength=len(targets))
        method = pc.struct_field(parts, "method")
        path = pc.struct_field(parts, "path")
        query = pc.fill_null(pc.struct_field(parts, "query"), "")
        path = _encode_column(path)
        template = _template_column(path)
        number, missed, params = self._route_numbers(method, path, template.route)
        self.unmatched += int(counts[missed].sum())
        if self.route_map is None:
            self._fill_id_pools(number, template)
        else:
            self._fill_path_pools(number, path, params)
        self._count_queries(number[at], query, at)
        endpoint: npt.NDArray[np.int64] = number[at]
        return endpoint

    def _route_numbers(
        self, method: pa.Array, path: pa.Array, route: pa.Array
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], list[dict[str, str] | None]]:
        """Per distinct target (first seen first): its endpoint number, whether a given route map missed it, and
        the route map's placeholder values of its lookup (None: templated from the path; with a template-exact map
        the values of id-like segments are their placeholders, filled from the path later). Endpoints are added
        in the order of their first target. The route map is asked once per distinct templated path where
        :func:`_template_exact` holds, else once per distinct path."""
        rm = self.route_map
        exact = rm is not None and _template_exact(rm)
        lookup = pc.binary_join_element_wise(method, route if rm is None or exact else path, " ")
        encoded = pc.dictionary_encode(lookup)
        code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        _, first = np.unique(code, return_index=True)
        routes = route.take(pa.array(first)).to_pylist()
        numbers = np.zeros(len(first), dtype=np.int64)
        missed = np.zeros(len(first), dtype=np.bool_)
        params: list[dict[str, str] | None] = []
        for k, text in enumerate(encoded.dictionary.to_pylist()):
            verb, looked_up = text.split(" ", 1)
            found = rm.match(verb, looked_up) if rm is not None else None
            if found is not None:
                key, names, resource = (found.endpoint.method, found.endpoint.route), list(found.params), found.resource
                params.append(dict(found.params))
            else:
                key = (verb, routes[k])
                names = _PLACEHOLDER_NAME.findall(routes[k])
                resource = None
                params.append(None)
            number = self.index.get(key)
            if number is None:
                number = self._new_endpoint(key, resource, names, found is None and rm is not None)
            numbers[k] = number
            missed[k] = found is None and rm is not None
        return numbers[code], missed[code], [params[c] for c in code.tolist()] if rm is not None else []

    def _fill_id_pools(self, number: npt.NDArray[np.int64], template: _Template) -> None:
        """Without a route map: add the id segments of the targets (endpoint ``number``) to their pools, as
        :meth:`_fill_path_pools` would: per pool with room, its chunk's distinct values in target order, cut at
        ``pool_limit`` of them (at most that many can be old or new, so the first ``room`` new ones are among
        them), added in bulk; a pool with ``%`` values (which may decode to another value or to nothing) is not
        cut and is filled one value at a time."""
        limit = self.pool_limit
        ids = np.flatnonzero(template.is_id)
        if not len(ids):
            return
        rank = template.rank[ids]
        pool_key = number[template.row[ids]] * (int(rank.max()) + 1) + rank
        keys, key_at = np.unique(pool_key, return_inverse=True)
        key_at = key_at.reshape(-1)
        names = [ID_PLACEHOLDER if r == 1 else f"{ID_PLACEHOLDER}{r}" for r in (keys % (int(rank.max()) + 1)).tolist()]
        endpoints = (keys // (int(rank.max()) + 1)).tolist()
        room = np.asarray(
            [limit - len(self.pools[e].setdefault(n, {})) for e, n in zip(endpoints, names, strict=True)], np.int64
        )
        open_ = room[key_at] > 0
        if not open_.any():
            return
        segment = template.segment[ids][open_]
        key_at = key_at[open_]
        pair = key_at * len(template.segments) + segment
        _, first = np.unique(pair, return_index=True)
        first = np.sort(first)  # the distinct (pool, value) pairs, first seen first
        pool_of, value_of = key_at[first], segment[first]
        by_pool = np.argsort(pool_of, kind="stable")
        starts = np.searchsorted(pool_of[by_pool], pool_of[by_pool])
        nth = np.empty(len(by_pool), np.int64)
        nth[by_pool] = np.arange(len(by_pool)) - starts  # 0 for a pool's first distinct value, 1 for the next...
        percent = pc.match_substring(template.segments, "%").to_numpy(zero_copy_only=False)
        uncut = np.zeros(len(keys), np.bool_)
        uncut[pool_of[percent[value_of]]] = True
        kept = by_pool[((nth < limit) | uncut[pool_of])[by_pool]]  # grouped by pool, first seen first in each
        texts = template.segments.take(pa.array(value_of[kept])).to_pylist()
        pools, bounds = np.unique(pool_of[kept], return_index=True)
        for k, lo, hi in zip(pools.tolist(), bounds.tolist(), [*bounds[1:].tolist(), len(kept)], strict=True):
            pool = self.pools[endpoints[k]][names[k]]
            if not uncut[k]:  # distinct values without escapes: each is its own pool value
                fresh = [raw for raw in texts[lo:hi] if raw not in pool] if pool else texts[lo:hi]
                pool.update(dict.fromkeys(fresh[: limit - len(pool)]))
                continue
            for raw in texts[lo:hi]:
                if len(pool) >= limit:
                    break
                value = _pool_value(raw)
                if value is not None:
                    pool.setdefault(value, None)

    def _fill_path_pools(
        self, number: npt.NDArray[np.int64], path: pa.Array, params: list[dict[str, str] | None]
    ) -> None:
        """Add the placeholder values of the distinct (endpoint, path) pairs, first seen first, to the endpoints'
        pools while they have room (the values of a template-exact route map's id placeholders read from the
        path)."""
        limit = self.pool_limit
        room = np.asarray([any(len(p) < limit for p in pools.values()) for pools in self.pools], dtype=np.bool_)
        candidates = np.flatnonzero(room[number])
        if not len(candidates):
            return
        path_code = pc.dictionary_encode(path.take(pa.array(candidates))).indices.to_numpy(zero_copy_only=False)
        pair = number[candidates] * (len(candidates) + 1) + path_code
        _, first = np.unique(pair, return_index=True)
        rows = candidates[np.sort(first)]
        paths = path.take(pa.array(rows)).to_pylist()
        for row, raw_path in zip(rows.tolist(), paths, strict=True):
            pools = self.pools[int(number[row])]
            if not any(len(p) < limit for p in pools.values()):
                continue
            found = params[row] if params else None
            if found is None:
                values = template_path_values(raw_path)[1]
            else:
                ids = template_path_values(raw_path)[1] if any(v.startswith("{") for v in found.values()) else {}
                values = {name: ids[v[1:-1]] if v.startswith("{") else v for name, v in found.items()}
            for name, raw in values.items():
                pool = pools.setdefault(name, {})
                if len(pool) < limit:
                    value = _pool_value(raw)
                    if value is not None:
                        pool.setdefault(value, None)

    def _count_queries(self, number: npt.NDArray[np.int64], query: pa.Array, at: npt.NDArray[np.int64]) -> None:
        """Query shapes, pools and dropped values of the requests (endpoint ``number``, query ``query[at]``), once
        per distinct (endpoint, query string) in the order of its first request, the later ones counted."""
        encoded = pc.dictionary_encode(query)
        texts = encoded.dictionary.to_pylist()
        query_code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)[at]
        group = number * len(texts) + query_code
        groups, first, inverse, counts = np.unique(group, return_index=True, return_inverse=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        parsed: dict[int, list[tuple[str, bool, str | None, str | None]] | None] = {}
        private: list[tuple[int, int, tuple[tuple[tuple[int, str], str], ...]]] = []
        for k in order.tolist():
            g, position, later = int(groups[k]), int(first[k]), int(counts[k]) - 1
            endpoint, q = divmod(g, len(texts))
            if q not in parsed:
                parsed[q] = _query_parts(texts[q])
            parts = parsed[q]
            shape, dropped = self._add_query_parts(endpoint, parts, position)
            if later:
                if shape is None:
                    self.shape_overflow[endpoint] += later
                else:
                    self.shapes[endpoint][shape] += later
                if dropped:
                    private.append((k, position, tuple(dropped)))
        if private:
            self._drop_again(inverse.reshape(-1).astype(np.int64), private)

    def _add_query_parts(
        self, number: int, parts: list[tuple[str, bool, str | None, str | None]] | None, position: int
    ) -> tuple[tuple[tuple[str, bool], ...] | None, list[tuple[tuple[int, str], str]]]:
        """:meth:`_add_query` of a query string already split by :func:`_query_parts` (None: no query string)."""
        shapes = self.shapes[number]
        shape: tuple[tuple[str, bool], ...] = ()
        private: list[tuple[tuple[int, str], str]] = []
        if parts is not None:
            pools = self.query_pools[number]
            for name, eq, value, why in parts:
                pool = pools.setdefault(name, {}) if eq else None
                if pool is None or len(pool) >= self.pool_limit:
                    continue
                if why is not None:
                    self.query_dropped[why] = self.query_dropped.get(why, 0) + 1
                    private.append(((number, name), why))
                elif value is not None:
                    pool.setdefault(value, None)
                    if len(pool) == self.pool_limit:
                        self.filled.setdefault((number, name), position)
            shape = tuple((name, eq) for name, eq, _, _ in parts)
        if shape in shapes or len(shapes) < MAX_QUERY_SHAPES:
            shapes[shape] = shapes.get(shape, 0) + 1
            return shape, private
        self.shape_overflow[number] += 1
        return None, private

    def _targets_exact(self, keys: tuple[tuple[str, str], ...], code: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each request's endpoint number; the endpoints, pools and shapes of the distinct targets added in the
        order of their first request, the later requests to the same target counted (shapes, unmatched, values
        dropped while their pool had room) — the same as adding every request in turn."""
        self.filled = {}
        codes, first, counts = np.unique(code, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        number = np.zeros(len(keys), dtype=np.int64)
        private: list[tuple[int, int, tuple[tuple[tuple[int, str], str], ...]]] = []
        for k in order.tolist():
            c, position, later = int(codes[k]), int(first[k]), int(counts[k]) - 1
            target = self._add_target(*keys[c], position)
            number[c] = target.number
            if later:
                if target.shape is None:
                    self.shape_overflow[target.number] += later
                else:
                    shapes = self.shapes[target.number]
                    shapes[target.shape] += later
                self.unmatched += later * target.unmatched
                if target.private:
                    private.append((c, position, target.private))
        if private:
            self._drop_again(code, private)
        return number[code]

    def _drop_again(
        self, code: npt.NDArray[np.int64], private: list[tuple[int, int, tuple[tuple[tuple[int, str], str], ...]]]
    ) -> None:
        """Count the values left out again by the later requests of a chunk with the same query string, while
        their pool still had room (a pool filled at a position is full for the requests after it)."""
        order = np.argsort(code, kind="stable")
        ordered = code[order]
        for c, first, parts in private:
            lo, hi = np.searchsorted(ordered, [c, c + 1])
            positions = order[lo:hi]  # ascending: a stable sort keeps line order
            for pool, why in parts:
                until = self.filled.get(pool, len(code))
                again = int(np.count_nonzero((positions > first) & (positions < until)))
                if again:
                    self.query_dropped[why] = self.query_dropped.get(why, 0) + again


def _split_key(key: str) -> tuple[str, str]:
    """A chunk key ``method target`` → (method, target)."""
    method, target = key.split(" ", 1)
    return method, target


def _query_parts(query: str) -> list[tuple[str, bool, str | None, str | None]] | None:
    """A query string's parameters as (name, whether it has ``=``, value as :func:`query_text` reads it, why the
    value is left out of pools or None), names read by :func:`query_text` and empty or non-UTF-8 names left out;
    None for no query string."""
    if not query:
        return None
    parts = []
    for part in query.split("&"):
        raw_name, eq, raw_value = part.partition("=")
        name = query_text(raw_name)
        if name:
            value = query_text(raw_value)
            why = "not UTF-8" if value is None else private_value(name, value)
            parts.append((name, bool(eq), value, why))
    return parts


# (method, path, query) of a chunk key ``method target``: the target split at its first "?".
_TARGET_PARTS = r"(?s)^(?P<method>[^ ]*) (?P<path>[^?]*)(?:\?(?P<query>.*))?$"
_PLACEHOLDER_NAME = re.compile(r"\{([^{}/]+)\}")
_template_column = template_column  # shared with the k6 / JMeter readers (parity.sources.path_columns)


def _template_exact(route_map: RouteMap) -> bool:
    """Whether matching a path's template (:func:`_template_column`) finds the route matching the path itself:
    every route's placeholders are whole segments and none spans several, and no literal segment looks like an
    id (so it never equals an id segment, which its template replaces)."""
    cached = _TEMPLATE_EXACT.get(id(route_map))
    if cached is not None and cached[0] is route_map:
        return cached[1]
    exact = True
    for endpoint in route_map.routes:
        if route_map.globs.get(endpoint.route):
            exact = False
            break
        for segment in (endpoint.route.rstrip("/") or "/").split("/"):
            if _PLACEHOLDER_NAME.fullmatch(segment):
                continue
            literal = encode_path(segment)
            if "{" in segment or "}" in segment or (literal and _looks_like_id(literal)):
                exact = False
                break
        if not exact:
            break
    _TEMPLATE_EXACT.clear()
    _TEMPLATE_EXACT[id(route_map)] = (route_map, exact)
    return exact


_TEMPLATE_EXACT: dict[int, tuple[RouteMap, bool]] = {}


def _pool_value(raw: str) -> str | None:
    """A path segment as the replay needs it: decoded, since the replay percent-encodes pool values.

    Decoding is exact (UTF-8, strict), so re-encoding sends the server the same characters it got;
    a segment whose bytes are not UTF-8 cannot be reproduced that way and is left out (None).
    """
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None


_SURROGATE = re.compile("[\udc80-\udcff]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_LONG_HEX = re.compile(f"[0-9a-fA-F]{{{SECRET_VALUE_CHARS},}}")
_BASE64ISH = re.compile(f"[A-Za-z0-9+/_-]{{{SECRET_VALUE_CHARS},}}={{0,2}}")
_WORDS = re.compile(r"[a-z0-9]+")


def query_text(raw: str) -> str | None:
    """A query-string name or value as a form decoder reads it (``+`` is a space, ``%XX`` escapes are UTF-8);
    None when its bytes are not UTF-8 (the replay, which encodes text as UTF-8, could not send them again)."""
    try:
        text = unquote_plus(raw, errors="strict") if ("%" in raw or "+" in raw) else raw
    except UnicodeDecodeError:
        return None
    return None if _SURROGATE.search(text) else text


def private_value(name: str, value: str) -> str | None:
    """Why the query value ``value`` of parameter ``name`` must not be replayed, or None when it may be.

    ``"secret-like"``: the name contains a word of ``SECRET_NAME_WORDS`` or is split (by non-alphanumerics) into a
    word of ``SECRET_NAME_PARTS``; or the value is a JWT, at least ``SECRET_VALUE_CHARS`` hex digits, or as many
    base64-like characters mixing upper case, lower case and digits. ``"e-mail"``: the value holds an e-mail
    address. Short values (ids, page numbers, slugs) and UUIDs are kept."""
    lower = name.lower()
    if any(word in lower for word in SECRET_NAME_WORDS) or not SECRET_NAME_PARTS.isdisjoint(_WORDS.findall(lower)):
        return "secret-like"
    if _EMAIL.search(value):
        return "e-mail"
    if len(value) >= SECRET_VALUE_CHARS:
        if _JWT.fullmatch(value) or _LONG_HEX.fullmatch(value):
            return "secret-like"
        if _BASE64ISH.fullmatch(value) and not value.isdigit():
            mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
            if mixed and any(c.isdigit() for c in value):
                return "secret-like"
    return None


def _check_options(fmt: str, max_malformed_share: float, pool_limit: int) -> None:
    if fmt not in FORMATS:
        raise BadInput(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if not 0.0 <= max_malformed_share <= 1.0:
        raise BadInput(f"--max-malformed: {max_malformed_share} is not a share between 0 and 1")
    if pool_limit < 1:
        raise BadInput(f"pool_limit: {pool_limit} is not a positive number")


def _log_format(fmt: str, log_format: str | None, latency_field: str | None) -> LogFormat | None:
    """The compiled ``--log-format`` (None without one); BadInput for options that do not go together."""
    if log_format is None:
        if latency_field is not None:
            raise BadInput("--latency-field applies with --log-format (the built-in format reads --timing-field N)")
        return None
    if fmt != "nginx":
        raise BadInput(f"--log-format applies to --format nginx, not {fmt}")
    return compile_log_format(log_format, latency_field)


def _describe(fmt: str, files: list[Path]) -> str:
    more = f" and {len(files) - 1} more" if len(files) > 1 else ""
    return f"{_FORMAT_NAMES[fmt]} access logs: {files[0].name}{more}"


def _measurement(
    c: _Collector, fmt: str, files: list[Path], labels: dict[str, str], window: Window | None
) -> Measurement:
    if window is None:
        start = datetime.fromtimestamp(c.requests.first_s, UTC)
        end = datetime.fromtimestamp(c.requests.last_s + WINDOW_TAIL_S, UTC)
    else:
        start, end = window.start, window.end
    measured = c.requests.to_measurement(
        source=Source(SourceKind.ACCESS_LOG, description=_describe(fmt, files)),
        start=start,
        end=end,
        latency_kind=LatencyKind.SERVER,
        labels=labels,
    )
    number = {key: i for i, key in enumerate(c.index)}
    return replace(measured, endpoints=tuple(_with_request(e, c, number) for e in measured.endpoints))


def _with_request(stats: EndpointStats, c: _Collector, number: dict[tuple[str, str], int]) -> EndpointStats:
    i = number[(stats.endpoint.method, stats.endpoint.route)]
    params = {name: tuple(pool) for name, pool in c.pools[i].items() if pool}
    params_q, shapes = _query_shapes(c.shapes[i], c.shape_overflow[i], c.query_pools[i], set(c.pools[i]))
    request = RequestTemplate(path=stats.endpoint.route, params={**params, **params_q}, query_shapes=shapes)
    return replace(stats, request=request, resource=c.resources[i])


def _query_shapes(
    counted: dict[tuple[tuple[str, bool], ...], int],
    overflow: int,
    pools: dict[str, dict[str, None]],
    taken: set[str],
) -> tuple[dict[str, tuple[str, ...]], tuple[QueryShape, ...]]:
    """An endpoint's query shapes (most requests first; none when no request had a query string) and the pools
    their placeholders use. Placeholders are the parameter names without braces, ``_q`` appended while the name
    is ``taken`` (a path placeholder's); a parameter whose values were all left out gets no pool (unfillable).
    ``overflow`` requests (shapes beyond the cap) count towards the most common shape with a query string."""
    if not any(counted):
        return {}, ()
    placeholder: dict[str, str] = {}
    for name in dict.fromkeys(n for shape in counted for n, _ in shape):
        ph = name.replace("{", "").replace("}", "") or "q"
        while ph in taken:
            ph += "_q"
        taken.add(ph)
        placeholder[name] = ph
    ordered = sorted(counted.items(), key=lambda kv: -kv[1])  # stable: first seen first among equals
    weights = dict(ordered)
    top = next(shape for shape, _ in ordered if shape)
    weights[top] += overflow
    shapes = tuple(
        QueryShape(
            params=tuple((n, "{" + placeholder[n] + "}" if has_value else None) for n, has_value in shape),
            weight=float(weight),
        )
        for shape, weight in weights.items()
    )
    params = {placeholder[name]: tuple(pool) for name, pool in pools.items() if pool}
    return params, shapes


def read_access_logs(
    paths: str | Path | Iterable[str | Path],
    fmt: str,
    *,
    route_map: RouteMap | None = None,
    timing_field: int = -1,
    max_malformed_share: float = DEFAULT_MAX_MALFORMED_SHARE,
    pool_limit: int = DEFAULT_POOL_LIMIT,
    window: Window | None = None,
    window_slack_s: float = WINDOW_SLACK_S,
    log_format: str | None = None,
    latency_field: str | None = None,
    workers: int | None = None,
) -> AccessLogResult:
    """Read access log files (plain or gzip) of format ``fmt`` (``alb`` | ``nginx``) into a baseline.

    ``route_map`` turns paths into route templates (unmatched paths are templated heuristically and
    counted in ``unmatched``). ``timing_field`` picks the nginx extra field holding the latency in seconds
    (0-based, negative from the end; ignored for ALB). ``max_malformed_share``: refuse the logs (BadInput
    with the counts and the first example) when more than this share of non-blank lines is malformed.
    ``pool_limit``: distinct values kept per placeholder (the first seen). ``window`` (e.g. a replay's): keep
    only the requests that arrived in it, ± ``window_slack_s`` seconds; the Measurement's window is then
    ``window`` and the dropped requests are counted in ``before_window`` / ``after_window``. Latency kind
    SERVER, source ACCESS_LOG; see the module docstring for arrival times, latency, errors, skipped lines and
    the timeline. BadInput also when a file is missing or broken, or when no line holds a request (in the
    window, when one is given).

    ``log_format`` (nginx only): the format string, the whole ``log_format`` directive, or ``combined``
    (:func:`parity.sources.nginx_format.compile_log_format`); lines must then match it exactly, and
    ``latency_field`` names the latency variable (default ``request_time``; ``timing_field`` is not used).

    ``workers``: processes parsing files at once (None or 1: none besides this one; on 2 cores a pool measured
    no gain, see the README). A worker that dies is BadInput naming the file it was parsing. The files' chunks are
    added in file order whatever the pool, so the result does not depend on it.
    """
    _check_options(fmt, max_malformed_share, pool_limit)
    if not (window_slack_s >= 0 and math.isfinite(window_slack_s)):
        raise BadInput(f"--window-slack: {window_slack_s:g} is not a number of seconds >= 0")
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not files:
        raise BadInput("no access log files given")
    arrival = window is not None
    compiled = _log_format(fmt, log_format, latency_field)
    spec = _ParserSpec(fmt, timing_field, arrival, log_format, latency_field)
    keep = interval_s = None
    if window is not None:
        keep = (window.start.timestamp() - window_slack_s, window.end.timestamp() + window_slack_s)
        interval_s = timeline_interval_for((window.end - window.start).total_seconds())
    collector = _Collector(route_map, pool_limit, max_malformed_share, keep, interval_s)
    for chunk in _chunks(files, spec, workers):
        collector.consume(chunk)
    named = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more)"
    if collector.lines == 0:
        raise BadInput(f"{named}: no log lines")
    share = collector.malformed / collector.lines
    if share > max_malformed_share:
        raise BadInput(
            f"{named}: {collector.malformed} of {collector.lines} lines ({share:.2%}) are malformed, more than "
            f"the {max_malformed_share:.2%} allowed; first: {collector.malformed_examples[0]}"
        )
    if not collector.requests.count and window is not None and collector.before + collector.after:
        raise BadInput(_none_in_window(named, collector, window, window_slack_s))
    if not collector.requests.count:
        raise BadInput(
            f"{named}: no requests in {collector.lines} lines ({collector.malformed} malformed, "
            f"{collector.skipped} skipped)"
        )
    labels = {"format": fmt, "files": str(len(files)), "lines": str(collector.lines)}
    labels |= {"malformed": str(collector.malformed), "skipped": str(collector.skipped)}
    if compiled is not None:
        labels |= {"log_format": compiled.text, "latency_field": compiled.latency_variable or "-"}
    elif fmt == "nginx":
        labels["timing_field"] = str(timing_field)
    if collector.query_dropped:
        dropped = sorted(collector.query_dropped.items())
        labels["query_values_dropped"] = ", ".join(f"{n} {why}" for why, n in dropped)
    if window is not None:
        labels |= {"outside_window": str(collector.before + collector.after), "window_slack_s": f"{window_slack_s:g}"}
    return AccessLogResult(
        measurement=_measurement(collector, fmt, files, labels, window),
        lines=collector.lines,
        malformed=collector.malformed,
        malformed_examples=tuple(collector.malformed_examples),
        skipped=collector.skipped,
        skipped_examples=tuple(collector.skipped_examples),
        skipped_reasons=tuple(sorted(collector.skipped_reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        no_latency=collector.no_latency,
        unmatched=collector.unmatched,
        unmatched_examples=tuple(collector.unmatched_examples),
        before_window=collector.before,
        after_window=collector.after,
    )


def _chunks(files: list[Path], spec: _ParserSpec, workers: int | None) -> Iterator[_Chunk]:
    """Every file's chunks in file order: parsed here, or by a pool of ``workers`` processes one file each
    (see :func:`read_access_logs`)."""
    if workers is None or workers <= 1 or len(files) < 2:
        for path in files:
            yield from _parse_file(path, spec)
        return
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with ProcessPoolExecutor(max_workers=min(workers, len(files)), mp_context=context) as pool:
        # at most 2 files per worker in flight: memory stays bounded by a few files' parsed columns
        pending: deque[tuple[Path, Future[list[_Chunk]]]] = deque()
        queue = iter(files)
        for path in itertools.islice(queue, 2 * workers):
            pending.append((path, pool.submit(_parse_file_list, path, spec)))
        while pending:
            path, future = pending.popleft()
            try:
                chunks = future.result()
            except BrokenProcessPool:
                raise BadInput(f"{path}: the worker process reading it died (killed, or out of memory?)") from None
            for more in itertools.islice(queue, 1):
                pending.append((more, pool.submit(_parse_file_list, more, spec)))
            yield from chunks


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _none_in_window(named: object, c: _Collector, window: Window, slack_s: float) -> str:
    return (
        f"{named}: no request in the window {window.start.isoformat()} to {window.end.isoformat()} "
        f"(± {slack_s:g} s): its {c.before + c.after} requests arrived from {_utc(c.outside_first)} to "
        f"{_utc(c.outside_last)} ({c.before} before, {c.after} after)"
    )

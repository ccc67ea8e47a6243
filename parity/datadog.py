"""Datadog API access: client setup, the APM baseline pull, retries. The only module that imports
``datadog_api_client``.

What a pull asks for, per APM resource (``by {resource_name}``, tag filter ``env:<env>,service:<service>``):

- **Per-minute hits and errors** (v1 ``MetricsApi.query_metrics``, ``GET /api/v1/query``)::

      sum:trace.<span>.hits{env:E,service:S} by {resource_name}.as_count().rollup(sum, 60)
      sum:trace.<span>.errors{env:E,service:S} by {resource_name}.as_count().rollup(sum, 60)

  One series holds at most 1500 points, so the window is asked for in chunks of :data:`CHUNK_MINUTES`
  minutes (a 7-day window is 7 queries per metric). The totals over the window are the sums of the minutes:
  exact for COUNT metrics, and one pass instead of a second query.
- **Latency over the whole window** (v2 ``MetricsApi.query_scalar_data``, ``POST /api/v2/query/scalar``) of
  the ``trace.<span>`` distribution (converted to ms by the answer's unit block, see below): ``max`` (time
  aggregator max), ``p50`` … ``p99`` (time aggregator ``percentile``: the percentile of the merged distribution over the
  window), and the mean as ``sum / count`` of the distribution (both summed over the window), which is exact
  whatever the series' interval. Why v2 here: a percentile over a window cannot be rebuilt from the
  per-interval percentiles a v1 series returns, and a v1 ``.rollup(<window seconds>)`` buckets on fixed
  time boundaries, not on the window, so it may split the window in two; the scalar endpoint reduces over
  exactly ``[from, to)`` (aggregator ``percentile`` is what Datadog's own query-value widgets send for
  ``pNN:`` distribution queries).

Units: a scalar answer's number column carries ``meta.unit``, ``[unit, per_unit]`` (each null or an object
``{family, name, plural, scale_factor, short_name, id}``, as in Datadog's recorded answers). Latency
statistics (sum, max, pNN) are converted to ms by the unit's name — ``second`` ×1000, ``millisecond`` ×1,
``microsecond`` ×0.001, ``nanosecond`` ×1e-6 — and any other unit, a ``per_unit`` or a ``scale_factor`` that
contradicts the name is refused, naming the unit. A missing or null unit block keeps the documented unit of
``trace.<span>``: seconds. ``count`` is a number of spans (its unit block is not read); counts from v1
series are counts whatever their unit block says.

Untagged answers: a v1 series without the ``resource_name`` tag in its ``tag_set`` (a span metric with no
such tag) cannot be attributed to a resource. When every hits series lacks it the pull fails naming the tag;
when only some do, their counts are summed into the resource :data:`UNTAGGED_RESOURCE` (kept and listed as
unmapped, never dropped). Scalar rows whose group carries no ``resource_name`` value are left out; an answer
with values but no group at all fails naming the tag.

Missing data stays missing: a null point is None. A minute with no point at all in an answer counts 0 (APM
writes no point for a minute without spans, and the replay planner would otherwise fill quiet minutes with
the mean rate). Errors are only known for minutes whose hits are known.

Faults become :class:`DatadogError` (a ``BadInput``: one line, exit code 2), never naming a key's value:
401 → the API key was refused; 403 → the application key was refused or lacks ``timeseries_query``;
429 → wait ``X-RateLimit-Reset`` seconds and retry; 5xx, time-outs and connection errors → retry with
exponential backoff; every wait is reported through the progress callback. Retries are ours (the client's
``enable_retry`` sleeps inside urllib3, where a wait can neither be reported nor injected in tests).
Environment variables are not read here: the caller passes keys and site explicitly.

**Pushing results back** (``--push-datadog``, :func:`push_result` / :func:`push_parity`): per-endpoint parity
gauges through v2 ``MetricsApi.submit_metrics`` (``POST /api/v2/series``, API key only, batches of at most
:data:`MAX_SERIES_PAYLOAD_BYTES` of JSON: the intake takes 512,000 bytes) and one event through v1
``EventsApi.create_event`` (``POST /api/v1/events``): see :func:`parity_series` and :func:`parity_event`.
Points carry the push time in Unix seconds. Faults are retried and reported as for queries.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Final, TypeVar

import urllib3
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import (
    ApiException,
    ForbiddenException,
    OpenApiException,
)
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v1.api.metrics_api import MetricsApi as MetricsApiV1
from datadog_api_client.v1.model.event_alert_type import EventAlertType
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v2.api.metrics_api import MetricsApi as MetricsApiV2
from datadog_api_client.v2.model.formula_limit import FormulaLimit
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_series import MetricSeries
from datadog_api_client.v2.model.metrics_aggregator import MetricsAggregator
from datadog_api_client.v2.model.metrics_data_source import MetricsDataSource
from datadog_api_client.v2.model.metrics_scalar_query import MetricsScalarQuery
from datadog_api_client.v2.model.query_formula import QueryFormula
from datadog_api_client.v2.model.query_sort_order import QuerySortOrder
from datadog_api_client.v2.model.scalar_formula_query_request import ScalarFormulaQueryRequest
from datadog_api_client.v2.model.scalar_formula_request import ScalarFormulaRequest
from datadog_api_client.v2.model.scalar_formula_request_attributes import (
    ScalarFormulaRequestAttributes,
)
from datadog_api_client.v2.model.scalar_formula_request_queries import ScalarFormulaRequestQueries
from datadog_api_client.v2.model.scalar_formula_request_type import ScalarFormulaRequestType

from parity.bounds import MAX_COUNT, MAX_LATENCY_MS, MAX_UNIX_S, check_number, check_text, check_unix_s
from parity.errors import BadInput
from parity.judge.result import ParityResult, Verdict
from parity.model import LatencySummary
from parity.report.text import encodable, no_mentions

__all__ = [
    "CHUNK_MINUTES",
    "DEFAULT_SPAN",
    "GROUP_TAG",
    "LATENCY_QUERIES",
    "MAX_POINTS",
    "MAX_RETRIES",
    "MAX_SERIES_PAYLOAD_BYTES",
    "SITES",
    "TIMELINE_INTERVAL_S",
    "UNTAGGED_RESOURCE",
    "ApmPull",
    "DatadogClient",
    "DatadogError",
    "LatencyQuery",
    "ParityEvent",
    "ProgressFn",
    "PullProgress",
    "PushOutcome",
    "ResourcePull",
    "ScalarAnswer",
    "ScalarQuery",
    "Series",
    "Unit",
    "connect",
    "connect_intake",
    "datadog_tag",
    "errors_query",
    "hits_query",
    "latency_query",
    "ms_per_unit",
    "parity_event",
    "parity_series",
    "push_parity",
    "push_result",
    "series_batches",
    "tag_filter",
    "timeline_chunks",
]

#: Root span of a Rails (Rack) service: metrics ``trace.rack.request.*``.
DEFAULT_SPAN = "rack.request"
#: The tag every query groups by.
GROUP_TAG = "resource_name"
#: Resolution of the pulled timelines (s).
TIMELINE_INTERVAL_S = 60
#: Most points Datadog returns in one series.
MAX_POINTS = 1500
#: Minutes per timeline query: one day, so a chunk is ≤ 1441 points even with its end bucket.
CHUNK_MINUTES = 1440
#: Retries of one query after a 429, a 5xx, a time-out or a connection error.
MAX_RETRIES = 5
#: First backoff wait after a 5xx / connection error (s); doubles per retry, at most BACKOFF_MAX_S.
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 60.0
#: Wait after a 429 without a usable ``X-RateLimit-Reset`` header, and the shortest wait after any 429 (s).
RATE_LIMIT_FALLBACK_S = 10.0
RATE_LIMIT_MIN_WAIT_S = 1.0
#: Give up on a query rather than wait past this much time since its first attempt (s).
MAX_QUERY_TIME_S = 900.0
#: Seconds before one HTTP request is abandoned (then retried).
REQUEST_TIMEOUT_S = 60.0
#: Fewest groups a scalar query asks for (the API cuts the answer at the formula's limit).
SCALAR_MIN_GROUPS = 1000
#: Datadog sites the client knows (``--site``).
SITES: Final = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
    "us2.ddog-gov.com",
)
#: Characters allowed in a service, env or span name put into a query.
_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")
#: Milliseconds per unit of Datadog's time units a latency may come in (by unit name).
TIME_UNITS_MS: Final = {"nanosecond": 1e-6, "microsecond": 1e-3, "millisecond": 1.0, "second": 1000.0}
#: The unit of ``trace.<span>`` when an answer carries no unit block.
DEFAULT_LATENCY_UNIT = "second"
#: The resource that hits of series without the ``resource_name`` tag are counted under (not a tag value:
#: Datadog's tag values have no spaces or parentheses).
UNTAGGED_RESOURCE = "(no resource_name tag)"
_AGGREGATORS: Final = {
    "sum": MetricsAggregator.SUM,
    "max": MetricsAggregator.MAX,
    "avg": MetricsAggregator.AVG,
    "percentile": MetricsAggregator.PERCENTILE,
}

T = TypeVar("T")


class DatadogError(BadInput):
    """Datadog refused, failed or returned nothing for a query. One line; never contains a key."""


# -- progress -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullProgress:
    """Where a pull is: ``done`` of ``total`` queries finished, ``query`` the one running (or last run).

    ``wait_s`` > 0 means the pull is about to sleep that long before retry number ``attempt`` of ``query``,
    for ``reason`` (e.g. ``rate limited (HTTP 429)``). No key ever appears in these fields.
    """

    done: int
    total: int
    query: str
    wait_s: float = 0.0
    reason: str = ""
    attempt: int = 0

    @property
    def waiting(self) -> bool:
        return self.wait_s > 0


ProgressFn = Callable[[PullProgress], None]


def _no_progress(_: PullProgress) -> None:
    return None


# -- queries --------------------------------------------------------------------------------------


def _checked_name(what: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise DatadogError(f"{what} {value!r}: expected letters, digits and _ . : / - only")
    return value


def tag_filter(env: str, service: str) -> str:
    """``env:<env>,service:<service>`` (BadInput when a name would break the query)."""
    return f"env:{_checked_name('env', env)},service:{_checked_name('service', service)}"


def hits_query(span: str, tags: str) -> str:
    """Per-minute request counts per resource."""
    return f"sum:trace.{span}.hits{{{tags}}} by {{{GROUP_TAG}}}.as_count().rollup(sum, {TIMELINE_INTERVAL_S})"


def errors_query(span: str, tags: str) -> str:
    """Per-minute error counts per resource."""
    return f"sum:trace.{span}.errors{{{tags}}} by {{{GROUP_TAG}}}.as_count().rollup(sum, {TIMELINE_INTERVAL_S})"


@dataclass(frozen=True)
class LatencyQuery:
    """One window-level statistic of the ``trace.<span>`` distribution: space and time aggregators."""

    name: str  # sum | count | max | p50 | p75 | p90 | p95 | p99
    space: str  # the query's aggregator (``p99:trace...``)
    time: str  # the scalar reducer over the window (MetricsAggregator)


#: The scalar queries of a pull. ``sum`` / ``count`` give the exact mean; the rest are reported as is.
LATENCY_QUERIES: Final = (
    LatencyQuery("sum", "sum", "sum"),
    LatencyQuery("count", "count", "sum"),
    LatencyQuery("max", "max", "max"),
    LatencyQuery("p50", "p50", "percentile"),
    LatencyQuery("p75", "p75", "percentile"),
    LatencyQuery("p90", "p90", "percentile"),
    LatencyQuery("p95", "p95", "percentile"),
    LatencyQuery("p99", "p99", "percentile"),
)


def latency_query(span: str, tags: str, stat: LatencyQuery) -> str:
    return f"{stat.space}:trace.{span}{{{tags}}} by {{{GROUP_TAG}}}"


def _epoch_s(t: datetime, what: str) -> int:
    if t.tzinfo is None:
        raise DatadogError(f"{what} {t.isoformat()}: no time zone (use Z or +00:00)")
    seconds = t.timestamp()
    if seconds % TIMELINE_INTERVAL_S:
        raise DatadogError(f"{what} {t.isoformat()}: not on a whole minute (the timeline is per minute)")
    return int(seconds)


def timeline_chunks(start_s: int, end_s: int, minutes: int = CHUNK_MINUTES) -> tuple[tuple[int, int], ...]:
    """``[start_s, end_s)`` cut into consecutive spans of at most ``minutes`` minutes (Unix s)."""
    step = minutes * TIMELINE_INTERVAL_S
    return tuple((a, min(a + step, end_s)) for a in range(start_s, end_s, step))


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One group of a v1 answer: the ``resource_name`` value (None when the series lacks that tag; ``tags``
    is its ``tag_set`` as received), the point interval (s), points (Unix s, value)."""

    group: str | None
    interval_s: int
    points: tuple[tuple[int, float | None], ...]
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unit:
    """A Datadog unit block: ``name`` (``second``), ``family`` (``time``), ``scale_factor`` (to the family's
    base unit; None when absent) and the ``per_unit`` name of a rate (None for a plain unit)."""

    name: str
    family: str | None = None
    scale_factor: float | None = None
    per_unit: str | None = None

    def __str__(self) -> str:
        text = self.name + (f" per {self.per_unit}" if self.per_unit else "")
        return text + (f" ({self.family})" if self.family else "")


@dataclass(frozen=True)
class ScalarAnswer:
    """A scalar query's values by ``resource_name`` (None = null) and the unit block of its number column
    (None when the answer carried none)."""

    values: Mapping[str, float | None]
    unit: Unit | None = None


@dataclass(frozen=True)
class ScalarQuery:
    """One query of a multi-query scalar request (:meth:`DatadogClient.scalar_table`): ``name`` names the
    query and its one-query formula (letters, digits, ``_``; a letter first), ``query`` the metric query
    text, ``aggregator`` its reducer over the window (``sum`` | ``max`` | ``avg`` | ``percentile``)."""

    name: str
    query: str
    aggregator: str


@dataclass(frozen=True)
class ResourcePull:
    """What a pull found for one APM resource (tag value, e.g. ``employeescontroller_show``).

    ``hits`` / ``errors``: per minute from the window start; None = not known (a null point).
    ``latency``: over the whole window, in ms; a statistic the resource had no value for is None.
    """

    resource: str
    hits: tuple[int | None, ...]
    errors: tuple[int | None, ...]
    latency: LatencySummary

    @property
    def count(self) -> int:
        """Requests over the minutes whose hits are known."""
        return sum(h for h in self.hits if h is not None)

    @property
    def error_count(self) -> int:
        """Errors over the minutes whose hits are known."""
        return sum(e for e in self.errors if e is not None)


@dataclass(frozen=True)
class ApmPull:
    """The raw result of :meth:`DatadogClient.pull_apm`: resources sorted by name, timelines per minute."""

    service: str
    env: str
    span: str
    start: datetime
    end: datetime
    resources: tuple[ResourcePull, ...]
    queries: tuple[str, ...] = ()  # every distinct query text sent, in order
    interval_s: int = TIMELINE_INTERVAL_S

    @property
    def tag_filter(self) -> str:
        return tag_filter(self.env, self.service)


# -- the client -----------------------------------------------------------------------------------


def _first_line(text: object, limit: int = 200) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _body_message(exc: ApiException) -> str:
    """The ``errors`` Datadog put in an error body, on one line (bodies never echo keys)."""
    body = exc.body
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return _first_line("; ".join(str(e) for e in errors))
        if body.get("error"):
            return _first_line(body["error"])
    return _first_line(exc.reason or "")


def _connection_reason(exc: urllib3.exceptions.HTTPError, timeout_s: float) -> str:
    reason: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # (a ConnectTimeoutError subclass)
        return "cannot connect"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return "connection dropped"
    return f"connection error ({type(reason).__name__})"


def _rate_limited(exc: ApiException, host: str) -> str:
    """The one line for a 429: when the limit resets (``X-RateLimit-Reset``, seconds) and which limit."""
    reset = _header(exc.headers, "X-RateLimit-Reset")
    name = _header(exc.headers, "X-RateLimit-Name")
    limit, period = _header(exc.headers, "X-RateLimit-Limit"), _header(exc.headers, "X-RateLimit-Period")
    when = f"the limit resets in {_first_line(reset, 20)} s" if reset else "Datadog did not say when it resets"
    which = (
        f" ({_first_line(name, 60)}: {_first_line(limit, 20)} requests per {_first_line(period, 20)} s)"
        if (name and limit and period)
        else ""
    )
    return (
        f"Datadog rate limit reached (HTTP 429) at {host}: {when}{which}; other clients of the org share it, "
        "or the checks are too frequent"
    )


@dataclass(frozen=True)
class DatadogClient:
    """A configured connection to one Datadog site (or ``dd_url``). Build it with :func:`connect`.

    ``sleep`` and ``clock`` are injectable (tests pass a recorder and never wait). Close it when done
    (it is a context manager).
    """

    api: ApiClient = field(repr=False)
    host: str
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    max_retries: int = MAX_RETRIES
    timeout_s: float = REQUEST_TIMEOUT_S

    def __enter__(self) -> DatadogClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()

    # -- errors and retries --

    def _secrets(self) -> list[str]:
        keys: dict[str, str] = self.api.configuration.api_key
        return [v for v in keys.values() if isinstance(v, str) and len(v) >= 4]

    def _error(self, message: str) -> DatadogError:
        """A DatadogError whose text is scrubbed of key values (defence in depth: we never put them in)."""
        for secret in self._secrets():
            message = message.replace(secret, "[redacted]")
        return DatadogError(message)

    def _call(self, query: str, request: Callable[[], T], on_wait: Callable[[float, str, int], None]) -> T:
        """Run ``request`` (one API call for ``query``), retrying 429 / 5xx / connection faults."""
        deadline = self.clock() + MAX_QUERY_TIME_S
        attempt = 0
        while True:
            try:
                return request()
            except ApiException as exc:
                refused = self._refusal(exc, query)
                if refused is not None:
                    raise refused from None
                if exc.status == 429:
                    reason = "rate limited (HTTP 429)"
                    wait = self._rate_limit_wait(exc, query)
                else:
                    reason = f"HTTP {exc.status}"
                    wait = min(BACKOFF_BASE_S * 2.0**attempt, BACKOFF_MAX_S)
            except urllib3.exceptions.HTTPError as exc:
                reason = _connection_reason(exc, self.timeout_s)
                wait = min(BACKOFF_BASE_S * 2.0**attempt, BACKOFF_MAX_S)
            except OpenApiException as exc:  # the answer did not match the API's model
                raise self._error(f"unexpected answer from Datadog to {query}: {_first_line(exc)}") from None
            attempt += 1
            if attempt > self.max_retries or self.clock() + wait > deadline:
                raise self._error(
                    f"Datadog query failed after {attempt} attempts (last: {reason}) at {self.host}: {query}"
                ) from None
            on_wait(wait, reason, attempt)
            self.sleep(wait)

    def _refusal(self, exc: ApiException, query: str) -> DatadogError | None:
        """The error for an answer no retry can mend (401, 403, 404, another 4xx, no HTTP status: the
        connection failed), in one line naming what to check; None for 429 and 5xx (the callers retry those
        or report them their own way)."""
        status = int(exc.status or 0)
        if status == 429 or status >= 500:
            return None
        if status == 401:
            return self._error(f"Datadog refused the API key (HTTP 401) at {self.host}: check DD_API_KEY and the site")
        if status == 403:
            return self._error(
                f"Datadog refused the application key (HTTP 403) at {self.host}: DD_APP_KEY is invalid, "
                "or lacks the timeseries_query permission, or belongs to another org than DD_API_KEY"
            )
        if status == 0:
            return self._error(f"cannot talk to Datadog at {self.host}: {_first_line(exc.reason)}")
        if status == 404:
            return self._error(f"no Datadog API at {self.host} (HTTP 404): check the site or URL")
        return self._error(f"Datadog rejected {query} (HTTP {status}): {_body_message(exc)}")

    def _rate_limit_wait(self, exc: ApiException, query: str) -> float:
        text = _header(exc.headers, "X-RateLimit-Reset")
        try:
            wait = float(text) if text is not None else RATE_LIMIT_FALLBACK_S
        except ValueError:
            wait = RATE_LIMIT_FALLBACK_S
        if not math.isfinite(wait) or wait > MAX_QUERY_TIME_S:
            raise self._error(f"Datadog rate limit resets in {text} s, too long to wait: {query}")
        return max(wait, RATE_LIMIT_MIN_WAIT_S)

    def _call_once(self, query: str, request: Callable[[], T]) -> T:
        """Run ``request`` once: every fault raises DatadogError at once, in one line that names the HTTP
        status (or the connection fault) and what to check; a 429 says when the limit resets."""
        try:
            return request()
        except ApiException as exc:
            refused = self._refusal(exc, query)
            if refused is not None:
                raise refused from None
            if exc.status == 429:
                raise self._error(_rate_limited(exc, self.host)) from None
            raise self._error(
                f"Datadog failed (HTTP {exc.status}) at {self.host}: {_body_message(exc) or 'server error'}; "
                "a fault on Datadog's side (see status.datadoghq.com)"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise self._error(
                f"Datadog at {self.host}: {_connection_reason(exc, self.timeout_s)} (check the network, the site "
                "or the URL)"
            ) from None
        except OpenApiException as exc:  # the answer did not match the API's model
            raise self._error(f"unexpected answer from Datadog to {query}: {_first_line(exc)}") from None

    # -- single queries --

    def timeseries(
        self, query: str, start_s: int, end_s: int, on_wait: Callable[[float, str, int], None] | None = None
    ) -> tuple[Series, ...]:
        """A v1 timeseries query over ``[start_s, end_s]`` (Unix s); one :class:`Series` per group.

        Points are (Unix s, value) with None for a null point. A series without the group tag has
        ``group`` None (its ``tags`` say what it had).
        """
        api = MetricsApiV1(self.api)  # type: ignore[no-untyped-call]
        answer = _plain(
            self._call(query, lambda: api.query_metrics(_from=start_s, to=end_s, query=query), on_wait or _ignore_wait)
        )
        if answer.get("status", "ok") == "error":
            raise self._error(f"Datadog rejected {query}: {_first_line(answer.get('error', ''))}")
        try:
            return tuple(_series(raw) for raw in answer.get("series") or [])
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self._error(f"unexpected answer from Datadog to {query}: {type(exc).__name__}: {exc}") from None

    def scalar(
        self,
        query: str,
        aggregator: str,
        start_s: int,
        end_s: int,
        *,
        groups: int = SCALAR_MIN_GROUPS,
        on_wait: Callable[[float, str, int], None] | None = None,
    ) -> ScalarAnswer:
        """A v2 scalar query reduced over ``[start_s, end_s)``: group tag value → value (None if null), and
        the number column's unit block (values are as Datadog sent them: not converted here).

        ``groups`` is the most groups the answer may hold (the formula's limit).
        """
        body = _scalar_body([ScalarQuery("a", query, aggregator)], start_s, end_s, groups)
        api = MetricsApiV2(self.api)  # type: ignore[no-untyped-call]
        answer = _plain(self._call(query, lambda: api.query_scalar_data(body=body), on_wait or _ignore_wait))
        if answer.get("errors"):
            raise self._error(f"Datadog rejected {query}: {_first_line(answer['errors'])}")
        columns = ((answer.get("data") or {}).get("attributes") or {}).get("columns") or []
        try:
            return _scalar_answer(list(columns), query, self._error)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self._error(f"unexpected answer from Datadog to {query}: {type(exc).__name__}: {exc}") from None

    def scalar_table(
        self,
        queries: Sequence[ScalarQuery],
        start_s: int,
        end_s: int,
        *,
        groups: int = SCALAR_MIN_GROUPS,
        retry: bool = True,
        on_wait: Callable[[float, str, int], None] | None = None,
    ) -> dict[str, ScalarAnswer]:
        """Several v2 scalar queries in ONE request (``POST /api/v2/query/scalar``), each reduced over
        ``[start_s, end_s)`` (Unix s) and returned as its own formula: query name → :class:`ScalarAnswer`
        (values by ``resource_name`` as Datadog sent them, not converted; an answer without one column per
        formula is refused).

        ``groups``: most groups per formula. ``retry`` False: one attempt, no wait — a 401/403/429/5xx, a
        time-out (the client's ``timeout_s``) or a connection fault raises DatadogError at once
        (:meth:`_call_once`; a 429 says when the limit resets).
        """
        if not queries:
            raise DatadogError("a scalar request needs at least one query")
        names = [q.name for q in queries]
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n)]
        if bad or len(set(names)) != len(names):
            raise DatadogError(f"scalar query names {names!r}: expected distinct words (a letter first)")
        body = _scalar_body(queries, start_s, end_s, groups)
        api = MetricsApiV2(self.api)  # type: ignore[no-untyped-call]
        what = f"a scalar request of {len(queries)} queries ({queries[0].query} …)"

        def request() -> Any:
            return api.query_scalar_data(body=body)

        raw = self._call(what, request, on_wait or _ignore_wait) if retry else self._call_once(what, request)
        answer = _plain(raw)
        errors = answer.get("errors")
        if errors and (
            isinstance(errors, str) or (isinstance(errors, list) and all(isinstance(e, str) for e in errors))
        ):
            raise self._error(
                f"Datadog rejected {what}: {_first_line('; '.join([errors] if isinstance(errors, str) else errors))}"
            )
        if errors:
            raise self._error(f"unexpected answer from Datadog to {what}: errors {str(errors)[:80]}")
        data = answer.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("attributes"), Mapping):
            raise self._error(f"unexpected answer from Datadog to {what}: no data.attributes")
        columns = data["attributes"].get("columns") or []
        try:
            return _scalar_columns(list(columns), queries, self._error)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise self._error(f"unexpected answer from Datadog to {what}: {type(exc).__name__}: {exc}") from None

    # -- the APM pull --

    def pull_apm(
        self,
        *,
        service: str,
        env: str,
        start: datetime,
        end: datetime,
        span: str = DEFAULT_SPAN,
        progress: ProgressFn | None = None,
    ) -> ApmPull:
        """Pull per-resource hits/errors per minute and window latency for ``service`` in ``env``.

        The window ``[start, end)`` must be whole minutes (UTC-aware). Raises DatadogError when a query
        fails or when the hits queries return no series at all (naming the query and the tag filter).
        """
        report = progress or _no_progress
        start_s, end_s = _epoch_s(start, "window start"), _epoch_s(end, "window end")
        if end_s <= start_s:
            raise DatadogError(f"window end {end.isoformat()} is not after start {start.isoformat()}")
        tags = tag_filter(env, service)
        _checked_name("span", span)
        chunks = timeline_chunks(start_s, end_s)
        total = 2 * len(chunks) + len(LATENCY_QUERIES)
        state = _Progress(report, total)
        hits_q, errors_q = hits_query(span, tags), errors_query(span, tags)
        minutes = (end_s - start_s) // TIMELINE_INTERVAL_S

        hits = self._minute_grid(hits_q, chunks, start_s, minutes, state)
        if hits.untagged and set(hits.groups) == {UNTAGGED_RESOURCE}:
            raise DatadogError(
                f"Datadog answered {hits_q} with {hits.untagged} series, none tagged {GROUP_TAG} (tag_set "
                f"{list(hits.untagged_tags)!r}): the span's metrics carry no {GROUP_TAG} tag for {tags}; check "
                "the span name (the service's root span) and the window"
            )
        if not hits.groups:
            raise DatadogError(
                f"Datadog returned no series for {hits_q} (tag filter {tags}) between {start.isoformat()} and "
                f"{end.isoformat()}: check the service, env and span names and the window"
            )
        errors = self._minute_grid(errors_q, chunks, start_s, minutes, state).groups
        stats: dict[str, dict[str, float | None]] = {}
        for stat in LATENCY_QUERIES:
            q = latency_query(span, tags, stat)
            state.start(q)
            groups = max(SCALAR_MIN_GROUPS, len(hits.groups))
            answer = self.scalar(q, stat.time, start_s, end_s, groups=groups, on_wait=state.wait)
            stats[stat.name] = _in_ms(answer, q, self._error) if stat.name != "count" else dict(answer.values)
            state.finish()
        resources = []
        for name in sorted(hits.groups):
            counts = _finish_counts(hits.groups[name])
            resources.append(
                ResourcePull(
                    resource=name,
                    hits=counts,
                    errors=_finish_errors(errors.get(name), counts),
                    latency=_latency_ms(name, stats),
                )
            )
        queries = (hits_q, errors_q, *(latency_query(span, tags, s) for s in LATENCY_QUERIES))
        return ApmPull(service, env, span, start, end, tuple(resources), queries)

    def _minute_grid(
        self, query: str, chunks: Sequence[tuple[int, int]], start_s: int, minutes: int, state: _Progress
    ) -> _Grid:
        """Per group, one slot per minute of the window: a value, None (null point) or ABSENT (no point).

        Series without the group tag are summed minute by minute under :data:`UNTAGGED_RESOURCE` (a null
        point on either side makes the minute unknown) and counted in ``untagged``.
        """
        grid = _Grid({})
        for a, b in chunks:
            state.start(query)
            for series in self.timeseries(query, a, b, on_wait=state.wait):
                if series.interval_s != TIMELINE_INTERVAL_S:
                    raise self._error(_coarse_answer(query, series.interval_s, a, b))
                group = series.group if series.group is not None else UNTAGGED_RESOURCE
                if series.group is None:
                    grid.untagged += 1
                    grid.untagged_tags = grid.untagged_tags or series.tags
                slots = grid.groups.setdefault(group, [ABSENT] * minutes)
                for ts, value in series.points:
                    if a <= ts < b:  # the answer may include the bucket starting at ``to``
                        i = (ts - start_s) // TIMELINE_INTERVAL_S
                        slots[i] = _merge_point(slots[i], value, add=series.group is None)
            state.finish()
        return grid


@dataclass
class _Grid:
    """What :meth:`DatadogClient._minute_grid` read: slots per group, and how many series had no group tag
    (with the first such series' ``tag_set``, for the message)."""

    groups: dict[str, list[float | _Absent | None]]
    untagged: int = 0
    untagged_tags: tuple[str, ...] = ()


def _scalar_body(queries: Sequence[ScalarQuery], start_s: int, end_s: int, groups: int) -> ScalarFormulaQueryRequest:
    """A v2 scalar request over ``[start_s, end_s)`` (Unix s): each metrics query with its own formula, each
    formula cut at ``groups`` groups, largest first."""
    return ScalarFormulaQueryRequest(
        data=ScalarFormulaRequest(
            attributes=ScalarFormulaRequestAttributes(
                _from=start_s * 1000,
                to=end_s * 1000,
                queries=ScalarFormulaRequestQueries(  # type: ignore[no-untyped-call]
                    [
                        MetricsScalarQuery(
                            aggregator=_AGGREGATORS[q.aggregator],
                            data_source=MetricsDataSource.METRICS,
                            name=q.name,
                            query=q.query,
                        )
                        for q in queries
                    ]
                ),
                formulas=[
                    QueryFormula(formula=q.name, limit=FormulaLimit(count=groups, order=QuerySortOrder.DESC))
                    for q in queries
                ],
            ),
            type=ScalarFormulaRequestType.SCALAR_REQUEST,
        )
    )


def _merge_point(slot: float | _Absent | None, value: float | None, *, add: bool) -> float | _Absent | None:
    """A minute's slot after one more point: the first point sets it; a later one for the same group replaces
    it unless null; with ``add`` (untagged series, several per minute) the values add up (null wins)."""
    if isinstance(slot, _Absent):
        return value
    if not add:
        return value if value is not None else slot
    return None if slot is None or value is None else slot + value


def _coarse_answer(query: str, interval_s: int, a: int, b: int) -> str:
    """The message for an answer whose points are coarser than a minute. The ">MAX_POINTS" hint is given only
    when it applies: the chunk ``[a, b]`` asks for ``b // 60 - a // 60 + 1`` one-minute buckets (the bucket
    starting at ``b`` included), and only more than :data:`MAX_POINTS` of them make Datadog coarsen."""
    asked = b // TIMELINE_INTERVAL_S - a // TIMELINE_INTERVAL_S + 1
    why = (
        f"{asked} points asked for, more than the {MAX_POINTS} Datadog returns per series"
        if asked > MAX_POINTS
        else f"{asked} points asked for, within Datadog's {MAX_POINTS}-point limit: Datadog chose that rollup"
    )
    return f"Datadog answered {query} with {interval_s} s points instead of {TIMELINE_INTERVAL_S} s ({why})"


class _Absent:
    """No point in the answer for that minute (as opposed to a null point)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


def _ignore_wait(_wait_s: float, _reason: str, _attempt: int) -> None:
    return None


@dataclass
class _Progress:
    """Counts finished queries of a pull and forwards progress and waits to the caller's callback."""

    report: ProgressFn
    total: int
    done: int = 0
    query: str = ""

    def start(self, query: str) -> None:
        self.query = query
        self.report(PullProgress(self.done, self.total, query))

    def wait(self, wait_s: float, reason: str, attempt: int) -> None:
        self.report(PullProgress(self.done, self.total, self.query, wait_s=wait_s, reason=reason, attempt=attempt))

    def finish(self) -> None:
        self.done += 1
        if self.done == self.total:
            self.report(PullProgress(self.done, self.total, self.query))


def _group_value(tag_set: Sequence[str]) -> str | None:
    prefix = GROUP_TAG + ":"
    for tag in tag_set:
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return None


def _plain(answer: Any) -> dict[str, Any]:
    """A client answer as plain JSON data (the client leaves nested objects as dicts or models)."""
    data = answer.to_dict() if hasattr(answer, "to_dict") else answer
    if not isinstance(data, dict):
        raise DatadogError(f"unexpected answer from Datadog: {type(answer).__name__}")
    return data


def _series(raw: Mapping[str, Any]) -> Series:
    """One v1 series as a :class:`Series` (``group`` None when it lacks the group tag). ValueError when a point
    is not (a Unix time in ms between 1970 and 2100, a count in [0, 2^53] or null) or the group name is not
    valid Unicode (every series pulled is a count of spans per minute)."""
    tag_set = tuple(str(t) for t in raw.get("tag_set") or [])
    group = _group_value(tag_set)
    if group is not None:
        check_text(group, GROUP_TAG)
    where = group if group is not None else "(untagged series)"
    points = []
    for p in raw.get("pointlist") or []:
        ts_ms, value = getattr(p, "value", p)
        ts_s = check_unix_s(float(ts_ms) / 1000.0, f"{where}: point time")
        count = None if value is None else check_number(value, f"{where}: point value", lo=0.0, hi=MAX_COUNT)
        points.append((round(ts_s), count))
    interval = check_number(raw["interval"], f"{where}: interval", lo=1.0, hi=MAX_UNIX_S)
    return Series(group, int(interval), tuple(points), tag_set)


def _scalar_answer(
    columns: Sequence[Mapping[str, Any]], query: str, error: Callable[[str], DatadogError]
) -> ScalarAnswer:
    """A scalar answer: the ``resource_name`` group column zipped with the (single) number column, and that
    column's unit block. A row whose group has no ``resource_name`` value is left out (it names no resource)."""
    groups = [c for c in columns if c.get("type") == "group"]
    numbers = [c for c in columns if c.get("type") == "number"]
    if not numbers:
        return ScalarAnswer({})
    unit = _unit(numbers[0].get("meta"), query, error)
    values = list(numbers[0].get("values") or [])
    if not groups:
        if values:
            raise error(
                f"Datadog answered {query} with {len(values)} value(s) but no group: the {GROUP_TAG} tag is missing"
            )
        return ScalarAnswer({}, unit)
    names = list(groups[0].get("values") or [])
    if len(names) != len(values):
        raise error(f"Datadog answered {query} with {len(names)} groups but {len(values)} values")
    out: dict[str, float | None] = {}
    for name, value in zip(names, values, strict=True):
        key = str(name[0]) if isinstance(name, list | tuple) and name else "" if name in ((), []) else str(name)
        key = check_text(key.removeprefix(GROUP_TAG + ":"), GROUP_TAG)
        if not key:
            continue
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise error(f"unexpected answer from Datadog to {query}: not a number: {str(repr(value))[:40]}")
        number = None if value is None else float(value)
        if number is not None and number < 0:
            raise error(f"Datadog answered {query} with a negative value {number:g} for {key[:80]!r}")
        out[key] = number if number is not None and math.isfinite(number) else None
    return ScalarAnswer(out, unit)


def _scalar_columns(
    columns: Sequence[Mapping[str, Any]], queries: Sequence[ScalarQuery], error: Callable[[str], DatadogError]
) -> dict[str, ScalarAnswer]:
    """A multi-formula scalar answer: per query name, its number column zipped with the (first) group column.

    A number column is matched to its formula by name (the formula's text, as Datadog names it); when the
    names do not all match but there is one number column per formula, by position (columns come in formula
    order). Anything else is refused: a value must never be read as another statistic, and a formula without
    its column (Datadog answers one per formula) must never be read as a formula without values."""
    groups = [c for c in columns if c.get("type") == "group"]
    numbers = [c for c in columns if c.get("type") == "number"]
    names = [q.name for q in queries]
    by_name = {str(c.get("name")): c for c in numbers}
    if set(by_name) == set(names) and len(by_name) == len(numbers):
        matched = {n: by_name[n] for n in names}
    elif len(numbers) == len(names):
        matched = dict(zip(names, numbers, strict=True))
    else:
        raise error(
            f"Datadog answered {len(names)} formulas with {len(numbers)} number columns named "
            f"{[str(c.get('name'))[:20] for c in numbers][:12]!r}: cannot tell which is which"
        )
    return {q.name: _scalar_answer([*groups[:1], matched[q.name]], q.query, error) for q in queries}


def _unit_object(raw: Any, what: str) -> Unit | None:
    """One unit object of a unit block (a dict, or the client's model turned into one); None for null."""
    if raw is None:
        return None
    data = raw.to_dict() if hasattr(raw, "to_dict") else raw
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise ValueError(f"{what}: not a unit object: {str(data)[:80]}")
    scale = data.get("scale_factor")
    return Unit(
        name=data["name"],
        family=str(data["family"]) if data.get("family") is not None else None,
        scale_factor=None if scale is None else check_number(scale, f"{what} scale_factor", lo=0.0, hi=MAX_UNIX_S),
    )


def _unit(meta: Any, query: str, error: Callable[[str], DatadogError]) -> Unit | None:
    """The unit block of a number column's ``meta`` (``{"unit": [unit, per_unit]}``, each null or a unit
    object); None when there is none. A ``per_unit`` is kept on the unit (a rate is not a latency)."""
    block = meta.get("unit") if isinstance(meta, Mapping) else None
    if block is None:
        return None
    if isinstance(block, Mapping):  # a single unit object (not seen in recorded answers; read the same)
        block = [block, None]
    if not isinstance(block, list | tuple) or not block:
        raise error(f"unexpected answer from Datadog to {query}: unit block {str(block)[:80]}")
    unit = _unit_object(block[0], "unit")
    per = _unit_object(block[1], "per_unit") if len(block) > 1 else None
    if unit is None:
        return None if per is None else Unit(name="(none)", per_unit=per.name)
    return Unit(unit.name, unit.family, unit.scale_factor, per.name if per is not None else None)


def ms_per_unit(unit: Unit | None, query: str) -> float:
    """Milliseconds per unit of a latency answered in ``unit`` (None: the documented seconds of
    ``trace.<span>``). DatadogError naming the unit for a unit that is not a time (:data:`TIME_UNITS_MS`), a
    rate (``per_unit``), or a ``scale_factor`` (seconds per unit) that contradicts the unit's name."""
    if unit is None:
        return TIME_UNITS_MS[DEFAULT_LATENCY_UNIT]
    factor = TIME_UNITS_MS.get(unit.name)
    if unit.per_unit is not None or factor is None or unit.family not in (None, "time"):
        raise DatadogError(
            f"Datadog answered {query} in {unit}, not a time unit parity can read as a latency "
            f"(expected one of {', '.join(TIME_UNITS_MS)})"
        )
    if unit.scale_factor is not None and not math.isclose(unit.scale_factor, factor / 1000.0, rel_tol=1e-6):
        raise DatadogError(
            f"Datadog answered {query} in {unit.name} with scale_factor {unit.scale_factor:g} "
            f"(a {unit.name} is {factor / 1000.0:g} s): refusing a latency whose unit is unclear"
        )
    return factor


def _in_ms(answer: ScalarAnswer, query: str, error: Callable[[str], DatadogError]) -> dict[str, float | None]:
    """A latency answer's values converted to ms by its unit block (:func:`ms_per_unit`)."""
    try:
        factor = ms_per_unit(answer.unit, query)
    except DatadogError as exc:
        raise error(str(exc)) from None
    return {k: None if v is None else v * factor for k, v in answer.values.items()}


def _finish_counts(slots: Sequence[float | _Absent | None]) -> tuple[int | None, ...]:
    """Minute counts: ABSENT → 0 (no spans that minute), null → None."""
    out: list[int | None] = []
    for v in slots:
        out.append(0 if isinstance(v, _Absent) else None if v is None else round(v))
    return tuple(out)


def _finish_errors(
    slots: Sequence[float | _Absent | None] | None, hits: Sequence[int | None]
) -> tuple[int | None, ...]:
    """Minute errors, known only where hits are known; absent → 0; never more than the minute's hits."""
    out: list[int | None] = []
    for i, h in enumerate(hits):
        v = ABSENT if slots is None else slots[i]
        if h is None or v is None:
            out.append(None)
        elif isinstance(v, _Absent):
            out.append(0)
        else:
            out.append(min(round(v), h))
    return tuple(out)


def _bounded_ms(ms: float, stat: str, resource: str) -> float:
    """``ms`` when it is a latency the harness can hold (finite, at most MAX_LATENCY_MS); DatadogError else."""
    if not 0.0 <= ms <= MAX_LATENCY_MS:
        raise DatadogError(f"Datadog answered a {stat} latency of {ms:g} ms for {resource[:80]!r}: not a latency")
    return ms


def _latency_ms(resource: str, stats: Mapping[str, Mapping[str, float | None]]) -> LatencySummary:
    """The resource's window latency from the scalar answers (already in ms, ``count`` a number of spans)."""

    def ms(name: str) -> float | None:
        value = stats.get(name, {}).get(resource)
        return None if value is None else _bounded_ms(value, name, resource)

    total_ms, count = stats.get("sum", {}).get(resource), stats.get("count", {}).get(resource)
    avg = _bounded_ms(total_ms / count, "avg", resource) if total_ms is not None and count else None
    return LatencySummary(
        avg_ms=avg,
        max_ms=ms("max"),
        p50_ms=ms("p50"),
        p75_ms=ms("p75"),
        p90_ms=ms("p90"),
        p95_ms=ms("p95"),
        p99_ms=ms("p99"),
    )


# -- setup ----------------------------------------------------------------------------------------


def connect(
    *,
    api_key: str,
    app_key: str,
    site: str | None = None,
    dd_url: str | None = None,
    timeout_s: float = REQUEST_TIMEOUT_S,
    max_retries: int = MAX_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DatadogClient:
    """A client for ``site`` (default ``datadoghq.com``), or for every call to go to ``dd_url``.

    Keys come from the caller (the CLI reads ``DD_API_KEY`` / ``DD_APP_KEY`` / ``DD_SITE``); nothing here
    reads the environment, and the client's own environment defaults are overridden. Raises DatadogError
    for a missing key, an unknown site or a malformed URL.
    """
    if not api_key:
        raise DatadogError("no Datadog API key given (set DD_API_KEY)")
    if not app_key:
        raise DatadogError("no Datadog application key given (set DD_APP_KEY)")
    keys = {"apiKeyAuth": api_key, "appKeyAuth": app_key}
    return _client(keys, site, dd_url, timeout_s=timeout_s, max_retries=max_retries, sleep=sleep, clock=clock)


def _client(
    keys: dict[str, str],
    site: str | None,
    dd_url: str | None,
    *,
    timeout_s: float,
    max_retries: int,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> DatadogClient:
    """The client for ``keys`` (the client's auth names), checking the site and the URL."""
    if dd_url is not None and not re.fullmatch(r"https?://[^\s/@]+(/[^\s]*)?", dd_url):
        if re.match(r"https?://[^\s/]*@", dd_url):  # never echo it: the part before @ is a credential
            raise DatadogError("Datadog URL: credentials (user:password@) are not taken: give http(s)://host[:port]")
        raise DatadogError(f"Datadog URL {dd_url!r}: expected http(s)://host[:port]")
    site = site or SITES[0]
    if dd_url is None and site not in SITES:
        raise DatadogError(f"Datadog site {site!r}: expected one of {', '.join(SITES)}")
    # check_return_type=False: the client still builds its models, but skips per-value type checks that cost
    # ~0.1 s per day-long series (minutes of CPU for a week of a large service); we check what we read.
    config = Configuration(  # type: ignore[no-untyped-call]
        host=dd_url.rstrip("/") if dd_url else None, request_timeout=timeout_s, check_return_type=False
    )
    config.api_key = keys
    config.server_variables = {"site": site}
    # No retries inside urllib3 (not even its default 3 on connection errors): _call retries, and reports.
    config.retry_policy = urllib3.util.Retry(total=0, redirect=0, raise_on_status=False)
    config.enable_retry = False
    api = ApiClient(config)
    host = str(config.host)
    return DatadogClient(api, host, sleep=sleep, clock=clock, max_retries=max_retries, timeout_s=timeout_s)


# -- pushing results back (``--push-datadog``) --------------------------------------------------------

#: Most bytes of JSON in one ``POST /api/v2/series`` (the API takes at most 512,000; kept below it).
MAX_SERIES_PAYLOAD_BYTES = 500_000
#: Datadog's limits on an event (v1 ``EventCreateRequest``) and on one tag (key:value), in characters.
MAX_EVENT_TITLE = 100
MAX_EVENT_TEXT = 4000
MAX_TAG_LENGTH = 200
#: Regressions (bottlenecks, worst first) listed in the event.
EVENT_TOP_REGRESSIONS = 5
#: Metric names pushed per endpoint, by the judged metric's unit.
_PUSHED_BY_UNIT: Final = {"ms": "parity.latency.ratio", "req/s": "parity.throughput.ratio"}
_GAUGE: Final = 3  # MetricIntakeType.GAUGE on the wire
_ALERT_TYPES: Final = {
    Verdict.PASS: EventAlertType.SUCCESS,
    Verdict.MARGINAL: EventAlertType.WARNING,
    Verdict.INCONCLUSIVE: EventAlertType.WARNING,
    Verdict.FAIL: EventAlertType.ERROR,
}
_TAG_BAD = re.compile(r"[^a-z0-9_\-:./]")


def datadog_tag(key: str, value: str) -> str:
    """``key:value`` normalised as Datadog stores tags: lower case; characters other than letters, digits,
    ``_ - : . /`` become ``_`` (runs of ``_`` collapse, trailing ones go); at most 200 characters. Two
    endpoints that differ only in such characters share a tag value."""
    text = _TAG_BAD.sub("_", f"{key}:{value}".lower())
    text = re.sub(r"_{2,}", "_", text).rstrip("_")
    return text[:MAX_TAG_LENGTH]


def _run_tags(result: ParityResult, tags: Sequence[str]) -> list[str]:
    """Tags on every series and the event: ``partial:baseline`` / ``partial:candidate`` for each side that holds
    only part of its run (so dashboards and monitors can leave partial runs out), the candidate's service and
    env, the baseline's env, the mode, then the caller's ``tags`` (kept as given; Datadog normalises them)."""
    out = [datadog_tag("partial", p.side) for p in result.partial]
    if result.candidate.service:
        out.append(datadog_tag("service", result.candidate.service))
    if result.candidate.env:
        out.append(datadog_tag("env", result.candidate.env))
    if result.baseline.env:
        out.append(datadog_tag("baseline_env", result.baseline.env))
    out.append(datadog_tag("mode", result.mode.value))
    return [*out, *(t for t in tags if t not in out)]


def _gauge(metric: str, at_s: int, value: float, tags: list[str]) -> dict[str, Any]:
    return {"metric": metric, "type": _GAUGE, "points": [{"timestamp": at_s, "value": value}], "tags": tags}


def parity_series(result: ParityResult, *, at_s: int, tags: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The gauges a run pushes, as v2 series JSON (one point each at ``at_s``, Unix **seconds**). Pure.

    - ``parity.run.verdict``: the run's verdict as 0 pass, 1 marginal, 2 inconclusive, 3 fail.
    - ``parity.endpoints`` per ``verdict:`` tag: how many endpoints got each verdict (zeros included).
    - per endpoint (tag ``endpoint:``, :func:`datadog_tag`): ``parity.endpoint.verdict`` (0–3 as above);
      ``parity.latency.ratio`` per latency metric (tag ``metric:`` p50_ms, p95_ms, avg_ms …) and
      ``parity.throughput.ratio`` (``metric:rps``): candidate / baseline; ``parity.error_rate.delta``:
      candidate − baseline error rate (a fraction: 0.01 = 1 percentage point).

    A partial run (a side holds only part of its run) is pushed, marked: every series carries ``partial:<side>``
    (:func:`_run_tags`) and its run verdict is never pass (the judge caps it). A figure that is missing (a side
    absent, a baseline of 0) is not pushed — never as 0, nor a latency ratio
    of incomparable kinds (server-side against client-side). Every series carries the run tags (service, env,
    baseline_env, mode and ``tags``).
    """
    base = _run_tags(result, tags)
    out = [_gauge("parity.run.verdict", at_s, float(result.verdict.severity), base)]
    for verdict, count in result.counts().items():
        out.append(_gauge("parity.endpoints", at_s, float(count), [*base, f"verdict:{verdict.value}"]))
    for e in result.endpoints:
        endpoint_tags = [*base, datadog_tag("endpoint", e.endpoint.key)]
        out.append(_gauge("parity.endpoint.verdict", at_s, float(e.verdict.severity), endpoint_tags))
        for m in e.metrics:
            if not m.comparable:  # server-side against client-side latency: a ratio of two different things
                continue
            name = _PUSHED_BY_UNIT.get(m.unit)
            value = m.ratio if name else m.delta if m.metric == "error_rate" else None
            if value is None or not math.isfinite(value):
                continue
            out.append(_gauge(name or "parity.error_rate.delta", at_s, value, [*endpoint_tags, f"metric:{m.metric}"]))
    return out


def series_batches(
    series: Sequence[dict[str, Any]], max_bytes: int = MAX_SERIES_PAYLOAD_BYTES
) -> list[list[dict[str, Any]]]:
    """``series`` cut into consecutive batches whose ``{"series": [...]}`` JSON (as the client sends it,
    ``json.dumps`` defaults) is at most ``max_bytes``. A single series larger than that is an error."""
    envelope = len(json.dumps({"series": []}))
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = envelope
    for s in series:
        own = len(json.dumps(s))  # ASCII (json.dumps escapes the rest): characters are bytes
        if envelope + own > max_bytes:
            raise DatadogError(f"series {s['metric']} alone is larger than {max_bytes} bytes")
        extra = own + (2 if current else 0)  # ", " between items
        if current and size + extra > max_bytes:
            batches.append(current)
            current, size, extra = [], envelope, own
        current.append(s)
        size += extra
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class ParityEvent:
    """The event a run pushes: title (≤ 100 characters), text (≤ 4000), alert type, tags, aggregation key."""

    title: str
    text: str
    alert_type: str  # error | warning | success
    tags: tuple[str, ...]
    aggregation_key: str


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parity_event(result: ParityResult, *, report_url: str | None, tags: Sequence[str] = ()) -> ParityEvent:
    """The run's event (names with ``@`` notifications, ``#`` references and links broken by a zero-width space,
    :func:`parity.report.text.no_mentions`: an endpoint named ``@oncall`` must page nobody): a partial run's
    sides first (and ``(partial run)`` in the title), verdict, counts, reasons,
    the top :data:`EVENT_TOP_REGRESSIONS` regressions
    (bottlenecks: ratios and the extra time per minute) and where the report is. Plain text. Pure."""
    service = result.candidate.service or "service"
    sides = f"{result.candidate.env or result.candidate.name} vs {result.baseline.env or result.baseline.name}"
    marker = " (partial run)" if result.partial else ""
    title = _cut(f"Parity {result.verdict.value.upper()}{marker}: {service} {sides}", MAX_EVENT_TITLE)
    counts = result.counts()
    lines = [_cut(result.partial_text(), 1000)] if result.partial else []
    lines += [
        f"Verdict: {result.verdict.value.upper()} ({result.mode.value}, {len(result.endpoints)} endpoints: "
        + ", ".join(f"{counts[v]} {v.value}" for v in sorted(Verdict, key=lambda v: -v.severity) if counts[v])
        + ")",
    ]
    lines += [f"- {r}" for r in result.reasons[1 if result.partial else 0 : 3]]
    if result.bottlenecks:
        lines.append("Top regressions:")
        for b in result.bottlenecks[:EVENT_TOP_REGRESSIONS]:
            ratios = ", ".join(
                f"{label} x{value:.2f}" for label, value in (("avg", b.avg_ratio), ("p95", b.p95_ratio)) if value
            )
            extra = f"+{b.extra_ms_per_min:,.0f} ms/min" if b.extra_ms_per_min else ""
            errors = f"+{b.extra_errors_per_min:.1f} errors/min" if b.extra_errors_per_min else ""
            detail = "; ".join(x for x in (ratios, extra, errors, ", ".join(b.failed_metrics)) if x)
            lines.append(f"{b.rank}. {_cut(b.endpoint.key, 200)} ({b.verdict.value}): {detail}")
    lines.append(f"Report: {report_url}" if report_url else "Report: not published")
    report_line = encodable(lines.pop())
    text = _cut(no_mentions(encodable("\n".join(lines))), MAX_EVENT_TEXT - len(report_line) - 1) + "\n" + report_line
    return ParityEvent(
        title=_cut(no_mentions(encodable(title)), MAX_EVENT_TITLE),
        text=text,
        alert_type=_ALERT_TYPES[result.verdict].value,
        tags=tuple(_run_tags(result, tags)),
        aggregation_key=_cut(datadog_tag("parity", service), 100),
    )


@dataclass(frozen=True)
class PushOutcome:
    """What a push sent: ``series`` gauges in ``batches`` requests (``batch_bytes`` each, JSON size) and
    the event's id and URL as Datadog answered (None when it gave none)."""

    series: int
    batches: int
    batch_bytes: tuple[int, ...]
    event_id: int | None
    event_url: str | None


def push_parity(
    client: DatadogClient,
    result: ParityResult,
    *,
    at: datetime,
    report_url: str | None,
    tags: Sequence[str] = (),
    max_bytes: int = MAX_SERIES_PAYLOAD_BYTES,
) -> PushOutcome:
    """Submit the run's gauges (:func:`parity_series`, v2 ``MetricsApi.submit_metrics``, in batches of at
    most ``max_bytes``) and then its event (:func:`parity_event`, v1 ``EventsApi.create_event``).

    ``at``: the points' time (Datadog accepts points up to an hour old: pass the push time). Faults are
    retried like queries (429, 5xx, connection errors); a fault that stays raises DatadogError (one line,
    never a key) saying how many batches were accepted before it. Nothing is written locally.
    """
    at_s = int(_utc_seconds(at))
    batches = series_batches(parity_series(result, at_s=at_s, tags=tags), max_bytes)
    metrics_api = MetricsApiV2(client.api)  # type: ignore[no-untyped-call]
    sizes = []
    for i, batch in enumerate(batches, start=1):
        what = f"POST /api/v2/series (batch {i} of {len(batches)}, {len(batch):,} series)"
        body = MetricPayload(
            series=[
                MetricSeries(
                    metric=s["metric"],
                    type=MetricIntakeType.GAUGE,
                    points=[MetricPoint(timestamp=p["timestamp"], value=p["value"]) for p in s["points"]],
                    tags=s["tags"],
                )
                for s in batch
            ]
        )
        try:
            answer = _plain(
                client._call(what, _intake(client, partial(metrics_api.submit_metrics, body=body)), _ignore_wait)
            )
        except DatadogError as exc:
            raise client._error(f"{exc} ({i - 1} of {len(batches)} metric batches accepted before)") from None
        if answer.get("errors"):
            raise client._error(f"Datadog rejected {what}: {_first_line('; '.join(map(str, answer['errors'])))}")
        sizes.append(len(json.dumps({"series": batch})))
    event = parity_event(result, report_url=report_url, tags=tags)
    events_api = EventsApi(client.api)  # type: ignore[no-untyped-call]
    request = EventCreateRequest(
        title=event.title,
        text=event.text,
        alert_type=_ALERT_TYPES[result.verdict],
        tags=list(event.tags),
        aggregation_key=event.aggregation_key,
        date_happened=at_s,
    )
    what = "POST /api/v1/events"
    try:
        answer = _plain(
            client._call(what, _intake(client, partial(events_api.create_event, body=request)), _ignore_wait)
        )
    except DatadogError as exc:
        raise client._error(f"{exc} (all {len(batches)} metric batches were accepted; the event was not)") from None
    posted = answer.get("event") or {}
    event_id = posted.get("id")
    return PushOutcome(
        series=sum(len(b) for b in batches),
        batches=len(batches),
        batch_bytes=tuple(sizes),
        event_id=int(event_id) if isinstance(event_id, int) else None,
        event_url=str(posted["url"]) if posted.get("url") else None,
    )


def _utc_seconds(t: datetime) -> float:
    if t.tzinfo is None:
        raise DatadogError(f"push time {t.isoformat()}: no time zone")
    return t.timestamp()


def _intake(client: DatadogClient, request: Callable[[], T]) -> Callable[[], T]:
    """``request`` with intake's 403 explained: on intake endpoints it means the API key was refused."""

    def call() -> T:
        try:
            return request()
        except ForbiddenException:
            raise client._error(
                f"Datadog refused the API key (HTTP 403) at {client.host}: check DD_API_KEY and the site"
            ) from None

    return call


def _sent_once(client: DatadogClient, request: Callable[[], T]) -> Callable[[], T]:
    """``request`` (a POST that creates something) with the faults after which it may have been taken — no answer
    within the time-out, the connection dropped mid-answer — raised as DatadogError, which no retry loop retries."""

    def call() -> T:
        try:
            return request()
        except urllib3.exceptions.HTTPError as exc:
            reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            if isinstance(reason, urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.ProtocolError):
                raise client._error(
                    f"Datadog at {client.host}: {_connection_reason(exc, client.timeout_s)} after the request was "
                    "sent; it may have been created, so it is not sent again"
                ) from None
            raise

    return call


def connect_intake(
    *,
    api_key: str,
    site: str | None = None,
    dd_url: str | None = None,
    timeout_s: float = REQUEST_TIMEOUT_S,
    max_retries: int = MAX_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DatadogClient:
    """A client that can only submit (metrics, events): like :func:`connect`, with the API key alone."""
    if not api_key:
        raise DatadogError("no Datadog API key given (set DD_API_KEY)")
    keys = {"apiKeyAuth": api_key}
    return _client(keys, site, dd_url, timeout_s=timeout_s, max_retries=max_retries, sleep=sleep, clock=clock)


def push_result(
    result: ParityResult,
    *,
    api_key: str,
    site: str | None = None,
    dd_url: str | None = None,
    report_url: str | None = None,
    tags: Sequence[str] = (),
    at: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushOutcome:
    """``--push-datadog``: connect with the API key alone (:func:`connect_intake`; ``dd_url`` sends every
    call to that base URL) and :func:`push_parity` the run at ``at`` (default: now, UTC)."""
    with connect_intake(api_key=api_key, site=site, dd_url=dd_url, sleep=sleep) as client:
        return push_parity(client, result, at=at or datetime.now(UTC), report_url=report_url, tags=tags)


def post_event(
    client: DatadogClient,
    *,
    title: str,
    text: str,
    alert_type: str,
    tags: Sequence[str] = (),
    aggregation_key: str | None = None,
    at_s: int | None = None,
) -> int | None:
    """Submit one event (v1 ``EventsApi.create_event``; e.g. the cutover's): title and text cut to Datadog's
    limits, ``alert_type`` error | warning | success | info, ``at_s`` Unix seconds (default: now). Retried like
    queries when Datadog cannot have taken it (refused connection, 429, 5xx); not after the request was sent and
    no answer came (a time-out or a dropped connection: it may have been created, and a second send would make two
    events). DatadogError (one line, never a key) when it stays refused. Returns the event's id (None when
    Datadog gave none)."""
    request = EventCreateRequest(
        title=_cut(title, MAX_EVENT_TITLE),
        text=_cut(text, MAX_EVENT_TEXT),
        alert_type=EventAlertType(alert_type),  # type: ignore[no-untyped-call]
        tags=list(tags),
        aggregation_key=_cut(aggregation_key or "parity", 100),
        date_happened=int(time.time()) if at_s is None else at_s,
    )
    events_api = EventsApi(client.api)  # type: ignore[no-untyped-call]
    answer = _plain(
        client._call(
            "POST /api/v1/events",
            _sent_once(client, _intake(client, partial(events_api.create_event, body=request))),
            _ignore_wait,
        )
    )
    event_id = (answer.get("event") or {}).get("id")
    return int(event_id) if isinstance(event_id, int) else None

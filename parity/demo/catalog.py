"""The demo HR/payroll service: its endpoints, their cost models, and the two deployment profiles.

The demo server (``parity.demo.server``) serves these endpoints; the bundled baseline
(``baselines/demo.json``, made by ``parity.demo.baseline``) describes their production traffic. Both read
this one catalogue, so the baseline and the service cannot drift apart.

Cost of a request = app time + ``queries`` DB round trips, each a wait whose size is a deterministic
function of the request (same request → same cost, like a real database), times a small random jitter.
Part of the app time of some endpoints is spent in calls the server traces as their own spans (a cache
command, an outbound HTTP call: ``CostModel.calls``); they are carved out of the app time, so they change
what a trace shows, not the request's cost. The ``old`` (EC2) and ``new`` (EKS) profiles differ only in the
two mechanisms named in ``NEW``, which differ in kind: one is CPU-bound (the export's CPU limit: the time
grows in the app's own code), one a call-count blow-up (the payroll calculation's N+1 queries: the time
grows in the database, with 3× the queries).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "CATALOG",
    "CPU_MS_PER_ROW",
    "CUTOVER_CHECKOUT_TIMEOUT_S",
    "CUTOVER_POOL",
    "NEW",
    "NEW_CUTOVER",
    "OLD",
    "PAYROLL_N_PLUS_ONE",
    "PROFILES",
    "Call",
    "CostModel",
    "DemoEndpoint",
    "Profile",
    "payroll_day_factor",
]

#: CPU time of one exported CSV row, ms (before the request's cost factor). The server charges it as simulated
#: CPU (it sleeps on the export worker instead of computing: old and new sharing one machine do not slow each
#: other), and the bundled baseline's export latency includes it.
CPU_MS_PER_ROW = 0.008


@dataclass(frozen=True)
class Call:
    """A traced call made during a request's app time: ``count`` calls of kind ``kind`` (``"cache"``: a redis
    command, ``"http"``: an outbound HTTP call to ``peer``) that together take ``share`` of the app time (0-1).

    Carved out of the app time: the request costs the same with or without them; its trace shows them as child
    spans (``redis.command`` / ``http.request``) instead of app code.
    """

    kind: str
    count: int = 1
    share: float = 0.2
    peer: str = ""
    resource: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("cache", "http") or self.count < 1 or not 0.0 < self.share < 1.0:
            raise ValueError(f"bad call {self!r}: kind cache|http, count >= 1, 0 < share < 1")


@dataclass(frozen=True)
class CostModel:
    """How long one request of an endpoint takes, in ms, before any queueing.

    ``app_ms`` and ``query_ms`` are medians; per-request costs are lognormal with spread ``sigma`` (the
    same request always draws the same cost). ``slow_share`` of requests take a slow path ``slow_factor``
    times longer (cold cache, big employee record). ``cpu_rows`` > 0 renders that many CSV rows, each costing
    ``CPU_MS_PER_ROW`` ms of CPU (times the request's factor) on the process's single export core, where a
    profile's CPU limit throttles it. Queries go through connection pool ``pool``. ``error_rate`` is the share
    of requests that fail with HTTP 500 (deadlocks, upstream timeouts). ``calls``: traced calls carved out of
    the app time (see ``Call``; their shares sum to less than 1).
    """

    app_ms: float
    queries: int = 0
    query_ms: float = 0.0
    sigma: float = 0.35
    slow_share: float = 0.01
    slow_factor: float = 5.0
    cpu_rows: int = 0
    pool: str = "primary"
    error_rate: float = 0.0
    calls: tuple[Call, ...] = ()

    def __post_init__(self) -> None:
        if sum(call.share for call in self.calls) >= 1.0:
            raise ValueError("the calls' shares of the app time must sum to less than 1")


@dataclass(frozen=True)
class DemoEndpoint:
    """One endpoint of the demo service and its share of production traffic.

    ``share`` is its share of requests outside the payroll run; during the payroll run its rate is
    multiplied by ``payroll_factor``. ``params`` are the value pools replay draws ``{placeholders}`` from.
    """

    resource: str  # the Rails resource name Datadog APM would report
    method: str
    route: str
    share: float
    cost: CostModel
    query: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    body: Any = None
    payroll_factor: float = 1.0

    @property
    def key(self) -> str:
        return f"{self.method} {self.route}"


@dataclass(frozen=True)
class Profile:
    """A deployment of the demo service.

    ``pools``: connection pool sizes per pool name (checkout waits up to ``checkout_timeout_s``, then 500).
    ``db_capacity``: queries the shared database runs at once. ``web_concurrency``: requests served at once.
    ``export_cpu_quota``: CPU share (of one core) the report-export worker may use per 100 ms period, as a
    Kubernetes CPU limit enforces with CFS bandwidth control; None = unlimited. ``checkout_per_request``: a request
    with queries holds its connection from its start (app time included), as a middleware that sets up the
    connection per request (``SET search_path`` for a tenant) makes it; else only around its queries.
    ``n_plus_one``: extra queries per request by endpoint resource (an association no longer eager-loaded: one
    more query per row), each costing what one of the endpoint's own queries does, on the same connection.
    """

    name: str
    description: str
    pools: Mapping[str, int]
    db_capacity: int = 64
    web_concurrency: int = 256
    checkout_timeout_s: float = 5.0
    export_cpu_quota: float | None = None
    checkout_per_request: bool = False
    n_plus_one: Mapping[str, int] = field(default_factory=dict)


def _ids(prefix: str, n: int, start: int = 1, step: int = 1) -> tuple[str, ...]:
    return tuple(f"{prefix}{start + i * step}" for i in range(n))


_EMPLOYEE_IDS = _ids("", 400, start=1001, step=7)
_MONTHS = tuple(f"2026-{m:02d}" for m in range(1, 12))
_COMPANIES = _ids("", 40, start=11, step=3)

CATALOG: tuple[DemoEndpoint, ...] = (
    DemoEndpoint(
        "HealthController#show",
        "GET",
        "/health",
        share=0.08,
        cost=CostModel(app_ms=0.3, sigma=0.1, slow_share=0.0),
    ),
    DemoEndpoint(
        "SessionsController#create",
        "POST",
        "/api/session",
        share=0.05,
        payroll_factor=1.6,
        cost=CostModel(
            app_ms=55.0,
            queries=2,
            query_ms=2.0,
            sigma=0.15,
            error_rate=0.001,
            calls=(
                Call("http", share=0.5, peer="identity-provider", resource="POST /oauth/token"),
                Call("cache", share=0.05, resource="SET"),
            ),
        ),
        params={"email": tuple(f"user{i}@acme.example" for i in range(200))},
        body={"email": "{email}", "password": "correct-horse"},
    ),
    DemoEndpoint(
        "EmployeesController#index",
        "GET",
        "/api/employees",
        share=0.14,
        cost=CostModel(app_ms=9.0, queries=4, query_ms=5.0, sigma=0.35, error_rate=0.0005),
        query={"page": "{page}", "per_page": "50"},
        params={"page": tuple(str(p) for p in range(1, 41))},
    ),
    DemoEndpoint(
        "EmployeesController#show",
        "GET",
        "/api/employees/{id}",
        share=0.20,
        cost=CostModel(
            app_ms=4.0,
            queries=2,
            query_ms=3.0,
            sigma=0.3,
            error_rate=0.0005,
            calls=(Call("cache", share=0.25, resource="GET"),),
        ),
        params={"id": _EMPLOYEE_IDS},
    ),
    DemoEndpoint(
        "EmployeesController#update",
        "PATCH",
        "/api/employees/{id}",
        share=0.04,
        cost=CostModel(app_ms=8.0, queries=5, query_ms=4.0, sigma=0.3, error_rate=0.003),
        params={"id": _EMPLOYEE_IDS, "phone": tuple(f"+81-3-5550-{i:04d}" for i in range(50))},
        body={"employee": {"phone": "{phone}"}},
    ),
    DemoEndpoint(
        "AttendanceController#index",
        "GET",
        "/api/employees/{id}/attendance",
        share=0.12,
        cost=CostModel(app_ms=6.0, queries=3, query_ms=6.0, sigma=0.4, error_rate=0.0005),
        query={"month": "{month}"},
        params={"id": _EMPLOYEE_IDS, "month": _MONTHS},
    ),
    DemoEndpoint(
        "ClockEventsController#create",
        "POST",
        "/api/attendance/clock-in",
        share=0.10,
        cost=CostModel(app_ms=3.0, queries=2, query_ms=3.5, sigma=0.25, error_rate=0.001),
        params={"id": _EMPLOYEE_IDS},
        body={"employee_id": "{id}"},
    ),
    DemoEndpoint(
        "LeaveRequestsController#index",
        "GET",
        "/api/leave-requests",
        share=0.07,
        cost=CostModel(app_ms=5.0, queries=3, query_ms=4.0, sigma=0.3, error_rate=0.0005),
        query={"employee_id": "{id}"},
        params={"id": _EMPLOYEE_IDS},
    ),
    DemoEndpoint(
        "DepartmentsController#index",
        "GET",
        "/api/departments",
        share=0.05,
        cost=CostModel(
            app_ms=2.0, queries=1, query_ms=2.0, sigma=0.2, calls=(Call("cache", share=0.3, resource="GET"),)
        ),
    ),
    DemoEndpoint(
        "PayslipsController#show",
        "GET",
        "/api/payslips/{id}",
        share=0.08,
        payroll_factor=3.0,
        cost=CostModel(
            app_ms=10.0,
            queries=4,
            query_ms=6.0,
            sigma=0.35,
            error_rate=0.001,
            calls=(Call("http", share=0.4, peer="tax-service", resource="GET /rates"),),
        ),
        params={"id": _ids("", 600, start=50001, step=13)},
    ),
    DemoEndpoint(
        "PayrollCalculationsController#create",
        "POST",
        "/api/payroll/calculations",
        share=0.004,
        payroll_factor=20.0,
        cost=CostModel(app_ms=20.0, queries=8, query_ms=25.0, sigma=0.3, pool="payroll", error_rate=0.002),
        params={"company": _COMPANIES, "period": _MONTHS},
        body={"company_id": "{company}", "period": "{period}"},
    ),
    DemoEndpoint(
        "ReportsController#export",
        "GET",
        "/api/reports/employees.csv",
        share=0.02,
        cost=CostModel(app_ms=2.0, queries=2, query_ms=8.0, sigma=0.2, cpu_rows=5000, error_rate=0.001),
        query={"department": "{department}"},
        params={"department": tuple(f"d{i}" for i in range(1, 25))},
    ),
)

OLD = Profile(
    name="old",
    description="EC2 deployment: payroll pool of 16 connections, report export on unthrottled CPU",
    pools={"primary": 40, "payroll": 16},
)

#: Extra queries per payroll calculation on the new deployment (N+1: its 8 queries become 24, 3.0× as many).
PAYROLL_N_PLUS_ONE = 16

NEW = replace(
    OLD,
    name="new",
    description=(
        f"EKS deployment: the payroll calculation's ORM query lost its eager load (N+1: {PAYROLL_N_PLUS_ONE} more "
        "queries per calculation, 3× its queries), report-export worker under a 0.25-CPU limit (CFS throttling)"
    ),
    n_plus_one={"PayrollCalculationsController#create": PAYROLL_N_PLUS_ONE},
    export_cpu_quota=0.25,
)

#: The new (EKS) deployment of ``parity demo cutover``: the old one in every respect but one, the planted load-dependent
#: bottleneck (and its bounded wait, ``CUTOVER_CHECKOUT_TIMEOUT_S``): its multi-tenant middleware checks a
#: primary-database connection out at the start of every request with queries (``checkout_per_request``) and pgbouncer's
#: pool holds only ``CUTOVER_POOL`` of them. Each such request holds a connection for its whole app + query time (about
#: 22 ms per request of the demo's mix), so requests queue for the pool as an M/G/2 queue does: the offered load is λ ×
#: 22 ms erlangs at the new side's rate λ, and the wait stays a fraction of a ms while it is well below 1 (the first
#: steps of a cutover) but grows to several ms once it nears 1 (half the demo's traffic): measured by
#: ``benchmarks/demo_cutover_bottleneck.py``. At low load the new side is as fast as the old one. It takes no real CPU
#: (waits are gevent sleeps).
CUTOVER_POOL = 2
#: Seconds a request of ``NEW_CUTOVER`` waits for a connection before it fails (500, like pgbouncer's
#: ``query_wait_timeout``). Bounded so that, on a machine too busy for the pool to keep up, the queue cannot
#: grow without end: its requests then fail or are slow within this bound, and their spans reach the fake
#: Datadog before the gate reads their window (``parity.demo.cutover.DELAY_S`` covers it). With the old
#: profile's 5 s, requests waited up to 5 s, their spans came after the read, and the gate saw only the
#: quick survivors: a split of 19 % at 50 %, normal latencies, no errors, and a HOLD (or a GO) instead of
#: the STOP.
CUTOVER_CHECKOUT_TIMEOUT_S = 2.0
NEW_CUTOVER = replace(
    OLD,
    name="new-cutover",
    description=(
        f"EKS deployment of the cutover demo: as the old one, except that every request holds one of "
        f"{CUTOVER_POOL} primary-database connections from its start (fine at a few percent of the traffic, "
        f"queueing once it carries half)"
    ),
    pools={"primary": CUTOVER_POOL, "payroll": 16},
    checkout_per_request=True,
    checkout_timeout_s=CUTOVER_CHECKOUT_TIMEOUT_S,
)

PROFILES: Mapping[str, Profile] = {p.name: p for p in (OLD, NEW, NEW_CUTOVER)}

#: The payroll run of the bundled day, in hours UTC: [start, end).
PAYROLL_RUN_HOURS = (10.0, 12.0)


def payroll_day_factor(endpoint: DemoEndpoint, hour: float) -> float:
    """Multiplier of the endpoint's normal rate at ``hour`` (0–24 UTC) of the payroll day."""
    start, end = PAYROLL_RUN_HOURS
    return endpoint.payroll_factor if start <= hour < end else 1.0

"""The demo explains its own planted bottlenecks: whole traces from the demo servers, read back through the real
client's Spans API from the fake Datadog, judged by ``parity.explain``.

One demo server process serves the old (env ``ec2``) and new (env ``eks``) profiles, both sending whole traces to
``parity.demo.apm``'s trace intake. The test sends the same requests to both (concurrently, so a busy machine
slows both alike), then reads each side's traces of an endpoint with ``DatadogSpans`` and asks ``explain()``:

- the report export (CPU-bound: new's export worker runs under a 0.25-CPU limit) → app code, queries unchanged;
- the payroll calculation (call-count blow-up: new runs 16 more queries per calculation, N+1) → postgres, with
  3.0× the queries;
- the departments list (the same on both) → nothing shown slower, nothing named.

No timing is asserted: the planted effects are large (×3-4 per request) against the threshold of the judge.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest

from parity.demo.apm import DEMO_API_KEY, DEMO_APP_KEY, DemoDatadog
from parity.demo.catalog import CATALOG, PAYROLL_N_PLUS_ONE, DemoEndpoint
from parity.demo.processes import Service, fetch_stats, running_servers
from parity.demo.server import APM_SERVICE, TraceReporter, traces_url
from parity.explain import Change, Explanation, Kind, explain, trace_sample
from parity.explain.datadog_spans import DatadogSpans, EndpointWindow, SamplePolicy

#: Requests per endpoint and side (distinct requests: the demo's cost is a function of the request).
REQUESTS = 20
#: Requests in flight per side.
CONCURRENCY = 6
#: Seconds the servers get to send their last traces.
FLUSH_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 30.0

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _endpoint(resource: str) -> DemoEndpoint:
    return next(e for e in CATALOG if e.resource == resource)


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        return template
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def _requests(endpoint: DemoEndpoint) -> list[tuple[str, bytes | None]]:
    """``REQUESTS`` distinct (target, body) of ``endpoint``, the i-th value of each parameter pool."""
    out = []
    for i in range(REQUESTS):
        values = {name: pool[(i * 7) % len(pool)] for name, pool in endpoint.params.items()}
        target = _fill(endpoint.route, values)
        if endpoint.query:
            target += "?" + urlencode({k: _fill(v, values) for k, v in endpoint.query.items()})
        body = None if endpoint.body is None else json.dumps(_fill(endpoint.body, values)).encode()
        out.append((target, body))
    return out


def _send(base_url: str, method: str, target: str, body: bytes | None) -> int:
    request = urllib.request.Request(
        base_url + target, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:  # an injected 500 is still a traced request
        exc.read()
        return int(exc.code)


def explain_demo() -> dict[str, Explanation]:
    """The three endpoints' explanations, from one run of the demo servers (stopped before it returns)."""
    resources = ("ReportsController#export", "PayrollCalculationsController#create", "DepartmentsController#index")
    with (
        DemoDatadog() as datadog,
        running_servers(
            [Service("old", apm_env="ec2"), Service("new", apm_env="eks")],
            apm_url=datadog.intake_url,
            trace_rate=1000.0,  # every request traced: the sample below is drawn from all of them
        ) as (old_url, new_url),
    ):
        start_s = math.floor(time.time()) - 1
        jobs = [
            (url, endpoint.method, target, body)
            for resource in resources
            for endpoint in (_endpoint(resource),)
            for target, body in _requests(endpoint)
            for url in (old_url, new_url)
        ]
        with ThreadPoolExecutor(max_workers=2 * CONCURRENCY) as pool:
            statuses = list(pool.map(lambda job: _send(*job), jobs))
        assert sum(1 for s in statuses if s < 500) >= len(jobs) - 3, statuses  # injected errors are rare
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while True:  # every trace span recorded has been sent (or the bound is hit: the assertions then say so)
            counts = [fetch_stats(url)["traces"] for url in (old_url, new_url)]
            if all(c["sent"] + c["dropped"] >= c["recorded"] for c in counts) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert all(c["dropped"] == 0 and c["traces"] >= len(resources) * REQUESTS for c in counts), counts
        end_s = math.ceil(time.time()) + 1
        result: dict[str, Explanation] = {}
        with DatadogSpans.connect(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY, dd_url=datadog.url) as reader:
            for resource in resources:
                sides = [
                    reader.sample_traces(
                        EndpointWindow(env=env, service=APM_SERVICE, resource=resource, start_s=start_s, end_s=end_s),
                        SamplePolicy(traces=REQUESTS),
                    )
                    for env in ("ec2", "eks")
                ]
                old, new = (trace_sample(s.spans, roots=s.roots, chosen=s.chosen) for s in sides)
                result[resource] = explain(_endpoint(resource).key, old, new)
    return result


@pytest.fixture(scope="module")
def explained() -> dict[str, Explanation]:
    return explain_demo()


def _component(explanation: Explanation, label: str) -> Any:
    return next(c for c in explanation.components if c.label == label)


def test_the_cpu_bound_export_is_explained_by_app_code(explained: dict[str, Explanation]) -> None:
    e = explained["ReportsController#export"]
    assert e.available, e.sentence
    assert e.request is not None
    assert e.request.change is Change.SLOWER, e.sentence
    assert e.named[0] == "app code", e.sentence
    app = _component(e, "app code")
    assert app.kind is Kind.APP
    assert app.own_service
    assert app.change is Change.SLOWER
    postgres = _component(e, "postgres")
    assert postgres.change is not Change.SLOWER, e.sentence  # its queries did not change
    assert postgres.old_calls == postgres.new_calls == _endpoint("ReportsController#export").cost.queries
    assert e.explained_share is not None
    assert e.explained_share >= 0.8
    assert e.sentence.startswith("+"), e.sentence
    assert "in app code" in e.sentence.split(";")[0], e.sentence


def test_the_n_plus_one_payroll_calculation_is_explained_by_postgres_queries(
    explained: dict[str, Explanation],
) -> None:
    e = explained["PayrollCalculationsController#create"]
    assert e.available, e.sentence
    assert e.request is not None
    assert e.request.change is Change.SLOWER, e.sentence
    assert e.named[0] == "postgres", e.sentence
    postgres = _component(e, "postgres")
    assert postgres.kind is Kind.DATABASE
    assert postgres.change is Change.SLOWER
    queries = _endpoint("PayrollCalculationsController#create").cost.queries
    assert postgres.old_calls == queries
    assert postgres.new_calls == queries + PAYROLL_N_PLUS_ONE
    assert postgres.calls_ratio == pytest.approx(3.0)
    assert postgres.calls_ratio_low is not None
    assert postgres.calls_ratio_low > 1
    assert "3.0× more queries" in e.sentence, e.sentence
    assert _component(e, "app code").change is not Change.SLOWER, e.sentence
    assert e.explained_share is not None
    assert e.explained_share >= 0.8


def test_an_unchanged_endpoint_names_nothing(explained: dict[str, Explanation]) -> None:
    e = explained["DepartmentsController#index"]
    assert e.available, e.sentence
    assert e.request is not None
    assert e.request.change is not Change.SLOWER, e.sentence
    assert e.named == (), e.sentence
    assert not [c.label for c in e.components if c.change is Change.SLOWER], e.sentence
    # its traced calls are the same on both sides: a query and a cache read per request
    assert {c.label: (c.old_calls, c.new_calls) for c in e.components if c.kind is not Kind.APP} == {
        "postgres": (1.0, 1.0),
        "redis": (1.0, 1.0),
    }
    assert "unchanged" in e.sentence or "not shown slower" in e.sentence, e.sentence


def test_the_trace_rate_is_a_token_bucket_per_endpoint() -> None:
    now = [100.0]
    reporter = TraceReporter(
        "http://127.0.0.1:9/api/parity-demo/traces", env="ec2", rate_per_s=2.0, clock=lambda: now[0]
    )
    assert [reporter.keep("A#a") for _ in range(3)] == [True, True, False]  # a burst of 2, then empty
    assert reporter.keep("B#b")  # each endpoint has its own bucket
    now[0] += 0.5  # one token back
    assert [reporter.keep("A#a") for _ in range(2)] == [True, False]
    now[0] += 60.0  # never more than the burst
    assert [reporter.keep("A#a") for _ in range(3)] == [True, True, False]
    assert reporter.counts()["traces"] == 6
    assert reporter.counts()["unsampled"] == 3
    off = TraceReporter("http://127.0.0.1:9/x", env="ec2", rate_per_s=0.0)
    assert not off.keep("A#a")
    assert traces_url("http://127.0.0.1:8126/api/parity-demo/spans") == "http://127.0.0.1:8126/api/parity-demo/traces"

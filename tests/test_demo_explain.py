"""``parity demo``'s explanation, the parts that need no run: which APM resource each replayed endpoint's traces carry,
and the ``--no-explain`` switch. The end-to-end acceptance (explain.json of a real demo run, the why lines of its
report and terminal, a failed explanation that does not fail the demo) is in tests/test_demo_e2e.py."""

from __future__ import annotations

import dataclasses

from parity import measurement_json
from parity.cli import build_parser
from parity.demo.baseline import build_baseline
from parity.demo.catalog import CATALOG
from parity.demo.runner import DemoOptions, bundled_baseline, with_demo_resources


def test_every_replayed_endpoint_gets_the_resource_the_demo_server_names_its_traces() -> None:
    """A replay's Measurement records no APM resource: the demo's explanation would search the Spans API for
    ``POST /api/payroll/calculations`` and find no trace. The catalogue's resource is what the server traces carry."""
    path = bundled_baseline()
    baseline = measurement_json.read(path) if path is not None else build_baseline()
    replayed = dataclasses.replace(
        baseline, endpoints=tuple(dataclasses.replace(s, resource=None) for s in baseline.endpoints)
    )
    mapped = with_demo_resources(replayed)
    by_key = {e.key: e.resource for e in CATALOG}
    assert len(mapped.endpoints) == len(CATALOG) == 12
    assert {s.endpoint.key: s.resource for s in mapped.endpoints} == by_key
    assert by_key["POST /api/payroll/calculations"] == "PayrollCalculationsController#create"
    # the bundled baseline's own resources are the catalogue's (what the server names its traces)
    assert {s.endpoint.key: s.resource for s in baseline.endpoints} == by_key
    # everything else is kept as it was
    assert [dataclasses.replace(s, resource=None) for s in mapped.endpoints] == list(replayed.endpoints)
    assert (mapped.source, mapped.window, mapped.pair_id) == (replayed.source, replayed.window, replayed.pair_id)


def test_a_recorded_resource_and_an_unknown_endpoint_are_kept() -> None:
    baseline = build_baseline()
    first, second, *rest = baseline.endpoints
    odd = dataclasses.replace(first, resource="Legacy#thing")
    unknown = dataclasses.replace(second, endpoint=dataclasses.replace(second.endpoint, route="/api/not-in-the-demo"))
    unknown = dataclasses.replace(unknown, resource=None)
    mapped = with_demo_resources(dataclasses.replace(baseline, endpoints=(odd, unknown, *rest)))
    assert mapped.endpoints[0].resource == "Legacy#thing"
    assert mapped.endpoints[1].resource is None


def test_the_demo_explains_unless_told_not_to() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).no_explain is False
    assert parser.parse_args(["demo", "--no-explain"]).no_explain is True
    assert DemoOptions().explain is True

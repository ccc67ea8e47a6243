"""k6 (``--out json`` NDJSON, gzip, ``--summary-export``, handleSummary data) and JMeter JTL (CSV, XML) sources.

The fixtures in tests/fixtures/loadtools are written in the tools' real formats: k6's ``internal/output/json``
envelopes and tags (``lib/netext/httpext/transport.go``), its summary export (``internal/js/summary-wrapper.js``),
JMeter's "CSV Log format" default header and "XML Log format 2.1" (``xdocs/usermanual/listeners.xml``).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from parity.errors import BadInput
from parity.judge.compare import compare
from parity.model import LatencyDistribution, LatencyKind, LatencySummary, SourceKind
from parity.sources import load_measurement
from parity.sources.k6 import ALL_REQUESTS_ENDPOINT
from parity.sources.load_tool import route_of, split_label
from tests.conftest import run_parity

FIXTURES = Path(__file__).parent / "fixtures" / "loadtools"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()


def test_route_names_agree_across_tools() -> None:
    assert route_of("http://127.0.0.1:8080/api/users/17?x=1") == "/api/users/{id}"
    assert route_of("http://host/posts/${}/comments/${}") == "/posts/{id}/comments/{id2}"
    assert route_of("login") == "login"
    assert split_label("GET /api/users/2048") == ("GET", "/api/users/{id}")
    assert split_label("post http://h/api/orders") == ("POST", "/api/orders")
    assert split_label("HTTP Request") == ("", "HTTP Request")


def test_k6_json_requests_errors_and_no_response() -> None:
    m = load_measurement(FIXTURES / "k6_out.json")
    assert (m.source.kind, m.latency_kind) == (SourceKind.K6, LatencyKind.SERVICE_TIME)
    assert m.source.kind.closed_loop
    by = m.by_key()
    assert set(by) == {"GET /api/users/{id}", "POST orders", "GET /posts/{id}"}
    users = by["GET /api/users/{id}"]  # two URLs, one template; +02:00 offset read as UTC 10:00:01.040
    assert (users.count, users.errors) == (2, 0)
    assert isinstance(users.latency, LatencyDistribution)
    assert (users.latency.samples, users.latency.maximum) == (2, 40.0)
    assert users.latency.mean == pytest.approx(30.0)
    orders = by["POST orders"]  # expected_response:false is k6's own failure verdict
    assert (orders.count, orders.errors) == (2, 1)
    refused = by["GET /posts/{id}"]  # status 0: no response, an error without latency
    assert (refused.count, refused.errors, refused.latency) == (1, 1, None)
    # time is the request's end: the first send is 10:00:00.120 - 20 ms; the window ends after the last request
    assert m.window.start.timestamp() == pytest.approx(T0 + 0.1)
    assert m.window.end.timestamp() == pytest.approx(T0 + 4.001)


def test_k6_json_gzip_reads_the_same(tmp_path: Path) -> None:
    packed = tmp_path / "result.json.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "k6_out.json").read_bytes()))
    plain, gz = load_measurement(FIXTURES / "k6_out.json"), load_measurement(packed)
    assert [(e.endpoint.key, e.count, e.errors) for e in gz.endpoints] == [
        (e.endpoint.key, e.count, e.errors) for e in plain.endpoints
    ]
    assert gz.window == plain.window


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"type":"Point","data":{"time":"2026-03-02T10:00:05Z","val', "line 14: not valid JSON"),
        (
            '{"type":"Point","data":{"time":"yesterday","value":5,"tags":{"method":"GET","name":"/a"}},'
            '"metric":"http_req_duration"}',
            "line 14: time: expected an RFC 3339 time",
        ),
        (
            '{"type":"Point","data":{"time":"2026-03-02T10:00:05Z","value":-1,"tags":{"method":"GET","name":"/a"}},'
            '"metric":"http_req_duration"}',
            "line 14: http_req_duration: value: expected a number >= 0",
        ),
        (
            '{"type":"Point","data":{"time":"2026-03-02T10:00:05Z","value":1e400,"tags":{"method":"GET"}},'
            '"metric":"http_req_duration"}',
            "line 14: http_req_duration: value",
        ),
        (
            '{"type":"Point","data":{"time":"2026-03-02T10:00:05Z","value":1,"tags":{"method":"GET"}},'
            '"metric":"http_req_duration"}',
            'line 14: http_req_duration: tags: need "method" and "name"',
        ),
        ('{"kind":"Point"}', "line 14: not a k6 JSON output line"),
    ],
)
def test_k6_json_malformed_line_is_one_line_bad_input(tmp_path: Path, line: str, message: str) -> None:
    bad = tmp_path / "k6.json"
    bad.write_text((FIXTURES / "k6_out.json").read_text() + line + "\n", encoding="utf-8")
    with pytest.raises(BadInput, match=message) as info:
        load_measurement(bad)
    assert "\n" not in str(info.value)


def test_k6_json_without_requests_and_k6_csv_are_refused_naming_what_is_read(tmp_path: Path) -> None:
    only_vus = tmp_path / "vus.json"
    only_vus.write_text(
        '{"type":"Point","data":{"time":"2026-03-02T10:00:04Z","value":5,"tags":null},"metric":"vus"}\n'
    )
    with pytest.raises(BadInput, match="without http_req_duration Points"):
        load_measurement(only_vus)
    csv = tmp_path / "k6.csv"
    csv.write_text("metric_name,timestamp,metric_value,check,error\nhttp_reqs,1595325560,1.000000,,\n")
    with pytest.raises(BadInput, match=r"k6 CSV output \(--out csv\) is not read: run k6 with --out json=FILE"):
        load_measurement(csv)
    broken = tmp_path / "cut.json.gz"
    broken.write_bytes(gzip.compress((FIXTURES / "k6_out.json").read_bytes())[:-30])
    with pytest.raises(BadInput, match="gzip"):
        load_measurement(broken)


def test_k6_summary_export_is_one_labelled_aggregate() -> None:
    m = load_measurement(FIXTURES / "k6_summary_export.json")
    assert m.source.kind is SourceKind.K6
    assert "ONE aggregate endpoint: not per-endpoint parity" in m.source.description
    (only,) = m.endpoints
    assert only.endpoint.key == ALL_REQUESTS_ENDPOINT
    assert not only.endpoint.mapped
    assert (only.count, only.errors) == (100, 4)  # http_req_failed "passes" count the failed requests
    assert only.latency == LatencySummary(avg_ms=42.5, max_ms=210.5, p50_ms=38, p90_ms=70, p95_ms=95.5)
    assert m.window.duration_s == pytest.approx(10.0)  # http_reqs count / rate


def test_comparing_k6_summaries_says_it_is_not_per_endpoint(tmp_path: Path) -> None:
    summary = FIXTURES / "k6_summary_export.json"
    result = compare(load_measurement(summary), load_measurement(summary))
    assert any("not a per-endpoint comparison" in note for note in result.notes)


def test_k6_handle_summary_submetrics_become_endpoints() -> None:
    m = load_measurement(FIXTURES / "k6_handle_summary.json")
    by = m.by_key()
    assert set(by) == {"/api/users/{id}", "POST orders"}
    users, orders = by["/api/users/{id}"], by["POST orders"]
    assert (users.count, users.errors, orders.count, orders.errors) == (200, 1, 100, None)
    assert isinstance(orders.latency, LatencySummary)
    assert (orders.latency.p50_ms, orders.latency.p95_ms, orders.latency.p99_ms) == (85, 200, 350)
    assert m.window.duration_s == pytest.approx(30.0005)  # state.testRunDurationMs


def test_k6_summary_out_of_bounds_is_refused(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "k6_summary_export.json").read_text())
    data["metrics"]["http_req_failed"]["passes"] = 101
    bad = tmp_path / "summary.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(BadInput, match="101 failed requests but only 100 requests"):
        load_measurement(bad)
    del data["metrics"]["http_req_duration"]
    bad.write_text(json.dumps(data))
    with pytest.raises(BadInput, match="k6 summary without http_req_duration"):
        load_measurement(bad)


@pytest.mark.parametrize("name", ["jmeter.csv", "jmeter.xml"])
def test_jmeter_jtl_requests_errors_and_no_response(name: str) -> None:
    m = load_measurement(FIXTURES / name)
    assert (m.source.kind, m.latency_kind) == (SourceKind.JMETER, LatencyKind.SERVICE_TIME)
    by = m.by_key()
    login = by["Login"]  # "Non HTTP response code": an error without latency
    assert (login.count, login.errors, login.latency) == (1, 1, None)
    orders = by["POST /api/orders"]
    assert orders.latency is not None
    assert orders.latency.maximum == 300
    assert m.window.start.timestamp() == T0
    if name == "jmeter.csv":  # the Transaction Controller's own line is skipped; a multi-line failureMessage is read
        assert set(by) == {"GET /api/users/{id}", "POST /api/orders", "Login"}
        assert (orders.count, orders.errors, by["GET /api/users/{id}"].count) == (2, 1, 2)
        assert "1 Transaction Controller line(s) skipped" in m.source.description
        assert m.window.end.timestamp() == pytest.approx(T0 + 4.001)  # the Login sample started at +4 s (no latency)
    else:  # only samples directly under testResults: the embedded style.css is not counted
        assert set(by) == {"GET /api/users/{id}", "POST /api/orders", "Login", "/", "Example Sampler"}
        assert (orders.count, orders.errors, by["/"].count) == (1, 1, 1)


def test_jmeter_xml_transaction_controller_sample_is_not_a_request(tmp_path: Path) -> None:
    """A Transaction Controller without "Generate parent sample" writes its own <sample> next to its requests'
    (rm "Number of samples in transaction : 2, ..."): it is skipped, as its CSV line is (it was counted as a
    request "Browse users" of 50 ms)."""
    jtl = tmp_path / "tc.xml"
    jtl.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n'
        '<httpSample t="20" ts="1772445600000" s="true" lb="GET /api/users/17" rc="200" rm="OK" tn="TG 1-1"/>\n'
        '<httpSample t="30" ts="1772445600020" s="true" lb="GET /api/users/18" rc="200" rm="OK" tn="TG 1-1"/>\n'
        '<sample t="50" it="0" ts="1772445600000" s="true" lb="Browse users" rc="200" '
        'rm="Number of samples in transaction : 2, number of failing samples : 0" tn="TG 1-1" dt="" by="0"/>\n'
        "</testResults>\n"
    )
    m = load_measurement(jtl)
    assert {k: e.count for k, e in m.by_key().items()} == {"GET /api/users/{id}": 2}
    assert "1 Transaction Controller sample(s) skipped" in m.source.description


def test_jmeter_csv_other_delimiter_and_field_set(tmp_path: Path) -> None:
    jtl = tmp_path / "semi.jtl"
    jtl.write_text("timeStamp;elapsed;label;success\n1772445600000;12;GET /a;true\n1772445601000;14;GET /a;false\n")
    (a,) = load_measurement(jtl).endpoints
    assert (a.endpoint.key, a.count, a.errors) == ("GET /a", 2, 1)
    assert isinstance(a.latency, LatencyDistribution)
    assert a.latency.samples == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeStamp,elapsed,label\n1772445600000,12,GET /a\n", r"without field\(s\) success"),
        (
            "timeStamp,elapsed,label,success\n2026/03/02 10:00:00.000,12,GET /a,true\n",
            "line 2: timeStamp: expected epoch",
        ),
        (
            "timeStamp,elapsed,label,success\n1772445600000,12,GET /a,true\n1772445600000,-3,GET /a,true\n",
            "line 3: elapsed",
        ),
        ("timeStamp,elapsed,label,success\n1772445600000,12,GET /a,yes\n", "line 2: success: expected true or false"),
        ("1772445600000,12,GET /a,200,OK,T 1-1,text,true,,1,1,1,1,null,1,0,0\n", "print_field_names=true"),
        (
            '<?xml version="1.0"?>\n<testResults version="1.2">\n<httpSample t="1" ts="1772445600000" lb="a">\n',
            "line 3: ",
        ),
        (
            '<?xml version="1.0"?>\n<testResults version="1.2">\n'
            '<httpSample t="1" ts="1772445600000" s="true" lb="a"/>\n<httpSample',
            "line 4: not well-formed XML",
        ),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE t [<!ENTITY a "aaaa">]>\n<testResults version="1.2"/>\n',
            "DOCTYPE/entity declarations are not accepted",
        ),
        (
            '<testResults version="1.2">\n<sample t="x" ts="1772445600000" s="true" lb="a"/>\n</testResults>\n',
            "line 2: elapsed",
        ),
    ],
)
def test_jmeter_bad_input_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    jtl = tmp_path / "bad.jtl"
    jtl.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match=message) as info:
        load_measurement(jtl)
    assert "\n" not in str(info.value)


def _k6_lines(rng: np.random.Generator, slow_orders: float) -> str:
    """A k6 --out json file: 400 requests to each of two endpoints over 200 s."""
    lines = []
    for i in range(800):
        users = i % 2 == 0
        ms = float(rng.lognormal(np.log(40 if users else 80 * slow_orders), 0.25))
        end = datetime.fromtimestamp(T0 + i * 0.25 + ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        url = f"http://127.0.0.1:8080/api/users/{1000 + i}" if users else "http://127.0.0.1:8080/api/orders"
        tags = {"expected_response": "true", "group": "", "method": "GET" if users else "POST", "name": url,
                "proto": "HTTP/1.1", "scenario": "default", "status": "200", "url": url}  # fmt: skip
        lines.append(
            json.dumps(
                {"metric": "http_req_duration", "type": "Point", "data": {"time": end, "value": ms, "tags": tags}}
            )
        )
        lines.append(
            json.dumps({"metric": "http_req_failed", "type": "Point", "data": {"time": end, "value": 0, "tags": tags}})
        )
    return "\n".join(lines) + "\n"


def _jtl_rows(rng: np.random.Generator, slow_orders: float) -> str:
    header = (
        "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,"
        "sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"
    )
    rows = [header]
    for i in range(800):
        users = i % 2 == 0
        ms = round(float(rng.lognormal(np.log(40 if users else 80 * slow_orders), 0.25)))
        label = f"GET /api/users/{1000 + i}" if users else "POST /api/orders"
        ts = round((T0 + 3600 + i * 0.25) * 1000)
        rows.append(
            f"{ts},{ms},{label},200,OK,Thread Group 1-1,text,true,,512,120,4,4,http://127.0.0.1:8080/x,{ms},0,0"
        )
    return "\n".join(rows) + "\n"


def test_parity_compare_k6_against_jmeter_end_to_end(tmp_path: Path) -> None:
    """The issue's acceptance: a k6 and a JMeter result file compare against each other through the CLI; the
    JMeter run is 3x slower on POST /api/orders only."""
    rng = np.random.default_rng(13)
    k6_file, jtl = tmp_path / "k6.json.gz", tmp_path / "jmeter.jtl"
    k6_file.write_bytes(gzip.compress(_k6_lines(rng, 1.0).encode()))
    jtl.write_text(_jtl_rows(rng, 3.0))
    out = tmp_path / "report"
    done = run_parity("compare", str(k6_file), str(jtl), "--out", str(out))
    assert done.returncode == 1, done.stderr
    result = json.loads((out / "parity.json").read_text())
    verdicts = {e["endpoint"]: e["verdict"] for e in result["endpoints"]}
    assert verdicts == {"GET /api/users/{id}": "pass", "POST /api/orders": "fail"}
    assert result["verdict"] == "fail"
    same = run_parity("compare", str(jtl), str(jtl), "--out", str(tmp_path / "same"))
    assert same.returncode == 0, same.stderr


def test_unknown_file_refusal_names_what_is_accepted(tmp_path: Path) -> None:
    other = tmp_path / "x.txt"
    other.write_text("hello\n")
    done = run_parity("compare", str(other), str(other), "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "unrecognised content" in done.stderr
    for accepted in ("k6 --out json NDJSON", "k6 --summary-export", "JMeter JTL", "Locust --csv PREFIX_stats.csv"):
        assert accepted in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr

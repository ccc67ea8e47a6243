"""Requests as they were: query-string shapes and pools from access logs, body templates, write endpoints
without a body refused or flagged (issue 13, item 6)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from parity import measurement_json
from parity.errors import BadInput
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import Verdict
from parity.model import LABEL_WITHOUT_BODY, Endpoint, QueryShape, RequestTemplate
from parity.replay.bodies import body_file_name, check_body_placeholders, load_bodies
from parity.replay.plan import UNFILLABLE_VALUE, build_plan
from parity.replay.schedule import encode_query_text, iter_arrivals
from parity.report.ci import summary_md
from parity.report.context import RunMeta, build_context, without_body
from parity.sources.access_log import private_value, query_text, read_access_logs
from tests.conftest import ROOT, lognormal_side, run_parity, run_replay

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def nginx(t: datetime, request: str, status: int = 200, seconds: str = "0.010") -> str:
    stamp = t.strftime("%d/%b/%Y:%H:%M:%S") + " +0000"
    return f'203.0.113.7 - - [{stamp}] "{request}" {status} 512 "-" "curl/8" {seconds}'


def write_log(path: Path, requests: list[str]) -> Path:
    path.write_text("\n".join(nginx(T0 + timedelta(seconds=i * 0.5), r) for i, r in enumerate(requests)) + "\n")
    return path


# --- shapes and pools from the log (known answers) ------------------------------------------------------


def test_query_shapes_and_pools_are_read_with_their_shares(tmp_path: Path) -> None:
    requests = (
        ["GET /api/products?page=2 HTTP/1.1"] * 5
        + ["GET /api/products?page=3&per=50 HTTP/1.1"] * 3
        + ["GET /api/products HTTP/1.1"] * 2
        + ["GET /api/products?q=caf%C3%A9+au+lait&debug HTTP/1.1"]
        + ["GET /api/users/17?id=9 HTTP/1.1"]
    )
    m = read_access_logs(write_log(tmp_path / "a.log", requests), "nginx").measurement
    products = m.by_key()["GET /api/products"].request
    assert products is not None
    assert products.query_shapes == (
        QueryShape((("page", "{page}"),), 5.0),
        QueryShape((("page", "{page}"), ("per", "{per}")), 3.0),
        QueryShape((), 2.0),
        QueryShape((("q", "{q}"), ("debug", None)), 1.0),
    )
    assert products.params == {"page": ("2", "3"), "per": ("50",), "q": ("café au lait",)}
    users = m.by_key()["GET /api/users/{id}"].request
    assert users is not None  # the query's id does not share the path's pool
    assert users.query_shapes == (QueryShape((("id", "{id_q}"),), 1.0),)
    assert users.params == {"id": ("17",), "id_q": ("9",)}
    assert "query_values_dropped" not in m.labels


def test_an_endpoint_never_seen_with_a_query_has_no_shapes(tmp_path: Path) -> None:
    m = read_access_logs(write_log(tmp_path / "a.log", ["GET /health HTTP/1.1"] * 3), "nginx").measurement
    request = m.by_key()["GET /health"].request
    assert request is not None
    assert request.query_shapes == ()
    assert "query_shapes" not in measurement_json.to_dict(m)["endpoints"][0]["request"]  # files as before


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("page", "2", None),
        ("id", "0b6f4e2c-1d8a-4c1e-9a57-3f2b1c0d9e8f", None),  # a UUID is an id
        ("slug", "summer-sale-2026", None),
        ("access_token", "x", "secret-like"),
        ("X-Amz-Signature", "abc", "secret-like"),
        ("api_key", "k", "secret-like"),
        ("key", "k", "secret-like"),
        ("monkey", "banana", None),
        ("footprint", "small", None),  # "otp" only as a whole word
        ("otp", "123456", "secret-like"),
        ("mfa_otp", "123456", "secret-like"),
        ("session_id", "s", "secret-like"),
        ("code_verifier", "abc.def~ghi", "secret-like"),  # PKCE verifier: short, with `.`/`~` (not base64-like)
        ("oauth_verifier", "x1", "secret-like"),
        ("h", "d41d8cd98f00b204e9800998ecf8427e", "secret-like"),  # 32 hex digits
        ("t", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl", "secret-like"),
        ("t", "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZg", "secret-like"),
        ("email", "alice@example.com", "e-mail"),
        ("to", "ops+alerts@corp.example.co.uk", "e-mail"),
    ],
)
def test_private_values(name: str, value: str, why: str | None) -> None:
    assert private_value(name, value) == why


def test_secret_and_email_values_are_dropped_counted_and_unfillable_params_reported(tmp_path: Path) -> None:
    requests = [
        "GET /api/reset?token=d41d8cd98f00b204e9800998ecf8427e&step=1 HTTP/1.1",
        "GET /api/reset?token=0cc175b9c0f1b6a831c399e269772661&step=2 HTTP/1.1",
        "GET /api/invite?email=a%40example.com&team=7 HTTP/1.1",
        "GET /api/invite?email=bob&team=8 HTTP/1.1",
    ]
    m = read_access_logs(write_log(tmp_path / "a.log", requests), "nginx").measurement
    assert m.labels["query_values_dropped"] == "1 e-mail, 2 secret-like"
    reset = m.by_key()["GET /api/reset"].request
    invite = m.by_key()["GET /api/invite"].request
    assert reset is not None
    assert invite is not None
    assert "token" not in reset.params  # every value dropped: no pool
    assert invite.params["email"] == ("bob",)  # the rest of the pool is replayed
    plan = build_plan(m)
    planned = {p.endpoint.key: p for p in plan.endpoints}
    assert planned["GET /api/reset"].unfillable == ("token",)
    assert planned["GET /api/invite"].unfillable == ()
    urls = {a.url for a in iter_arrivals(plan, 600.0, rate_scale=1.0, seed=3) if a.name == "/api/reset"}
    assert urls
    assert all(u.startswith(f"/api/reset?token={UNFILLABLE_VALUE}&step=") for u in urls)
    done = run_parity("baseline", "from-logs", "--format", "nginx", str(tmp_path / "a.log"), "-o", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    assert "query-string values left out of the pools (never stored): 1 e-mail, 2 secret-like" in done.stdout
    assert "unfillable query parameter(s) of GET /api/reset: token" in done.stdout
    assert "GET /api/invite" not in done.stdout  # its e-mail pool still holds 'bob'


@pytest.mark.parametrize(
    "text", ["café au lait", "a+b=c&d", "100%", "x;y#z", "日本", "", " lead", "a/b:c@d,e!$'()*", "tab\there"]
)
def test_query_encoding_round_trips(text: str) -> None:
    assert query_text(encode_query_text(text)) == text
    assert dict(parse_qsl("k=" + encode_query_text(text), keep_blank_values=True)) == {"k": text}


@pytest.mark.parametrize("raw", ["caf%C3%A9+au+lait", "a%2Bb", "2026-11-02", "a,b", "x%3By", "%E6%97%A5"])
def test_canonical_query_text_is_sent_byte_for_byte(raw: str) -> None:
    decoded = query_text(raw)
    assert decoded is not None
    assert encode_query_text(decoded) == raw


def test_query_text_refuses_bytes_that_are_not_utf8() -> None:
    assert query_text("%FF%FE") is None


def test_replay_draws_shapes_by_weight() -> None:
    shapes = (QueryShape((("page", "{page}"),), 7.0), QueryShape((), 3.0))
    template = RequestTemplate(path="/p", params={"page": ("1", "2")}, query_shapes=shapes)
    m = lognormal_side({"GET /p": 10.0}, n=1000)
    m = replace(m, endpoints=(replace(m.endpoints[0], request=template),))
    arrivals = list(iter_arrivals(build_plan(m), 60.0, rate_scale=400 / 1000 * m.window.duration_s / 60, seed=5))
    with_query = sum("?" in a.url for a in arrivals) / len(arrivals)
    assert len(arrivals) > 300
    assert abs(with_query - 0.7) < 0.08
    assert {a.url for a in arrivals} == {"/p", "/p?page=1", "/p?page=2"}


# --- the model's JSON ------------------------------------------------------------------------------------


def test_query_shapes_round_trip_through_json_and_old_files_still_read(tmp_path: Path) -> None:
    shapes = (QueryShape((("page", "{page}"), ("flag", None)), 3.0), QueryShape((), 1.0))
    m = lognormal_side({"GET /p": 10.0}, n=20)
    template = RequestTemplate(path="/p", params={"page": ("1",)}, query_shapes=shapes)
    m = replace(m, endpoints=(replace(m.endpoints[0], request=template),))
    back = measurement_json.loads(measurement_json.dumps(m))
    assert back.endpoints[0].request == template
    old = measurement_json.to_dict(m)
    del old["endpoints"][0]["request"]["query_shapes"]  # a file written before query shapes existed
    assert measurement_json.from_dict(old).endpoints[0].request == replace(template, query_shapes=())
    demo = measurement_json.read(ROOT / "baselines" / "demo.json")
    assert all(e.request is not None and e.request.query_shapes == () for e in demo.endpoints)
    bad = measurement_json.to_dict(m)
    bad["endpoints"][0]["request"]["query_shapes"][0]["weight"] = 0
    with pytest.raises(BadInput, match="weight"):
        measurement_json.from_dict(bad)


# --- bodies ----------------------------------------------------------------------------------------------


def test_body_templates_are_named_after_the_endpoint_and_checked(tmp_path: Path) -> None:
    post, patch = Endpoint("POST", "/api/employees/{id}/payroll"), Endpoint("PATCH", "/api/x")
    assert body_file_name(post) == "POST_api_employees_{id}_payroll.json"
    (tmp_path / body_file_name(post)).write_text('{"employee": {"id": "{id}", "tags": ["{id}"]}, "n": 3}')
    (tmp_path / "README.md").write_text("ignored")
    bodies = load_bodies(tmp_path, [post, patch, Endpoint("", "legacy")])
    assert bodies == {post.key: {"employee": {"id": "{id}", "tags": ["{id}"]}, "n": 3}}
    requests = {post.key: RequestTemplate(path=post.route, params={"x": ("1",)})}
    assert check_body_placeholders(bodies, requests) == (
        "POST_api_employees_{id}_payroll.json: {id} has no value pool in POST /api/employees/{id}/payroll "
        "(its pools: x)"
    )
    (tmp_path / "POST_api_employes.json").write_text("{}")
    with pytest.raises(BadInput, match="names no endpoint"):
        load_bodies(tmp_path, [post, patch])
    (tmp_path / "POST_api_employes.json").unlink()
    (tmp_path / "PATCH_api_x.json").write_text("null")
    with pytest.raises(BadInput, match="JSON null"):
        load_bodies(tmp_path, [post, patch])
    (tmp_path / "PATCH_api_x.json").write_text("{nope")
    with pytest.raises(BadInput, match="not valid JSON"):
        load_bodies(tmp_path, [post, patch])
    with pytest.raises(BadInput, match="not a directory"):
        load_bodies(tmp_path / "missing", [post])


def test_plan_lists_write_endpoints_without_a_body() -> None:
    m = lognormal_side({"GET /a": 5.0, "POST /b": 5.0, "PUT /c": 5.0, "DELETE /d": 5.0}, n=10)
    assert [e.key for e in build_plan(m).without_body()] == ["POST /b", "PUT /c"]
    assert [e.key for e in build_plan(m, {"POST /b": {"x": 1}}).without_body()] == ["PUT /c"]


def test_reports_flag_endpoints_replayed_without_their_body() -> None:
    base = lognormal_side({"GET /a": 20.0, "POST /b": 30.0}, seed=1)
    cand = lognormal_side({"GET /a": 20.0, "POST /b": 30.0}, seed=2)
    cand = replace(cand, labels={LABEL_WITHOUT_BODY: json.dumps(["POST /b"])})
    result = compare(base, cand, Policy())
    meta = RunMeta("test", None, datetime(2026, 11, 3, tzinfo=UTC), None, None)
    keys = without_body((base, cand))
    assert keys == {"POST /b"}
    data = build_context(result, meta, measurements=(base, cand))["data"]
    rows = {r["k"]: r for r in data["rows"]}
    assert rows["POST /b"]["nb"][0] == "sent without its body"
    assert "nb" not in rows["GET /a"]
    # each metric of it is badged "left out" (for its data), not "off" (a gate turned off in the config)
    gates = {c[12] for c in rows["POST /b"]["m"] if c is not None}
    assert "left-out" in gates, gates
    assert "off" not in gates, gates
    assert data["gates"]["left-out"]["label"] == "left out"
    assert "config" not in data["gates"]["left-out"]["title"]
    verdict = next(e.verdict for e in result.endpoints if e.endpoint.key == "POST /b").value.upper()
    text = summary_md(result, meta, without_body=keys)
    assert "**Replayed without their request body (1):**" in text
    assert f"- POST /b: **{verdict}** (sent without its body)" in text
    assert "without their request body" not in summary_md(result, meta)


def test_endpoints_sent_without_their_body_are_never_passed_nor_failed() -> None:
    # The candidate's empty POST is answered 10x faster (a fast 4xx); its empty PUT with 5xx errors. Judged as
    # they were, the first passed (false PASS) and the second failed (false FAIL): neither is parity.
    base = lognormal_side({"GET /a": 20.0, "POST /b": 30.0, "PUT /c": 30.0}, seed=1)
    cand = lognormal_side({"GET /a": 20.0, "POST /b": 3.0, "PUT /c": 30.0}, seed=2, errors={"PUT /c": 400})
    unflagged = {e.endpoint.key: e.verdict for e in compare(base, cand, Policy()).endpoints}
    assert (unflagged["POST /b"], unflagged["PUT /c"]) == (Verdict.PASS, Verdict.FAIL)
    flagged = replace(cand, labels={LABEL_WITHOUT_BODY: json.dumps(["POST /b", "PUT /c"])})
    result = compare(base, flagged, Policy())
    by_key = {e.endpoint.key: e for e in result.endpoints}
    for key in ("POST /b", "PUT /c"):
        assert by_key[key].verdict is Verdict.INCONCLUSIVE
        assert "without its request body" in by_key[key].reasons[0]
        assert not by_key[key].looks_worse
        assert all(m.statistics is None for m in by_key[key].metrics)  # kept out of the run's tests
    assert by_key["GET /a"].verdict is Verdict.PASS
    assert result.verdict is Verdict.INCONCLUSIVE  # 2/3 of the traffic not judged
    # the baseline side's label counts too (a replay used as the baseline)
    assert {e.endpoint.key: e.verdict for e in compare(flagged, base, Policy()).endpoints}["POST /b"] is (
        Verdict.INCONCLUSIVE
    )


# --- end to end: a real replay against a recording target --------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, bytes]]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._record()

    def do_POST(self) -> None:
        self._record()

    def do_PATCH(self) -> None:
        self._record()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def recording_target() -> Iterator[tuple[str, list[tuple[str, str, str | None, bytes]]]]:
    seen: list[tuple[str, str, str | None, bytes]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _logged_baseline(tmp_path: Path) -> tuple[Path, float]:
    """An access-log baseline: GET /api/products with a mix of query shapes (and the share of its requests
    that had a query string), POST /api/employees/{id}/payroll and PATCH /api/profile."""
    rng = np.random.default_rng(13)
    requests = []
    with_query = 0
    for _ in range(900):
        u = rng.random()
        if u < 0.35:
            requests.append("GET /api/products HTTP/1.1")
        elif u < 0.75:
            requests.append(f"GET /api/products?page={rng.integers(1, 40)} HTTP/1.1")
        else:
            requests.append(f"GET /api/products?page={rng.integers(1, 40)}&sort=price+asc HTTP/1.1")
        with_query += u >= 0.35
    requests += [f"POST /api/employees/{1000 + i}/payroll HTTP/1.1" for i in range(60)]
    requests += ["PATCH /api/profile HTTP/1.1"] * 40
    order = rng.permutation(len(requests))
    log = write_log(tmp_path / "access.log", [requests[i] for i in order])
    baseline = tmp_path / "baseline.json"
    measurement_json.write(read_access_logs(log, "nginx").measurement, baseline)
    return baseline, with_query / 900


def test_replay_sends_the_logged_query_shapes_and_bodies_and_flags_what_has_none(
    tmp_path: Path, recording_target: tuple[str, list[tuple[str, str, str | None, bytes]]]
) -> None:
    host, seen = recording_target
    baseline, logged_share = _logged_baseline(tmp_path)
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    (bodies / "POST_api_employees_{id}_payroll.json").write_text('{"employee_id": "{id}", "period": "2026-11"}')
    common = ("--host", host, "--baseline", str(baseline), "--bodies", str(bodies), "-t", "3s", "--seed", "4")

    refused = run_replay(*common, "--rate-scale", "1")
    assert refused.returncode == 2, refused.stderr[-2000:]
    errors = [line for line in refused.stderr.splitlines() if "parity: error:" in line]
    assert len(errors) == 1
    assert "PATCH /api/profile" in errors[0]
    assert "--allow-empty-bodies" in errors[0]
    assert "Traceback" not in refused.stderr
    assert seen == []

    out = tmp_path / "run.json"
    # ~1000 baseline requests over 500 s, compressed into 3 s at 170x: about 1,000 requests
    done = run_replay(*common, "--rate-scale", "170", "--allow-empty-bodies", "--parity-out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WITHOUT their request body" in done.stderr
    products = [path for method, path, _, _ in seen if urlsplit(path).path == "/api/products"]
    assert len(products) > 400
    sent_share = sum("?" in p for p in products) / len(products)
    assert abs(sent_share - logged_share) <= 0.02, (sent_share, logged_share)
    shapes = {tuple(k for k, _ in parse_qsl(urlsplit(p).query)) for p in products}
    assert shapes == {(), ("page",), ("page", "sort")}
    assert all("sort=price+asc" in p for p in products if "sort=" in p)
    posts = [(path, ctype, body) for method, path, ctype, body in seen if method == "POST"]
    assert posts
    for path, ctype, body in posts:
        assert ctype == "application/json"
        parsed = json.loads(body)
        assert parsed["period"] == "2026-11"
        assert path == f"/api/employees/{parsed['employee_id']}/payroll"
    patches = [body for method, _, _, body in seen if method == "PATCH"]
    assert patches
    assert all(body == b"" for body in patches)
    run = measurement_json.read(out)
    assert json.loads(run.labels[LABEL_WITHOUT_BODY]) == ["PATCH /api/profile"]
    assert run.total_count == len(seen)

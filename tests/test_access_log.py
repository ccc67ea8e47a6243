"""Access-log source: ALB and nginx logs → Measurement with known counts, errors, latencies and pools."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.errors import BadInput
from parity.model import EndpointStats, LatencyDistribution, LatencyKind, SourceKind, Window
from parity.replay.plan import build_plan
from parity.replay.schedule import fill
from parity.sources.access_log import read_access_logs, timeline_interval_for
from parity.sources.routes import read_rails_routes

RAILS = Path(__file__).parent / "fixtures" / "routes" / "rails_routes.txt"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
WINDOW_S = 2 * 3600
UNICODE = "/api/v1/employees/%E5%B1%B1%E7%94%B0"  # 山田, percent-encoded as the client sent it


def _alb_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alb_line(
    t: datetime,
    method: str,
    path: str,
    target_s: float | None,
    *,
    elb: str = "200",
    target: str = "200",
    kind: str = "https",
    actions: str = "forward",
    extra: str = "",
    created: datetime | str | None = None,
) -> str:
    """One ALB access log line (the reference's field order); ``target_s`` None → not dispatched (-1).
    ``t`` is the response's time; ``created`` the request's (``request_creation_time``; default ``t``)."""
    times = "-1 -1 -1" if target_s is None else f"0.000 {target_s:.3f} 0.000"
    ts = _alb_time(t)
    creation = ts if created is None else created if isinstance(created, str) else _alb_time(created)
    return (
        f"{kind} {ts} app/my-lb/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 {times} {elb} {target} 34 366 "
        f'"{method} https://hr.example.com:443{path} HTTP/1.1" "Mozilla/5.0 (X11; Linux)" '
        "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 "
        "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "
        '"Root=1-58337262-36d228ad5d99923122bbe354" "hr.example.com" '
        '"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234" 0 '
        f'{creation} "{actions}" "-" "-" "10.0.0.1:80" "{target}" "-" "-" TID_1234abcd5678ef90{extra}'
    )


@dataclass
class Expected:
    """What the generated log must read back as, per endpoint key (with the Rails route map)."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ids: list[str] = field(default_factory=list)  # GET /api/v1/employees/{id} values in line order
    malformed: int = 0
    skipped: int = 0


def generate_alb(seed: int = 7) -> tuple[list[str], Expected]:
    """~2200 lines over two hours, shuffled in time, with every special case of the ALB format."""
    rng = np.random.default_rng(seed)
    exp = Expected()
    show = "GET /api/v1/employees/{id}"
    rows = [(show, "GET", f"/api/v1/employees/{rng.integers(1000, 1400)}") for _ in range(1200)]  # key, method, path
    rows += [("GET /api/v1/employees", "GET", f"/api/v1/employees?page={p}") for p in range(600)]
    rows += [("POST /api/v1/payroll/calculate", "POST", "/api/v1/payroll/calculate")] * 300
    rows += [(show, "GET", UNICODE)] * 20
    rows += [("GET /healthz", "GET", "/healthz")] * 50
    medians = {
        "GET /api/v1/employees/{id}": 12.0,
        "GET /api/v1/employees": 40.0,
        "POST /api/v1/payroll/calculate": 250.0,
        "GET /healthz": 1.5,
    }
    lines: list[tuple[float, str]] = []
    for i, (key, method, path) in enumerate(rows):
        t = T0 + timedelta(seconds=float(rng.uniform(0, WINDOW_S)))
        seconds = round(float(rng.lognormal(np.log(medians[key] / 1000), 0.5)), 3)
        elb = target = "200"
        if key.startswith("POST") and i % 100 == 0:
            elb = target = "502"  # the target answered 502: an error with a latency
        extra = ' "new-field" 42' if i % 7 == 0 else ""  # fields AWS appends later are ignored
        lines.append((t.timestamp(), alb_line(t, method, path, seconds, elb=elb, target=target, extra=extra)))
        exp.counts[key] += 1
        exp.errors[key] += elb == "502"
        exp.latencies[key].append(seconds * 1000)
    for j in range(5):  # not dispatched: errors without latency
        t = T0 + timedelta(seconds=600 + j)
        lines.append((t.timestamp(), alb_line(t, "GET", f"/api/v1/employees/{j}", None, elb="504", target="-")))
        exp.counts["GET /api/v1/employees/{id}"] += 1
        exp.errors["GET /api/v1/employees/{id}"] += 1
    for j in range(4):  # HTTP → HTTPS redirects the ALB answered itself: not the service's traffic
        t = T0 + timedelta(seconds=900 + j)
        lines.append((t.timestamp(), alb_line(t, "GET", "/", None, elb="301", target="-", actions="redirect")))
        exp.skipped += 1
    t = T0 + timedelta(seconds=30)
    lines.append((t.timestamp(), alb_line(t, "GET", "/x", 0.001, kind="wss")))  # a WebSocket connection
    exp.skipped += 1
    rng.shuffle(lines)
    text = [line for _, line in lines]
    bad = [
        "this is not an access log line",
        alb_line(T0, "GET", "/a", 0.001).replace(_alb_time(T0), "2026-13-45T99:00:00Z"),
        alb_line(T0, "GET", "/a", 0.001).replace("0.000 0.001 0.000", "0.000 fast 0.000"),
    ]
    for k, b in enumerate(bad):
        text.insert(100 * (k + 1), b)
    exp.malformed = len(bad)
    return text, exp


def _write(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _check_latency(stats: EndpointStats, values: list[float]) -> None:
    assert isinstance(stats.latency, LatencyDistribution)
    arr = np.asarray(values)
    assert stats.latency.samples == len(arr)
    assert stats.latency.mean == pytest.approx(float(arr.mean()), rel=1e-9)
    assert stats.latency.maximum == pytest.approx(float(arr.max()), rel=1e-9)
    for q in (0.50, 0.95):
        assert stats.latency.quantile(q) == pytest.approx(float(np.quantile(arr, q, method="lower")), rel=0.01)


@pytest.fixture(scope="module")
def alb_log() -> tuple[list[str], Expected]:
    return generate_alb()


def test_alb_log_with_route_map(tmp_path: Path, alb_log: tuple[list[str], Expected]) -> None:
    lines, exp = alb_log
    path = _write(tmp_path / "alb.log", lines)
    result = read_access_logs([path], "alb", route_map=read_rails_routes(RAILS))
    m = result.measurement
    assert m.source.kind is SourceKind.ACCESS_LOG
    assert m.latency_kind is LatencyKind.SERVER
    assert (result.lines, result.malformed, result.skipped) == (len(lines), exp.malformed, exp.skipped)
    assert result.malformed_examples[0].startswith(f"{path}:101: ")
    assert "time: not an ISO 8601 time" in result.malformed_examples[1]
    assert "target_processing_time: not a number: 'fast'" in result.malformed_examples[2]
    assert result.no_latency == 5
    assert (result.unmatched, result.unmatched_examples) == (50, ("GET /healthz",))
    by = m.by_key()
    assert {k: s.count for k, s in by.items()} == dict(exp.counts)
    assert {k: s.errors for k, s in by.items()} == {k: exp.errors[k] for k in exp.counts}
    for key, values in exp.latencies.items():
        _check_latency(by[key], values)
    show = by["GET /api/v1/employees/{id}"]
    assert show.resource == "Api::V1::EmployeesController#show"
    assert by["GET /healthz"].resource is None
    # the window: first to last request (end exclusive), per-minute timeline covering it
    assert m.window.start >= T0
    assert m.window.end <= T0 + timedelta(seconds=WINDOW_S + 1)
    assert show.timeline is not None
    assert show.timeline.interval_s == 60
    assert show.timeline.total == show.count
    assert sum(e for e in show.timeline.errors or () if e) == show.errors


def test_alb_request_templates_replay_what_the_server_got(tmp_path: Path, alb_log: tuple[list[str], Expected]) -> None:
    lines, _ = alb_log
    m = read_access_logs(_write(tmp_path / "a.log", lines), "alb", route_map=read_rails_routes(RAILS)).measurement
    show = m.by_key()["GET /api/v1/employees/{id}"]
    assert show.request is not None
    assert show.request.path == "/api/v1/employees/{id}"
    pool = show.request.params["id"]
    assert "山田" in pool  # decoded, because the replay percent-encodes pool values...
    assert fill("/api/v1/employees/{id}", {"id": "山田"}, url=True) == UNICODE  # ...back to the bytes sent
    assert len(pool) == len(set(pool))
    plan = build_plan(m)
    assert plan.skipped == ()  # every endpoint replays without --params
    assert {p.endpoint.key for p in plan.endpoints} == set(m.by_key())
    again = measurement_json.from_dict(json.loads(measurement_json.dumps(m)))  # schema accepts it
    assert again.by_key()["GET /api/v1/employees/{id}"].request == show.request


def test_alb_without_route_map_templates_paths(tmp_path: Path, alb_log: tuple[list[str], Expected]) -> None:
    lines, exp = alb_log
    result = read_access_logs(_write(tmp_path / "a.log", lines), "alb")
    by = result.measurement.by_key()
    assert result.unmatched == 0
    assert by["GET " + UNICODE].count == 20  # kept as it came, not decoded
    assert by["GET /api/v1/employees/{id}"].count == exp.counts["GET /api/v1/employees/{id}"] - 20
    assert by["GET /api/v1/employees"].count == 600  # query string dropped
    assert all(s.resource is None for s in by.values())


def test_alb_gzip_reads_like_plain(tmp_path: Path, alb_log: tuple[list[str], Expected]) -> None:
    lines, _ = alb_log
    plain = read_access_logs(_write(tmp_path / "a.log", lines), "alb")
    gz = read_access_logs(_write(tmp_path / "a.log.txt", lines, gz=True), "alb")  # detected by magic bytes
    assert (
        measurement_json.to_dict(gz.measurement)["endpoints"]
        == measurement_json.to_dict(plain.measurement)["endpoints"]
    )
    # two files together: counts add up
    both = read_access_logs([tmp_path / "a.log", tmp_path / "a.log.txt"], "alb")
    assert both.measurement.total_count == 2 * plain.measurement.total_count
    assert both.measurement.source.description.endswith("a.log and 1 more")


def test_pool_limit_keeps_the_first_seen_values(tmp_path: Path) -> None:
    lines = [
        alb_line(T0 + timedelta(seconds=i), "GET", f"/api/employees/{n}", 0.01) for i, n in enumerate([5, 3, 5, 9, 7])
    ]
    m = read_access_logs(_write(tmp_path / "a.log", lines), "alb", pool_limit=3).measurement
    request = m.by_key()["GET /api/employees/{id}"].request
    assert request is not None
    assert request.params == {"id": ("5", "3", "9")}


def _bad_and_good(good: int, bad: int) -> list[str]:
    lines = [alb_line(T0 + timedelta(seconds=i), "GET", "/a", 0.005) for i in range(good)]
    return lines + ["garbage line"] * bad


def test_malformed_threshold(tmp_path: Path) -> None:
    ok = read_access_logs(_write(tmp_path / "ok.log", _bad_and_good(990, 10)), "alb")  # exactly 1%
    assert (ok.lines, ok.malformed) == (1000, 10)
    path = _write(tmp_path / "bad.log", _bad_and_good(989, 11))
    with pytest.raises(BadInput, match=r"bad\.log: 11 of 1000 lines \(1\.10%\) are malformed") as info:
        read_access_logs(path, "alb")
    assert "first: " + str(path) + ":990: " in str(info.value)
    assert read_access_logs(path, "alb", max_malformed_share=0.02).malformed == 11


def test_wrong_format_is_refused_early(tmp_path: Path) -> None:
    lines = [nginx_line(T0 + timedelta(seconds=i), "GET / HTTP/1.1", 200, "0.100") for i in range(1500)]
    path = _write(tmp_path / "nginx.log", lines)
    with pytest.raises(BadInput, match="first 1000 lines are all malformed"):
        read_access_logs(path, "alb")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no log lines"),
        (["", "   "], "no log lines"),
        ([alb_line(T0, "GET", "/", None, elb="301", target="-", actions="redirect")], "no requests in 1 lines"),
    ],
)
def test_empty_inputs(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        read_access_logs(_write(tmp_path / "a.log", lines), "alb")


def test_bad_files_and_options(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        read_access_logs(tmp_path / "missing.log", "alb")
    truncated = gzip.compress(("\n".join(_bad_and_good(200, 0)) + "\n").encode())[:-30]
    (tmp_path / "cut.gz").write_bytes(truncated)
    with pytest.raises(BadInput, match=r"cut\.gz: gzip data broken"):
        read_access_logs(tmp_path / "cut.gz", "alb")
    with pytest.raises(BadInput, match="--format"):
        read_access_logs(tmp_path / "x", "apache")
    with pytest.raises(BadInput, match="--max-malformed"):
        read_access_logs(tmp_path / "x", "alb", max_malformed_share=2)
    with pytest.raises(BadInput, match="no access log files"):
        read_access_logs([], "alb")


def test_long_windows_get_a_coarser_timeline(tmp_path: Path) -> None:
    assert timeline_interval_for(4 * 86400) == 60
    assert timeline_interval_for(5 * 86400) == 120
    assert timeline_interval_for(365 * 86400) % 60 == 0
    lines = [alb_line(T0, "GET", "/a", 0.005), alb_line(T0 + timedelta(days=5), "GET", "/a", 0.005)]
    m = read_access_logs(_write(tmp_path / "a.log", lines), "alb").measurement
    timeline = m.endpoints[0].timeline
    assert timeline is not None
    assert timeline.interval_s == 120
    assert timeline.total == 2


# --- nginx ----------------------------------------------------------------------------------------------


def nginx_line(t_utc: datetime, request: str, status: int, *extras: str, offset_h: int = 9) -> str:
    local = t_utc + timedelta(hours=offset_h)
    stamp = local.strftime("%d/%b/%Y:%H:%M:%S") + f" {'+' if offset_h >= 0 else '-'}{abs(offset_h):02d}00"
    tail = " ".join(extras)
    return f'203.0.113.7 - alice [{stamp}] "{request}" {status} 512 "-" "Mozilla/5.0 (X11; Linux)" {tail}'.rstrip()


def generate_nginx(seed: int = 3) -> tuple[list[str], dict[str, list[float]], dict[str, list[float]]]:
    """Lines with ``$request_time $upstream_response_time``; expected request / upstream ms per endpoint."""
    rng = np.random.default_rng(seed)
    lines: list[str] = []
    request_ms: dict[str, list[float]] = defaultdict(list)
    upstream_ms: dict[str, list[float]] = defaultdict(list)
    for i in range(800):
        t = T0 + timedelta(seconds=float(rng.uniform(0, 3600)))
        key, path = (
            ("GET /api/employees/{id}", f"/api/employees/{1000 + i % 50}")
            if i % 2
            else ("GET /api/departments", "/api/departments?sort=name")
        )
        upstream = round(float(rng.lognormal(np.log(0.02), 0.4)), 3)
        total = round(upstream + float(rng.uniform(0.001, 0.004)), 3)
        lines.append(nginx_line(t, f"GET {path} HTTP/1.1", 200, f"{total:.3f}", f"{upstream:.3f}"))
        request_ms[key].append(total * 1000)
        upstream_ms[key].append(upstream * 1000)
    return lines, request_ms, upstream_ms


def test_nginx_timing_field_picks_the_latency(tmp_path: Path) -> None:
    lines, request_ms, upstream_ms = generate_nginx()
    path = _write(tmp_path / "access.log", lines)
    for timing_field, expected in ((0, request_ms), (-1, upstream_ms), (1, upstream_ms)):
        result = read_access_logs(path, "nginx", timing_field=timing_field)
        by = result.measurement.by_key()
        assert {k: s.count for k, s in by.items()} == {k: len(v) for k, v in expected.items()}
        for key, values in expected.items():
            _check_latency(by[key], values)
        assert result.measurement.labels["timing_field"] == str(timing_field)
    m = read_access_logs(path, "nginx").measurement
    assert m.window.start >= T0  # +0900 local times read as UTC
    assert m.window.end <= T0 + timedelta(seconds=3601)


def test_nginx_special_lines(tmp_path: Path) -> None:
    t = T0 + timedelta(seconds=5)
    lines = [
        nginx_line(t, "GET /api/reports/export HTTP/1.1", 499, "30.001", "-"),  # client gave up
        nginx_line(t, "GET /api/reports/export HTTP/1.1", 503, "0.250", "0.249"),
        nginx_line(t, "GET /api/reports/export HTTP/1.1", 200, "0.030", "0.010, 0.015"),  # two upstreams
        nginx_line(t, "GET /api/reports/export HTTP/1.1", 200, "0.002", "-"),  # answered by nginx (cache)
        nginx_line(t, "GET /api/reports/export HTTP/1.1", 200),  # no timing fields at all
        nginx_line(t, r"GET /api/employees/\xE5\xB1\xB1\xE7\x94\xB0 HTTP/1.1", 200, "0.004", "0.003"),
        nginx_line(t, "", 400, "0.000", "-"),  # a connection without a request
        nginx_line(t, "GET /x HTTP/1.1", 200, "0.004", "soon"),  # malformed timing
    ]
    path = _write(tmp_path / "access.log", lines)
    last = read_access_logs(path, "nginx", max_malformed_share=0.2)
    first = read_access_logs(path, "nginx", timing_field=0, max_malformed_share=0.2)
    assert (last.lines, last.malformed, last.skipped) == (8, 1, 1)
    assert "timing field: not a number: 'soon'" in last.malformed_examples[0]
    assert first.malformed == 0  # timing field 0 is fine on that line
    export = last.measurement.by_key()["GET /api/reports/export"]
    assert (export.count, export.errors) == (5, 2)  # 499 and 503
    assert isinstance(export.latency, LatencyDistribution)
    assert export.latency.samples == 2  # 503 (249 ms) and the two upstreams (25 ms)
    assert export.latency.mean == pytest.approx((249 + 25) / 2)
    assert last.no_latency == 3
    export0 = first.measurement.by_key()["GET /api/reports/export"]
    assert isinstance(export0.latency, LatencyDistribution)
    assert export0.latency.samples == 3  # 503, 30 ms, 2 ms (the 499 has none, the bare line none)
    assert "GET /api/employees/%E5%B1%B1%E7%94%B0" in last.measurement.by_key()  # \xHH escapes → bytes


# --- a replay's window ------------------------------------------------------------------------------------

W0 = T0 + timedelta(seconds=10.5)  # half a second into a minute
WINDOW = Window(W0, W0 + timedelta(seconds=60))


def _at(seconds: float) -> datetime:
    return W0 + timedelta(seconds=seconds)


def test_alb_window_keeps_requests_created_in_it(tmp_path: Path) -> None:
    """ALB: a request belongs to the window by ``request_creation_time``, not by ``time`` (its response)."""
    lines = [alb_line(_at(i + 0.1), "GET", f"/api/v1/employees/{1000 + i}", 0.05, created=_at(i)) for i in range(20)]
    lines += [
        alb_line(_at(62.0), "GET", "/api/v1/employees/7", 2.0, created=_at(59.9)),  # answered after the end: in
        alb_line(_at(0.2), "GET", "/api/v1/employees/8", 0.4, created=_at(-0.5)),  # 0.5 s early: in (slack 1 s)
        alb_line(_at(30.0), "GET", "/healthz", 0.001, created="-"),  # no creation time: its `time` (in)
        alb_line(_at(0.5), "POST", "/api/v1/payroll/calculate", 5.0, created=_at(-5.0)),  # began before: out
        alb_line(_at(61.6), "POST", "/api/v1/payroll/calculate", 0.1, created=_at(61.5)),  # after end + slack: out
    ]
    lines += [alb_line(_at(-3600 + i), "GET", "/healthz", 0.001) for i in range(10)]  # an hour earlier
    lines += [alb_line(_at(3600 + i), "GET", "/healthz", 0.001) for i in range(5)]  # an hour later
    lines += [alb_line(_at(1), "GET", "/", None, elb="301", target="-", actions="redirect")]  # skipped, as ever
    path = _write(tmp_path / "alb.log", lines)

    result = read_access_logs(path, "alb", window=WINDOW)
    m = result.measurement
    assert {k: s.count for k, s in m.by_key().items()} == {"GET /api/v1/employees/{id}": 22, "GET /healthz": 1}
    assert (result.before_window, result.after_window, result.outside_window) == (11, 6, 17)
    assert (result.lines, result.skipped) == (41, 1)
    assert m.window == WINDOW
    assert m.labels["outside_window"] == "17"
    timeline = m.by_key()["GET /api/v1/employees/{id}"].timeline
    assert timeline is not None
    assert (timeline.start_s, timeline.counts) == (T0.timestamp(), (21, 1))  # by creation time: 59.9 s is 09:01:10

    strict = read_access_logs(path, "alb", window=WINDOW, window_slack_s=0.0)
    assert strict.measurement.by_key()["GET /api/v1/employees/{id}"].count == 21
    assert (strict.before_window, strict.after_window) == (12, 6)
    whole = read_access_logs(path, "alb")  # no window: every request, timed by `time` as before
    assert whole.measurement.total_count == 40
    assert whole.outside_window == 0


def test_nginx_window_times_a_request_by_its_end_minus_its_duration(tmp_path: Path) -> None:
    """nginx: ``$time_local`` is the request's end, to the second; its arrival is estimated as that minus
    ``$request_time`` (the timing field), so the estimate can be up to 1 s early: the slack keeps it."""
    lines = [nginx_line(_at(i + 0.3), "GET /api/departments HTTP/1.1", 200, "0.200") for i in range(1, 31)]
    lines += [
        nginx_line(_at(1.0), "POST /api/payroll/calculate HTTP/1.1", 200, "4.000"),  # began 3 s early: out
        nginx_line(_at(61.5), "POST /api/payroll/calculate HTTP/1.1", 200, "2.000"),  # began at 59.5 s: in
        nginx_line(_at(0.3), "GET /api/departments HTTP/1.1", 200, "0.100"),  # began 0.2 s in, logged 10:00: in
        nginx_line(_at(20.0), "GET /api/reports/export HTTP/1.1", 499, "30.000"),  # no latency: at its log time, in
        nginx_line(_at(62.0), "GET /api/departments HTTP/1.1", 200, "-"),  # no latency, logged after: out
    ]
    lines += [nginx_line(_at(7200 + i), "GET /api/departments HTTP/1.1", 200, "0.010") for i in range(8)]
    path = _write(tmp_path / "access.log", lines)

    result = read_access_logs(path, "nginx", window=WINDOW)
    counts = {k: s.count for k, s in result.measurement.by_key().items()}
    assert counts == {"GET /api/departments": 31, "POST /api/payroll/calculate": 1, "GET /api/reports/export": 1}
    assert (result.before_window, result.after_window) == (1, 9)
    assert result.measurement.window == WINDOW
    strict = read_access_logs(path, "nginx", window=WINDOW, window_slack_s=0.0)
    assert strict.measurement.by_key()["GET /api/departments"].count == 30  # the whole-second estimate: 0.3 s early


def test_a_window_without_requests_is_bad_input(tmp_path: Path) -> None:
    lines = [alb_line(_at(-3600 + i), "GET", "/healthz", 0.001) for i in range(3)]
    path = _write(tmp_path / "alb.log", lines)
    with pytest.raises(BadInput, match=r"alb\.log: no request in the window 2026-11-25T09:00:10\.500000\+00:00 to "):
        read_access_logs(path, "alb", window=WINDOW)
    with pytest.raises(BadInput, match=r"its 3 requests arrived from 2026-11-25T08:00:10\.500000\+00:00 .*\(3 before"):
        read_access_logs(path, "alb", window=WINDOW)
    with pytest.raises(BadInput, match="--window-slack"):
        read_access_logs(path, "alb", window=WINDOW, window_slack_s=-1.0)
